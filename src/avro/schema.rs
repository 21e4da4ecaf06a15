//! Alert schemas: the built-in one (the `.avsc` files in `schemas/`) and user
//! files given with `--schema`. A schema split over several files is combined
//! the way the original did: named types defined in inner files are inlined
//! where the outer schema first refers to them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Result;
use apache_avro::Schema;
use serde_json::{Map, Value as Json};

use crate::exit::bad_input;

/// The built-in alert schema files, inner types first.
const BUILT_IN: [(&str, &str); 5] = [
    ("cutout.avsc", include_str!("../../schemas/cutout.avsc")),
    (
        "candidate.avsc",
        include_str!("../../schemas/candidate.avsc"),
    ),
    (
        "prv_candidate.avsc",
        include_str!("../../schemas/prv_candidate.avsc"),
    ),
    ("fp_hist.avsc", include_str!("../../schemas/fp_hist.avsc")),
    ("alert.avsc", include_str!("../../schemas/alert.avsc")),
];

/// The project's alert schema (ZTF's current alert layout, version 4.02).
pub fn built_in() -> Schema {
    let files: Vec<(String, String)> = BUILT_IN
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    // The files are part of the binary and covered by tests: failing here is a build defect.
    combine(&files).expect("built-in schemas/*.avsc must combine into one schema")
}

/// Loads `.avsc` files, or folders of them, into one schema.
pub fn load(paths: &[PathBuf]) -> Result<Schema> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| {
                    bad_input(format!("cannot read schema folder {}: {e}", path.display()))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
                .collect();
            entries.sort();
            if entries.is_empty() {
                return Err(bad_input(format!("no .avsc files in {}", path.display())));
            }
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    let texts = files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|e| bad_input(format!("cannot read schema {}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    combine(&texts)
}

/// Combines schema documents `(name, text)` into one schema: the document no
/// other one refers to is the top (the last such one if there are several).
pub fn combine(files: &[(String, String)]) -> Result<Schema> {
    let mut docs = Vec::new();
    for (name, text) in files {
        let json: Json = serde_json::from_str(text)
            .map_err(|e| bad_input(format!("schema {name} is not valid JSON: {e}")))?;
        check_names(&json).map_err(|why| bad_input(format!("schema {name}: {why}")))?;
        docs.push((name, json));
    }
    let mut definitions = HashMap::new();
    let mut tops = Vec::new();
    for (name, json) in &docs {
        let defined_here = collect_definitions(json, "", &mut definitions);
        tops.push((name, json, defined_here));
    }
    let mut referenced = HashSet::new();
    for (_, json, _) in &tops {
        collect_references(json, "", &mut referenced);
    }
    // The top is a document no other one refers to; of several (Rubin's
    // folders carry a standalone ssObject beside the alert), the one that
    // refers to the most others, the later one on a tie.
    let (name, top, _) = tops
        .iter()
        .filter(|(_, _, top_name)| top_name.as_ref().is_none_or(|n| !referenced.contains(n)))
        .max_by_key(|(_, json, _)| {
            let mut refers_to = HashSet::new();
            collect_references(json, "", &mut refers_to);
            refers_to.len()
        })
        .or(tops.last())
        .ok_or_else(|| bad_input("no schema files given"))?;
    let mut inlined = HashSet::new();
    let combined = inline(top, "", &definitions, &mut inlined);
    Schema::parse(&combined).map_err(|e| bad_input(format!("schema {name}: {e}")))
}

/// Type names that are not references to named types.
const BUILT_IN_TYPES: [&str; 14] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "error",
    "enum", "fixed", "array", "map",
];

/// Refuses what apache-avro would panic on rather than report: it unwraps
/// names it has not validated (a record named `candidat:` in a mutated
/// container header aborted the process). Every name, namespace, alias and
/// reference in a schema position must be a valid Avro name, and sizes
/// integers. Defaults and other attributes are data, and not looked at.
pub fn check_names(schema: &Json) -> std::result::Result<(), String> {
    match schema {
        Json::String(reference) => check_type_name(reference),
        Json::Array(branches) => branches.iter().try_for_each(check_names),
        Json::Object(object) => {
            check_declared(object)?;
            if let Some(Json::Array(fields)) = object.get("fields") {
                for field in fields {
                    let Json::Object(field) = field else {
                        return Err("a record field is not an object".into());
                    };
                    check_declared(field)?;
                    field.get("type").map_or(Ok(()), check_names)?;
                }
            }
            ["type", "items", "values"]
                .iter()
                .filter_map(|key| object.get(*key))
                .try_for_each(check_names)
        }
        _ => Ok(()),
    }
}

/// The name, namespace, aliases and size an object declares.
fn check_declared(object: &Map<String, Json>) -> std::result::Result<(), String> {
    if let Some(Json::String(name)) = object.get("name") {
        if !is_full_name(name) {
            return Err(format!("{name:?} is not a valid Avro name"));
        }
    }
    if let Some(Json::String(namespace)) = object.get("namespace") {
        if !namespace.is_empty() && !is_full_name(namespace) {
            return Err(format!("{namespace:?} is not a valid Avro namespace"));
        }
    }
    if let Some(aliases) = object.get("aliases") {
        let valid = aliases
            .as_array()
            .is_some_and(|a| a.iter().all(|a| a.as_str().is_some_and(is_full_name)));
        if !valid {
            return Err(format!(
                "aliases {aliases} are not a list of valid Avro names"
            ));
        }
    }
    for key in ["size", "precision", "scale"] {
        if let Some(value) = object.get(key) {
            let integer = value.is_i64()
                || value.is_u64()
                || value.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
            if !integer {
                return Err(format!("{key} {value} is not an integer"));
            }
        }
    }
    Ok(())
}

fn check_type_name(name: &str) -> std::result::Result<(), String> {
    if BUILT_IN_TYPES.contains(&name) || is_full_name(name) {
        Ok(())
    } else {
        Err(format!("type {name:?} is not a valid Avro name"))
    }
}

/// `[namespace.]name` as the Avro specification has it (apache-avro also
/// takes an empty namespace before the dot).
fn is_full_name(text: &str) -> bool {
    let identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let (namespace, name) = text.rsplit_once('.').unwrap_or(("", text));
    identifier(name) && (namespace.is_empty() || namespace.split('.').all(identifier))
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn is_named(object: &Map<String, Json>) -> bool {
    matches!(
        object.get("type").and_then(Json::as_str),
        Some("record" | "error" | "enum" | "fixed")
    )
}

/// The full name and namespace a named type defines.
fn defined_name(object: &Map<String, Json>, namespace: &str) -> Option<(String, String)> {
    let name = object.get("name")?.as_str()?;
    let namespace = object
        .get("namespace")
        .and_then(Json::as_str)
        .unwrap_or(namespace);
    let full = full_name(name, namespace);
    let own_namespace = full.rsplit_once('.').map_or("", |(ns, _)| ns).to_string();
    Some((full, own_namespace))
}

/// Registers every named type in `json`; returns the full name of the top one.
fn collect_definitions(
    json: &Json,
    namespace: &str,
    out: &mut HashMap<String, (Json, String)>,
) -> Option<String> {
    match json {
        Json::Object(object) => {
            let mut inner_ns = namespace.to_string();
            let mut top = None;
            if is_named(object) {
                if let Some((full, own_ns)) = defined_name(object, namespace) {
                    out.entry(full.clone())
                        .or_insert_with(|| (json.clone(), own_ns.clone()));
                    inner_ns = own_ns;
                    top = Some(full);
                }
            }
            for (key, value) in object {
                if matches!(key.as_str(), "type" | "items" | "values" | "fields") {
                    collect_definitions(value, &inner_ns, out);
                }
            }
            top
        }
        Json::Array(items) => {
            for item in items {
                if let Json::Object(field) = item {
                    if let Some(t) = field.get("type") {
                        if field.contains_key("name") && !is_named(field) {
                            collect_definitions(t, namespace, out);
                            continue;
                        }
                    }
                }
                collect_definitions(item, namespace, out);
            }
            None
        }
        _ => None,
    }
}

fn collect_references(json: &Json, namespace: &str, out: &mut HashSet<String>) {
    match json {
        Json::String(name) if !BUILT_IN_TYPES.contains(&name.as_str()) => {
            out.insert(full_name(name, namespace));
        }
        Json::Object(object) => {
            let inner_ns = if is_named(object) {
                defined_name(object, namespace).map_or(namespace.to_string(), |(_, ns)| ns)
            } else {
                namespace.to_string()
            };
            for (key, value) in object {
                match key.as_str() {
                    "type" if !is_named(object) || value.is_object() || value.is_array() => {
                        collect_references(value, &inner_ns, out)
                    }
                    "items" | "values" | "fields" => collect_references(value, &inner_ns, out),
                    _ => {}
                }
            }
        }
        Json::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, namespace, out)),
        _ => {}
    }
}

/// Replaces the first reference to each named type by its definition.
fn inline(
    json: &Json,
    namespace: &str,
    definitions: &HashMap<String, (Json, String)>,
    inlined: &mut HashSet<String>,
) -> Json {
    match json {
        Json::String(name) if !BUILT_IN_TYPES.contains(&name.as_str()) => {
            let full = full_name(name, namespace);
            match definitions.get(&full) {
                Some((definition, def_ns)) if inlined.insert(full.clone()) => {
                    let mut expanded = inline(definition, def_ns, definitions, inlined);
                    // Pin the namespace: the definition now sits inside another one.
                    if let Json::Object(object) = &mut expanded {
                        if !def_ns.is_empty() {
                            object.insert("namespace".into(), Json::String(def_ns.clone()));
                        }
                    }
                    expanded
                }
                _ => Json::String(full),
            }
        }
        Json::Object(object) => {
            let mut inner_ns = namespace.to_string();
            if is_named(object) {
                if let Some((full, own_ns)) = defined_name(object, namespace) {
                    inlined.insert(full);
                    inner_ns = own_ns;
                }
            }
            let mut out = Map::new();
            for (key, value) in object {
                let new_value = match key.as_str() {
                    "type" if !is_named(object) || value.is_object() || value.is_array() => {
                        inline(value, &inner_ns, definitions, inlined)
                    }
                    "items" | "values" | "fields" => inline(value, &inner_ns, definitions, inlined),
                    _ => value.clone(),
                };
                out.insert(key.clone(), new_value);
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| inline(item, namespace, definitions, inlined))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The schema to resolve other writers' data to. ZTF's schemas give nullable
/// fields `["float", "null"]` with a null default, which the Avro
/// specification does not allow (a default matches the first branch) and
/// which strict resolution therefore rejects. Putting `null` first in such
/// unions changes nothing a reader sees (a union prints as its value) and
/// makes the defaults valid. Only for resolution: bare Avro data refers to
/// union branches by position, so it is decoded with the schema unchanged.
pub fn for_resolution(schema: &Schema) -> Result<Schema> {
    let mut json = serde_json::to_value(schema)?;
    null_first_where_default_null(&mut json);
    Ok(Schema::parse(&json)?)
}

/// The reader schema to resolve one writer's alerts to: `reader` (already
/// through [`for_resolution`]) with a field made nullable (default null)
/// where the writer's record of the same name lacks it and it has no
/// default, or where the writer allows null and the reader does not. ZTF
/// added required fields over the years (`nmatches` in 3.0), Rubin made
/// fields required: an older packet then reads them as null, the truth,
/// instead of failing resolution or getting an invented value.
pub fn adapt_to_writer(reader: &Schema, writer: &Schema) -> Result<Schema> {
    let mut writer_fields = HashMap::new();
    collect_record_fields(&serde_json::to_value(writer)?, &mut writer_fields);
    let mut json = serde_json::to_value(reader)?;
    let mut changed = false;
    null_where_absent(&mut json, &writer_fields, &mut changed);
    if !changed {
        return Ok(reader.clone());
    }
    Ok(Schema::parse(&json)?)
}

/// A record's short name (what survives namespace changes between versions).
fn short_name(object: &Map<String, Json>) -> Option<&str> {
    let name = object.get("name")?.as_str()?;
    Some(name.rsplit('.').next().unwrap_or(name))
}

/// Each record's fields (by short record name): whether each allows null.
type RecordFields = HashMap<String, HashMap<String, bool>>;

fn allows_null(field: &Json) -> bool {
    match field.get("type") {
        Some(Json::Array(branches)) => branches.iter().any(|b| b == "null"),
        Some(kind) => kind == "null",
        None => false,
    }
}

fn collect_record_fields(json: &Json, out: &mut RecordFields) {
    match json {
        Json::Object(object) => {
            if let (Some("record"), Some(name), Some(Json::Array(fields))) = (
                object.get("type").and_then(Json::as_str),
                short_name(object),
                object.get("fields"),
            ) {
                let names = fields.iter().filter_map(|f| {
                    let name = f.get("name").and_then(Json::as_str)?;
                    Some((name.to_string(), allows_null(f)))
                });
                out.entry(name.to_string()).or_default().extend(names);
            }
            object.values().for_each(|v| collect_record_fields(v, out));
        }
        Json::Array(items) => items.iter().for_each(|v| collect_record_fields(v, out)),
        _ => {}
    }
}

fn null_where_absent(json: &mut Json, writer: &RecordFields, changed: &mut bool) {
    match json {
        Json::Object(object) => {
            let present = short_name(object).and_then(|n| writer.get(n)).cloned();
            if let (Some(present), Some(Json::Array(fields))) = (present, object.get_mut("fields"))
            {
                for field in fields.iter_mut().filter_map(Json::as_object_mut) {
                    let written = field
                        .get("name")
                        .and_then(Json::as_str)
                        .map(|n| present.get(n).copied());
                    let nullable = allows_null(&Json::Object(field.clone()));
                    let needs_null = match written {
                        Some(None) => !field.contains_key("default"),
                        Some(Some(writer_nullable)) => writer_nullable && !nullable,
                        None => false,
                    };
                    if needs_null {
                        make_nullable(field);
                        *changed = true;
                    }
                }
            }
            object
                .values_mut()
                .for_each(|v| null_where_absent(v, writer, changed));
        }
        Json::Array(items) => items
            .iter_mut()
            .for_each(|v| null_where_absent(v, writer, changed)),
        _ => {}
    }
}

fn make_nullable(field: &mut Map<String, Json>) {
    let null = Json::String("null".into());
    let branches = match field.remove("type") {
        Some(Json::Array(mut branches)) => {
            branches.retain(|b| *b != null);
            branches
        }
        Some(other) => vec![other],
        None => Vec::new(),
    };
    field.insert(
        "type".into(),
        Json::Array(std::iter::once(null).chain(branches).collect()),
    );
    field.insert("default".into(), Json::Null);
}

fn null_first_where_default_null(json: &mut Json) {
    match json {
        Json::Object(object) => {
            if object.get("default") == Some(&Json::Null) {
                if let Some(Json::Array(branches)) = object.get_mut("type") {
                    if let Some(i) = branches.iter().position(|b| b == "null") {
                        let null = branches.remove(i);
                        branches.insert(0, null);
                    }
                }
            }
            object.values_mut().for_each(null_first_where_default_null);
        }
        Json::Array(items) => items.iter_mut().for_each(null_first_where_default_null),
        _ => {}
    }
}

/// Whether a schema refers to itself (a linked list, a tree). Data of such a
/// schema can nest as deep as its bytes allow, so messages carrying one are
/// refused rather than decoded recursively.
pub fn is_recursive(schema: &Schema) -> bool {
    let Ok(resolved) = apache_avro::schema::ResolvedSchema::try_from(schema) else {
        return true; // unresolvable references: refuse too
    };
    fn walk(
        schema: &Schema,
        names: &std::collections::HashMap<apache_avro::schema::Name, &Schema>,
        stack: &mut Vec<String>,
    ) -> bool {
        match schema {
            Schema::Array(a) => walk(&a.items, names, stack),
            Schema::Map(m) => walk(&m.types, names, stack),
            Schema::Union(u) => u.variants().iter().any(|s| walk(s, names, stack)),
            Schema::Record(r) => {
                let name = r.name.fullname(None);
                if stack.contains(&name) {
                    return true;
                }
                stack.push(name);
                let found = r.fields.iter().any(|f| walk(&f.schema, names, stack));
                stack.pop();
                found
            }
            Schema::Ref { name } => match names.get(name) {
                Some(target) => stack.contains(&name.fullname(None)) || walk(target, names, stack),
                None => true,
            },
            _ => false,
        }
    }
    walk(schema, resolved.get_names(), &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_schema_is_the_ztf_alert_layout() {
        let schema = built_in();
        let Schema::Record(record) = &schema else {
            panic!("top is not a record")
        };
        assert_eq!(record.name.fullname(None), "ztf.alert");
        let names: Vec<_> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "schemavsn",
                "publisher",
                "objectId",
                "candid",
                "candidate",
                "prv_candidates",
                "fp_hists",
                "cutoutScience",
                "cutoutTemplate",
                "cutoutDifference"
            ]
        );
    }

    /// The parsing canonical form (names, types, order: what the wire format
    /// depends on) is ZTF's schema 4.02 exactly, so ZTF's bare 4.02 alerts
    /// decode with it. The reference fingerprint is fastavro's, computed from
    /// ZwickyTransientFacility/ztf-avro-alert's schema/ at v4.02.
    #[test]
    fn built_in_schema_is_ztf_4_02_on_the_wire() {
        let fingerprint = built_in().fingerprint::<apache_avro::rabin::Rabin>();
        assert_eq!(fingerprint.to_string(), "bc101b0befbc8242");
    }

    #[test]
    fn order_of_files_does_not_matter() {
        let mut files: Vec<(String, String)> = BUILT_IN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        files.reverse();
        assert_eq!(
            combine(&files).unwrap().canonical_form(),
            built_in().canonical_form()
        );
    }

    #[test]
    fn a_missing_named_type_is_an_error_naming_the_file() {
        let files = vec![("alert.avsc".to_string(), BUILT_IN[4].1.to_string())];
        let error = combine(&files).unwrap_err().to_string();
        assert!(error.contains("alert.avsc"), "{error}");
    }
}

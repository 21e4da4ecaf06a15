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
const BUILT_IN: [(&str, &str); 4] = [
    ("cutout.avsc", include_str!("../../schemas/cutout.avsc")),
    (
        "candidate.avsc",
        include_str!("../../schemas/candidate.avsc"),
    ),
    (
        "prv_candidate.avsc",
        include_str!("../../schemas/prv_candidate.avsc"),
    ),
    ("alert.avsc", include_str!("../../schemas/alert.avsc")),
];

/// The project's alert schema (ZTF alert layout, version 3.3).
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
    let (name, top, _) = tops
        .iter()
        .rev()
        .find(|(_, _, top_name)| top_name.as_ref().is_none_or(|n| !referenced.contains(n)))
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
                "cutoutScience",
                "cutoutTemplate",
                "cutoutDifference"
            ]
        );
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
        let files = vec![("alert.avsc".to_string(), BUILT_IN[3].1.to_string())];
        let error = combine(&files).unwrap_err().to_string();
        assert!(error.contains("alert.avsc"), "{error}");
    }
}

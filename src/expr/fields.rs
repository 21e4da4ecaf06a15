//! Field paths of an expression checked against the Avro schema at
//! start-up: `candidate.rbb` is an error naming `candidate.rb`, not an alert
//! silently never selected.

use std::collections::HashMap;

use apache_avro::schema::{Name, Schema};
use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;

use crate::avro::plan::Need;

/// What is known of a value's type.
#[derive(Debug, Clone)]
enum Shape {
    Record(Vec<(String, Shape)>),
    List(Box<Shape>),
    Map(Box<Shape>),
    Boolean,
    /// A number, string, bytes or symbol: never true or false itself.
    Scalar,
    /// Anything not checked further.
    Other,
}

type Names<'s> = HashMap<Name, &'s Schema>;

fn shape(schema: &Schema, names: &Names<'_>, depth: usize) -> Shape {
    if depth > 32 {
        return Shape::Other;
    }
    match schema {
        Schema::Record(r) => Shape::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), shape(&f.schema, names, depth + 1)))
                .collect(),
        ),
        Schema::Array(a) => Shape::List(Box::new(shape(&a.items, names, depth + 1))),
        Schema::Map(m) => Shape::Map(Box::new(shape(&m.types, names, depth + 1))),
        Schema::Union(u) => {
            let mut branches = u.variants().iter().filter(|s| **s != Schema::Null);
            match (branches.next(), branches.next()) {
                (Some(one), None) => shape(one, names, depth + 1),
                _ => Shape::Other,
            }
        }
        Schema::Ref { name } => names
            .get(name)
            .map_or(Shape::Other, |s| shape(s, names, depth + 1)),
        Schema::Boolean => Shape::Boolean,
        Schema::Null => Shape::Other,
        _ => Shape::Scalar,
    }
}

/// Type names an expression may mention as identifiers (`type(x) == int`).
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

struct Checker {
    top: Vec<(String, Shape)>,
    used: Vec<String>,
}

/// What `expression` reads of each top-level field (only member chains
/// such as `candidate.rb` narrow it; anything else takes the field whole).
pub fn needs(expression: &IdedExpr, top: &[String]) -> Need {
    let mut need = Need::none();
    collect(expression, top, &[], &mut need);
    need
}

/// `a.b.c` as a path when `a` is a top-level field not shadowed by a
/// comprehension variable.
fn chain(e: &IdedExpr, top: &[String], bound: &[&str]) -> Option<Vec<String>> {
    match &e.expr {
        Expr::Ident(name) if top.contains(name) && !bound.contains(&name.as_str()) => {
            Some(vec![name.clone()])
        }
        Expr::Select(select) if !select.test => {
            let mut path = chain(&select.operand, top, bound)?;
            path.push(select.field.clone());
            Some(path)
        }
        _ => None,
    }
}

fn collect(e: &IdedExpr, top: &[String], bound: &[&str], need: &mut Need) {
    if let Some(path) = chain(e, top, bound) {
        need.add(&path);
        return;
    }
    match &e.expr {
        Expr::Ident(name) if top.contains(name) && !bound.contains(&name.as_str()) => {
            need.add(std::slice::from_ref(name))
        }
        Expr::Select(select) => {
            // has(a.b): whether a has b, so b is kept when a is pruned.
            match chain(&select.operand, top, bound) {
                Some(mut path) => {
                    path.push(select.field.clone());
                    need.add(&path)
                }
                None => collect(&select.operand, top, bound, need),
            }
        }
        Expr::Call(call) => {
            for part in call.target.iter().map(|t| &**t).chain(&call.args) {
                collect(part, top, bound, need);
            }
        }
        Expr::Comprehension(c) => {
            collect(&c.iter_range, top, bound, need);
            let mut inner = bound.to_vec();
            inner.push(&c.iter_var);
            inner.push(&c.accu_var);
            if let Some(second) = &c.iter_var2 {
                inner.push(second);
            }
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                collect(part, top, &inner, need);
            }
        }
        Expr::List(list) => list
            .elements
            .iter()
            .for_each(|x| collect(x, top, bound, need)),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    collect(&entry.key, top, bound, need);
                    collect(&entry.value, top, bound, need);
                }
            }
        }
        _ => {}
    }
}

/// The top-level fields an expression that must be true or false
/// (`--where`) reads, or why a path is wrong; an expression whose value can
/// never be (a field that is a number, a record, a list; arithmetic; a
/// constant) is refused too.
pub fn check_condition(expression: &IdedExpr, schema: &Schema) -> Result<Vec<String>, String> {
    let (used, root) = checked(expression, schema)?;
    let what = match (&expression.expr, root) {
        (Expr::Literal(cel::common::ast::LiteralValue::Boolean(_)), _) => None,
        (Expr::Literal(_), _) => Some("a constant"),
        (Expr::List(_), _) | (_, Shape::List(_)) => Some("a list"),
        (Expr::Map(_), _) | (_, Shape::Map(_)) => Some("a map"),
        (_, Shape::Record(_)) => Some("a record"),
        (_, Shape::Scalar) => Some("a number or text"),
        (Expr::Call(call), _) if ARITHMETIC.contains(&call.func_name.as_str()) => Some("a number"),
        _ => None,
    };
    match what {
        Some(what) => Err(format!(
            "is {what}, never true or false: compare it (e.g. candidate.magpsf < 18.0)"
        )),
        None => Ok(used),
    }
}

/// The top-level fields a key (`--key`, `--dedupe-key`, `--visit-key`,
/// `--pace`) reads, or why a path is wrong: one value per alert, so a record, list or
/// map is refused.
pub fn check_key(expression: &IdedExpr, schema: &Schema) -> Result<Vec<String>, String> {
    let (used, root) = checked(expression, schema)?;
    let what = match root {
        Shape::Record(_) => "a record",
        Shape::List(_) => "a list",
        Shape::Map(_) => "a map",
        _ => return Ok(used),
    };
    Err(format!(
        "is {what}, not one value per alert: name a field inside it (e.g. candidate.candid)"
    ))
}

/// Functions whose value is a number.
const ARITHMETIC: [&str; 13] = [
    "_+_", "_-_", "_*_", "_/_", "_%_", "-_", "size", "abs", "sqrt", "log10", "pow", "min", "max",
];

fn checked(expression: &IdedExpr, schema: &Schema) -> Result<(Vec<String>, Shape), String> {
    let resolved =
        apache_avro::schema::ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
    let Shape::Record(top) = shape(schema, resolved.get_names(), 0) else {
        return Err("the reader schema is not a record".into());
    };
    let mut checker = Checker {
        top,
        used: Vec::new(),
    };
    let (root, _) = checker.walk(expression, &HashMap::new())?;
    Ok((checker.used, root))
}

impl Checker {
    /// The shape and path of an expression's value, checking every path.
    fn walk(
        &mut self,
        e: &IdedExpr,
        scope: &HashMap<String, Shape>,
    ) -> Result<(Shape, String), String> {
        let other = |path: String| Ok((Shape::Other, path));
        match &e.expr {
            Expr::Ident(name) => {
                if let Some(bound) = scope.get(name) {
                    return Ok((bound.clone(), name.clone()));
                }
                if let Some((_, s)) = self.top.iter().find(|(n, _)| n == name) {
                    if !self.used.contains(name) {
                        self.used.push(name.clone());
                    }
                    return Ok((s.clone(), name.clone()));
                }
                if TYPE_NAMES.contains(&name.as_str()) {
                    return other(name.clone());
                }
                Err(unknown(
                    name,
                    "the alert",
                    self.top.iter().map(|(n, _)| n.as_str()),
                ))
            }
            Expr::Select(select) => {
                let (inner, path) = self.walk(&select.operand, scope)?;
                let path = format!("{path}.{}", select.field);
                match inner {
                    Shape::Record(fields) => {
                        match fields.iter().find(|(n, _)| *n == select.field) {
                            Some((_, s)) => Ok((s.clone(), path)),
                            None => Err(unknown(
                                &path,
                                &path[..path.len() - select.field.len() - 1],
                                fields.iter().map(|(n, _)| n.as_str()),
                            )),
                        }
                    }
                    Shape::Map(values) => Ok((*values, path)),
                    _ => other(path),
                }
            }
            Expr::Call(call) => {
                let mut shapes = Vec::new();
                if let Some(target) = &call.target {
                    shapes.push(self.walk(target, scope)?);
                }
                for arg in &call.args {
                    shapes.push(self.walk(arg, scope)?);
                }
                match (call.func_name.as_str(), shapes.first()) {
                    ("_[_]", Some((Shape::List(item) | Shape::Map(item), path))) => {
                        Ok(((**item).clone(), format!("{path}[]")))
                    }
                    _ => other(call.func_name.clone()),
                }
            }
            Expr::Comprehension(c) => {
                let (range, path) = self.walk(&c.iter_range, scope)?;
                let item = match range {
                    Shape::List(item) => *item,
                    _ => Shape::Other,
                };
                let mut inner = scope.clone();
                inner.insert(c.iter_var.clone(), item);
                if let Some(second) = &c.iter_var2 {
                    inner.insert(second.clone(), Shape::Other);
                }
                inner.insert(c.accu_var.clone(), Shape::Other);
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part, &inner)?;
                }
                other(path)
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.walk(element, scope)?;
                }
                other("a list".into())
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.walk(&entry.key, scope)?;
                        self.walk(&entry.value, scope)?;
                    }
                }
                other("a map".into())
            }
            _ => other("a literal".into()),
        }
    }
}

/// "no field X in Y; closest: a, b, c".
fn unknown<'a>(path: &str, within: &str, names: impl Iterator<Item = &'a str>) -> String {
    let wanted = path.rsplit('.').next().unwrap_or(path);
    let mut scored: Vec<(usize, &str)> = names.map(|n| (distance(wanted, n), n)).collect();
    scored.sort();
    let closest: Vec<String> = scored
        .iter()
        .take(3)
        .map(|(_, n)| {
            if within == "the alert" {
                n.to_string()
            } else {
                format!("{within}.{n}")
            }
        })
        .collect();
    format!(
        "no field {path} in {within} of the schema; closest: {}",
        closest.join(", ")
    )
}

/// Levenshtein distance, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

//! Alert selection with CEL (the Common Expression Language), through the
//! `cel` crate, over the decoded alert as `print` shows it: its top-level
//! fields are variables (`candidate.rb >= 0.65 && candidate.nbad == 0`).
//!
//! Checked at start-up, before anything is consumed: the syntax (errors give
//! the position) and every field path against the reader schema (an unknown
//! name is reported with the closest real names). At run time a null or
//! absent field makes its comparison an error, and an alert whose expression
//! ends in an error or a non-true value is not selected: never an error per
//! alert. Numbers compare across int and double.

mod fields;
mod math;

use crate::avro::plan::Need;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use cel::objects::{Key, Map};
use cel::{Context, Program, Value};

use crate::exit::bad_input;

/// An expression compiled and checked against the reader schema.
struct Compiled {
    text: String,
    program: Program,
    /// What the expression reads of an alert: only that is decoded and
    /// converted (`candidate.rb` is one field of 100).
    need: Need,
    context: Context<'static, 'static>,
}

impl Compiled {
    /// Compiles `text`, given as `flag`, and checks its field paths against `schema`.
    fn new(flag: &str, text: &str, schema: &Schema) -> Result<Self> {
        let program = Program::compile(text).map_err(|e| {
            let first = e.errors.first();
            let at = first.map_or(String::new(), |e| format!(" at column {}", e.pos.1 + 1));
            let why = first.map_or(e.to_string(), |e| e.msg.clone());
            // The parser's message starts with what this line already says.
            let why = why
                .strip_prefix("Syntax error: ")
                .unwrap_or(&why)
                .to_string();
            bad_input(format!("{flag} {text:?}: syntax error{at}: {why}"))
        })?;
        let check = if flag == "--where" {
            fields::check_condition
        } else {
            fields::check_key
        };
        let variables = check(program.expression(), schema)
            .map_err(|why| bad_input(format!("{flag} {text:?}: {why}")))?;
        let need = fields::needs(program.expression(), &variables);
        let mut context = Context::default();
        math::register(&mut context);
        Ok(Self {
            text: text.to_string(),
            program,
            need,
            context,
        })
    }

    /// The expression's value for an alert (a record value); `None` when
    /// it ends in an error (a null or absent field).
    fn evaluate(&self, alert: &Avro) -> Option<Value> {
        let (Avro::Record(fields), Need::Fields(top)) = (alert, &self.need) else {
            // An expression that reads no field (`true`) needs no scope.
            return self.program.execute(&self.context).ok();
        };
        let mut scope = self.context.new_inner_scope();
        for (name, need) in top {
            let value = fields
                .iter()
                .find(|(k, _)| k == name)
                .map_or(Value::Null, |(_, v)| pruned(v, need));
            scope.add_variable_from_value(name.as_str(), value);
        }
        self.program.execute(&scope).ok()
    }
}

/// A compiled `--where` expression.
pub struct Selector(Compiled);

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Selector({:?})", self.0.text)
    }
}

impl Selector {
    /// Compiles `text` and checks its field paths against `schema`.
    pub fn compile(text: &str, schema: &Schema) -> Result<Self> {
        Compiled::new("--where", text, schema).map(Self)
    }

    /// What the expression reads of an alert (give it to `Decoder::fields`).
    pub fn need(&self) -> &Need {
        &self.0.need
    }

    /// Whether an alert (a record value) is selected.
    pub fn selects(&self, alert: &Avro) -> bool {
        matches!(self.0.evaluate(alert), Some(Value::Bool(true)))
    }
}

/// What an expression names an alert by (its visit, its object), as a key
/// to count or remember it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlertKey {
    Int(i64),
    /// A double's bits: equal doubles, equal keys.
    Float(u64),
    Text(Box<str>),
    Bytes(Box<[u8]>),
    Bool(bool),
}

/// A compiled key expression (`--visit-key diaSource.visit`, `--dedupe-key objectId`).
pub struct KeyOf(Compiled);

impl std::fmt::Debug for KeyOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyOf({:?})", self.0.text)
    }
}

impl KeyOf {
    /// Compiles `text`, given as `flag`, and checks its field paths against `schema`.
    pub fn compile(flag: &str, text: &str, schema: &Schema) -> Result<Self> {
        Compiled::new(flag, text, schema).map(Self)
    }

    /// What the expression reads of an alert.
    pub fn need(&self) -> &Need {
        &self.0.need
    }

    /// The alert's key; `None` when the expression is null or fails on it,
    /// or its value is a list or map.
    pub fn of(&self, alert: &Avro) -> Option<AlertKey> {
        match self.0.evaluate(alert)? {
            Value::Int(i) => Some(AlertKey::Int(i)),
            Value::UInt(u) => {
                Some(i64::try_from(u).map_or(AlertKey::Float((u as f64).to_bits()), AlertKey::Int))
            }
            // Whole doubles (exact below 2^53) key as the integer they equal.
            Value::Float(f) if f.fract() == 0.0 && f.abs() < (1u64 << 53) as f64 => {
                Some(AlertKey::Int(f as i64))
            }
            Value::Float(f) => Some(AlertKey::Float(f.to_bits())),
            Value::String(s) => Some(AlertKey::Text(s.as_str().into())),
            Value::Bytes(b) => Some(AlertKey::Bytes(b.as_slice().into())),
            Value::Bool(b) => Some(AlertKey::Bool(b)),
            _ => None,
        }
    }
}

/// The parts of a value an expression reads, as CEL sees them: a record
/// with only the fields named in `need`.
fn pruned(value: &Avro, need: &Need) -> Value {
    match (value, need) {
        (Avro::Union(_, inner), _) => pruned(inner, need),
        (Avro::Record(fields), Need::Fields(wanted)) => {
            let map: HashMap<Key, Value> = fields
                .iter()
                .filter_map(|(k, v)| {
                    let need = wanted.get(k)?;
                    Some((Key::String(Arc::new(k.clone())), pruned(v, need)))
                })
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
        _ => to_cel(value),
    }
}

/// An Avro value as CEL sees it: records are maps, unions their value.
fn to_cel(value: &Avro) -> Value {
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::Int(i64::from(*i)),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => Value::Int(*i),
        Avro::Float(f) => Value::Float(f64::from(*f)),
        Avro::Double(f) => Value::Float(*f),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(Arc::new(s.clone())),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::Bytes(Arc::new(b.clone())),
        Avro::Union(_, inner) => to_cel(inner),
        Avro::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Avro::Map(entries) => map(entries.iter().map(|(k, v)| (k.as_str(), v))),
        Avro::Record(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), v))),
        Avro::Uuid(u) => Value::String(Arc::new(u.to_string())),
        _ => Value::Null,
    }
}

fn map<'a>(entries: impl Iterator<Item = (&'a str, &'a Avro)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), to_cel(v)))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rb: Option<f32>, nbad: i32, fwhm: f32, magdiff: f32) -> Avro {
        let rb = match rb {
            Some(v) => Avro::Union(0, Box::new(Avro::Float(v))),
            None => Avro::Union(1, Box::new(Avro::Null)),
        };
        Avro::Record(vec![
            ("candid".into(), Avro::Long(7)),
            (
                "candidate".into(),
                Avro::Record(vec![
                    ("rb".into(), rb),
                    ("nbad".into(), Avro::Union(0, Box::new(Avro::Int(nbad)))),
                    ("fwhm".into(), Avro::Union(0, Box::new(Avro::Float(fwhm)))),
                    ("elong".into(), Avro::Union(0, Box::new(Avro::Float(1.0)))),
                    (
                        "magdiff".into(),
                        Avro::Union(0, Box::new(Avro::Float(magdiff))),
                    ),
                ]),
            ),
            (
                "prv_candidates".into(),
                Avro::Array(vec![Avro::Null, Avro::Null]),
            ),
        ])
    }

    const PURITY: &str = "candidate.rb >= 0.65 && candidate.nbad == 0 && candidate.fwhm <= 5 \
                          && candidate.elong <= 1.2 && abs(candidate.magdiff) <= 0.1";

    #[test]
    fn the_ztf_purity_cut() {
        let schema = crate::avro::schema::built_in();
        let cut = Selector::compile(PURITY, &schema).unwrap();
        assert!(cut.selects(&alert(Some(0.9), 0, 2.0, -0.05)));
        assert!(!cut.selects(&alert(Some(0.5), 0, 2.0, -0.05)));
        assert!(!cut.selects(&alert(Some(0.9), 1, 2.0, -0.05)));
        assert!(!cut.selects(&alert(Some(0.9), 0, 2.0, -0.5)));
        // A null field: not selected, no error.
        assert!(!cut.selects(&alert(None, 0, 2.0, 0.0)));
        let either =
            Selector::compile("candidate.rb > 0.5 || candidate.nbad == 0", &schema).unwrap();
        assert!(
            either.selects(&alert(None, 0, 2.0, 0.0)),
            "error || true is true in CEL"
        );
    }

    #[test]
    fn math_and_histories() {
        let schema = crate::avro::schema::built_in();
        for (text, expected) in [
            ("size(prv_candidates) == 2", true),
            ("sqrt(candidate.fwhm) == 2.0", true),
            ("log10(100.0) == 2.0 && log10(100) == 2.0", true),
            ("pow(candidate.fwhm, 2) == 16.0", true),
            (
                "min(candidate.fwhm, 3) == 3 && max(1, candidate.fwhm) == 4.0",
                true,
            ),
            ("abs(-3) == 3 && abs(-2.5) == 2.5", true),
            ("candid == 7.0", true),
        ] {
            let selector = Selector::compile(text, &schema).unwrap();
            assert_eq!(
                selector.selects(&alert(Some(0.9), 0, 4.0, 0.0)),
                expected,
                "{text}"
            );
        }
    }

    /// Only member chains narrow what is converted; anything else takes the
    /// field whole, and a comprehension variable never counts as a field.
    #[test]
    fn needs_follow_member_chains() {
        let program = Program::compile(
            "candidate.rb > 0.5 && has(candidate.fwhm) && size(prv_candidates) > 0 \
             && [1].exists(candid, candid > 0)",
        )
        .unwrap();
        let top = vec![
            "candidate".to_string(),
            "prv_candidates".to_string(),
            "candid".to_string(),
        ];
        let Need::Fields(needs) = fields::needs(program.expression(), &top) else {
            panic!()
        };
        let Some(Need::Fields(candidate)) = needs.get("candidate") else {
            panic!("{needs:?}")
        };
        assert_eq!(candidate.get("rb"), Some(&Need::All));
        assert_eq!(needs.get("prv_candidates"), Some(&Need::All));
        assert_eq!(needs.get("candid"), None, "shadowed by the loop variable");
        // The pruned selector still selects as the whole one does.
        let schema = crate::avro::schema::built_in();
        let cut = Selector::compile(PURITY, &schema).unwrap();
        assert!(matches!(cut.need(), Need::Fields(top) if top.len() == 1));
        assert!(cut.selects(&alert(Some(0.9), 0, 2.0, -0.05)));
    }

    /// Keys name visits and objects: numbers that are equal are one key,
    /// a null field is no key, and unknown names fail at start.
    #[test]
    fn keys_of_alerts() {
        let schema = crate::avro::schema::built_in();
        let key = |text: &str| KeyOf::compile("--dedupe-key", text, &schema).unwrap();
        let a = alert(Some(0.9), 0, 4.0, 0.0);
        assert_eq!(key("candid").of(&a), Some(AlertKey::Int(7)));
        assert_eq!(
            key("candidate.fwhm").of(&a),
            Some(AlertKey::Int(4)),
            "4.0 is 4"
        );
        assert_eq!(
            key("candidate.fwhm / 8.0").of(&a),
            Some(AlertKey::Float(0.5f64.to_bits()))
        );
        assert_eq!(
            key("string(candid) + 'x'").of(&a),
            Some(AlertKey::Text("7x".into()))
        );
        assert_eq!(
            key("candidate.rb").of(&alert(None, 0, 4.0, 0.0)),
            None,
            "null"
        );
        let error = KeyOf::compile("--key", "prv_candidates", &schema).unwrap_err();
        assert!(
            error.to_string().contains("is a list, not one value"),
            "{error}"
        );
        let error = KeyOf::compile("--key", "candidate", &schema).unwrap_err();
        assert!(error.to_string().contains("is a record"), "{error}");
        let error = KeyOf::compile("--visit-key", "candidate.jdd", &schema).unwrap_err();
        assert!(
            error.to_string().contains("--visit-key") && error.to_string().contains("jd"),
            "{error}"
        );
    }

    #[test]
    fn unknown_fields_and_syntax_errors_fail_at_start() {
        let schema = crate::avro::schema::built_in();
        let error = Selector::compile("candidate.rbb > 0.5", &schema)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("candidate.rbb") && error.contains("rb"),
            "{error}"
        );
        assert_eq!(
            crate::exit::code_of(&Selector::compile("candidat.rb > 1", &schema).unwrap_err()),
            2
        );
        let error = Selector::compile("candidat.rb > 1", &schema)
            .unwrap_err()
            .to_string();
        assert!(error.contains("candidate"), "{error}");
        let error = Selector::compile("candidate.rb >", &schema)
            .unwrap_err()
            .to_string();
        assert!(error.contains("syntax error at column"), "{error}");
        assert!(Selector::compile("prv_candidates.exists(p, p.magpsf < 18.0)", &schema).is_ok());
        let error = Selector::compile("prv_candidates.exists(p, p.magpfs < 18.0)", &schema)
            .unwrap_err()
            .to_string();
        assert!(error.contains("magpsf"), "{error}");
    }
}

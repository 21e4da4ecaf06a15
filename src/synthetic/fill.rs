//! Any version of an alert schema, filled by field name. A schema is
//! compiled once into a [`Template`]: each field the simulator knows (by its
//! name, in the record it sits in) gets a [`Role`]; every other field gets
//! its default, else null where nullable, else a valid value of its type.
//! Encoding then writes Avro binary straight from the simulator's numbers,
//! with no value tree in between, so a schema version the code has never
//! seen still works as long as the names it knows keep their meaning.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use apache_avro::schema::{Name, RecordSchema, Schema};

use crate::avro::varint::write_long;

/// Which record of the alert a field sits in: the names inside mean
/// different things in each (`ra` of the alert's detection, of a history
/// entry, of the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Alert,
    /// The alert's own detection (ZTF candidate, Rubin diaSource).
    Detection,
    /// One earlier detection or upper limit (prv_candidates, prvDiaSources).
    Previous,
    /// One forced-photometry point (fp_hists, prvDiaForcedSources).
    Forced,
    /// Rubin's diaObject.
    Object,
    /// Rubin's ssSource / ssObject; ZTF keeps these in the candidate.
    SolarSystem,
    /// A ZTF cutout record {fileName, stampData}.
    Cutout(Stamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stamp {
    Science,
    Template,
    Difference,
}

/// What a field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A quantity of the record it sits in, by a name the survey knows.
    Value(Quantity),
    /// A nested record (or array of records, or nullable record) of another scope.
    Nested(Scope),
}

/// The quantities the simulator makes; each survey names them its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    AlertId,
    SourceId,
    ObjectId,
    SsObjectId,
    Visit,
    Detector,
    Ra,
    Dec,
    RaErr,
    DecErr,
    Jd,
    Mjd,
    Band,
    BandId,
    Flux,
    FluxErr,
    Mag,
    MagErr,
    LimitingMag,
    IsDiffPos,
    Reliability,
    ZeroPoint,
    Field,
    ProgramId,
    ProcessingId,
    SsDistance,
    SsMag,
    SsName,
    NDetections,
    FirstJd,
    LastJd,
    Fwhm,
    Elong,
    MagDiff,
    BadPixels,
    ForcedFlux,
    /// When the alert was made: microseconds since the epoch, or MJD (TAI).
    ProcessedMicros,
    ProcessedMjd,
    Snr,
    ForcedFluxErr,
    StampData(Stamp),
    StampName(Stamp),
    SchemaVersion,
}

/// A value for one field, as the simulator has it.
#[derive(Debug, Clone, PartialEq)]
pub enum Q<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(std::borrow::Cow<'a, str>),
    Bytes(&'a [u8]),
}

/// Where the simulator's numbers come from while a record is written.
pub trait Source {
    /// The value of `quantity` in record `index` of `scope`.
    fn value(&self, scope: Scope, index: usize, quantity: Quantity) -> Q<'_>;
    /// How many records of `scope` there are (1 for a plain record; 0 writes
    /// null for a nullable record, or an empty array).
    fn count(&self, scope: Scope) -> usize;
}

/// A survey's names: the role of field `name` in a record of `scope`.
pub type Names = fn(Scope, &str) -> Option<Role>;

#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<String>),
    Array(Box<Node>),
    Map,
    Union(Vec<Node>),
    Record(Vec<FieldNode>),
}

#[derive(Debug, Clone)]
struct FieldNode {
    node: Node,
    fill: Fill,
}

#[derive(Debug, Clone)]
enum Fill {
    Role(Role),
    /// Pre-encoded default, null or zero value.
    Fixed(Vec<u8>),
}

/// A schema compiled against a survey's names.
#[derive(Debug, Clone)]
pub struct Template {
    root: Vec<FieldNode>,
    /// Every (scope, quantity) the schema has a field for.
    found: Vec<(Scope, Quantity)>,
}

impl Template {
    pub fn compile(schema: &Schema, names: Names) -> Result<Self> {
        let resolved = apache_avro::schema::ResolvedSchema::try_from(schema)
            .map_err(|e| anyhow!("the schema does not resolve: {e}"))?;
        let mut compiler = Compiler {
            names: resolved.get_names(),
            survey: names,
            found: Vec::new(),
            depth: 0,
        };
        let Schema::Record(record) = schema else {
            return Err(anyhow!("the alert schema is not a record"));
        };
        let root = compiler.record(record, Scope::Alert)?;
        Ok(Self {
            root,
            found: compiler.found,
        })
    }

    /// Whether the schema has a field for `quantity` in `scope`.
    pub fn has(&self, scope: Scope, quantity: Quantity) -> bool {
        self.found.contains(&(scope, quantity))
    }

    /// Appends the alert's bare Avro encoding.
    pub fn encode(&self, source: &dyn Source, out: &mut Vec<u8>) {
        write_record(&self.root, Scope::Alert, 0, source, out);
    }
}

struct Compiler<'s> {
    names: &'s HashMap<Name, &'s Schema>,
    survey: Names,
    found: Vec<(Scope, Quantity)>,
    depth: usize,
}

impl Compiler<'_> {
    fn record(&mut self, record: &RecordSchema, scope: Scope) -> Result<Vec<FieldNode>> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(anyhow!("the schema nests records more than 32 deep"));
        }
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let role = (self.survey)(scope, &field.name);
            let node = match role {
                Some(Role::Nested(inner)) => self.node(&field.schema, Some(inner))?,
                _ => self.node(&field.schema, None)?,
            };
            let fill = match role {
                Some(role) if fits(&node, role) => {
                    if let Role::Value(q) = role {
                        self.found.push((scope, q));
                    }
                    Fill::Role(role)
                }
                _ => Fill::Fixed(fallback(&node, field.default.as_ref())),
            };
            fields.push(FieldNode { node, fill });
        }
        self.depth -= 1;
        Ok(fields)
    }

    /// A field's type; records inside take the scope `inner` (or are filled
    /// with their defaults when the survey gives them none).
    fn node(&mut self, schema: &Schema, inner: Option<Scope>) -> Result<Node> {
        Ok(match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes | Schema::Uuid | Schema::BigDecimal => Node::Bytes,
            Schema::String => Node::String,
            Schema::Fixed(f) => Node::Fixed(f.size),
            Schema::Decimal(d) => self.node(&d.inner, inner)?,
            Schema::Duration => Node::Fixed(12),
            Schema::Enum(e) => Node::Enum(e.symbols.clone()),
            Schema::Array(a) => Node::Array(Box::new(self.node(&a.items, inner)?)),
            Schema::Map(_) => Node::Map,
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(|v| self.node(v, inner))
                    .collect::<Result<_>>()?,
            ),
            Schema::Record(r) => match inner {
                Some(scope) => Node::Record(self.record(r, scope)?),
                // A record the survey does not fill: every field by default.
                None => Node::Record(self.record_defaults(r)?),
            },
            Schema::Ref { name } => {
                let target = self
                    .names
                    .get(name)
                    .ok_or_else(|| anyhow!("the schema names {name} but never defines it"))?;
                self.node(target, inner)?
            }
        })
    }

    fn record_defaults(&mut self, record: &RecordSchema) -> Result<Vec<FieldNode>> {
        let survey = self.survey;
        self.survey = |_, _| None;
        let fields = self.record(record, Scope::Alert);
        self.survey = survey;
        fields
    }
}

/// Whether a field of this type can carry the role.
fn fits(node: &Node, role: Role) -> bool {
    match (node, role) {
        (Node::Union(variants), _) => variants.iter().any(|v| fits(v, role)),
        (Node::Record(_) | Node::Array(_), Role::Nested(_)) => true,
        (_, Role::Nested(_)) => false,
        (Node::Record(_) | Node::Array(_) | Node::Map | Node::Null, Role::Value(_)) => false,
        _ => true,
    }
}

/// The bytes of a field no role fills: its default where it is a plain
/// value of the field's (first) type, else null where nullable, else zero.
fn fallback(node: &Node, default: Option<&serde_json::Value>) -> Vec<u8> {
    let mut out = Vec::new();
    let q = match default {
        Some(serde_json::Value::Bool(b)) => Q::Bool(*b),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Q::Int)
            .unwrap_or_else(|| Q::Num(n.as_f64().unwrap_or(0.0))),
        Some(serde_json::Value::String(s)) => Q::Str(s.clone().into()),
        _ => Q::Null,
    };
    // An Avro default is of a union's first branch.
    let first = match (node, default.is_some()) {
        (Node::Union(v), true) if !v.is_empty() => {
            write_long(&mut out, 0);
            &v[0]
        }
        _ => node,
    };
    if !write_value(first, &q, &mut out) {
        out.clear();
        write_zero(node, &mut out);
    }
    out
}

/// A valid value of the type: null where allowed, else zero, empty or the first symbol.
fn write_zero(node: &Node, out: &mut Vec<u8>) {
    match node {
        Node::Null => {}
        Node::Boolean => out.push(0),
        Node::Int | Node::Long | Node::Bytes | Node::String | Node::Enum(_) => out.push(0),
        Node::Array(_) | Node::Map => out.push(0),
        Node::Float => out.extend_from_slice(&[0; 4]),
        Node::Double => out.extend_from_slice(&[0; 8]),
        Node::Fixed(n) => out.extend(std::iter::repeat_n(0, *n)),
        Node::Union(variants) => {
            let at = variants
                .iter()
                .position(|v| matches!(v, Node::Null))
                .unwrap_or(0);
            write_long(out, at as i64);
            if let Some(v) = variants.get(at) {
                write_zero(v, out);
            }
        }
        Node::Record(fields) => {
            for f in fields {
                match &f.fill {
                    Fill::Fixed(bytes) => out.extend_from_slice(bytes),
                    Fill::Role(_) => write_zero(&f.node, out),
                }
            }
        }
    }
}

/// Writes `q` as `node`; false when it does not fit (nothing written then
/// matters: the caller falls back).
fn write_value(node: &Node, q: &Q<'_>, out: &mut Vec<u8>) -> bool {
    match (node, q) {
        (Node::Null, Q::Null) => true,
        (Node::Boolean, Q::Bool(b)) => {
            out.push(u8::from(*b));
            true
        }
        (Node::Int, Q::Int(i)) => {
            write_long(out, i64::from(*i as i32));
            true
        }
        (Node::Long, Q::Int(i)) => {
            write_long(out, *i);
            true
        }
        (Node::Int | Node::Long, Q::Num(x)) if x.is_finite() => {
            write_value(node, &Q::Int(x.round() as i64), out)
        }
        (Node::Float, Q::Num(x)) => {
            out.extend_from_slice(&(*x as f32).to_le_bytes());
            true
        }
        (Node::Double, Q::Num(x)) => {
            out.extend_from_slice(&x.to_le_bytes());
            true
        }
        (Node::Float | Node::Double, Q::Int(i)) => write_value(node, &Q::Num(*i as f64), out),
        (Node::String, Q::Str(s)) => {
            write_long(out, s.len() as i64);
            out.extend_from_slice(s.as_bytes());
            true
        }
        (Node::String, Q::Int(i)) => write_value(node, &Q::Str(i.to_string().into()), out),
        (Node::String, Q::Bool(b)) => {
            write_value(node, &Q::Str(if *b { "t" } else { "f" }.into()), out)
        }
        (Node::Bytes, Q::Bytes(b)) => {
            write_long(out, b.len() as i64);
            out.extend_from_slice(b);
            true
        }
        (Node::Enum(symbols), Q::Str(s)) => match symbols.iter().position(|x| x == s) {
            Some(i) => {
                write_long(out, i as i64);
                true
            }
            None => false,
        },
        (Node::Union(variants), _) => {
            // The closest kind first: a number goes to a float branch before an int one.
            let branch = variants
                .iter()
                .position(|v| accepts(v, q))
                .or_else(|| variants.iter().position(|v| converts(v, q)));
            match branch {
                Some(i) => {
                    write_long(out, i as i64);
                    write_value(&variants[i], q, out)
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// Whether `q` is written in this branch of a union as it is.
fn accepts(node: &Node, q: &Q<'_>) -> bool {
    matches!(
        (node, q),
        (Node::Null, Q::Null)
            | (Node::Boolean, Q::Bool(_))
            | (Node::Int | Node::Long, Q::Int(_))
            | (Node::Float | Node::Double, Q::Num(_))
            | (Node::String | Node::Enum(_), Q::Str(_))
            | (Node::Bytes, Q::Bytes(_))
    )
}

/// Whether `q` can be written in this branch of a union converted (a
/// count computed as a number into `["null", "int"]`, as ZTF's `nbad`).
fn converts(node: &Node, q: &Q<'_>) -> bool {
    match (node, q) {
        (Node::Float | Node::Double, Q::Int(_)) => true,
        (Node::Int | Node::Long, Q::Num(x)) => x.is_finite(),
        _ => false,
    }
}

fn write_record(
    fields: &[FieldNode],
    scope: Scope,
    index: usize,
    source: &dyn Source,
    out: &mut Vec<u8>,
) {
    for field in fields {
        match field.fill {
            Fill::Fixed(ref bytes) => out.extend_from_slice(bytes),
            Fill::Role(Role::Value(quantity)) => {
                let q = source.value(scope, index, quantity);
                let mark = out.len();
                if !write_value(&field.node, &q, out) {
                    out.truncate(mark);
                    write_zero(&field.node, out);
                }
            }
            Fill::Role(Role::Nested(inner)) => write_nested(&field.node, inner, source, out),
        }
    }
}

/// A nested record, array of records, or a union holding either.
fn write_nested(node: &Node, scope: Scope, source: &dyn Source, out: &mut Vec<u8>) {
    let count = source.count(scope);
    match node {
        Node::Record(fields) if count > 0 => write_record(fields, scope, 0, source, out),
        Node::Array(items) => {
            let Node::Record(fields) = items.as_ref() else {
                write_zero(node, out);
                return;
            };
            if count > 0 {
                write_long(out, count as i64);
                for i in 0..count {
                    write_record(fields, scope, i, source, out);
                }
            }
            out.push(0);
        }
        Node::Union(variants) => {
            let want_null = count == 0;
            let at = variants.iter().position(|v| match v {
                Node::Null => want_null,
                Node::Record(_) | Node::Array(_) => !want_null,
                _ => false,
            });
            match at {
                Some(i) => {
                    write_long(out, i as i64);
                    write_nested(&variants[i], scope, source, out);
                }
                None => write_zero(node, out),
            }
        }
        _ => write_zero(node, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl Source for Nothing {
        fn value(&self, _: Scope, _: usize, quantity: Quantity) -> Q<'_> {
            match quantity {
                Quantity::Ra | Quantity::Dec | Quantity::Jd | Quantity::Flux => Q::Num(1.5),
                Quantity::ObjectId => Q::Str("ZTF26aaaaaaa".into()),
                Quantity::SourceId => Q::Int(7),
                _ => Q::Null,
            }
        }

        fn count(&self, scope: Scope) -> usize {
            match scope {
                Scope::Previous | Scope::Forced => 2,
                _ => 1,
            }
        }
    }

    /// Every field, filled or not, decodes with the schema it was written for.
    #[test]
    fn what_is_written_decodes_with_the_schema() {
        let schema = crate::avro::schema::built_in();
        let template = Template::compile(&schema, super::super::names::ztf).unwrap();
        let mut out = Vec::new();
        template.encode(&Nothing, &mut out);
        let mut rest = out.as_slice();
        let value = apache_avro::from_avro_datum(&schema, &mut rest, None).unwrap();
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record")
        };
        assert_eq!(
            fields[2].1,
            apache_avro::types::Value::String("ZTF26aaaaaaa".into())
        );
        assert!(template.has(Scope::Detection, Quantity::Ra));
        assert!(!template.has(Scope::Detection, Quantity::Visit));
    }

    /// A count computed as a number fills a nullable int (ZTF's `nbad`), and
    /// a number prefers a float branch to an int one.
    #[test]
    fn a_number_fills_the_closest_branch_of_a_union() {
        let nullable_int = Node::Union(vec![Node::Null, Node::Int]);
        let mut out = Vec::new();
        assert!(write_value(&nullable_int, &Q::Num(2.0), &mut out));
        assert_eq!(out, [2, 4], "branch 1, zigzag 2");
        let int_or_float = Node::Union(vec![Node::Int, Node::Float]);
        out.clear();
        assert!(write_value(&int_or_float, &Q::Num(0.5), &mut out));
        assert_eq!(out[0], 2, "the float branch");
        out.clear();
        assert!(!write_value(&nullable_int, &Q::Num(f64::NAN), &mut out));
    }
}

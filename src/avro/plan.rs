//! A schema compiled once into a [`Plan`] and walked over bare Avro: straight
//! to JSON without building a value tree (the fast path of `print`), or only
//! checked (the decode gate, before apache-avro reads anything). JSON comes
//! out in the shape of `json.rs`, which stays the reference: tests check that
//! both agree byte for byte.
//!
//! Untrusted input: every length is checked against the bytes that remain, so
//! a payload claiming a 2^62-element array or string allocates nothing; items
//! of zero size (nulls) draw on a budget per alert; nesting is bounded by the
//! schema, which is never recursive.

use apache_avro::schema::{Schema, UnionSchema};
use std::collections::BTreeMap;

pub use super::input::DecodeError;
use super::input::Input;
use super::json::{is_cutout_field, write_bytes, write_float, write_str};

/// A compiled schema.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) root: Node,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<Box<[u8]>>),
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Record(Vec<Field>),
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The field name, for matching values when encoding.
    pub(crate) name: Box<str>,
    /// `,"name":`, escaped once at compile time (the comma is left out for the first field).
    key: Box<[u8]>,
    pub(crate) node: Node,
    /// A top-level cutout: decoded past, not printed.
    skip: bool,
}

/// The most one alert may take, in bytes of binary (`--max-alert-bytes`).
/// A zero-size item (a null in an array or map) counts [`EMPTY_ITEM_COST`]
/// bytes: about what a decoded value costs in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub alert_bytes: usize,
}

pub const EMPTY_ITEM_COST: usize = 8;

pub(crate) const LEFT_OVER: &str =
    "bytes left over after the alert: the payload does not match the schema";

impl Plan {
    /// Compiles a schema for the JSON path; `None` for what it does not
    /// print like `json.rs` (decimals, UUIDs, durations) and for recursive schemas.
    pub fn compile(schema: &Schema) -> Option<Self> {
        Self::build(schema, false)
    }

    /// Compiles a schema for checking data only: logical types count as the
    /// types they are stored as. `None` for recursive schemas and big-decimal.
    pub fn shape(schema: &Schema) -> Option<Self> {
        Self::build(schema, true)
    }

    fn build(schema: &Schema, shape: bool) -> Option<Self> {
        let names = apache_avro::schema::ResolvedSchema::try_from(schema).ok()?;
        let mut compiler = Compiler {
            names: names.get_names(),
            stack: Vec::new(),
            shape,
        };
        let root = compiler.compile(schema, true)?;
        Some(Self { root })
    }

    /// Decodes one bare Avro alert and appends it as a JSON line (no newline),
    /// cutout fields left out. On error, `out` holds a partial line: truncate it.
    pub fn write_json(
        &self,
        payload: &[u8],
        budget: Budget,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let mut input = alert_input(payload, budget)?;
        write(&self.root, &mut input, out)?;
        input.at_end(LEFT_OVER)
    }

    /// Checks one bare Avro alert without output.
    pub fn check(&self, payload: &[u8], budget: Budget) -> Result<(), DecodeError> {
        let mut input = alert_input(payload, budget)?;
        skip(&self.root, &mut input)?;
        input.at_end(LEFT_OVER)
    }

    /// Checks the `count` objects packed in `data` (a container block) and
    /// returns where each one ends; the data must end with the last one.
    pub fn split(
        &self,
        data: &[u8],
        count: u64,
        budget: Budget,
    ) -> Result<Vec<usize>, DecodeError> {
        let mut input = Input::new(data);
        // An alert takes at least one byte: a count beyond that is hostile.
        if count > data.len() as u64 {
            return input.fail("block claims more objects than it has bytes");
        }
        let mut ends = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let start = input.at;
            input.empty_left = budget.alert_bytes / EMPTY_ITEM_COST;
            skip(&self.root, &mut input)?;
            if input.at - start > budget.alert_bytes {
                return input.fail("alert larger than --max-alert-bytes");
            }
            ends.push(input.at);
        }
        input.at_end("block holds more bytes than its objects")?;
        Ok(ends)
    }
}

type Names<'s> = std::collections::HashMap<apache_avro::schema::Name, &'s Schema>;

struct Compiler<'s> {
    names: &'s Names<'s>,
    /// Records being compiled, to refuse recursion.
    stack: Vec<String>,
    /// Logical types as their storage types (checking only).
    shape: bool,
}

impl Compiler<'_> {
    fn compile(&mut self, schema: &Schema, top: bool) -> Option<Node> {
        Some(match schema {
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
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Fixed(fixed) => Node::Fixed(fixed.size),
            Schema::Enum(e) => Node::Enum(
                e.symbols
                    .iter()
                    .map(|s| json_string(s).into_boxed_slice())
                    .collect(),
            ),
            Schema::Array(a) => Node::Array(Box::new(self.compile(&a.items, false)?)),
            Schema::Map(m) => Node::Map(Box::new(self.compile(&m.types, false)?)),
            Schema::Union(u) => Node::Union(self.union(u)?),
            Schema::Record(record) => self.record(record, top)?,
            Schema::Ref { name } => self.compile(self.names.get(name)?, false)?,
            Schema::Decimal(d) if self.shape => self.compile(&d.inner, false)?,
            Schema::Uuid if self.shape => Node::Bytes,
            Schema::Duration if self.shape => Node::Fixed(12),
            _ => return None,
        })
    }

    fn record(&mut self, record: &apache_avro::schema::RecordSchema, top: bool) -> Option<Node> {
        let name = record.name.fullname(None);
        if self.stack.contains(&name) {
            return None; // recursive
        }
        self.stack.push(name);
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let mut key = vec![b','];
            key.extend_from_slice(&json_string(&field.name));
            key.push(b':');
            fields.push(Field {
                name: field.name.clone().into_boxed_str(),
                key: key.into_boxed_slice(),
                node: self.compile(&field.schema, false)?,
                skip: top && is_cutout_field(&field.name),
            });
        }
        self.stack.pop();
        Some(Node::Record(fields))
    }

    fn union(&mut self, union: &UnionSchema) -> Option<Vec<Node>> {
        union
            .variants()
            .iter()
            .map(|s| self.compile(s, false))
            .collect()
    }
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// One whole alert's input, refused at once when larger than the budget.
pub(crate) fn alert_input(bytes: &[u8], budget: Budget) -> Result<Input<'_>, DecodeError> {
    let mut input = Input::new(bytes);
    if bytes.len() > budget.alert_bytes {
        return input.fail("alert larger than --max-alert-bytes");
    }
    input.empty_left = budget.alert_bytes / EMPTY_ITEM_COST;
    Ok(input)
}

fn min_size(node: &Node) -> usize {
    match node {
        Node::Null => 0,
        Node::Float => 4,
        Node::Double => 8,
        Node::Fixed(n) => *n,
        Node::Record(fields) => fields.iter().map(|f| min_size(&f.node)).sum(),
        _ => 1,
    }
}

fn write(node: &Node, input: &mut Input<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Boolean => match input.boolean()? {
            false => out.extend_from_slice(b"false"),
            true => out.extend_from_slice(b"true"),
        },
        Node::Int => {
            let v = input.int()?;
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
        Node::Long => {
            let v = input.long()?;
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
        Node::Float => {
            let b = input.take(4)?;
            write_float(out, f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        Node::Double => {
            let b = input.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            write_float(out, f64::from_le_bytes(a));
        }
        Node::Bytes => {
            let n = input.length()?;
            write_bytes(out, input.take(n)?);
        }
        Node::Fixed(n) => write_bytes(out, input.take(*n)?),
        Node::String => write_str(out, input.string()?),
        Node::Enum(symbols) => out.extend_from_slice(&symbols[input.symbol(symbols.len())?]),
        Node::Union(branches) => match input.branch(branches)?.1 {
            Node::Null => out.extend_from_slice(b"null"),
            branch => write(branch, input, out)?,
        },
        Node::Array(items) => {
            out.push(b'[');
            write_blocks(input, out, min_size(items), |input, out| {
                write(items, input, out)
            })?;
            out.push(b']');
        }
        Node::Map(values) => {
            // Keys come in wire order; json.rs sorts them (fastavro's dicts
            // keep wire order, so both are the same object).
            out.push(b'{');
            write_blocks(input, out, 1 + min_size(values), |input, out| {
                write(&Node::String, input, out)?;
                out.push(b':');
                write(values, input, out)
            })?;
            out.push(b'}');
        }
        Node::Record(fields) => write_record(fields, input, out)?,
    }
    Ok(())
}

/// The items of an array or map, block by block, comma-separated.
fn write_blocks(
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
    item_min_size: usize,
    mut item: impl FnMut(&mut Input<'_>, &mut Vec<u8>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut first = true;
    loop {
        let count = input.block_count(item_min_size)?;
        if count == 0 {
            return Ok(());
        }
        for _ in 0..count {
            if !first {
                out.push(b',');
            }
            first = false;
            item(input, out)?;
        }
    }
}

/// A record's fields as a JSON object, top-level cutouts left out.
fn write_record(
    fields: &[Field],
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.push(b'{');
    let mut first = true;
    for field in fields {
        if field.skip {
            skip(&field.node, input)?;
            continue;
        }
        let key: &[u8] = if first { &field.key[1..] } else { &field.key };
        first = false;
        out.extend_from_slice(key);
        write(&field.node, input, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Reads past a value without writing it (cutouts in the printout); the
/// gate's walk. It refuses what the JSON walk and Avro readers refuse (a
/// string not UTF-8, a boolean byte past 1, an int out of range, an enum
/// index past its symbols): an archive or a topic that took such a value
/// would hold an alert no Avro reader decodes.
fn skip(node: &Node, input: &mut Input<'_>) -> Result<(), DecodeError> {
    match node {
        Node::Null => {}
        Node::Boolean => {
            input.boolean()?;
        }
        Node::Int => {
            input.int()?;
        }
        Node::Long => {
            input.long()?;
        }
        Node::Enum(symbols) => {
            input.symbol(symbols.len())?;
        }
        Node::Float => {
            input.take(4)?;
        }
        Node::Double => {
            input.take(8)?;
        }
        Node::Bytes => {
            let n = input.length()?;
            input.take(n)?;
        }
        Node::String => {
            input.string()?;
        }
        Node::Fixed(n) => {
            input.take(*n)?;
        }
        Node::Union(branches) => skip(input.branch(branches)?.1, input)?,
        Node::Array(items) => loop {
            let count = input.block_count(min_size(items))?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                skip(items, input)?;
            }
        },
        Node::Map(values) => loop {
            let count = input.block_count(1 + min_size(values))?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                skip(&Node::String, input)?;
                skip(values, input)?;
            }
        },
        Node::Record(fields) => {
            for field in fields {
                skip(&field.node, input)?;
            }
        }
    }
    Ok(())
}

/// The parts of an alert to decode: a value whole, or only some fields of a
/// record (what an expression reaches as `candidate.rb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    All,
    Fields(BTreeMap<String, Need>),
}

impl Need {
    /// Nothing yet.
    pub fn none() -> Self {
        Need::Fields(BTreeMap::new())
    }

    /// Adds a field path: `["candidate", "rb"]`; an empty path is the whole value.
    pub fn add(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Need::All;
            return;
        };
        if let Need::Fields(fields) = self {
            fields
                .entry(first.clone())
                .or_insert_with(Need::none)
                .add(rest);
        }
    }

    /// What either needs.
    pub fn merge(&mut self, other: &Need) {
        match (&mut *self, other) {
            (Need::All, _) => {}
            (_, Need::All) => *self = Need::All,
            (Need::Fields(mine), Need::Fields(theirs)) => {
                for (name, need) in theirs {
                    mine.entry(name.clone())
                        .or_insert_with(Need::none)
                        .merge(need);
                }
            }
        }
    }

    /// The needs of a record's field, if any.
    pub fn field(&self, name: &str) -> Option<&Need> {
        match self {
            Need::All => Some(&Need::All),
            Need::Fields(fields) => fields.get(name),
        }
    }
}

impl Plan {
    /// Decodes only what `need` names of one bare Avro alert, walking past
    /// the rest (cutouts, histories, the other fields of a record) without
    /// building it: what an expression reads. The alert is checked whole.
    pub fn fields(
        &self,
        payload: &[u8],
        budget: Budget,
        need: &Need,
    ) -> Result<apache_avro::types::Value, DecodeError> {
        let mut input = alert_input(payload, budget)?;
        if !matches!(self.root, Node::Record(_)) {
            return input.fail("the alert is not a record");
        }
        let alert = pruned(&self.root, &mut input, need)?;
        input.at_end(LEFT_OVER)?;
        Ok(alert)
    }
}

/// A value with only the record fields `need` names (unions kept).
fn pruned(
    node: &Node,
    input: &mut Input<'_>,
    need: &Need,
) -> Result<apache_avro::types::Value, DecodeError> {
    use apache_avro::types::Value;
    match (node, need) {
        (Node::Union(branches), Need::Fields(_)) => {
            let (i, branch) = input.branch(branches)?;
            Ok(Value::Union(
                i as u32,
                Box::new(pruned(branch, input, need)?),
            ))
        }
        (Node::Record(fields), Need::Fields(_)) => {
            let mut out = Vec::new();
            for field in fields {
                match need.field(&field.name) {
                    Some(inner) => {
                        out.push((field.name.to_string(), pruned(&field.node, input, inner)?))
                    }
                    None => skip(&field.node, input)?,
                }
            }
            Ok(Value::Record(out))
        }
        _ => value(node, input),
    }
}

/// One value as apache-avro would decode it (logical types as their storage).
fn value(node: &Node, input: &mut Input<'_>) -> Result<apache_avro::types::Value, DecodeError> {
    use apache_avro::types::Value;
    Ok(match node {
        Node::Null => Value::Null,
        Node::Boolean => Value::Boolean(input.boolean()?),
        Node::Int => Value::Int(input.int()?),
        Node::Long => Value::Long(input.long()?),
        Node::Float => {
            let b = input.take(4)?;
            Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Node::Double => {
            let mut a = [0u8; 8];
            a.copy_from_slice(input.take(8)?);
            Value::Double(f64::from_le_bytes(a))
        }
        Node::Bytes => {
            let n = input.length()?;
            Value::Bytes(input.take(n)?.to_vec())
        }
        Node::Fixed(n) => Value::Fixed(*n, input.take(*n)?.to_vec()),
        Node::String => Value::String(input.string()?.to_string()),
        Node::Enum(symbols) => {
            let i = input.symbol(symbols.len())?;
            Value::Enum(
                i as u32,
                serde_json::from_slice(&symbols[i]).unwrap_or_default(),
            )
        }
        Node::Union(branches) => {
            let (i, branch) = input.branch(branches)?;
            Value::Union(i as u32, Box::new(value(branch, input)?))
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            loop {
                let count = input.block_count(min_size(items))?;
                if count == 0 {
                    break Value::Array(out);
                }
                for _ in 0..count {
                    out.push(value(items, input)?);
                }
            }
        }
        Node::Map(values) => {
            let mut out = std::collections::HashMap::new();
            loop {
                let count = input.block_count(1 + min_size(values))?;
                if count == 0 {
                    break Value::Map(out);
                }
                for _ in 0..count {
                    let Value::String(key) = value(&Node::String, input)? else {
                        return input.fail("map key is not a string");
                    };
                    out.insert(key, value(values, input)?);
                }
            }
        }
        Node::Record(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            for field in fields {
                out.push((field.name.to_string(), value(&field.node, input)?));
            }
            Value::Record(out)
        }
    })
}

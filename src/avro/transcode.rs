//! Bare Avro straight to JSON, without building a value tree: the fast path of
//! `print`. The reader schema is compiled once into a [`Plan`]; decoding then
//! walks it, reading the binary and writing JSON in the shape of `json.rs`
//! (which stays the reference: tests check both agree byte for byte).
//!
//! Untrusted input: every length is checked against the bytes that remain, so
//! a payload claiming a 2^62-element array or string allocates nothing; item
//! counts of zero-size items are capped; nesting is bounded by the schema.

use apache_avro::schema::{Schema, UnionSchema};

use super::json::{is_cutout_field, write_bytes, write_float, write_str};

/// A compiled reader schema.
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

/// Why a payload could not be decoded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Most items an array or map block of zero-size items may claim.
const MAX_EMPTY_ITEMS: u64 = 1 << 20;

impl Plan {
    /// Compiles a schema; `None` for what the fast path does not cover
    /// (recursive types, decimals, UUIDs, durations): those use the value path.
    pub fn compile(schema: &Schema) -> Option<Self> {
        let names = apache_avro::schema::ResolvedSchema::try_from(schema).ok()?;
        let mut stack = Vec::new();
        let root = compile(schema, names.get_names(), &mut stack, true)?;
        Some(Self { root })
    }

    /// Decodes one bare Avro alert and appends it as a JSON line (no newline),
    /// cutout fields left out. On error, `out` holds a partial line: truncate it.
    pub fn write_json(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut input = Input {
            bytes: payload,
            at: 0,
        };
        write(&self.root, &mut input, out)?;
        if input.at != payload.len() {
            return Err(DecodeError {
                offset: input.at,
                reason:
                    "bytes left over after the alert: the payload does not match the reader schema",
            });
        }
        Ok(())
    }
}

/// Whether a schema refers to itself (a linked list, a tree). Data of such a
/// schema can nest as deep as its bytes allow, so messages carrying one are
/// refused rather than decoded recursively.
pub fn is_recursive(schema: &Schema) -> bool {
    let Ok(resolved) = apache_avro::schema::ResolvedSchema::try_from(schema) else {
        return true; // unresolvable references: refuse too
    };
    fn walk(schema: &Schema, names: &Names<'_>, stack: &mut Vec<String>) -> bool {
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

/// Whether a schema has an Avro map anywhere (apache-avro reserves map
/// capacity from counts in the data, so such data is checked here first).
pub fn has_map(schema: &Schema) -> bool {
    match schema {
        Schema::Map(_) => true,
        Schema::Array(a) => has_map(&a.items),
        Schema::Union(u) => u.variants().iter().any(has_map),
        Schema::Record(r) => r.fields.iter().any(|f| has_map(&f.schema)),
        _ => false,
    }
}

type Names<'s> = std::collections::HashMap<apache_avro::schema::Name, &'s Schema>;

impl Plan {
    /// Walks `count` values in `data` without output, checking every length
    /// and count against the bytes there are; the data must end exactly.
    pub fn validate(&self, data: &[u8], count: u64) -> Result<(), DecodeError> {
        let mut input = Input { bytes: data, at: 0 };
        for _ in 0..count {
            skip(&self.root, &mut input)?;
        }
        if input.at != data.len() {
            return input.fail("block holds more bytes than its objects");
        }
        Ok(())
    }
}

fn compile(schema: &Schema, names: &Names<'_>, stack: &mut Vec<String>, top: bool) -> Option<Node> {
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
        Schema::Array(a) => Node::Array(Box::new(compile(&a.items, names, stack, false)?)),
        Schema::Map(m) => Node::Map(Box::new(compile(&m.types, names, stack, false)?)),
        Schema::Union(u) => Node::Union(compile_union(u, names, stack)?),
        Schema::Record(record) => {
            let name = record.name.fullname(None);
            if stack.contains(&name) {
                return None; // recursive: the value path handles it
            }
            stack.push(name);
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let mut key = vec![b','];
                key.extend_from_slice(&json_string(&field.name));
                key.push(b':');
                fields.push(Field {
                    name: field.name.clone().into_boxed_str(),
                    key: key.into_boxed_slice(),
                    node: compile(&field.schema, names, stack, false)?,
                    skip: top && is_cutout_field(&field.name),
                });
            }
            stack.pop();
            Node::Record(fields)
        }
        Schema::Ref { name } => compile(names.get(name)?, names, stack, false)?,
        _ => return None,
    })
}

fn compile_union(
    union: &UnionSchema,
    names: &Names<'_>,
    stack: &mut Vec<String>,
) -> Option<Vec<Node>> {
    union
        .variants()
        .iter()
        .map(|s| compile(s, names, stack, false))
        .collect()
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn fail<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.at,
            reason,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(slice) if n <= self.bytes.len() - self.at => {
                self.at += n;
                Ok(slice)
            }
            _ => self.fail("truncated: a length points past the end of the payload"),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.at) else {
                return self.fail("truncated: payload ends inside a number");
            };
            self.at += 1;
            if shift == 63 && byte > 1 {
                return self.fail("number longer than 64 bits");
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("number longer than 64 bits")
    }

    fn long(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).or_else(|_| self.fail("int out of range"))
    }

    /// A byte length: non-negative and within the payload.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        if n < 0 {
            return self.fail("negative length");
        }
        let n = n as u64;
        if n > (self.bytes.len() - self.at) as u64 {
            return self.fail("truncated: a length points past the end of the payload");
        }
        Ok(n as usize)
    }

    /// The item count of an array or map block (its byte size, if given, is skipped).
    fn block_count(&mut self, item_min_size: usize) -> Result<u64, DecodeError> {
        let n = self.long()?;
        let count = if n < 0 {
            self.long()?; // block size in bytes
            n.unsigned_abs()
        } else {
            n as u64
        };
        let left = (self.bytes.len() - self.at) as u64;
        let bound = if item_min_size == 0 {
            MAX_EMPTY_ITEMS
        } else {
            left / item_min_size as u64
        };
        if count > bound {
            return self.fail("an array or map claims more items than the payload can hold");
        }
        Ok(count)
    }
}

/// The fewest bytes one value of `node` takes (to bound item counts).
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
        Node::Boolean => match input.take(1)?[0] {
            0 => out.extend_from_slice(b"false"),
            1 => out.extend_from_slice(b"true"),
            _ => return input.fail("boolean byte is neither 0 nor 1"),
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
            let n = input.len()?;
            write_bytes(out, input.take(n)?);
        }
        Node::Fixed(n) => write_bytes(out, input.take(*n)?),
        Node::String => {
            let n = input.len()?;
            let raw = input.take(n)?;
            let Ok(text) = std::str::from_utf8(raw) else {
                return input.fail("string is not UTF-8");
            };
            write_str(out, text);
        }
        Node::Enum(symbols) => {
            let i = input.long()?;
            match usize::try_from(i).ok().and_then(|i| symbols.get(i)) {
                Some(symbol) => out.extend_from_slice(symbol),
                None => return input.fail("enum index out of range"),
            }
        }
        Node::Union(branches) => {
            let i = input.long()?;
            match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                Some(Node::Null) => out.extend_from_slice(b"null"),
                Some(branch) => write(branch, input, out)?,
                None => return input.fail("union branch index out of range"),
            }
        }
        Node::Array(items) => {
            out.push(b'[');
            let min = min_size(items);
            let mut first = true;
            loop {
                let count = input.block_count(min)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write(items, input, out)?;
                }
            }
            out.push(b']');
        }
        Node::Map(values) => {
            // Keys come in wire order; json.rs sorts them (fastavro's dicts
            // keep wire order, so both are the same object).
            out.push(b'{');
            let min = 1 + min_size(values);
            let mut first = true;
            loop {
                let count = input.block_count(min)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write(&Node::String, input, out)?;
                    out.push(b':');
                    write(values, input, out)?;
                }
            }
            out.push(b'}');
        }
        Node::Record(fields) => {
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
        }
    }
    Ok(())
}

/// Reads past a value without writing it (cutouts in the printout).
fn skip(node: &Node, input: &mut Input<'_>) -> Result<(), DecodeError> {
    match node {
        Node::Null => {}
        Node::Boolean => {
            input.take(1)?;
        }
        Node::Int | Node::Long | Node::Enum(_) => {
            input.long()?;
        }
        Node::Float => {
            input.take(4)?;
        }
        Node::Double => {
            input.take(8)?;
        }
        Node::Bytes | Node::String => {
            let n = input.len()?;
            input.take(n)?;
        }
        Node::Fixed(n) => {
            input.take(*n)?;
        }
        Node::Union(branches) => {
            let i = input.long()?;
            match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                Some(branch) => skip(branch, input)?,
                None => return input.fail("union branch index out of range"),
            }
        }
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

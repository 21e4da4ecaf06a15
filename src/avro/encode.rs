//! Values to bare Avro with a compiled [`Plan`]: one pass, no validation pass
//! and no copy of the value first (what makes apache-avro's `to_avro_datum`
//! slow on alerts, whose cutouts are tens of KB). A value that does not fit
//! the schema is refused with the field where it went wrong.

use apache_avro::types::Value;

use super::plan::{Node, Plan};

impl Plan {
    /// Appends `value` encoded as bare Avro; `Err` names the first mismatch.
    pub fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
        encode(&self.root, value, out, &mut Vec::new())
    }
}

fn mismatch(path: &[&str], what: &str) -> String {
    let at = if path.is_empty() {
        "the alert".to_string()
    } else {
        path.join(".")
    };
    format!("{at}: {what}")
}

use super::varint::write_long as long;

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn encode<'v>(
    node: &Node,
    value: &'v Value,
    out: &mut Vec<u8>,
    path: &mut Vec<&'v str>,
) -> Result<(), String> {
    match (node, value) {
        (Node::Null, Value::Null) => {}
        (Node::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (Node::Int, Value::Int(i) | Value::Date(i) | Value::TimeMillis(i)) => {
            long(out, i64::from(*i))
        }
        (
            Node::Long,
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i),
        ) => long(out, *i),
        (Node::Long, Value::Int(i)) => long(out, i64::from(*i)),
        (Node::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Node::Double, Value::Double(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Node::Double, Value::Float(f)) => out.extend_from_slice(&f64::from(*f).to_le_bytes()),
        (Node::Bytes, Value::Bytes(b)) => bytes(out, b),
        (Node::String, Value::String(s)) => bytes(out, s.as_bytes()),
        (Node::Fixed(n), Value::Fixed(m, b)) if n == m && b.len() == *n => out.extend_from_slice(b),
        (Node::Enum(symbols), Value::Enum(i, _)) if (*i as usize) < symbols.len() => {
            long(out, i64::from(*i))
        }
        (Node::Union(branches), Value::Union(i, inner)) => {
            let branch = branches
                .get(*i as usize)
                .ok_or_else(|| mismatch(path, "union branch out of range"))?;
            long(out, i64::from(*i));
            encode(branch, inner, out, path)?;
        }
        (Node::Array(items), Value::Array(values)) => {
            if !values.is_empty() {
                long(out, values.len() as i64);
                for v in values {
                    encode(items, v, out, path)?;
                }
            }
            out.push(0);
        }
        (Node::Map(node), Value::Map(entries)) => {
            if !entries.is_empty() {
                long(out, entries.len() as i64);
                for (k, v) in entries {
                    bytes(out, k.as_bytes());
                    encode(node, v, out, path)?;
                }
            }
            out.push(0);
        }
        (Node::Record(fields), Value::Record(values)) => {
            if fields.len() != values.len() {
                return Err(mismatch(
                    path,
                    "record has a different number of fields than the schema",
                ));
            }
            for (field, (name, v)) in fields.iter().zip(values) {
                if *field.name != **name {
                    return Err(mismatch(
                        path,
                        &format!("field {name} where the schema has {}", field.name),
                    ));
                }
                path.push(name);
                encode(&field.node, v, out, path)?;
                path.pop();
            }
        }
        _ => return Err(mismatch(path, "value does not match the schema type")),
    }
    Ok(())
}

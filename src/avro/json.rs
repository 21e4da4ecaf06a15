//! Alerts as JSON, in the shape Python's fastavro returns them (so that output
//! compares value for value with the original's stack): records are objects in
//! field order, unions are their plain value, bytes are base64, float32 values
//! are widened to float64 exactly as Python does, NaN and infinities are strings.

use apache_avro::types::Value;
use base64::Engine;

/// Whether a top-level alert field holds a cutout (ZTF record or Rubin bytes).
pub fn is_cutout_field(name: &str) -> bool {
    name.starts_with("cutout")
}

/// Appends `alert` as one JSON object, leaving out the cutout fields as the
/// original printout did.
pub fn write_alert(out: &mut Vec<u8>, alert: &Value) {
    match alert {
        Value::Record(fields) => write_record(out, fields, true),
        other => write_value(out, other),
    }
}

/// Appends any value, cutouts included (used for `send --encode-off`).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => write_int(out, i64::from(*i)),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => write_int(out, *i),
        Value::Float(f) => write_float(out, f64::from(*f)),
        Value::Double(f) => write_float(out, *f),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => write_bytes(out, bytes),
        Value::String(s) | Value::Enum(_, s) => write_str(out, s),
        Value::Union(_, inner) => write_value(out, inner),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            let mut keys: Vec<_> = entries.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, &entries[key]);
            }
            out.push(b'}');
        }
        Value::Record(fields) => write_record(out, fields, false),
        Value::Decimal(d) => match <Vec<u8>>::try_from(d) {
            Ok(bytes) => write_bytes(out, &bytes),
            Err(_) => out.extend_from_slice(b"null"),
        },
        Value::BigDecimal(d) => write_str(out, &d.to_string()),
        Value::Duration(d) => {
            let bytes: [u8; 12] = (*d).into();
            write_bytes(out, &bytes)
        }
        Value::Uuid(u) => write_str(out, &u.to_string()),
    }
}

fn write_record(out: &mut Vec<u8>, fields: &[(String, Value)], skip_cutouts: bool) {
    out.push(b'{');
    let mut first = true;
    for (name, value) in fields {
        if skip_cutouts && is_cutout_field(name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// A float as fastavro prints it: shortest round-trip text, or "NaN",
/// "Infinity", "-Infinity".
pub(crate) fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// Bytes as a base64 JSON string.
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// A JSON string; the common case (nothing to escape) is one copy.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // serde_json's escaping writes into any io::Write; a Vec never fails.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(value: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fastavro_shape() {
        let value = Value::Record(vec![
            ("a".into(), Value::Union(1, Box::new(Value::Float(0.1)))),
            ("b".into(), Value::Union(0, Box::new(Value::Null))),
            ("c".into(), Value::Bytes(b"hi\x00".to_vec())),
            ("d".into(), Value::Double(f64::NAN)),
            ("e".into(), Value::Float(f32::NEG_INFINITY)),
            ("f".into(), Value::String("q\"\n".into())),
            (
                "g".into(),
                Value::Array(vec![Value::Long(-5), Value::Int(7)]),
            ),
            ("h".into(), Value::Double(100.0)),
        ]);
        assert_eq!(
            render(&value),
            r#"{"a":0.10000000149011612,"b":null,"c":"aGkA","d":"NaN","e":"-Infinity","f":"q\"\n","g":[-5,7],"h":100.0}"#
        );
    }

    #[test]
    fn alert_printout_leaves_out_cutouts() {
        let alert = Value::Record(vec![
            ("candid".into(), Value::Long(1)),
            ("cutoutScience".into(), Value::Bytes(vec![1, 2])),
        ]);
        let mut out = Vec::new();
        write_alert(&mut out, &alert);
        assert_eq!(out, br#"{"candid":1}"#);
    }
}

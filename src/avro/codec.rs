//! Encoding alerts for the wire and decoding what arrives.

use std::io::Read;

use anyhow::{anyhow, Result};
use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Reader, Schema};

use super::json;
use super::transcode::Plan;

/// How a message carries its Avro data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bare Avro binary: the reader must know the schema (the original's format).
    Schemaless,
    /// An Avro object container file: schema embedded (ZTF's production stream).
    Container,
    /// Confluent wire format: byte 0, a 4-byte big-endian schema id, then bare Avro.
    Confluent { schema_id: u32 },
}

const CONTAINER_MAGIC: &[u8] = b"Obj\x01";

/// Recognises the framing of a payload from its first bytes.
pub fn detect(payload: &[u8]) -> Framing {
    if payload.starts_with(CONTAINER_MAGIC) {
        Framing::Container
    } else if payload.len() > 5 && payload[0] == 0 {
        let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
        Framing::Confluent { schema_id: id }
    } else {
        Framing::Schemaless
    }
}

/// Encodes one alert as bare Avro with `schema`.
pub fn encode(schema: &Schema, alert: &Value) -> Result<Vec<u8>> {
    match Plan::compile(schema) {
        Some(plan) => Encoder { plan }.encode(alert),
        None => Ok(to_avro_datum(schema, alert.clone())?),
    }
}

/// Encodes many alerts of one schema: the schema is compiled once.
#[derive(Debug)]
pub struct Encoder {
    plan: Plan,
}

impl Encoder {
    pub fn new(schema: &Schema) -> Option<Self> {
        Plan::compile(schema).map(|plan| Self { plan })
    }

    pub fn encode(&self, alert: &Value) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 * 1024);
        self.plan
            .encode(alert, &mut out)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(out)
    }
}

/// Encodes one alert in a framing.
pub fn encode_framed(schema: &Schema, alert: &Value, framing: Framing) -> Result<Vec<u8>> {
    match framing {
        Framing::Schemaless => encode(schema, alert),
        Framing::Confluent { schema_id } => {
            let mut out = Vec::with_capacity(64 * 1024);
            out.push(0);
            out.extend_from_slice(&schema_id.to_be_bytes());
            out.extend_from_slice(&encode(schema, alert)?);
            Ok(out)
        }
        Framing::Container => {
            let mut writer = apache_avro::Writer::new(schema, Vec::with_capacity(64 * 1024));
            writer.append(alert.clone())?;
            Ok(writer.into_inner()?)
        }
    }
}

/// Decodes messages with a reader schema (the built-in one or `--schema`).
#[derive(Debug)]
pub struct Decoder {
    reader: Schema,
    /// The reader schema compiled for the direct-to-JSON path, if it qualifies.
    plan: Option<Plan>,
    /// Set when the user chose the reader schema: container messages are then
    /// resolved to it; otherwise they are read with their own writer schema.
    resolve_to: Option<Schema>,
}

impl Decoder {
    pub fn new(reader: Schema, resolve_containers: bool) -> Self {
        let resolve_to = if resolve_containers {
            match super::schema::for_resolution(&reader) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    tracing::warn!("reader schema kept as given for resolution: {e}");
                    Some(reader.clone())
                }
            }
        } else {
            None
        };
        let plan = Plan::compile(&reader);
        Self {
            reader,
            plan,
            resolve_to,
        }
    }

    /// Decodes a message and appends its alerts as JSON lines (cutouts left
    /// out); returns the framing and the number of alerts. Bare and Confluent
    /// payloads go straight from binary to JSON; containers through values.
    pub fn decode_json(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(Framing, usize)> {
        let framing = detect(payload);
        let bare = match framing {
            Framing::Schemaless => payload,
            Framing::Confluent { .. } => &payload[5..],
            Framing::Container => {
                let (_, alerts) = self.decode(payload)?;
                for alert in &alerts {
                    json::write_alert(out, alert);
                    out.push(b'\n');
                }
                return Ok((framing, alerts.len()));
            }
        };
        let Some(plan) = &self.plan else {
            let alert = self.decode_bare(bare)?;
            json::write_alert(out, &alert);
            out.push(b'\n');
            return Ok((framing, 1));
        };
        let start = out.len();
        match plan.write_json(bare, out) {
            Ok(()) => {
                out.push(b'\n');
                Ok((framing, 1))
            }
            Err(e) => {
                out.truncate(start);
                Err(anyhow!("not an alert of the reader schema: {e}"))
            }
        }
    }

    /// Decodes every alert a message holds (a container may hold several).
    pub fn decode(&self, payload: &[u8]) -> Result<(Framing, Vec<Value>)> {
        let framing = detect(payload);
        let alerts = match framing {
            Framing::Container => self.decode_container(payload)?,
            Framing::Confluent { .. } => vec![self.decode_bare(&payload[5..])?],
            Framing::Schemaless => vec![self.decode_bare(payload)?],
        };
        Ok((framing, alerts))
    }

    fn decode_bare(&self, bytes: &[u8]) -> Result<Value> {
        let mut rest = bytes;
        let value = from_avro_datum(&self.reader, &mut rest, None)
            .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))?;
        if !rest.is_empty() {
            return Err(anyhow!(
                "{} byte(s) left over after the alert at byte {}: the payload does not match the reader schema",
                rest.len(),
                bytes.len() - rest.len()
            ));
        }
        Ok(value)
    }

    fn decode_container(&self, payload: &[u8]) -> Result<Vec<Value>> {
        let framing =
            super::container::check(payload).map_err(|e| anyhow!("bad Avro container: {e}"))?;
        let reader = if let Some(schema) = &self.resolve_to {
            Reader::with_schema(schema, payload)
        } else {
            Reader::new(payload)
        }
        .map_err(|e| anyhow!("bad Avro container header: {e}"))?;
        let writer = reader.writer_schema();
        if super::transcode::is_recursive(writer) {
            return Err(anyhow!(
                "the container's writer schema is recursive; refused"
            ));
        }
        if super::transcode::has_map(writer) {
            // apache-avro trusts map counts in the data: walk the blocks first.
            let Some(plan) = Plan::compile(writer).filter(|_| framing.codec == "null") else {
                return Err(anyhow!(
                    "refused: a container with map fields must use codec null to be checked (codec {})",
                    framing.codec
                ));
            };
            for (i, (count, data)) in framing.blocks.iter().enumerate() {
                plan.validate(data, *count)
                    .map_err(|e| anyhow!("block {} of the container: {e}", i + 1))?;
            }
        }
        read_all(reader)
    }
}

/// Collects every value of a container reader.
pub fn read_all<R: Read>(reader: Reader<'_, R>) -> Result<Vec<Value>> {
    reader
        .enumerate()
        .map(|(i, v)| v.map_err(|e| anyhow!("alert {} of the container: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_recognised() {
        assert_eq!(detect(b"Obj\x01rest"), Framing::Container);
        assert_eq!(
            detect(&[0, 0, 0, 1, 2, 9, 9]),
            Framing::Confluent { schema_id: 258 }
        );
        assert_eq!(detect(&[6, b'3', b'.', b'3']), Framing::Schemaless);
        assert_eq!(detect(&[]), Framing::Schemaless);
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/ztf")
            .join(name)
    }

    #[test]
    fn every_framing_round_trips() {
        let bytes = std::fs::read(fixture("v3.3_472263571115115000.avro")).unwrap();
        let reader = Reader::new(bytes.as_slice()).unwrap();
        let schema = reader.writer_schema().clone();
        let alert = read_all(reader).unwrap().remove(0);
        let decoder = Decoder::new(schema.clone(), false);
        for framing in [
            Framing::Schemaless,
            Framing::Container,
            Framing::Confluent { schema_id: 7 },
        ] {
            let payload = encode_framed(&schema, &alert, framing).unwrap();
            let (seen, alerts) = decoder.decode(&payload).unwrap();
            assert_eq!(seen, framing);
            assert_eq!(alerts, vec![alert.clone()], "{framing:?}");
        }
    }

    #[test]
    fn older_alerts_resolve_to_the_built_in_schema_with_defaults() {
        let bytes = std::fs::read(fixture("v3.0_472263571115115000.avro")).unwrap();
        let decoder = Decoder::new(crate::avro::schema::built_in(), true);
        let (_, alerts) = decoder.decode(&bytes).unwrap();
        let Value::Record(fields) = &alerts[0] else {
            panic!()
        };
        let Some((_, Value::Record(candidate))) = fields.iter().find(|(k, _)| k == "candidate")
        else {
            panic!()
        };
        let get = |name: &str| {
            candidate
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("drbversion"), Some(Value::String(String::new())));
        assert!(matches!(get("drb"), Some(Value::Union(_, v)) if *v == Value::Null));
        assert!(matches!(get("exptime"), Some(Value::Union(_, v)) if *v == Value::Null));
        assert_eq!(get("candid"), Some(Value::Long(472263571115115000)));
    }

    /// The direct path and the value path print the same bytes, for every
    /// fixture; and every truncation of an alert is an error, never a panic.
    #[test]
    fn direct_json_equals_the_value_path_and_rejects_truncation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ztf");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "avro") {
                continue;
            }
            let bytes = std::fs::read(path).unwrap();
            let reader = Reader::new(bytes.as_slice()).unwrap();
            let schema = reader.writer_schema().clone();
            let decoder = Decoder::new(schema.clone(), false);
            assert!(decoder.plan.is_some());
            for alert in read_all(reader).unwrap() {
                let payload = encode(&schema, &alert).unwrap();
                assert_eq!(
                    payload,
                    to_avro_datum(&schema, alert.clone()).unwrap(),
                    "same bytes as apache-avro"
                );
                let mut direct = Vec::new();
                decoder.decode_json(&payload, &mut direct).unwrap();
                let mut reference = Vec::new();
                json::write_alert(&mut reference, &alert);
                reference.push(b'\n');
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(reference).unwrap()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 20);
        let (schema, payload) = {
            let bytes = std::fs::read(fixture("v3.3_472263571115115000.avro")).unwrap();
            let reader = Reader::new(bytes.as_slice()).unwrap();
            let schema = reader.writer_schema().clone();
            let alert = read_all(reader).unwrap().remove(0);
            (schema.clone(), encode(&schema, &alert).unwrap())
        };
        let plan = Plan::compile(&schema).unwrap();
        let mut out = Vec::new();
        for cut in (0..payload.len()).step_by(7) {
            out.clear();
            assert!(
                plan.write_json(&payload[..cut], &mut out).is_err(),
                "prefix {cut} accepted"
            );
        }
    }

    #[test]
    fn huge_claimed_lengths_allocate_nothing() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":{"type":"array","items":"long"}},
            {"name":"s","type":"string"},
            {"name":"n","type":{"type":"array","items":"null"}}]}"#,
        )
        .unwrap();
        let plan = Plan::compile(&schema).unwrap();
        // zigzag(2^62) as a varint: a 2^62-item array in 10 bytes.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        for payload in [
            huge.to_vec(),
            [&[0u8][..], &huge[..]].concat(),
            [&[0u8, 0u8][..], &huge[..]].concat(),
        ] {
            let mut out = Vec::new();
            let error = plan.write_json(&payload, &mut out).unwrap_err();
            assert!(out.len() < 64, "{error}");
        }
    }

    #[test]
    fn recursive_writer_schemas_are_refused() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#,
        )
        .unwrap();
        assert!(super::super::transcode::is_recursive(&schema));
        assert!(!super::super::transcode::is_recursive(
            &crate::avro::schema::built_in()
        ));
        // Refused on the header: data of any depth is never decoded.
        let payload = apache_avro::Writer::new(&schema, Vec::new())
            .into_inner()
            .unwrap();
        let decoder = Decoder::new(crate::avro::schema::built_in(), false);
        let error = decoder.decode(&payload).unwrap_err().to_string();
        assert!(error.contains("recursive"), "{error}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}"#,
        )
        .unwrap();
        let decoder = Decoder::new(schema.clone(), false);
        let mut bytes =
            encode(&schema, &Value::Record(vec![("a".into(), Value::Long(3))])).unwrap();
        assert!(decoder.decode(&bytes).is_ok());
        bytes.push(1);
        let error = decoder.decode(&bytes).unwrap_err().to_string();
        assert!(error.contains("1 byte(s) left over"), "{error}");
    }
}

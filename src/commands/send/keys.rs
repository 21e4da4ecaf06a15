//! Message keys for `send`: the writer schema's JSON (key-schema framing, as
//! Fink writes its streams), or an alert field (`--key objectId`) so that
//! one object's alerts stay on one partition, in order. Default: no key.

use anyhow::Result;
use apache_avro::Schema;

use crate::alerts::source::SourceAlert;
use crate::avro::codec::Decoder;
use crate::exit::bad_input;
use crate::expr::{AlertKey, KeyOf};

/// How each message is keyed.
pub enum Keys {
    None,
    /// The alert's writer schema, as JSON.
    Schema,
    /// An alert field's value, as text (numbers in decimal) or its bytes.
    Field(Box<KeyOf>),
}

impl Keys {
    /// `--key FIELD` checked against `schema` (the alerts' first schema).
    pub fn new(field: Option<&str>, key_schema: bool, schema: &Schema) -> Result<Self> {
        match (field, key_schema) {
            (Some(_), true) => Err(bad_input(
                "--key goes with the other formats: with --format key-schema the key is the writer schema",
            )),
            (Some(field), false) => Ok(Self::Field(Box::new(KeyOf::compile(
                "--key", field, schema,
            )?))),
            (None, true) => Ok(Self::Schema),
            (None, false) => Ok(Self::None),
        }
    }

    /// The key of one alert read from a file or the samples.
    pub fn of(&self, alert: &SourceAlert) -> Result<Option<Vec<u8>>> {
        Ok(match self {
            Self::None => None,
            Self::Schema => Some(serde_json::to_vec(&*alert.schema)?),
            Self::Field(key) => Some(bytes(key.of(&alert.value))),
        })
    }
}

/// Keys for the simulator's alerts, read back from each message made.
pub struct MadeKeys {
    keys: Keys,
    /// Reads the simulation's schema, in whatever framing the alert got.
    decoder: Decoder,
    schema_text: Vec<u8>,
}

impl MadeKeys {
    pub fn new(keys: Keys, schema: &Schema) -> Result<Self> {
        Ok(Self {
            keys,
            decoder: Decoder::new(schema.clone(), false),
            schema_text: serde_json::to_vec(schema)?,
        })
    }

    /// The key of one made message (only the key's field is decoded).
    pub fn of(&self, payload: &[u8]) -> Option<Vec<u8>> {
        match &self.keys {
            Keys::None => None,
            Keys::Schema => Some(self.schema_text.clone()),
            Keys::Field(key) => {
                let alert = self.decoder.fields(payload, key.need()).ok()?.pop();
                Some(bytes(alert.and_then(|a| key.of(&a))))
            }
        }
    }
}

/// A key's bytes: text as UTF-8, numbers in decimal, bytes as they are; an
/// alert whose field is null gets an empty key.
fn bytes(key: Option<AlertKey>) -> Vec<u8> {
    match key {
        None => Vec::new(),
        Some(AlertKey::Int(i)) => i.to_string().into_bytes(),
        Some(AlertKey::Float(bits)) => f64::from_bits(bits).to_string().into_bytes(),
        Some(AlertKey::Text(text)) => text.as_bytes().to_vec(),
        Some(AlertKey::Bytes(b)) => b.to_vec(),
        Some(AlertKey::Bool(b)) => b.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    #[test]
    fn keys_are_the_field_or_the_schema() {
        let alerts = crate::alerts::source::samples().unwrap();
        let schema = &alerts[0].schema;
        let by_object = Keys::new(Some("objectId"), false, schema).unwrap();
        let Value::Record(fields) = &alerts[0].value else {
            panic!("an alert is a record")
        };
        let object = fields.iter().find(|(name, _)| name == "objectId").unwrap();
        let Value::String(object) = &object.1 else {
            panic!("objectId is a string")
        };
        assert_eq!(
            by_object.of(&alerts[0]).unwrap().unwrap(),
            object.as_bytes()
        );
        let by_schema = Keys::new(None, true, schema).unwrap();
        let text = by_schema.of(&alerts[0]).unwrap().unwrap();
        let parsed = Schema::parse_str(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(parsed.canonical_form(), schema.canonical_form());
        assert!(Keys::new(Some("objectId"), true, schema).is_err());
        assert!(
            Keys::new(Some("objectID"), false, schema).is_err(),
            "no such field"
        );
    }
}

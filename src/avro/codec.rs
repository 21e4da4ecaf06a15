//! Encoding alerts for the wire and decoding what arrives. Every payload is
//! decoded through the gate (`gate.rs`): checked before anything allocates.

use anyhow::{anyhow, Result};
use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};

use std::borrow::Cow;
use std::sync::Arc;

use super::gate::{self, Writer, WriterCache, DEFAULT_MAX_ALERT_BYTES};
use super::ids::{RegistryUnavailable, SchemaIds, UnknownSchemaId};
use super::json;
use super::plan::{Budget, Need, Plan};

/// How a message carries its Avro data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bare Avro binary: the reader must know the schema (the original's format).
    Schemaless,
    /// An Avro object container file: schema embedded (ZTF's production stream).
    Container,
    /// Confluent wire format: byte 0, a 4-byte big-endian schema id, then bare Avro.
    Confluent { schema_id: u32 },
    /// Bare Avro with the writer schema's JSON in the message key (Fink's streams).
    KeySchema,
}

impl Framing {
    /// As `--format` names it (with a Confluent message's schema id).
    pub fn name(&self) -> String {
        match self {
            Self::Schemaless => "schemaless".into(),
            Self::Container => "container".into(),
            Self::Confluent { schema_id } => format!("confluent (schema id {schema_id})"),
            Self::KeySchema => "key-schema".into(),
        }
    }
}

/// The framing a reader expects: `None` in a [`Decoder`] means auto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Schemaless,
    Container,
    Confluent,
    KeySchema,
}

/// One message as the decoder reads it: its value, and its key, which
/// carries the writer schema in key-schema framing.
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self { key: None, value }
    }
}

impl<'a> From<&'a Vec<u8>> for Payload<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Self {
            key: None,
            value: value.as_slice(),
        }
    }
}

/// The most a writer schema in a message key may take: ZTF's is ~12 KB and
/// Rubin's ~40 KB; a key over this is refused before it is parsed.
pub const MAX_KEY_SCHEMA_BYTES: usize = 1 << 20;

/// Whether a key claims to be a writer schema: a JSON object with a "type"
/// member (a cheap look; the schema itself is checked when it is parsed).
fn claims_schema(key: Option<&[u8]>) -> bool {
    let Some(key) = key else { return false };
    let text = key.trim_ascii_start();
    text.first() == Some(&b'{') && text.windows(6).any(|w| w == b"\"type\"")
}

/// The Confluent framing of a payload, if it has one: byte 0, a schema id.
fn confluent(payload: &[u8]) -> Option<Framing> {
    match payload {
        [0, a, b, c, d, ..] => Some(Framing::Confluent {
            schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
        }),
        _ => None,
    }
}

/// How auto-detection reads a payload: container magic means a container;
/// a zero first byte means Confluent, with bare Avro as the fallback when
/// the Confluent reading fails; anything else is bare Avro.
pub fn detect(payload: &[u8]) -> (Framing, Option<Framing>) {
    if super::container::is_container(payload) {
        (Framing::Container, None)
    } else if let Some(framing) = confluent(payload) {
        (framing, Some(Framing::Schemaless))
    } else {
        (Framing::Schemaless, None)
    }
}

/// The Avro binary of a bare or Confluent-framed payload.
fn bare(framing: Framing, payload: &[u8]) -> &[u8] {
    match framing {
        Framing::Confluent { .. } => &payload[5..],
        _ => payload,
    }
}

/// Errors of a schema id that the auto fallback must not paper over.
fn is_schema_id_error(error: &anyhow::Error) -> bool {
    error.is::<UnknownSchemaId>()
        || error.is::<RegistryUnavailable>()
        || error.is::<crate::exit::Exit>()
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
        // The key-schema framing's value is bare Avro; its key is the schema.
        Framing::Schemaless | Framing::KeySchema => encode(schema, alert),
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

/// A message's alerts as the Avro binary they were written in: borrowed
/// from the message unless they had to be decompressed or re-encoded (an
/// alert is tens of kilobytes, copied for nothing otherwise).
#[derive(Debug)]
pub struct Datums<'a> {
    pub framing: Framing,
    /// The schema they were written with.
    pub writer: Arc<Writer>,
    pub alerts: AlertBytes<'a>,
}

/// A message's alerts, each borrowed from the message where it can be.
pub type AlertBytes<'a> = Vec<Cow<'a, [u8]>>;

/// The reader schema as one writer's alerts are resolved to it.
#[derive(Debug)]
struct Resolution {
    schema: Schema,
    /// For archives that follow the values' schema (`None` if it cannot be checked).
    compiled: Option<Arc<Writer>>,
    /// Values back to bare Avro of `schema` (`None` likewise).
    encoder: Option<Encoder>,
}

/// Decodes messages with a reader schema (the built-in one or `--schema`).
#[derive(Debug)]
pub struct Decoder {
    reader: Schema,
    /// The reader schema compiled: what bare payloads are checked with and
    /// written in. `None` if it cannot be checked (recursive).
    compiled: Option<Arc<Writer>>,
    /// The reader schema adapted to each writer schema seen, by its text.
    resolutions: crate::cache::Bounded<String, Arc<Resolution>>,
    /// The reader schema compiled for checking bare payloads.
    shape: Option<Plan>,
    /// The reader schema compiled for the direct-to-JSON path, if it qualifies.
    plan: Option<Plan>,
    /// Set when the user chose the reader schema: container messages are then
    /// resolved to it; otherwise they are read with their own writer schema.
    resolve_to: Option<Schema>,
    /// A fixed framing, or `None` to recognise each message's.
    kind: Option<Kind>,
    budget: Budget,
    writers: WriterCache,
    /// The last key schema and its writer: a stream repeats one key, and
    /// comparing it costs less than hashing it for the cache.
    last_key: std::sync::Mutex<Option<(Vec<u8>, Arc<Writer>)>>,
    /// Writer schemas by Confluent id (`--schema-registry`, `--schema-dir`);
    /// without them Confluent messages are read with the reader schema.
    ids: Option<Arc<SchemaIds>>,
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
        let compile = |schema: &Schema| Writer::from_schema(schema.clone()).ok().map(Arc::new);
        Self {
            compiled: compile(&reader),
            resolutions: Default::default(),
            shape: Plan::shape(&reader),
            plan: Plan::compile(&reader),
            reader,
            resolve_to,
            kind: None,
            budget: Budget {
                alert_bytes: DEFAULT_MAX_ALERT_BYTES,
            },
            writers: WriterCache::default(),
            last_key: Default::default(),
            ids: None,
        }
    }

    /// Reads each Confluent message with the writer schema its id names
    /// (resolved to the reader schema when the user chose one).
    pub fn with_schema_ids(mut self, ids: Option<Arc<SchemaIds>>) -> Self {
        self.ids = ids;
        self
    }

    /// Reads every message in one framing instead of recognising it.
    pub fn with_kind(mut self, kind: Option<Kind>) -> Self {
        self.kind = kind;
        self
    }

    /// The most one alert may take (`--max-alert-bytes`).
    pub fn with_max_alert_bytes(mut self, bytes: usize) -> Self {
        self.budget = Budget { alert_bytes: bytes };
        self
    }

    /// The framing to read a payload in, and the one to try if that fails.
    fn framings(&self, message: Payload<'_>) -> Result<(Framing, Option<Framing>)> {
        let payload = message.value;
        Ok(match self.kind {
            None if claims_schema(message.key) => (Framing::KeySchema, None),
            None => detect(payload),
            Some(Kind::KeySchema) => (Framing::KeySchema, None),
            Some(Kind::Schemaless) => (Framing::Schemaless, None),
            Some(Kind::Container) => (Framing::Container, None),
            Some(Kind::Confluent) => (
                confluent(payload).ok_or_else(|| {
                    anyhow!("not Confluent-framed: needs byte 0 and a 4-byte schema id first")
                })?,
                None,
            ),
        })
    }

    /// Tries the framing, then the fallback; the error names both, except
    /// that a schema id's own error (unknown, registry down) is kept whole.
    fn either<T>(
        &self,
        message: Payload<'_>,
        mut read: impl FnMut(Framing) -> Result<T>,
    ) -> Result<(Framing, T)> {
        let (first, fallback) = self.framings(message)?;
        match (read(first), fallback) {
            (Ok(done), _) => Ok((first, done)),
            (Err(e), None) => Err(e),
            (Err(first_error), Some(second)) => match read(second) {
                Ok(done) => Ok((second, done)),
                Err(_) if is_schema_id_error(&first_error) => Err(first_error),
                Err(second_error) => Err(anyhow!(
                    "as {}: {first_error}; as bare Avro: {second_error}",
                    first.name()
                )),
            },
        }
    }

    /// The alerts of a message that names its writer schema (a container,
    /// Confluent with schema ids known, a schema in the key), checked;
    /// `None` for bare ones.
    fn written<'a>(
        &self,
        framing: Framing,
        message: Payload<'a>,
    ) -> Result<Option<gate::Checked<'a>>> {
        let payload = message.value;
        match (framing, &self.ids) {
            (Framing::Container, _) => self.open(payload).map(Some),
            (Framing::KeySchema, _) => {
                gate::check_bare(self.key_writer(message.key)?, payload, self.budget).map(Some)
            }
            (Framing::Confluent { schema_id }, Some(ids)) => {
                gate::check_bare(ids.writer(schema_id)?, bare(framing, payload), self.budget)
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Decodes a message and appends its alerts as JSON lines (cutouts left
    /// out); returns the framing and the number of alerts. Bare and Confluent
    /// payloads go straight from binary to JSON, and so do containers read
    /// with their own writer schema.
    pub fn decode_json<'a>(
        &self,
        payload: impl Into<Payload<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(Framing, usize)> {
        let message = payload.into();
        let payload = message.value;
        let start = out.len();
        self.either(message, |framing| {
            out.truncate(start);
            match self.written(framing, message)? {
                Some(checked) => self.checked_json(&checked, out),
                None => self.bare_json(bare(framing, payload), out).map(|()| 1),
            }
        })
        .inspect_err(|_| out.truncate(start))
    }

    fn bare_json(&self, bare: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let Some(plan) = &self.plan else {
            json::write_alert(out, &self.decode_bare(bare)?);
            out.push(b'\n');
            return Ok(());
        };
        plan.write_json(bare, self.budget, out)
            .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))?;
        out.push(b'\n');
        Ok(())
    }

    fn checked_json(&self, checked: &gate::Checked<'_>, out: &mut Vec<u8>) -> Result<usize> {
        match (&checked.writer.json, &self.resolve_to) {
            (Some(plan), None) => {
                for alert in checked.alerts() {
                    plan.write_json(alert, self.budget, out)
                        .map_err(|e| anyhow!("alert of the container: {e}"))?;
                    out.push(b'\n');
                }
            }
            _ => {
                for alert in self.values(checked)? {
                    json::write_alert(out, &alert);
                    out.push(b'\n');
                }
            }
        }
        Ok(checked.len())
    }

    /// Decodes every alert a message holds (a container may hold several).
    pub fn decode<'a>(&self, payload: impl Into<Payload<'a>>) -> Result<(Framing, Vec<Value>)> {
        let message = payload.into();
        let payload = message.value;
        self.either(message, |framing| match self.written(framing, message)? {
            Some(checked) => self.values(&checked),
            None => Ok(vec![self.decode_bare(bare(framing, payload))?]),
        })
    }

    /// Each alert of a message with only what `wanted` names decoded (what
    /// an expression reads); every alert is still checked whole. Alerts
    /// resolved to a reader schema are decoded in full.
    pub fn fields<'a>(&self, payload: impl Into<Payload<'a>>, wanted: &Need) -> Result<Vec<Value>> {
        self.framed_fields(payload, wanted)
            .map(|(_, alerts)| alerts)
    }

    /// [`Decoder::fields`], and how the message was framed.
    pub fn framed_fields<'a>(
        &self,
        payload: impl Into<Payload<'a>>,
        wanted: &Need,
    ) -> Result<(Framing, Vec<Value>)> {
        let message = payload.into();
        let payload = message.value;
        self.either(message, |framing| {
            match self.written(framing, message)? {
                Some(checked) if self.resolve_to.is_some() => return self.values(&checked),
                Some(checked) => {
                    return checked
                        .alerts()
                        .map(|a| {
                            checked
                                .writer
                                .shape
                                .fields(a, self.budget, wanted)
                                .map_err(|e| anyhow!("alert of the message: {e}"))
                        })
                        .collect();
                }
                None => {}
            }
            let bare = bare(framing, payload);
            let shape = self
                .shape
                .as_ref()
                .ok_or_else(|| anyhow!("the reader schema cannot be checked"))?;
            let alert = shape
                .fields(bare, self.budget, wanted)
                .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))?;
            Ok(vec![alert])
        })
    }

    /// A message's alerts as written (for archives that keep them so).
    pub fn datums<'a>(&self, payload: impl Into<Payload<'a>>) -> Result<Datums<'a>> {
        let message = payload.into();
        let payload = message.value;
        let (framing, (writer, alerts)) = self.either(message, |framing| {
            if let Some(checked) = self.written(framing, message)? {
                return Ok((checked.writer.clone(), checked.into_alerts()));
            }
            self.bare_datum(framing, payload)
        })?;
        Ok(Datums {
            framing,
            writer,
            alerts,
        })
    }

    /// A message's alerts as bare Avro of the schema their values follow:
    /// as written, or, when resolving to a reader schema, re-encoded in the
    /// reader schema as adapted to their writer (for Parquet columns).
    pub fn resolved_datums<'a>(&self, payload: impl Into<Payload<'a>>) -> Result<Datums<'a>> {
        self.resolved(payload.into(), true)
    }

    /// [`Decoder::resolved_datums`] for the Parquet shredder, which checks
    /// what it reads as the gate's walk does (`archive/shred.rs`, within
    /// [`Decoder::budget`]): a bare alert whose framing is not in doubt is
    /// handed on without that walk, so it is walked once, not twice. One
    /// that might be of either of two framings is walked: that decides.
    pub fn column_datums<'a>(&self, payload: impl Into<Payload<'a>>) -> Result<Datums<'a>> {
        let message = payload.into();
        let in_doubt = self.framings(message)?.1.is_some();
        self.resolved(message, in_doubt)
    }

    /// The limits each alert is read within (`--max-alert-bytes`).
    pub fn budget(&self) -> Budget {
        self.budget
    }

    fn resolved<'a>(&self, message: Payload<'a>, walk_bare: bool) -> Result<Datums<'a>> {
        let payload = message.value;
        let (framing, (writer, alerts)) = self.either(message, |framing| {
            let Some(checked) = self.written(framing, message)? else {
                return match walk_bare {
                    true => self.bare_datum(framing, payload),
                    false => Ok((
                        self.reader_compiled()?,
                        vec![Cow::Borrowed(bare(framing, payload))],
                    )),
                };
            };
            let Some(resolution) = self.resolution(&checked.writer) else {
                return Ok((checked.writer.clone(), checked.into_alerts()));
            };
            let (Some(compiled), Some(encoder)) = (&resolution.compiled, &resolution.encoder)
            else {
                return Err(anyhow!(
                    "the reader schema, resolved, cannot be checked (recursive or big-decimal)"
                ));
            };
            let alerts = self
                .values(&checked)?
                .iter()
                .map(|alert| encoder.encode(alert).map(Cow::Owned))
                .collect::<Result<_>>()?;
            Ok((compiled.clone(), alerts))
        })?;
        Ok(Datums {
            framing,
            writer,
            alerts,
        })
    }

    /// A bare or Confluent alert of the reader schema, checked.
    fn bare_datum<'a>(
        &self,
        framing: Framing,
        payload: &'a [u8],
    ) -> Result<(Arc<Writer>, AlertBytes<'a>)> {
        let bare = bare(framing, payload);
        let reader = self.reader_compiled()?;
        reader
            .shape
            .check(bare, self.budget)
            .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))?;
        Ok((reader, vec![Cow::Borrowed(bare)]))
    }

    /// The writer schema a message key carries: size, depth and names checked
    /// by the gate, parsed once per distinct key (bounded cache).
    fn key_writer(&self, key: Option<&[u8]>) -> Result<Arc<Writer>> {
        let key = key.ok_or_else(|| {
            anyhow!("no key: key-schema framing needs the writer schema in the message key")
        })?;
        if key.len() > MAX_KEY_SCHEMA_BYTES {
            return Err(anyhow!(
                "the key's writer schema is {} bytes, over the {} a schema may take",
                key.len(),
                MAX_KEY_SCHEMA_BYTES
            ));
        }
        let mut last = self
            .last_key
            .lock()
            .map_err(|_| anyhow!("a poisoned lock"))?;
        if let Some((_, writer)) = last.as_ref().filter(|(text, _)| text == key) {
            return Ok(writer.clone());
        }
        let writer = self.writers.get_as(key, "the key's writer schema")?;
        *last = Some((key.to_vec(), writer.clone()));
        Ok(writer)
    }

    fn reader_compiled(&self) -> Result<Arc<Writer>> {
        self.compiled.clone().ok_or_else(|| {
            anyhow!("the reader schema cannot be checked (recursive or big-decimal): bare messages are refused")
        })
    }

    fn open<'a>(&self, payload: &'a [u8]) -> Result<gate::Checked<'a>> {
        gate::open_container(
            payload,
            self.budget,
            gate::message_limit(self.budget),
            &self.writers,
        )
    }

    /// The reader schema adapted to `writer` (see `schema::adapt_to_writer`),
    /// when resolving; made once per writer schema.
    fn resolution(&self, writer: &Writer) -> Option<Arc<Resolution>> {
        let base = self.resolve_to.as_ref()?;
        let made = self.resolutions.get_or_try_insert(&*writer.text, || {
            let schema = super::schema::adapt_to_writer(base, &writer.schema).unwrap_or_else(|e| {
                tracing::warn!("reader schema kept as given for this writer: {e}");
                base.clone()
            });
            let compiled = Writer::from_schema(schema.clone()).ok().map(Arc::new);
            let encoder = Encoder::new(&schema);
            Ok::<_, std::convert::Infallible>(Arc::new(Resolution {
                schema,
                compiled,
                encoder,
            }))
        });
        made.ok()
    }

    /// A checked message's alerts as values, resolved to the reader schema if set.
    fn values(&self, checked: &gate::Checked<'_>) -> Result<Vec<Value>> {
        let resolution = self.resolution(&checked.writer);
        let reader = resolution.as_ref().map(|r| &r.schema);
        checked
            .alerts()
            .enumerate()
            .map(|(i, mut alert)| {
                from_avro_datum(&checked.writer.schema, &mut alert, reader)
                    .map_err(|e| anyhow!("alert {} of the container: {e}", i + 1))
            })
            .collect()
    }

    fn decode_bare(&self, bytes: &[u8]) -> Result<Value> {
        let Some(shape) = &self.shape else {
            return Err(anyhow!(
                "the reader schema cannot be checked (recursive or big-decimal): bare messages are refused"
            ));
        };
        shape
            .check(bytes, self.budget)
            .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))?;
        let mut rest = bytes;
        from_avro_datum(&self.reader, &mut rest, None)
            .map_err(|e| anyhow!("not an alert of the reader schema: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Reader;

    fn read_all(reader: Reader<'_, &[u8]>) -> Result<Vec<Value>> {
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    }

    const BUDGET: Budget = Budget {
        alert_bytes: DEFAULT_MAX_ALERT_BYTES,
    };

    #[test]
    fn framing_is_recognised() {
        assert_eq!(detect(b"Obj\x01rest"), (Framing::Container, None));
        assert_eq!(
            detect(&[0, 0, 0, 1, 2, 9, 9]),
            (
                Framing::Confluent { schema_id: 258 },
                Some(Framing::Schemaless)
            )
        );
        assert_eq!(detect(&[6, b'3', b'.', b'3']), (Framing::Schemaless, None));
        assert_eq!(detect(&[]), (Framing::Schemaless, None));
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

    /// The writer schema in the key: read as written whatever the reader
    /// schema, recognised in auto; a missing, oversized or non-schema key
    /// is an error naming it.
    #[test]
    fn key_schema_framing_reads_the_writer_from_the_key() {
        let bytes = std::fs::read(fixture("v3.3_472263571115115000.avro")).unwrap();
        let reader = Reader::new(bytes.as_slice()).unwrap();
        let schema = reader.writer_schema().clone();
        let alert = read_all(reader).unwrap().remove(0);
        let value = encode_framed(&schema, &alert, Framing::KeySchema).unwrap();
        let key = serde_json::to_vec(&schema).unwrap();
        // The built-in 4.02 reader would misread a 3.3 alert: the key decides.
        let auto = Decoder::new(super::super::schema::built_in(), false);
        let message = Payload {
            key: Some(&key),
            value: &value,
        };
        let (seen, alerts) = auto.decode(message).unwrap();
        assert_eq!(seen, Framing::KeySchema);
        assert_eq!(alerts, vec![alert]);
        let fixed = Decoder::new(schema.clone(), false).with_kind(Some(Kind::KeySchema));
        let error = |key: Option<&[u8]>| {
            let message = Payload { key, value: &value };
            fixed.decode(message).unwrap_err().to_string()
        };
        assert!(error(None).contains("no key"));
        assert!(error(Some(br#"{"objectId":"ZTF1"}"#)).contains("not valid Avro"));
        let huge = vec![b' '; MAX_KEY_SCHEMA_BYTES + 1];
        assert!(error(Some(&huge)).contains("over the"));
        // A key that does not claim to be a schema leaves auto as it was.
        assert!(!claims_schema(Some(b"ZTF18abcdefg")));
        assert!(claims_schema(Some(b" {\"type\": \"record\"}")));
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

    /// Every ZTF fixture (schema 1.7 to 3.3) resolves to the built-in 4.02
    /// layout: the same fields in the same order, fp_hists null.
    #[test]
    fn every_older_ztf_packet_resolves_to_4_02() {
        let decoder = Decoder::new(crate::avro::schema::built_in(), true);
        let Schema::Record(layout) = crate::avro::schema::built_in() else {
            panic!()
        };
        let names: Vec<&str> = layout.fields.iter().map(|f| f.name.as_str()).collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ztf");
        let mut resolved = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "avro") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let (_, alerts) = decoder
                .decode(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let Value::Record(fields) = &alerts[0] else {
                panic!()
            };
            let seen: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(seen, names, "{}", path.display());
            assert_eq!(fields[6].1, Value::Union(0, Box::new(Value::Null)));
            resolved += 1;
        }
        assert_eq!(resolved, 20);
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
                plan.write_json(&payload[..cut], BUDGET, &mut out).is_err(),
                "prefix {cut} accepted"
            );
        }
    }

    /// The partial decode an expression uses equals the full decode on the
    /// fields it keeps, for every fixture, bare and in a container.
    #[test]
    fn partial_decode_equals_the_full_one_on_its_fields() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ztf");
        let names = ["candid", "candidate", "prv_candidates"].map(String::from);
        let mut wanted = Need::none();
        for name in &names {
            wanted.add(std::slice::from_ref(name));
        }
        // And one field of a record: candidate.rb alone.
        let mut rb = Need::none();
        rb.add(&["candidate".to_string(), "rb".to_string()]);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "avro") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let reader = Reader::new(bytes.as_slice()).unwrap();
            let schema = reader.writer_schema().clone();
            let alert = read_all(reader).unwrap().remove(0);
            let bare = encode(&schema, &alert).unwrap();
            let decoder = Decoder::new(schema, false);
            for payload in [bare, bytes.clone()] {
                let partial = decoder.fields(&payload, &wanted).unwrap().remove(0);
                let (Value::Record(kept), Value::Record(all)) = (&partial, &alert) else {
                    panic!("records")
                };
                let expected: Vec<_> = all
                    .iter()
                    .filter(|(k, _)| names.contains(k))
                    .cloned()
                    .collect();
                assert_eq!(kept, &expected, "{}", path.display());
                let Value::Record(only_rb) = decoder.fields(&payload, &rb).unwrap().remove(0)
                else {
                    panic!("a record")
                };
                let Some((_, Value::Record(candidate))) =
                    all.iter().find(|(k, _)| k == "candidate")
                else {
                    panic!("candidate")
                };
                let full_rb = candidate.iter().find(|(k, _)| k == "rb").cloned();
                assert_eq!(
                    only_rb,
                    vec![(
                        "candidate".to_string(),
                        Value::Record(full_rb.into_iter().collect())
                    )],
                    "{}",
                    path.display()
                );
                // Checked whole: a cut anywhere, even past candidate, is an error.
                if payload[0] != b'O' {
                    for cut in (1..payload.len()).step_by(997) {
                        assert!(decoder.fields(&payload[..cut], &rb).is_err(), "cut {cut}");
                    }
                }
            }
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
            let error = plan.write_json(&payload, BUDGET, &mut out).unwrap_err();
            assert!(out.len() < 64, "{error}");
        }
    }

    #[test]
    fn recursive_writer_schemas_are_refused() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#,
        )
        .unwrap();
        assert!(crate::avro::schema::is_recursive(&schema));
        assert!(!crate::avro::schema::is_recursive(
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
        assert!(error.contains("bytes left over after the alert"), "{error}");
    }
}

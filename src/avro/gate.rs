//! The decode gate: every payload from Kafka or a file passes here before
//! any library allocates from it. Containers are parsed and decompressed by
//! this project behind byte limits (never by apache-avro), and every alert is
//! walked with its compiled schema, checking each length and count against
//! the bytes there are, before apache-avro or the JSON writer decodes it.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use apache_avro::Schema;

use super::container;
use super::plan::{Budget, Plan};

/// `--max-alert-bytes` by default: ZTF alerts are 40-90 KB, Rubin's a few
/// hundred KB; a message claiming more than this is refused.
pub const DEFAULT_MAX_ALERT_BYTES: usize = 16 << 20;

/// The most the blocks of one message may decompress to, together, unless
/// `--max-alert-bytes` is larger.
pub const MESSAGE_DECOMPRESSED_BYTES: usize = 64 << 20;

/// A schema alerts were written with, checked and compiled once.
#[derive(Debug)]
pub struct Writer {
    pub schema: Schema,
    /// The schema as JSON text, as a container file header carries it.
    pub text: String,
    /// For checking data of this schema.
    pub shape: Plan,
    /// For printing it straight to JSON, where the schema allows.
    pub json: Option<Plan>,
}

impl Writer {
    /// A container's writer schema, from its header.
    pub fn parse(text: &[u8]) -> Result<Self> {
        Self::parse_as(text, "the container's writer schema")
    }

    /// A writer schema from untrusted text; errors start with `what`.
    pub fn parse_as(text: &[u8], what: &str) -> Result<Self> {
        let text = std::str::from_utf8(text).map_err(|_| anyhow!("{what} is not UTF-8"))?;
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| anyhow!("{what} is not valid Avro (not JSON: {e})"))?;
        super::schema::check_names(&json)
            .map_err(|why| anyhow!("{what} is not valid Avro: {why}"))?;
        let schema = Schema::parse(&json).map_err(|e| anyhow!("{what} is not valid Avro: {e}"))?;
        Self::new(schema, text.to_string()).map_err(|e| anyhow!("{what} {e}; refused"))
    }

    /// A schema of our own (a reader schema), checked like any other.
    pub fn from_schema(schema: Schema) -> Result<Self> {
        let text = serde_json::to_string(&schema)?;
        Self::new(schema, text).map_err(|e| anyhow!("the schema {e}"))
    }

    fn new(schema: Schema, text: String) -> Result<Self> {
        if super::schema::is_recursive(&schema) {
            return Err(anyhow!("is recursive"));
        }
        let shape = Plan::shape(&schema)
            .ok_or_else(|| anyhow!("uses a type that cannot be checked (big-decimal)"))?;
        let json = Plan::compile(&schema);
        Ok(Self {
            schema,
            text,
            shape,
            json,
        })
    }
}

/// Writer schemas seen recently, by their text: a stream of containers
/// repeats the same few, and parsing one costs more than decoding an alert.
#[derive(Debug, Default)]
pub struct WriterCache {
    writers: crate::cache::Bounded<Vec<u8>, Arc<Writer>>,
}

impl WriterCache {
    pub fn get(&self, text: &[u8]) -> Result<Arc<Writer>> {
        self.get_as(text, "the container's writer schema")
    }

    /// As [`WriterCache::get`], errors starting with `what`.
    pub fn get_as(&self, text: &[u8], what: &str) -> Result<Arc<Writer>> {
        self.writers
            .get_or_try_insert(text, || Writer::parse_as(text, what).map(Arc::new))
    }
}

/// A container whose every alert has been checked against its writer schema.
#[derive(Debug)]
pub struct Checked<'a> {
    pub writer: Arc<Writer>,
    pub codec: container::Codec,
    blocks: Vec<Cow<'a, [u8]>>,
    /// (block, start, end) of each alert.
    alerts: Vec<(usize, usize, usize)>,
}

impl<'a> Checked<'a> {
    /// Each alert's bare Avro bytes, in order, borrowed from the message
    /// where its block was not compressed.
    pub fn into_alerts(self) -> super::codec::AlertBytes<'a> {
        let alerts = self.alerts.iter();
        alerts
            .map(|&(block, start, end)| match &self.blocks[block] {
                Cow::Borrowed(data) => Cow::Borrowed(&data[start..end]),
                Cow::Owned(data) => Cow::Owned(data[start..end].to_vec()),
            })
            .collect()
    }

    /// Each alert's bare Avro bytes, in order.
    pub fn alerts(&self) -> impl Iterator<Item = &[u8]> {
        self.alerts
            .iter()
            .map(|&(block, start, end)| &self.blocks[block][start..end])
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}

/// Opens a container (a Kafka message or a file): framing, codec, writer
/// schema, then each block decompressed (at most `total` bytes in all) and
/// split into alerts of at most `budget` bytes each.
pub fn open_container<'a>(
    bytes: &'a [u8],
    budget: Budget,
    total: usize,
    writers: &WriterCache,
) -> Result<Checked<'a>> {
    let parsed = container::parse(bytes).map_err(|e| anyhow!("bad Avro container: {e}"))?;
    let writer = writers.get(parsed.schema)?;
    let mut checked = Checked {
        writer,
        codec: parsed.codec,
        blocks: Vec::with_capacity(parsed.blocks.len()),
        alerts: Vec::new(),
    };
    let mut left = total;
    for block in &parsed.blocks {
        let fail = |e: String| {
            anyhow!(
                "bad Avro container: {} block at byte {}: {e}",
                parsed.codec.name(),
                block.offset
            )
        };
        let limit = budget
            .alert_bytes
            .saturating_mul(block.count as usize)
            .min(left);
        let data = parsed.codec.decompress(block.data, limit).map_err(fail)?;
        left -= data.len();
        let ends = checked
            .writer
            .shape
            .split(&data, block.count, budget)
            .map_err(|e| fail(e.to_string()))?;
        let index = checked.blocks.len();
        let mut start = 0;
        for end in ends {
            checked.alerts.push((index, start, end));
            start = end;
        }
        checked.blocks.push(data);
    }
    Ok(checked)
}

/// One bare alert of a known writer schema (a Confluent message whose id
/// named it), checked like a container's.
pub fn check_bare(writer: Arc<Writer>, bytes: &[u8], budget: Budget) -> Result<Checked<'_>> {
    writer
        .shape
        .check(bytes, budget)
        .map_err(|e| anyhow!("not an alert of its writer schema: {e}"))?;
    Ok(Checked {
        writer,
        codec: container::Codec::Null,
        blocks: vec![Cow::Borrowed(bytes)],
        alerts: vec![(0, 0, bytes.len())],
    })
}

/// The total decompressed size allowed for one message.
pub fn message_limit(budget: Budget) -> usize {
    MESSAGE_DECOMPRESSED_BYTES.max(budget.alert_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::container::{write_block, write_header, Codec};
    use crate::avro::varint::write_long;

    const SYNC: [u8; 16] = *b"0123456789abcdef";
    const BUDGET: Budget = Budget {
        alert_bytes: DEFAULT_MAX_ALERT_BYTES,
    };

    fn open(bytes: &[u8]) -> Result<Checked<'_>> {
        open_container(
            bytes,
            BUDGET,
            message_limit(BUDGET),
            &WriterCache::default(),
        )
    }

    fn one_block(
        schema: &str,
        codec: Codec,
        extra: &[(&str, &[u8])],
        count: u64,
        raw: &[u8],
    ) -> Vec<u8> {
        let mut bytes = write_header(schema, codec, extra, &SYNC);
        write_block(&mut bytes, count, &codec.compress(raw).unwrap(), &SYNC);
        bytes
    }

    const LONG_RECORD: &str =
        r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}"#;

    /// Alerts of an uncompressed container are handed on borrowed from the
    /// message; those of a compressed one are copied out of the block they
    /// were decompressed into. Either way, the same bytes as `alerts()`.
    #[test]
    fn into_alerts_borrows_only_what_was_not_decompressed() {
        let mut raw = Vec::new();
        for value in [1, -300, 1 << 40] {
            write_long(&mut raw, value);
        }
        for (codec, borrowed) in [(Codec::Null, true), (Codec::Deflate, false)] {
            let bytes = one_block(LONG_RECORD, codec, &[], 3, &raw);
            let checked = open(&bytes).unwrap();
            let expected: Vec<Vec<u8>> = checked.alerts().map(<[u8]>::to_vec).collect();
            let alerts = checked.into_alerts();
            assert_eq!(alerts.len(), 3);
            for (alert, expected) in alerts.iter().zip(&expected) {
                assert_eq!(alert.as_ref(), expected.as_slice(), "{codec:?}");
                assert_eq!(matches!(alert, Cow::Borrowed(_)), borrowed, "{codec:?}");
            }
        }
    }

    /// apache-avro unwraps names it has not validated: a mutated container
    /// header naming a record `candidat:` aborted the process (found by
    /// tests/fuzz.rs). Such schemas are refused with the reason.
    #[test]
    fn invalid_names_are_refused_not_panicked_on() {
        for (schema, reason) in [
            (
                r#"{"type":"record","name":"candidat:","fields":[]}"#,
                "candidat:",
            ),
            (
                r#"{"type":"record","name":"a","namespace":"b:c","fields":[]}"#,
                "b:c",
            ),
            (
                r#"{"type":"record","name":"a","aliases":["x y"],"fields":[]}"#,
                "aliases",
            ),
            (
                r#"{"type":"record","name":"a","fields":[{"name":"f","type":"in:t"}]}"#,
                "in:t",
            ),
            (
                r#"{"type":"record","name":"a","fields":[{"name":"f","aliases":[1],"type":"int"}]}"#,
                "aliases",
            ),
            (
                r#"{"type":"record","name":"a","fields":[{"name":"f","type":{"type":"fixed","name":"9x","size":2}}]}"#,
                "9x",
            ),
            (
                r#"{"type":"array","items":{"type":"fixed","name":"x","size":2.5}}"#,
                "size",
            ),
            (
                r#"["null",{"type":"enum","name":"e-1","symbols":["A"]}]"#,
                "e-1",
            ),
        ] {
            let error = Writer::parse_as(schema.as_bytes(), "the schema")
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{schema}: {error}");
        }
        // Valid names, dotted and with an empty namespace, and defaults that
        // look like schemas, pass.
        let fine = r#"{"type":"record","name":"ztf.alert","fields":[
            {"name":"c","type":{"type":"record","name":".cand","aliases":["a.b"],"fields":[]},
             "default":{"name":"not:a:name"}}]}"#;
        Writer::parse_as(fine.as_bytes(), "the schema").unwrap();
    }

    /// Issue 9: apache-avro panicked on an empty compression level.
    #[test]
    fn zstandard_with_an_empty_compression_level_decodes() {
        let bytes = one_block(
            LONG_RECORD,
            Codec::Zstandard,
            &[("avro.codec.compression_level", b"")],
            2,
            &[2, 4],
        );
        assert_eq!(open(&bytes).unwrap().len(), 2);
    }

    /// Issue 9: apache-avro panicked on a snappy block shorter than its checksum.
    #[test]
    fn a_snappy_block_shorter_than_its_checksum_is_refused() {
        let mut bytes = write_header(LONG_RECORD, Codec::Snappy, &[], &SYNC);
        write_block(&mut bytes, 1, &[0, 1], &SYNC);
        let error = open(&bytes).unwrap_err().to_string();
        assert!(
            error.contains("shorter than its 4-byte checksum"),
            "{error}"
        );
    }

    /// Issue 9: 64 Mi nulls per block took 16 GB; the budget refuses at once.
    #[test]
    fn arrays_of_nulls_draw_on_the_alert_budget() {
        let schema = r#"{"type":"array","items":"null"}"#;
        let mut raw = Vec::new();
        for _ in 0..64 {
            write_long(&mut raw, 64 << 20);
        }
        write_long(&mut raw, 0);
        let bytes = one_block(schema, Codec::Null, &[], 1, &raw);
        let error = open(&bytes).unwrap_err().to_string();
        assert!(
            error.contains("empty items exceeds --max-alert-bytes"),
            "{error}"
        );
        // Within the budget, an array of nulls is fine.
        let mut small = Vec::new();
        write_long(&mut small, 1000);
        write_long(&mut small, 0);
        assert_eq!(
            open(&one_block(schema, Codec::Null, &[], 1, &small))
                .unwrap()
                .len(),
            1
        );
    }

    /// Issue 9: a 1 MB deflate block inflating to 1 GiB took 2.1 GB.
    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let schema = r#"{"type":"record","name":"r","fields":[{"name":"b","type":"bytes"}]}"#;
        let zeros = vec![0u8; 256 << 20];
        for codec in [Codec::Deflate, Codec::Zstandard, Codec::Snappy] {
            let bytes = one_block(schema, codec, &[], 1000, &zeros);
            let error = open(&bytes).unwrap_err().to_string();
            assert!(
                error.contains("decompresses to more than"),
                "{codec:?}: {error}"
            );
        }
    }

    #[test]
    fn an_alert_over_the_budget_is_refused() {
        let schema = r#"{"type":"record","name":"r","fields":[{"name":"b","type":"bytes"}]}"#;
        let mut raw = Vec::new();
        write_long(&mut raw, 2000);
        raw.extend_from_slice(&[1; 2000]);
        let bytes = one_block(schema, Codec::Deflate, &[], 1, &raw);
        let small = Budget { alert_bytes: 1000 };
        let error = open_container(&bytes, small, 1 << 20, &WriterCache::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("more than 1000 bytes"), "{error}");
        assert!(open(&bytes).is_ok());
    }

    #[test]
    fn hostile_writer_schemas_are_refused() {
        for (schema, why) in [
            (
                r#"{"type":"record","name":"n","fields":[{"name":"next","type":["null","n"]}]}"#,
                "recursive",
            ),
            ("{not json", "not valid Avro"),
            (
                r#"{"type":"bytes","logicalType":"big-decimal"}"#,
                "cannot be checked",
            ),
        ] {
            let bytes = one_block(schema, Codec::Null, &[], 1, &[0]);
            let error = open(&bytes).unwrap_err().to_string();
            assert!(error.contains(why), "{schema}: {error}");
        }
    }

    #[test]
    fn more_objects_than_bytes_is_refused() {
        let bytes = one_block(r#""null""#, Codec::Null, &[], 1 << 40, &[]);
        assert!(open(&bytes).is_err());
    }
}

//! Avro archive files: object container files with the writer schema in the
//! header and each alert's bytes exactly as they arrived (no re-encoding),
//! and beside each, `NAME.kafka.jsonl`: one line per alert, in order, with
//! its partition, offset, broker timestamp, key and headers.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::files::file_name;
use super::Meta;
use crate::avro::container::{write_header, Codec};
use crate::avro::varint::write_long;
use crate::durable::{Pending, Written};

/// A block is written once it holds this many bytes of alerts.
const BLOCK_BYTES: usize = 1 << 20;

/// The sidecar of an archive file: where its alerts came from.
pub fn sidecar_name(name: &str) -> String {
    format!("{name}.kafka.jsonl")
}

/// An Avro archive file being written.
pub struct AvroFile {
    file: Pending,
    out: Written,
    side: Pending,
    side_out: BufWriter<Written>,
    codec: Codec,
    sync: [u8; 16],
    block: Vec<u8>,
    block_count: u64,
    pub alerts: u64,
    /// Bytes written to the file so far (header and blocks).
    written: u64,
}

impl AvroFile {
    pub fn create(
        dir: &Path,
        topic: &str,
        first: &Meta,
        schema_text: &str,
        codec: Codec,
    ) -> Result<Self> {
        let name = file_name(topic, first.partition, first.offset, "avro");
        let file = Pending::new(dir, &name)?;
        let side = Pending::new(dir, &sidecar_name(&name))?;
        // Derived from the name: the same file written again is the same bytes.
        let sync = sync_marker(&name);
        let mut out = file.create_archive()?;
        let side_out = BufWriter::new(side.create()?);
        let header = write_header(schema_text, codec, &[], &sync);
        out.write_all(&header)
            .with_context(|| format!("cannot write {}", file.temp.display()))?;
        Ok(Self {
            file,
            out,
            side,
            side_out,
            codec,
            sync,
            block: Vec::with_capacity(BLOCK_BYTES + (64 << 10)),
            block_count: 0,
            alerts: 0,
            written: header.len() as u64,
        })
    }

    /// The file's size once what is buffered is written: the blocks on
    /// disk plus the block being filled (before compression), so that a
    /// --roll-bytes below a block's size is kept too.
    pub fn bytes(&self) -> u64 {
        self.written + self.block.len() as u64
    }

    pub fn append(&mut self, datum: &[u8], meta: &Meta) -> Result<()> {
        self.block.extend_from_slice(datum);
        self.block_count += 1;
        self.alerts += 1;
        serde_json::to_writer(&mut self.side_out, meta)?;
        self.side_out
            .write_all(b"\n")
            .with_context(|| format!("cannot write {}", self.side.temp.display()))?;
        if self.block.len() >= BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self) -> Result<()> {
        if self.block_count == 0 {
            return Ok(());
        }
        let compressed;
        let data: &[u8] = if self.codec == Codec::Null {
            &self.block
        } else {
            compressed = self.codec.compress(&self.block).with_context(|| {
                format!("cannot compress a block of {}", self.file.temp.display())
            })?;
            &compressed
        };
        // Object count and byte size, the data straight from the buffer, the sync marker.
        let mut head = Vec::with_capacity(20);
        write_long(&mut head, self.block_count as i64);
        write_long(&mut head, data.len() as i64);
        let written = self
            .out
            .write_all(&head)
            .and_then(|()| self.out.write_all(data))
            .and_then(|()| self.out.write_all(&self.sync));
        written.with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        self.written += (head.len() + data.len() + self.sync.len()) as u64;
        self.block.clear();
        self.block_count = 0;
        Ok(())
    }

    /// Writes what is left, makes both files durable and names them.
    pub fn finish(mut self) -> Result<()> {
        self.write_block()?;
        let side = self
            .side_out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.side.temp.display()))?;
        // The sidecar first: a file in place always has its sidecar.
        self.side.commit(side)?;
        self.file.commit(self.out)
    }

    /// Drops the file and its sidecar: their temporary files go with them.
    pub fn discard(self) {}
}

fn sync_marker(name: &str) -> [u8; 16] {
    // FNV-1a, twice with different seeds: stable across runs and versions.
    let hash = |seed: u64| {
        name.bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
    };
    let mut sync = [0u8; 16];
    sync[..8].copy_from_slice(&hash(0xcbf29ce484222325).to_le_bytes());
    sync[8..].copy_from_slice(&hash(0x84222325cbf29ce4).to_le_bytes());
    sync
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::gate::{open_container, WriterCache, DEFAULT_MAX_ALERT_BYTES};
    use crate::avro::plan::Budget;

    /// What an archive file holds reads back through the decode gate, in
    /// every codec, alert for alert, with its sidecar line for line.
    #[test]
    fn files_read_back_alert_for_alert() {
        let budget = Budget {
            alert_bytes: DEFAULT_MAX_ALERT_BYTES,
        };
        let sample = include_bytes!("../../sample-alerts/visit-1.avro");
        let source = open_container(sample, budget, usize::MAX, &WriterCache::default()).unwrap();
        let datums: Vec<Vec<u8>> = source.alerts().map(<[u8]>::to_vec).collect();
        assert!(datums.len() > 1);
        let text = source.writer.text.clone();
        for codec in [Codec::Null, Codec::Deflate, Codec::Snappy, Codec::Zstandard] {
            let dir = tempfile::tempdir().unwrap();
            let first = Meta {
                partition: 2,
                offset: 40,
                timestamp: Some(1),
                key: None,
                headers: vec![],
            };
            let mut file = AvroFile::create(dir.path(), "t", &first, &text, codec).unwrap();
            for (i, datum) in datums.iter().enumerate() {
                let meta = Meta {
                    offset: 40 + i as i64,
                    ..first.clone()
                };
                file.append(datum, &meta).unwrap();
            }
            file.finish().unwrap();
            let name = file_name("t", 2, 40, "avro");
            let bytes = std::fs::read(dir.path().join(&name)).unwrap();
            let checked =
                open_container(&bytes, budget, usize::MAX, &WriterCache::default()).unwrap();
            let read: Vec<Vec<u8>> = checked.alerts().map(<[u8]>::to_vec).collect();
            assert_eq!(read, datums, "{codec:?}");
            let sidecar = std::fs::read_to_string(dir.path().join(sidecar_name(&name))).unwrap();
            assert_eq!(sidecar.lines().count(), datums.len());
        }
    }
}

//! Avro archive files: object container files with the writer schema in the
//! header and each alert's bytes exactly as they arrived (no re-encoding),
//! and beside each, `NAME.kafka.jsonl`: one line per alert, in order, with
//! its partition, offset, broker timestamp, key and headers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::files::{file_name, Pending};
use super::Meta;
use crate::avro::container::{write_block, write_header, Codec};

/// A block is written once it holds this many bytes of alerts.
const BLOCK_BYTES: usize = 1 << 20;

/// The sidecar of an archive file: where its alerts came from.
pub fn sidecar_name(name: &str) -> String {
    format!("{name}.kafka.jsonl")
}

/// An Avro archive file being written.
pub struct AvroFile {
    file: Pending,
    out: BufWriter<File>,
    side: Pending,
    side_out: BufWriter<File>,
    codec: Codec,
    sync: [u8; 16],
    block: Vec<u8>,
    block_count: u64,
    pub alerts: u64,
    pub bytes: u64,
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
        let mut out = BufWriter::new(file.create()?);
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
            bytes: header.len() as u64,
        })
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
        let data = self
            .codec
            .compress(&self.block)
            .with_context(|| format!("cannot compress a block of {}", self.file.temp.display()))?;
        let mut framed = Vec::with_capacity(data.len() + 40);
        write_block(&mut framed, self.block_count, &data, &self.sync);
        self.out
            .write_all(&framed)
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        self.bytes += framed.len() as u64;
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
        let out = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        // The sidecar first: a file in place always has its sidecar.
        self.side.commit(side)?;
        self.file.commit(out)
    }

    pub fn discard(self) {
        self.file.discard();
        self.side.discard();
    }
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

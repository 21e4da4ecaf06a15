//! Parquet archive files: rows of alerts in the Arrow layout derived from
//! their Avro schema (`arrow.rs`), plus a `_kafka` column (partition,
//! offset, broker timestamp), written in row groups of [`ROWS_PER_GROUP`] so
//! that memory stays bounded whatever the file's size.

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::arrow::{Layout, Rows};
use super::files::{file_name, Pending, Written};
use super::Meta;
use crate::avro::container::Codec;

/// Alerts buffered before they are written as one row group.
pub const ROWS_PER_GROUP: usize = 256;

/// A Parquet archive file being written.
pub struct ParquetFile {
    file: Pending,
    writer: ArrowWriter<BufWriter<Written>>,
    layout: Arc<Layout>,
    rows: Rows,
    /// Avro bytes of the alerts buffered in `rows`, not yet a row group.
    buffered: u64,
    pub alerts: u64,
}

impl ParquetFile {
    pub fn create(
        dir: &Path,
        topic: &str,
        first: &Meta,
        layout: Arc<Layout>,
        codec: Codec,
    ) -> Result<Self> {
        let file = Pending::new(
            dir,
            &file_name(topic, first.partition, first.offset, "parquet"),
        )?;
        let compression = match codec {
            Codec::Null => Compression::UNCOMPRESSED,
            Codec::Deflate => Compression::GZIP(GzipLevel::default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstandard => Compression::ZSTD(ZstdLevel::default()),
        };
        // Alert columns are mostly unique floats and images: dictionaries
        // cost hashing every value and save nothing.
        let mut properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_compression(compression)
            .set_max_row_group_row_count(Some(ROWS_PER_GROUP));
        for path in layout.binary_columns() {
            properties = properties
                .set_column_statistics_enabled(ColumnPath::new(path), EnabledStatistics::None);
        }
        let properties = properties.build();
        let out = BufWriter::with_capacity(1 << 20, file.create()?);
        let writer = ArrowWriter::try_new(out, layout.schema.clone(), Some(properties))
            .with_context(|| format!("cannot start {}", file.temp.display()))?;
        Ok(Self {
            file,
            writer,
            rows: layout.rows()?,
            layout,
            buffered: 0,
            alerts: 0,
        })
    }

    /// Appends a message's alerts (bare Avro of the layout's schema,
    /// checked by the gate): all of them, or none on an error.
    pub fn append(&mut self, alerts: &[Vec<u8>], meta: &Meta) -> Result<()> {
        self.layout.append(&mut self.rows, alerts, meta)?;
        self.alerts += alerts.len() as u64;
        self.buffered += alerts.iter().map(|a| a.len() as u64).sum::<u64>();
        if self.rows.len() >= ROWS_PER_GROUP {
            self.write_rows()?;
        }
        Ok(())
    }

    /// The file's size once what is buffered is written: the row groups on
    /// disk plus the alerts not yet in one (their Avro size, about what
    /// their columns take), so that a --roll-bytes below a row group's size
    /// is kept too.
    pub fn bytes(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.buffered
    }

    fn write_rows(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = self.layout.batch(&mut self.rows)?;
        self.buffered = 0;
        self.writer
            .write(&batch)
            .and_then(|()| self.writer.flush())
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.write_rows()?;
        let file = self
            .writer
            .into_inner()
            .map_err(anyhow::Error::from)
            .and_then(|out| out.into_inner().map_err(|e| e.into_error().into()))
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        self.file.commit(file)
    }

    pub fn discard(self) {
        self.file.discard();
    }
}

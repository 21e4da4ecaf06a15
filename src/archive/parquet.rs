//! Parquet archive files: rows of alerts in the Arrow layout derived from
//! their Avro schema (`arrow.rs`), plus a `_kafka` column (partition,
//! offset, broker timestamp), written in row groups of [`ROWS_PER_GROUP`] so
//! that memory stays bounded whatever the file's size.
//!
//! Encoding a row group (levels, pages, compression) costs about as much as
//! reading and shredding its alerts, so each file encodes on a thread of its
//! own while the next row group is shredded: the two halves run on two cores.

use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use arrow_array::RecordBatch;
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

type Writer = ArrowWriter<BufWriter<Written>>;

/// Keeps freed memory in the process for the next row group. A row group's
/// buffers (megabytes of images, built on one thread and freed on the
/// other) are above glibc's default mmap threshold, so each was mapped,
/// faulted in page by page, zeroed and unmapped again: about a sixth of
/// Parquet archiving's time. Peak memory is unchanged (the same buffers are
/// live at once); freed memory stays mapped until the recorder exits.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before
    // any row group is allocated.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// A Parquet archive file being written.
pub struct ParquetFile {
    file: Pending,
    layout: Arc<Layout>,
    rows: Rows,
    /// Avro bytes of the alerts buffered in `rows`, not yet a row group.
    buffered: u64,
    /// What the encoding thread has: bytes on disk, and the Avro bytes of
    /// row groups handed to it and not yet written.
    encoder: Encoder,
    pub alerts: u64,
}

/// The thread encoding a file's row groups, one at a time: a row group is
/// handed over only when the thread is ready for it, so at most two are in
/// memory (one being shredded, one being encoded).
struct Encoder {
    batches: Option<SyncSender<(RecordBatch, u64)>>,
    thread: Option<JoinHandle<Result<Writer>>>,
    written: Arc<AtomicU64>,
    unwritten: Arc<AtomicU64>,
}

impl Encoder {
    fn start(mut writer: Writer, temp: &Path) -> Result<Self> {
        let (batches, incoming) = sync_channel::<(RecordBatch, u64)>(0);
        let written = Arc::new(AtomicU64::new(0));
        let unwritten = Arc::new(AtomicU64::new(0));
        let (on_disk, pending) = (written.clone(), unwritten.clone());
        let temp = temp.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("parquet".into())
            .spawn(move || {
                for (batch, avro_bytes) in incoming {
                    writer
                        .write(&batch)
                        .and_then(|()| writer.flush())
                        .with_context(|| format!("cannot write {}", temp.display()))?;
                    on_disk.store(writer.bytes_written() as u64, Ordering::Relaxed);
                    pending.fetch_sub(avro_bytes, Ordering::Relaxed);
                }
                Ok(writer)
            })
            .context("cannot start a Parquet encoding thread")?;
        Ok(Self {
            batches: Some(batches),
            thread: Some(thread),
            written,
            unwritten,
        })
    }

    fn send(&mut self, batch: RecordBatch, avro_bytes: u64) -> Result<()> {
        self.unwritten.fetch_add(avro_bytes, Ordering::Relaxed);
        let sent = match &self.batches {
            Some(batches) => batches.send((batch, avro_bytes)).is_ok(),
            None => false,
        };
        match sent {
            true => Ok(()),
            // The thread stopped on an error: that error is the one to tell.
            false => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("encoder gone"))),
        }
    }

    fn bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed) + self.unwritten.load(Ordering::Relaxed)
    }

    /// Waits for every row group handed over to be written.
    fn finish(&mut self) -> Result<Writer> {
        self.batches = None;
        let thread = self.thread.take().ok_or_else(|| anyhow!("encoder gone"))?;
        thread
            .join()
            .map_err(|_| anyhow!("the Parquet encoding thread panicked"))?
    }
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
        // Small: pages of images (about a megabyte) bypass the buffer instead
        // of being copied through it; page headers and small columns gather.
        let out = BufWriter::with_capacity(64 << 10, file.create()?);
        let writer = ArrowWriter::try_new(out, layout.schema.clone(), Some(properties))
            .with_context(|| format!("cannot start {}", file.temp.display()))?;
        let encoder = Encoder::start(writer, &file.temp)?;
        Ok(Self {
            file,
            rows: layout.rows()?,
            layout,
            buffered: 0,
            encoder,
            alerts: 0,
        })
    }

    /// Appends a message's alerts (bare Avro of the layout's schema,
    /// checked by the gate): all of them, or none on an error. An error
    /// here is the message's; [`ParquetFile::write_full_group`] reports the
    /// file's.
    pub fn append(&mut self, alerts: &[impl AsRef<[u8]>], meta: &Meta) -> Result<()> {
        self.layout.append(&mut self.rows, alerts, meta)?;
        self.alerts += alerts.len() as u64;
        self.buffered += alerts.iter().map(|a| a.as_ref().len() as u64).sum::<u64>();
        Ok(())
    }

    /// Hands the buffered rows to the encoding thread once they fill a row
    /// group; fails when an earlier row group could not be written.
    pub fn write_full_group(&mut self) -> Result<()> {
        match self.rows.len() >= ROWS_PER_GROUP {
            true => self.write_rows(),
            false => Ok(()),
        }
    }

    /// The file's size once what is buffered is written: the row groups on
    /// disk plus the alerts not yet in one (their Avro size, about what
    /// their columns take), so that a --roll-bytes below a row group's size
    /// is kept too.
    pub fn bytes(&self) -> u64 {
        self.encoder.bytes() + self.buffered
    }

    fn write_rows(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = self.layout.batch(&mut self.rows)?;
        let avro_bytes = std::mem::take(&mut self.buffered);
        self.encoder.send(batch, avro_bytes)
    }

    pub fn finish(mut self) -> Result<()> {
        self.write_rows()?;
        let file = self
            .encoder
            .finish()?
            .into_inner()
            .map_err(anyhow::Error::from)
            .and_then(|out| out.into_inner().map_err(|e| e.into_error().into()))
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        self.file.commit(file)
    }

    pub fn discard(mut self) {
        let _ = self.encoder.finish();
        self.file.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn meta(offset: i64) -> Meta {
        Meta {
            partition: 3,
            offset,
            timestamp: Some(offset),
            key: None,
            headers: vec![],
        }
    }

    /// Alerts spanning several row groups, handed one by one to the
    /// encoding thread, read back in order, each once.
    #[test]
    fn row_groups_encoded_on_their_thread_keep_every_alert_in_order() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[{"name":"id","type":"long"}]}"#,
        )
        .unwrap();
        let layout = Arc::new(Layout::new(&schema, true).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let mut file =
            ParquetFile::create(dir.path(), "t", &meta(0), layout, Codec::Snappy).unwrap();
        let count = ROWS_PER_GROUP as i64 * 3 + 17;
        for id in 0..count {
            // Avro's zig-zag varint of a small long.
            let mut datum = Vec::new();
            crate::avro::varint::write_long(&mut datum, id);
            file.append(&[datum], &meta(id)).unwrap();
            file.write_full_group().unwrap();
            assert!(file.bytes() > 0);
        }
        file.finish().unwrap();
        let path = dir.path().join(file_name("t", 3, 0, "parquet"));
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 4);
        let mut ids = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            ids.extend(
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert_eq!(ids, (0..count).collect::<Vec<_>>());
    }
}

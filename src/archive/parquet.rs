//! Parquet archive files: rows of alerts in the Arrow layout derived from
//! their Avro schema (`arrow.rs`), plus a `_kafka` column (partition,
//! offset, broker timestamp), written in row groups of [`ROWS_PER_GROUP`] so
//! that memory stays bounded whatever the file's size.
//!
//! Encoding a row group (levels, pages, compression) and writing it cost
//! about as much as reading and shredding its alerts, so each file encodes
//! on a thread of its own and writes on another while the next row group is
//! shredded ([`Encoder`]).
//! In an uncompressed file (the default), the image columns skip the
//! encoder: their bytes go to the file from the shredded buffers
//! (`splice.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::arrow::{Layout, Rows};
use super::files::file_name;
use super::splice::{LeafPath, Placeholder, PlainChunk, Splicing};
use super::Meta;
use crate::avro::container::Codec;
use crate::avro::plan::Budget;
use crate::durable::{Pending, Written};

/// Alerts buffered before they are written as one row group.
pub const ROWS_PER_GROUP: usize = 256;

/// Keeps freed memory in the process for the next row group. A row group's
/// buffers (megabytes of images, built on one thread and freed on another)
/// are above glibc's default mmap threshold, so each was mapped,
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

/// A file's Parquet writer: a row group per batch, its columns encoded by
/// parquet-rs's Arrow writer, except the image columns of an uncompressed
/// file, which are spliced in from the shredded buffers (`splice.rs`).
struct Writer {
    file: SerializedFileWriter<Splicing<Written>>,
}

/// A file's row groups turned into column chunks, each in memory until the
/// [`Writer`] places it in the file.
struct Columns {
    factory: ArrowRowGroupWriterFactory,
    /// Each Parquet leaf column's place in a batch, if it is spliced.
    spliced: Vec<Option<LeafPath>>,
    row_groups: usize,
}

/// A leaf column of a row group, encoded by parquet-rs or to be spliced.
enum Chunk {
    Encoded(Box<ArrowColumnChunk>),
    Spliced(PlainChunk),
}

/// A spliced chunk with its leaf index and the file offset it starts at.
type ToSplice = (usize, u64, PlainChunk);

/// What a row group is given for each leaf column.
enum Append {
    Encoded(Box<ArrowColumnChunk>),
    Spliced(Placeholder, Box<ColumnCloseResult>),
}

impl Writer {
    fn new(
        out: Written,
        layout: &Layout,
        properties: WriterProperties,
        splice: bool,
    ) -> Result<(Self, Columns)> {
        // No buffer between: an archive's file gathers its writes itself.
        let out = Splicing::new(out);
        let writer = ArrowWriter::try_new(out, layout.schema.clone(), Some(properties))?;
        let (file, factory) = writer.into_serialized_writer()?;
        let spliced = file
            .schema_descr()
            .columns()
            .iter()
            .map(|leaf| match splice {
                true => LeafPath::find(layout.schema.fields(), leaf),
                false => None,
            })
            .collect();
        let columns = Columns {
            factory,
            spliced,
            row_groups: 0,
        };
        Ok((Self { file }, columns))
    }

    /// Writes a batch's column chunks as one row group. The spliced chunks
    /// are announced to the writer underneath at the offsets the chunks
    /// before them end at; the row group's metadata then says where each
    /// landed, and a chunk placed elsewhere fails the file.
    fn write(&mut self, chunks: Vec<Chunk>) -> Result<()> {
        let (appends, spliced) = self.place(chunks)?;
        let mut announced = Vec::with_capacity(spliced.len());
        for (leaf, at, chunk) in spliced {
            self.file.inner_mut().announce(at, chunk);
            announced.push((leaf, at));
        }
        let mut row_group = self.file.next_row_group()?;
        for append in appends {
            match append {
                Append::Encoded(chunk) => chunk.append_to_row_group(&mut row_group)?,
                Append::Spliced(placeholder, close) => {
                    row_group.append_column(&placeholder, *close)?
                }
            }
        }
        let written = row_group.close()?;
        for (leaf, at) in announced {
            let column = written.column(leaf);
            if column.data_page_offset() as u64 != at {
                bail!(
                    "column {} was written at byte {at} and placed at byte {}",
                    column.column_path(),
                    column.data_page_offset()
                );
            }
        }
        Ok(())
    }

    /// What the row group is given for each leaf, and the spliced chunks
    /// with their leaf index and the file offset each will start at: all
    /// that can fail is done before any chunk is announced.
    fn place(&self, chunks: Vec<Chunk>) -> Result<(Vec<Append>, Vec<ToSplice>)> {
        let mut at = self.file.bytes_written() as u64;
        let mut appends = Vec::with_capacity(chunks.len());
        let mut spliced = Vec::new();
        for (leaf, chunk) in chunks.into_iter().enumerate() {
            match chunk {
                Chunk::Encoded(chunk) => {
                    at += chunk.close().metadata.compressed_size() as u64;
                    appends.push(Append::Encoded(chunk));
                }
                Chunk::Spliced(chunk) => {
                    let (placeholder, close) = chunk.for_append()?;
                    appends.push(Append::Spliced(placeholder, Box::new(close)));
                    let bytes = chunk.bytes();
                    spliced.push((leaf, at, chunk));
                    at += bytes;
                }
            }
        }
        Ok((appends, spliced))
    }

    fn bytes_written(&self) -> u64 {
        self.file.bytes_written() as u64
    }

    /// Writes the footer; the file underneath.
    fn finish(self) -> Result<Written> {
        self.file.into_inner()?.into_inner()
    }
}

impl Columns {
    /// Every leaf column of `batch`, in the file's order.
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Chunk>> {
        let mut writers = self
            .factory
            .create_column_writers(self.row_groups)?
            .into_iter();
        self.row_groups += 1;
        let mut spliced = self.spliced.iter();
        let mut chunks = Vec::with_capacity(self.spliced.len());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                match (writers.next(), spliced.next()) {
                    (Some(_), Some(Some(path))) => {
                        chunks.push(Chunk::Spliced(PlainChunk::build(path, batch)?))
                    }
                    (Some(mut writer), Some(None)) => {
                        writer.write(&leaf)?;
                        chunks.push(Chunk::Encoded(Box::new(writer.close()?)));
                    }
                    _ => return Err(anyhow!("a batch has more columns than its file")),
                }
            }
        }
        Ok(chunks)
    }

    fn spliced_columns(&self) -> usize {
        self.spliced.iter().flatten().count()
    }
}

/// A Parquet archive file being written.
pub struct ParquetFile {
    file: Pending,
    layout: Arc<Layout>,
    rows: Rows,
    /// Avro bytes of the alerts buffered in `rows`, not yet a row group.
    buffered: u64,
    /// What the encoding and writing threads have: bytes on disk, and the
    /// Avro bytes of row groups handed over and not yet written.
    encoder: Encoder,
    pub alerts: u64,
    /// Leaf columns spliced in from the shredded buffers (`splice.rs`).
    spliced_columns: usize,
}

/// Two threads taking a file's row groups in turn: one encodes a row
/// group's columns, the other writes the chunks of the one before (the
/// images copied into the file's blocks, the disk writes: most of the
/// work). A row group may wait for the encoding thread, so that a slow
/// one does not hold up the shredding; at most four are in memory (one
/// being shredded, one waiting, one being encoded, one being written).
struct Encoder {
    batches: Option<SyncSender<(RecordBatch, u64)>>,
    encoding: Option<JoinHandle<Result<()>>>,
    writing: Option<JoinHandle<Result<Writer>>>,
    written: Arc<AtomicU64>,
    unwritten: Arc<AtomicU64>,
}

impl Encoder {
    fn start(mut writer: Writer, mut columns: Columns, temp: &Path) -> Result<Self> {
        let (batches, incoming) = sync_channel::<(RecordBatch, u64)>(1);
        let (encoded, to_write) = sync_channel::<(Vec<Chunk>, u64)>(0);
        let written = Arc::new(AtomicU64::new(0));
        let unwritten = Arc::new(AtomicU64::new(0));
        let (on_disk, pending) = (written.clone(), unwritten.clone());
        let temp = temp.to_path_buf();
        let encoding = std::thread::Builder::new()
            .name("parquet-encode".into())
            .spawn(move || {
                for (batch, avro_bytes) in incoming {
                    let chunks = columns.encode(&batch)?;
                    // Compressed, the chunks hold copies: the batch goes now.
                    drop(batch);
                    // The writing thread stopped on an error: it tells it.
                    if encoded.send((chunks, avro_bytes)).is_err() {
                        break;
                    }
                }
                Ok(())
            })
            .context("cannot start a Parquet encoding thread")?;
        let writing = std::thread::Builder::new()
            .name("parquet".into())
            .spawn(move || {
                for (chunks, avro_bytes) in to_write {
                    writer
                        .write(chunks)
                        .with_context(|| format!("cannot write {}", temp.display()))?;
                    on_disk.store(writer.bytes_written(), Ordering::Relaxed);
                    pending.fetch_sub(avro_bytes, Ordering::Relaxed);
                }
                Ok(writer)
            })
            .context("cannot start a Parquet writing thread")?;
        Ok(Self {
            batches: Some(batches),
            encoding: Some(encoding),
            writing: Some(writing),
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

    /// Waits for every row group handed over to be written; an encoding
    /// error first, as the writing stops when the encoding does.
    fn finish(&mut self) -> Result<Writer> {
        self.batches = None;
        let (encoding, writing) = (self.encoding.take(), self.writing.take());
        let (Some(encoding), Some(writing)) = (encoding, writing) else {
            bail!("encoder gone");
        };
        let encoded = encoding
            .join()
            .map_err(|_| anyhow!("the Parquet encoding thread panicked"))?;
        let written = writing
            .join()
            .map_err(|_| anyhow!("the Parquet writing thread panicked"))?;
        encoded.and(written)
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
        let (writer, columns) = Writer::new(
            file.create_archive()?,
            &layout,
            properties,
            codec == Codec::Null,
        )
        .with_context(|| format!("cannot start {}", file.temp.display()))?;
        let spliced_columns = columns.spliced_columns();
        let encoder = Encoder::start(writer, columns, &file.temp)?;
        Ok(Self {
            spliced_columns,
            file,
            rows: layout.rows()?,
            layout,
            buffered: 0,
            encoder,
            alerts: 0,
        })
    }

    /// Appends a message's alerts (bare Avro of the layout's schema, each
    /// checked as it is shredded, within `budget`): all of them, or none on
    /// an error. An error here is the message's;
    /// [`ParquetFile::write_full_group`] reports the file's.
    pub fn append(
        &mut self,
        alerts: &[impl AsRef<[u8]>],
        meta: &Meta,
        budget: Budget,
    ) -> Result<()> {
        self.layout.append(&mut self.rows, alerts, meta, budget)?;
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
            .finish()
            .with_context(|| format!("cannot write {}", self.file.temp.display()))?;
        tracing::debug!(
            "{}: {} alert(s), {} image column(s) spliced",
            self.file.target.display(),
            self.alerts,
            self.spliced_columns
        );
        self.file.commit(file)
    }

    /// Stops both threads once the row groups handed over are written (at
    /// most three); the temporary file goes with `self`.
    pub fn discard(mut self) {
        let _ = self.encoder.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::{Encoding, Type as PhysicalType};
    use parquet::file::metadata::PageIndexPolicy;

    const BUDGET: Budget = Budget {
        alert_bytes: crate::avro::gate::DEFAULT_MAX_ALERT_BYTES,
    };

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
            file.append(&[datum], &meta(id), BUDGET).unwrap();
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

    /// A row group the writing thread cannot write fails the file: the
    /// encoding thread stops, the next row group handed over or the finish
    /// says why, and nothing hangs.
    #[test]
    fn a_write_failing_on_the_writing_thread_fails_the_file() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"id","type":"long"},{"name":"raw","type":"bytes"}]}"#,
        )
        .unwrap();
        let layout = Arc::new(Layout::new(&schema, true).unwrap());
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_compression(Compression::UNCOMPRESSED)
            .build();
        let (writer, columns) =
            Writer::new(Written::gathering(full), &layout, properties, true).unwrap();
        assert_eq!(columns.spliced_columns(), 1);
        let mut encoder = Encoder::start(writer, columns, Path::new("/dev/full")).unwrap();
        let mut rows = layout.rows().unwrap();
        let mut refused = None;
        // Each row group is 16 MiB, past the 1 MiB gathered before a write.
        for _ in 0..4 {
            for id in 0..ROWS_PER_GROUP as i64 {
                let mut datum = Vec::new();
                crate::avro::varint::write_long(&mut datum, id);
                crate::avro::varint::write_long(&mut datum, 65536);
                datum.resize(datum.len() + 65536, id as u8);
                layout
                    .append(&mut rows, &[datum], &meta(id), BUDGET)
                    .unwrap();
            }
            let batch = layout.batch(&mut rows).unwrap();
            if let Err(e) = encoder.send(batch, 0) {
                refused = Some(e);
                break;
            }
        }
        let error = refused
            .or_else(|| encoder.finish().err())
            .expect("a failed write");
        let error = format!("{error:#}");
        assert!(error.contains("cannot write /dev/full"), "{error}");
        assert!(error.contains("No space left on device"), "{error}");
    }

    /// The image of row `id`: sizes from empty to a few kilobytes.
    fn bytes_of(id: i64) -> Vec<u8> {
        (0..id * 37 % 3000).map(|i| (i * id) as u8).collect()
    }

    /// The image of row `id`, except every `every`th row, which has none.
    fn image(id: i64, every: i64) -> Option<Vec<u8>> {
        (id % every != 0).then(|| bytes_of(id))
    }

    /// Image columns of an uncompressed file (a nullable bytes field, bytes
    /// in a nullable record, as Rubin's and ZTF's cutouts are, a bytes field
    /// that is never null, and nullable bytes in a nullable record) go into
    /// the file straight from the
    /// shredded buffers. parquet-rs reads every value back as written,
    /// nulls included, across row groups; with a codec, parquet-rs encodes
    /// the same columns itself, to the same values.
    #[test]
    fn spliced_image_columns_read_back_as_written() {
        use apache_avro::types::Value;
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"id","type":"long"},
                {"name":"image","type":["null","bytes"]},
                {"name":"cutout","type":["null",{"type":"record","name":"c","fields":[
                    {"name":"fileName","type":"string"},
                    {"name":"stampData","type":"bytes"}]}]},
                {"name":"raw","type":"bytes"},
                {"name":"nested","type":["null",{"type":"record","name":"n","fields":[
                    {"name":"thumb","type":["null","bytes"]}]}]}]}"#,
        )
        .unwrap();
        let count = ROWS_PER_GROUP as i64 * 2 + 5;
        for (codec, spliced) in [(Codec::Null, 4), (Codec::Snappy, 0)] {
            let layout = Arc::new(Layout::new(&schema, true).unwrap());
            let dir = tempfile::tempdir().unwrap();
            let mut file = ParquetFile::create(dir.path(), "t", &meta(0), layout, codec).unwrap();
            assert_eq!(file.spliced_columns, spliced);
            for id in 0..count {
                let optional = |v: Option<Value>| match v {
                    Some(v) => Value::Union(1, Box::new(v)),
                    None => Value::Union(0, Box::new(Value::Null)),
                };
                let cutout = image(id, 5).map(|bytes| {
                    Value::Record(vec![
                        ("fileName".into(), Value::String(format!("f{id}"))),
                        ("stampData".into(), Value::Bytes(bytes)),
                    ])
                });
                let alert = Value::Record(vec![
                    ("id".into(), Value::Long(id)),
                    ("image".into(), optional(image(id, 3).map(Value::Bytes))),
                    ("cutout".into(), optional(cutout)),
                    ("raw".into(), Value::Bytes(bytes_of(id))),
                    (
                        "nested".into(),
                        optional((id % 7 != 0).then(|| {
                            Value::Record(vec![(
                                "thumb".into(),
                                optional(image(id, 2).map(Value::Bytes)),
                            )])
                        })),
                    ),
                ]);
                let datum = apache_avro::to_avro_datum(&schema, alert).unwrap();
                file.append(&[datum], &meta(id), BUDGET).unwrap();
                file.write_full_group().unwrap();
            }
            file.finish().unwrap();
            let path = dir.path().join(file_name("t", 3, 0, "parquet"));
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
                std::fs::File::open(path).unwrap(),
                options,
            )
            .unwrap();
            let metadata = reader.metadata().clone();
            assert_eq!(metadata.num_row_groups(), 3);
            assert_eq!(
                metadata.row_group(0).num_rows(),
                256,
                "the README's row group"
            );
            // Each chunk's offset index points at its one page, whole.
            for (g, group) in metadata.row_groups().iter().enumerate() {
                let index = metadata.page_index_for_row_group(g);
                for (c, column) in group.columns().iter().enumerate() {
                    let pages = index.offset_index(c).unwrap();
                    let first = &pages.page_locations()[0];
                    assert_eq!(first.offset, column.data_page_offset());
                    let total: i64 = pages
                        .page_locations()
                        .iter()
                        .map(|p| p.compressed_page_size as i64)
                        .sum();
                    assert_eq!(total, column.compressed_size(), "{}", column.column_path());
                    // A spliced cutout column: one PLAIN page, no statistics.
                    let image = column.column_descr().physical_type() == PhysicalType::BYTE_ARRAY
                        && column.column_path().string() != "cutout.fileName";
                    if codec == Codec::Null && image {
                        assert_eq!(pages.page_locations().len(), 1);
                        assert!(column.statistics().is_none());
                        let encodings: Vec<_> = column.encodings().collect();
                        assert_eq!(encodings, [Encoding::PLAIN, Encoding::RLE]);
                    }
                }
            }
            let mut id = 0;
            for batch in reader.build().unwrap() {
                let batch = batch.unwrap();
                let images = batch.column(1).as_binary::<i32>();
                let cutouts = batch.column(2).as_struct();
                let stamps = cutouts.column(1).as_binary::<i32>();
                let raw = batch.column(3).as_binary::<i32>();
                let nested = batch.column(4).as_struct();
                let thumbs = nested.column(0).as_binary::<i32>();
                for row in 0..batch.num_rows() {
                    let value = |a: &arrow_array::BinaryArray| {
                        a.is_valid(row).then(|| a.value(row).to_vec())
                    };
                    assert_eq!(value(images), image(id, 3), "image {id}");
                    let stamp = cutouts.is_valid(row).then(|| stamps.value(row).to_vec());
                    assert_eq!(stamp, image(id, 5), "cutout {id}");
                    assert_eq!(value(raw), Some(bytes_of(id)), "raw {id}");
                    let thumb = nested.is_valid(row).then(|| value(thumbs));
                    assert_eq!(thumb, (id % 7 != 0).then(|| image(id, 2)), "thumb {id}");
                    id += 1;
                }
            }
            assert_eq!(id, count);
        }
    }
}

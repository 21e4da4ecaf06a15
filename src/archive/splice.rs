//! Image columns of an uncompressed Parquet archive, written to the file
//! straight from the buffers the shredder filled.
//!
//! Cutouts are nearly all of an archive's bytes (about 40 KB of 45 an
//! alert). On its way to the file, parquet-rs copies a binary column into a
//! page buffer that grows by doubling (each byte copied about twice), then
//! again into the page with its levels; for images that costs as much as
//! the rest of the encoding. Here an image column's chunk is one PLAIN data
//! page whose header, definition levels and length prefixes are built
//! apart ([`PlainChunk`]), and whose images stay where they are. The chunk
//! is appended to the row group through parquet-rs's public
//! `append_column`, which copies `compressed_size` bytes from a reader to
//! the file: the reader gives placeholder bytes ([`Placeholder`]), and
//! [`Splicing`], the writer under the Parquet writer, knows the file offset
//! where they start and writes the chunk's real bytes there instead. A
//! placeholder that does not arrive where its chunk was announced, or a
//! chunk the row group's metadata places elsewhere, fails the file: it is
//! never renamed into place.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::ops::Range;

use anyhow::{anyhow, bail, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Fields};
use parquet::basic::{Compression, Encoding, Type as PhysicalType};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::ColumnDescPtr;

use crate::avro::varint::write_long;

/// The deepest definition level a spliced column may have (one byte a run).
const MAX_DEF: usize = 127;

/// Where a binary leaf column is in a batch: the column index at the top,
/// then the child index in each struct down to it, and whether each of
/// these levels is nullable.
#[derive(Debug, Clone)]
pub struct LeafPath {
    indices: Vec<usize>,
    nullable: Vec<bool>,
    descr: ColumnDescPtr,
}

impl LeafPath {
    /// The path of Parquet leaf `descr` in `fields`, if it is a binary
    /// column reached through structs only (no lists: one value per row).
    pub fn find(fields: &Fields, descr: &ColumnDescPtr) -> Option<Self> {
        if descr.physical_type() != PhysicalType::BYTE_ARRAY || descr.max_rep_level() != 0 {
            return None;
        }
        let (mut indices, mut nullable) = (Vec::new(), Vec::new());
        let mut fields = fields.clone();
        let mut leaf = None;
        for name in descr.path().parts() {
            let (index, field) = fields.find(name)?;
            indices.push(index);
            nullable.push(field.is_nullable());
            match field.data_type() {
                DataType::Struct(children) => fields = children.clone(),
                DataType::Binary => leaf = Some(field.clone()),
                _ => return None,
            }
        }
        // Levels are written one byte a run: deeper nesting is left to parquet-rs.
        let max_def = nullable.iter().filter(|n| **n).count();
        let fits = max_def <= MAX_DEF && max_def as i16 == descr.max_def_level();
        (leaf.is_some() && fits).then(|| Self {
            indices,
            nullable,
            descr: descr.clone(),
        })
    }
}

/// A column chunk of one PLAIN data page: its small bytes (page header,
/// definition levels, length prefixes) built here, its images left in the
/// shredded buffer; `parts` say in what order they go to the file.
#[derive(Debug)]
pub struct PlainChunk {
    small: Vec<u8>,
    images: Buffer,
    parts: Vec<Part>,
    len: u64,
    rows: u64,
    descr: ColumnDescPtr,
}

#[derive(Debug, Clone)]
enum Part {
    Small(Range<usize>),
    Image(Range<usize>),
}

impl PlainChunk {
    /// The chunk of the leaf at `path` for the rows of `batch`.
    pub fn build(path: &LeafPath, batch: &RecordBatch) -> Result<Self> {
        let mut arrays: Vec<&dyn Array> = Vec::with_capacity(path.indices.len());
        for &index in &path.indices {
            let array = match arrays.last() {
                None => batch.column(index).as_ref(),
                Some(parent) => parent
                    .as_struct_opt()
                    .ok_or_else(|| anyhow!("{} is not a struct", path.descr.path()))?
                    .column(index)
                    .as_ref(),
            };
            arrays.push(array);
        }
        let images = arrays
            .last()
            .and_then(|a| a.as_binary_opt::<i32>())
            .ok_or_else(|| anyhow!("{} is not binary", path.descr.path()))?;
        let max_def = path.descr.max_def_level() as u8;
        let rows = batch.num_rows();
        let mut levels = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut level = 0;
            for (array, nullable) in arrays.iter().zip(&path.nullable) {
                match (array.is_valid(row), nullable) {
                    (true, true) => level += 1,
                    (true, false) => {}
                    (false, true) => break,
                    (false, false) => bail!("{} is null where it may not be", path.descr.path()),
                }
            }
            levels.push(level);
        }
        let offsets = images.value_offsets();
        let defined = || (0..rows).filter(|&row| levels[row] == max_def);
        let values: usize = defined()
            .map(|row| 4 + (offsets[row + 1] - offsets[row]) as usize)
            .sum();
        let levels = encode_levels(&levels, max_def);
        let page = levels.len() + values;
        let too_big = || anyhow!("{}: an image page over 2 GiB", path.descr.path());
        let mut small = page_header(i32::try_from(page).map_err(|_| too_big())?, rows as i32);
        i32::try_from(small.len() + page).map_err(|_| too_big())?;
        small.extend_from_slice(&levels);
        let head = small.len();
        let mut parts = vec![Part::Small(0..head)];
        let base = offsets[0] as usize;
        for row in defined() {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let at = small.len();
            small.extend_from_slice(&((end - start) as u32).to_le_bytes());
            parts.push(Part::Small(at..at + 4));
            parts.push(Part::Image(start - base..end - base));
        }
        let len = (head + values) as u64;
        let images = images.values().slice(base);
        Ok(Self {
            small,
            images,
            parts,
            len,
            rows: rows as u64,
            descr: path.descr.clone(),
        })
    }

    /// Bytes the chunk takes in the file.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// What `append_column` needs to place the chunk: its metadata with
    /// offsets from the chunk's start, and a reader of as many placeholder
    /// bytes as the chunk has.
    pub fn for_append(&self) -> Result<(Placeholder, ColumnCloseResult)> {
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings(vec![Encoding::PLAIN, Encoding::RLE])
            .set_num_values(self.rows as i64)
            .set_total_compressed_size(self.len as i64)
            .set_total_uncompressed_size(self.len as i64)
            .set_data_page_offset(0)
            .build()?;
        let page = PageLocation {
            offset: 0,
            compressed_page_size: self.len as i32,
            first_row_index: 0,
        };
        let close = ColumnCloseResult {
            bytes_written: self.len,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(OffsetIndexMetaData {
                page_locations: vec![page],
                unencoded_byte_array_data_bytes: None,
            }),
        };
        Ok((Placeholder(self.len), close))
    }
}

/// Definition levels of a V1 data page: a 4-byte length, then runs of
/// equal levels in the RLE/bit-packed hybrid (runs only). None when every
/// level is 0 by the schema.
fn encode_levels(levels: &[u8], max_def: u8) -> Vec<u8> {
    if max_def == 0 {
        return Vec::new();
    }
    let mut out = vec![0; 4];
    let mut rest = levels;
    while let Some(&level) = rest.first() {
        let run = rest.iter().take_while(|&&l| l == level).count();
        write_varint(&mut out, (run as u64) << 1);
        out.push(level);
        rest = &rest[run..];
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// A DATA_PAGE header in Thrift's compact protocol: type, uncompressed and
/// compressed size (the same: no codec), then the data page header (value
/// count, PLAIN values, RLE levels).
fn page_header(page: i32, values: i32) -> Vec<u8> {
    const I32: u8 = 5;
    const STRUCT: u8 = 12;
    let mut out = Vec::with_capacity(32);
    // Thrift's compact i32 is a zigzag varint: Avro's long encoding.
    let field = |out: &mut Vec<u8>, delta: u8, value: i32| {
        out.push(delta << 4 | I32);
        write_long(out, i64::from(value));
    };
    field(&mut out, 1, 0); // type: DATA_PAGE
    field(&mut out, 1, page); // uncompressed_page_size
    field(&mut out, 1, page); // compressed_page_size
    out.push(2 << 4 | STRUCT); // field 5: data_page_header
    field(&mut out, 1, values); // num_values
    field(&mut out, 1, 0); // encoding: PLAIN
    field(&mut out, 1, 3); // definition_level_encoding: RLE
    field(&mut out, 1, 3); // repetition_level_encoding: RLE
    out.push(0); // end of data_page_header
    out.push(0); // end of page header
    out
}

/// An unsigned LEB128 varint (an RLE run's header).
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A reader of `n` placeholder bytes: `append_column` copies them toward
/// the file, and [`Splicing`] writes the chunk's real bytes in their place.
/// They are never looked at, so they are never filled in.
#[derive(Debug)]
pub struct Placeholder(u64);

impl Length for Placeholder {
    fn len(&self) -> u64 {
        self.0
    }
}

impl ChunkReader for Placeholder {
    type T = PlaceholderRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PlaceholderRead> {
        Ok(PlaceholderRead(self.0.saturating_sub(start)))
    }

    fn get_bytes(&self, _start: u64, _length: usize) -> parquet::errors::Result<bytes::Bytes> {
        Err(parquet::errors::ParquetError::General(
            "a spliced image chunk is written, never read".into(),
        ))
    }
}

/// What is left to read of a [`Placeholder`].
#[derive(Debug)]
pub struct PlaceholderRead(u64);

impl Read for PlaceholderRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        self.0 -= n as u64;
        Ok(n)
    }
}

/// The writer under a Parquet writer that puts announced chunks' bytes in
/// place of their placeholders. Everything else passes through unchanged.
#[derive(Debug)]
pub struct Splicing<W> {
    inner: W,
    /// Bytes taken from the Parquet writer so far: the file offset of the
    /// next byte it writes.
    position: u64,
    /// Announced chunks, in file order, each with the offset it starts at.
    waiting: VecDeque<(u64, PlainChunk)>,
    /// Placeholder bytes still to come for a chunk already written.
    absorbing: u64,
    /// Set by any error: the bytes after it would land in the wrong place.
    failed: bool,
}

impl<W: Write> Splicing<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            position: 0,
            waiting: VecDeque::new(),
            absorbing: 0,
            failed: false,
        }
    }

    /// Announces that `chunk`'s placeholder will start at file offset `at`.
    pub fn announce(&mut self, at: u64, chunk: PlainChunk) {
        self.waiting.push_back((at, chunk));
    }

    /// The writer underneath, once every announced chunk has been written.
    pub fn into_inner(self) -> Result<W> {
        if self.failed {
            bail!("a write failed: the file is incomplete");
        }
        match self.waiting.is_empty() && self.absorbing == 0 {
            true => Ok(self.inner),
            false => Err(anyhow!("an image chunk was announced and not written")),
        }
    }

    /// Writes all of `chunk`, part by part: the writer underneath gathers
    /// them (an archive file does, see `durable.rs`).
    fn write_chunk(&mut self, chunk: &PlainChunk) -> std::io::Result<()> {
        for part in &chunk.parts {
            self.inner.write_all(match part {
                Part::Small(range) => &chunk.small[range.clone()],
                Part::Image(range) => &chunk.images[range.clone()],
            })?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Splicing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        let written = self.splice(buf);
        self.failed = written.is_err();
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Splicing<W> {
    /// Passes `buf` on, or the chunk whose placeholder it starts.
    fn splice(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.absorbing > 0 {
            let n = buf.len().min(self.absorbing as usize);
            self.absorbing -= n as u64;
            self.position += n as u64;
            return Ok(n);
        }
        let n = match self.waiting.front() {
            None => self.inner.write(buf)?,
            Some(&(at, _)) if at > self.position => {
                let before = buf.len().min((at - self.position) as usize);
                self.inner.write(&buf[..before])?
            }
            Some(&(at, _)) if at == self.position && !buf.is_empty() => {
                if let Some((_, chunk)) = self.waiting.pop_front() {
                    self.write_chunk(&chunk)?;
                    self.absorbing = chunk.len;
                }
                return self.splice(buf);
            }
            Some(_) if buf.is_empty() => 0,
            Some(&(at, _)) => {
                return Err(std::io::Error::other(format!(
                    "an image chunk announced at byte {at} was passed at byte {}",
                    self.position
                )))
            }
        };
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::BinaryArray;
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowSchemaConverter;
    use std::sync::Arc;

    /// The chunk of a nullable binary column holding "abc", null, "de".
    fn chunk() -> PlainChunk {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "image",
            DataType::Binary,
            true,
        )]));
        let images = BinaryArray::from(vec![Some(&b"abc"[..]), None, Some(&b"de"[..])]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images)]).unwrap();
        let leaves = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let path = LeafPath::find(schema.fields(), &leaves.columns()[0]).unwrap();
        PlainChunk::build(&path, &batch).unwrap()
    }

    /// The chunk's bytes (header, levels, each image after its length) take
    /// the place of its placeholder where it was announced; the bytes
    /// around it pass unchanged.
    #[test]
    fn a_chunk_takes_the_place_of_its_placeholder() {
        let chunk = chunk();
        let len = chunk.bytes() as usize;
        let mut out = Splicing::new(Vec::new());
        out.announce(4, chunk);
        out.write_all(b"PAR1").unwrap();
        let mut placeholder = vec![0xEE; len + 3];
        placeholder[len..].copy_from_slice(b"end");
        out.write_all(&placeholder).unwrap();
        let bytes = out.into_inner().unwrap();
        assert_eq!(bytes.len(), len + 7);
        assert_eq!(
            (&bytes[..4], &bytes[len + 4..]),
            (&b"PAR1"[..], &b"end"[..])
        );
        assert!(!bytes.contains(&0xEE));
        assert!(bytes.ends_with(b"\x03\0\0\0abc\x02\0\0\0deend"));
    }

    /// Takes at most three bytes a write, as a file may.
    struct Short(Vec<u8>);

    impl Write for Short {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A placeholder that arrives in pieces, around short writes
    /// underneath, gives the same bytes as one that arrives whole.
    #[test]
    fn a_placeholder_in_pieces_over_short_writes_gives_the_same_file() {
        let len = chunk().bytes() as usize;
        let mut whole = Splicing::new(Vec::new());
        whole.announce(4, chunk());
        whole.write_all(b"PAR1").unwrap();
        whole.write_all(&vec![0; len]).unwrap();
        whole.write_all(b"end").unwrap();
        let mut pieces = Splicing::new(Short(Vec::new()));
        pieces.announce(4, chunk());
        let mut stream = b"PAR1".to_vec();
        stream.extend(vec![0; len]);
        stream.extend_from_slice(b"end");
        for piece in stream.chunks(5) {
            pieces.write_all(piece).unwrap();
        }
        assert_eq!(pieces.into_inner().unwrap().0, whole.into_inner().unwrap());
    }

    /// Fails every write from the `n`th byte on, like a full disk.
    struct Full(Vec<u8>, usize);

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1.saturating_sub(self.0.len()));
            if n == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// After a write fails in the middle of a chunk, nothing more reaches
    /// the file: not the placeholder's bytes, nor anything after them.
    #[test]
    fn after_a_failed_write_nothing_more_reaches_the_file() {
        let len = chunk().bytes() as usize;
        let mut out = Splicing::new(Full(Vec::new(), 10));
        out.announce(4, chunk());
        out.write_all(b"PAR1").unwrap();
        assert!(out.write_all(&vec![0; len]).is_err());
        assert!(out.write_all(b"end").is_err());
        assert!(out.write(&[0; 8]).is_err());
        assert_eq!(out.inner.0.len(), 10);
        assert!(out.into_inner().is_err());
    }

    /// A chunk announced at an offset already passed fails the write; one
    /// never reached fails when the file is finished.
    #[test]
    fn a_chunk_not_where_it_was_announced_fails_the_file() {
        let mut out = Splicing::new(Vec::new());
        out.write_all(b"PAR1").unwrap();
        out.announce(2, chunk());
        let error = out.write_all(b"x").unwrap_err();
        assert!(error.to_string().contains("announced at byte 2"), "{error}");
        let mut out = Splicing::new(Vec::new());
        out.announce(100, chunk());
        out.write_all(b"PAR1").unwrap();
        assert!(out.into_inner().is_err());
    }
}

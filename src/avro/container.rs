//! Avro object container files, read by this project rather than by
//! apache-avro: apache-avro reserves memory from counts in the header, trusts
//! decompressed sizes and panics on some codec data (an empty zstandard
//! compression level, a snappy block shorter than its checksum). Here every
//! count and size is checked against the bytes there are, and every block is
//! decompressed behind a byte limit.

use std::borrow::Cow;
use std::io::Read;

use super::varint::{read_long, write_long};

const MAGIC: &[u8] = b"Obj\x01";
const SYNC_LEN: usize = 16;

/// A container's parts, pointing into its bytes.
#[derive(Debug)]
pub struct Container<'a> {
    /// The writer schema, as the `avro.schema` metadata holds it (JSON text).
    pub schema: &'a [u8],
    pub codec: Codec,
    pub blocks: Vec<Block<'a>>,
}

/// One data block: how many objects it claims and its (compressed) bytes.
#[derive(Debug)]
pub struct Block<'a> {
    pub count: u64,
    pub data: &'a [u8],
    /// Where the block starts in the container, for error messages.
    pub offset: usize,
}

/// The codecs of the Avro specification that alert streams use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstandard,
}

impl Codec {
    fn from_name(name: &[u8]) -> Result<Self, String> {
        match name {
            b"null" => Ok(Self::Null),
            b"deflate" => Ok(Self::Deflate),
            b"snappy" => Ok(Self::Snappy),
            b"zstandard" => Ok(Self::Zstandard),
            other => Err(format!(
                "codec {:?} is not supported (null, deflate, snappy, zstandard are)",
                String::from_utf8_lossy(&other[..other.len().min(32)])
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Deflate => "deflate",
            Self::Snappy => "snappy",
            Self::Zstandard => "zstandard",
        }
    }

    /// The block's objects, decompressed; refused past `limit` bytes.
    pub fn decompress<'a>(self, data: &'a [u8], limit: usize) -> Result<Cow<'a, [u8]>, String> {
        let too_big = || format!("decompresses to more than {limit} bytes");
        match self {
            Self::Null if data.len() > limit => Err(too_big()),
            Self::Null => Ok(Cow::Borrowed(data)),
            Self::Deflate => read_limited(flate2::read::DeflateDecoder::new(data), limit),
            Self::Zstandard => {
                let decoder = zstd::stream::read::Decoder::with_buffer(data)
                    .map_err(|e| format!("zstandard: {e}"))?;
                read_limited(decoder, limit)
            }
            Self::Snappy => snappy(data, limit),
        }
    }
}

impl Codec {
    /// Compresses a block's objects for writing.
    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        match self {
            Self::Null => Ok(data.to_vec()),
            Self::Deflate => {
                let mut encoder =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()
            }
            Self::Zstandard => zstd::encode_all(data, 0),
            Self::Snappy => {
                let mut out = snap::raw::Encoder::new()
                    .compress_vec(data)
                    .map_err(std::io::Error::other)?;
                out.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
                Ok(out)
            }
        }
    }
}

/// A container header: magic, metadata (schema, codec and `extra` entries), sync marker.
pub fn write_header(
    schema: &str,
    codec: Codec,
    extra: &[(&str, &[u8])],
    sync: &[u8; 16],
) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("avro.schema", schema.as_bytes()),
        ("avro.codec", codec.name().as_bytes()),
    ];
    entries.extend_from_slice(extra);
    write_long(&mut out, entries.len() as i64);
    for (key, value) in entries {
        write_long(&mut out, key.len() as i64);
        out.extend_from_slice(key.as_bytes());
        write_long(&mut out, value.len() as i64);
        out.extend_from_slice(value);
    }
    write_long(&mut out, 0);
    out.extend_from_slice(sync);
    out
}

/// Appends a block of `count` objects whose (compressed) bytes are `data`.
pub fn write_block(out: &mut Vec<u8>, count: u64, data: &[u8], sync: &[u8; 16]) {
    write_long(out, count as i64);
    write_long(out, data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(sync);
}

/// Reads a decompressing stream to its end, at most `limit` bytes.
fn read_limited(reader: impl Read, limit: usize) -> Result<Cow<'static, [u8]>, String> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt compressed block: {e}"))?;
    if read > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(Cow::Owned(out))
}

/// Avro's snappy blocks: raw snappy, then the CRC-32 of the uncompressed bytes (big-endian).
fn snappy(data: &[u8], limit: usize) -> Result<Cow<'static, [u8]>, String> {
    let Some(split) = data.len().checked_sub(4) else {
        return Err("snappy block shorter than its 4-byte checksum".into());
    };
    let (compressed, crc) = data.split_at(split);
    let size = snap::raw::decompress_len(compressed).map_err(|e| format!("snappy: {e}"))?;
    if size > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    let mut out = vec![0; size];
    snap::raw::Decoder::new()
        .decompress(compressed, &mut out)
        .map_err(|e| format!("snappy: {e}"))?;
    if crc32fast::hash(&out).to_be_bytes() != crc {
        return Err("snappy block fails its CRC-32 check".into());
    }
    Ok(Cow::Owned(out))
}

/// Whether bytes start like a container file.
pub fn is_container(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses a container's framing; `Err` says what is wrong and at which byte.
pub fn parse(bytes: &[u8]) -> Result<Container<'_>, String> {
    if !is_container(bytes) {
        return Err("no Avro container magic at byte 0".into());
    }
    let mut header = Header { bytes, at: 4 };
    let (schema, codec) = header.metadata()?;
    let mut at = header.at;
    let schema = schema.ok_or("header has no avro.schema")?;
    let Some(sync) = bytes.get(at..at + SYNC_LEN) else {
        return Err(format!("truncated header (sync marker) at byte {at}"));
    };
    at += SYNC_LEN;
    let mut blocks = Vec::new();
    while at < bytes.len() {
        let (block, end) = block_at(bytes, at)?;
        at = end;
        if bytes.get(at..at + SYNC_LEN) != Some(sync) {
            return Err(format!(
                "block not followed by the file's sync marker at byte {at}"
            ));
        }
        at += SYNC_LEN;
        blocks.push(block);
    }
    Ok(Container {
        schema,
        codec,
        blocks,
    })
}

/// The block (object count, byte size, data) starting at `at`, and where it ends.
fn block_at(bytes: &[u8], at: usize) -> Result<(Block<'_>, usize), String> {
    let fail = |what: &str| format!("{what} at byte {at}");
    let (count, next) = read_long(bytes, at).map_err(|e| fail(e.reason()))?;
    let (size, next) = read_long(bytes, next).map_err(|e| fail(e.reason()))?;
    if count <= 0 || size < 0 || size as u64 > (bytes.len() - next) as u64 {
        return Err(fail("block count or size out of range"));
    }
    let end = next + size as usize;
    let block = Block {
        count: count as u64,
        data: &bytes[next..end],
        offset: at,
    };
    Ok((block, end))
}

struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Header<'a> {
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn long(&mut self) -> Result<i64, String> {
        match read_long(self.bytes, self.at) {
            Ok((value, next)) => {
                self.at = next;
                Ok(value)
            }
            Err(e) => self.fail(e.reason()),
        }
    }

    fn slice(&mut self) -> Result<&'a [u8], String> {
        let len = self.long()?;
        if len < 0 || len as u64 > (self.bytes.len() - self.at) as u64 {
            return self.fail("header length out of range");
        }
        let start = self.at;
        self.at += len as usize;
        Ok(&self.bytes[start..self.at])
    }

    /// The metadata map: the writer schema and the codec.
    fn metadata(&mut self) -> Result<(Option<&'a [u8]>, Codec), String> {
        let (mut schema, mut codec) = (None, Codec::Null);
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok((schema, codec));
            }
            if count < 0 {
                count = count.checked_neg().unwrap_or(i64::MAX);
                self.long()?; // the block's byte size
            }
            // Each entry takes at least two bytes (two empty lengths).
            if count as u64 > (self.bytes.len() - self.at) as u64 / 2 {
                return self.fail("header claims more metadata entries than it holds");
            }
            for _ in 0..count {
                let key = self.slice()?;
                let value = self.slice()?;
                match key {
                    b"avro.schema" => schema = Some(value),
                    b"avro.codec" => codec = Codec::from_name(value)?,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_files_parse_and_truncation_is_named() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample-alerts/visit-1.avro"
        ))
        .unwrap();
        let container = parse(&file).unwrap();
        assert!(container.schema.starts_with(b"{"));
        assert!(!container.blocks.is_empty());
        let error = parse(&file[..file.len() - 100]).unwrap_err();
        assert!(error.contains("at byte"), "{error}");
    }

    /// The crash the property tests found: a header claiming ~2^60 metadata entries.
    #[test]
    fn a_header_claiming_billions_of_entries_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let error = parse(&bytes).unwrap_err();
        assert!(error.contains("more metadata entries"), "{error}");
    }

    #[test]
    fn every_codec_is_bounded() {
        let data = vec![7u8; 100_000];
        let deflated = Codec::Deflate.compress(&data).unwrap();
        let zstd = Codec::Zstandard.compress(&data).unwrap();
        let snappy = Codec::Snappy.compress(&data).unwrap();
        for (codec, block) in [
            (Codec::Deflate, &deflated),
            (Codec::Zstandard, &zstd),
            (Codec::Snappy, &snappy),
            (Codec::Null, &data),
        ] {
            assert_eq!(codec.decompress(block, 100_000).unwrap().len(), 100_000);
            let error = codec.decompress(block, 99_999).unwrap_err();
            assert!(
                error.contains("more than 99999 bytes"),
                "{codec:?}: {error}"
            );
        }
        assert!(Codec::Snappy.decompress(&[1, 2, 3], 100).is_err());
        let mut bad_crc = snappy.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(Codec::Snappy
            .decompress(&bad_crc, 100_000)
            .unwrap_err()
            .contains("CRC"));
    }
}

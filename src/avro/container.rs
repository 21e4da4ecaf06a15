//! A check of an Avro object container file's framing before apache-avro
//! reads it: the header's metadata map and every block's count and size must
//! fit in the bytes there are. apache-avro reserves memory from the counts it
//! reads (a hostile header claiming billions of metadata entries aborted the
//! process, found by tests/fuzz.rs), so untrusted bytes are walked here first.

/// What the framing holds: the codec and each block's object count and data.
#[derive(Debug, Default)]
pub struct Framing<'a> {
    pub codec: String,
    pub blocks: Vec<(u64, &'a [u8])>,
}

/// Checks the framing; `Err` says what is wrong and at which byte.
pub fn check(bytes: &[u8]) -> Result<Framing<'_>, String> {
    let mut framing = Framing {
        codec: "null".into(),
        blocks: Vec::new(),
    };
    let mut at = 4;
    if !bytes.starts_with(b"Obj\x01") {
        return Err("no Avro container magic at byte 0".into());
    }
    let fail = |at: usize, what: &str| Err(format!("{what} at byte {at}"));
    // Metadata: a map of string keys to bytes values, in blocks.
    loop {
        let Some((count, next)) = long(bytes, at) else {
            return fail(at, "truncated header");
        };
        at = next;
        if count == 0 {
            break;
        }
        let count = if count < 0 {
            let Some((_, next)) = long(bytes, at) else {
                return fail(at, "truncated header");
            };
            at = next;
            count.unsigned_abs()
        } else {
            count as u64
        };
        // Each entry takes at least two bytes (two empty lengths).
        if count > (bytes.len() - at) as u64 / 2 {
            return fail(at, "header claims more metadata entries than it holds");
        }
        for _ in 0..count {
            let mut entry = [&bytes[..0]; 2];
            for part in &mut entry {
                let Some((len, next)) = long(bytes, at) else {
                    return fail(at, "truncated header");
                };
                if len < 0 || len as u64 > (bytes.len() - next) as u64 {
                    return fail(at, "header length out of range");
                }
                at = next + len as usize;
                *part = &bytes[next..at];
            }
            if entry[0] == b"avro.codec" {
                framing.codec = String::from_utf8_lossy(entry[1]).into_owned();
            }
        }
    }
    let Some(sync) = bytes.get(at..at + 16) else {
        return fail(at, "truncated header (sync marker)");
    };
    at += 16;
    // Blocks: object count, byte size, data, sync marker.
    while at < bytes.len() {
        let Some((count, next)) = long(bytes, at) else {
            return fail(at, "truncated block");
        };
        let Some((size, next)) = long(bytes, next) else {
            return fail(at, "truncated block");
        };
        if count < 0 || size < 0 || size as u64 > (bytes.len() - next) as u64 {
            return fail(at, "block count or size out of range");
        }
        // An object takes at least one byte in all but degenerate schemas;
        // allow generous slack, never billions.
        if count as u64 > (size as u64 + 1) * 1024 {
            return fail(at, "block claims more objects than its bytes can hold");
        }
        framing
            .blocks
            .push((count as u64, &bytes[next..next + size as usize]));
        at = next + size as usize;
        if bytes.get(at..at + 16) != Some(sync) {
            return fail(at, "block not followed by the file's sync marker");
        }
        at += 16;
    }
    Ok(framing)
}

/// A zigzag varint long at `at`, and the position after it.
fn long(bytes: &[u8], mut at: usize) -> Option<(i64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(at)?;
        at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64 ^ -((value & 1) as i64), at));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_files_pass() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample-alerts/visit-1.avro"
        ))
        .unwrap();
        check(&file).unwrap();
        let mut cut = file.clone();
        cut.truncate(file.len() - 100);
        assert!(check(&cut).is_err());
    }

    /// A map claiming ~2^60 entries in the data: apache-avro would reserve
    /// for it and abort; the block walk refuses it first.
    #[test]
    fn a_map_claiming_billions_of_entries_is_refused() {
        let schema = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[{"name":"m","type":{"type":"map","values":"int"}}]}"#,
        )
        .unwrap();
        let mut bytes = apache_avro::Writer::new(&schema, Vec::new())
            .into_inner()
            .unwrap();
        let sync = bytes[bytes.len() - 16..].to_vec();
        let data = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00];
        bytes.extend_from_slice(&[0x02, (data.len() as u8) * 2]);
        bytes.extend_from_slice(&data);
        bytes.extend_from_slice(&sync);
        check(&bytes).unwrap();
        let decoder = super::super::codec::Decoder::new(super::super::schema::built_in(), false);
        let error = decoder.decode(&bytes).unwrap_err().to_string();
        assert!(error.contains("block 1"), "{error}");
    }

    /// The crash tests/fuzz.rs found: a header claiming ~2^60 metadata entries.
    #[test]
    fn a_header_claiming_billions_of_entries_is_refused() {
        let mut bytes = b"Obj\x01".to_vec();
        bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let error = check(&bytes).unwrap_err();
        assert!(error.contains("more metadata entries"), "{error}");
        let decoder = super::super::codec::Decoder::new(super::super::schema::built_in(), true);
        assert!(decoder.decode(&bytes).is_err());
    }
}

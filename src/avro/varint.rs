//! The one reader of Avro's zigzag varints (ints, longs, lengths, counts),
//! for container headers, block framing and alert data alike.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside the number.
    Truncated,
    /// More than 64 bits.
    TooLong,
}

impl VarintError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "truncated: the data ends inside a number",
            Self::TooLong => "number longer than 64 bits",
        }
    }
}

/// The zigzag-encoded long at `at`, and the position after it. Inlined with
/// a one-byte fast path: most varints in an alert are union branches, small
/// counts and short lengths, and every walk over an alert reads them.
#[inline]
pub fn read_long(bytes: &[u8], at: usize) -> Result<(i64, usize), VarintError> {
    match bytes.get(at) {
        Some(&byte) if byte < 0x80 => Ok((unzigzag(u64::from(byte)), at + 1)),
        _ => read_long_slow(bytes, at),
    }
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

#[inline(never)]
fn read_long_slow(bytes: &[u8], mut at: usize) -> Result<(i64, usize), VarintError> {
    let mut value = 0u64;
    let mut shift = 0;
    while shift < 70 {
        let Some(&byte) = bytes.get(at) else {
            return Err(VarintError::Truncated);
        };
        at += 1;
        if shift == 63 && byte > 1 {
            return Err(VarintError::TooLong);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((unzigzag(value), at));
        }
        shift += 7;
    }
    Err(VarintError::TooLong)
}

/// Appends `value` zigzag-encoded.
pub fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_overlong_numbers() {
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(read_long(&out, 0), Ok((v, out.len())), "{v}");
            assert_eq!(
                read_long(&out[..out.len() - 1], 0),
                Err(VarintError::Truncated)
            );
        }
        // One-byte numbers take the inlined path, from any position.
        assert_eq!(read_long(&[0x80, 0x02], 1), Ok((1, 2)));
        assert_eq!(read_long(&[0x02], 1), Err(VarintError::Truncated));
        assert_eq!(read_long(&[0x02, 0x80, 0x01], 1), Ok((64, 3)));
        assert_eq!(read_long(&[0xff; 11], 0), Err(VarintError::TooLong));
        assert_eq!(
            read_long(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                0
            ),
            Err(VarintError::TooLong)
        );
    }
}

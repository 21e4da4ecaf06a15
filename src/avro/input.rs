//! The one reader of Avro binary that every walk over untrusted bytes uses
//! (the decode plan, the Parquet shredder): each read checks the bytes left
//! and says where it failed, so a hostile length allocates nothing.

use super::varint::read_long;

/// Why a payload could not be decoded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Bytes of Avro binary, read front to back.
pub struct Input<'a> {
    bytes: &'a [u8],
    /// Where the next read starts.
    pub at: usize,
    /// Zero-size items the current alert may still claim.
    pub empty_left: usize,
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            empty_left: 0,
        }
    }

    pub fn fail<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.at,
            reason,
        })
    }

    pub fn at_end(&self, reason: &'static str) -> Result<(), DecodeError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            self.fail(reason)
        }
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(slice) if n <= self.bytes.len() - self.at => {
                self.at += n;
                Ok(slice)
            }
            _ => self.fail("truncated: a length points past the end of the payload"),
        }
    }

    #[inline]
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        match read_long(self.bytes, self.at) {
            Ok((value, next)) => {
                self.at = next;
                Ok(value)
            }
            Err(e) => self.fail(e.reason()),
        }
    }

    #[inline]
    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).or_else(|_| self.fail("int out of range"))
    }

    /// A boolean's byte: 0 or 1, as Avro writes it.
    #[inline]
    pub fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.fail("boolean byte is neither 0 nor 1"),
        }
    }

    /// A string: its length, then as many bytes of UTF-8 (an error says
    /// where the string starts).
    #[inline]
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.length()?;
        let at = self.at;
        match std::str::from_utf8(self.take(n)?) {
            Ok(text) => Ok(text),
            Err(_) => {
                self.at = at;
                self.fail("string is not UTF-8")
            }
        }
    }

    /// An enum's index, one of its `symbols` symbols.
    #[inline]
    pub fn symbol(&mut self, symbols: usize) -> Result<usize, DecodeError> {
        match usize::try_from(self.long()?) {
            Ok(i) if i < symbols => Ok(i),
            _ => self.fail("enum index out of range"),
        }
    }

    /// A union's branch: its index, one of `branches`, and the branch.
    #[inline]
    pub fn branch<'b, T>(&mut self, branches: &'b [T]) -> Result<(usize, &'b T), DecodeError> {
        let index = usize::try_from(self.long()?).ok();
        match index.and_then(|i| branches.get(i).map(|branch| (i, branch))) {
            Some(branch) => Ok(branch),
            None => self.fail("union branch index out of range"),
        }
    }

    /// A byte length: non-negative and within the payload.
    #[inline]
    pub fn length(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        if n < 0 {
            return self.fail("negative length");
        }
        let n = n as u64;
        if n > (self.bytes.len() - self.at) as u64 {
            return self.fail("truncated: a length points past the end of the payload");
        }
        Ok(n as usize)
    }

    /// The item count of an array or map block (its byte size, if given, is
    /// skipped): sized items must fit in the bytes left, zero-size ones in
    /// the alert's budget.
    #[inline]
    pub fn block_count(&mut self, item_min_size: usize) -> Result<u64, DecodeError> {
        let n = self.long()?;
        let count = if n < 0 {
            self.long()?; // block size in bytes
            n.unsigned_abs()
        } else {
            n as u64
        };
        if item_min_size == 0 {
            if count > self.empty_left as u64 {
                return self.fail("an array or map of empty items exceeds --max-alert-bytes");
            }
            self.empty_left -= count as usize;
        } else if count > (self.bytes.len() - self.at) as u64 / item_min_size as u64 {
            return self.fail("an array or map claims more items than the payload can hold");
        }
        Ok(count)
    }
}

//! Files that appear whole or not at all: written under a temporary name in
//! the same folder, fsynced, renamed into place, and the folder fsynced.
//! Archives, simulated visits and cached schemas are all written this way.
//!
//! Archive files are hundreds of megabytes written once and not read back
//! soon: their bytes gather in aligned blocks that go to the disk straight
//! from this process's memory (O_DIRECT) where the file system takes that,
//! so the kernel neither copies them into its page cache (a third of a
//! core while Parquet archiving keeps both busy) nor keeps them there.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file being written: under a temporary name until [`Pending::commit`].
/// Dropped before then (a failed write, an error anywhere), the temporary
/// file goes with it.
#[derive(Debug)]
pub struct Pending {
    pub temp: PathBuf,
    pub target: PathBuf,
    committed: std::cell::Cell<bool>,
}

impl Pending {
    /// `name` in `dir`, written under `.name.part`: for a file one writer
    /// makes at a time (an archive file belongs to its folder's group).
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        Self::with_temp(dir, name, format!(".{name}.part"))
    }

    /// `name` in `dir` under a temporary name of this process and moment:
    /// for a file several processes may write at once (a shared schema
    /// cache, a folder's claim), none removing another's temporary file.
    pub fn unique(dir: &Path, name: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let temp = format!(".{name}.{}-{nanos}.part", std::process::id());
        Self::with_temp(dir, name, temp)
    }

    fn with_temp(dir: &Path, name: &str, temp: String) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
        Ok(Self {
            temp: dir.join(temp),
            target: dir.join(name),
            committed: std::cell::Cell::new(false),
        })
    }

    /// Creates the temporary file afresh. Whatever has its name (an earlier
    /// run's leftover, a planted symlink) is removed, never followed: the
    /// file is created only if nothing has the name.
    pub fn create(&self) -> Result<Written> {
        let cannot = || format!("cannot create {}", self.temp.display());
        match std::fs::remove_file(&self.temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(cannot)
            }
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.temp)
            .with_context(cannot)?;
        Ok(Written {
            file,
            written: 0,
            handed: 0,
            gather: None,
            direct: false,
            failed: false,
        })
    }

    /// Like [`Pending::create`], for an archive: writes gather in aligned
    /// blocks, written with O_DIRECT where the file system takes it and as
    /// by [`Pending::create`] elsewhere. Small writes need no buffer above.
    pub fn create_archive(&self) -> Result<Written> {
        let mut written = self.create()?;
        written.direct = set_direct(&written.file, true).is_ok();
        written.gather = Some(Gather::new());
        Ok(written)
    }

    /// Makes the file durable and gives it its name.
    pub fn commit(&self, mut written: Written) -> Result<()> {
        written
            .sync_all()
            .with_context(|| format!("cannot write {} (fsync)", self.temp.display()))?;
        drop(written);
        std::fs::rename(&self.temp, &self.target)
            .with_context(|| format!("cannot rename {} into place", self.temp.display()))?;
        self.committed.set(true);
        if let Some(dir) = self.target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot fsync folder {}", dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed.get() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// How much is written before it is handed to the disk.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A file being written under its temporary name. What goes through the
/// page cache is handed to the disk every 8 MiB without waiting (Linux's
/// sync_file_range), so the disk writes while alerts arrive and the fsync
/// before the rename has little left to do; left alone, the kernel would
/// hold a whole visit (400 MB) until that fsync. An archive's direct
/// writes are on the disk when they return.
#[derive(Debug)]
pub struct Written {
    file: File,
    written: u64,
    /// Bytes already handed to the disk.
    handed: u64,
    /// An archive's bytes not yet written (see [`Pending::create_archive`]).
    gather: Option<Gather>,
    /// The file is open for direct writes (O_DIRECT).
    direct: bool,
    /// A write failed: what comes after would not land where it belongs.
    failed: bool,
}

impl Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.unless_failed(|this| {
            let Some(gather) = this.gather.as_mut() else {
                let n = this.file.write(buf)?;
                this.passed(n as u64);
                return Ok(n);
            };
            if gather.len == GATHER {
                this.write_blocks()?;
            }
            Ok(this.gather.as_mut().map_or(0, |gather| gather.push(buf)))
        })
    }

    /// Writes the whole blocks gathered; a partial last block waits for
    /// more (or for [`Written::sync_all`]).
    fn flush(&mut self) -> std::io::Result<()> {
        self.unless_failed(|this| {
            this.write_blocks()?;
            this.file.flush()
        })
    }
}

impl Written {
    /// An archive's writing (gathered, not direct) to a file of a test's
    /// choosing, such as /dev/full.
    #[cfg(test)]
    pub fn gathering(file: File) -> Self {
        Written {
            file,
            written: 0,
            handed: 0,
            gather: Some(Gather::new()),
            direct: false,
            failed: false,
        }
    }

    /// Runs `step` unless an earlier step failed; a failure (other than an
    /// interrupted call, which is tried again) fails every later one.
    fn unless_failed<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write to this file failed",
            ));
        }
        let done = step(self);
        self.failed = matches!(&done, Err(e) if e.kind() != std::io::ErrorKind::Interrupted);
        done
    }

    /// Counts `n` bytes given to the kernel's page cache, and every 8 MiB
    /// starts their way to the disk.
    fn passed(&mut self, n: u64) {
        self.written += n;
        if self.written - self.handed >= WRITEBACK_STEP {
            start_writeback(&self.file, self.handed, self.written - self.handed);
            self.handed = self.written;
        }
    }

    /// Writes the whole blocks gathered, keeping the partial last one.
    fn write_blocks(&mut self) -> std::io::Result<()> {
        let Some(mut gather) = self.gather.take() else {
            return Ok(());
        };
        let whole = gather.len / ALIGN * ALIGN;
        let written = self.write_gathered(&gather, whole);
        gather.keep_from(whole);
        self.gather = Some(gather);
        written
    }

    /// Writes the first `len` bytes gathered, directly if the file takes
    /// it; a file system that refuses a direct write after taking the flag
    /// gets this one and the rest through the page cache.
    fn write_gathered(&mut self, gather: &Gather, len: usize) -> std::io::Result<()> {
        let bytes = &gather.filled()[..len];
        if self.direct {
            match self.file.write_all(bytes) {
                Ok(()) => {
                    // Nothing to hand over, unless the file system took
                    // the flag and wrote through its page cache anyway.
                    self.passed(len as u64);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.nothing_written()? => {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all(bytes)?;
        self.passed(len as u64);
        Ok(())
    }

    /// Whether the file holds nothing yet: a refused first direct write.
    fn nothing_written(&mut self) -> std::io::Result<bool> {
        use std::io::Seek;
        Ok(self.written == 0 && self.file.stream_position()? == 0)
    }

    /// Makes what was written durable, the file staying open; an archive
    /// writes on through the page cache from here.
    pub fn sync_all(&mut self) -> std::io::Result<()> {
        self.unless_failed(|this| {
            if let Some(mut gather) = this.gather.take() {
                let whole = gather.len / ALIGN * ALIGN;
                this.write_gathered(&gather, whole)?;
                gather.keep_from(whole);
                if this.direct {
                    set_direct(&this.file, false)?;
                    this.direct = false;
                }
                let tail = gather.len;
                this.write_gathered(&gather, tail)?;
            }
            this.file.sync_all()
        })
    }
}

/// What O_DIRECT asks of a write's memory address, length and file offset
/// (the largest logical block size in common use).
const ALIGN: usize = 4096;

/// Bytes an archive gathers before writing: direct writes of 1 MiB ran at
/// the disk's speed here, of 256 KiB at two thirds of it.
const GATHER: usize = 1 << 20;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; ALIGN]);

/// An archive's bytes not yet written, in aligned blocks, from the start.
struct Gather {
    blocks: Vec<Block>,
    len: usize,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gather({} bytes)", self.len)
    }
}

impl Gather {
    fn new() -> Self {
        Self {
            blocks: vec![Block([0; ALIGN]); GATHER / ALIGN],
            len: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        // SAFETY: the blocks are contiguous, initialised plain bytes.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes(&mut self) -> &mut [u8] {
        let len = self.blocks.len() * ALIGN;
        // SAFETY: the blocks are contiguous, initialised plain bytes, and
        // the slice borrows them mutably for its life.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Copies in what fits of `buf`; how much.
    fn push(&mut self, buf: &[u8]) -> usize {
        let (at, n) = (self.len, buf.len().min(GATHER - self.len));
        self.bytes()[at..at + n].copy_from_slice(&buf[..n]);
        self.len += n;
        n
    }

    /// Drops the first `written` bytes, moving the rest to the start.
    fn keep_from(&mut self, written: usize) {
        let len = self.len;
        self.bytes().copy_within(written..len, 0);
        self.len = len - written;
    }
}

/// Turns O_DIRECT on or off for an open file; an error where the file
/// system does not take it.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl reads and sets the status flags of a valid descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let flags = match on {
        true => flags | libc::O_DIRECT,
        false => flags & !libc::O_DIRECT,
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, _on: bool) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Starts writing a range of `file` to the disk; the fsync checks the outcome.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only schedules writeback.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_planted_at_the_temporary_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let folder = dir.path().join("out");
        let pending = Pending::new(&folder, "a.avro").unwrap();
        std::os::unix::fs::symlink(&victim, &pending.temp).unwrap();
        let mut file = pending.create().unwrap();
        file.write_all(b"archive").unwrap();
        pending.commit(file).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let target = folder.join("a.avro");
        assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(target).unwrap(), "archive");
    }

    /// Pieces of every awkward size around the block and the gathering
    /// buffer, with a sync midway: the file holds exactly what was written,
    /// whether the file system took direct writes or not.
    #[test]
    fn an_archive_holds_its_bytes_whatever_the_sizes_of_the_writes() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let pending = Pending::new(dir.path(), "a.parquet").unwrap();
            let mut file = pending.create_archive().unwrap();
            let probe = std::fs::File::create(dir.path().join("probe")).unwrap();
            assert_eq!(file.direct, set_direct(&probe, true).is_ok());
            if !direct {
                set_direct(&file.file, false).unwrap_or_default();
                file.direct = false;
            }
            let mut expected = Vec::new();
            let sizes = [
                1,
                ALIGN - 1,
                ALIGN + 1,
                3,
                GATHER,
                GATHER + 5,
                0,
                7 * ALIGN,
                11,
            ];
            for (i, size) in sizes.into_iter().enumerate() {
                let piece: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
                file.write_all(&piece).unwrap();
                expected.extend_from_slice(&piece);
                if i == 4 {
                    file.flush().unwrap();
                }
                if i == 6 {
                    file.sync_all().unwrap();
                }
            }
            pending.commit(file).unwrap();
            let got = std::fs::read(dir.path().join("a.parquet")).unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
            assert_eq!(got.len(), expected.len(), "direct: {direct}");
            assert!(got == expected, "direct: {direct}");
        }
    }

    /// After a failed write nothing more is taken, not even a sync: the
    /// bytes after it would not be where they belong.
    #[test]
    fn a_failed_write_fails_every_later_one() {
        let mut file = Written {
            file: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
            written: 0,
            handed: 0,
            gather: Some(Gather::new()),
            direct: false,
            failed: false,
        };
        let block = vec![7u8; GATHER];
        file.write_all(&block).unwrap();
        let full = file.write_all(b"more").unwrap_err();
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        let later = file.write_all(b"again").unwrap_err();
        assert!(later.to_string().contains("an earlier write"), "{later}");
        assert!(file.sync_all().is_err());
        assert!(file.flush().is_err());
    }

    #[test]
    fn a_file_never_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pending = Pending::new(dir.path(), "a.avro").unwrap();
        let mut file = pending.create().unwrap();
        file.write_all(b"half").unwrap();
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

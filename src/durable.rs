//! Files that appear whole or not at all: written under a temporary name in
//! the same folder, fsynced, renamed into place, and the folder fsynced.
//! Archives, simulated visits and cached schemas are all written this way.

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
        })
    }

    /// Makes the file durable and gives it its name.
    pub fn commit(&self, written: Written) -> Result<()> {
        let file = written.file;
        file.sync_all()
            .with_context(|| format!("cannot write {} (fsync)", self.temp.display()))?;
        drop(file);
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

    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed.get() {
            self.discard();
        }
    }
}

/// How much is written before it is handed to the disk.
const WRITEBACK_STEP: u64 = 8 << 20;

/// An archive file being written. Every 8 MiB it hands what it holds to the
/// disk without waiting (Linux's sync_file_range), so the disk writes while
/// alerts arrive and the fsync before the rename has little left to do;
/// left alone, the kernel would hold a whole visit (400 MB) until that fsync.
#[derive(Debug)]
pub struct Written {
    file: File,
    written: u64,
    /// Bytes already handed to the disk.
    handed: u64,
}

impl Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.handed >= WRITEBACK_STEP {
            start_writeback(&self.file, self.handed, self.written - self.handed);
            self.handed = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Written {
    /// Makes what was written durable, the file staying open.
    pub fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }
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

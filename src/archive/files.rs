//! Archive file names, and writing them so that a name in the folder always
//! holds a whole file: a temporary name, fsync, rename, fsync of the folder.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The final name of the file whose first alert is `offset` of `partition`.
/// Offsets are zero-padded so that names sort in stream order.
pub fn file_name(topic: &str, partition: i32, offset: i64, extension: &str) -> String {
    format!("{topic}-p{partition}-o{offset:020}.{extension}")
}

/// `(partition, first offset)` of an archive file name of `topic`.
pub fn parse_name(topic: &str, name: &str) -> Option<(i32, i64)> {
    let rest = name.strip_prefix(topic)?.strip_prefix("-p")?;
    let (partition, rest) = rest.split_once("-o")?;
    let offset = rest.split('.').next()?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// A file being written: under a temporary name until [`Pending::commit`].
#[derive(Debug)]
pub struct Pending {
    pub temp: PathBuf,
    pub target: PathBuf,
}

impl Pending {
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create archive folder {}", dir.display()))?;
        Ok(Self {
            temp: dir.join(format!(".{name}.part")),
            target: dir.join(name),
        })
    }

    pub fn create(&self) -> Result<Written> {
        let file = File::create(&self.temp)
            .with_context(|| format!("cannot create {}", self.temp.display()))?;
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

/// Before a group re-reads `partition` from `offset`, removes what an
/// earlier run left of it past that point: temporary files, and files
/// renamed into place whose offsets were never committed (they are written
/// again, perhaps cut at other points). Looks in `dir` and its `date=` folders.
pub fn remove_uncommitted(dir: &Path, topic: &str, partition: i32, offset: i64) -> Result<usize> {
    let mut removed = 0;
    let mut folders = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        folders.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("date="))
                }),
        );
    }
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (temp, plain) = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) {
                Some(inner) => (true, inner.to_string()),
                None => (false, name.clone()),
            };
            let Some((p, first)) = parse_name(topic, &plain) else {
                continue;
            };
            if p == partition && (temp || first >= offset) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_stream_order_and_parse_back() {
        let a = file_name("my-stream", 3, 99, "avro");
        let b = file_name("my-stream", 3, 100, "avro");
        assert!(a < b);
        assert_eq!(a, "my-stream-p3-o00000000000000000099.avro");
        assert_eq!(parse_name("my-stream", &a), Some((3, 99)));
        assert_eq!(parse_name("other", &a), None);
        assert_eq!(
            parse_name("my-stream", &format!("{a}.kafka.jsonl")),
            Some((3, 99))
        );
    }

    #[test]
    fn uncommitted_files_past_the_offset_go() {
        let dir = tempfile::tempdir().unwrap();
        for (p, o) in [(0, 0), (0, 100), (0, 200), (1, 150)] {
            std::fs::write(dir.path().join(file_name("t", p, o, "avro")), b"x").unwrap();
        }
        std::fs::write(
            dir.path()
                .join(format!(".{}.part", file_name("t", 0, 50, "avro"))),
            b"x",
        )
        .unwrap();
        assert_eq!(remove_uncommitted(dir.path(), "t", 0, 100).unwrap(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [file_name("t", 0, 0, "avro"), file_name("t", 1, 150, "avro")]
        );
    }
}

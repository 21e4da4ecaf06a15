//! Archive file names, and writing them so that a name in the folder always
//! holds a whole file: a temporary name, fsync, rename, fsync of the folder.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::durable::Pending;
use crate::exit::bad_input;

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

/// Before a group re-reads `partition` from `offset`, removes what an
/// earlier run left of it past that point: temporary files, and files
/// renamed into place whose offsets were never committed (they are written
/// again, perhaps cut at other points). Looks in `dir` and its `date=`
/// folders. Only in a folder the group has claimed (see [`claim`]).
pub fn remove_uncommitted(dir: &Path, topic: &str, partition: i32, offset: i64) -> Result<usize> {
    let mut removed = 0;
    for file in archive_files(dir, topic) {
        if file.partition == partition && (file.temporary || file.first >= offset) {
            std::fs::remove_file(&file.path)
                .with_context(|| format!("cannot remove {}", file.path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// One file of a topic's archive, complete or temporary.
struct ArchiveFile {
    path: PathBuf,
    temporary: bool,
    partition: i32,
    first: i64,
}

/// The files of `topic`'s archive in `dir` and its `date=` folders.
fn archive_files(dir: &Path, topic: &str) -> Vec<ArchiveFile> {
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
    let mut files = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (temporary, plain) =
                match name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) {
                    Some(inner) => (true, inner.to_string()),
                    None => (false, name.clone()),
                };
            if let Some((partition, first)) = parse_name(topic, &plain) {
                files.push(ArchiveFile {
                    path: entry.path(),
                    temporary,
                    partition,
                    first,
                });
            }
        }
    }
    files
}

/// Checks that a run may write `topic`'s archive into `dir`, and that it
/// can. A group's start removes what it finds past its committed offsets
/// as never committed, so a folder is one group's: the first group run
/// claims it (`.TOPIC.group` holds the group's name), and a run in another
/// group, or a time window (`group` None: its files could replace the
/// group's), is refused. So are files of the topic no group has claimed,
/// from a window or an older alertstream: a group would remove them.
pub fn claim(dir: &Path, topic: &str, group: Option<&str>) -> Result<()> {
    let name = format!(".{topic}.group");
    let path = dir.join(&name);
    let shown = dir.display();
    let owner = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(bad_input(format!("cannot read {}: {e}", path.display()))),
    };
    let refusal = match (group, owner) {
        (Some(group), Some(owner)) if owner == group => return Ok(()),
        (Some(group), Some(owner)) => format!(
            "--out {shown} holds {topic}'s archive of group {owner}: record group {group} \
             into another folder (it would remove {owner}'s files past its own offsets)"
        ),
        (None, Some(owner)) => format!(
            "--out {shown} holds {topic}'s archive of group {owner}: record the time window \
             into another folder (its files could replace the group's)"
        ),
        (Some(group), None) if !archive_files(dir, topic).is_empty() => format!(
            "--out {shown} holds files of {topic} that no group has claimed (a time window's, \
             or an older alertstream's): record group {group} into another folder, or, if \
             they are this group's, claim them with: echo {group} > {}",
            path.display()
        ),
        (group, None) => return write_claim(dir, topic, &path, group),
    };
    Err(bad_input(refusal))
}

/// Claims `dir` for `group`; for a window (`None`) only tries that it can
/// write there, so that an --out it cannot write fails now, not at the first
/// alert. The claim is linked into place: of two groups starting at once,
/// one gets the folder and the other is refused.
fn write_claim(dir: &Path, topic: &str, path: &Path, group: Option<&str>) -> Result<()> {
    let shown = dir.display();
    let pending = Pending::new(dir, &format!(".{topic}.group-{}", std::process::id()))
        .map_err(|e| bad_input(format!("{e:#}")))?;
    let mut written = pending
        .create()
        .map_err(|e| bad_input(format!("cannot write to --out {shown}: {e:#}")))?;
    let Some(group) = group else {
        return Ok(());
    };
    let linked = written
        .write_all(format!("{group}\n").as_bytes())
        .and_then(|()| written.sync_all())
        .and_then(|()| std::fs::hard_link(&pending.temp, path));
    match linked {
        Ok(()) => File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot fsync folder {shown}")),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => claim(dir, topic, Some(group)),
        Err(e) => Err(bad_input(format!("cannot write {}: {e}", path.display()))),
    }
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

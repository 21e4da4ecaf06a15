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
///
/// A time window leaves no file until its first roll, so it holds a shared
/// lock on `.TOPIC.lock` for its whole run (the returned [`Claim`]), and a
/// group takes that lock exclusively while it claims: a group cannot claim
/// a folder a window is recording into, nor a window start while a group
/// claims it (both exit 2). Windows may share a folder, as before.
pub fn claim(dir: &Path, topic: &str, group: Option<&str>) -> Result<Claim> {
    let lock = open_lock(dir, topic)?;
    let locked = match group {
        None => lock.try_lock_shared(),
        Some(_) => lock_to_claim(&lock, &claim_path(dir, topic)),
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(bad_input(busy(dir, topic, group)));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(bad_input(format!(
                "cannot lock {}: {e}",
                lock_path(dir, topic).display()
            )))
        }
    }
    claim_once(dir, topic, group, true)?;
    // A group's claim file speaks for it from here; a window keeps its lock.
    Ok(Claim {
        _window_lock: group.is_none().then_some(lock),
    })
}

/// A group's exclusive hold on the lock while it claims. Another member
/// of the same group starting at the same moment holds it for the few
/// milliseconds its claim takes: once a claim is there, no window can be
/// running (it refuses a claimed folder, and a claim is made only under
/// the lock), so the claim decides ([`claim_once`]) without the lock. A
/// window holding it (for its whole run) is waited for two seconds at most.
fn lock_to_claim(lock: &File, claim: &Path) -> Result<(), std::fs::TryLockError> {
    const TRIES: u32 = 40;
    for _ in 1..TRIES {
        match lock.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => {}
            done => return done,
        }
        if matches!(read_claim(claim), Ok(Some(_))) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    lock.try_lock()
}

/// What a run keeps while it records: a time window's shared lock on its
/// folder (see [`claim`]).
#[derive(Debug)]
pub struct Claim {
    _window_lock: Option<File>,
}

fn lock_path(dir: &Path, topic: &str) -> PathBuf {
    dir.join(format!(".{topic}.lock"))
}

/// The folder's lock file, created empty if absent; a symlink planted at
/// its name is refused, never followed.
fn open_lock(dir: &Path, topic: &str) -> Result<File> {
    let path = lock_path(dir, topic);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    options
        .open(&path)
        .map_err(|e| bad_input(format!("cannot open {}: {e}", path.display())))
}

/// Why a run in `group` (None: a time window) finds the folder's lock held.
fn busy(dir: &Path, topic: &str, group: Option<&str>) -> String {
    let shown = dir.display();
    match group {
        Some(group) => format!(
            "a time window is recording {topic} into --out {shown} now (or another recorder \
             is claiming it): record group {group} into another folder, as its start would \
             remove the window's files"
        ),
        None => format!(
            "a group run is claiming --out {shown} for {topic} now: record the time window \
             into another folder (its files could replace the group's)"
        ),
    }
}

/// Most of what [`claim`] would refuse (all but losing a race for the
/// claim, or failing to write it), found without writing anything that
/// stays: a recorder checks this before it reaches its brokers, so that a
/// folder it may not use fails at once, and claims only after. An --out
/// that is not a folder yet has no claim to refuse; its nearest existing
/// folder must let it be created.
pub fn check_claim(dir: &Path, topic: &str, group: Option<&str>) -> Result<()> {
    if !dir.is_dir() {
        return creatable(dir);
    }
    let owner = read_claim(&claim_path(dir, topic))?;
    match refusal(dir, topic, group, owner.as_deref()) {
        Some(refusal) => Err(bad_input(refusal)),
        None => probe(dir),
    }
}

/// Whether `dir`, which does not exist, could be created: its nearest
/// existing ancestor is a folder this process may write (asked of the
/// kernel, writing nothing: a read-only mount says no even to root).
fn creatable(dir: &Path) -> Result<()> {
    let cannot = |why: String| bad_input(format!("cannot create --out {}: {why}", dir.display()));
    let mut ancestor = dir;
    while !ancestor.exists() {
        ancestor = match ancestor.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    if !ancestor.is_dir() {
        return Err(cannot(format!("{} is not a folder", ancestor.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(ancestor.as_os_str().as_bytes())
            .map_err(|_| cannot("a NUL byte in its path".into()))?;
        // SAFETY: a NUL-terminated path that outlives the call.
        if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let error = std::io::Error::last_os_error();
            return Err(cannot(format!("{}: {error}", ancestor.display())));
        }
    }
    Ok(())
}

fn claim_path(dir: &Path, topic: &str) -> PathBuf {
    dir.join(format!(".{topic}.group"))
}

fn claim_once(dir: &Path, topic: &str, group: Option<&str>, may_retry: bool) -> Result<()> {
    let path = claim_path(dir, topic);
    let owner = read_claim(&path)?;
    if let Some(refusal) = refusal(dir, topic, group, owner.as_deref()) {
        return Err(bad_input(refusal));
    }
    let (Some(group), None) = (group, owner) else {
        return probe(dir);
    };
    match write_claim(dir, &path, group)? {
        true => Ok(()),
        false if may_retry => claim_once(dir, topic, Some(group), false),
        false => Err(bad_input(format!(
            "cannot claim --out {} for group {group}: {} changes under it",
            dir.display(),
            path.display()
        ))),
    }
}

/// Why a run in `group` (None: a time window) may not record `topic` into
/// `dir`, whose claim names `owner`; None if it may.
fn refusal(dir: &Path, topic: &str, group: Option<&str>, owner: Option<&str>) -> Option<String> {
    let shown = dir.display();
    // Without --group, record's group is the host's name.
    let hint = "(without --group, the group is this host's name)";
    Some(match (group, owner) {
        (Some(group), Some(owner)) if owner == group => return None,
        (_, Some("")) => format!(
            "{} is empty: another recorder may be claiming --out {shown} now; if not, remove it",
            claim_path(dir, topic).display()
        ),
        (Some(group), Some(owner)) => format!(
            "--out {shown} holds {topic}'s archive of group {owner}: record group {group} \
             into another folder, as its start would remove {owner}'s files past its own \
             offsets {hint}"
        ),
        (None, Some(owner)) => format!(
            "--out {shown} holds {topic}'s archive of group {owner}: record the time window \
             into another folder (its files could replace the group's)"
        ),
        (None, None) => return None,
        (Some(group), None) if !archive_files(dir, topic).is_empty() => format!(
            "--out {shown} holds files of {topic} that no group has claimed (a time window's, \
             or an older alertstream's): record group {group} into another folder, or, if \
             they are this group's, claim them with: echo {} > {} {hint}",
            shell_quoted(group),
            shell_quoted(&claim_path(dir, topic).display().to_string())
        ),
        (Some(_), None) => return None,
    })
}

/// The group a claim names (its one line), `None` if there is no claim.
fn read_claim(path: &Path) -> Result<Option<String>> {
    let cannot = |e: std::io::Error| bad_input(format!("cannot read {}: {e}", path.display()));
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(e)),
        Ok(meta) if !meta.is_file() => {
            return Err(bad_input(format!(
                "{} is not a file: a claim names the group recording into its folder; remove it",
                path.display()
            )))
        }
        Ok(_) => {}
    }
    // Written as the group's name and a newline: only that newline goes
    // (a group may end in a carriage return, and is then not another's).
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    Ok(Some(text.strip_suffix('\n').unwrap_or(&text).to_string()))
}

/// Claims `dir` for `group`: whether the claim is now this group's (false:
/// another process claimed it first, or changed it). The claim is linked
/// into place whole, or, where the file system has no hard links, created
/// only if absent.
fn write_claim(dir: &Path, path: &Path, group: &str) -> Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let pending = Pending::unique(dir, &name).map_err(|e| bad_input(format!("{e:#}")))?;
    let line = format!("{group}\n");
    let written = pending.create().and_then(|mut file| {
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        Ok(())
    });
    written.map_err(|e| bad_input(format!("cannot write to --out {}: {e:#}", dir.display())))?;
    let linked = std::fs::hard_link(&pending.temp, path).or_else(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Err(e),
        _ => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| {
                let written = file
                    .write_all(line.as_bytes())
                    .and_then(|()| file.sync_all());
                // A claim made here and not written would stop every run.
                if written.is_err() {
                    let _ = std::fs::remove_file(path);
                }
                written
            }),
    });
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(bad_input(format!("cannot write {}: {e}", path.display()))),
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync folder {}", dir.display()))?;
    Ok(read_claim(path)?.as_deref() == Some(group))
}

/// Tries that `dir` can be written, so that an --out it cannot write fails
/// at the start, not at the first alert.
fn probe(dir: &Path) -> Result<()> {
    let written = Pending::unique(dir, ".alertstream-probe").and_then(|p| p.create().map(drop));
    written.map_err(|e| bad_input(format!("cannot write to --out {}: {e:#}", dir.display())))
}

/// `text` as one word for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(dir: &Path, group: Option<&str>) -> String {
        format!("{:#}", claim(dir, "t", group).unwrap_err())
    }

    #[test]
    fn a_folder_is_claimed_by_its_first_group_only() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), "t", Some("ops ")).unwrap();
        claim(dir.path(), "t", Some("ops ")).unwrap();
        assert!(refused(dir.path(), Some("ops")).contains("of group ops "));
        assert!(refused(dir.path(), None).contains("record the time window"));
        drop(claim(dir.path(), "other-topic", None).unwrap());
        assert_eq!(
            names(dir.path()),
            [".other-topic.lock", ".t.group", ".t.lock"],
            "only the claim and the locks"
        );
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A window leaves no file before its first roll: its lock is what
    /// keeps a group from claiming the folder under it, and a window from
    /// starting while a group claims.
    #[test]
    fn a_window_and_a_group_claim_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let window = claim(dir.path(), "t", None).unwrap();
        let second_window = claim(dir.path(), "t", None).unwrap();
        let said = refused(dir.path(), Some("g"));
        assert!(said.contains("a time window is recording t"), "{said}");
        claim(dir.path(), "other-topic", Some("g")).unwrap();
        drop((window, second_window));
        claim(dir.path(), "t", Some("g")).unwrap();

        // A member of the same group claiming at the same moment: its
        // claim written, this one goes on.
        let dir = tempfile::tempdir().unwrap();
        let member = open_lock(dir.path(), "t").unwrap();
        member.try_lock().unwrap();
        std::fs::write(dir.path().join(".t.group"), "g\n").unwrap();
        claim(dir.path(), "t", Some("g")).unwrap();
        assert!(refused(dir.path(), Some("h")).contains("of group g"));
        drop(member);

        let dir = tempfile::tempdir().unwrap();
        let claiming = open_lock(dir.path(), "t").unwrap();
        claiming.try_lock().unwrap();
        let said = refused(dir.path(), None);
        assert!(said.contains("a group run is claiming"), "{said}");
        drop(claiming);
        drop(claim(dir.path(), "t", None).unwrap());
    }

    #[test]
    fn a_symlink_planted_at_the_lock_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let folder = dir.path().join("out");
        std::fs::create_dir(&folder).unwrap();
        std::os::unix::fs::symlink(&outside, folder.join(".t.lock")).unwrap();
        let said = refused(&folder, None);
        assert!(said.contains(".t.lock"), "{said}");
        assert!(!outside.exists());
    }

    /// A claim is its group's name and the newline after it, nothing
    /// less: a group ending in a carriage return is not the group without.
    #[test]
    fn a_group_differing_by_a_carriage_return_is_another_group() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), "t", Some("ops\r")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".t.group")).unwrap(),
            "ops\r\n"
        );
        assert!(refused(dir.path(), Some("ops")).contains("of group ops\r"));
        claim(dir.path(), "t", Some("ops\r")).unwrap();
    }

    /// The check a recorder makes before it reaches its brokers refuses
    /// what the claim refuses and leaves every folder as it found it.
    #[test]
    fn the_check_before_a_claim_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        check_claim(dir.path(), "t", Some("g")).unwrap();
        check_claim(dir.path(), "t", None).unwrap();
        let absent = dir.path().join("absent");
        check_claim(&absent, "t", Some("g")).unwrap();
        assert!(!absent.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        claim(dir.path(), "t", Some("g")).unwrap();
        check_claim(dir.path(), "t", Some("g")).unwrap();
        let said = format!("{:#}", check_claim(dir.path(), "t", Some("h")).unwrap_err());
        assert!(said.contains("of group g"), "{said}");
        assert!(
            format!("{:#}", check_claim(dir.path(), "t", None).unwrap_err())
                .contains("record the time window")
        );
        assert_eq!(names(dir.path()), [".t.group", ".t.lock"], "only the claim");
    }

    #[test]
    fn unclaimed_files_and_odd_claims_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file_name("t", 0, 0, "avro")), b"x").unwrap();
        let said = refused(dir.path(), Some("it's"));
        assert!(said.contains("no group has claimed"), "{said}");
        assert!(said.contains(r"echo 'it'\''s' > '"), "{said}");
        let planted = tempfile::tempdir().unwrap();
        let claim_file = planted.path().join(".t.group");
        std::os::unix::fs::symlink(planted.path().join("nowhere"), &claim_file).unwrap();
        assert!(refused(planted.path(), Some("g")).contains("is not a file"));
    }

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

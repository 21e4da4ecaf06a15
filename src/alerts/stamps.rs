//! Cutouts ("postage stamps"): finding them in an alert, leaving them out
//! (`send --no-stamps`), and writing them to disk (`print --stamp-dir`).
//!
//! ZTF carries each cutout as a record `{fileName, stampData}`; Rubin as a
//! plain `bytes` field. File names come from the network, so they are checked
//! before anything is written, and writes go through a temporary file in the
//! same folder and a rename, so a symlink planted in the folder is replaced,
//! never followed, and a reader never sees half a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use apache_avro::schema::Schema;
use apache_avro::types::Value;

use crate::avro::json::is_cutout_field;
use crate::exit::bad_input;

/// One cutout of an alert.
#[derive(Debug, PartialEq)]
pub struct Cutout<'a> {
    /// The alert field it came from, e.g. `cutoutScience`.
    pub field: &'a str,
    /// The file name the alert gives it (ZTF), if any.
    pub file_name: Option<&'a str>,
    /// The image, normally a gzip-compressed FITS file.
    pub data: &'a [u8],
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// The cutouts present in an alert (absent or null ones are skipped).
pub fn cutouts(alert: &Value) -> Vec<Cutout<'_>> {
    let Value::Record(fields) = alert else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, value) in fields {
        if !is_cutout_field(name) {
            continue;
        }
        match unwrap_union(value) {
            Value::Bytes(data) => found.push(Cutout {
                field: name,
                file_name: None,
                data,
            }),
            Value::Record(inner) => {
                let file_name =
                    inner
                        .iter()
                        .find_map(|(k, v)| match (k.as_str(), unwrap_union(v)) {
                            ("fileName", Value::String(s)) => Some(s.as_str()),
                            _ => None,
                        });
                let data = inner
                    .iter()
                    .find_map(|(k, v)| match (k.as_str(), unwrap_union(v)) {
                        ("stampData", Value::Bytes(b)) => Some(b.as_slice()),
                        _ => None,
                    });
                if let Some(data) = data {
                    found.push(Cutout {
                        field: name,
                        file_name,
                        data,
                    });
                }
            }
            _ => {}
        }
    }
    found
}

/// Empties the cutouts of an alert: null where the schema allows it, else
/// empty image bytes (keeping the record and its file name).
pub fn strip(alert: &mut Value, schema: &Schema) {
    let (Value::Record(fields), Schema::Record(record)) = (alert, schema) else {
        return;
    };
    for (name, value) in fields.iter_mut() {
        if !is_cutout_field(name) {
            continue;
        }
        let null_branch = record
            .fields
            .iter()
            .find(|f| f.name == *name)
            .and_then(|f| match &f.schema {
                Schema::Union(union) => union.variants().iter().position(|s| *s == Schema::Null),
                _ => None,
            });
        match null_branch {
            Some(index) => *value = Value::Union(index as u32, Box::new(Value::Null)),
            None => empty_image(value),
        }
    }
}

fn empty_image(value: &mut Value) {
    match value {
        Value::Union(_, inner) => empty_image(inner),
        Value::Bytes(data) => data.clear(),
        Value::Record(inner) => {
            for (k, v) in inner.iter_mut() {
                if k == "stampData" {
                    empty_image(v);
                }
            }
        }
        _ => {}
    }
}

/// An identifier for naming bare-bytes cutouts: ZTF `candid`, Rubin `diaSourceId` or `alertId`.
pub fn alert_id(alert: &Value) -> Option<String> {
    let Value::Record(fields) = alert else {
        return None;
    };
    let find = |fields: &[(String, Value)], key: &str| {
        fields
            .iter()
            .find_map(|(k, v)| match (k == key, unwrap_union(v)) {
                (true, Value::Long(n)) => Some(n.to_string()),
                (true, Value::Int(n)) => Some(n.to_string()),
                (true, Value::String(s)) => Some(s.clone()),
                _ => None,
            })
    };
    find(fields, "candid")
        .or_else(|| {
            fields
                .iter()
                .find_map(|(k, v)| match (k.as_str(), unwrap_union(v)) {
                    ("diaSource", Value::Record(inner)) => find(inner, "diaSourceId"),
                    _ => None,
                })
        })
        .or_else(|| find(fields, "diaSourceId"))
        .or_else(|| find(fields, "alertId"))
}

/// The longest file name written; most file systems allow 255 bytes.
const MAX_NAME: usize = 255;

/// Why a cutout file name is refused, or `None` if it is safe inside the folder.
pub fn refuse_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty file name")
    } else if name.contains('\0') {
        Some("file name contains a NUL byte")
    } else if name.contains('/') || name.contains('\\') {
        Some("file name contains a path separator")
    } else if name == "." {
        Some("file name is '.', the folder itself")
    } else if name.contains("..") {
        Some("file name contains '..'")
    } else if name.len() > MAX_NAME {
        Some("file name longer than 255 bytes")
    } else if Path::new(name).is_absolute() {
        Some("absolute file name")
    } else {
        None
    }
}

/// Why a cutout was not written.
#[derive(Debug)]
pub enum StampError {
    /// Its name is unsafe: reported and skipped (hostile input).
    Refused(String),
    /// The file system failed (full disk, permissions): the consumer stops.
    Failed(String),
}

impl std::fmt::Display for StampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StampError {}

/// Temporary files get short names of their own, so that a 255-byte cutout
/// name never makes a longer temporary one.
static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The folder given with `--stamp-dir`; nothing is written outside it.
#[derive(Debug)]
pub struct StampDir {
    dir: PathBuf,
}

impl StampDir {
    /// Creates the folder if needed and checks that it can be written, so
    /// that a folder this user cannot write fails at start, not per alert.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| bad_input(format!("cannot create --stamp-dir {}: {e}", dir.display())))?;
        let stamps = Self {
            dir: dir.to_path_buf(),
        };
        let probe = stamps.temp_name();
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|_| std::fs::remove_file(&probe));
        if let Err(e) = written {
            return Err(bad_input(format!(
                "cannot write in --stamp-dir {}: {e} (it must be writable by this user; \
                 in a container, mount a named volume or a folder the container's user owns)",
                dir.display()
            )));
        }
        Ok(stamps)
    }

    /// A temporary file name of its own: short, whatever the cutout's name.
    fn temp_name(&self) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir
            .join(format!(".alertstream-{}-{n}.part", std::process::id()))
    }

    /// The name a cutout is written under.
    pub fn file_name(cutout: &Cutout<'_>, alert_id: Option<&str>) -> String {
        match cutout.file_name {
            Some(name) => name.to_string(),
            None => format!("{}_{}.fits", alert_id.unwrap_or("unknown"), cutout.field),
        }
    }

    /// Writes one cutout; `Err` says why it was refused or failed.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<PathBuf, StampError> {
        if let Some(reason) = refuse_name(name) {
            return Err(StampError::Refused(format!(
                "refused cutout file name {name:?}: {reason}"
            )));
        }
        let target = self.dir.join(name);
        let temp = self.temp_name();
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut file| file.write_all(data))
            .and_then(|()| std::fs::rename(&temp, &target));
        match result {
            Ok(()) => Ok(target),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(StampError::Failed(format!(
                    "cannot write cutout {}: {e}",
                    target.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in ["", "../x", "/etc/x", "a/b", "a\\b", "..", ".", "a\0b"] {
            assert!(refuse_name(name).is_some(), "{name:?} accepted");
        }
        assert!(refuse_name(&"x".repeat(300)).is_some());
        assert!(refuse_name("candid123_sci.fits.gz").is_none());
    }

    #[test]
    fn writes_stay_in_the_folder_and_replace_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&victim, dir.path().join("a.fits.gz")).unwrap();
        let stamps = StampDir::create(dir.path()).unwrap();
        let written = stamps.write("a.fits.gz", b"image").unwrap();
        assert_eq!(written, dir.path().join("a.fits.gz"));
        assert_eq!(std::fs::read(&written).unwrap(), b"image");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(stamps.write("../escape", b"x").is_err());
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }

    #[test]
    fn strip_nulls_nullable_cutouts_and_empties_the_rest() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"candid","type":"long"},
                {"name":"cutoutScience","type":[{"type":"record","name":"cutout","fields":[
                    {"name":"fileName","type":"string"},{"name":"stampData","type":"bytes"}]},"null"]},
                {"name":"cutoutTemplate","type":"bytes"}]}"#,
        )
        .unwrap();
        let mut alert = Value::Record(vec![
            ("candid".into(), Value::Long(7)),
            (
                "cutoutScience".into(),
                Value::Union(
                    0,
                    Box::new(Value::Record(vec![
                        ("fileName".into(), Value::String("s.fits.gz".into())),
                        ("stampData".into(), Value::Bytes(vec![1, 2, 3])),
                    ])),
                ),
            ),
            ("cutoutTemplate".into(), Value::Bytes(vec![4, 5])),
        ]);
        assert_eq!(cutouts(&alert).len(), 2);
        strip(&mut alert, &schema);
        let Value::Record(fields) = &alert else {
            unreachable!()
        };
        assert_eq!(fields[1].1, Value::Union(1, Box::new(Value::Null)));
        assert_eq!(fields[2].1, Value::Bytes(vec![]));
        assert!(apache_avro::to_avro_datum(&schema, alert.clone()).is_ok());
        assert_eq!(alert_id(&alert).as_deref(), Some("7"));
    }
}

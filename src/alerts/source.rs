//! Alert sources for `send`: Avro object container files (or folders of
//! them), or the sample alerts built into the binary. Every file is read and
//! checked completely before anything is sent, so a bad file sends nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use apache_avro::types::Value;
use apache_avro::Schema;

use crate::archive::Meta;
use crate::avro::gate::{self, WriterCache};
use crate::avro::plan::Budget;

use crate::exit::bad_input;

/// One alert and the schema it was written with.
#[derive(Debug, Clone)]
pub struct SourceAlert {
    pub schema: Arc<Schema>,
    pub value: Value,
    /// Where it came from, for files `alertstream record` wrote (their
    /// `.kafka.jsonl` sidecar): a replay keeps its timing, key and headers.
    pub meta: Option<Meta>,
}

/// The sample alerts made by `scripts/sample-alerts` (the simulator), built into the binary.
const SAMPLES: [(&str, &[u8]); 3] = [
    (
        "sample-alerts/visit-1.avro",
        include_bytes!("../../sample-alerts/visit-1.avro"),
    ),
    (
        "sample-alerts/visit-2.avro",
        include_bytes!("../../sample-alerts/visit-2.avro"),
    ),
    (
        "sample-alerts/visit-3.avro",
        include_bytes!("../../sample-alerts/visit-3.avro"),
    ),
];

/// The built-in sample alerts.
pub fn samples() -> Result<Vec<SourceAlert>> {
    let mut alerts = Vec::new();
    for (name, bytes) in SAMPLES {
        alerts.extend(read_container(Path::new(name), bytes)?);
    }
    Ok(alerts)
}

/// Every alert in the given files and folders (folders: their `.avro` files, sorted).
pub fn load(paths: &[PathBuf]) -> Result<Vec<SourceAlert>> {
    let mut alerts = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| bad_input(format!("cannot read --alerts {}: {e}", path.display())))?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| bad_input(format!("cannot list --alerts {}: {e}", path.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "avro") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(bad_input(format!(
                    "--alerts {}: no .avro files in this folder (send reads Avro container \
                     files: a Parquet archive cannot be sent; record with --format avro to replay)",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let bytes = std::fs::read(&file)
                .map_err(|e| bad_input(format!("cannot read --alerts {}: {e}", file.display())))?;
            let mut read = read_container(&file, bytes.as_slice())?;
            attach_sidecar(&file, &mut read)?;
            alerts.extend(read);
        }
    }
    Ok(alerts)
}

/// Gives alerts of an archive file the metadata of its sidecar, if it has one.
fn attach_sidecar(file: &Path, alerts: &mut [SourceAlert]) -> Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let sidecar = file.with_file_name(crate::archive::avro::sidecar_name(&name));
    let Ok(text) = std::fs::read_to_string(&sidecar) else {
        return Ok(());
    };
    let metas: Vec<Meta> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| bad_input(format!("{} line {}: {e}", sidecar.display(), i + 1)))
        })
        .collect::<Result<_>>()?;
    if metas.len() != alerts.len() {
        return Err(bad_input(format!(
            "{} has {} line(s) for {} alert(s) in {}: not this file's sidecar",
            sidecar.display(),
            metas.len(),
            alerts.len(),
            file.display()
        )));
    }
    for (alert, meta) in alerts.iter_mut().zip(metas) {
        alert.meta = Some(meta);
    }
    Ok(())
}

/// Reads container-file bytes (e.g. a file already in memory).
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<Vec<SourceAlert>> {
    read_container(Path::new(name), bytes)
}

/// Reads one container file completely, through the decode gate; errors
/// name the file and the byte offset where it broke.
fn read_container(path: &Path, input: &[u8]) -> Result<Vec<SourceAlert>> {
    let fail = |e: anyhow::Error| bad_input(format!("{}: {e}", path.display()));
    let budget = Budget {
        alert_bytes: gate::DEFAULT_MAX_ALERT_BYTES,
    };
    // A file is the operator's own: each block is bounded, the whole is not.
    let checked =
        gate::open_container(input, budget, usize::MAX, &WriterCache::default()).map_err(fail)?;
    let schema = Arc::new(checked.writer.schema.clone());
    let mut alerts = Vec::with_capacity(checked.len());
    for (index, mut bytes) in checked.alerts().enumerate() {
        let value = apache_avro::from_avro_datum(&schema, &mut bytes, None).map_err(|e| {
            bad_input(format!(
                "{}: corrupt alert {}: {e}",
                path.display(),
                index + 1
            ))
        })?;
        alerts.push(SourceAlert {
            schema: schema.clone(),
            value,
            meta: None,
        });
    }
    if alerts.is_empty() {
        return Err(bad_input(format!("{}: holds no alerts", path.display())));
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_alerts_with_cutouts() {
        let alerts = samples().unwrap();
        assert!(alerts.len() >= 10, "{} samples", alerts.len());
        for alert in &alerts {
            assert!(crate::alerts::stamps::cutouts(&alert.value).len() == 3);
        }
    }

    #[test]
    fn a_truncated_file_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = SAMPLES[0].1;
        let path = dir.path().join("cut.avro");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let error = load(&[path]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("cut.avro"), "{text}");
        assert!(text.contains("byte"), "{text}");
        assert_eq!(crate::exit::code_of(&error), crate::exit::BAD_INPUT);
    }

    #[test]
    fn a_missing_path_is_an_input_error() {
        let error = load(&[PathBuf::from("/nonexistent/alerts")]).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/alerts"));
        assert_eq!(crate::exit::code_of(&error), crate::exit::BAD_INPUT);
    }
}

//! `view --archive DIR`: the alerts of a folder `record --format avro`
//! wrote, in file order, each under the topic, partition and offset it came
//! from (the file name and its `.kafka.jsonl` sidecar say which). An alert
//! is kept as its bytes with its file's writer schema beside it, as Fink
//! frames a stream (key-schema), so the page decodes it like a live one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use super::{entries, ViewOptions};
use crate::archive::Meta;
use crate::avro::gate::{self, WriterCache};
use crate::avro::plan::Budget;
use crate::exit::bad_input;
use crate::expr::Selector;
use crate::view::store::Message;
use crate::view::Shared;

/// Reads every `.avro` file of `dir` into the store (the newest --keep
/// stay); a file that is not a readable archive is reported and skipped.
pub fn load(dir: &Path, shared: &Shared, options: &ViewOptions) -> Result<()> {
    let files = archive_files(dir)?;
    let decoder = options.decode.decoder()?;
    let selector = options
        .filter
        .as_deref()
        .map(|text| Selector::compile(text, &shared.reader))
        .transpose()?;
    let budget = Budget {
        alert_bytes: options.decode.max_alert_bytes,
    };
    let writers = WriterCache::default();
    let need = super::row_need(selector.as_ref());
    let mut alerts = 0;
    for file in &files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (topic, partition, first) = place(&name);
        let bytes =
            std::fs::read(file).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
        let checked = match gate::open_container(&bytes, budget, usize::MAX, &writers) {
            Ok(checked) => checked,
            Err(e) => {
                tracing::warn!("{}: not shown: {e:#}", file.display());
                shared.store.skipped(&topic);
                continue;
            }
        };
        let metas = sidecar(file, checked.len());
        let key: Arc<[u8]> = Arc::from(checked.writer.text.as_bytes());
        let topic: Arc<str> = Arc::from(topic.as_str());
        for (index, datum) in checked.alerts().enumerate() {
            let meta = metas.as_ref().and_then(|m| m.get(index));
            let at = match meta {
                Some(meta) => (topic.clone(), meta.partition, meta.offset),
                None => (topic.clone(), partition, first + index as i64),
            };
            let message = Message {
                key: Some(key.clone()),
                value: datum.to_vec(),
                timestamp_ms: meta.and_then(|m| m.timestamp),
                framing: "archive".into(),
            };
            match entries(&decoder, selector.as_ref(), &need, at, message) {
                Ok(kept) => {
                    alerts += kept.len();
                    shared.store.push(kept);
                }
                Err(e) => {
                    tracing::warn!("{} alert {}: not shown: {e:#}", file.display(), index + 1);
                    shared.store.skipped(&topic);
                }
            }
        }
    }
    tracing::info!(
        "{alerts} alert(s) from {} archive file(s) in {}",
        files.len(),
        dir.display()
    );
    Ok(())
}

/// The archive's `.avro` files in name order (stream order, as record names them).
fn archive_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let listed = std::fs::read_dir(dir)
        .map_err(|e| bad_input(format!("--archive {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = listed
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "avro") && p.is_file())
        .collect();
    files.sort();
    let parquet = std::fs::read_dir(dir)
        .map(|l| {
            l.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
                .count()
        })
        .unwrap_or(0);
    if parquet > 0 {
        tracing::warn!(
            "--archive {}: {parquet} Parquet file(s) not shown: view reads Avro archives (record --format avro)",
            dir.display()
        );
    }
    if files.is_empty() {
        return Err(bad_input(format!(
            "--archive {}: no .avro files in this folder (give the --out folder of alertstream record --format avro)",
            dir.display()
        )));
    }
    Ok(files)
}

/// (topic, partition, first offset) from a name record gave a file
/// (`TOPIC-pP-oOFFSET.avro`); any other file is its own topic from offset 0.
fn place(name: &str) -> (String, i32, i64) {
    let stem = name.strip_suffix(".avro").unwrap_or(name);
    let parsed = stem.rsplit_once("-o").and_then(|(left, offset)| {
        let (topic, partition) = left.rsplit_once("-p")?;
        Some((
            topic.to_string(),
            partition.parse().ok()?,
            offset.parse().ok()?,
        ))
    });
    parsed.unwrap_or_else(|| (stem.to_string(), 0, 0))
}

/// The file's sidecar lines, if it has one that matches it.
fn sidecar(file: &Path, alerts: usize) -> Option<Vec<Meta>> {
    let name = file.file_name()?.to_string_lossy().into_owned();
    let text =
        std::fs::read_to_string(file.with_file_name(crate::archive::avro::sidecar_name(&name)))
            .ok()?;
    let metas: Vec<Meta> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .ok()?;
    (metas.len() == alerts).then_some(metas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_come_from_record_names() {
        let name = crate::archive::files::file_name("ztf-public", 3, 1234, "avro");
        assert_eq!(place(&name), ("ztf-public".to_string(), 3, 1234));
        assert_eq!(
            place("v3.3_472263571115115000.avro"),
            ("v3.3_472263571115115000".to_string(), 0, 0)
        );
    }
}

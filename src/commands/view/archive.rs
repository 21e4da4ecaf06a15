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
use crate::avro::plan::Need;
use crate::exit::bad_input;
use crate::expr::Selector;
use crate::page::store::{Entry, Message};
use crate::page::Shared;

/// Reads every `.avro` file of `dir` and keeps the newest --keep alerts (by
/// broker timestamp, then partition and offset); a file that is not a
/// readable archive is reported and skipped.
pub fn load(dir: &Path, shared: &Shared, options: &ViewOptions) -> Result<()> {
    let files = archive_files(dir)?;
    let mut reader = Reader {
        decoder: options.decode.decoder()?,
        selector: options
            .filter
            .as_deref()
            .map(|text| Selector::compile(text, &shared.reader))
            .transpose()?,
        need: Need::none(),
        budget: Budget {
            alert_bytes: options.decode.max_alert_bytes,
        },
        writers: WriterCache::default(),
    };
    reader.need = super::row_need(reader.selector.as_ref());
    let keep = options.keep;
    let mut newest: Vec<Entry> = Vec::new();
    let mut shown = 0;
    for file in &files {
        match reader.file(file, shared, &mut newest) {
            Ok(()) => shown += 1,
            Err(e) => tracing::warn!("{}: not shown: {e:#}", file.display()),
        }
        // Bounded: never more than twice --keep alerts held while reading.
        if newest.len() > 2 * keep {
            keep_newest(&mut newest, keep);
        }
    }
    keep_newest(&mut newest, keep);
    tracing::info!(
        "{} alert(s) kept from {shown} archive file(s) in {}",
        newest.len(),
        dir.display()
    );
    shared.store.push(newest);
    Ok(())
}

/// The newest `keep` of `entries`, oldest first.
fn keep_newest(entries: &mut Vec<Entry>, keep: usize) {
    entries.sort_by_key(|e| {
        (
            e.timestamp_ms.unwrap_or(i64::MIN),
            e.partition,
            e.offset,
            e.index,
        )
    });
    let extra = entries.len().saturating_sub(keep);
    entries.drain(..extra);
}

struct Reader {
    decoder: crate::avro::codec::Decoder,
    selector: Option<Selector>,
    need: Need,
    budget: Budget,
    writers: WriterCache,
}

impl Reader {
    /// One archive file's alerts, appended to `into`.
    fn file(&self, file: &Path, shared: &Shared, into: &mut Vec<Entry>) -> Result<()> {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (topic, partition, first) = place(&name);
        let bytes = std::fs::read(file)?;
        let checked = gate::open_container(&bytes, self.budget, usize::MAX, &self.writers)?;
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
            match entries(
                &self.decoder,
                self.selector.as_ref(),
                &self.need,
                at,
                message,
            ) {
                Ok(kept) => into.extend(kept),
                Err(e) => {
                    tracing::warn!("{} alert {}: not shown: {e:#}", file.display(), index + 1);
                    shared.store.skipped(&topic);
                }
            }
        }
        Ok(())
    }
}

/// The archive's `.avro` files in name order (stream order, as record names
/// them); Parquet files, which view does not read, are named.
fn archive_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut parquet = Vec::new();
    walk(dir, 0, &mut files, &mut parquet);
    files.sort();
    if !parquet.is_empty() {
        parquet.sort();
        let named: Vec<String> = parquet
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        let more = parquet.len().saturating_sub(3);
        tracing::warn!(
            "--archive {}: {} Parquet file(s) not shown ({}{}): view reads Avro archives (record --format avro)",
            dir.display(),
            parquet.len(),
            named.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
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

/// The `.avro` and `.parquet` files of `dir`, and of its folders (record's
/// Parquet goes under `date=...`), a few levels deep.
fn walk(dir: &Path, depth: usize, avro: &mut Vec<PathBuf>, parquet: &mut Vec<PathBuf>) {
    let Ok(listed) = std::fs::read_dir(dir) else {
        return;
    };
    for path in listed.filter_map(|e| e.ok().map(|e| e.path())) {
        match path.extension().and_then(|x| x.to_str()) {
            _ if path.is_dir() && depth < 3 => walk(&path, depth + 1, avro, parquet),
            Some("avro") if depth == 0 && path.is_file() => avro.push(path),
            Some("parquet") if path.is_file() => parquet.push(path),
            _ => {}
        }
    }
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

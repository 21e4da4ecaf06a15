//! `view --archive DIR`: the alerts of a folder `record` wrote, each under
//! the topic, partition and offset it came from (an Avro file's name and
//! `.kafka.jsonl` sidecar, a Parquet file's `_kafka` column). An alert is
//! kept as Avro bytes with their schema beside it, as Fink frames a stream
//! (key-schema), so the page decodes it like a live one: an Avro file's
//! alerts as written, a Parquet file's rows written back as Avro of the
//! reader schema (the one record archived them in).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;

use super::{Picker, ViewOptions};
use crate::archive::Meta;
use crate::avro::codec::Payload;
use crate::avro::gate::{self, WriterCache};
use crate::avro::plan::Budget;
use crate::exit::bad_input;
use crate::page::store::{Entry, Message};
use crate::page::Shared;

/// Reads every `.avro` file of `dir` and keeps the newest --keep alerts (by
/// broker timestamp, then partition and offset); a file that is not a
/// readable archive is reported and skipped.
pub fn load(dir: &Path, shared: &Shared, options: &ViewOptions) -> Result<()> {
    let (files, parquet) = archive_files(dir)?;
    let reader = Reader {
        picker: Picker::for_view(options, &shared.reader)?,
        budget: Budget {
            alert_bytes: options.decode.max_alert_bytes,
        },
        writers: WriterCache::default(),
    };
    let keep = options.keep;
    let mut newest: Vec<Entry> = Vec::new();
    let mut shown = 0;
    let columns = Columns::of(&shared.reader)?;
    for (file, is_parquet) in files
        .iter()
        .map(|f| (f, false))
        .chain(parquet.iter().map(|f| (f, true)))
    {
        let read = if is_parquet {
            reader.parquet_file(file, &columns, shared, &mut newest)
        } else {
            reader.file(file, shared, &mut newest)
        };
        match read {
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
    picker: Picker,
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
            let payload = Payload {
                key: Some(&key),
                value: datum,
            };
            let kept = || Message {
                key: Some(key.clone()),
                value: Bytes::copy_from_slice(datum),
                timestamp_ms: meta.and_then(|m| m.timestamp),
                framing: "archive".into(),
            };
            match self.picker.entries(at, payload, kept) {
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

impl Reader {
    /// One Parquet file's rows, appended to `into`: its columns must be the
    /// reader schema's layout (else --schema names another schema than the
    /// one record archived with), and its row groups the sizes record
    /// writes, checked before anything is read; a reader that panics on a
    /// malformed file is caught.
    fn parquet_file(
        &self,
        file: &Path,
        columns: &Columns,
        shared: &Shared,
        into: &mut Vec<Entry>,
    ) -> Result<()> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let topic: Arc<str> = Arc::from(place(&name).0.as_str());
        let opened = std::fs::File::open(file)?;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let builder = ParquetRecordBatchReaderBuilder::try_new(opened)?;
            let layout = columns
                .layouts
                .iter()
                .find(|l| l.matches(builder.schema()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "its columns are not the reader schema's (give the --schema record archived it with)"
                    )
                })?;
            for group in builder.metadata().row_groups() {
                let most = group.num_rows().saturating_mul(self.budget.alert_bytes as i64);
                if !(0..=MAX_GROUP_ROWS).contains(&group.num_rows())
                    || group.total_byte_size() > most
                {
                    anyhow::bail!(
                        "a row group of {} rows and {} bytes, more than record writes",
                        group.num_rows(),
                        group.total_byte_size()
                    );
                }
            }
            let mut rows = Vec::new();
            for batch in builder.with_batch_size(256).build()? {
                let batch = batch?;
                for row in 0..batch.num_rows() {
                    let mut value = Vec::new();
                    let place = layout.encode_row(&batch, row, &mut value);
                    rows.push(place.map(|p| (p, value)));
                }
            }
            Ok::<_, anyhow::Error>(rows)
        }))
        .map_err(|_| anyhow::anyhow!("not a readable Parquet file (its reader panicked)"))??;
        for (index, row) in read.into_iter().enumerate() {
            let kept = row.and_then(|((partition, offset, timestamp_ms), value)| {
                let value = Bytes::from(value);
                let payload = Payload {
                    key: Some(&columns.schema),
                    value: &value,
                };
                let kept = || Message {
                    key: Some(columns.schema.clone()),
                    value: value.clone(),
                    timestamp_ms,
                    framing: "archive".into(),
                };
                let at = (topic.clone(), partition, offset);
                self.picker.entries(at, payload, kept)
            });
            match kept {
                Ok(kept) => into.extend(kept),
                Err(e) => {
                    tracing::warn!("{} row {}: not shown: {e:#}", file.display(), index + 1);
                    shared.store.skipped(&topic);
                }
            }
        }
        Ok(())
    }
}

/// The archive's `.avro` and `.parquet` files, each in name order (stream
/// order, as record names them).
pub fn archive_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut parquet = Vec::new();
    walk(dir, 0, &mut files, &mut parquet);
    files.sort();
    parquet.sort();
    if files.is_empty() && parquet.is_empty() {
        return Err(bad_input(format!(
            "--archive {}: no .avro or .parquet files in this folder (give the --out folder of alertstream record)",
            dir.display()
        )));
    }
    Ok((files, parquet))
}

/// The Parquet layouts record gives alerts of the reader schema, with
/// cutouts and without (`--no-stamps`), and that schema's JSON, which each
/// row's Avro is kept with.
struct Columns {
    layouts: [crate::archive::arrow::Layout; 2],
    schema: Arc<[u8]>,
}

impl Columns {
    fn of(reader: &apache_avro::Schema) -> Result<Self> {
        use crate::archive::arrow::Layout;
        Ok(Self {
            layouts: [Layout::new(reader, true)?, Layout::new(reader, false)?],
            schema: Arc::from(serde_json::to_vec(reader)?),
        })
    }
}

/// Rows of one row group a Parquet file may claim: record writes 256.
const MAX_GROUP_ROWS: i64 = 65_536;

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
/// (`TOPIC-pP-oOFFSET.avro` or `.parquet`); any other file is its own topic
/// from offset 0.
fn place(name: &str) -> (String, i32, i64) {
    let stem = name
        .strip_suffix(".avro")
        .or_else(|| name.strip_suffix(".parquet"))
        .unwrap_or(name);
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

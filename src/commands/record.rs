//! `alertstream record`: archives a stream. Alerts go into one open file per
//! partition and schema (and day, for Parquet); a file is rolled by alerts,
//! seconds or bytes, fsynced and renamed into place, and only then are the
//! offsets of its alerts committed. So a recorder killed with -9 and started
//! again in its group archives every alert exactly once (see `archive/`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;

use crate::archive::arrow::Layout;
use crate::archive::avro::AvroFile;
use crate::archive::files::{check_claim, claim, remove_uncommitted};
use crate::archive::parquet::ParquetFile;
use crate::archive::Meta;
use crate::avro::codec::{AlertBytes, Decoder, Payload};
use crate::avro::container::Codec;
use crate::avro::gate::Writer;
use crate::cli::{ArchiveFormat, CodecArg, RecordArgs};
use crate::commands::DecodeOptions;
use crate::exit::bad_input;
use crate::expr::Selector;
use crate::kafka::consume::{self, Handler};
use crate::kafka::consumer::{self, ConsumerOptions};
use crate::kafka::dead_letter::DeadLetter;
use crate::kafka::{ClientLog, KafkaSettings};
use crate::progress::ConsumeBar;
use crate::shutdown::Shutdown;

/// Validated `record` options.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub topic: String,
    pub out: PathBuf,
    pub group: String,
    pub consumer: ConsumerOptions,
    pub decode: DecodeOptions,
    pub format: ArchiveFormat,
    pub codec: Codec,
    pub roll: Roll,
    pub stamps: bool,
    /// `--where`.
    pub filter: Option<String>,
}

/// When a file is complete.
#[derive(Debug, Clone, Copy)]
pub struct Roll {
    pub alerts: u64,
    pub age: Duration,
    pub bytes: u64,
}

impl RecordOptions {
    pub fn from_args(args: RecordArgs) -> Result<Self> {
        crate::kafka::admin::check_topic(&args.topic)?;
        super::check_dead_letter(args.decode.dead_letter.as_deref(), &args.topic)?;
        if args.no_stamps && args.format == ArchiveFormat::Avro {
            return Err(bad_input(
                "--no-stamps goes with --format parquet: Avro archives keep each alert as it arrived",
            ));
        }
        if args.roll_alerts == 0 || !(args.roll_seconds.is_finite() && args.roll_seconds > 0.0) {
            return Err(bad_input(
                "--roll-alerts and --roll-seconds must be positive",
            ));
        }
        Ok(Self {
            topic: args.topic,
            out: args.out,
            group: consumer::group_or_default(args.group)?,
            consumer: ConsumerOptions::from_args(args.consumer)?,
            decode: DecodeOptions::from_args(args.decode)?,
            format: args.format,
            codec: match args.codec {
                CodecArg::Null => Codec::Null,
                CodecArg::Deflate => Codec::Deflate,
                CodecArg::Snappy => Codec::Snappy,
                CodecArg::Zstandard => Codec::Zstandard,
            },
            roll: Roll {
                alerts: args.roll_alerts,
                age: Duration::from_secs_f64(args.roll_seconds),
                bytes: super::byte_size("--roll-bytes", &args.roll_bytes)? as u64,
            },
            stamps: !args.no_stamps,
            filter: args.filter,
        })
    }
}

pub async fn run(
    options: RecordOptions,
    kafka: KafkaSettings,
    shutdown: Shutdown,
    quiet: bool,
) -> Result<()> {
    let decoder = options.decode.decoder()?;
    if options.format == ArchiveFormat::Parquet {
        crate::archive::parquet::keep_freed_memory();
    }
    let selector = match &options.filter {
        Some(text) => Some(Selector::compile(text, &options.decode.reader_schema()?)?),
        None => None,
    };
    if options.out.exists() && !options.out.is_dir() {
        return Err(bad_input(format!(
            "--out {} is not a folder",
            options.out.display()
        )));
    }
    // A folder this run may not use is refused before the brokers are
    // reached; the folder and its claim are made only once they are, so a
    // recorder that cannot reach them leaves neither behind. Nothing is
    // handled or committed before the claim.
    let group = (!options.consumer.windowed()).then_some(options.group.as_str());
    check_claim(&options.out, &options.topic, group)?;
    let Some(stream) = consumer::open(
        &kafka,
        &options.consumer,
        &options.topic,
        Some(&options.group),
        &[("client.id", "alertstream-record")],
        &shutdown,
    )?
    else {
        return Ok(());
    };
    std::fs::create_dir_all(&options.out).map_err(|e| {
        bad_input(format!(
            "cannot create --out {}: {e}",
            options.out.display()
        ))
    })?;
    // Held to the end: a time window's lock on its folder.
    let _claim = claim(&options.out, &options.topic, group)?;
    // In a group, a copy commits its source offset in the same transaction
    // (exactly once, as the archive files); outside one nothing is committed.
    let dead_letter = match (&options.decode.dead_letter, stream.in_group) {
        (Some(topic), true) => {
            Some(DeadLetter::committing(&kafka, topic, &options.group, &options.topic).await?)
        }
        (topic, _) => super::dead_letter(&kafka, topic.as_deref()).await?,
    };
    let mut recorder = Recorder {
        in_group: stream.in_group,
        options: options.clone(),
        decoder,
        selector,
        files: HashMap::new(),
        partitions: HashMap::new(),
        layouts: crate::cache::Bounded::default(),
        counts: Counts::default(),
        bar: ConsumeBar::new(quiet, "archived"),
        dead_letter,
    };
    let result = consume::run(stream, &kafka, &options.consumer, &shutdown, &mut recorder);
    recorder.bar.finish();
    let c = &recorder.counts;
    tracing::info!(
        "recorded {} alert(s) from {} message(s) into {} file(s) under {}; {} skipped",
        c.alerts,
        c.messages,
        c.files,
        options.out.display(),
        c.skipped
    );
    result
}

#[derive(Debug, Default)]
struct Counts {
    messages: u64,
    /// Alerts in completed files (on disk under their names), and the files.
    alerts: u64,
    skipped: u64,
    files: u64,
}

/// Which open file an alert belongs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    partition: i32,
    /// The UTC day (Parquet's `date=` folders), empty for Avro.
    date: String,
    /// The writer schema, by identity (one cached `Writer` per schema).
    schema: usize,
}

struct OpenFile {
    /// Held so that the identity in its key is never reused by another
    /// schema while the file is open (the caches drop old writers).
    _writer: Arc<Writer>,
    first_offset: i64,
    opened: Instant,
    kind: FileKind,
}

enum FileKind {
    Avro(Box<AvroFile>),
    Parquet(Box<ParquetFile>),
}

impl OpenFile {
    fn alerts(&self) -> u64 {
        match &self.kind {
            FileKind::Avro(f) => f.alerts,
            FileKind::Parquet(f) => f.alerts,
        }
    }

    fn bytes(&self) -> u64 {
        match &self.kind {
            FileKind::Avro(f) => f.bytes(),
            FileKind::Parquet(f) => f.bytes(),
        }
    }

    fn finish(self) -> Result<()> {
        match self.kind {
            FileKind::Avro(f) => f.finish(),
            FileKind::Parquet(f) => f.finish(),
        }
    }

    fn discard(self) {
        match self.kind {
            FileKind::Avro(f) => f.discard(),
            FileKind::Parquet(f) => f.discard(),
        }
    }
}

/// A partition's progress: the offset after the last message handled, and
/// the last safe offset reported for commit.
#[derive(Debug, Clone, Copy)]
struct Progress {
    next: i64,
    reported: i64,
}

struct Recorder {
    options: RecordOptions,
    in_group: bool,
    decoder: Decoder,
    selector: Option<Selector>,
    files: HashMap<FileKey, OpenFile>,
    partitions: HashMap<i32, Progress>,
    /// By writer identity; the writer is held so the identity stays its own.
    layouts: crate::cache::Bounded<usize, (Arc<Writer>, Arc<Layout>)>,
    counts: Counts,
    bar: ConsumeBar,
    dead_letter: Option<DeadLetter>,
}

impl Handler for Recorder {
    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        let meta = Meta::of(message);
        self.counts.messages += 1;
        self.start_partition(&meta)?;
        let stored = self.store(super::wire(message), &meta);
        if let Err(e) = stored {
            let Skip(e) = e.downcast::<Skip>()?;
            super::undecodable(message, e, self.dead_letter.as_ref(), None)?;
            self.counts.skipped += 1;
        }
        if let Some(progress) = self.partitions.get_mut(&meta.partition) {
            progress.next = meta.offset + 1;
        }
        Ok(())
    }

    fn tick(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        if let Some(dead_letter) = &self.dead_letter {
            if let Ok(assigned) = consumer.assignment() {
                let partitions: Vec<i32> =
                    assigned.elements().iter().map(|e| e.partition()).collect();
                dead_letter.claim(&partitions)?;
            }
        }
        self.commit_dead_letter(consumer)?;
        self.bar.tick(consumer, &self.options.topic);
        let age = self.options.roll.age;
        let old: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.close(&key)?;
        }
        Ok(())
    }

    fn holds_messages(&self) -> bool {
        true
    }

    fn safe_offsets(&mut self) -> Vec<(i32, i64)> {
        let mut safe = Vec::new();
        let waiting = self
            .dead_letter
            .as_ref()
            .and_then(|d| d.pending_partition());
        for (partition, progress) in &mut self.partitions {
            if waiting == Some(*partition) {
                // Its refused message commits its offset with its copy.
                continue;
            }
            let held = self
                .files
                .iter()
                .filter(|(k, _)| k.partition == *partition)
                .map(|(_, f)| f.first_offset)
                .min();
            let offset = held.unwrap_or(progress.next);
            if offset > progress.reported {
                progress.reported = offset;
                safe.push((*partition, offset));
            }
        }
        safe
    }

    fn revoked(&mut self, _: &BaseConsumer<ClientLog>, partitions: &[i32]) {
        let keys: Vec<FileKey> = self
            .files
            .keys()
            .filter(|k| partitions.contains(&k.partition))
            .cloned()
            .collect();
        for key in keys {
            if let Some(file) = self.files.remove(&key) {
                file.discard();
            }
        }
        for partition in partitions {
            self.partitions.remove(partition);
        }
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.forget(partitions);
        }
    }

    fn finish(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        self.commit_dead_letter(consumer)?;
        self.bar.finish();
        let keys: Vec<FileKey> = self.files.keys().cloned().collect();
        for key in keys {
            self.close(&key)?;
        }
        Ok(())
    }
}

/// A new archive file for alerts of `writer`: Avro, or Parquet in `layout`
/// under its `date=` folder.
fn create_file(
    options: &RecordOptions,
    meta: &Meta,
    writer: &Writer,
    layout: Option<Arc<Layout>>,
    date: &str,
) -> Result<FileKind> {
    let (out, topic, codec) = (&options.out, &options.topic, options.codec);
    Ok(match layout {
        None => FileKind::Avro(Box::new(AvroFile::create(
            out,
            topic,
            meta,
            &writer.text,
            codec,
        )?)),
        Some(layout) => {
            let dir = out.join(format!("date={date}"));
            FileKind::Parquet(Box::new(ParquetFile::create(
                &dir, topic, meta, layout, codec,
            )?))
        }
    })
}

/// A message that could not be decoded, as opposed to an archive that
/// could not be written: the first is reported and skipped.
#[derive(Debug)]
struct Skip(anyhow::Error);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Skip {}

fn skip(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Skip(e))
}

impl Recorder {
    /// A refused message's copy waits for everything before it to be safe:
    /// the partition's open files are closed (on disk, under their names),
    /// then the copy and the offset after it are committed together.
    fn commit_dead_letter(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        let Some(partition) = self
            .dead_letter
            .as_ref()
            .and_then(|d| d.pending_partition())
        else {
            return Ok(());
        };
        let open: Vec<FileKey> = self
            .files
            .keys()
            .filter(|k| k.partition == partition)
            .cloned()
            .collect();
        for key in open {
            self.close(&key)?;
        }
        match &self.dead_letter {
            Some(dead_letter) => dead_letter.commit_pending(consumer),
            None => Ok(()),
        }
    }

    /// The first message of a partition in this run: in a group, whatever an
    /// earlier run left past it was never committed, and is removed.
    fn start_partition(&mut self, meta: &Meta) -> Result<()> {
        if self.partitions.contains_key(&meta.partition) {
            return Ok(());
        }
        self.partitions.insert(
            meta.partition,
            Progress {
                next: meta.offset,
                reported: meta.offset,
            },
        );
        if self.in_group {
            let removed = remove_uncommitted(
                &self.options.out,
                &self.options.topic,
                meta.partition,
                meta.offset,
            )?;
            if removed > 0 {
                tracing::info!(
                    "partition {}: removed {removed} uncommitted file(s) from an earlier run at offset {} or later",
                    meta.partition,
                    meta.offset
                );
            }
        }
        Ok(())
    }

    /// Archives a message's alerts: as written for Avro files, in the
    /// layout of the reader schema (when resolving) for Parquet.
    fn store(&mut self, payload: Payload<'_>, meta: &Meta) -> Result<()> {
        let parquet = self.options.format == ArchiveFormat::Parquet;
        let mut datums = if parquet {
            self.decoder.column_datums(payload)
        } else {
            self.decoder.datums(payload)
        }
        .map_err(skip)?;
        self.select(payload, &mut datums.alerts)?;
        if datums.alerts.is_empty() {
            return Ok(());
        }
        let date = match parquet {
            true => crate::time::utc_date(meta.timestamp.unwrap_or_else(crate::time::now_ms)),
            false => String::new(),
        };
        let key = self.key(meta, &datums.writer, date.clone());
        let layout = match parquet {
            true => Some(self.layout(&datums.writer)?),
            false => None,
        };
        let file = match self.files.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let kind = create_file(&self.options, meta, &datums.writer, layout, &date)?;
                e.insert(OpenFile {
                    _writer: datums.writer.clone(),
                    first_offset: meta.offset,
                    opened: Instant::now(),
                    kind,
                })
            }
        };
        match &mut file.kind {
            FileKind::Avro(avro) => {
                for datum in &datums.alerts {
                    avro.append(datum, meta)?;
                }
            }
            FileKind::Parquet(parquet) => {
                let budget = self.decoder.budget();
                parquet.append(&datums.alerts, meta, budget).map_err(skip)?;
                parquet.write_full_group()?;
            }
        }
        self.bar.inc(datums.alerts.len() as u64);
        self.roll_if_full(&key)
    }

    /// Keeps the alerts of a message that `--where` selects.
    fn select(&self, payload: Payload<'_>, alerts: &mut AlertBytes<'_>) -> Result<()> {
        let Some(selector) = &self.selector else {
            return Ok(());
        };
        let picks = self
            .decoder
            .fields(payload, selector.need())
            .map_err(skip)?;
        let mut keep = picks.iter().map(|v| selector.selects(v));
        alerts.retain(|_| keep.next().unwrap_or(false));
        Ok(())
    }

    fn key(&self, meta: &Meta, writer: &Arc<Writer>, date: String) -> FileKey {
        FileKey {
            partition: meta.partition,
            date,
            schema: Arc::as_ptr(writer) as usize,
        }
    }

    /// The Parquet layout of a schema; a schema with no Parquet layout stops
    /// the recorder (exit 2) before anything of it is written.
    fn layout(&mut self, schema: &Arc<Writer>) -> Result<Arc<Layout>> {
        // Keyed by the writer's identity; the entry holds the writer, so the
        // identity is never another schema's while it is cached.
        let id = Arc::as_ptr(schema) as usize;
        let (_, layout) = self.layouts.get_or_try_insert(&id, || {
            let layout = Layout::new(&schema.schema, self.options.stamps)
                .map_err(|e| bad_input(format!("cannot archive these alerts as Parquet: {e:#}")))?;
            Ok::<_, anyhow::Error>((schema.clone(), Arc::new(layout)))
        })?;
        Ok(layout)
    }

    fn roll_if_full(&mut self, key: &FileKey) -> Result<()> {
        let roll = self.options.roll;
        let full = self
            .files
            .get(key)
            .is_some_and(|f| f.alerts() >= roll.alerts || f.bytes() >= roll.bytes);
        if full {
            self.close(key)?;
        }
        Ok(())
    }

    /// Completes a file: on disk under its name, its offsets safe to commit.
    fn close(&mut self, key: &FileKey) -> Result<()> {
        let Some(file) = self.files.remove(key) else {
            return Ok(());
        };
        let alerts = file.alerts();
        file.finish()
            .context("archive file not completed; its alerts will be read again")?;
        self.counts.files += 1;
        self.counts.alerts += alerts;
        Ok(())
    }
}

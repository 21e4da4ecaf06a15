//! `alertstream print`: every alert as one JSON line on stdout, cutouts
//! optionally written to a folder. At-least-once: an offset is stored for
//! commit only after its alert has been written out.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::alerts::stamps::{self, StampDir};
use crate::avro::codec::Decoder;
use crate::avro::{json, schema};
use crate::cli::PrintArgs;
use crate::commands::send::{INDEX_HEADER, VISIT_HEADER};
use crate::kafka::consumer::{self, ConsumerOptions, EndTracker, ErrorLog};
use crate::kafka::{ClientLog, KafkaSettings};
use crate::shutdown::Shutdown;

/// Validated `print` options.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    pub topic: String,
    pub consumer: ConsumerOptions,
    pub stamp_dir: Option<PathBuf>,
    pub decode: bool,
    pub schema: Vec<PathBuf>,
    pub meta: bool,
}

impl PrintOptions {
    pub fn from_args(args: PrintArgs) -> Result<Self> {
        crate::kafka::admin::check_topic(&args.topic)?;
        Ok(Self {
            topic: args.topic,
            consumer: ConsumerOptions::from_args(args.consumer)?,
            stamp_dir: args.stamp_dir,
            decode: !args.decode_off,
            schema: args.schema,
            meta: args.meta,
        })
    }
}

/// Counts for the closing summary.
#[derive(Debug, Default)]
struct Counts {
    /// When the first message arrived: rates are measured from there, not
    /// from start-up (joining a group takes seconds).
    first: Option<Instant>,
    last: Option<Instant>,
    messages: u64,
    alerts: u64,
    skipped: u64,
    stamps: u64,
}

pub async fn run(options: PrintOptions, kafka: KafkaSettings, shutdown: Shutdown) -> Result<()> {
    let decoder = if options.decode {
        let reader = if options.schema.is_empty() {
            schema::built_in()
        } else {
            schema::load(&options.schema)?
        };
        Some(Decoder::new(reader, !options.schema.is_empty()))
    } else {
        None
    };
    let stamp_dir = options
        .stamp_dir
        .as_deref()
        .map(StampDir::create)
        .transpose()?;
    let consumer = consumer::subscribe(
        &kafka,
        &options.consumer,
        &options.topic,
        &[
            ("client.id", "alertstream-print"),
            ("enable.auto.offset.store", "false"),
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
        ],
    )?;
    let printer = Printer {
        meta: options.meta,
        decoder,
        stamp_dir,
        line: Vec::with_capacity(64 * 1024),
        counts: Counts::default(),
    };
    // Consuming is blocking librdkafka work; it runs on this (block_on)
    // thread while the signal handler runs on the runtime's workers.
    let (printer, result) = consume(consumer, &kafka, printer, &options, &shutdown);
    let counts = printer.counts;
    let seconds = match (counts.first, counts.last) {
        (Some(first), Some(last)) => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    tracing::info!(
        "printed {} alert(s) from {} message(s) in {seconds:.3}s from the first to the last ({:.0} alerts/s); \
         {} skipped, {} cutout file(s) written",
        counts.alerts,
        counts.messages,
        counts.alerts as f64 / seconds.max(1e-9),
        counts.skipped,
        counts.stamps
    );
    result
}

fn consume(
    consumer: BaseConsumer<ClientLog>,
    kafka: &KafkaSettings,
    mut printer: Printer,
    options: &PrintOptions,
    shutdown: &Shutdown,
) -> (Printer, Result<()>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut ends = EndTracker::default();
    let mut errors = ErrorLog::default();
    let mut result = Ok(());
    while !shutdown.requested() {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if let Err(e) =
                    consumer::check_brokers(&consumer, kafka, options.consumer.broker_timeout)
                {
                    result = Err(e);
                    break;
                }
            }
            Some(Ok(message)) => {
                errors.clear();
                consumer.context().brokers_answered();
                ends.message(message.partition());
                match printer.print(&message, &mut out) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                        tracing::debug!("stdout closed; stopping");
                        break;
                    }
                    Err(e) => {
                        result = Err(e).context("cannot write to stdout");
                        break;
                    }
                }
                if let Err(e) = consumer.store_offset_from_message(&message) {
                    tracing::warn!("cannot store offset {}: {e}", message.offset());
                }
                if options
                    .consumer
                    .max_messages
                    .is_some_and(|max| printer.counts.messages >= max)
                {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                consumer.context().brokers_answered();
                ends.end(partition);
                if options.consumer.exit_at_end && ends.all_at_end(&consumer) {
                    break;
                }
            }
            Some(Err(error)) => errors.report(&consumer, &options.topic, &error),
        }
    }
    let _ = out.flush();
    if consumer.context().all_down_for().is_some() && result.is_err() {
        consumer::abandon(consumer);
    } else {
        consumer::close(consumer);
    }
    (printer, result)
}

struct Printer {
    meta: bool,
    decoder: Option<Decoder>,
    stamp_dir: Option<StampDir>,
    line: Vec<u8>,
    counts: Counts,
}

impl Printer {
    fn emit(&mut self, message: &BorrowedMessage<'_>, out: &mut impl Write) -> std::io::Result<()> {
        if self.meta {
            add_meta(&mut self.line, message);
        }
        out.write_all(&self.line)
    }

    /// Writes one message's alerts; only stdout failures are errors, bad
    /// messages are reported and skipped.
    fn print(
        &mut self,
        message: &BorrowedMessage<'_>,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let now = Instant::now();
        self.counts.first.get_or_insert(now);
        self.counts.last = Some(now);
        self.counts.messages += 1;
        let place = || {
            format!(
                "{} partition {} offset {}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        };
        let payload = message.payload().unwrap_or_default();
        if payload.is_empty() {
            tracing::warn!("{}: empty message; skipped", place());
            self.counts.skipped += 1;
            return Ok(());
        }
        self.line.clear();
        let Some(decoder) = &self.decoder else {
            self.line.extend_from_slice(payload);
            self.line.push(b'\n');
            self.counts.alerts += 1;
            return self.emit(message, out);
        };
        let skip = |e: anyhow::Error| {
            let head: String = payload.iter().take(8).map(|b| format!("{b:02x}")).collect();
            tracing::warn!(
                "{}: cannot decode ({e}); first bytes {head}; skipped",
                place()
            );
        };
        let Some(dir) = &self.stamp_dir else {
            // The fast path: binary straight to JSON.
            match decoder.decode_json(payload, &mut self.line) {
                Ok((framing, count)) => {
                    tracing::debug!("{}: {framing:?} framing, {count} alert(s)", place());
                    self.counts.alerts += count as u64;
                    return self.emit(message, out);
                }
                Err(e) => {
                    skip(e);
                    self.counts.skipped += 1;
                    return Ok(());
                }
            }
        };
        let (framing, alerts) = match decoder.decode(payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                skip(e);
                self.counts.skipped += 1;
                return Ok(());
            }
        };
        tracing::debug!(
            "{}: {framing:?} framing, {} alert(s)",
            place(),
            alerts.len()
        );
        for alert in &alerts {
            json::write_alert(&mut self.line, alert);
            self.line.push(b'\n');
            let id = stamps::alert_id(alert);
            for cutout in stamps::cutouts(alert) {
                if cutout.data.is_empty() {
                    continue;
                }
                let name = StampDir::file_name(&cutout, id.as_deref());
                match dir.write(&name, cutout.data) {
                    Ok(_) => self.counts.stamps += 1,
                    Err(why) => tracing::warn!("{}: {why}", place()),
                }
            }
        }
        self.counts.alerts += alerts.len() as u64;
        self.emit(message, out)
    }
}

/// The header `send` puts on each message, as a number.
fn header_number(message: &BorrowedMessage<'_>, key: &str) -> Option<u64> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}

/// Adds `"_kafka":{...}` to every JSON object line of a message.
fn add_meta(line: &mut Vec<u8>, message: &BorrowedMessage<'_>) {
    let number = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
    let meta = format!(
        r#","_kafka":{{"partition":{},"offset":{},"timestamp":{},"visit":{},"index":{}}}}}"#,
        message.partition(),
        message.offset(),
        message
            .timestamp()
            .to_millis()
            .map_or("null".to_string(), |t| t.to_string()),
        number(header_number(message, VISIT_HEADER)),
        number(header_number(message, INDEX_HEADER)),
    );
    let mut rebuilt = Vec::with_capacity(line.len() + meta.len());
    for text in line.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match text.strip_suffix(b"}") {
            Some(open) => {
                rebuilt.extend_from_slice(open);
                rebuilt.extend_from_slice(meta.as_bytes());
            }
            None => rebuilt.extend_from_slice(text),
        }
        rebuilt.push(b'\n');
    }
    *line = rebuilt;
}

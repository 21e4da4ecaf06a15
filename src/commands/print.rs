//! `alertstream print`: every alert as one JSON line on stdout, cutouts
//! optionally written to a folder. At-least-once: an offset is stored for
//! commit only after its alert (and its cutouts) have been written out.

use std::io::{StdoutLock, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::alerts::stamps::{self, StampDir, StampError};
use crate::avro::codec::{Decoder, Framing};
use crate::avro::json;
use crate::cli::PrintArgs;
use crate::commands::DecodeOptions;
use crate::expr::Selector;
use crate::kafka::consume::{self, Handler};
use crate::kafka::consumer::{self, ConsumerOptions};
use crate::kafka::dead_letter::DeadLetter;
use crate::kafka::produce::{INDEX_HEADER, LOOP_HEADER, OFFSET_HEADER, VISIT_HEADER};
use crate::kafka::KafkaSettings;
use crate::shutdown::Shutdown;

/// Validated `print` options.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    pub topic: String,
    pub group: String,
    pub consumer: ConsumerOptions,
    pub stamp_dir: Option<PathBuf>,
    /// `None` with --decode-off.
    pub decode: Option<DecodeOptions>,
    pub meta: bool,
    /// `--where`.
    pub filter: Option<String>,
    pub dead_letter: Option<String>,
}

impl PrintOptions {
    pub fn from_args(args: PrintArgs) -> Result<Self> {
        crate::kafka::admin::check_topic(&args.topic)?;
        super::check_dead_letter(args.dead_letter.as_deref(), &args.topic)?;
        Ok(Self {
            topic: args.topic,
            group: consumer::group_or_default(args.group)?,
            consumer: ConsumerOptions::from_args(args.consumer)?,
            stamp_dir: args.stamp_dir,
            decode: if args.decode_off {
                None
            } else {
                Some(DecodeOptions::from_read(args.read)?)
            },
            meta: args.meta,
            filter: args.filter,
            dead_letter: args.dead_letter,
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
    /// Alerts `--where` did not select.
    unselected: u64,
    stamps: u64,
}

impl Counts {
    fn summary(&self) -> String {
        let seconds = match (self.first, self.last) {
            (Some(first), Some(last)) => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        format!(
            "printed {} alert(s) from {} message(s) in {seconds:.3}s from the first to the last ({}); \
             {} skipped, {} not selected by --where, {} cutout file(s) written",
            self.alerts,
            self.messages,
            crate::progress::rate(self.alerts, seconds, "alerts/s"),
            self.skipped,
            self.unselected,
            self.stamps
        )
    }
}

pub async fn run(options: PrintOptions, kafka: KafkaSettings, shutdown: Shutdown) -> Result<()> {
    let decoder = options
        .decode
        .as_ref()
        .map(DecodeOptions::decoder)
        .transpose()?;
    let selector = match (&options.filter, &options.decode) {
        (Some(text), Some(decode)) => Some(Selector::compile(text, &decode.reader_schema()?)?),
        _ => None,
    };
    let stamp_dir = options
        .stamp_dir
        .as_deref()
        .map(StampDir::create)
        .transpose()?;
    let dead_letter = super::dead_letter(&kafka, options.dead_letter.as_deref()).await?;
    let Some(stream) = consumer::open(
        &kafka,
        &options.consumer,
        &options.topic,
        Some(&options.group),
        &[("client.id", "alertstream-print")],
        &shutdown,
    )?
    else {
        return Ok(());
    };
    let mut printer = Printer {
        meta: options.meta,
        decoder,
        selector,
        stamp_dir,
        line: Vec::with_capacity(64 * 1024),
        framing: None,
        counts: Counts::default(),
        out: std::io::stdout().lock(),
        dead_letter,
    };
    // Consuming is blocking librdkafka work; it runs on this (block_on)
    // thread while the signal handler runs on the runtime's workers.
    let result = consume::run(stream, &kafka, &options.consumer, &shutdown, &mut printer);
    let _ = printer.out.flush();
    tracing::info!("{}", printer.counts.summary());
    result
}

struct Printer {
    meta: bool,
    decoder: Option<Decoder>,
    selector: Option<Selector>,
    stamp_dir: Option<StampDir>,
    line: Vec<u8>,
    /// How the current message was framed, for --meta.
    framing: Option<Framing>,
    counts: Counts,
    out: StdoutLock<'static>,
    dead_letter: Option<DeadLetter>,
}

impl Handler for Printer {
    /// Writes one message's alerts. Bad messages are reported and skipped;
    /// a cutout or a line that cannot be written stops the consumer.
    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        let now = Instant::now();
        self.counts.first.get_or_insert(now);
        self.counts.last = Some(now);
        self.line.clear();
        let payload = message.payload().unwrap_or_default();
        let rendered = if payload.is_empty() {
            Err(anyhow!("empty"))
        } else {
            self.render(message, payload)
        };
        let count = match rendered {
            Ok(count) => count,
            Err(e) if e.is::<StampError>() => return Err(e),
            Err(e) => {
                super::undecodable(message, e, self.dead_letter.as_ref(), None)?;
                self.counts.messages += 1;
                self.counts.skipped += 1;
                return Ok(());
            }
        };
        if self.meta {
            add_meta(&mut self.line, message, self.framing.take());
        }
        self.out
            .write_all(&self.line)
            .context("cannot write to stdout")?;
        // Counted once written: `print | head -1` printed what head got.
        self.counts.messages += 1;
        self.counts.alerts += count as u64;
        Ok(())
    }
}

impl Printer {
    /// Puts a message's alerts, as JSON lines, into `self.line` and writes
    /// their cutouts; returns how many alerts it held.
    fn render(&mut self, message: &BorrowedMessage<'_>, payload: &[u8]) -> Result<usize> {
        let Some(decoder) = &self.decoder else {
            self.line.extend_from_slice(payload);
            self.line.push(b'\n');
            return Ok(1);
        };
        if self.stamp_dir.is_none() {
            if let Some(selector) = &self.selector {
                // Select on the fields the expression reads; print through the fast path.
                let picks = decoder.fields(super::wire(message), selector.need())?;
                let selected = picks.iter().filter(|a| selector.selects(a)).count();
                if selected == 0 {
                    self.counts.unselected += picks.len() as u64;
                    return Ok(0);
                }
                if selected < picks.len() {
                    return self.render_values(message);
                }
            }
            // The fast path: binary straight to JSON.
            let (framing, count) = decoder.decode_json(super::wire(message), &mut self.line)?;
            self.framing = Some(framing);
            tracing::debug!(
                "{}: {} framing, {count} alert(s)",
                place(message),
                framing.name()
            );
            return Ok(count);
        }
        self.render_values(message)
    }

    /// The value path: cutouts written, `--where` applied per alert.
    fn render_values(&mut self, message: &BorrowedMessage<'_>) -> Result<usize> {
        let Some(decoder) = &self.decoder else {
            return Ok(0);
        };
        let (framing, alerts) = decoder.decode(super::wire(message))?;
        self.framing = Some(framing);
        tracing::debug!(
            "{}: {} framing, {} alert(s)",
            place(message),
            framing.name(),
            alerts.len()
        );
        let mut printed = 0;
        for alert in &alerts {
            if self.selector.as_ref().is_some_and(|s| !s.selects(alert)) {
                self.counts.unselected += 1;
                continue;
            }
            json::write_alert(&mut self.line, alert);
            self.line.push(b'\n');
            if let Some(dir) = &self.stamp_dir {
                self.counts.stamps += write_cutouts(dir, alert, message)?;
            }
            printed += 1;
        }
        Ok(printed)
    }
}

/// Writes an alert's cutouts; refused names are reported and skipped, a
/// failed write is an error (the alert must be read again).
fn write_cutouts(
    dir: &StampDir,
    alert: &apache_avro::types::Value,
    message: &BorrowedMessage<'_>,
) -> Result<u64> {
    let id = stamps::alert_id(alert);
    let mut written = 0;
    for cutout in stamps::cutouts(alert) {
        if cutout.data.is_empty() {
            continue;
        }
        let name = StampDir::file_name(&cutout, id.as_deref());
        match dir.write(&name, cutout.data) {
            Ok(_) => written += 1,
            Err(StampError::Refused(why)) => tracing::warn!("{}: {why}", place(message)),
            Err(failed) => {
                return Err(anyhow::Error::new(failed).context(format!(
                    "{}: stopping; this alert's offset is not committed, so the group reads it again once the cause is fixed",
                    place(message)
                )))
            }
        }
    }
    Ok(written)
}

fn place(message: &BorrowedMessage<'_>) -> String {
    format!(
        "{} partition {} offset {}",
        message.topic(),
        message.partition(),
        message.offset()
    )
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
/// `,"dead_letter":{error, detail, source}` for a copy on a dead-letter
/// topic (the headers `--dead-letter` adds); empty for any other message.
fn dead_letter_meta(message: &BorrowedMessage<'_>) -> String {
    use crate::kafka::dead_letter::{DETAIL_HEADER, ERROR_HEADER, SOURCE_HEADER};
    let Some(headers) = message.headers() else {
        return String::new();
    };
    let text = |name: &str| {
        let value = headers.iter().find(|h| h.key == name)?.value?;
        Some(String::from_utf8_lossy(value).into_owned())
    };
    let Some(error) = text(ERROR_HEADER) else {
        return String::new();
    };
    let fields = serde_json::json!({
        "error": error,
        "detail": text(DETAIL_HEADER),
        "source": text(SOURCE_HEADER),
    });
    format!(r#","dead_letter":{fields}"#)
}

/// `,"replay":{"loop":N,"offset_ms":M}` for a message a replay sent (its
/// two headers), else nothing.
fn replay_meta(message: &BorrowedMessage<'_>) -> String {
    match header_number(message, LOOP_HEADER) {
        Some(replay_loop) => format!(
            r#","replay":{{"loop":{replay_loop},"offset_ms":{}}}"#,
            header_number(message, OFFSET_HEADER).map_or("null".to_string(), |n| n.to_string())
        ),
        None => String::new(),
    }
}

fn add_meta(line: &mut Vec<u8>, message: &BorrowedMessage<'_>, framing: Option<Framing>) {
    let number = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
    let schema_id = match framing {
        Some(Framing::Confluent { schema_id }) => Some(u64::from(schema_id)),
        _ => None,
    };
    let framing = match framing {
        None => "null",
        Some(Framing::Schemaless) => r#""schemaless""#,
        Some(Framing::Container) => r#""container""#,
        Some(Framing::Confluent { .. }) => r#""confluent""#,
        Some(Framing::KeySchema) => r#""key-schema""#,
    };
    let meta = format!(
        r#","_kafka":{{"partition":{},"offset":{},"timestamp":{},"visit":{},"index":{},"framing":{framing},"schema_id":{}{}{}}}}}"#,
        message.partition(),
        message.offset(),
        message
            .timestamp()
            .to_millis()
            .map_or("null".to_string(), |t| t.to_string()),
        number(header_number(message, VISIT_HEADER)),
        number(header_number(message, INDEX_HEADER)),
        number(schema_id),
        replay_meta(message),
        dead_letter_meta(message),
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

//! `alertstream send`: visits of alerts to a topic, confirmed delivery.
//!
//! Every source alert is encoded once, before the first visit; visits then
//! only hand those bytes to librdkafka, so a visit costs the transport and
//! nothing else.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};
use apache_avro::Schema;
use indicatif::ProgressBar;
use prometheus_client::metrics::counter::Counter;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};

use crate::alerts::source::{self, SourceAlert};
use crate::alerts::stamps;
use crate::avro::codec::Framing;
use crate::avro::registry::Registry;
use crate::avro::{codec, json};
use crate::cli::{SendArgs, WireFormat};
use crate::commands::replay::{self, Pace};
use crate::exit::{bad_input, Exit, UNDELIVERED};
use crate::kafka::config::creation_error;
use crate::kafka::{admin, ClientLog, KafkaSettings};
use crate::metrics;
use crate::progress;
use crate::schedule::{self, Schedule};
use crate::shutdown::Shutdown;

/// Producer settings chosen for bursts of large messages; `-X` overrides any.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "alertstream-send"),
    // The topic is created explicitly, with the partitions and replication asked for.
    ("allow.auto.create.topics", "false"),
    // Confirmed, ordered, never duplicated by retries.
    ("acks", "all"),
    ("enable.idempotence", "true"),
    // An alert undelivered after two minutes has missed its purpose (Rubin:
    // within 60 s of the exposure) but this leaves room for a leader failover.
    ("message.timeout.ms", "120000"),
    // Bound the queue (and so memory) however large the visit: 64 MiB.
    ("queue.buffering.max.kbytes", "65536"),
    ("linger.ms", "5"),
];

/// Message headers that let a consumer check completeness: the visit
/// number and the alert's index within its visit.
pub const VISIT_HEADER: &str = "alertstream-visit";
pub const INDEX_HEADER: &str = "alertstream-index";

/// Where the alerts come from.
#[derive(Debug, Clone)]
pub enum Source {
    BuiltIn,
    Files(Vec<PathBuf>),
}

/// What goes on the wire.
#[derive(Debug, Clone)]
pub enum Encoding {
    /// Avro in the given framing.
    Avro(Framing),
    /// Confluent-framed Avro with the id a registry gives each writer schema
    /// when it is registered under the subject.
    Registered(Arc<Registry>, String),
    /// JSON text (`--encode-off`).
    Json,
}

/// Validated `send` options.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub topic: String,
    pub count: Option<u64>,
    pub source: Source,
    pub stamps: bool,
    pub encoding: Encoding,
    pub schedule: Schedule,
    pub partitions: i32,
    /// `None`: the cluster's default replication factor (KIP-464).
    pub replication: Option<i32>,
    pub flush_timeout: Duration,
    /// `--pace` and `--speed`: a replay instead of visits.
    pub pace: Option<(Pace, f64)>,
}

impl SendOptions {
    pub fn from_args(args: SendArgs) -> Result<Self> {
        admin::check_topic(&args.topic)?;
        let encoding = encoding(&args)?;
        if args.count == Some(0) {
            return Err(bad_input("COUNT must be at least 1"));
        }
        let schedule = if args.repeat {
            if !(args.interval.is_finite() && args.interval > 0.0) {
                return Err(bad_input(format!(
                    "--interval {}: give a positive number of seconds, e.g. 39 or 0.5",
                    args.interval
                )));
            }
            if args.max_repeats == 0 {
                return Err(bad_input("--max-repeats must be at least 1"));
            }
            Schedule::Repeat {
                interval: Duration::from_secs_f64(args.interval),
                visits: args.max_repeats,
            }
        } else {
            Schedule::Once
        };
        if args.partitions < 1 || args.replication_factor.is_some_and(|r| r < 1) {
            return Err(bad_input(
                "--partitions and --replication-factor must be at least 1",
            ));
        }
        if !(args.flush_timeout.is_finite() && args.flush_timeout >= 0.0) {
            return Err(bad_input(
                "--flush-timeout must be a number of seconds >= 0",
            ));
        }
        let pace = match &args.pace {
            None => None,
            Some(_) if args.count.is_some() => {
                return Err(bad_input(
                    "COUNT goes without --pace: a replay sends every alert of the archive",
                ))
            }
            Some(_) if !(args.speed.is_finite() && args.speed > 0.0) => {
                return Err(bad_input(format!(
                    "--speed {}: give a positive factor, e.g. 10 or 0.5",
                    args.speed
                )))
            }
            Some(text) => Some((Pace::parse(text)?, args.speed)),
        };
        Ok(Self {
            pace,
            topic: args.topic,
            count: args.count,
            source: if args.alerts.is_empty() {
                Source::BuiltIn
            } else {
                Source::Files(args.alerts)
            },
            stamps: !args.no_stamps,
            encoding,
            schedule,
            partitions: args.partitions,
            replication: args.replication_factor,
            flush_timeout: Duration::from_secs_f64(args.flush_timeout),
        })
    }
}

fn encoding(args: &SendArgs) -> Result<Encoding> {
    if args.encode_off {
        return Ok(Encoding::Json);
    }
    let framing = match (args.format, args.schema_id, &args.registry.url) {
        (WireFormat::Confluent, Some(schema_id), _) => Framing::Confluent { schema_id },
        (WireFormat::Confluent, None, Some(_)) => {
            let registry = Registry::new(&args.registry.options())?;
            let subject = args
                .subject
                .clone()
                .unwrap_or_else(|| format!("{}-value", args.topic));
            return Ok(Encoding::Registered(Arc::new(registry), subject));
        }
        (WireFormat::Confluent, None, None) => {
            return Err(bad_input(
                "--format confluent needs --schema-registry URL, or --schema-id N (the id a registry gave the writer schema)",
            ))
        }
        (_, Some(_), _) => return Err(bad_input("--schema-id goes with --format confluent")),
        (WireFormat::Schemaless, None, _) => Framing::Schemaless,
        (WireFormat::Container, None, _) => Framing::Container,
    };
    Ok(Encoding::Avro(framing))
}

/// Encodes every source alert once, as it will go on the wire.
pub fn prepare(
    alerts: Vec<SourceAlert>,
    stamps: bool,
    encoding: &Encoding,
) -> Result<Vec<Vec<u8>>> {
    let mut ids = SchemaIdsOf::default();
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, mut alert)| {
            if !stamps {
                stamps::strip(&mut alert.value, &alert.schema);
            }
            let framing = match encoding {
                Encoding::Avro(framing) => *framing,
                Encoding::Registered(registry, subject) => Framing::Confluent {
                    schema_id: ids.register(registry, subject, &alert.schema)?,
                },
                Encoding::Json => {
                    let mut out = Vec::new();
                    json::write_value(&mut out, &alert.value);
                    return Ok(out);
                }
            };
            codec::encode_framed(&alert.schema, &alert.value, framing).map_err(|e| {
                bad_input(format!(
                    "alert {} cannot be encoded with its schema: {e}",
                    i + 1
                ))
            })
        })
        .collect()
}

/// The id each distinct writer schema was registered with: one request per schema.
#[derive(Default)]
struct SchemaIdsOf {
    ids: HashMap<String, u32>,
}

impl SchemaIdsOf {
    fn register(&mut self, registry: &Registry, subject: &str, schema: &Schema) -> Result<u32> {
        // The full schema (defaults kept: the registry checks compatibility with them).
        let text = serde_json::to_string(schema)?;
        if let Some(id) = self.ids.get(&text) {
            return Ok(*id);
        }
        let id = registry
            .register(subject, &text)
            .map_err(|e| anyhow!("cannot register the writer schema under {subject}: {e}"))?;
        tracing::info!(
            "writer schema registered in {} under {subject} as id {id}",
            registry.url()
        );
        self.ids.insert(text, id);
        Ok(id)
    }
}

pub async fn run(
    options: SendOptions,
    kafka: KafkaSettings,
    shutdown: Shutdown,
    quiet: bool,
) -> Result<()> {
    let alerts = match &options.source {
        Source::BuiltIn => source::samples()?,
        Source::Files(paths) => source::load(paths)?,
    };
    if let Some((pace, speed)) = &options.pace {
        return run_replay(&options, &kafka, alerts, pace, *speed, &shutdown, quiet).await;
    }
    let payloads = prepare(alerts, options.stamps, &options.encoding)?;
    let count = options.count.unwrap_or(payloads.len() as u64);
    let bytes_per_cycle: usize = payloads.iter().map(Vec::len).sum();
    tracing::info!(
        "{} source alert(s), {:.1} KB on average; {count} alert(s) per visit",
        payloads.len(),
        bytes_per_cycle as f64 / payloads.len() as f64 / 1000.0
    );
    check_sizes(&kafka, &payloads)?;
    let producer = connect(&options, &kafka, quiet).await?;
    let totals = RefCell::new(Totals::default());
    let visits_planned = options.schedule.visits();
    // Visits run on this thread (the runtime's block_on thread): producing is
    // blocking librdkafka work, and the signal handler runs on the workers.
    let outcome = schedule::run(options.schedule, SystemTime::now, &shutdown, |number| {
        let visit = Visit {
            number,
            planned: visits_planned,
            count,
        };
        totals.borrow_mut().add(&send_visit(
            &producer, &options, &payloads, visit, &shutdown,
        ));
        async {}
    })
    .await;
    report(&options, &kafka, &producer, outcome, &totals.into_inner())
}

/// `--pace`: the archive with its own timing, once or `--max-repeats` times.
async fn run_replay(
    options: &SendOptions,
    kafka: &KafkaSettings,
    alerts: Vec<source::SourceAlert>,
    pace: &Pace,
    speed: f64,
    shutdown: &Shutdown,
    quiet: bool,
) -> Result<()> {
    let timeline = replay::timeline(&alerts, pace, speed)?;
    let metas: Vec<_> = alerts.iter().map(|a| a.meta.clone()).collect();
    let payloads = prepare(alerts, options.stamps, &options.encoding)?;
    check_sizes(kafka, &payloads)?;
    let producer = connect(options, kafka, quiet).await?;
    let sources: Vec<replay::Source> = payloads
        .into_iter()
        .zip(&metas)
        .map(|(payload, meta)| replay::Source::new(payload, meta.as_ref()))
        .collect();
    let plan = replay::Replay {
        topic: &options.topic,
        sources: &sources,
        timeline: &timeline,
        loops: options.schedule.visits(),
        flush_timeout: options.flush_timeout,
    };
    let replayed = replay::run(&producer, &plan, shutdown);
    let mut totals = producer.context().totals();
    totals.produced = replayed.produced;
    let outcome = schedule::Outcome {
        visits: replayed.loops,
        skipped_ticks: 0,
        interrupted: replayed.interrupted,
    };
    report(options, kafka, &producer, outcome, &totals)
}

/// The producer, once the brokers answer and the topic exists.
async fn connect(
    options: &SendOptions,
    kafka: &KafkaSettings,
    quiet: bool,
) -> Result<BaseProducer<Delivery>> {
    let producer: BaseProducer<Delivery> = kafka
        .client_config(PRODUCER_DEFAULTS)
        .create_with_context(Delivery::new(progress::deliveries(quiet), &options.topic))
        .map_err(creation_error)?;
    // The producer itself checks that the brokers answer, so that its queued
    // log lines (a refused connection, a failed authentication) explain why not.
    let serve = || {
        producer.poll(Duration::ZERO);
    };
    let metadata = admin::reach(
        producer.client(),
        &producer.context().log,
        serve,
        kafka.brokers(),
        &options.topic,
    )?;
    admin::ensure_topic(
        kafka,
        &metadata,
        &options.topic,
        options.partitions,
        options.replication,
    )
    .await?;
    Ok(producer)
}

/// The closing summary; exit 3 when any alert was not delivered for sure.
fn report(
    options: &SendOptions,
    kafka: &KafkaSettings,
    producer: &BaseProducer<Delivery>,
    outcome: schedule::Outcome,
    totals: &Totals,
) -> Result<()> {
    let how = if outcome.interrupted {
        "interrupted after"
    } else {
        "sent"
    };
    tracing::info!(
        "{how} {} visit(s) to {}: {} of {} alert(s) delivered; {} failed (refused), \
         {} unknown (timed out or purged in flight: may be in the topic), {} not sent",
        outcome.visits,
        options.topic,
        totals.delivered,
        totals.produced,
        totals.failed,
        totals.unknown,
        totals.not_sent
    );
    let undelivered = totals.failed + totals.unknown + totals.not_sent;
    if undelivered == 0 {
        return Ok(());
    }
    let mut why = producer.context().first_error().unwrap_or_default();
    if why.contains("MessageSizeTooLarge") || why.contains("too large") {
        why.push_str(": the topic's max.message.bytes on the broker is smaller than the alerts");
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" (first error: {why})")
    };
    Err(Exit {
        code: UNDELIVERED,
        message: format!(
            "{undelivered} of {} alert(s) were not delivered to {} on {}: {} failed, {} unknown \
             (may be in the topic: check before sending again), {} not sent{why}",
            totals.produced,
            options.topic,
            kafka.brokers(),
            totals.failed,
            totals.unknown,
            totals.not_sent,
        ),
    }
    .into())
}

/// Refuses, before anything is sent, alerts larger than the producer may send.
fn check_sizes(kafka: &KafkaSettings, payloads: &[Vec<u8>]) -> Result<()> {
    let config = kafka.client_config(PRODUCER_DEFAULTS);
    let limit: usize = config
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Room for the record's own overhead and headers.
    let room = limit.saturating_sub(512);
    if let Some((i, p)) = payloads.iter().enumerate().find(|(_, p)| p.len() > room) {
        return Err(bad_input(format!(
            "source alert {} is {} bytes, more than message.max.bytes ({limit}) allows: \
             raise it with -X message.max.bytes=N (and the topic's max.message.bytes on the broker), \
             or send --no-stamps",
            i + 1,
            p.len()
        )));
    }
    Ok(())
}

/// Which visit, of how many, with how many alerts.
#[derive(Debug, Clone, Copy)]
struct Visit {
    number: u64,
    planned: u64,
    count: u64,
}

/// What became of the alerts handed to the producer.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    produced: u64,
    /// Acknowledged by the brokers.
    delivered: u64,
    /// Refused: by the broker, or before queueing (too large).
    failed: u64,
    /// Timed out or purged while in flight: may or may not be in the topic.
    unknown: u64,
    /// Purged from the local queue: never left this process.
    not_sent: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.produced += other.produced;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.unknown += other.unknown;
        self.not_sent += other.not_sent;
    }
}

/// Produces one visit and waits until every alert of it is settled
/// (acknowledged or failed). A stop request ends producing at once and
/// waits at most `--flush-timeout` for what is in flight.
fn send_visit(
    producer: &BaseProducer<Delivery>,
    options: &SendOptions,
    payloads: &[Vec<u8>],
    visit: Visit,
    shutdown: &Shutdown,
) -> Totals {
    let delivery = producer.context();
    let before = delivery.totals();
    let start = Instant::now();
    progress::start_visit(&delivery.bar, visit.number, visit.count);
    tracing::info!(
        "visit {}/{}: sending {} alert(s) to {}",
        visit.number,
        visit.planned,
        visit.count,
        options.topic
    );
    let (produced, bytes) = produce_visit(producer, options, payloads, visit, shutdown);
    settle(producer, options.flush_timeout, shutdown);
    delivery.bar.finish_and_clear();
    let mut totals = delivery.totals().since(&before);
    totals.produced = produced;
    let elapsed = start.elapsed().as_secs_f64();
    let topic = metrics::labels(&[("topic", &options.topic)]);
    metrics::get()
        .visit_duration
        .get_or_create(&topic)
        .observe(elapsed);
    if let Schedule::Repeat { interval, .. } = options.schedule {
        if elapsed > interval.as_secs_f64() {
            metrics::get().visits_late.get_or_create(&topic).inc();
        }
    }
    tracing::info!(
        "visit {}/{}: {} alert(s) delivered in {elapsed:.3}s ({}, {:.1} MB/s)",
        visit.number,
        visit.planned,
        totals.delivered,
        progress::rate(totals.delivered, elapsed, "alerts/s"),
        bytes as f64 / 1e6 / elapsed.max(1e-9),
    );
    let undelivered = totals.failed + totals.unknown + totals.not_sent;
    if undelivered > 0 {
        tracing::warn!(
            "visit {}: {undelivered} alert(s) not delivered: {}",
            visit.number,
            delivery.first_error().unwrap_or_default()
        );
    }
    totals
}

/// Hands a visit's alerts to librdkafka; returns how many and their bytes.
fn produce_visit(
    producer: &BaseProducer<Delivery>,
    options: &SendOptions,
    payloads: &[Vec<u8>],
    visit: Visit,
    shutdown: &Shutdown,
) -> (u64, usize) {
    let (mut produced, mut bytes) = (0u64, 0usize);
    let visit_number = visit.number.to_string();
    for i in 0..visit.count {
        let payload = &payloads[(i % payloads.len() as u64) as usize];
        let index = i.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: VISIT_HEADER,
                value: Some(&visit_number),
            })
            .insert(Header {
                key: INDEX_HEADER,
                value: Some(&index),
            });
        let record = BaseRecord::to(&options.topic)
            .payload(payload.as_slice())
            .headers(headers);
        match produce(producer, record, shutdown) {
            Produced::Queued => bytes += payload.len(),
            Produced::Refused => {}
            Produced::Stopped => break,
        }
        produced += 1;
    }
    (produced, bytes)
}

/// What became of one record handed to the producer.
pub enum Produced {
    Queued,
    /// Refused before queueing (e.g. larger than message.max.bytes): counted as failed.
    Refused,
    /// A stop was requested while the queue was full: not produced.
    Stopped,
}

/// Produces one record, serving acknowledgements while the bounded queue
/// is full, until it is queued, refused, or a stop is requested.
pub fn produce(
    producer: &BaseProducer<Delivery>,
    record: BaseRecord<'_, [u8], [u8]>,
    shutdown: &Shutdown,
) -> Produced {
    match crate::kafka::queue::enqueue(producer, record, || shutdown.requested()) {
        Ok(true) => Produced::Queued,
        Ok(false) => Produced::Stopped,
        Err(error) => {
            producer.context().settle(Fate::Failed, &error.to_string());
            Produced::Refused
        }
    }
}

/// Waits until nothing is in flight. librdkafka settles every message within
/// message.timeout.ms; after a stop request, at most `flush_timeout` more,
/// then what is left is purged (and counted unknown or not sent).
pub fn settle(producer: &BaseProducer<Delivery>, flush_timeout: Duration, shutdown: &Shutdown) {
    use crate::kafka::queue::drain;
    if drain(producer, Duration::MAX, || shutdown.requested())
        || drain(producer, flush_timeout, || false)
    {
        return;
    }
    tracing::warn!(
        "{} alert(s) still unacknowledged after --flush-timeout; giving up on them",
        producer.in_flight_count()
    );
    producer.purge(PurgeConfig::default().queue().inflight());
    // Purged messages are reported through the delivery callback at once.
    drain(producer, Duration::from_millis(100), || false);
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    Failed,
    Unknown,
    NotSent,
}

impl Fate {
    fn of(result: &DeliveryResult<'_>) -> Self {
        match result {
            Ok(_) => Self::Delivered,
            Err((KafkaError::MessageProduction(code), _)) => match code {
                RDKafkaErrorCode::PurgeQueue => Self::NotSent,
                RDKafkaErrorCode::PurgeInflight
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut => Self::Unknown,
                _ => Self::Failed,
            },
            Err(_) => Self::Failed,
        }
    }
}

/// Counts acknowledgements as librdkafka reports them.
pub struct Delivery {
    log: ClientLog,
    counts: [AtomicU64; 4],
    first_error: Mutex<Option<String>>,
    bar: ProgressBar,
    /// alertstream_alerts_sent_total and _failed_total{fate}, by fate; bytes out.
    meters: [Counter; 4],
    bytes: Counter,
}

impl Delivery {
    fn new(bar: ProgressBar, topic: &str) -> Self {
        let m = metrics::get();
        let failed = |fate| {
            m.failed
                .get_or_create(&metrics::labels(&[("topic", topic), ("fate", fate)]))
                .clone()
        };
        Self {
            log: ClientLog::default(),
            counts: Default::default(),
            first_error: Mutex::new(None),
            bar,
            meters: [
                m.sent
                    .get_or_create(&metrics::labels(&[("topic", topic)]))
                    .clone(),
                failed("failed"),
                failed("unknown"),
                failed("not_sent"),
            ],
            bytes: m
                .bytes
                .get_or_create(&metrics::labels(&[("topic", topic), ("direction", "out")]))
                .clone(),
        }
    }

    fn settle(&self, fate: Fate, error: &str) {
        self.counts[fate as usize].fetch_add(1, Ordering::SeqCst);
        self.meters[fate as usize].inc();
        if fate == Fate::Delivered {
            self.bar.inc(1);
        } else if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    fn totals(&self) -> Totals {
        let count = |fate: Fate| self.counts[fate as usize].load(Ordering::SeqCst);
        Totals {
            produced: 0,
            delivered: count(Fate::Delivered),
            failed: count(Fate::Failed),
            unknown: count(Fate::Unknown),
            not_sent: count(Fate::NotSent),
        }
    }

    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Totals {
    /// The counts that arrived since `before`.
    fn since(&self, before: &Totals) -> Totals {
        Totals {
            produced: 0,
            delivered: self.delivered - before.delivered,
            failed: self.failed - before.failed,
            unknown: self.unknown - before.unknown,
            not_sent: self.not_sent - before.not_sent,
        }
    }
}

impl ClientContext for Delivery {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let error = match result {
            Ok(message) => {
                self.bytes.inc_by(message.payload_len() as u64);
                String::new()
            }
            Err((error, _)) => error.to_string(),
        };
        self.settle(Fate::of(result), &error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stamps_makes_smaller_payloads_that_still_decode() {
        let alerts = source::samples().unwrap();
        let with = prepare(alerts.clone(), true, &Encoding::Avro(Framing::Schemaless)).unwrap();
        let without = prepare(alerts.clone(), false, &Encoding::Avro(Framing::Schemaless)).unwrap();
        let decoder = codec::Decoder::new(crate::avro::schema::built_in(), false);
        for (w, wo) in with.iter().zip(&without) {
            assert!(wo.len() + 3 * 1000 < w.len(), "{} vs {}", wo.len(), w.len());
            let (_, values) = decoder.decode(wo).unwrap();
            assert!(stamps::cutouts(&values[0]).is_empty());
        }
    }

    #[test]
    fn encode_off_sends_json_with_every_field() {
        let alerts = source::samples().unwrap();
        let payloads = prepare(alerts, true, &Encoding::Json).unwrap();
        let first: serde_json::Value = serde_json::from_slice(&payloads[0]).unwrap();
        assert!(first["candid"].is_i64());
        assert!(first["cutoutScience"]["stampData"].is_string());
    }
}

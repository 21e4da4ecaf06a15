//! `alertstream send`: visits of alerts to a topic, confirmed delivery.
//!
//! Every source alert is encoded once, before the first visit; visits then
//! only hand those bytes to librdkafka, so a visit costs the transport and
//! nothing else.

mod keys;
pub mod replay;
mod simulated;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Result};
use apache_avro::Schema;
use rdkafka::producer::{BaseRecord, Producer};

use crate::alerts::source::{self, SourceAlert};
use crate::alerts::stamps;
use crate::avro::codec::Framing;
use crate::avro::registry::Registry;
use crate::avro::{codec, json};
use crate::cli::{SendArgs, WireFormat};
use crate::exit::{bad_input, Exit, UNDELIVERED};
use crate::kafka::produce::{self, produce, settle, Delivery, Produced, Producing, Totals};
use crate::kafka::{admin, KafkaSettings};
use crate::metrics;
use crate::progress;
use crate::schedule::{self, Schedule};
use crate::shutdown::Shutdown;
use crate::synthetic::{self, Simulation};
use replay::Pace;

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
    // Alerts have no key: spread them over every partition, message by
    // message, instead of filling one partition per linger period (sticky
    // partitioning put 29 of 30 alerts on one of three partitions).
    ("sticky.partitioning.linger.ms", "0"),
];

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
    /// The grid visits are numbered on: with `--repeat`, `--interval`, so a
    /// visit's number is its tick (start time / interval), the same on every
    /// host and never repeated by a later run, as the simulator's grid
    /// visits; a single visit, 1 ms (its start time in milliseconds).
    pub grid: Duration,
    /// `--partitions`: for a topic created here (default 1).
    pub partitions: Option<i32>,
    /// `None`: the cluster's default replication factor (KIP-464).
    pub replication: Option<i32>,
    pub flush_timeout: Duration,
    /// `--pace` and `--speed`: a replay instead of visits.
    pub pace: Option<(Pace, f64)>,
    /// `--simulate`: alerts made on the fly instead of read.
    pub simulation: Option<Arc<Simulation>>,
    /// `--key FIELD`.
    pub key: Option<String>,
}

/// Visits --repeat sends: 24 hours of 39-second visits.
pub const DEFAULT_VISITS: u64 = 2215;

/// `--interval`, refused where nothing would use it: without --repeat one
/// visit goes, and only --simulate's visit numbers need a grid.
fn visit_interval(args: &SendArgs) -> Result<f64> {
    let Some(interval) = args.interval else {
        return Ok(schedule::DEFAULT_INTERVAL);
    };
    if !args.repeat && args.simulate.is_none() {
        return Err(bad_input(
            "--interval goes with --repeat (or --simulate, whose visits it numbers): \
             without them one visit goes",
        ));
    }
    if !(interval.is_finite() && interval > 0.0) {
        return Err(bad_input(format!(
            "--interval {interval}: give a positive number of seconds, e.g. 39 or 0.5"
        )));
    }
    Ok(interval)
}

impl SendOptions {
    pub fn from_args(args: SendArgs) -> Result<Self> {
        admin::check_topic(&args.topic)?;
        let encoding = encoding(&args)?;
        if args.count == Some(0) {
            return Err(bad_input("COUNT must be at least 1"));
        }
        let interval = visit_interval(&args)?;
        let schedule = if args.repeat {
            let visits = args.max_repeats.unwrap_or(DEFAULT_VISITS);
            if visits == 0 {
                return Err(bad_input("--max-repeats must be at least 1"));
            }
            Schedule::Repeat {
                interval: Duration::from_secs_f64(interval),
                visits,
            }
        } else if args.max_repeats.is_some() {
            return Err(bad_input(
                "--max-repeats goes with --repeat: without it one visit goes",
            ));
        } else {
            Schedule::Once
        };
        if args.partitions.is_some_and(|p| p < 1) || args.replication_factor.is_some_and(|r| r < 1)
        {
            return Err(bad_input(
                "--partitions and --replication-factor must be at least 1",
            ));
        }
        if !(args.flush_timeout.is_finite() && args.flush_timeout >= 0.0) {
            return Err(bad_input(
                "--flush-timeout must be a number of seconds >= 0",
            ));
        }
        let simulation = match args.simulate {
            Some(survey) => Some(Arc::new(synthetic::simulation(synthetic::Asked {
                survey,
                count: args.count.unwrap_or(10_000),
                interval,
                stamps: !args.no_stamps,
                args: &args.sim,
            })?)),
            None => {
                synthetic::options::refuse_without_simulate(&args.sim)?;
                None
            }
        };
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
            simulation,
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
            grid: match schedule {
                Schedule::Repeat { interval, .. } => interval,
                Schedule::Once => Duration::from_millis(1),
            },
            partitions: args.partitions,
            replication: args.replication_factor,
            flush_timeout: Duration::from_secs_f64(args.flush_timeout),
            key: args.key,
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
        (WireFormat::KeySchema, None, _) => Framing::KeySchema,
    };
    Ok(Encoding::Avro(framing))
}

/// Bare Avro carries no schema: a consumer reads it with the built-in ZTF
/// reader unless told otherwise, so alerts of another schema sent that way
/// are skipped there. Said once, before anything is sent.
fn warn_foreign_schema(alerts: &[SourceAlert]) {
    let reader = crate::avro::schema::built_in().canonical_form();
    let foreign = alerts
        .iter()
        .filter(|a| a.schema.canonical_form() != reader)
        .count();
    if foreign > 0 {
        tracing::warn!(
            "{foreign} of {} alert(s) were written with another schema than the built-in ZTF \
             4.02 reader: sent schemaless, they decode only where the consumer is given their \
             schema (print --schema FILE); send --format container to carry the schema in every message",
            alerts.len()
        );
    }
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
    if let Some(simulation) = options.simulation.clone() {
        return simulated::run(&options, simulation, &kafka, &shutdown, quiet).await;
    }
    let alerts = match &options.source {
        Source::BuiltIn => source::samples()?,
        Source::Files(paths) => source::load(paths)?,
    };
    if let (Source::Files(_), Encoding::Avro(Framing::Schemaless)) =
        (&options.source, &options.encoding)
    {
        warn_foreign_schema(&alerts);
    }
    if let Some((pace, speed)) = &options.pace {
        return run_replay(&options, &kafka, alerts, pace, *speed, &shutdown, quiet).await;
    }
    let keys = keys_of(&options, &alerts)?;
    let payloads = prepare(alerts, options.stamps, &options.encoding)?;
    let count = options.count.unwrap_or(payloads.len() as u64);
    let bytes_per_cycle: usize = payloads.iter().map(Vec::len).sum();
    tracing::info!(
        "{} source alert(s), {:.1} KB on average; {count} alert(s) per visit",
        payloads.len(),
        bytes_per_cycle as f64 / payloads.len() as f64 / 1000.0
    );
    check_sizes(&kafka, &payloads, &keys)?;
    let producer = connect(&options, &kafka, quiet).await?;
    let totals = RefCell::new(Totals::default());
    let visits_planned = options.schedule.visits();
    // Visits run on this thread (the runtime's block_on thread): producing is
    // blocking librdkafka work, and the signal handler runs on the workers.
    let outcome = schedule::run(
        options.schedule,
        SystemTime::now,
        &shutdown,
        |number, at| {
            let visit = Visit {
                number,
                grid: schedule::grid_number(at, options.grid),
                planned: visits_planned,
                count,
            };
            totals
                .borrow_mut()
                .add(&send_visit(&producer, &options, visit, &shutdown, || {
                    let messages = Messages {
                        payloads: &payloads,
                        keys: &keys,
                    };
                    produce_visit(&producer, &options, &messages, visit, &shutdown)
                }));
            async {}
        },
    )
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
    if let (Pace::Field(path), Some(first)) = (pace, alerts.first()) {
        // A wrong name is said with the closest real ones, as for --where.
        crate::expr::KeyOf::compile("--pace", &path.join("."), &first.schema)?;
    }
    let timeline = replay::timeline(&alerts, pace, speed)?;
    let metas: Vec<_> = alerts.iter().map(|a| a.meta.clone()).collect();
    let keys = keys_of(options, &alerts)?;
    let payloads = prepare(alerts, options.stamps, &options.encoding)?;
    check_sizes(kafka, &payloads, &keys)?;
    let producer = connect(options, kafka, quiet).await?;
    let sources: Vec<replay::Source> = payloads
        .into_iter()
        .zip(&metas)
        .zip(keys)
        .map(|((payload, meta), key)| {
            let mut source = replay::Source::new(payload, meta.as_ref());
            // --key or key-schema framing: the key it gives, not the recorded one.
            if key.is_some() {
                source.key = key;
            }
            source
        })
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
async fn connect(options: &SendOptions, kafka: &KafkaSettings, quiet: bool) -> Result<Producing> {
    let delivery = Delivery::metered(progress::deliveries(quiet), &options.topic);
    // Every series from the start, at 0: a rule on increase() sees the first late visit.
    let topic = metrics::labels(&[("topic", &options.topic)]);
    let _ = metrics::get().visits_late.get_or_create(&topic);
    let producer = produce::create(kafka, PRODUCER_DEFAULTS, delivery)?;
    produce::ensure_topic(
        &producer,
        kafka,
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
    producer: &Producing,
    outcome: schedule::Outcome,
    totals: &Totals,
) -> Result<()> {
    let how = if outcome.interrupted {
        "interrupted after"
    } else {
        "sent"
    };
    let rounds = if options.pace.is_some() {
        "replay loop(s)"
    } else {
        "visit(s)"
    };
    tracing::info!(
        "{how} {} {rounds} to {}: {} of {} alert(s) delivered; {} failed (refused), \
         {} unknown (timed out or purged in flight: may be in the topic), {} not sent",
        outcome.visits,
        options.topic,
        totals.delivered,
        totals.produced,
        totals.failed,
        totals.unknown,
        totals.not_sent
    );
    let undelivered = totals.undelivered();
    if undelivered == 0 {
        return Ok(());
    }
    let mut why = producer.context().first_error().unwrap_or_default();
    if produce::too_large(&why) {
        // librdkafka refuses with the broker's code too: either limit may be it.
        why.push_str(
            ": an alert is larger than this producer's message.max.bytes (-X) or the \
             topic's max.message.bytes on the broker allows",
        );
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

/// Each source alert's key (`--key`, or its schema in key-schema framing).
fn keys_of(options: &SendOptions, alerts: &[source::SourceAlert]) -> Result<Vec<Option<Vec<u8>>>> {
    let Some(first) = alerts.first() else {
        return Ok(Vec::new());
    };
    let key_schema = matches!(options.encoding, Encoding::Avro(Framing::KeySchema));
    let keys = keys::Keys::new(options.key.as_deref(), key_schema, &first.schema)?;
    alerts.iter().map(|alert| keys.of(alert)).collect()
}

/// Refuses, before anything is sent, alerts larger than the producer may send.
fn check_sizes(
    kafka: &KafkaSettings,
    payloads: &[Vec<u8>],
    keys: &[Option<Vec<u8>>],
) -> Result<()> {
    let config = kafka.client_config(PRODUCER_DEFAULTS);
    let limit: usize = config
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Room for the record's own overhead and headers.
    let room = limit.saturating_sub(512);
    let key_len = |i: usize| keys.get(i).and_then(Option::as_ref).map_or(0, Vec::len);
    let size = |(i, p): (usize, &Vec<u8>)| (i, p.len() + key_len(i));
    if let Some((i, len)) = payloads
        .iter()
        .enumerate()
        .map(size)
        .find(|(_, len)| *len > room)
    {
        return Err(bad_input(format!(
            "source alert {} is {} bytes, more than message.max.bytes ({limit}) allows: \
             raise it with -X message.max.bytes=N (and the topic's max.message.bytes on the broker), \
             or send --no-stamps",
            i + 1,
            len
        )));
    }
    Ok(())
}

/// Which visit, of how many, with how many alerts.
#[derive(Debug, Clone, Copy)]
struct Visit {
    /// 1, 2, ... within this run.
    number: u64,
    /// The visit's tick ([`SendOptions::grid`]): its `alertstream-visit` header.
    grid: u64,
    planned: u64,
    count: u64,
}

/// Produces one visit and waits until every alert of it is settled
/// (acknowledged or failed). A stop request ends producing at once and
/// waits at most `--flush-timeout` for what is in flight.
fn send_visit(
    producer: &Producing,
    options: &SendOptions,
    visit: Visit,
    shutdown: &Shutdown,
    produce_all: impl FnOnce() -> (u64, usize),
) -> Totals {
    let delivery = producer.context();
    let before = delivery.totals();
    let start = Instant::now();
    progress::start_visit(&delivery.bar, visit.number, visit.count);
    tracing::info!(
        "visit {}/{}: sending {} alert(s) to {} (alertstream-visit {})",
        visit.number,
        visit.planned,
        visit.count,
        options.topic,
        visit.grid
    );
    let (produced, bytes) = produce_all();
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
    let cut_short = match produced < visit.count && shutdown.requested() {
        true => format!("; cut short by the stop request ({} planned)", visit.count),
        false => String::new(),
    };
    tracing::info!(
        "visit {}/{}: {} alert(s) delivered in {elapsed:.3}s ({}){cut_short}",
        visit.number,
        visit.planned,
        totals.delivered,
        progress::rates(totals.delivered, bytes as u64, elapsed),
    );
    let undelivered = totals.undelivered();
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
/// The source alerts as they go on the wire, and their keys.
struct Messages<'a> {
    payloads: &'a [Vec<u8>],
    keys: &'a [Option<Vec<u8>>],
}

fn produce_visit(
    producer: &Producing,
    options: &SendOptions,
    messages: &Messages<'_>,
    visit: Visit,
    shutdown: &Shutdown,
) -> (u64, usize) {
    let mut sent = Sent::default();
    let payloads = messages.payloads;
    for i in 0..visit.count {
        let at = (i % payloads.len() as u64) as usize;
        let payload = &payloads[at];
        let mut record = BaseRecord::to(&options.topic)
            .payload(payload.as_slice())
            .headers(produce::visit_headers(visit.grid, i));
        if let Some(Some(key)) = messages.keys.get(at) {
            record = record.key(key.as_slice());
        }
        if !sent.add(produce(producer, record, shutdown), payload.len()) {
            break;
        }
    }
    (sent.produced, sent.bytes)
}

/// What a visit handed to the producer so far.
#[derive(Debug, Default)]
pub struct Sent {
    pub produced: u64,
    pub bytes: usize,
}

impl Sent {
    /// Counts one record's fate; false once a stop was requested.
    pub fn add(&mut self, produced: Produced, len: usize) -> bool {
        match produced {
            Produced::Queued => self.bytes += len,
            Produced::Refused => {}
            Produced::Stopped => return false,
        }
        self.produced += 1;
        true
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

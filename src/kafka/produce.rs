//! The one produce path: handing records to a producer whose queue is
//! bounded, accounting for what became of each (delivered, refused, unknown,
//! never sent), and settling what is in flight on shutdown. `send`, its
//! replays, the simulator and `filter` (inside transactions) all produce
//! through here; it is the one place that polls a producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;
use prometheus_client::metrics::counter::Counter;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};

use super::config::creation_error;
use super::{admin, ClientLog, KafkaSettings};
use crate::metrics;
use crate::shutdown::Shutdown;

/// Message headers that let a consumer check completeness: the visit
/// number and the alert's index within its visit.
pub const VISIT_HEADER: &str = "alertstream-visit";
pub const INDEX_HEADER: &str = "alertstream-index";

/// Headers a replay adds: its loop (from 1) and the alert's planned time
/// since the loop started, in milliseconds.
pub const LOOP_HEADER: &str = "alertstream-loop";
pub const OFFSET_HEADER: &str = "alertstream-replay-offset-ms";

/// Whether a delivery error says a message was too large (for the producer's
/// message.max.bytes or the topic's max.message.bytes).
pub fn too_large(why: &str) -> bool {
    why.contains("MessageSizeTooLarge") || why.contains("too large")
}

/// The headers of alert `index` of visit `visit`.
pub fn visit_headers(visit: u64, index: u64) -> OwnedHeaders {
    let mut text = itoa::Buffer::new();
    let headers = OwnedHeaders::new_with_capacity(2).insert(Header {
        key: VISIT_HEADER,
        value: Some(text.format(visit)),
    });
    headers.insert(Header {
        key: INDEX_HEADER,
        value: Some(text.format(index)),
    })
}

/// How long one poll for acknowledgements waits. rdkafka's
/// `BaseProducer::poll` returns only when its timeout has passed, events or
/// not (its own `flush`, which `commit_transaction` calls, polls 100 ms at a
/// time), so waiting goes in short slices: a wait ends within a slice of the
/// acknowledgement it waits for.
pub const SERVE_SLICE: Duration = Duration::from_millis(1);

/// A producer whose context counts every message's fate.
pub type Producing = BaseProducer<Delivery>;

/// Makes a producer with `defaults` under the user's `-X` settings.
pub fn create(
    kafka: &KafkaSettings,
    defaults: &[(&str, &str)],
    delivery: Delivery,
) -> Result<Producing> {
    kafka
        .client_config(defaults)
        .create_with_context(delivery)
        .map_err(creation_error)
}

/// Waits until the brokers answer, then creates `topic` if it is missing.
/// The producer itself asks, so that its queued log lines (a refused
/// connection, a failed authentication) explain why the brokers do not.
pub async fn ensure_topic(
    producer: &Producing,
    kafka: &KafkaSettings,
    topic: &str,
    partitions: Option<i32>,
    replication: Option<i32>,
) -> Result<()> {
    let serve = || {
        producer.poll(Duration::ZERO);
    };
    let metadata = admin::reach(
        producer.client(),
        &producer.context().log,
        serve,
        kafka.brokers(),
        topic,
        admin::REACH_TIMEOUT,
    )?;
    if admin::ensure_topic(kafka, &metadata, topic, partitions, replication).await? {
        admin::await_leaders(producer.client(), topic, admin::REACH_TIMEOUT);
    }
    Ok(())
}

/// Produces `message` to `to` unchanged (payload, key, headers, timestamp;
/// a null payload stays null), with `extra` headers after its own, serving
/// acknowledgements while the queue is full.
pub fn forward<M: Message>(
    producer: &Producing,
    to: &str,
    message: &M,
    extra: &[(&str, &[u8])],
) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original.iter() {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    for (key, value) in extra {
        headers = headers.insert(Header {
            key,
            value: Some(*value),
        });
    }
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(to).headers(headers);
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(ms) = message.timestamp().to_millis() {
        record = record.timestamp(ms);
    }
    enqueue(producer, record, || false).map(|_| ())
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
    producer: &Producing,
    record: BaseRecord<'_, [u8], [u8]>,
    shutdown: &Shutdown,
) -> Produced {
    match enqueue(producer, record, || shutdown.requested()) {
        Ok(true) => Produced::Queued,
        Ok(false) => Produced::Stopped,
        Err(error) => {
            producer.context().settle(Fate::Failed, &error.to_string());
            Produced::Refused
        }
    }
}

/// Queues `record`, polling for deliveries while the queue is full. `Ok(false)`
/// when `stop` said so before it was queued; an error when it was refused.
pub fn enqueue<C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
    stop: impl Fn() -> bool,
) -> Result<bool, KafkaError> {
    loop {
        if stop() {
            return Ok(false);
        }
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(true);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(SERVE_SLICE);
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Serves acknowledgements until nothing is in flight, `stop` says so, or
/// `within` has passed; whether nothing is left in flight.
pub fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    within: Duration,
    stop: impl Fn() -> bool,
) -> bool {
    let deadline = Instant::now().checked_add(within);
    while producer.in_flight_count() > 0 {
        if stop() || deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        producer.poll(SERVE_SLICE);
    }
    true
}

/// Serves acknowledgements until `at` (a paced replay, a burst's time);
/// `false` if a stop was requested first.
pub fn serve_until(producer: &Producing, at: Instant, shutdown: &Shutdown) -> bool {
    loop {
        if shutdown.requested() {
            return false;
        }
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        producer.poll(left.min(Duration::from_millis(50)));
    }
}

/// Waits until nothing is in flight. librdkafka settles every message within
/// message.timeout.ms; after a stop request, at most `flush_timeout` more,
/// then what is left is purged (and counted unknown or not sent).
pub fn settle(producer: &Producing, flush_timeout: Duration, shutdown: &Shutdown) {
    if drain(producer, Duration::MAX, || shutdown.requested())
        || drain(producer, flush_timeout, || false)
    {
        return;
    }
    tracing::warn!(
        "{} alert(s) still unacknowledged after --flush-timeout; giving up on them",
        producer.in_flight_count()
    );
    purge(producer);
}

/// Drops what is queued or in flight; librdkafka reports each purged
/// message through the delivery callback at once, served here.
pub fn purge<C: ProducerContext>(producer: &BaseProducer<C>) {
    producer.purge(PurgeConfig::default().queue().inflight());
    drain(producer, Duration::from_millis(100), || false);
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
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

/// What became of the alerts handed to the producer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub produced: u64,
    /// Acknowledged by the brokers.
    pub delivered: u64,
    /// Refused: by the broker, or before queueing (too large).
    pub failed: u64,
    /// Timed out or purged while in flight: may or may not be in the topic.
    pub unknown: u64,
    /// Purged from the local queue: never left this process.
    pub not_sent: u64,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.produced += other.produced;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.unknown += other.unknown;
        self.not_sent += other.not_sent;
    }

    /// The counts that arrived since `before`.
    pub fn since(&self, before: &Totals) -> Totals {
        Totals {
            produced: 0,
            delivered: self.delivered - before.delivered,
            failed: self.failed - before.failed,
            unknown: self.unknown - before.unknown,
            not_sent: self.not_sent - before.not_sent,
        }
    }

    /// Alerts not delivered for sure.
    pub fn undelivered(&self) -> u64 {
        self.failed + self.unknown + self.not_sent
    }
}

/// alertstream_alerts_sent_total and _failed_total{fate}, by fate; bytes out.
struct Meters {
    fates: [Counter; 4],
    bytes: Counter,
}

impl Meters {
    fn new(topic: &str) -> Self {
        let m = metrics::get();
        let failed = |fate| {
            m.failed
                .get_or_create(&metrics::labels(&[("topic", topic), ("fate", fate)]))
                .clone()
        };
        let sent = m
            .sent
            .get_or_create(&metrics::labels(&[("topic", topic)]))
            .clone();
        let bytes = m
            .bytes
            .get_or_create(&metrics::labels(&[("topic", topic), ("direction", "out")]))
            .clone();
        Self {
            fates: [
                sent,
                failed("failed"),
                failed("unknown"),
                failed("not_sent"),
            ],
            bytes,
        }
    }
}

/// The producer's context: counts acknowledgements as librdkafka reports
/// them, and keeps the client's log.
pub struct Delivery {
    pub log: ClientLog,
    counts: [AtomicU64; 4],
    first_error: Mutex<Option<String>>,
    pub bar: ProgressBar,
    meters: Option<Meters>,
}

impl Delivery {
    /// Counts deliveries to `topic` in its metrics and on `bar`.
    pub fn metered(bar: ProgressBar, topic: &str) -> Self {
        Self {
            bar,
            meters: Some(Meters::new(topic)),
            ..Self::unmetered()
        }
    }

    /// Counts deliveries without metrics of their own (filter: its routes
    /// count what they route).
    pub fn unmetered() -> Self {
        Self {
            log: ClientLog::default(),
            counts: Default::default(),
            first_error: Mutex::new(None),
            bar: ProgressBar::hidden(),
            meters: None,
        }
    }

    fn settle(&self, fate: Fate, error: &str) {
        self.counts[fate as usize].fetch_add(1, Ordering::SeqCst);
        if let Some(meters) = &self.meters {
            meters.fates[fate as usize].inc();
        }
        if fate == Fate::Delivered {
            self.bar.inc(1);
        } else if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    pub fn totals(&self) -> Totals {
        let count = |fate: Fate| self.counts[fate as usize].load(Ordering::SeqCst);
        Totals {
            produced: 0,
            delivered: count(Fate::Delivered),
            failed: count(Fate::Failed),
            unknown: count(Fate::Unknown),
            not_sent: count(Fate::NotSent),
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
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
                if let Some(meters) = &self.meters {
                    meters.bytes.inc_by(message.payload_len() as u64);
                }
                String::new()
            }
            Err((error, _)) => error.to_string(),
        };
        self.settle(Fate::of(result), &error);
    }
}

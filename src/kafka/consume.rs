//! The one consume loop every consuming command plugs into. A command
//! supplies a [`Handler`]; the loop polls, serves end-of-partition events
//! (`-e`), notices lost brokers (`--broker-timeout`), stops on signals and
//! `--max-messages`, and stores a message's offset for commit only after the
//! handler has succeeded with it. A handler error stops the loop with that
//! message's offset unstored, so the same group reads it again next time.

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::admin;
use super::consumer::{self, ConsumerOptions, EndTracker, ErrorLog, Stream};
use super::lag::OwnLag;
use super::{ClientLog, KafkaSettings};
use crate::shutdown::Shutdown;

/// What a consuming command does with the stream.
pub trait Handler {
    /// Handles one message. `Ok`: its offset may be committed. `Err`: the
    /// loop stops and the command fails; the offset is not stored. Bad
    /// messages that are reported and skipped return `Ok`.
    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()>;

    /// A partition has reached its end; `next` is the offset that comes next.
    fn end_of_partition(&mut self, _partition: i32, _next: Option<i64>) -> Result<()> {
        Ok(())
    }

    /// Called after every poll (at least every 100 ms), e.g. for status lines.
    fn tick(&mut self, _consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        Ok(())
    }

    /// Whether the handler keeps messages (in files not yet complete) after
    /// `message` returns: then offsets are stored only as it reports them
    /// safe through [`Handler::safe_offsets`].
    fn holds_messages(&self) -> bool {
        false
    }

    /// (partition, next offset) made safe since the last call.
    fn safe_offsets(&mut self) -> Vec<(i32, i64)> {
        Vec::new()
    }

    /// A rebalance took these partitions away: what is held for them will be
    /// read again by their new owner, so it is dropped here.
    fn revoked(&mut self, _consumer: &BaseConsumer<ClientLog>, _partitions: &[i32]) {}

    /// Whether its messages count as alerts consumed (print, record, filter: yes).
    fn counts_alerts(&self) -> bool {
        true
    }

    /// The stream ends (end, signal, `--max-messages`): make safe what is held.
    fn finish(&mut self, _consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        Ok(())
    }
}

/// Runs `handler` over the stream until the end (`-e`), `--max-messages`,
/// a signal, a handler error or lost brokers; then commits and leaves.
pub fn run(
    stream: Stream,
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    shutdown: &Shutdown,
    handler: &mut impl Handler,
) -> Result<()> {
    let mut result = poll_until_done(&stream, kafka, options, shutdown, handler);
    if result.is_ok() {
        result = handler.finish(&stream.consumer);
        store_safe(&stream, handler);
    }
    let brokers_lost = stream.consumer.context().all_down_for().is_some() && result.is_err();
    if brokers_lost {
        consumer::abandon(stream.consumer);
    } else {
        consumer::close(stream.consumer, stream.in_group);
    }
    match result {
        Err(e) if is_broken_pipe(&e) => {
            tracing::debug!("stdout closed; stopped");
            Ok(())
        }
        other => other,
    }
}

fn poll_until_done(
    stream: &Stream,
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    shutdown: &Shutdown,
    handler: &mut impl Handler,
) -> Result<()> {
    let consumer = &stream.consumer;
    let mut state = State {
        ends: EndTracker::default(),
        finished: HashSet::new(),
        handled: 0,
        counters: Counters::new(&stream.topic, handler.counts_alerts()),
        lag: handler
            .counts_alerts()
            .then(|| own_lag(stream, kafka))
            .flatten(),
    };
    let mut errors = ErrorLog::default();
    let mut first_assignment = stream
        .in_group
        .then(|| FirstAssignment::new(Instant::now(), stream.topic_existed));
    while !shutdown.requested() {
        first_assignment = first_assignment.and_then(|wait| wait.check(stream, Instant::now()));
        let done = match consumer.poll(Duration::from_millis(100)) {
            None => {
                consumer::check_brokers(consumer, kafka, options.broker_timeout)?;
                false
            }
            Some(Ok(message)) => {
                errors.clear();
                consumer.context().brokers_answered();
                state.take_assignment(consumer);
                state.message(stream, options, handler, &message)?
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                consumer.context().brokers_answered();
                state.end(stream, options, handler, partition)?
            }
            Some(Err(error)) => {
                errors.report(consumer, &stream.topic, &error);
                false
            }
        };
        let revoked = consumer.context().take_revoked();
        if !revoked.is_empty() {
            handler.revoked(consumer, &revoked);
            if let Some(lag) = &state.lag {
                lag.forget(&revoked);
            }
        }
        store_safe(stream, handler);
        if done || state.window_closed(consumer, options) {
            break;
        }
        handler.tick(consumer)?;
    }
    if options.until.is_some() && state.handled == 0 {
        tracing::info!(
            "no messages on {} in the window: nothing before --until{}",
            stream.topic,
            options
                .from
                .map_or(String::new(), |_| " from --from on".to_string())
        );
    }
    Ok(())
}

/// How long a group's first assignment may take before the wait is explained.
const ASSIGNMENT_NOTICE: Duration = Duration::from_secs(5);

/// The wait for a group's first partitions. Overdue, it is explained once: a
/// member killed without leaving keeps its partitions until its session
/// times out, and until then the consumer would print nothing and look hung.
/// A topic that does not exist yet is waited for apart (and said so), and
/// one that has just appeared gets a wait of its own: the consumer learns of
/// it at its next metadata refresh, and joins then.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FirstAssignment {
    since: Instant,
    /// Whether the topic existed at the last look.
    topic_seen: bool,
}

/// What a look at the wait finds.
#[derive(Debug, PartialEq)]
enum Look {
    /// Keep waiting (from a new start, perhaps).
    Wait(FirstAssignment),
    /// Overdue with the topic there since the last look: say why.
    Explain,
    /// The partitions came.
    Done,
}

impl FirstAssignment {
    fn new(now: Instant, topic_seen: bool) -> Self {
        Self {
            since: now,
            topic_seen,
        }
    }

    /// The wait at `now`; `topic_exists` is asked only once it is overdue.
    fn look(self, assigned: bool, now: Instant, topic_exists: impl FnOnce() -> bool) -> Look {
        if assigned {
            return Look::Done;
        }
        if now.duration_since(self.since) < ASSIGNMENT_NOTICE {
            return Look::Wait(self);
        }
        match (topic_exists(), self.topic_seen) {
            (true, true) => Look::Explain,
            (exists, _) => Look::Wait(Self::new(now, exists)),
        }
    }

    /// Looks at the stream's wait; `None` once there is nothing more to say.
    fn check(self, stream: &Stream, now: Instant) -> Option<Self> {
        let assigned = stream.consumer.context().ever_assigned();
        let topic_exists = || {
            stream
                .consumer
                .fetch_metadata(Some(&stream.topic), Duration::from_secs(1))
                .ok()
                .and_then(|metadata| admin::partition_count(&metadata, &stream.topic))
                .is_some()
        };
        match self.look(assigned, now, topic_exists) {
            Look::Wait(wait) => Some(wait),
            Look::Done => None,
            Look::Explain => {
                tracing::info!(
                    "no partitions of {} from group {} after {} s: the group is rebalancing, \
                     and a member that stopped without leaving (killed) keeps its partitions \
                     until its session times out (its session.timeout.ms, 45 s by default)",
                    stream.topic,
                    stream.group,
                    ASSIGNMENT_NOTICE.as_secs()
                );
                None
            }
        }
    }
}

/// Where the loop stands.
struct State {
    ends: EndTracker,
    /// Partitions past `--until`.
    finished: HashSet<i32>,
    handled: u64,
    counters: Counters,
    /// With --metrics: the command's own lag.
    lag: Option<OwnLag>,
}

/// The own-lag reporter, when metrics are served (a client that cannot be
/// made is said, not fatal: the command's work does not depend on it).
fn own_lag(stream: &Stream, kafka: &KafkaSettings) -> Option<OwnLag> {
    if !crate::metrics::serving() {
        return None;
    }
    OwnLag::start(kafka, &stream.topic, &stream.group)
        .inspect_err(|e| tracing::warn!("no alertstream_consumer_lag of its own: {e:#}"))
        .ok()
}

/// Metric handles taken once, so that counting costs an atomic add.
struct Counters {
    consumed: Option<prometheus_client::metrics::counter::Counter>,
    bytes: prometheus_client::metrics::counter::Counter,
    latency: prometheus_client::metrics::histogram::Histogram,
}

impl Counters {
    fn new(topic: &str, alerts: bool) -> Self {
        let m = crate::metrics::get();
        let topic_label = crate::metrics::labels(&[("topic", topic)]);
        Self {
            consumed: alerts.then(|| m.consumed.get_or_create(&topic_label).clone()),
            bytes: m
                .bytes
                .get_or_create(&crate::metrics::labels(&[
                    ("topic", topic),
                    ("direction", "in"),
                ]))
                .clone(),
            latency: m.latency.get_or_create(&topic_label).clone(),
        }
    }

    fn handled(&self, message: &BorrowedMessage<'_>) {
        if let Some(consumed) = &self.consumed {
            consumed.inc();
        }
        self.bytes.inc_by(message.payload_len() as u64);
        if let Some(at) = message.timestamp().to_millis() {
            let seconds = (crate::time::now_ms() - at) as f64 / 1000.0;
            self.latency.observe(seconds.max(0.0));
        }
    }
}

impl State {
    /// One message; `true` when the loop is done.
    fn message(
        &mut self,
        stream: &Stream,
        options: &ConsumerOptions,
        handler: &mut impl Handler,
        message: &BorrowedMessage<'_>,
    ) -> Result<bool> {
        let consumer = &stream.consumer;
        let partition = message.partition();
        self.ends.message(partition);
        if let (Some(until), Some(at)) = (options.until, message.timestamp().to_millis()) {
            if at >= until {
                self.finish(stream, partition);
                return Ok(self.all_finished(consumer));
            }
        }
        // Its position is this message until the handler is done with it
        // (which may block: a stalled stdout, a slow disk).
        if let Some(lag) = &self.lag {
            lag.handled(partition, message.offset());
        }
        handler.message(message)?;
        self.counters.handled(message);
        if let Some(lag) = &self.lag {
            lag.handled(partition, message.offset() + 1);
        }
        if stream.in_group && !handler.holds_messages() {
            if let Err(e) = consumer.store_offset_from_message(message) {
                tracing::warn!("cannot store offset {}: {e}", message.offset());
            }
        }
        self.handled += 1;
        Ok(options.max_messages.is_some_and(|max| self.handled >= max))
    }

    /// A partition's end; `true` when the loop is done.
    fn end(
        &mut self,
        stream: &Stream,
        options: &ConsumerOptions,
        handler: &mut impl Handler,
        partition: i32,
    ) -> Result<bool> {
        let consumer = &stream.consumer;
        self.ends.end(partition);
        // At the end, the next offset is the high watermark.
        let next = position(consumer, &stream.topic, partition).or_else(|| {
            consumer
                .fetch_watermarks(&stream.topic, partition, Duration::from_secs(1))
                .ok()
                .map(|(_, high)| high)
        });
        handler.end_of_partition(partition, next)?;
        if let (Some(lag), Some(next)) = (&self.lag, next) {
            lag.handled(partition, next);
        }
        Ok(options.exit_at_end && self.ends.all_at_end(consumer))
    }

    /// Stops reading a partition that has reached `--until`.
    fn finish(&mut self, stream: &Stream, partition: i32) {
        if self.finished.insert(partition) {
            let mut list = TopicPartitionList::new();
            list.add_partition(&stream.topic, partition);
            let _ = stream.consumer.pause(&list);
            tracing::debug!("{} partition {partition}: reached --until", stream.topic);
        }
    }

    /// Once `--until` has passed, a partition at its end is finished too:
    /// nothing earlier can still arrive. `true` when every partition is.
    fn window_closed(
        &mut self,
        consumer: &BaseConsumer<ClientLog>,
        options: &ConsumerOptions,
    ) -> bool {
        match options.until {
            Some(until) if until <= crate::time::now_ms() => {
                self.finished.extend(self.ends.partitions());
                self.all_finished(consumer)
            }
            _ => false,
        }
    }

    /// Partitions a rebalance assigned: their lag counts from the group's
    /// committed offsets until a message of theirs is handled.
    fn take_assignment(&mut self, consumer: &BaseConsumer<ClientLog>) {
        let assigned = consumer.context().take_assigned();
        if let (Some(lag), Some(partitions)) = (&self.lag, assigned) {
            lag.assigned(&partitions);
        }
    }

    fn all_finished(&self, consumer: &BaseConsumer<ClientLog>) -> bool {
        let Ok(assignment) = consumer.assignment() else {
            return false;
        };
        let parts = assignment.elements();
        !parts.is_empty() && parts.iter().all(|p| self.finished.contains(&p.partition()))
    }
}

/// Stores, for the next commit, the offsets the handler reports safe.
fn store_safe(stream: &Stream, handler: &mut impl Handler) {
    let safe = handler.safe_offsets();
    if safe.is_empty() || !stream.in_group {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, next) in safe {
        let _ = list.add_partition_offset(&stream.topic, partition, Offset::Offset(next));
    }
    if let Err(e) = stream.consumer.store_offsets(&list) {
        tracing::warn!("cannot store offsets {list:?}: {e}");
    }
}

/// The (low, high) watermarks of every assigned partition, asked of the
/// brokers; `None` before an assignment or when one does not answer.
pub fn ends(consumer: &BaseConsumer<ClientLog>, topic: &str) -> Option<BTreeMap<i32, (i64, i64)>> {
    let assignment = consumer.assignment().ok()?;
    let mut ends = BTreeMap::new();
    for element in assignment.elements() {
        let marks = consumer
            .fetch_watermarks(topic, element.partition(), Duration::from_millis(500))
            .ok()?;
        ends.insert(element.partition(), marks);
    }
    (!ends.is_empty()).then_some(ends)
}

/// Messages left before the high watermarks of `ends`, from the consumer's
/// own positions (no round trip to the brokers); a partition not read yet
/// counts from its low watermark.
pub fn left(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
    ends: &BTreeMap<i32, (i64, i64)>,
) -> i64 {
    let positions = consumer.position().ok();
    ends.iter()
        .map(|(partition, (low, high))| {
            let at = positions
                .as_ref()
                .and_then(|p| p.find_partition(topic, *partition))
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            (high - at.unwrap_or(*low)).max(0)
        })
        .sum()
}

/// The consumer's position in a partition (the next offset it will read).
pub fn position(consumer: &BaseConsumer<ClientLog>, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn an_overdue_first_assignment_is_explained_only_with_its_topic_there_since_the_last_look() {
        let start = Instant::now();
        let wait = FirstAssignment::new(start, true);
        let never = || -> bool { panic!("asked before the wait is overdue") };
        assert_eq!(wait.look(false, after(start, 4), never), Look::Wait(wait));
        assert_eq!(wait.look(true, after(start, 9), never), Look::Done);
        assert_eq!(wait.look(false, after(start, 5), || true), Look::Explain);
        // A topic missing at the look: the wait starts over, not said.
        let missing = wait.look(false, after(start, 5), || false);
        let restarted = FirstAssignment::new(after(start, 5), false);
        assert_eq!(missing, Look::Wait(restarted));
        // Created since: another wait of its own before anything is said.
        let appeared = restarted.look(false, after(start, 10), || true);
        let fresh = FirstAssignment::new(after(start, 10), true);
        assert_eq!(appeared, Look::Wait(fresh));
        assert_eq!(fresh.look(false, after(start, 15), || true), Look::Explain);
        // A topic missing when the stream opened is never blamed on a session at once.
        let opened_without = FirstAssignment::new(start, false);
        assert!(matches!(
            opened_without.look(false, after(start, 5), || true),
            Look::Wait(_)
        ));
    }
}

//! Making consumers (in a group, or reading every partition without one),
//! reaching the brokers, and knowing when every partition is at its end (`-e`).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{admin, config::creation_error, ClientLog, KafkaSettings};
use crate::cli::ConsumerArgs;
use crate::exit::bad_input;
use crate::shutdown::Shutdown;

/// Validated options every consuming command shares.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub exit_at_end: bool,
    pub max_messages: Option<u64>,
    pub wait_for_topic: bool,
    /// Give up when every broker has been unreachable this long.
    pub broker_timeout: Duration,
    /// `--from`, epoch milliseconds.
    pub from: Option<i64>,
    /// `--until`, epoch milliseconds.
    pub until: Option<i64>,
}

impl ConsumerOptions {
    /// A time window: read outside any group, committing nothing.
    pub fn windowed(&self) -> bool {
        self.from.is_some() || self.until.is_some()
    }

    pub fn from_args(args: ConsumerArgs) -> Result<Self> {
        if !(args.broker_timeout.is_finite() && args.broker_timeout > 0.0) {
            return Err(bad_input(
                "--broker-timeout must be a positive number of seconds",
            ));
        }
        if args.max_messages == Some(0) {
            return Err(bad_input("--max-messages must be at least 1"));
        }
        let from = args
            .from
            .as_deref()
            .map(|t| crate::time::parse("--from", t))
            .transpose()?;
        let until = args
            .until
            .as_deref()
            .map(|t| crate::time::parse("--until", t))
            .transpose()?;
        if let (Some(from), Some(until)) = (from, until) {
            if from >= until {
                return Err(bad_input(format!(
                    "--from {} is not before --until {}",
                    crate::time::rfc3339_utc(from),
                    crate::time::rfc3339_utc(until)
                )));
            }
        }
        Ok(Self {
            from,
            until,
            exit_at_end: args.exit_at_end,
            max_messages: args.max_messages,
            wait_for_topic: !args.no_wait,
            broker_timeout: Duration::from_secs_f64(args.broker_timeout),
        })
    }
}

/// `--group`, or the original's default: the host name (in a container, its id).
pub fn group_or_default(group: Option<String>) -> Result<String> {
    let group = group.unwrap_or_else(default_group);
    if group.trim().is_empty() {
        return Err(bad_input("--group is empty"));
    }
    Ok(group)
}

fn default_group() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "alertstream".to_string())
}

/// Consumer settings every consuming command starts from; `-X` overrides any.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    // Notice a topic created after we subscribed within seconds.
    ("topic.metadata.refresh.interval.ms", "5000"),
    // Offsets are stored by the consume loop once a handler has succeeded.
    ("enable.auto.offset.store", "false"),
    // An operator waits on `print -e`: at the end of a partition the broker
    // answers an empty fetch after this long (librdkafka's 500 ms default
    // added half a second to every run).
    ("fetch.wait.max.ms", "100"),
    // When a handler falls a little behind the fetcher (record and filter
    // move whole alerts), librdkafka pauses fetching for this long once its
    // queue is full: its 1000 ms default stalled a 10,000-alert visit for a
    // second. Resume at once instead.
    ("fetch.queue.backoff.ms", "10"),
];

/// What the brokers said of the topic when the consumer was made.
struct Found {
    /// Its partition count, if it exists (with partitions) yet.
    partitions: Option<usize>,
    /// The brokers said it does not exist.
    unknown: bool,
}

/// Creates a consumer and checks that the brokers answer; returns it with
/// what they said of the topic.
fn create(
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    topic: &str,
    settings: &[(&str, &str)],
) -> Result<(BaseConsumer<ClientLog>, Found)> {
    let mut all = CONSUMER_DEFAULTS.to_vec();
    all.extend_from_slice(settings);
    if options.exit_at_end || options.until.is_some() {
        all.push(("enable.partition.eof", "true"));
    }
    let consumer: BaseConsumer<ClientLog> = kafka
        .client_config(&all)
        .create_with_context(ClientLog::default())
        .map_err(creation_error)?;
    let serve = || {
        let _ = consumer.poll(Duration::ZERO);
    };
    let metadata = admin::reach(
        consumer.client(),
        consumer.context(),
        serve,
        kafka.brokers(),
        topic,
        options.broker_timeout.min(admin::REACH_TIMEOUT),
    )?;
    let partitions = admin::partition_count(&metadata, topic);
    if partitions.is_none() && !options.wait_for_topic {
        return Err(bad_input(format!(
            "topic {topic} does not exist on {} (check the name, or drop --no-wait to wait for it)",
            kafka.brokers()
        )));
    }
    let unknown = admin::topic_unknown(&metadata, topic);
    Ok((
        consumer,
        Found {
            partitions,
            unknown,
        },
    ))
}

fn waiting_for(topic: &str, kafka: &KafkaSettings) {
    tracing::warn!(
        "topic {topic} does not exist on {} yet; waiting for it (Ctrl-C to stop)",
        kafka.brokers()
    );
}

/// A consumer in `group`, subscribed to `topic`: partitions are shared with
/// the group's other members and offsets committed for it. Also whether the
/// topic exists yet (else the consumer waits for it, and says so).
pub fn subscribe(
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    topic: &str,
    group: &str,
    settings: &[(&str, &str)],
) -> Result<(BaseConsumer<ClientLog>, bool)> {
    let mut all = vec![
        ("group.id", group),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "1000"),
    ];
    all.extend_from_slice(settings);
    let (consumer, found) = create(kafka, options, topic, &all)?;
    if found.partitions.is_none() {
        waiting_for(topic, kafka);
    }
    consumer.subscribe(&[topic])?;
    tracing::info!("consuming {topic} in group {group}");
    Ok((consumer, found.partitions.is_some()))
}

/// Where a group-less reader starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
    /// The first message with a broker timestamp at or after these epoch milliseconds.
    Time(i64),
}

/// A consumer outside any group reading every partition of `topic` from
/// `start`: it never joins a group and never commits.
pub fn assign_all(
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    topic: &str,
    start: Start,
    settings: &[(&str, &str)],
    shutdown: &Shutdown,
) -> Result<Option<BaseConsumer<ClientLog>>> {
    // librdkafka's assign() needs a group id, though it never joins: a
    // private one, never committed to.
    let private_group = format!(
        "alertstream-private-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let mut all = vec![
        ("group.id", private_group.as_str()),
        ("enable.auto.commit", "false"),
    ];
    all.extend_from_slice(settings);
    let (consumer, found) = create(kafka, options, topic, &all)?;
    let (mut partitions, mut start) = (found.partitions, start);
    if partitions.is_none() {
        waiting_for(topic, kafka);
        partitions = admin::await_topic(consumer.client(), topic, shutdown);
        if partitions.is_none() {
            return Ok(None);
        }
        // A topic made after this reader started holds only what is new to
        // it: from its end, the first alerts sent into it would be missed.
        if start == Start::End && found.unknown {
            start = Start::Beginning;
        }
    }
    let mut list = TopicPartitionList::new();
    let offset = match start {
        Start::Beginning => Offset::Beginning,
        Start::End => Offset::End,
        Start::Time(ms) => Offset::Offset(ms),
    };
    for partition in 0..partitions.unwrap_or(0) as i32 {
        list.add_partition_offset(topic, partition, offset)?;
    }
    if let Start::Time(ms) = start {
        // Offsets for times: -1 (the end) where no message is that late.
        list = consumer
            .offsets_for_times(list, Duration::from_secs(30))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot look up offsets for {} on {}: {e}",
                    crate::time::rfc3339_utc(ms),
                    kafka.brokers()
                )
            })?;
    }
    consumer.assign(&list)?;
    tracing::info!(
        "reading {topic} ({} partition(s)) outside any group",
        list.count()
    );
    Ok(Some(consumer))
}

/// A consumer ready to read, and whether it belongs to a group (and so
/// stores offsets for commit).
pub struct Stream {
    pub consumer: BaseConsumer<ClientLog>,
    pub topic: String,
    pub in_group: bool,
    /// The group read in, or "" outside any (the own-lag metric's label).
    pub group: String,
    /// Whether the topic existed when the stream was opened.
    pub topic_existed: bool,
}

/// The stream a consuming command reads: a time window outside any group,
/// else `group` (subscribed, committing), else every partition from its end.
pub fn open(
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    topic: &str,
    group: Option<&str>,
    settings: &[(&str, &str)],
    shutdown: &Shutdown,
) -> Result<Option<Stream>> {
    let in_group = group.is_some() && !options.windowed();
    let opened = if let (true, Some(group)) = (in_group, group) {
        Some(subscribe(kafka, options, topic, group, settings)?)
    } else {
        let start = match (options.from, group) {
            (Some(ms), _) => Start::Time(ms),
            (None, Some(_)) => Start::Beginning,
            (None, None) => Start::End,
        };
        // It waits for the topic before it returns.
        assign_all(kafka, options, topic, start, settings, shutdown)?.map(|c| (c, true))
    };
    Ok(opened.map(|(consumer, topic_existed)| Stream {
        consumer,
        topic: topic.to_string(),
        topic_existed,
        in_group,
        group: match (in_group, group) {
            (true, Some(group)) => group.to_string(),
            _ => String::new(),
        },
    }))
}

/// Fails once every broker has been down for longer than `timeout` and a
/// last metadata request confirms it, so that a consumer never hangs forever.
pub fn check_brokers(
    consumer: &BaseConsumer<ClientLog>,
    kafka: &KafkaSettings,
    timeout: Duration,
) -> Result<()> {
    let log = consumer.context();
    match log.all_down_for() {
        Some(down) if down > timeout => match consumer.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(_) => {
                log.brokers_answered();
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "lost Kafka at {}: every broker unreachable for {:.0}s ({}); giving up (--broker-timeout)",
                kafka.brokers(),
                down.as_secs_f64(),
                log.last_error().unwrap_or_else(|| e.to_string())
            )),
        },
        _ => Ok(()),
    }
}

/// Tracks which assigned partitions have reached their end.
#[derive(Debug, Default)]
pub struct EndTracker {
    at_end: HashSet<i32>,
}

impl EndTracker {
    pub fn message(&mut self, partition: i32) {
        self.at_end.remove(&partition);
    }

    pub fn end(&mut self, partition: i32) {
        self.at_end.insert(partition);
    }

    /// The partitions at their end now.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.at_end.iter().copied()
    }

    /// Whether the consumer has partitions and every one of them is at its end.
    pub fn all_at_end(&self, consumer: &BaseConsumer<ClientLog>) -> bool {
        let Ok(assignment) = consumer.assignment() else {
            return false;
        };
        let parts = assignment.elements();
        !parts.is_empty() && parts.iter().all(|p| self.at_end.contains(&p.partition()))
    }
}

/// Logs a consumer error, once per kind while it repeats.
#[derive(Debug, Default)]
pub struct ErrorLog {
    last: Option<String>,
}

impl ErrorLog {
    pub fn report(&mut self, consumer: &BaseConsumer<ClientLog>, topic: &str, error: &KafkaError) {
        if let KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown) = error {
            consumer.context().all_down();
        }
        let text = match error {
            KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                format!("topic {topic} does not exist yet; waiting for it")
            }
            other => format!("consumer error on {topic}: {other}"),
        };
        if self.last.as_ref() != Some(&text) {
            // The wait for a missing topic was said when the consumer started.
            if matches!(
                error,
                KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
            ) {
                tracing::debug!("{text}");
            } else {
                tracing::warn!("{text}");
            }
            self.last = Some(text);
        }
    }

    pub fn clear(&mut self) {
        self.last = None;
    }
}

/// Lets go of a consumer whose brokers are gone: a graceful close would wait
/// for them (commit, leave the group) for the whole session timeout. The
/// process is about to exit; what was not committed is read again next time.
pub fn abandon(consumer: BaseConsumer<ClientLog>) {
    std::mem::forget(consumer);
}

/// Commits what was stored (in a group) and leaves.
pub fn close(consumer: BaseConsumer<ClientLog>, in_group: bool) {
    if in_group {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::debug!("offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!("final offset commit failed: {e}"),
        }
    }
    // Closing leaves the group, serving the rebalance that causes. rdkafka's
    // drop would do it too, in polls of 100 ms that each wait their whole
    // time; here it ends within a millisecond of the close.
    if in_group && consumer.close_queue().is_ok() {
        while !consumer.closed() {
            let _ = consumer.poll(Duration::from_millis(1));
        }
    }
    drop(consumer);
}

//! Reaching the cluster and creating topics.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::{Metadata, MetadataTopic};

use super::{config::creation_error, ClientLog, KafkaSettings};
use crate::exit::bad_input;

/// How long a command waits for the brokers to answer at all before giving up.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches metadata for `topic`, failing with a message that names the
/// brokers (and why they could not be reached) when nothing answers in time.
/// `serve` polls the client once: librdkafka queues its log lines and errors
/// (a refused connection, a failed authentication) until then.
pub fn reach<C: ClientContext>(
    client: &Client<C>,
    log: &ClientLog,
    serve: impl Fn(),
    brokers: &str,
    topic: &str,
    within: Duration,
) -> Result<Metadata> {
    let deadline = Instant::now() + within;
    loop {
        // Short asks, serving the client's events between them, so that a
        // refused authentication ends the wait at once instead of at the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        match client.fetch_metadata(Some(topic), left.min(REACH_SLICE)) {
            Ok(metadata) => {
                log.brokers_answered();
                return Ok(metadata);
            }
            Err(error) => {
                serve();
                if is_refused(log) || Instant::now() >= deadline {
                    return Err(unreachable(log, brokers, &error, within));
                }
            }
        }
    }
}

/// How long one metadata request of [`reach`] waits.
const REACH_SLICE: Duration = Duration::from_millis(250);

fn is_refused(log: &ClientLog) -> bool {
    log.last_error().is_some_and(|why| is_authentication(&why))
}

fn is_authentication(why: &str) -> bool {
    why.contains("uthentication") || why.contains("SASL") || why.contains("SSL handshake")
}

/// The error for brokers that did not answer within `within`.
pub fn unreachable(
    log: &ClientLog,
    brokers: &str,
    error: &KafkaError,
    within: Duration,
) -> anyhow::Error {
    let why = log.last_error().unwrap_or_else(|| error.to_string());
    if is_authentication(&why) {
        return anyhow!(
            "authentication with Kafka at {brokers} failed: {why}. Check security.protocol, \
             sasl.mechanism, sasl.username and sasl.password (-X or --kafka-config), and ssl.ca.location"
        );
    }
    anyhow!(
        "cannot reach Kafka at {brokers} within {:.0}s: {why}. Is a broker running there? \
         (-b sets the address; scripts/kafka start runs a local one)",
        within.as_secs_f64()
    )
}

/// Kafka topic names: 1-249 of `[a-zA-Z0-9._-]`.
pub fn check_topic(topic: &str) -> Result<()> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(bad_input(format!(
            "invalid topic name {topic:?}: use 1 to 249 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Waits until `topic` exists, asking for its metadata every half second
/// (Kafka announces no topic's creation); its partition count, or `None`
/// once a stop is requested.
pub fn await_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    shutdown: &crate::shutdown::Shutdown,
) -> Option<usize> {
    let every = Duration::from_millis(500);
    poll_metadata(
        client,
        topic,
        every,
        || shutdown.requested(),
        |m| partition_count(m, topic),
    )
}

/// Partition count of `topic`, or `None` if the cluster does not know it.
pub fn partition_count(metadata: &Metadata, topic: &str) -> Option<usize> {
    known_topic(metadata, topic)
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
}

/// Whether the cluster says `topic` does not exist, as opposed to knowing it
/// without partitions or leaders yet, or refusing to say.
pub fn topic_unknown(metadata: &Metadata, topic: &str) -> bool {
    match metadata.topics().iter().find(|t| t.name() == topic) {
        None => true,
        Some(t) => t.error().is_some_and(|e| {
            RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition
        }),
    }
}

/// `topic` in `metadata`, unless it is missing or carries an error.
fn known_topic<'m>(metadata: &'m Metadata, topic: &str) -> Option<&'m MetadataTopic> {
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
}

/// Asks for `topic`'s metadata every `every` until `answer` finds what is
/// awaited in it, or `give_up` says to stop waiting (then `None`).
fn poll_metadata<C: ClientContext, T>(
    client: &Client<C>,
    topic: &str,
    every: Duration,
    give_up: impl Fn() -> bool,
    answer: impl Fn(&Metadata) -> Option<T>,
) -> Option<T> {
    loop {
        if give_up() {
            return None;
        }
        let found = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| answer(&m));
        if found.is_some() {
            return found;
        }
        std::thread::sleep(every);
    }
}

/// Creates `topic` unless `metadata` shows it; a concurrent creation by
/// someone else is fine. Whether this call created it.
pub async fn ensure_topic(
    settings: &KafkaSettings,
    metadata: &Metadata,
    topic: &str,
    partitions: Option<i32>,
    replication: Option<i32>,
) -> Result<bool> {
    if let Some(n) = partition_count(metadata, topic) {
        match partitions {
            Some(asked) if asked as usize != n => tracing::warn!(
                "topic {topic} exists with {n} partition(s), not the {asked} asked for: \
                 partitions are set only when a topic is created"
            ),
            _ => tracing::debug!("topic {topic} exists with {n} partition(s)"),
        }
        return Ok(false);
    }
    let partitions = partitions.unwrap_or(1);
    let admin = Admin(Some(
        settings
            .client_config(&[])
            .create_with_context(ClientLog::default())
            .map_err(creation_error)?,
    ));
    let admin = admin.client();
    let brokers = settings.brokers();
    // -1 asks for the cluster's default.replication.factor (KIP-464).
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication.unwrap_or(-1)),
    );
    let replication = replication.map_or("the cluster's default replication factor".into(), |r| {
        format!("replication factor {r}")
    });
    let options = AdminOptions::new().operation_timeout(Some(REACH_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| unreachable(admin.inner().context(), brokers, &e, REACH_TIMEOUT))?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!("created topic {name} ({partitions} partition(s), {replication})");
                return Ok(true);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            // What was asked for does not fit the cluster: bad usage (exit 2).
            Err((
                name,
                code @ (RDKafkaErrorCode::InvalidReplicationFactor
                | RDKafkaErrorCode::InvalidPartitions),
            )) => {
                return Err(bad_input(format!(
                    "cannot create topic {name} on {brokers}: {code} \
                     (check --partitions and --replication-factor against the cluster size)"
                )))
            }
            Err((name, code)) => {
                return Err(anyhow!("cannot create topic {name} on {brokers}: {code}"))
            }
        }
    }
    Ok(false)
}

/// Waits, up to `limit`, until `client`'s metadata shows every partition of
/// a topic just created with a leader. Until then librdkafka's partitioner
/// puts keyless messages only on the partitions it knows a leader of: the
/// first visit to a new topic went nearly all to partition 0. Kafka
/// announces no election, so the metadata is asked for again. Bounded like
/// [`reach`], and like it not cut short by Ctrl-C.
pub fn await_leaders<C: ClientContext>(client: &Client<C>, topic: &str, limit: Duration) {
    let started = Instant::now();
    let every = Duration::from_millis(20);
    let led = poll_metadata(
        client,
        topic,
        every,
        || started.elapsed() >= limit,
        |m| every_partition_led(m, topic).then_some(()),
    );
    if led.is_none() {
        tracing::debug!("{topic}: not every partition has a leader yet; sending anyway");
    }
}

fn every_partition_led(metadata: &Metadata, topic: &str) -> bool {
    known_topic(metadata, topic).is_some_and(|t| {
        !t.partitions().is_empty()
            && t.partitions()
                .iter()
                .all(|p| p.leader() >= 0 && p.error().is_none())
    })
}

/// An admin client that is dropped off the caller's path: rdkafka's drop
/// joins a polling thread that wakes every 100 ms, which would otherwise
/// add up to 100 ms to every command that creates a topic.
struct Admin(Option<AdminClient<ClientLog>>);

impl Admin {
    fn client(&self) -> &AdminClient<ClientLog> {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(admin) = self.0.take() {
            std::thread::spawn(move || drop(admin));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_checked() {
        assert!(check_topic("my-stream.v1_2").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert!(check_topic(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! What `print` and `monitor` share: joining a group, reaching the brokers,
//! and knowing when every assigned partition is at its end (`-e`).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{admin, config::creation_error, ClientLog, KafkaSettings};
use crate::cli::ConsumerArgs;
use crate::exit::bad_input;

/// Validated consumer options common to `print` and `monitor`.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub group: String,
    pub exit_at_end: bool,
    pub max_messages: Option<u64>,
    pub wait_for_topic: bool,
    /// Give up when every broker has been unreachable this long.
    pub broker_timeout: Duration,
}

impl ConsumerOptions {
    pub fn from_args(args: ConsumerArgs) -> Result<Self> {
        let group = args.group.unwrap_or_else(default_group);
        if group.trim().is_empty() {
            return Err(bad_input("--group is empty"));
        }
        if !(args.broker_timeout.is_finite() && args.broker_timeout > 0.0) {
            return Err(bad_input(
                "--broker-timeout must be a positive number of seconds",
            ));
        }
        if args.max_messages == Some(0) {
            return Err(bad_input("--max-messages must be at least 1"));
        }
        Ok(Self {
            group,
            exit_at_end: args.exit_at_end,
            max_messages: args.max_messages,
            wait_for_topic: !args.no_wait,
            broker_timeout: Duration::from_secs_f64(args.broker_timeout),
        })
    }
}

/// The original's default group: the host name (in a container, its id).
pub fn default_group() -> String {
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

/// Creates a consumer in the group, checks that the brokers answer, and subscribes.
pub fn subscribe(
    kafka: &KafkaSettings,
    options: &ConsumerOptions,
    topic: &str,
    defaults: &[(&str, &str)],
) -> Result<BaseConsumer<ClientLog>> {
    let mut settings = vec![
        ("group.id", options.group.as_str()),
        ("auto.offset.reset", "earliest"),
        // Notice a topic created after we subscribed within seconds.
        ("topic.metadata.refresh.interval.ms", "5000"),
    ];
    settings.extend_from_slice(defaults);
    if options.exit_at_end {
        settings.push(("enable.partition.eof", "true"));
    }
    let config = kafka.client_config(&settings);
    let consumer: BaseConsumer<ClientLog> = config
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
    )?;
    if admin::partition_count(&metadata, topic).is_none() {
        if !options.wait_for_topic {
            return Err(bad_input(format!(
                "topic {topic} does not exist on {} (check the name, or drop --no-wait to wait for it)",
                kafka.brokers()
            )));
        }
        tracing::warn!(
            "topic {topic} does not exist on {} yet; waiting for it (Ctrl-C to stop)",
            kafka.brokers()
        );
    }
    consumer.subscribe(&[topic])?;
    tracing::info!("consuming {topic} in group {}", options.group);
    Ok(consumer)
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
            tracing::warn!("{text}");
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

/// Commits what was stored and leaves the group.
pub fn close(consumer: BaseConsumer<ClientLog>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!("offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("final offset commit failed: {e}"),
    }
    consumer.unsubscribe();
    // Serve the rebalance that leaving causes, then drop (closes the consumer).
    let _ = consumer.poll(Duration::from_millis(100));
    drop(consumer);
}

//! The dead-letter topic (`--dead-letter TOPIC`): a message a consumer does
//! not handle (refused by the decode gate, an unknown schema id, a cutout
//! that cannot be written) is copied there unchanged, with why in three
//! headers, before its offset may be committed. `print` and `record` wait
//! for each copy's acknowledgement; `filter` produces it inside its
//! transaction, so that exactly once holds for the copies too.

use std::time::Duration;

use anyhow::{anyhow, Result};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer;

use super::produce::{self, drain, Delivery, Producing};
use super::KafkaSettings;

/// The reason, as in the `reason` label of the decode-error metric.
pub const ERROR_HEADER: &str = "alertstream-error";
/// The one-line message a skipped message would have logged.
pub const DETAIL_HEADER: &str = "alertstream-error-detail";
/// Where it came from: `topic/partition/offset`.
pub const SOURCE_HEADER: &str = "alertstream-source";

/// How long `print` and `record` wait for one copy's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Where refused messages go.
pub struct DeadLetter {
    pub topic: String,
    /// `print`, `record`: a producer of its own, each copy acknowledged
    /// before the consumer goes on. `None` for `filter`, which hands its
    /// transactional producer to [`DeadLetter::copy`].
    own: Option<Producing>,
}

/// Producer settings for the copies: idempotent, every replica acknowledges.
const OWN_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "0"),
];

impl DeadLetter {
    /// A dead-letter topic with a producer of its own, created like any
    /// output topic (with `partitions`, or the cluster's default).
    pub async fn open(kafka: &KafkaSettings, topic: &str, partitions: Option<i32>) -> Result<Self> {
        let producer = produce::create(kafka, OWN_DEFAULTS, Delivery::unmetered())?;
        produce::ensure_topic(&producer, kafka, topic, partitions, None).await?;
        Ok(Self {
            topic: topic.to_string(),
            own: Some(producer),
        })
    }

    /// A dead-letter topic written through another command's producer
    /// (`filter`: its transaction); the caller creates the topic.
    pub fn through_transaction(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            own: None,
        }
    }

    /// Copies `message` with the reason headers. With a producer of its own,
    /// returns once the brokers acknowledged it, or fails (the consumer then
    /// stops before the message, its offset not committed); otherwise
    /// through `transaction`, which commits or aborts it with the input offsets.
    pub fn copy(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        detail: &str,
        transaction: Option<&Producing>,
    ) -> Result<()> {
        let source = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let headers: [(&str, &[u8]); 3] = [
            (ERROR_HEADER, reason.as_bytes()),
            (DETAIL_HEADER, detail.as_bytes()),
            (SOURCE_HEADER, source.as_bytes()),
        ];
        let producer = match (&self.own, transaction) {
            (Some(own), _) => own,
            (None, Some(transaction)) => transaction,
            (None, None) => return Err(anyhow!("no producer for the dead-letter topic")),
        };
        let before = producer.context().totals();
        produce::forward(producer, &self.topic, message, &headers).map_err(|e| {
            anyhow!(
                "{source}: cannot copy it to the dead-letter topic {}: {e}",
                self.topic
            )
        })?;
        if self.own.is_some() {
            self.acknowledged(producer, &before, &source)?;
        }
        crate::metrics::dead_lettered(message.topic(), reason);
        Ok(())
    }

    fn acknowledged(
        &self,
        producer: &Producing,
        before: &produce::Totals,
        source: &str,
    ) -> Result<()> {
        drain(producer, ACK_TIMEOUT, || false);
        let now = producer.context().totals().since(before);
        if now.delivered == 1 {
            return Ok(());
        }
        let why = producer
            .context()
            .first_error()
            .unwrap_or_else(|| "not acknowledged in time".into());
        let next = if why.contains("MessageSizeTooLarge") || why.contains("too large") {
            format!(
                "raise max.message.bytes on {} (and -X message.max.bytes)",
                self.topic
            )
        } else {
            format!("check that {} can be written, then start again", self.topic)
        };
        Err(anyhow!(
            "{source}: the dead-letter topic {} did not take its copy ({why}); stopped before \
             this message, its offset not committed: {next}",
            self.topic
        ))
    }
}

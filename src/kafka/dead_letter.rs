//! The dead-letter topic (`--dead-letter TOPIC`): a message a consumer does
//! not handle (refused by the decode gate, an unknown schema id, a cutout
//! that cannot be written) is copied there unchanged, with why in three
//! headers, before its offset may be committed. `print` (and `record`
//! outside a group) waits for each copy's acknowledgement; `filter` produces
//! it inside its transaction, and `record` in a group in a transaction of
//! its own that commits the source offset too, so that exactly once holds
//! for the copies of both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::produce::{self, drain, Delivery, Producing};
use super::{ClientLog, KafkaSettings};

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
    sink: Sink,
}

/// How a copy is sent.
enum Sink {
    /// `print`, and `record` outside a group: a producer of its own, each
    /// copy acknowledged before the consumer goes on.
    Acknowledged(Producing),
    /// `filter`: the transactional producer it hands to [`DeadLetter::copy`].
    CallersTransaction,
    /// `record` in a group: copies committed with their source offsets.
    Committing(Box<RefCell<Committing>>),
}

/// Copies that go out each in a transaction of its own with the source
/// offset after it (`record` in a group, whose archive files commit offsets
/// only once on disk): a copy is visible exactly when its offset is
/// committed. One producer per source partition, its transactional.id
/// naming the group, topic and partition, so that the partition's next
/// owner fences a killed one and aborts what it left open.
struct Committing {
    kafka: KafkaSettings,
    prefix: String,
    producers: HashMap<i32, Producing>,
    /// The refused message waiting for [`DeadLetter::commit_pending`], with
    /// its reason and detail.
    pending: Option<(OwnedMessage, String, String)>,
}

/// How long a committing copy's transaction calls may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

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
            sink: Sink::Acknowledged(producer),
        })
    }

    /// A dead-letter topic whose copies commit their source offsets
    /// (`record` in `group`): [`DeadLetter::copy`] holds the message, and
    /// [`DeadLetter::commit_pending`] sends it with the consumer's offset.
    pub async fn committing(
        kafka: &KafkaSettings,
        topic: &str,
        group: &str,
        source: &str,
    ) -> Result<Self> {
        // Opened as the others are, for the topic; its own producer goes.
        let opened = Self::open(kafka, topic, None).await?;
        Ok(Self {
            topic: opened.topic,
            sink: Sink::Committing(Box::new(RefCell::new(Committing {
                kafka: kafka.clone(),
                prefix: format!("alertstream-dead-letter-{group}-{source}"),
                producers: HashMap::new(),
                pending: None,
            }))),
        })
    }

    /// Makes the transactional producers of `partitions` (the consumer's
    /// assignment) at once rather than at their first copy: initialising
    /// one aborts a transaction a killed owner left open, whose offsets the
    /// group's committed-offset fetch would otherwise wait on until the
    /// transaction times out (a minute).
    pub fn claim(&self, partitions: &[i32]) -> Result<()> {
        if let Some(committing) = self.committing_copies() {
            let mut committing = committing.borrow_mut();
            for partition in partitions {
                committing.producer(*partition)?;
            }
        }
        Ok(())
    }

    /// The source partition whose refused message waits for
    /// [`DeadLetter::commit_pending`]: its offset must not be stored before.
    pub fn pending_partition(&self) -> Option<i32> {
        let committing = self.committing_copies()?.borrow();
        committing.pending.as_ref().map(|(m, ..)| m.partition())
    }

    /// Drops a waiting copy of a partition a rebalance took away (its new
    /// owner reads the message again).
    pub fn forget(&self, partitions: &[i32]) {
        if let Some(committing) = self.committing_copies() {
            let mut committing = committing.borrow_mut();
            if committing
                .pending
                .as_ref()
                .is_some_and(|(m, ..)| partitions.contains(&m.partition()))
            {
                committing.pending = None;
            }
        }
    }

    /// Sends the waiting copy and commits its source offset after it, in
    /// one transaction: both or neither. The consumer's stored offsets are
    /// committed first, so that its own commits, which follow later, never
    /// go back behind the transaction's. Everything before the message must
    /// be safe (on disk) already.
    pub fn commit_pending(&self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        let Some(committing) = self.committing_copies() else {
            return Ok(());
        };
        let mut committing = committing.borrow_mut();
        let Some((message, reason, detail)) = committing.pending.take() else {
            return Ok(());
        };
        if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            // Nothing stored since the last commit is fine.
            if !e.to_string().contains("No offset stored") {
                return Err(anyhow!(
                    "cannot commit offsets before a dead-letter copy: {e}"
                ));
            }
        }
        let metadata = consumer
            .group_metadata()
            .ok_or_else(|| anyhow!("the consumer has no group metadata"))?;
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(
            message.topic(),
            message.partition(),
            Offset::Offset(message.offset() + 1),
        )?;
        let producer = committing.producer(message.partition())?;
        let source = source_of(&message);
        let sent = producer.begin_transaction().and_then(|()| {
            produce::forward(
                producer,
                &self.topic,
                &message,
                &headers(&reason, &detail, &source),
            )?;
            drain(producer, TRANSACTION_TIMEOUT, || false);
            producer.send_offsets_to_transaction(&offsets, &metadata, TRANSACTION_TIMEOUT)?;
            producer.commit_transaction(TRANSACTION_TIMEOUT)
        });
        if let Err(e) = sent {
            let _ = producer.abort_transaction(TRANSACTION_TIMEOUT);
            return Err(anyhow!(
                "{source}: the dead-letter topic {} did not take its copy ({e}); stopped before \
                 this message, its offset not committed: check that {} can be written, then \
                 start again",
                self.topic,
                self.topic
            ));
        }
        crate::metrics::dead_lettered(message.topic(), &reason);
        Ok(())
    }

    /// A dead-letter topic written through another command's producer
    /// (`filter`: its transaction); the caller creates the topic.
    pub fn through_transaction(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            sink: Sink::CallersTransaction,
        }
    }

    /// Copies that commit their source offsets, for `record` in a group.
    fn committing_copies(&self) -> Option<&RefCell<Committing>> {
        match &self.sink {
            Sink::Committing(committing) => Some(committing),
            _ => None,
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
        let (producer, acknowledged) = match (&self.sink, transaction) {
            (Sink::Committing(committing), _) => {
                committing.borrow_mut().pending =
                    Some((message.detach(), reason.to_string(), detail.to_string()));
                return Ok(());
            }
            (Sink::Acknowledged(own), _) => (own, true),
            (Sink::CallersTransaction, Some(transaction)) => (transaction, false),
            (Sink::CallersTransaction, None) => {
                return Err(anyhow!("no producer for the dead-letter topic"))
            }
        };
        let source = source_of(message);
        let before = producer.context().totals();
        produce::forward(
            producer,
            &self.topic,
            message,
            &headers(reason, detail, &source),
        )
        .map_err(|e| {
            anyhow!(
                "{source}: cannot copy it to the dead-letter topic {}: {e}",
                self.topic
            )
        })?;
        if acknowledged {
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
        let next = if produce::too_large(&why) {
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

/// `topic/partition/offset`.
fn source_of<M: Message>(message: &M) -> String {
    format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    )
}

/// The three headers a copy carries.
fn headers<'a>(reason: &'a str, detail: &'a str, source: &'a str) -> [(&'static str, &'a [u8]); 3] {
    [
        (ERROR_HEADER, reason.as_bytes()),
        (DETAIL_HEADER, detail.as_bytes()),
        (SOURCE_HEADER, source.as_bytes()),
    ]
}

impl Committing {
    /// The partition's transactional producer, made (and its transactions
    /// initialised, fencing an earlier owner) on its first copy.
    fn producer(&mut self, partition: i32) -> Result<&Producing> {
        if !self.producers.contains_key(&partition) {
            let id = format!("{}-{partition}", self.prefix);
            let producer = produce::create(
                &self.kafka,
                &[
                    ("transactional.id", id.as_str()),
                    ("acks", "all"),
                    ("linger.ms", "0"),
                ],
                Delivery::unmetered(),
            )?;
            producer
                .init_transactions(TRANSACTION_TIMEOUT)
                .map_err(|e| {
                    anyhow!("cannot start transactions for dead-letter copies ({id}): {e}")
                })?;
            self.producers.insert(partition, producer);
        }
        Ok(&self.producers[&partition])
    }
}

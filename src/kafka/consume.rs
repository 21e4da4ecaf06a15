//! The one consume loop every consuming command plugs into. A command
//! supplies a [`Handler`]; the loop polls, serves end-of-partition events
//! (`-e`), notices lost brokers (`--broker-timeout`), stops on signals and
//! `--max-messages`, and stores a message's offset for commit only after the
//! handler has succeeded with it. A handler error stops the loop with that
//! message's offset unstored, so the same group reads it again next time.

use std::io::ErrorKind;
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::Offset;

use super::consumer::{self, ConsumerOptions, EndTracker, ErrorLog};
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
}

/// A consumer ready to read, and whether it belongs to a group (and so
/// stores offsets for commit).
pub struct Stream {
    pub consumer: BaseConsumer<ClientLog>,
    pub topic: String,
    pub in_group: bool,
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
    let result = poll_until_done(&stream, kafka, options, shutdown, handler);
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
    let mut ends = EndTracker::default();
    let mut errors = ErrorLog::default();
    let mut handled = 0u64;
    while !shutdown.requested() {
        match consumer.poll(Duration::from_millis(100)) {
            None => consumer::check_brokers(consumer, kafka, options.broker_timeout)?,
            Some(Ok(message)) => {
                errors.clear();
                consumer.context().brokers_answered();
                ends.message(message.partition());
                handler.message(&message)?;
                if stream.in_group {
                    if let Err(e) = consumer.store_offset_from_message(&message) {
                        tracing::warn!("cannot store offset {}: {e}", message.offset());
                    }
                }
                handled += 1;
                if options.max_messages.is_some_and(|max| handled >= max) {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                consumer.context().brokers_answered();
                ends.end(partition);
                // At the end, the next offset is the high watermark.
                let next = position(consumer, &stream.topic, partition).or_else(|| {
                    consumer
                        .fetch_watermarks(&stream.topic, partition, Duration::from_secs(1))
                        .ok()
                        .map(|(_, high)| high)
                });
                handler.end_of_partition(partition, next)?;
                if options.exit_at_end && ends.all_at_end(consumer) {
                    return Ok(());
                }
            }
            Some(Err(error)) => errors.report(consumer, &stream.topic, &error),
        }
        handler.tick(consumer)?;
    }
    Ok(())
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

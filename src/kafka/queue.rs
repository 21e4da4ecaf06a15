//! Handing one record to a producer whose queue is bounded: the one loop
//! that serves acknowledgements while the queue is full.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};

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
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

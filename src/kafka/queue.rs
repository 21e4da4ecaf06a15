//! Handing records to a producer whose queue is bounded, and waiting for
//! their acknowledgements: the one place that polls a producer for them.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

/// How long one poll for acknowledgements waits. rdkafka's
/// `BaseProducer::poll` returns only when its timeout has passed, events or
/// not (its own `flush`, which `commit_transaction` calls, polls 100 ms at a
/// time), so waiting goes in short slices: a wait ends within a slice of the
/// acknowledgement it waits for.
pub const SERVE_SLICE: Duration = Duration::from_millis(1);

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

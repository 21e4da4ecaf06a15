//! The client context every Kafka client here uses: librdkafka's log lines and
//! errors go to `tracing`, and the last error is kept so that a timeout can say
//! *why* the brokers could not be reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Debug, Default)]
pub struct ClientLog {
    last_error: Mutex<Option<String>>,
    /// Since when librdkafka has reported every broker down, if it has.
    all_down_since: Mutex<Option<Instant>>,
    /// Partitions revoked by rebalances, until the consume loop takes them.
    revoked: Mutex<Vec<i32>>,
    /// Partitions assigned by the last rebalance, until the loop takes them.
    assigned: Mutex<Option<Vec<i32>>>,
    /// Whether any rebalance has assigned partitions (none at all counts).
    ever_assigned: AtomicBool,
}

impl ClientLog {
    /// The most recent error librdkafka reported, e.g. a refused connection.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// How long every broker has been down, as far as librdkafka knows.
    pub fn all_down_for(&self) -> Option<Duration> {
        self.all_down_since
            .lock()
            .ok()?
            .map(|since| since.elapsed())
    }

    /// librdkafka said every broker is down (as an error event or a
    /// callback); whether they were up until now.
    pub fn all_down(&self) -> bool {
        crate::metrics::get().set_brokers_up(false);
        match self.all_down_since.lock() {
            Ok(mut since) if since.is_none() => {
                *since = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Something arrived from a broker: they are not all down.
    pub fn brokers_answered(&self) {
        crate::metrics::get().set_brokers_up(true);
        if let Ok(mut since) = self.all_down_since.lock() {
            *since = None;
        }
        // Whatever failed before is over: a later outage names its own cause.
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
    }

    /// Whether the group has given this consumer its share yet (perhaps none).
    pub fn ever_assigned(&self) -> bool {
        self.ever_assigned.load(Ordering::Relaxed)
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// Partitions assigned since the last call, if a rebalance assigned any.
    pub fn take_assigned(&self) -> Option<Vec<i32>> {
        self.assigned.lock().ok().and_then(|mut a| a.take())
    }

    fn remember(&self, message: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }
}

/// librdkafka warnings about retries that resolve themselves.
fn is_transient(facility: &str, message: &str) -> bool {
    (facility == "GETPID" && message.contains("retrying"))
        || message.contains("Coordinator load in progress")
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let transient = is_transient(facility, message);
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && !transient {
            // Connection and authentication failures often come only as log lines.
            self.remember(message.to_string());
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility}: {message}")
            }
            // Transient retries librdkafka recovers from by itself, e.g. the
            // idempotent producer's first PID request to a broker still
            // loading its coordinator: nothing for an operator to act on.
            RDKafkaLogLevel::Warning if transient => {
                tracing::debug!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "{facility}: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Connection failures are retried by librdkafka; they become fatal only
        // when a deadline passes, and then the caller reports `last_error`.
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
        // Said once per outage: librdkafka repeats it at every reconnect.
        if let KafkaError::Global(RDKafkaErrorCode::AllBrokersDown) = error {
            if self.all_down() {
                tracing::warn!("all brokers are down: {reason}");
            }
            // Its reason ("1/1 brokers are down") says less than the failure
            // logged before it (refused, unresolvable): kept only if alone.
            if self.last_error().is_some() {
                return;
            }
        }
        self.remember(reason.to_string());
    }
}

/// Transactional producers (filter) learn of failed deliveries when they
/// commit: the commit fails and the transaction is aborted.
impl rdkafka::producer::ProducerContext for ClientLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.remember(format!("delivery failed: {error}"));
        }
    }
}

/// A rebalance's partitions as `topic[partition]`, space-separated.
fn names(list: &rdkafka::TopicPartitionList) -> String {
    let parts: Vec<String> = list
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    match parts.is_empty() {
        true => "none".into(),
        false => parts.join(" "),
    }
}

impl ConsumerContext for ClientLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!("partitions assigned: {}", names(list));
                self.ever_assigned.store(true, Ordering::Relaxed);
                if let Ok(mut assigned) = self.assigned.lock() {
                    let partitions: Vec<i32> =
                        list.elements().iter().map(|e| e.partition()).collect();
                    assigned.get_or_insert_with(Vec::new).extend(partitions);
                }
            }
            Rebalance::Revoke(list) => {
                tracing::info!("partitions revoked: {}", names(list));
                if let Ok(mut revoked) = self.revoked.lock() {
                    revoked.extend(list.elements().iter().map(|e| e.partition()));
                }
            }
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }
}

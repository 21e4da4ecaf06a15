//! The client context every Kafka client here uses: librdkafka's log lines and
//! errors go to `tracing`, and the last error is kept so that a timeout can say
//! *why* the brokers could not be reached.

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

#[derive(Debug, Default)]
pub struct ClientLog {
    last_error: Mutex<Option<String>>,
}

impl ClientLog {
    /// The most recent error librdkafka reported, e.g. a refused connection.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn remember(&self, message: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(message);
        }
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility}: {message}")
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
        self.remember(reason.to_string());
    }
}

impl ConsumerContext for ClientLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let parts: Vec<String> = list
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!("partitions assigned: {}", parts.join(" "));
            }
            Rebalance::Revoke(list) => {
                tracing::info!("partitions revoked: {}", list.count());
            }
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }
}

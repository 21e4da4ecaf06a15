//! Archives of a stream: Avro object container files that keep each alert's
//! bytes as written (`avro.rs`), or Parquet files with an Arrow schema
//! derived from the Avro schema (`parquet.rs`, `arrow.rs`; image columns
//! spliced in by `splice.rs`), read back into Avro by `unshred.rs` for
//! `view --archive`.
//!
//! Every file is named from its topic, partition and first offset, written
//! under a temporary name in the same folder, fsynced and renamed into place
//! (and the folder fsynced) before the offsets it holds may be committed. A
//! recorder killed mid-file leaves only a temporary file, removed when the
//! partition is read again; a file renamed but not yet committed has the
//! same name when written again, and later ones are removed (see `files.rs`).

pub mod arrow;
pub mod avro;
pub mod files;
pub mod parquet;
pub mod shred;
pub mod splice;
pub mod unshred;

use apache_avro::types::Value;
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// Where an alert came from: kept with it so a replay can keep the pacing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp, epoch milliseconds.
    pub timestamp: Option<i64>,
    /// The message key, base64.
    pub key: Option<String>,
    /// Message headers: name and base64 value.
    pub headers: Vec<(String, Option<String>)>,
}

impl Meta {
    pub fn of(message: &BorrowedMessage<'_>) -> Self {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(b64),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(b64)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// One alert for an archive: its bytes as written (Avro) or its value (Parquet).
pub enum Alert<'a> {
    Datum(&'a [u8]),
    Value(&'a Value),
}

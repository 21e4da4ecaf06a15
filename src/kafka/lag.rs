//! A consuming command's own lag, `alertstream_consumer_lag{topic,partition,
//! group}` (group "" outside a group): each partition's end offset minus the
//! position the command has handled. A thread of its own asks the brokers
//! for the end offsets, so the gauge keeps moving while the command itself is
//! blocked (a stalled stdout, a slow disk): when an operator needs it most.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{ClientLog, KafkaSettings};
use crate::metrics;

/// How often the end offsets are asked for (the promise: at least every 5 s).
const EVERY: Duration = Duration::from_secs(2);

/// Partition to the offset after the last message handled.
type Positions = Arc<Mutex<BTreeMap<i32, i64>>>;

/// Partitions assigned in the group whose position is not known yet.
type Unplaced = Arc<Mutex<Vec<i32>>>;

/// The own-lag reporter of one consume loop; stops its thread when dropped.
pub struct OwnLag {
    positions: Positions,
    unplaced: Unplaced,
    topic: String,
    group: String,
    /// Dropped to stop the thread at once.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OwnLag {
    /// Starts reporting for `topic` in `group` ("" outside a group).
    pub fn start(kafka: &KafkaSettings, topic: &str, group: &str) -> Result<Self> {
        // The group's id only to read its committed offsets: this client
        // never subscribes, so it never joins the group.
        let id = if group.is_empty() {
            "alertstream-lag"
        } else {
            group
        };
        let client: BaseConsumer<ClientLog> = kafka
            .client_config(&[("client.id", "alertstream-lag"), ("group.id", id)])
            .create_with_context(ClientLog::default())?;
        let positions = Positions::default();
        let unplaced = Unplaced::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let (watched, waiting, topic_name, group_name) = (
            positions.clone(),
            unplaced.clone(),
            topic.to_string(),
            group.to_string(),
        );
        let thread = std::thread::Builder::new()
            .name("own-lag".into())
            .spawn(move || loop {
                place(&client, &watched, &waiting, &topic_name);
                export(&client, &watched, &topic_name, &group_name);
                match stopped.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            })?;
        Ok(Self {
            positions,
            unplaced,
            topic: topic.to_string(),
            group: group.to_string(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The command has handled `partition` up to `next` (exclusive).
    pub fn handled(&self, partition: i32, next: i64) {
        if let Ok(mut positions) = self.positions.lock() {
            positions.insert(partition, next);
        }
    }

    /// Partitions a rebalance assigned in the group: until one of their
    /// messages is handled, their position is the group's committed offset.
    pub fn assigned(&self, partitions: &[i32]) {
        if let Ok(mut unplaced) = self.unplaced.lock() {
            unplaced.extend_from_slice(partitions);
        }
    }

    /// Partitions taken away by a rebalance: their lag is another's now.
    pub fn forget(&self, partitions: &[i32]) {
        if let Ok(mut unplaced) = self.unplaced.lock() {
            unplaced.retain(|p| !partitions.contains(p));
        }
        if let Ok(mut positions) = self.positions.lock() {
            for partition in partitions {
                positions.remove(partition);
                metrics::get()
                    .lag
                    .remove(&labels(&self.topic, *partition, &self.group));
            }
        }
    }
}

impl Drop for OwnLag {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Gives each newly assigned partition without a position the group's
/// committed offset (the earliest offset when it has none, as the
/// consumer's auto.offset.reset does).
fn place(
    client: &BaseConsumer<ClientLog>,
    positions: &Positions,
    unplaced: &Unplaced,
    topic: &str,
) {
    let waiting: Vec<i32> = match unplaced.lock() {
        Ok(mut u) => std::mem::take(&mut *u),
        Err(_) => return,
    };
    if waiting.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for partition in &waiting {
        list.add_partition(topic, *partition);
    }
    let committed = client.committed_offsets(list, EVERY).ok();
    for partition in waiting {
        let offset = committed
            .as_ref()
            .and_then(|c| c.find_partition(topic, partition))
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .or_else(|| {
                client
                    .fetch_watermarks(topic, partition, EVERY)
                    .ok()
                    .map(|(low, _)| low)
            });
        if let (Some(offset), Ok(mut positions)) = (offset, positions.lock()) {
            positions.entry(partition).or_insert(offset);
        }
    }
}

/// Sets the gauge of every partition with a known position.
fn export(client: &BaseConsumer<ClientLog>, positions: &Positions, topic: &str, group: &str) {
    let known: Vec<(i32, i64)> = match positions.lock() {
        Ok(p) => p.iter().map(|(k, v)| (*k, *v)).collect(),
        Err(_) => return,
    };
    for (partition, position) in known {
        if let Ok((_, high)) = client.fetch_watermarks(topic, partition, EVERY) {
            metrics::get()
                .lag
                .get_or_create(&labels(topic, partition, group))
                .set((high - position).max(0));
        }
    }
}

fn labels(topic: &str, partition: i32, group: &str) -> metrics::Labels {
    metrics::labels(&[
        ("topic", topic),
        ("partition", &partition.to_string()),
        ("group", group),
    ])
}

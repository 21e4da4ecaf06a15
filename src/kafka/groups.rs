//! Other groups' progress, read without joining them: a consumer whose
//! `group.id` is the watched group asks the group coordinator for its
//! committed offsets (OffsetFetch), never subscribes, never commits.

use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::config::creation_error;
use super::{ClientLog, KafkaSettings};

/// A watched group's lag on one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub group: String,
    /// (partition, lag); `None` where it could not be read.
    pub partitions: Vec<(i32, Option<i64>)>,
}

impl GroupLag {
    /// The total, if every partition's lag is known (and there are some):
    /// never a 0 that is not known.
    pub fn total(&self) -> Option<i64> {
        match self.partitions.is_empty() {
            true => None,
            false => self.partitions.iter().map(|(_, lag)| *lag).sum(),
        }
    }
}

/// Readers of the committed offsets of some groups.
pub struct GroupWatch {
    readers: Vec<(String, BaseConsumer<ClientLog>)>,
}

impl GroupWatch {
    pub fn new(kafka: &KafkaSettings, groups: &[String]) -> Result<Self> {
        let mut readers = Vec::new();
        for group in groups {
            let consumer: BaseConsumer<ClientLog> = kafka
                .client_config(&[
                    ("client.id", "alertstream-monitor-watch"),
                    ("group.id", group),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                ])
                .create_with_context(ClientLog::default())
                .map_err(creation_error)?;
            readers.push((group.clone(), consumer));
        }
        Ok(Self { readers })
    }

    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Each group's lag against `marks`: (partition, low, high) watermarks.
    /// A partition the group has not committed in counts all it holds.
    pub fn lags(&self, topic: &str, marks: &[(i32, i64, i64)]) -> Vec<GroupLag> {
        let mut list = TopicPartitionList::new();
        for (partition, _, _) in marks {
            list.add_partition(topic, *partition);
        }
        self.readers
            .iter()
            .map(|(group, reader)| {
                let committed = reader.committed_offsets(list.clone(), Duration::from_secs(5));
                let partitions = marks
                    .iter()
                    .map(|&(partition, low, high)| {
                        let lag = committed.as_ref().ok().and_then(|c| {
                            match c.find_partition(topic, partition)?.offset() {
                                Offset::Offset(at) => Some((high - at.max(low)).max(0)),
                                Offset::Invalid => Some((high - low).max(0)),
                                _ => None,
                            }
                        });
                        (partition, lag)
                    })
                    .collect();
                GroupLag {
                    group: group.clone(),
                    partitions,
                }
            })
            .collect()
    }
}

/// (partition, low, high) watermarks of the partitions `consumer` is assigned.
pub fn watermarks(consumer: &BaseConsumer<ClientLog>, topic: &str) -> Vec<(i32, i64, i64)> {
    let Ok(assignment) = consumer.assignment() else {
        return Vec::new();
    };
    assignment
        .elements()
        .iter()
        .filter_map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(topic, e.partition(), Duration::from_secs(1))
                .ok()?;
            Some((e.partition(), low, high))
        })
        .collect()
}

//! What the page shows: the newest alerts, within a count and a byte budget
//! (the oldest leave first), each with its message's bytes for downloads and
//! cutouts; and per topic, how many arrived, how fast, and the lag of the
//! groups watched. New alerts are also broadcast to the page's live feeds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use super::summary::Summary;
use crate::kafka::groups::GroupLag;

/// One Kafka message as it arrived: what a download gives back unchanged.
#[derive(Debug)]
pub struct Message {
    /// Shared: an archive's alerts all carry their file's writer schema here.
    pub key: Option<Arc<[u8]>>,
    pub value: Bytes,
    pub timestamp_ms: Option<i64>,
    /// How it was framed (schemaless, container, ...), for the page.
    pub framing: String,
}

/// One alert of a message (a container may hold several).
#[derive(Debug, Serialize)]
pub struct Entry {
    /// Arrival order in this process: the page's cursor for live updates.
    pub seq: u64,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub index: usize,
    #[serde(flatten)]
    pub summary: Summary,
    pub framing: String,
    pub timestamp_ms: Option<i64>,
    #[serde(skip)]
    pub message: Arc<Message>,
    /// This alert's share of its message's bytes, for the budget.
    #[serde(skip)]
    bytes: usize,
}

impl Entry {
    pub fn new(
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        index: usize,
        count: usize,
        message: Arc<Message>,
        summary: Summary,
    ) -> Self {
        let whole = message.value.len() + message.key.as_ref().map_or(0, |k| k.len());
        Self {
            seq: 0,
            topic,
            partition,
            offset,
            index,
            summary,
            framing: message.framing.clone(),
            timestamp_ms: message.timestamp_ms,
            bytes: whole / count.max(1) + std::mem::size_of::<Self>(),
            message,
        }
    }

    pub fn is(&self, topic: &str, partition: i32, offset: i64, index: usize) -> bool {
        self.offset == offset
            && self.partition == partition
            && self.index == index
            && &*self.topic == topic
    }
}

/// How many seconds of arrivals the rate series covers, and its step.
const RATE_SPAN_S: u64 = 300;
const RATE_STEP_S: u64 = 10;

/// Arrivals on one topic.
#[derive(Debug, Default)]
struct TopicStats {
    alerts: u64,
    skipped: u64,
    /// (unix second, alerts) for the last RATE_SPAN_S seconds.
    seconds: VecDeque<(u64, u64)>,
    lags: Vec<GroupLag>,
    at_end: bool,
}

/// A topic's numbers as the page gets them.
#[derive(Debug, Serialize)]
pub struct TopicView {
    pub topic: String,
    pub alerts: u64,
    pub skipped: u64,
    /// Alerts/s over the last minute.
    pub rate: f64,
    /// Alerts/s per RATE_STEP_S seconds over the last RATE_SPAN_S, oldest first.
    pub series: Vec<f64>,
    pub lags: Vec<LagView>,
    pub at_end: bool,
}

#[derive(Debug, Serialize)]
pub struct LagView {
    pub group: String,
    /// `None` (null) where a partition's lag could not be read.
    pub lag: Option<i64>,
}

struct Inner {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    next_seq: u64,
    topics: BTreeMap<String, TopicStats>,
}

/// The shared store; cheap to lock (the page and the consumers hold it briefly).
pub struct Store {
    inner: Mutex<Inner>,
    keep: usize,
    keep_bytes: usize,
    live: broadcast::Sender<Arc<Entry>>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Store {
    pub fn new(topics: &[String], keep: usize, keep_bytes: usize) -> Self {
        let (live, _) = broadcast::channel(1024);
        let topics = topics
            .iter()
            .map(|t| (t.clone(), TopicStats::default()))
            .collect();
        Self {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
                topics,
            }),
            keep: keep.max(1),
            keep_bytes,
            live,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the page down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a message's alerts, dropping the oldest beyond the budgets.
    pub fn push(&self, entries: Vec<Entry>) {
        let mut added = Vec::with_capacity(entries.len());
        {
            let mut inner = self.lock();
            let second = now_s();
            for mut entry in entries {
                entry.seq = inner.next_seq;
                inner.next_seq += 1;
                let stats = inner.topics.entry(entry.topic.to_string()).or_default();
                stats.alerts += 1;
                match stats.seconds.back_mut() {
                    Some((s, n)) if *s == second => *n += 1,
                    _ => stats.seconds.push_back((second, 1)),
                }
                while stats
                    .seconds
                    .front()
                    .is_some_and(|(s, _)| s + RATE_SPAN_S <= second)
                {
                    stats.seconds.pop_front();
                }
                inner.bytes += entry.bytes;
                let entry = Arc::new(entry);
                inner.entries.push_back(entry.clone());
                added.push(entry);
            }
            while inner.entries.len() > self.keep
                || (inner.bytes > self.keep_bytes && inner.entries.len() > 1)
            {
                if let Some(old) = inner.entries.pop_front() {
                    inner.bytes -= old.bytes;
                }
            }
        }
        for entry in added {
            // No page listening is fine.
            let _ = self.live.send(entry);
        }
    }

    pub fn skipped(&self, topic: &str) {
        self.lock()
            .topics
            .entry(topic.to_string())
            .or_default()
            .skipped += 1;
    }

    pub fn set_lags(&self, topic: &str, lags: Vec<GroupLag>) {
        self.lock()
            .topics
            .entry(topic.to_string())
            .or_default()
            .lags = lags;
    }

    pub fn set_at_end(&self, topic: &str) {
        self.lock()
            .topics
            .entry(topic.to_string())
            .or_default()
            .at_end = true;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.live.subscribe()
    }

    pub fn find(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        index: usize,
    ) -> Option<Arc<Entry>> {
        self.lock()
            .entries
            .iter()
            .rev()
            .find(|e| e.is(topic, partition, offset, index))
            .cloned()
    }

    /// Every alert kept, newest first.
    pub fn newest(&self) -> Vec<Arc<Entry>> {
        self.lock().entries.iter().rev().cloned().collect()
    }

    /// `--keep`: the most alerts kept (the page shows as many rows).
    pub fn keep(&self) -> usize {
        self.keep
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each topic's numbers, now.
    pub fn topics(&self) -> Vec<TopicView> {
        let inner = self.lock();
        let second = now_s();
        inner
            .topics
            .iter()
            .map(|(topic, stats)| TopicView {
                topic: topic.clone(),
                alerts: stats.alerts,
                skipped: stats.skipped,
                rate: arrivals(&stats.seconds, second, 60) as f64 / 60.0,
                series: series(&stats.seconds, second),
                lags: stats
                    .lags
                    .iter()
                    .map(|l| LagView {
                        group: l.group.clone(),
                        lag: l.total(),
                    })
                    .collect(),
                at_end: stats.at_end,
            })
            .collect()
    }
}

/// Alerts that arrived in the `span` seconds before `now` (not counting `now`'s own second, still filling).
fn arrivals(seconds: &VecDeque<(u64, u64)>, now: u64, span: u64) -> u64 {
    seconds
        .iter()
        .filter(|(s, _)| *s < now && s + span >= now)
        .map(|(_, n)| n)
        .sum()
}

fn series(seconds: &VecDeque<(u64, u64)>, now: u64) -> Vec<f64> {
    let steps = RATE_SPAN_S / RATE_STEP_S;
    (0..steps)
        .map(|i| {
            let end = now - (steps - 1 - i) * RATE_STEP_S;
            let sum: u64 = seconds
                .iter()
                .filter(|(s, _)| *s < end && s + RATE_STEP_S >= end)
                .map(|(_, n)| n)
                .sum();
            sum as f64 / RATE_STEP_S as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64, bytes: usize) -> Entry {
        let message = Arc::new(Message {
            key: None,
            value: vec![0; bytes].into(),
            timestamp_ms: None,
            framing: "schemaless".into(),
        });
        Entry::new("t".into(), 0, offset, 0, 1, message, Summary::default())
    }

    #[test]
    fn keeps_the_newest_within_count_and_bytes() {
        let store = Store::new(&["t".into()], 3, usize::MAX);
        store.push((0..5).map(|o| entry(o, 10)).collect());
        let offsets: Vec<i64> = store.newest().iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [4, 3, 2]);
        let store = Store::new(&["t".into()], 100, 2500);
        store.push((0..5).map(|o| entry(o, 1000)).collect());
        assert!(
            store.len() <= 2,
            "{} kept over a 2,500-byte budget",
            store.len()
        );
        assert_eq!(store.newest()[0].offset, 4);
        assert!(store.find("t", 0, 4, 0).is_some());
        assert!(store.find("t", 0, 0, 0).is_none(), "the oldest left first");
    }

    #[test]
    fn counts_per_topic_and_broadcasts() {
        let store = Store::new(&["t".into()], 10, usize::MAX);
        let mut live = store.subscribe();
        store.push(vec![entry(7, 1)]);
        store.skipped("t");
        assert_eq!(live.try_recv().map(|e| e.offset).ok(), Some(7));
        let topics = store.topics();
        assert_eq!((topics[0].alerts, topics[0].skipped), (1, 1));
        assert_eq!(topics[0].series.len(), 30);
    }
}

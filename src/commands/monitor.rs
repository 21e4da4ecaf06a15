//! `alertstream monitor`: reads the stream outside any group and reports,
//! as the original did, each time a partition reaches its end; and, every
//! `--every` seconds, the rate and end-to-end latency of what arrives and the
//! lag of each `--group` it watches. It never joins or commits for a group.

use std::io::{StdoutLock, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message};

use crate::cli::MonitorArgs;
use crate::exit::bad_input;
use crate::kafka::consume::{self, Handler};
use crate::kafka::consumer::{self, ConsumerOptions};
use crate::kafka::groups::{watermarks, GroupLag, GroupWatch};
use crate::kafka::{ClientLog, KafkaSettings};
use crate::shutdown::Shutdown;

/// Validated `monitor` options.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub topic: String,
    /// Groups whose lag is reported; monitor never joins them.
    pub groups: Vec<String>,
    pub consumer: ConsumerOptions,
    /// Time between status lines; `None` turns them off.
    pub every: Option<Duration>,
}

impl MonitorOptions {
    pub fn from_args(args: MonitorArgs) -> Result<Self> {
        crate::kafka::admin::check_topic(&args.topic)?;
        if !(args.every.is_finite() && args.every >= 0.0) {
            return Err(bad_input(format!(
                "--every {}: give seconds >= 0 (0 turns status lines off)",
                args.every
            )));
        }
        if args.groups.iter().any(|g| g.trim().is_empty()) {
            return Err(bad_input("--group is empty"));
        }
        Ok(Self {
            topic: args.topic,
            groups: args.groups,
            consumer: ConsumerOptions::from_args(args.consumer)?,
            every: (args.every > 0.0).then(|| Duration::from_secs_f64(args.every)),
        })
    }
}

/// Keep at most this many latency samples per window (every n-th beyond it).
const MAX_SAMPLES: usize = 100_000;

/// What one status window saw.
#[derive(Debug)]
pub struct Window {
    started: Instant,
    messages: u64,
    bytes: u64,
    latencies_ms: Vec<i64>,
}

impl Window {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            messages: 0,
            bytes: 0,
            latencies_ms: Vec::new(),
        }
    }

    fn record(&mut self, bytes: usize, latency_ms: Option<i64>) {
        self.messages += 1;
        self.bytes += bytes as u64;
        if let Some(latency) = latency_ms {
            if self.latencies_ms.len() < MAX_SAMPLES {
                self.latencies_ms.push(latency);
            } else {
                let slot = (self.messages as usize) % MAX_SAMPLES;
                self.latencies_ms[slot] = latency;
            }
        }
    }
}

/// The `q` quantile (0..=1) of samples, nearest rank.
pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub async fn run(options: MonitorOptions, kafka: KafkaSettings, shutdown: Shutdown) -> Result<()> {
    let groups = GroupWatch::new(&kafka, &options.groups)?;
    // Outside any group: from the end of each partition (what arrives from
    // now on), or from --from.
    let Some(stream) = consumer::open(
        &kafka,
        &options.consumer,
        &options.topic,
        None,
        &[
            ("client.id", "alertstream-monitor"),
            ("enable.partition.eof", "true"),
        ],
        &shutdown,
    )?
    else {
        return Ok(());
    };
    let mut monitor = Monitor {
        topic: options.topic.clone(),
        every: options.every,
        groups,
        window: Window::new(),
        next_offsets: Default::default(),
        out: std::io::stdout().lock(),
    };
    let result = consume::run(stream, &kafka, &options.consumer, &shutdown, &mut monitor);
    let _ = monitor.out.flush();
    result
}

struct Monitor {
    topic: String,
    every: Option<Duration>,
    groups: GroupWatch,
    window: Window,
    /// The offset after the last message seen, per partition.
    next_offsets: std::collections::BTreeMap<i32, i64>,
    out: StdoutLock<'static>,
}

impl Monitor {
    fn line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .context("cannot write to stdout")
    }

    /// A `status:lag` line per watched group (and its gauges).
    fn lag_lines(&mut self, marks: &[(i32, i64, i64)]) -> Result<()> {
        for lag in self.groups.lags(&self.topic, marks) {
            export_lag(&self.topic, &lag);
            let line = lag_line(&self.topic, &lag);
            self.line(&line)?;
        }
        Ok(())
    }
}

impl Handler for Monitor {
    fn counts_alerts(&self) -> bool {
        false
    }

    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        self.next_offsets
            .insert(message.partition(), message.offset() + 1);
        let latency = message
            .timestamp()
            .to_millis()
            .map(|sent| (unix_now() * 1000.0) as i64 - sent);
        self.window.record(message.payload_len(), latency);
        Ok(())
    }

    fn end_of_partition(&mut self, partition: i32, next: Option<i64>) -> Result<()> {
        let offset = next
            .or_else(|| self.next_offsets.get(&partition).copied())
            .map_or("None".to_string(), |o| o.to_string());
        let line = format!(
            "topic:{}, partition:{partition}, status:end, offset:{offset}, key:None, time:{:.3}",
            self.topic,
            unix_now()
        );
        self.line(&line)
    }

    fn tick(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        let Some(every) = self.every else {
            return Ok(());
        };
        if self.window.started.elapsed() < every {
            return Ok(());
        }
        let marks = watermarks(consumer, &self.topic);
        let stats = status_line(consumer, &self.topic, &marks, &mut self.window);
        self.line(&stats)?;
        self.lag_lines(&marks)?;
        self.window = Window::new();
        Ok(())
    }

    /// The stream ends (`-e`, `--until`, a signal): the watched groups' lag
    /// once more, so that `monitor -e --group G` is a one-shot lag check
    /// (`--every 0` keeps status lines off, this one too).
    fn finish(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        if self.every.is_none() {
            return Ok(());
        }
        let marks = watermarks(consumer, &self.topic);
        self.lag_lines(&marks)
    }
}

/// (partition, low, high) of every assigned partition whose marks answer.
/// `[0=N, 1=N]`, `?` where unknown.
fn per_partition(lags: &[(i32, Option<i64>)]) -> String {
    let parts: Vec<String> = lags
        .iter()
        .map(|(p, lag)| format!("{p}={}", lag.map_or("?".to_string(), |l| l.to_string())))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// alertstream_consumer_lag{topic,partition,group}, for --metrics.
fn export_lag(topic: &str, lag: &GroupLag) {
    let gauges = &crate::metrics::get().lag;
    for (partition, value) in &lag.partitions {
        let partition = partition.to_string();
        let labels = crate::metrics::labels(&[
            ("topic", topic),
            ("partition", &partition),
            ("group", &lag.group),
        ]);
        if let Some(value) = value {
            gauges.get_or_create(&labels).set(*value);
        }
    }
}

/// `topic:T, status:lag, group:G, lag:N [0=N, 1=N], time:...`; `lag:?`
/// unless every partition's lag could be read (never a 0 that is not known).
fn lag_line(topic: &str, lag: &GroupLag) -> String {
    format!(
        "topic:{topic}, status:lag, group:{}, lag:{} {}, time:{:.3}",
        lag.group,
        lag.total()
            .map_or("?".to_string(), |total| total.to_string()),
        per_partition(&lag.partitions),
        unix_now()
    )
}

/// `topic:T, status:stats, ...`: rates over the window, how far monitor
/// itself is behind the end, and latency (now minus the message timestamp).
fn status_line(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
    marks: &[(i32, i64, i64)],
    window: &mut Window,
) -> String {
    let seconds = window.started.elapsed().as_secs_f64().max(1e-9);
    let lags: Vec<(i32, Option<i64>)> = marks
        .iter()
        .map(|&(partition, low, high)| {
            let at = consume::position(consumer, topic, partition).unwrap_or(high.max(low));
            (partition, Some((high - at).max(0)))
        })
        .collect();
    let total_lag: i64 = lags.iter().filter_map(|(_, l)| *l).sum();
    window.latencies_ms.sort_unstable();
    let latency = |q| {
        quantile(&window.latencies_ms, q).map_or("None".to_string(), |ms| {
            format!("{:.3}s", ms as f64 / 1000.0)
        })
    };
    format!(
        "topic:{topic}, status:stats, window:{seconds:.1}s, messages:{}, rate:{:.1}/s, throughput:{:.3}MB/s, \
         lag:{total_lag} {}, latency_p50:{}, latency_p99:{}, time:{:.3}",
        window.messages,
        window.messages as f64 / seconds,
        window.bytes as f64 / 1e6 / seconds,
        per_partition(&lags),
        latency(0.5),
        latency(0.99),
        unix_now()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lag_not_read_is_a_question_mark_never_a_zero() {
        let lag = |partitions| GroupLag {
            group: "g".into(),
            partitions,
        };
        let known = lag_line("t", &lag(vec![(0, Some(3)), (1, Some(4))]));
        assert!(known.contains("group:g, lag:7 [0=3, 1=4]"), "{known}");
        let partly = lag_line("t", &lag(vec![(0, Some(3)), (1, None)]));
        assert!(partly.contains("group:g, lag:? [0=3, 1=?]"), "{partly}");
        let none = lag_line("t", &lag(vec![]));
        assert!(none.contains("group:g, lag:? []"), "{none}");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&samples, 0.5), Some(50));
        assert_eq!(quantile(&samples, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn window_keeps_a_bounded_sample() {
        let mut window = Window::new();
        for i in 0..(MAX_SAMPLES as i64 + 10) {
            window.record(10, Some(i));
        }
        assert_eq!(window.latencies_ms.len(), MAX_SAMPLES);
        assert_eq!(window.messages, MAX_SAMPLES as u64 + 10);
        assert_eq!(window.bytes, 10 * (MAX_SAMPLES as u64 + 10));
    }
}

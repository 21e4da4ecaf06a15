//! `alertstream monitor`: consumes without decoding and reports, as the
//! original did, each time a partition reaches its end; and, every `--every`
//! seconds, whether this consumer keeps up: rate, lag and end-to-end latency.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;

use crate::avro::codec;
use crate::cli::MonitorArgs;
use crate::exit::bad_input;
use crate::kafka::consumer::{self, ConsumerOptions, EndTracker, ErrorLog};
use crate::kafka::{ClientLog, KafkaSettings};
use crate::shutdown::Shutdown;

/// Validated `monitor` options.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub topic: String,
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
        Ok(Self {
            topic: args.topic,
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
    let consumer = consumer::subscribe(
        &kafka,
        &options.consumer,
        &options.topic,
        &[
            ("client.id", "alertstream-monitor"),
            ("enable.partition.eof", "true"),
        ],
    )?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = watch(&consumer, &kafka, &options, &shutdown, &mut out);
    let _ = out.flush();
    if consumer.context().all_down_for().is_some() && result.is_err() {
        consumer::abandon(consumer);
    } else {
        consumer::close(consumer);
    }
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn watch(
    consumer: &BaseConsumer<ClientLog>,
    kafka: &KafkaSettings,
    options: &MonitorOptions,
    shutdown: &Shutdown,
    out: &mut impl Write,
) -> Result<()> {
    let stdout_failed = |e: std::io::Error| anyhow::Error::new(e).context("cannot write to stdout");
    let topic = options.topic.as_str();
    let mut ends = EndTracker::default();
    let mut errors = ErrorLog::default();
    let mut window = Window::new();
    let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut total = 0u64;
    while !shutdown.requested() {
        match consumer.poll(Duration::from_millis(100)) {
            None => consumer::check_brokers(consumer, kafka, options.consumer.broker_timeout)?,
            Some(Ok(message)) => {
                errors.clear();
                consumer.context().brokers_answered();
                total += 1;
                ends.message(message.partition());
                next_offsets.insert(message.partition(), message.offset() + 1);
                let latency = message
                    .timestamp()
                    .to_millis()
                    .map(|sent| (unix_now() * 1000.0) as i64 - sent);
                window.record(message.payload_len(), latency);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let framing = message.payload().map(codec::detect);
                    tracing::debug!(
                        "{topic} partition {} offset {}: {framing:?} framing",
                        message.partition(),
                        message.offset()
                    );
                }
                if options
                    .consumer
                    .max_messages
                    .is_some_and(|max| total >= max)
                {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                consumer.context().brokers_answered();
                let offset = position(consumer, topic, partition)
                    .or_else(|| next_offsets.get(&partition).copied())
                    .map_or("None".to_string(), |o| o.to_string());
                writeln!(
                    out,
                    "topic:{topic}, partition:{partition}, status:end, offset:{offset}, key:None, time:{:.3}",
                    unix_now()
                )
                .map_err(stdout_failed)?;
                out.flush().map_err(stdout_failed)?;
                ends.end(partition);
                if options.consumer.exit_at_end && ends.all_at_end(consumer) {
                    break;
                }
            }
            Some(Err(error)) => errors.report(consumer, topic, &error),
        }
        if let Some(every) = options.every {
            if window.started.elapsed() >= every {
                let line = status_line(consumer, topic, &mut window);
                writeln!(out, "{line}").map_err(stdout_failed)?;
                out.flush().map_err(stdout_failed)?;
                window = Window::new();
            }
        }
    }
    Ok(())
}

/// The consumer's position in a partition (the next offset it will read).
fn position(consumer: &BaseConsumer<ClientLog>, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// `topic:T, status:stats, ...`: rates over the window, lag per partition,
/// and latency (now minus the message timestamp) quantiles.
fn status_line(consumer: &BaseConsumer<ClientLog>, topic: &str, window: &mut Window) -> String {
    let seconds = window.started.elapsed().as_secs_f64().max(1e-9);
    let mut lags = Vec::new();
    let mut total_lag = 0i64;
    if let Ok(assignment) = consumer.assignment() {
        for element in assignment.elements() {
            let partition = element.partition();
            let Ok((low, high)) =
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(1))
            else {
                lags.push(format!("{partition}=?"));
                continue;
            };
            let at = position(consumer, topic, partition).unwrap_or(low);
            let lag = (high - at).max(0);
            total_lag += lag;
            lags.push(format!("{partition}={lag}"));
        }
    }
    window.latencies_ms.sort_unstable();
    let latency = |q| {
        quantile(&window.latencies_ms, q).map_or("None".to_string(), |ms| {
            format!("{:.3}s", ms as f64 / 1000.0)
        })
    };
    format!(
        "topic:{topic}, status:stats, window:{seconds:.1}s, messages:{}, rate:{:.1}/s, throughput:{:.3}MB/s, \
         lag:{total_lag} [{}], latency_p50:{}, latency_p99:{}, time:{:.3}",
        window.messages,
        window.messages as f64 / seconds,
        window.bytes as f64 / 1e6 / seconds,
        lags.join(" "),
        latency(0.5),
        latency(0.99),
        unix_now()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

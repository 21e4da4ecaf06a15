//! `send --pace`: replays an archive with its own timing. Each alert goes
//! out at the start of the loop plus its time in the archive (recorded
//! broker timestamps, or an alert field) since the first alert, divided by
//! `--speed`, so the gaps between alerts, and so between visits, are kept.

use std::time::{Duration, Instant};

use anyhow::Result;
use apache_avro::types::Value;
use base64::Engine;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::alerts::source::SourceAlert;
use crate::archive::Meta;
use crate::exit::bad_input;
use crate::kafka::produce::{
    produce, serve_until, settle, Produced, Producing, LOOP_HEADER, OFFSET_HEADER,
};
use crate::shutdown::Shutdown;

/// What times a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Pace {
    /// The broker timestamps `record` kept.
    Recorded,
    /// A numeric alert field, by its dotted path.
    Field(Vec<String>),
}

impl Pace {
    pub fn parse(text: &str) -> Result<Self> {
        if text == "recorded" {
            return Ok(Self::Recorded);
        }
        let path: Vec<String> = text.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(bad_input(format!(
                "--pace {text:?}: give recorded, or a field path such as candidate.jd"
            )));
        }
        Ok(Self::Field(path))
    }

    /// An alert's time in milliseconds, on the archive's own clock.
    fn time_ms(&self, alert: &SourceAlert) -> Option<f64> {
        match self {
            Self::Recorded => alert.meta.as_ref()?.timestamp.map(|t| t as f64),
            Self::Field(path) => {
                let value = field(&alert.value, path)?;
                let last = path.last()?.to_ascii_lowercase();
                let unit = if last.contains("jd") {
                    86_400_000.0
                } else {
                    1000.0
                };
                Some(value * unit)
            }
        }
    }
}

fn field(value: &Value, path: &[String]) -> Option<f64> {
    let value = match value {
        Value::Union(_, inner) => inner,
        other => other,
    };
    match (value, path) {
        (Value::Record(fields), [first, rest @ ..]) => {
            let (_, inner) = fields.iter().find(|(k, _)| k == first)?;
            field(inner, rest)
        }
        (Value::Double(d), []) => Some(*d),
        (Value::Float(f), []) => Some(f64::from(*f)),
        (Value::Long(l), []) => Some(*l as f64),
        (Value::Int(i), []) => Some(f64::from(*i)),
        _ => None,
    }
}

/// When each alert goes out within a loop: (milliseconds since the loop
/// started, source index), in time order.
pub fn timeline(alerts: &[SourceAlert], pace: &Pace, speed: f64) -> Result<Vec<(u64, usize)>> {
    let mut times = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.iter().enumerate() {
        let time = pace.time_ms(alert).ok_or_else(|| match pace {
            Pace::Recorded => bad_input(format!(
                "--pace recorded: source alert {} has no recorded timestamp (it needs the \
                 .kafka.jsonl sidecar alertstream record writes; use --pace FIELD otherwise)",
                i + 1
            )),
            Pace::Field(path) => bad_input(format!(
                "--pace {}: source alert {} has no number there",
                path.join("."),
                i + 1
            )),
        })?;
        times.push((time, i));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = times.first().map_or(0.0, |t| t.0);
    Ok(times
        .into_iter()
        .map(|(t, i)| (((t - first) / speed).round() as u64, i))
        .collect())
}

/// One alert of a replay, decoded once: its payload, and the key and
/// headers it was recorded with.
pub struct Source {
    pub payload: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Source {
    pub fn new(payload: Vec<u8>, meta: Option<&Meta>) -> Self {
        let decode = |b64: &str| base64::engine::general_purpose::STANDARD.decode(b64).ok();
        Self {
            payload,
            key: meta.and_then(|m| m.key.as_deref()).and_then(decode),
            headers: meta
                .map(|m| {
                    m.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_deref().and_then(decode)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A replay to run.
pub struct Replay<'a> {
    pub topic: &'a str,
    pub sources: &'a [Source],
    pub timeline: &'a [(u64, usize)],
    pub loops: u64,
    pub flush_timeout: Duration,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    pub loops: u64,
    pub produced: u64,
    pub interrupted: bool,
}

/// Sends the replay's loops, each over the whole timeline.
pub fn run(producer: &Producing, replay: &Replay<'_>, shutdown: &Shutdown) -> Replayed {
    let mut replayed = Replayed::default();
    let span = replay.timeline.last().map_or(0, |t| t.0) as f64 / 1000.0;
    'loops: for number in 1..=replay.loops {
        replayed.loops = number;
        let start = Instant::now();
        tracing::info!(
            "replay loop {number}: {} alert(s) over {span:.1}s to {}",
            replay.timeline.len(),
            replay.topic
        );
        for &(offset, index) in replay.timeline {
            if !serve_until(producer, start + Duration::from_millis(offset), shutdown) {
                break 'loops;
            }
            let record = record(replay.topic, &replay.sources[index], number, offset);
            match produce(producer, record, shutdown) {
                Produced::Stopped => break 'loops,
                Produced::Queued | Produced::Refused => replayed.produced += 1,
            }
        }
    }
    settle(producer, replay.flush_timeout, shutdown);
    replayed.interrupted = shutdown.requested();
    replayed
}

/// The record of one replayed alert: its recorded key and headers, and the
/// loop and planned offset.
fn record<'a>(
    topic: &'a str,
    source: &'a Source,
    number: u64,
    offset: u64,
) -> BaseRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(source.headers.len() + 2);
    for (key, value) in &source.headers {
        headers = headers.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    headers = headers
        .insert(Header {
            key: LOOP_HEADER,
            value: Some(&number.to_string()),
        })
        .insert(Header {
            key: OFFSET_HEADER,
            value: Some(&offset.to_string()),
        });
    let record = BaseRecord::to(topic)
        .payload(&source.payload[..])
        .headers(headers);
    match &source.key {
        Some(key) => record.key(&key[..]),
        None => record,
    }
}

//! `send --simulate`: visits made on the fly by the simulator, on every
//! core, while this thread hands them to the producer in order.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Result};
use rdkafka::producer::BaseRecord;

use super::keys::{Keys, MadeKeys};
use super::{connect, report, send_visit, Encoding, SendOptions, Sent, Visit};
use crate::avro::codec::Framing;
use crate::avro::container;
use crate::kafka::produce::{self, produce, Producing, Totals};
use crate::kafka::KafkaSettings;
use crate::schedule;
use crate::shutdown::Shutdown;
use crate::synthetic::{generate, Simulation, VisitPlan};

/// Wraps an alert's bare Avro in the message framing.
pub type Frame = Box<dyn Fn(&[u8], &mut Vec<u8>) + Sync>;

/// How each made alert becomes a message: its framing and its key.
struct Making<'a> {
    frame: &'a Frame,
    keys: &'a MadeKeys,
}

pub async fn run(
    options: &SendOptions,
    simulation: Arc<Simulation>,
    kafka: &KafkaSettings,
    shutdown: &Shutdown,
    quiet: bool,
) -> Result<()> {
    let frame = framing(&options.encoding, simulation.as_ref())?;
    let key_schema = matches!(options.encoding, Encoding::Avro(Framing::KeySchema));
    let keys = Keys::new(options.key.as_deref(), key_schema, &simulation.schema)?;
    let keys = MadeKeys::new(keys, &simulation.schema)?;
    let producer = connect(options, kafka, quiet).await?;
    let totals = RefCell::new(Totals::default());
    let planned = options.schedule.visits();
    if let schedule::Schedule::Repeat { interval, .. } = options.schedule {
        tracing::info!(
            "simulating {} visit(s) of {} alert(s), one at every multiple of {:.3}s of the wall clock",
            planned,
            simulation.simulator.config().count,
            interval.as_secs_f64()
        );
    }
    let outcome = schedule::run(options.schedule, SystemTime::now, shutdown, |number, at| {
        let grid = simulation.grid_of(number, at);
        let plan = simulation.simulator.plan(grid);
        let visit = Visit {
            number,
            grid: grid as u64,
            planned,
            count: plan.alerts.len() as u64,
        };
        let sent = send_visit(&producer, options, visit, shutdown, || {
            let made = Making {
                frame: &frame,
                keys: &keys,
            };
            send_plan(&producer, options, &simulation, &plan, &made, shutdown)
        });
        totals.borrow_mut().add(&sent);
        async {}
    })
    .await;
    report(options, kafka, &producer, outcome, &totals.into_inner())
}

/// Produces a visit's alerts, burst by burst (detector ranges), each burst
/// at its share of `--spread` after the visit started.
fn send_plan(
    producer: &Producing,
    options: &SendOptions,
    simulation: &Simulation,
    plan: &VisitPlan,
    making: &Making<'_>,
    shutdown: &Shutdown,
) -> (u64, usize) {
    let start = Instant::now();
    let mut sent = Sent::default();
    let detectors = simulation.simulator.detectors();
    let bursts = simulation.bursts;
    let mut rest = plan.alerts.as_slice();
    for burst in 0..bursts {
        let last_detector =
            (u64::from(burst + 1) * u64::from(detectors) / u64::from(bursts)) as u32;
        let cut = rest.partition_point(|a| a.detector < last_detector);
        let (part, after) = rest.split_at(cut);
        rest = after;
        let at = start
            + simulation
                .spread
                .mul_f64(f64::from(burst) / f64::from(bursts));
        if !produce::serve_until(producer, at, shutdown) {
            break;
        }
        let mut going = true;
        generate::each(&simulation.simulator, plan, part, making.frame, |made| {
            let key = making.keys.of(&made.payload);
            let mut record = BaseRecord::to(&options.topic)
                .payload(made.payload.as_slice())
                .headers(produce::visit_headers(
                    plan.grid as u64,
                    u64::from(made.alert.slot),
                ));
            if let Some(key) = &key {
                record = record.key(key.as_slice());
            }
            going = sent.add(produce(producer, record, shutdown), made.payload.len());
            going
        });
        if !going {
            break;
        }
    }
    (sent.produced, sent.bytes)
}

/// The framing of every simulated alert; a registry gets the schema once.
pub fn framing(encoding: &Encoding, simulation: &Simulation) -> Result<Frame> {
    let framing = match encoding {
        Encoding::Avro(framing) => *framing,
        Encoding::Registered(registry, subject) => {
            let text = serde_json::to_string(&simulation.schema)?;
            let schema_id = registry
                .register(subject, &text)
                .map_err(|e| anyhow!("cannot register the writer schema under {subject}: {e}"))?;
            tracing::info!("writer schema registered under {subject} as id {schema_id}");
            Framing::Confluent { schema_id }
        }
        Encoding::Json => return Err(anyhow!("--simulate sends Avro: drop --encode-off")),
    };
    Ok(match framing {
        Framing::Schemaless | Framing::KeySchema => {
            Box::new(|bare, out| out.extend_from_slice(bare))
        }
        Framing::Confluent { schema_id } => Box::new(move |bare, out| {
            out.push(0);
            out.extend_from_slice(&schema_id.to_be_bytes());
            out.extend_from_slice(bare);
        }),
        Framing::Container => {
            let text = serde_json::to_string(&simulation.schema)?;
            let sync = *b"alertstream-sim!";
            let header = container::write_header(&text, container::Codec::Null, &[], &sync);
            Box::new(move |bare, out| {
                out.extend_from_slice(&header);
                container::write_block(out, 1, bare, &sync);
            })
        }
    })
}

//! `alertstream simulate`: the simulated stream written to Avro object
//! container files, one per visit, for brokers' offline test suites. The
//! alerts are the ones `send --simulate` sends with the same options.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::avro::container::{self, Codec};
use crate::cli::SimulateArgs;
use crate::durable::{Pending, Written};
use crate::exit::bad_input;
use crate::synthetic::{self, generate, Simulation};

/// Alerts per container block.
const BLOCK_ALERTS: usize = 100;

/// Validated `simulate` options.
#[derive(Debug)]
pub struct SimulateOptions {
    pub out: PathBuf,
    pub visits: u64,
    pub simulation: Simulation,
}

impl SimulateOptions {
    pub fn from_args(args: SimulateArgs) -> Result<Self> {
        if args.visits == 0 {
            return Err(bad_input("--visits must be at least 1"));
        }
        if !(args.interval.is_finite() && args.interval > 0.0) {
            return Err(bad_input(format!(
                "--interval {}: give a positive number of seconds, e.g. 39 or 0.5",
                args.interval
            )));
        }
        if args.sim.bursts.is_some() || args.sim.spread.is_some() {
            return Err(bad_input(
                "--bursts and --spread go with send --simulate: a file holds a visit whole",
            ));
        }
        let simulation = synthetic::simulation(synthetic::Asked {
            survey: args.survey,
            count: u64::from(args.count),
            interval: args.interval,
            stamps: !args.no_stamps,
            args: &args.sim,
        })?;
        Ok(Self {
            out: args.out,
            visits: args.visits,
            simulation,
        })
    }
}

pub fn run(options: SimulateOptions) -> Result<()> {
    std::fs::create_dir_all(&options.out).map_err(|e| {
        bad_input(format!(
            "--out {}: cannot create it: {e}",
            options.out.display()
        ))
    })?;
    let simulation = &options.simulation;
    let first = simulation
        .first_visit
        .unwrap_or_else(|| simulation.grid_of(1, crate::time::since_epoch()));
    let schema = serde_json::to_string(&simulation.schema)?;
    let mut alerts = 0usize;
    for k in 0..options.visits {
        let plan = simulation.simulator.plan(first + k as i64);
        let path = options.out.join(format!("visit-{}.avro", plan.grid));
        write_visit(&path, &schema, simulation, &plan)?;
        alerts += plan.alerts.len();
    }
    tracing::info!(
        "{} visit(s), {alerts} alert(s) written to {}",
        options.visits,
        options.out.display()
    );
    Ok(())
}

/// One visit's container file, written beside its place block by block
/// (memory stays flat however large the visit) and renamed into it.
fn write_visit(
    path: &Path,
    schema: &str,
    simulation: &Simulation,
    plan: &synthetic::VisitPlan,
) -> Result<()> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_string_lossy()),
        _ => return Err(anyhow::anyhow!("{} is no file name", path.display())),
    };
    let pending = Pending::new(dir, &name)?;
    let file = pending.create()?;
    let written = write_blocks(file, schema, simulation, plan)
        .with_context(|| format!("cannot write {}", path.display()))?;
    pending.commit(written)
}

fn write_blocks(
    file: Written,
    schema: &str,
    simulation: &Simulation,
    plan: &synthetic::VisitPlan,
) -> std::io::Result<Written> {
    let sync: [u8; 16] = *b"alertstream-sim!";
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(&container::write_header(schema, Codec::Null, &[], &sync))?;
    let (mut block, mut framed) = (Vec::new(), Vec::new());
    let mut in_block = 0;
    let mut failed = Ok(());
    let mut flush = |block: &mut Vec<u8>, count: usize, out: &mut std::io::BufWriter<_>| {
        framed.clear();
        container::write_block(&mut framed, count as u64, block, &sync);
        block.clear();
        out.write_all(&framed)
    };
    let frame = |bare: &[u8], out: &mut Vec<u8>| out.extend_from_slice(bare);
    generate::each(&simulation.simulator, plan, &plan.alerts, &frame, |made| {
        block.extend_from_slice(&made.payload);
        in_block += 1;
        if in_block == BLOCK_ALERTS {
            failed = flush(&mut block, in_block, &mut out);
            in_block = 0;
        }
        failed.is_ok()
    });
    failed?;
    if in_block > 0 {
        flush(&mut block, in_block, &mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())
}

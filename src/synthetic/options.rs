//! `--simulate` and `simulate` options, checked before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use apache_avro::Schema;

use super::model::{Mix, Survey};
use super::survey::{Config, Simulator};
use crate::cli::{SimArgs, SurveyName};
use crate::exit::bad_input;

/// The default seed: every run of the same options and start agrees.
pub const DEFAULT_SEED: u64 = 1;

/// A simulator ready to make visits, and how its visits go out.
#[derive(Debug)]
pub struct Simulation {
    pub simulator: Simulator,
    pub schema: Schema,
    /// The grid visit of `--start`; `None`: visits follow the wall clock.
    pub first_visit: Option<i64>,
    pub bursts: u32,
    pub spread: Duration,
}

impl Simulation {
    /// The grid visit the `number`th visit (from 1) takes, scheduled at `at` (since the epoch).
    pub fn grid_of(&self, number: u64, at: Duration) -> i64 {
        match self.first_visit {
            Some(first) => first + number as i64 - 1,
            // The tick of a scheduled visit, or the last one already taken
            // for a single visit: never a time in the future.
            None => self.simulator.grid_before(at.as_secs_f64()),
        }
    }
}

/// What the command line says of the simulation.
pub struct Asked<'a> {
    pub survey: SurveyName,
    pub count: u64,
    pub interval: f64,
    pub stamps: bool,
    pub args: &'a SimArgs,
}

pub fn simulation(asked: Asked<'_>) -> Result<Simulation> {
    let args = asked.args;
    let survey = match asked.survey {
        SurveyName::Ztf => Survey::Ztf,
        SurveyName::Rubin => Survey::Rubin,
    };
    let schema = schema(survey, &args.schema)?;
    let count = u32::try_from(asked.count).unwrap_or(u32::MAX);
    let mix = match &args.mix {
        Some(text) => Mix::parse(text).map_err(|e| bad_input(format!("--mix: {e}")))?,
        None => Mix::default(),
    };
    let config = Config {
        survey,
        seed: args.seed.unwrap_or(DEFAULT_SEED),
        count,
        objects: args.objects.unwrap_or(20 * u64::from(count)),
        fields: args.fields.unwrap_or(4),
        interval: asked.interval,
        mix,
        shard: shard(args.shard.as_deref(), args.shard_slot.as_deref())?,
        stamps: asked.stamps,
    };
    config.check()?;
    let bursts = args.bursts.unwrap_or(1);
    if args.spread.is_some() && bursts < 2 {
        return Err(bad_input(
            "--spread goes with --bursts N (N > 1): it spreads a visit's bursts over the seconds given",
        ));
    }
    let spread = args.spread.unwrap_or(0.0);
    if !(spread.is_finite() && spread >= 0.0) {
        return Err(bad_input("--spread must be a number of seconds >= 0"));
    }
    let simulator = Simulator::new(config, &schema)?;
    let detectors = simulator.detectors();
    if bursts == 0 || bursts > detectors {
        return Err(bad_input(format!(
            "--bursts {bursts}: give 1 to {detectors} (one burst per detector at most)"
        )));
    }
    let first_visit = match &args.start {
        Some(text) => {
            let ms = crate::time::parse("--start", text)?;
            let first = simulator.grid_at(ms as f64 / 1000.0);
            tracing::info!(
                "first simulated visit at {} (--start on the {}s grid of --interval)",
                simulator.time_of(first),
                asked.interval
            );
            Some(first)
        }
        None => None,
    };
    Ok(Simulation {
        simulator,
        schema,
        first_visit,
        bursts,
        spread: Duration::from_secs_f64(spread),
    })
}

fn schema(survey: Survey, paths: &[PathBuf]) -> Result<Schema> {
    match (survey, paths.is_empty()) {
        (_, false) => crate::avro::schema::load(paths),
        (Survey::Ztf, true) => Ok(crate::avro::schema::built_in()),
        (Survey::Rubin, true) => Err(bad_input(
            "simulating Rubin alerts needs Rubin's published schema: --schema DIR (e.g. \
             lsst-alert-packet's schema/11/1; pip install lsst-alert-packet)",
        )),
    }
}

/// `--shard I/N` (0 <= I < N), or `--shard-slot S/N` (1 <= S <= N).
fn shard(shard: Option<&str>, slot: Option<&str>) -> Result<(u32, u32)> {
    let numbers = |text: &str| {
        text.split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)))
    };
    match (shard, slot) {
        (Some(text), _) => match numbers(text) {
            Some((i, n)) if n > 0 && i < n => Ok((i, n)),
            _ => Err(bad_input(format!(
                "--shard {text}: give I/N with 0 <= I < N, e.g. 0/2 and 1/2 on two hosts"
            ))),
        },
        (None, Some(text)) => match numbers(text) {
            Some((s, n)) if n > 0 && (1..=n).contains(&s) => Ok((s - 1, n)),
            _ => Err(bad_input(format!(
                "--shard-slot {text}: give S/N with 1 <= S <= N (Docker Swarm's {{{{.Task.Slot}}}}/replicas)"
            ))),
        },
        (None, None) => Ok((0, 1)),
    }
}

/// Whether --shard-slot came on the command line: ALERTSTREAM_SHARD_SLOT in
/// the environment (a stack file's, shared by every service) is no mistake
/// for a plain send, which ignores it.
fn given_as_flag(slot: Option<&str>) -> bool {
    slot.is_some() && std::env::var("ALERTSTREAM_SHARD_SLOT").ok().as_deref() != slot
}

/// Refuses simulation options given without `--simulate`.
pub fn refuse_without_simulate(args: &SimArgs) -> Result<()> {
    let given = [
        (!args.schema.is_empty(), "--schema"),
        (args.seed.is_some(), "--seed"),
        (args.start.is_some(), "--start"),
        (args.fields.is_some(), "--fields"),
        (args.objects.is_some(), "--objects"),
        (args.mix.is_some(), "--mix"),
        (args.bursts.is_some(), "--bursts"),
        (args.spread.is_some(), "--spread"),
        (args.shard.is_some(), "--shard"),
        (given_as_flag(args.shard_slot.as_deref()), "--shard-slot"),
    ];
    match given.iter().find(|(set, _)| *set) {
        Some((_, flag)) => Err(bad_input(format!("{flag} goes with --simulate ztf|rubin"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_checked() {
        assert_eq!(shard(None, None).unwrap(), (0, 1));
        assert_eq!(shard(Some("1/2"), None).unwrap(), (1, 2));
        assert_eq!(shard(None, Some("3/3")).unwrap(), (2, 3));
        for bad in ["2/2", "0/0", "1", "a/b", "-1/2"] {
            assert!(shard(Some(bad), None).is_err(), "{bad}");
        }
        for bad in ["0/3", "4/3", "x"] {
            assert!(shard(None, Some(bad)).is_err(), "{bad}");
        }
    }
}

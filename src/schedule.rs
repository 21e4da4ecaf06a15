//! When visits go out. A survey exposes on a fixed cadence, so with `--repeat`
//! visits start on wall-clock multiples of the interval (every :00, :39, :18
//! ... for 39 s) rather than drifting with each visit's duration. A visit that
//! overruns its interval is reported and the schedule moves to the next free
//! tick: no catch-up burst.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::shutdown::Shutdown;

/// Seconds between visits unless told otherwise: Rubin's cadence, and the
/// grid simulated visits are numbered on.
pub const DEFAULT_INTERVAL: f64 = 39.0;

/// The visits to send: how many and how far apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// One visit, at once.
    Once,
    /// `visits` visits, each on a wall-clock multiple of `interval`.
    Repeat { interval: Duration, visits: u64 },
}

impl Schedule {
    /// How many visits it plans.
    pub fn visits(&self) -> u64 {
        match self {
            Schedule::Once => 1,
            Schedule::Repeat { visits, .. } => *visits,
        }
    }
}

/// What happened to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Visits started.
    pub visits: u64,
    /// Ticks skipped because a visit overran its interval.
    pub skipped_ticks: u64,
    /// A stop was requested before every visit went out.
    pub interrupted: bool,
}

/// The first multiple of `interval` since the Unix epoch at or after `now`.
pub fn next_tick(now: Duration, interval: Duration) -> Duration {
    let step = interval.as_nanos().max(1);
    let now_ns = now.as_nanos();
    let ticks = now_ns.div_ceil(step);
    nanos(ticks * step)
}

/// The tick `at` falls in: visit numbers on the wall clock's grid of
/// `interval`, unique across runs and equal on every host.
pub fn grid_number(at: Duration, interval: Duration) -> u64 {
    (at.as_nanos() / interval.as_nanos().max(1)) as u64
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

/// Runs `visit(number, at)` by the schedule, `at` being the visit's tick
/// (the wall clock for a single visit) since the Unix epoch. `wall` reads the wall clock (a
/// parameter so tests can pair it with tokio's paused clock); waiting uses
/// tokio's clock, so a stop request interrupts a wait at once.
pub async fn run<W, V, F>(schedule: Schedule, wall: W, shutdown: &Shutdown, mut visit: V) -> Outcome
where
    W: Fn() -> SystemTime,
    V: FnMut(u64, Duration) -> F,
    F: Future<Output = ()>,
{
    let mut outcome = Outcome {
        visits: 0,
        skipped_ticks: 0,
        interrupted: false,
    };
    let since_epoch = || wall().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (interval, visits) = match schedule {
        Schedule::Once => {
            if !shutdown.requested() {
                visit(1, since_epoch()).await;
                outcome.visits = 1;
            }
            outcome.interrupted = shutdown.requested();
            return outcome;
        }
        Schedule::Repeat { interval, visits } => (interval, visits),
    };
    let mut previous: Option<Duration> = None;
    for number in 1..=visits {
        let now = since_epoch();
        let mut tick = next_tick(now, interval);
        if let Some(previous) = previous {
            // Never two visits on one tick, even if a visit took no time at all.
            if tick <= previous {
                tick = previous + interval;
            }
            let missed = (tick - previous).as_nanos() / interval.as_nanos().max(1) - 1;
            if missed > 0 {
                tracing::warn!(
                    "visit {} overran its {:.3}s interval; skipping {missed} tick(s), next visit at {}",
                    number - 1,
                    interval.as_secs_f64(),
                    crate::time::rfc3339_utc(tick.as_millis() as i64)
                );
                outcome.skipped_ticks += missed as u64;
            }
        }
        let wait = tick.saturating_sub(now);
        if number == 1 {
            tracing::info!(
                "first visit at {} (in {:.1}s), then one every {:.3}s",
                crate::time::rfc3339_utc(tick.as_millis() as i64),
                wait.as_secs_f64(),
                interval.as_secs_f64()
            );
        }
        tracing::debug!(
            "visit {number} at {:.3} (in {:.3}s)",
            tick.as_secs_f64(),
            wait.as_secs_f64()
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => {}
        }
        if shutdown.requested() {
            outcome.interrupted = true;
            return outcome;
        }
        visit(number, tick).await;
        outcome.visits = number;
        previous = Some(tick);
        // Stopped during the visit: no next tick to speak of.
        if shutdown.requested() {
            outcome.interrupted = number < visits;
            return outcome;
        }
    }
    outcome.interrupted = shutdown.requested() && outcome.visits < visits;
    outcome
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use tokio::time::Instant;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn ticks_align_to_the_wall_clock() {
        let i = secs(39.0);
        assert_eq!(next_tick(secs(0.0), i), secs(0.0));
        assert_eq!(next_tick(secs(1.0), i), secs(39.0));
        assert_eq!(next_tick(secs(39.0), i), secs(39.0));
        assert_eq!(next_tick(secs(39.001), i), secs(78.0));
        assert_eq!(next_tick(secs(100.3), secs(0.5)), secs(100.5));
        assert_eq!(grid_number(secs(78.0), i), 2);
        assert_eq!(grid_number(secs(116.9), i), 2);
        assert_eq!(
            grid_number(next_tick(secs(1_795_838_255.4), secs(0.5)), secs(0.5)),
            3_591_676_511
        );
    }

    /// A wall clock that starts at `start` seconds and follows tokio's (paused) clock.
    fn paused_wall(start: f64) -> impl Fn() -> SystemTime {
        let origin = Instant::now();
        move || UNIX_EPOCH + secs(start) + origin.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn visits_start_on_ticks() {
        let start = Instant::now();
        let times = RefCell::new(Vec::new());
        let schedule = Schedule::Repeat {
            interval: secs(0.5),
            visits: 3,
        };
        let outcome = run(
            schedule,
            paused_wall(100.3),
            &Shutdown::default(),
            |n, _| {
                times.borrow_mut().push((n, start.elapsed()));
                async {}
            },
        )
        .await;
        assert_eq!(
            outcome,
            Outcome {
                visits: 3,
                skipped_ticks: 0,
                interrupted: false
            }
        );
        let times = times.into_inner();
        let expected = [(1, 0.2), (2, 0.7), (3, 1.2)];
        for ((n, at), (en, eat)) in times.iter().zip(expected) {
            assert_eq!(*n, en);
            assert!(
                (at.as_secs_f64() - eat).abs() < 1e-6,
                "visit {n} at {at:?}, expected {eat}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrun_skips_to_the_next_free_tick_without_catching_up() {
        let start = Instant::now();
        let times = RefCell::new(Vec::new());
        let schedule = Schedule::Repeat {
            interval: secs(0.5),
            visits: 3,
        };
        let outcome = run(
            schedule,
            paused_wall(100.0),
            &Shutdown::default(),
            |n, _| {
                times.borrow_mut().push(start.elapsed().as_secs_f64());
                // The first visit takes 0.7 s, longer than the interval.
                async move {
                    if n == 1 {
                        tokio::time::sleep(secs(0.7)).await;
                    }
                }
            },
        )
        .await;
        assert_eq!(outcome.visits, 3);
        assert_eq!(outcome.skipped_ticks, 1);
        let times = times.into_inner();
        assert_eq!(times.len(), 3);
        assert!((times[0] - 0.0).abs() < 1e-6, "{times:?}");
        assert!((times[1] - 1.0).abs() < 1e-6, "{times:?}");
        assert!((times[2] - 1.5).abs() < 1e-6, "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_ends_the_wait_at_once() {
        let shutdown = Shutdown::default();
        let stopper = shutdown.clone();
        let start = Instant::now();
        let schedule = Schedule::Repeat {
            interval: secs(39.0),
            visits: 10,
        };
        let count = RefCell::new(0);
        let outcome = run(schedule, paused_wall(1.0), &shutdown, |_, _| {
            *count.borrow_mut() += 1;
            // Stop during the first visit: the wait for the second is cut short.
            stopper.request();
            async {}
        })
        .await;
        assert_eq!(
            outcome,
            Outcome {
                visits: 1,
                skipped_ticks: 0,
                interrupted: true
            }
        );
        assert_eq!(*count.borrow(), 1);
        assert!(start.elapsed() < secs(39.0), "waited {:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn once_sends_at_once() {
        let start = Instant::now();
        let outcome = run(
            Schedule::Once,
            SystemTime::now,
            &Shutdown::default(),
            |_, _| async {},
        )
        .await;
        assert_eq!(outcome.visits, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

//! Making a visit's alerts on every core while the caller sends them, in
//! order. Workers take chunks of the visit; the caller receives them in
//! sequence. At most a few chunks wait at once, so memory stays flat however
//! large the visit.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

use super::survey::{Planned, Simulator, VisitPlan};

/// Alerts per chunk: large enough to share the work cheaply, small enough
/// that the first alerts go out at once.
const CHUNK: usize = 32;

/// One alert, as it goes on the wire, and where it sits in the plan.
pub struct Made {
    pub alert: Planned,
    pub payload: Vec<u8>,
}

struct Progress {
    /// The next chunk a worker takes.
    next: usize,
    /// The next chunk the caller wants.
    wanted: usize,
    ready: BTreeMap<usize, Vec<Made>>,
    stopped: bool,
}

/// Makes `alerts` (a part of `plan`) with `frame` around each alert's bare
/// Avro, and hands them to `sink` in order; `sink` returns false to stop.
pub fn each<F>(
    simulator: &Simulator,
    plan: &VisitPlan,
    alerts: &[Planned],
    frame: &F,
    mut sink: impl FnMut(Made) -> bool,
) where
    F: Fn(&[u8], &mut Vec<u8>) + Sync,
{
    let chunks = alerts.len().div_ceil(CHUNK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.max(1));
    let state = Mutex::new(Progress {
        next: 0,
        wanted: 0,
        ready: BTreeMap::new(),
        stopped: false,
    });
    let changed = Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let chunk = {
                    let mut s = lock();
                    while !s.stopped && s.next < chunks && s.next >= s.wanted + 2 * workers {
                        s = changed.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                    if s.stopped || s.next >= chunks {
                        return;
                    }
                    s.next += 1;
                    s.next - 1
                };
                let part = &alerts[chunk * CHUNK..((chunk + 1) * CHUNK).min(alerts.len())];
                let made = make(simulator, plan, part, frame);
                lock().ready.insert(chunk, made);
                changed.notify_all();
            });
        }
        for chunk in 0..chunks {
            let made = {
                let mut s = lock();
                loop {
                    if let Some(made) = s.ready.remove(&chunk) {
                        s.wanted = chunk + 1;
                        break made;
                    }
                    s = changed.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            changed.notify_all();
            let mut going = true;
            for one in made {
                if going && !sink(one) {
                    going = false;
                }
            }
            if !going {
                lock().stopped = true;
                changed.notify_all();
                return;
            }
        }
    });
}

fn make<F>(simulator: &Simulator, plan: &VisitPlan, part: &[Planned], frame: &F) -> Vec<Made>
where
    F: Fn(&[u8], &mut Vec<u8>),
{
    let mut bare = Vec::with_capacity(64 * 1024);
    part.iter()
        .map(|alert| {
            bare.clear();
            simulator.encode(plan, alert, &mut bare);
            let mut payload = Vec::with_capacity(bare.len() + 16);
            frame(&bare, &mut payload);
            Made {
                alert: *alert,
                payload,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alerts come out in plan order, each as the simulator encodes it alone;
    /// a sink that says stop gets nothing more.
    #[test]
    fn alerts_come_in_order_and_stop_when_asked() {
        let simulator = super::super::survey::test_simulator(200);
        let plan = simulator.plan(46_051_662);
        let frame = |bare: &[u8], out: &mut Vec<u8>| out.extend_from_slice(bare);
        let mut seen = Vec::new();
        each(&simulator, &plan, &plan.alerts, &frame, |made| {
            seen.push(made);
            true
        });
        assert_eq!(seen.len(), plan.alerts.len());
        for (made, planned) in seen.iter().zip(&plan.alerts) {
            assert_eq!(made.alert.slot, planned.slot);
            let mut alone = Vec::new();
            simulator.encode(&plan, planned, &mut alone);
            assert_eq!(made.payload, alone);
        }
        let mut taken = 0;
        each(&simulator, &plan, &plan.alerts, &frame, |_| {
            taken += 1;
            taken < 40
        });
        assert_eq!(taken, 40);
    }
}

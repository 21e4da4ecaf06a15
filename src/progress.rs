//! Progress bars, all in one place. They draw only when stderr is a terminal
//! and logging is not quieted, so scripts and logs stay clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting acknowledged alerts of one visit.
pub fn deliveries(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} alerts acknowledged ({per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Starts the bar over for a visit of `count` alerts.
pub fn start_visit(bar: &ProgressBar, visit: u64, count: u64) {
    bar.reset();
    bar.set_length(count);
    bar.set_prefix(format!("visit {visit}"));
}

/// Rates over shorter spans than this say nothing (one message takes ~0 s).
const MIN_RATE_SPAN: f64 = 0.01;

/// `count` per second over `seconds`, e.g. "12345 alerts/s", or "n/a" when
/// the span is too short to mean anything.
pub fn rate(count: u64, seconds: f64, unit: &str) -> String {
    if count < 2 {
        return format!("rate n/a: {count} only");
    }
    if seconds < MIN_RATE_SPAN {
        return "rate n/a: too short a span".to_string();
    }
    format!("{:.0} {unit}", count as f64 / seconds)
}

/// Alerts and megabytes per second, e.g. "12345 alerts/s, 184.7 MB/s", or
/// the same "rate n/a" as [`rate`].
pub fn rates(alerts: u64, bytes: u64, seconds: f64) -> String {
    if alerts < 2 || seconds < MIN_RATE_SPAN {
        return rate(alerts, seconds, "");
    }
    format!(
        "{:.0} alerts/s, {:.1} MB/s",
        alerts as f64 / seconds,
        bytes as f64 / 1e6 / seconds
    )
}

/// A bar for commands that consume (record, filter): alerts handled, their
/// rate, and how many messages are left before the end of the assigned
/// partitions: the ends asked of the brokers once a second, the positions
/// read locally ten times a second, so the count moves with every batch.
pub struct ConsumeBar {
    bar: ProgressBar,
    ends: Option<std::collections::BTreeMap<i32, (i64, i64)>>,
    asked: Option<Instant>,
    drawn: Instant,
}

impl ConsumeBar {
    pub fn new(quiet: bool, verb: &str) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let template = format!("{{spinner}} {{human_pos}} alerts {verb} ({{rate}}) {{msg}}");
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner())
                    .with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}/s", state.per_sec());
                        },
                    ),
            );
            bar
        };
        Self {
            bar,
            ends: None,
            asked: None,
            drawn: Instant::now(),
        }
    }

    pub fn inc(&self, alerts: u64) {
        self.bar.inc(alerts);
    }

    /// Updates the messages left: the first ends as soon as partitions are
    /// assigned, then once a second.
    pub fn tick(
        &mut self,
        consumer: &rdkafka::consumer::BaseConsumer<crate::kafka::ClientLog>,
        topic: &str,
    ) {
        if self.bar.is_hidden() {
            return;
        }
        if self
            .asked
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            if let Some(ends) = crate::kafka::consume::ends(consumer, topic) {
                self.ends = Some(ends);
                self.asked = Some(Instant::now());
            }
        } else if self.drawn.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.drawn = Instant::now();
        if let Some(ends) = &self.ends {
            let left = crate::kafka::consume::left(consumer, topic, ends);
            self.bar
                .set_message(format!("{} left", indicatif::HumanCount(left as u64)));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_a_span() {
        assert_eq!(rate(1, 0.0, "alerts/s"), "rate n/a: 1 only");
        assert_eq!(rate(1, 5.0, "alerts/s"), "rate n/a: 1 only");
        assert_eq!(rate(100, 0.001, "alerts/s"), "rate n/a: too short a span");
        assert_eq!(rate(100, 2.0, "alerts/s"), "50 alerts/s");
        assert_eq!(rates(100, 5_000_000, 2.0), "50 alerts/s, 2.5 MB/s");
        assert_eq!(rates(100, 5_000_000, 0.001), "rate n/a: too short a span");
    }
}

//! Progress bars, all in one place. They draw only when stderr is a terminal
//! and logging is not quieted, so scripts and logs stay clean.

use std::io::IsTerminal;

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

//! Logs go to stderr through `tracing`, so stdout carries only data.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `RUST_LOG` wins; otherwise -q shows errors, the default shows this tool's
/// progress (info) and others' warnings, each -v adds detail. `RUST_LOG`
/// takes `LEVEL` and `target=LEVEL` directives, comma-separated (tracing's
/// `Targets`: the span and field filters of `EnvFilter` would cost a regex
/// engine in every build, for nothing an operator of this tool asks).
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,alertstream=info",
        (false, 1) => "info,alertstream=debug",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().expect("the built-in log levels parse"));
    let format = tracing_subscriber::fmt::layer()
        .with_writer(|| QuietStderr)
        .with_target(verbose > 0)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .try_init();
}

/// stderr that drops what it cannot write. When the reader of stderr has
/// gone (`2>&1 | head -1`), a log line must not fail the command:
/// tracing-subscriber would report the failed write on stderr itself, which
/// panics.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

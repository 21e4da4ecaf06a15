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
    let rust_log = std::env::var("RUST_LOG").ok();
    let format = tracing_subscriber::fmt::layer()
        .with_writer(|| QuietStderr)
        .with_target(verbose > 0)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter(rust_log.as_deref(), verbose, quiet))
        .try_init();
}

/// What is logged: `RUST_LOG` if it parses, else the level -v and -q ask for.
fn filter(rust_log: Option<&str>, verbose: u8, quiet: bool) -> Targets {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,alertstream=info",
        (false, 1) => "info,alertstream=debug",
        (false, 2) => "debug",
        _ => "trace",
    };
    // As EnvFilter read it: spaces around directives and empty ones ignored.
    let directives = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    // An empty list would parse, as "log nothing".
    (!directives.is_empty())
        .then(|| directives.parse().ok())
        .flatten()
        .unwrap_or_else(|| default.parse().expect("the built-in levels parse"))
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

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing::Level;

    #[test]
    fn rust_log_wins_over_the_flags_and_a_bad_one_is_ignored() {
        let quiet = filter(None, 0, true);
        assert!(!quiet.would_enable("alertstream", &Level::WARN));
        let default = filter(None, 0, false);
        assert!(default.would_enable("alertstream::kafka", &Level::INFO));
        assert!(!default.would_enable("rdkafka", &Level::INFO));
        assert!(filter(None, 1, false).would_enable("alertstream", &Level::DEBUG));
        let set = filter(Some("warn,alertstream=debug"), 0, true);
        assert!(set.would_enable("alertstream::record", &Level::DEBUG));
        assert!(!set.would_enable("rdkafka", &Level::INFO));
        let spaced = filter(Some(" warn, alertstream=debug ,"), 0, true);
        assert!(spaced.would_enable("alertstream", &Level::DEBUG));
        assert!(spaced.would_enable("rdkafka", &Level::WARN));
        let bad = filter(Some("alertstream=loud"), 0, true);
        assert!(!bad.would_enable("alertstream", &Level::WARN));
        assert!(bad.would_enable("alertstream", &Level::ERROR));
        let empty = filter(Some(""), 1, false);
        assert!(empty.would_enable("alertstream", &Level::DEBUG));
    }
}

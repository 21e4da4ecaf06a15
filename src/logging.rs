//! Logs go to stderr through `tracing`, so stdout carries only data.

use tracing_subscriber::filter::{LevelFilter, Targets};
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
    let (targets, refused) = filter(rust_log.as_deref(), verbose, quiet);
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(targets)
        .try_init();
    // Said even under -q: RUST_LOG was to take precedence over it.
    match refused {
        Some(refused) if quiet => tracing::error!("{refused}"),
        Some(refused) => tracing::warn!("{refused}"),
        None => {}
    }
}

/// Levels a bare `RUST_LOG` directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Targets this tool logs under, which a bare directive may name.
const TARGETS: [&str; 3] = ["alertstream", "librdkafka", "rdkafka"];

/// What is logged: `RUST_LOG` if it parses, else the level -v and -q ask
/// for; with why `RUST_LOG` was set aside, if it was.
fn filter(rust_log: Option<&str>, verbose: u8, quiet: bool) -> (Targets, Option<String>) {
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
    let fallback = || default.parse().expect("the built-in levels parse");
    // An empty list would parse, as "log nothing".
    if directives.is_empty() {
        return (fallback(), None);
    }
    // A misspelled level ("degub") parses as a target that never logs.
    let ours = |d: &str| {
        TARGETS.iter().any(|t| {
            d.strip_prefix(t)
                .is_some_and(|r| r.is_empty() || r.starts_with("::"))
        })
    };
    let stray = directives
        .split(',')
        .find(|d| !d.contains('=') && d.parse::<LevelFilter>().is_err() && !ours(d));
    let refused = match (stray, directives.parse::<Targets>()) {
        (None, Ok(targets)) => return (targets, None),
        (Some(stray), _) => format!(
            "RUST_LOG ignored: {stray:?} is neither a level ({}) nor a target of this tool \
             ({}); other targets take target=LEVEL",
            LEVELS.join(", "),
            TARGETS.join(", ")
        ),
        (None, Err(e)) => {
            let bad = directives
                .split(',')
                .find(|d| d.parse::<Targets>().is_err())
                .unwrap_or(&directives);
            format!("RUST_LOG ignored: {bad:?} does not parse ({e}); directives are LEVEL or target=LEVEL")
        }
    };
    (fallback(), Some(refused))
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

    /// A misspelled level is not taken for a target that never logs: the
    /// flags decide, and the warning says why.
    #[test]
    fn a_misspelled_level_sets_rust_log_aside_and_says_so() {
        let (targets, refused) = filter(Some("degub"), 1, false);
        assert!(targets.would_enable("alertstream", &Level::DEBUG));
        let refused = refused.unwrap();
        assert!(
            refused.contains("\"degub\" is neither a level"),
            "{refused}"
        );
        let (_, bad) = filter(Some("warn,alertstream=loud"), 0, false);
        let bad = bad.unwrap();
        assert!(
            bad.starts_with("RUST_LOG ignored: \"alertstream=loud\" does not parse"),
            "{bad}"
        );
        for fine in [
            "DEBUG",
            "5",
            "alertstream",
            "alertstream::kafka",
            "librdkafka=debug",
            "h2=off,info",
        ] {
            assert_eq!(filter(Some(fine), 0, false).1, None, "{fine}");
        }
        assert!(filter(Some("alertstreamx"), 0, false).1.is_some());
    }

    #[test]
    fn rust_log_wins_over_the_flags_and_a_bad_one_is_ignored() {
        let filter = |rust_log, verbose, quiet| filter(rust_log, verbose, quiet).0;
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

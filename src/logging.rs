//! Logs go to stderr through `tracing`, so stdout carries only data.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins; otherwise -q shows errors, the default shows this tool's
/// progress (info) and others' warnings, each -v adds detail.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,alertstream=info",
        (false, 1) => "info,alertstream=debug",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 0)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

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
        .with_writer(|| QuietStderr)
        .with_target(verbose > 0)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

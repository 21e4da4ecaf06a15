//! alertstream: distributes astronomical alert streams over Apache Kafka.
//!
//! Where things live: `cli` (flags), `commands/` (one file per subcommand),
//! `kafka/` (client configuration, admin, consumer plumbing), `avro/` (the
//! codec), `alerts/` (alert sources and cutouts), `schedule` (visit timing),
//! `view/` (the web page of `view`), `progress` (progress bars), `shutdown` (Ctrl-C and SIGTERM), `exit` (exit codes).

pub mod alerts;
pub mod archive;
pub mod avro;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod durable;
pub mod exit;
pub mod expr;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod page;
pub mod progress;
pub mod schedule;
pub mod shutdown;
pub mod synthetic;
pub mod time;

use std::io::Write;
use std::process::ExitCode;

/// The most apache-avro may allocate for one value: alerts are at most a few
/// MB, and a hostile length must not reserve gigabytes.
const MAX_ALLOCATION: usize = 64 << 20;

/// Parses the command line, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
    let cli = cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "alertstream: cannot start the async runtime: {e}"
            );
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln!: it panics when stderr's reader has gone.
            let _ = writeln!(
                std::io::stderr(),
                "alertstream: error: {}",
                one_line(&error)
            );
            ExitCode::from(exit::code_of(&error))
        }
    }
}

/// The error and its causes on one line, outermost first, without repeats.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

//! One file per subcommand. Each turns its parsed arguments into validated
//! options first, so that bad input fails before any Kafka client starts.

pub mod completions;
pub mod man;
pub mod monitor;
pub mod print;
pub mod send;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::kafka::KafkaSettings;
use crate::shutdown::Shutdown;

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    let kafka = || {
        KafkaSettings::new(
            &global.brokers,
            global.kafka_config.as_deref(),
            &global.kafka,
        )
    };
    match cli.command {
        Command::Send(args) => {
            let options = send::SendOptions::from_args(args)?;
            send::run(options, kafka()?, Shutdown::install(), global.quiet).await
        }
        Command::Print(args) => {
            let options = print::PrintOptions::from_args(args)?;
            print::run(options, kafka()?, Shutdown::install()).await
        }
        Command::Monitor(args) => {
            let options = monitor::MonitorOptions::from_args(args)?;
            monitor::run(options, kafka()?, Shutdown::install()).await
        }
        Command::Completions(args) => completions::run(args.shell),
        Command::Man => man::run(),
    }
}

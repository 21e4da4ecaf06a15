//! One file per subcommand. Each turns its parsed arguments into validated
//! options first, so that bad input fails before any Kafka client starts.

pub mod completions;
pub mod filter;
pub mod man;
pub mod monitor;
pub mod print;
pub mod record;
pub mod replay;
pub mod send;

use std::sync::Arc;

use anyhow::Result;
use rdkafka::message::{BorrowedMessage, Message};

use crate::avro::ids::{RegistryUnavailable, SchemaIds, UnknownSchemaId};
use crate::avro::registry::Registry;

use crate::exit::bad_input;

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
    let serves = !matches!(cli.command, Command::Completions(_) | Command::Man);
    if let (Some(addr), true) = (&global.metrics, serves) {
        crate::metrics::serve(addr)?;
    }
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
        Command::Record(args) => {
            let options = record::RecordOptions::from_args(args)?;
            record::run(options, kafka()?, Shutdown::install(), global.quiet).await
        }
        Command::Filter(args) => {
            let options = filter::FilterOptions::from_args(args)?;
            filter::run(options, kafka()?, Shutdown::install(), global.quiet).await
        }
        Command::Completions(args) => completions::run(args.shell),
        Command::Man => man::run(),
    }
}

/// How a consuming command decodes: reader schema, framing, size limit.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub schema: Vec<std::path::PathBuf>,
    pub kind: Option<crate::avro::codec::Kind>,
    pub max_alert_bytes: usize,
    /// Writer schemas by Confluent id, if a registry or --schema-dir was given.
    pub ids: Option<Arc<SchemaIds>>,
}

impl DecodeOptions {
    pub fn new(
        schema: Vec<std::path::PathBuf>,
        format: crate::cli::ReadFormat,
        max_alert_bytes: &str,
        ids: &crate::cli::SchemaIdArgs,
    ) -> Result<Self> {
        use crate::avro::codec::Kind;
        use crate::cli::ReadFormat;
        Ok(Self {
            schema,
            kind: match format {
                ReadFormat::Auto => None,
                ReadFormat::Schemaless => Some(Kind::Schemaless),
                ReadFormat::Container => Some(Kind::Container),
                ReadFormat::Confluent => Some(Kind::Confluent),
            },
            max_alert_bytes: byte_size("--max-alert-bytes", max_alert_bytes)?,
            ids: schema_ids(ids)?,
        })
    }

    pub fn from_args(args: crate::cli::DecodeArgs) -> Result<Self> {
        Self::new(args.schema, args.wire, &args.max_alert_bytes, &args.ids)
    }

    /// The reader schema: the built-in one, or `--schema`.
    pub fn reader_schema(&self) -> Result<apache_avro::Schema> {
        if self.schema.is_empty() {
            Ok(crate::avro::schema::built_in())
        } else {
            crate::avro::schema::load(&self.schema)
        }
    }

    /// The decoder: the built-in schema, or `--schema` (then containers are
    /// resolved to it too).
    pub fn decoder(&self) -> Result<crate::avro::codec::Decoder> {
        let reader = self.reader_schema()?;
        Ok(
            crate::avro::codec::Decoder::new(reader, !self.schema.is_empty())
                .with_kind(self.kind)
                .with_max_alert_bytes(self.max_alert_bytes)
                .with_schema_ids(self.ids.clone()),
        )
    }
}

/// The registry and `--schema-dir`, checked (files read, folders made)
/// before any Kafka client starts.
fn schema_ids(args: &crate::cli::SchemaIdArgs) -> Result<Option<Arc<SchemaIds>>> {
    let registry = match &args.registry.url {
        Some(_) => Some(Registry::new(&args.registry.options())?),
        None => None,
    };
    if let Some(dir) = args.schema_dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(bad_input(format!(
            "--schema-dir {}: not a folder (give lsst-alert-packet's schema/ folder, laid out MAJOR/MINOR/)",
            dir.display()
        )));
    }
    if registry.is_none() && args.schema_dir.is_none() {
        return Ok(None);
    }
    let ids = SchemaIds::new(
        registry,
        args.registry_cache.as_deref(),
        args.schema_dir.clone(),
    )?;
    Ok(Some(Arc::new(ids)))
}

/// A message that cannot be decoded: counted by reason and reported (an
/// unknown schema id only once, when it is first seen), then skipped. When
/// decoding it needs a registry that cannot answer, the error comes back:
/// the consumer stops before the message instead of losing it.
pub fn undecodable(message: &BorrowedMessage<'_>, error: anyhow::Error, note: &str) -> Result<()> {
    if error.is::<RegistryUnavailable>() || error.is::<crate::exit::Exit>() {
        return Err(error);
    }
    crate::metrics::decode_error(message.topic(), &error);
    if !error.is::<UnknownSchemaId>() {
        let head: String = message
            .payload()
            .unwrap_or_default()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        tracing::warn!(
            "{} partition {} offset {}: cannot decode ({error:#}); first bytes {head}; {note}",
            message.topic(),
            message.partition(),
            message.offset()
        );
    }
    Ok(())
}

/// A byte size such as `16M`, `512K`, `1G` or `1000` (powers of 1024).
pub fn byte_size(flag: &str, text: &str) -> Result<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => 64,
    };
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && shift < 64)
        .and_then(|n| n.checked_mul(1usize << shift.min(63)))
        .ok_or_else(|| {
            bad_input(format!(
                "{flag} {text}: give a positive size in bytes, e.g. 16M, 512K or 1000000"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("-x", "16M").unwrap(), 16 << 20);
        assert_eq!(byte_size("-x", "512k").unwrap(), 512 << 10);
        assert_eq!(byte_size("-x", "1000").unwrap(), 1000);
        assert_eq!(byte_size("-x", "2GiB").unwrap(), 2 << 30);
        for bad in ["", "0", "M", "12Q", "-5", "99999999999999999999G"] {
            assert!(byte_size("-x", bad).is_err(), "{bad:?}");
        }
    }
}

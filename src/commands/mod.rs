//! One file per subcommand. Each turns its parsed arguments into validated
//! options first, so that bad input fails before any Kafka client starts.

pub mod completions;
pub mod filter;
pub mod man;
pub mod monitor;
pub mod print;
pub mod record;
pub mod send;
pub mod simulate;
pub mod view;

use std::sync::Arc;

use anyhow::Result;
use rdkafka::message::{BorrowedMessage, Message};

use crate::avro::ids::{RegistryUnavailable, SchemaIds, UnknownSchemaId};
use crate::avro::registry::Registry;

use crate::exit::bad_input;

use crate::cli::{Cli, Command};
use crate::kafka::dead_letter::DeadLetter;
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
    let serves = !matches!(
        cli.command,
        Command::Completions(_) | Command::Man(_) | Command::Simulate(_)
    );
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
        Command::View(args) => {
            let options = view::ViewOptions::from_args(args)?;
            view::run(options, kafka()?, Shutdown::install()).await
        }
        Command::Simulate(args) => simulate::run(simulate::SimulateOptions::from_args(args)?),
        Command::Completions(args) => completions::run(args.shell),
        Command::Man(args) => man::run(args.subcommand.as_deref()),
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
    /// `--dead-letter` (record, filter; print keeps its own).
    pub dead_letter: Option<String>,
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
                ReadFormat::KeySchema => Some(Kind::KeySchema),
            },
            max_alert_bytes: byte_size("--max-alert-bytes", max_alert_bytes)?,
            ids: schema_ids(ids)?,
            dead_letter: None,
        })
    }

    /// print's and view's decode options.
    pub fn from_read(args: crate::cli::ReadArgs) -> Result<Self> {
        Self::new(args.schema, args.format, &args.max_alert_bytes, &args.ids)
    }

    pub fn from_args(args: crate::cli::DecodeArgs) -> Result<Self> {
        let mut options = Self::new(args.schema, args.wire, &args.max_alert_bytes, &args.ids)?;
        options.dead_letter = args.dead_letter;
        Ok(options)
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
        args.on_unknown_schema == crate::cli::OnUnknownSchema::Skip,
    )?;
    Ok(Some(Arc::new(ids)))
}

/// A message that cannot be decoded: counted by reason and reported (an
/// unknown schema id only once, when it is first seen), then copied to the
/// dead-letter topic if there is one, or skipped. When decoding it needs a
/// registry that cannot answer, or its schema id is unknown and
/// `--on-unknown-schema` is `stop`, the error comes back: the consumer stops
/// before the message instead of losing it. `transaction`: filter's producer,
/// which carries the dead-letter copy in its transaction.
pub fn undecodable(
    message: &BorrowedMessage<'_>,
    error: anyhow::Error,
    dead_letter: Option<&DeadLetter>,
    transaction: Option<&crate::kafka::produce::Producing>,
) -> Result<()> {
    if error.is::<crate::exit::Exit>() {
        return Err(error);
    }
    if error.is::<RegistryUnavailable>() {
        return Err(anyhow::anyhow!(
            "{} partition {} offset {}: {error} (or start the registry, or check --schema-registry)",
            message.topic(),
            message.partition(),
            message.offset()
        ));
    }
    if let Some(unknown) = error.downcast_ref::<UnknownSchemaId>().filter(|u| u.stop) {
        return Err(anyhow::anyhow!(
            "{} partition {} offset {}: schema id {} is unknown ({}); stopped before this \
             message, its offset not committed (register the schema, or point \
             --schema-registry at the registry that wrote it; --on-unknown-schema skip \
             skips such messages)",
            message.topic(),
            message.partition(),
            message.offset(),
            unknown.id,
            unknown.why
        ));
    }
    // Counted and labelled alike by every consumer, whatever its decoder said.
    let error = match message.payload() {
        None | Some([]) => anyhow::anyhow!("empty message"),
        Some(_) => error,
    };
    crate::metrics::decode_error(message.topic(), &error);
    let head: String = message
        .payload()
        .unwrap_or_default()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let detail = format!(
        "{} partition {} offset {}: cannot decode ({error:#}){}",
        message.topic(),
        message.partition(),
        message.offset(),
        if head.is_empty() {
            String::new()
        } else {
            format!("; first bytes {head}")
        }
    );
    let fate = match dead_letter {
        Some(dead_letter) => {
            let reason = crate::metrics::decode_reason(&error);
            dead_letter.copy(message, reason, &detail, transaction)?;
            format!("copied to {}", dead_letter.topic)
        }
        None => "skipped".to_string(),
    };
    if !error.is::<UnknownSchemaId>() {
        tracing::warn!("{detail}; {fate}");
    }
    Ok(())
}

/// Checks `--dead-letter`: a valid topic name, and not the input (its
/// copies would be refused again, for ever).
pub fn check_dead_letter(dead_letter: Option<&str>, input: &str) -> Result<()> {
    let Some(topic) = dead_letter else {
        return Ok(());
    };
    crate::kafka::admin::check_topic(topic)?;
    if topic == input {
        return Err(bad_input(format!(
            "--dead-letter {topic} is the topic being consumed: give another topic"
        )));
    }
    Ok(())
}

/// The dead-letter topic of `print` and `record`, created and given a
/// producer of its own, once the brokers answer.
pub async fn dead_letter(kafka: &KafkaSettings, topic: Option<&str>) -> Result<Option<DeadLetter>> {
    match topic {
        Some(topic) => Ok(Some(DeadLetter::open(kafka, topic, None).await?)),
        None => Ok(None),
    }
}

/// A consumed message as the decoder reads it: its value and its key (the
/// writer schema, in key-schema framing).
pub fn wire<'a>(message: &'a BorrowedMessage<'_>) -> crate::avro::codec::Payload<'a> {
    crate::avro::codec::Payload {
        key: message.key(),
        value: message.payload().unwrap_or_default(),
    }
}

/// Writes to stdout; a reader that stops early (`| head`) is no error.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
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

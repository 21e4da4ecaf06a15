//! Command-line definitions. Only parsing lives here; each command turns its
//! arguments into validated options in its own module before anything runs.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Distribute astronomical alert streams over Apache Kafka.

Sends batches (\"visits\") of Avro alert packets with their cutout images,
prints and archives what a stream carries, and monitors whether consumers
keep up.";

const AFTER_HELP: &str = "Examples:
  Start a local broker, send the built-in sample alerts and print them back:
    scripts/kafka start
    alertstream send my-stream
    alertstream print my-stream --group readers -e

  A visit of 10,000 alerts every 39 seconds for 24 hours:
    alertstream send my-stream 10000 --repeat

  Watch whether group 'readers' keeps up (without joining it):
    alertstream monitor my-stream --group readers

Exit codes: 0 success; 1 Kafka or I/O failure; 2 bad usage or bad input;
3 some alerts were not delivered; 130 a second Ctrl-C, exiting at once.";

#[derive(Debug, Parser)]
#[command(name = "alertstream", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands that neither reach Kafka nor serve metrics.
const OFFLINE: [&str; 3] = ["simulate", "completions", "man"];

/// The global options only the subcommands that reach Kafka use.
const KAFKA_ONLY: [&str; 4] = ["brokers", "kafka", "kafka_config", "metrics"];

/// The command line as parsed, with the Kafka options left out of the
/// help and manual pages of [`OFFLINE`] subcommands (and send's bursts out
/// of simulate's). They are
/// still accepted there (ALERTSTREAM_BROKERS set in a shell must not fail
/// `simulate`): each gets a hidden copy of its own, which clap's
/// propagation of global options then leaves in place.
pub fn command() -> clap::Command {
    let command = Cli::command();
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| KAFKA_ONLY.contains(&arg.get_id().as_str()))
        .map(|arg| arg.clone().hide(true))
        .collect();
    let command = OFFLINE.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| sub.args(hidden.clone()))
    });
    // A file holds a visit whole: simulate refuses these (naming send
    // --simulate), so its help does not offer them.
    command.mut_subcommand("simulate", |sub| {
        SEND_ONLY
            .iter()
            .fold(sub, |sub, id| sub.mut_arg(*id, |arg| arg.hide(true)))
    })
}

/// Options simulate shares with send --simulate but refuses.
const SEND_ONLY: [&str; 2] = ["bursts", "spread"];

/// The command line for completion scripts. clap_complete offers hidden
/// options too, so here the Kafka options are not propagated to every
/// subcommand: each one that reaches Kafka gets its own copy, and the
/// [`OFFLINE`] ones offer none.
pub fn command_for_completion() -> clap::Command {
    let command = Cli::command();
    let kafka: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| KAFKA_ONLY.contains(&arg.get_id().as_str()))
        .cloned()
        .collect();
    // mut_arg and mut_subcommand move what they change to the end: every
    // one is passed through, in order, to keep the order of the help.
    let ids: Vec<clap::Id> = command
        .get_arguments()
        .map(|a| a.get_id().clone())
        .collect();
    let command = ids.iter().fold(command, |command, id| {
        let local = KAFKA_ONLY.contains(&id.as_str());
        command.mut_arg(id, |arg| if local { arg.global(false) } else { arg })
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| match name.as_str() {
            "simulate" => without_send_only(sub),
            offline if OFFLINE.contains(&offline) => sub,
            _ => sub.args(kafka.clone()),
        })
    })
}

/// simulate as completion sees it: the same, less [`SEND_ONLY`] (a hidden
/// option would still be offered, and there is no removing one).
fn without_send_only(sub: clap::Command) -> clap::Command {
    let kept: Vec<clap::Arg> = sub
        .get_arguments()
        .filter(|arg| !SEND_ONLY.contains(&arg.get_id().as_str()))
        .cloned()
        .collect();
    let fresh = clap::Command::new("simulate").args(kept);
    match sub.get_about() {
        Some(about) => fresh.about(about.clone()),
        None => fresh,
    }
}

/// Parses the process's arguments with [`command`]; exits on an error, as
/// clap does (usage errors are exit 2).
pub fn parse() -> Cli {
    let mut command = command();
    let matches = command
        .try_get_matches_from_mut(std::env::args_os())
        .unwrap_or_else(|e| with_tips(e).exit());
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// Tips where clap's own would mislead (kept as the `Suggested` context,
/// which replaces clap's). For `record --to`, clap's tip is to pass `--to`
/// as a value; what was meant is a window's end or filter's output topic.
/// For `view` with nothing to show, clap names only the topics; a folder
/// that record wrote is the other thing view shows.
fn with_tips(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| error.get(kind).map(ToString::to_string).unwrap_or_default();
    let usage = context(ContextKind::Usage);
    let tip = match error.kind() {
        ErrorKind::UnknownArgument
            if context(ContextKind::InvalidArg).split('=').next() == Some("--to")
                && usage.contains(" record ") =>
        {
            "record has no --to: give --until TIME to stop at a time, or use filter --to TOPIC to copy alerts to a topic"
        }
        ErrorKind::MissingRequiredArgument
            if usage.contains(" view ") && context(ContextKind::InvalidArg).contains("<TOPIC>") =>
        {
            "give the topics to show, or --archive DIR to show a folder that record wrote"
        }
        _ => return error,
    };
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    error
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Kafka bootstrap brokers, comma-separated host:port list.
    #[arg(
        short = 'b',
        long = "brokers",
        env = "ALERTSTREAM_BROKERS",
        default_value = "localhost:9092",
        global = true,
        value_name = "LIST"
    )]
    pub brokers: String,

    /// Set any librdkafka property, as kcat does (repeatable).
    ///
    /// Applied after --kafka-config, so it overrides the file. Example:
    /// -X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512
    #[arg(short = 'X', long = "kafka", global = true, value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,

    /// Read librdkafka properties from a file of key=value lines ('#' starts a comment).
    ///
    /// Meant for TLS, SASL and tuning settings that should not appear on a command line.
    #[arg(long = "kafka-config", global = true, value_name = "FILE")]
    pub kafka_config: Option<PathBuf>,

    /// Serve Prometheus metrics on this address while the command runs:
    /// GET /metrics, and GET /healthz (200 while the brokers answer).
    #[arg(
        long = "metrics",
        env = "ALERTSTREAM_METRICS",
        global = true,
        value_name = "HOST:PORT"
    )]
    pub metrics: Option<String>,

    /// Log more: -v alertstream's debug lines and the libraries' info, -vv debug, -vvv trace.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q.
    #[arg(short = 'q', long = "quiet", global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one visit of alerts, or a visit at every interval with --repeat.
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Consume a stream and print each alert as one JSON object per line.
    #[command(after_help = PRINT_EXAMPLES)]
    Print(PrintArgs),
    /// Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag.
    #[command(after_help = MONITOR_EXAMPLES)]
    Monitor(MonitorArgs),
    /// Archive a stream to Avro or Parquet files, each committed only once on disk.
    #[command(after_help = RECORD_EXAMPLES)]
    Record(RecordArgs),
    /// Route the alerts an expression selects to other topics, unchanged, exactly once.
    #[command(after_help = FILTER_EXAMPLES)]
    Filter(FilterArgs),
    /// Look at a stream in a web browser: rates, the newest alerts, cutouts, light curves.
    #[command(after_help = VIEW_EXAMPLES)]
    View(ViewArgs),
    /// Write simulated alerts to Avro files, one per visit, instead of Kafka.
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate(SimulateArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print a manual page (roff) to stdout: alertstream(1), or a subcommand's.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
}

const SEND_EXAMPLES: &str = "Examples:
  alertstream send my-stream                    # every sample alert once
  alertstream send my-stream 100 --no-stamps    # 100 alerts, cutouts left empty
  alertstream send my-stream 10000 --simulate ztf --repeat   # a realistic survey stream
  alertstream send lsst 10000 --simulate rubin --schema schema/11/1 --format confluent \\
    --schema-id 1101 --bursts 189 --spread 10
  alertstream send my-stream --alerts ztf/ --repeat --interval 39 --max-repeats 10
  alertstream send replay --alerts archive/ --pace recorded --speed 10
  alertstream send replay --alerts ztf/ --pace candidate.jd --repeat";

const SIMULATE_EXAMPLES: &str = "Examples:
  alertstream simulate ztf 1000 --out fixtures/ --visits 20 --seed 7 --start 2026-11-30T05:00:00Z
  alertstream simulate rubin 500 --out rubin/ --schema lsst-alert-packet/schema/11/1 --no-stamps";

const PRINT_EXAMPLES: &str = "Examples:
  alertstream print my-stream --group readers -e
  alertstream print my-stream --stamp-dir stamps/ -e
  alertstream print my-stream --decode-off --max-messages 1
  alertstream print my-stream --format confluent --max-alert-bytes 4M";

const VIEW_EXAMPLES: &str = "Examples:
  alertstream view my-stream                     # then open http://127.0.0.1:8080/
  alertstream view ztf ztf-pure --from -1h --where 'candidate.rb >= 0.65' --group pure
  alertstream view lsst --schema schema/11/1 --listen 0.0.0.0:8080 --token \"$VIEW_TOKEN\"
  curl -sG 127.0.0.1:8080/api/alerts --data-urlencode 'where=candidate.magpsf < 17' -d limit=5";

const MONITOR_EXAMPLES: &str = "Examples:
  alertstream monitor my-stream
  alertstream monitor my-stream --group readers --group archivers --every 5";

const RECORD_EXAMPLES: &str = "Examples:
  alertstream record my-stream --out archive/ --group archivers
  alertstream record my-stream --out night/ --from 2026-11-29T00:00:00Z --until 2026-11-29T12:00:00Z
  alertstream record my-stream --out lake/ --format parquet --no-stamps --codec zstandard -e
  alertstream send replayed --alerts archive/ --pace recorded --speed 10";

const FILTER_EXAMPLES: &str = "Examples:
  ZTF's purity cut, into its own topic:
    alertstream filter ztf --group pure --where 'candidate.rb >= 0.65 && candidate.nbad == 0 \\
      && candidate.fwhm <= 5.0 && candidate.elong <= 1.2 && abs(candidate.magdiff) <= 0.1' --to ztf-pure
  Two routes in one pass (an alert may go to both):
    alertstream filter lsst --schema schema/11/1 --where 'diaSource.snr > 5.0' --to bright \\
      --where 'diaObject.nDiaSources == 1' --to new
  At most 20 alerts per visit, each object once a night:
    alertstream filter lsst --schema schema/11/1 --where 'diaSource.reliability > 0.9' --to best \\
      --limit-per-visit 20 --visit-key diaSource.visit \\
      --dedupe-key diaObject.diaObjectId --dedupe-window 12h
  Only look:
    alertstream print ztf --where 'candidate.magpsf < 17.0' -e";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  alertstream completions bash > ~/.local/share/bash-completion/completions/alertstream
  alertstream completions zsh > ~/.zfunc/_alertstream
  alertstream completions fish > ~/.config/fish/completions/alertstream.fish";

const MAN_EXAMPLES: &str = "Examples:
  alertstream man | man -l -
  alertstream man send | man -l -       # alertstream-send(1)
  alertstream man > /usr/local/share/man/man1/alertstream.1";

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Topic to send to; created if it does not exist.
    pub topic: String,

    /// Alerts per visit [default: every source alert once]. Sources are reused in order when COUNT is larger.
    pub count: Option<u64>,

    /// Avro object container file, or folder of them, to take alerts from (repeatable).
    ///
    /// Each alert is re-encoded with its own file's writer schema. Without this
    /// option the sample alerts built into the binary are sent.
    #[arg(long = "alerts", value_name = "PATH")]
    pub alerts: Vec<PathBuf>,

    /// Send the cutout fields empty (null), without postage stamps.
    #[arg(long = "no-stamps")]
    pub no_stamps: bool,

    /// Send alerts as JSON text instead of Avro binary.
    #[arg(long = "encode-off", conflicts_with = "format")]
    pub encode_off: bool,

    /// How each message frames its Avro data.
    ///
    /// schemaless: bare Avro binary, the reader knows the schema (the original's format);
    /// container: an Avro object container file with the schema embedded (ZTF's stream);
    /// confluent: byte 0, a 4-byte schema id (--schema-id), then bare Avro (Rubin's stream);
    /// key-schema: bare Avro, the writer schema's JSON in the message key (Fink's streams).
    #[arg(long = "format", value_enum, default_value_t = WireFormat::Schemaless, value_name = "FORMAT")]
    pub format: WireFormat,

    /// Key each message by this alert field (e.g. objectId; Rubin:
    /// diaSource.diaObjectId), so
    /// that one object's alerts stay on one partition, in order [default: no
    /// key]. Not with --format key-schema, whose key is the schema.
    #[arg(long = "key", value_name = "FIELD", conflicts_with = "encode_off")]
    pub key: Option<String>,

    /// Schema registry id written into each message with --format confluent
    /// (without --schema-registry).
    #[arg(long = "schema-id", value_name = "N")]
    pub schema_id: Option<u32>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Subject to register the writer schema under with --schema-registry
    /// [default: TOPIC-value, Confluent's topic-name strategy].
    #[arg(long = "subject", value_name = "NAME", requires = "url")]
    pub subject: Option<String>,

    /// Replay at the archive's own pace instead of in visits: "recorded"
    /// keeps the gaps between the broker timestamps alertstream record kept
    /// (its .kafka.jsonl sidecars, with each alert's key and headers); a field
    /// such as candidate.jd (ZTF) or diaSource.midpointMjdTai (Rubin) paces
    /// by that time instead (fields named *jd*/*mjd* in days, others in seconds).
    #[arg(long = "pace", value_name = "recorded|FIELD", requires = "alerts")]
    pub pace: Option<String>,

    /// With --pace: play this many times faster (0.5 is half as fast).
    #[arg(
        long = "speed",
        default_value_t = 1.0,
        value_name = "X",
        requires = "pace"
    )]
    pub speed: f64,

    /// Keep sending: one visit at every wall-clock multiple of --interval;
    /// with --pace, the whole archive again after its last alert.
    #[arg(long = "repeat")]
    pub repeat: bool,

    /// Seconds between visits with --repeat (fractions allowed, e.g. 0.5)
    /// [default: 39]; with --simulate also the grid its visits are numbered
    /// on. Refused without either: a single visit has no interval.
    ///
    /// A visit's alertstream-visit header is then its start time divided by
    /// the interval, unique across runs (a single visit without --simulate:
    /// its start in milliseconds).
    #[arg(long = "interval", value_name = "SECONDS", conflicts_with = "pace")]
    pub interval: Option<f64>,

    /// Number of visits with --repeat [default: 2215, 39 s each: about 24 hours].
    #[arg(long = "max-repeats", value_name = "N")]
    pub max_repeats: Option<u64>,

    /// Partitions of the topic when it has to be created [default: 1]; an
    /// existing topic keeps its own (a warning says so when they differ).
    #[arg(long = "partitions", value_name = "N")]
    pub partitions: Option<i32>,

    /// Replication factor of the topic when it has to be created [default:
    /// the cluster's default.replication.factor].
    #[arg(long = "replication-factor", value_name = "N")]
    pub replication_factor: Option<i32>,

    /// Seconds Ctrl-C or SIGTERM waits for deliveries in flight before giving
    /// up on them (8 fits Docker's 10 s stop grace period).
    #[arg(long = "flush-timeout", default_value_t = 8.0, value_name = "SECONDS")]
    pub flush_timeout: f64,

    /// Make the alerts instead of reading them: unique, evolving alerts of a
    /// simulated survey (recurring objects with growing histories, moving
    /// asteroids, bogus detections, real FITS cutouts). COUNT defaults to 10,000.
    #[arg(
        long = "simulate",
        value_enum,
        value_name = "SURVEY",
        conflicts_with_all = ["alerts", "pace", "encode_off"]
    )]
    pub simulate: Option<SurveyName>,

    #[command(flatten)]
    pub sim: SimArgs,
}

/// A survey the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SurveyName {
    /// ZTF: the built-in ZTF 4.02 schema, or --schema for another version.
    Ztf,
    /// Rubin (LSST): needs Rubin's published schema with --schema.
    Rubin,
}

/// The simulated survey: shared by `send --simulate` and `simulate`.
#[derive(Debug, Args, Default)]
pub struct SimArgs {
    /// Schema to fill (.avsc file or folder): another ZTF version, or Rubin's
    /// published schema, e.g. lsst-alert-packet's schema/11/1 [ztf default: built-in 4.02].
    #[arg(long = "schema", value_name = "PATH")]
    pub schema: Vec<PathBuf>,

    /// Seed of the simulated sky: the same seed, --start and options give the same bytes [default: 1].
    #[arg(long = "seed", value_name = "S")]
    pub seed: Option<u64>,

    /// Time of the first visit (RFC 3339, -1h, @epoch-ms), on the grid of
    /// --interval [default: now; visits then follow the wall clock, so
    /// sharded senders on several hosts agree].
    #[arg(long = "start", value_name = "TIME", allow_hyphen_values = true)]
    pub start: Option<String>,

    /// Fields the visits cycle over: fewer fields, more recurrences [default: 4].
    #[arg(long = "fields", value_name = "N")]
    pub fields: Option<u32>,

    /// Objects in the simulated sky [default: 20 x COUNT].
    #[arg(long = "objects", value_name = "N")]
    pub objects: Option<u64>,

    /// Shares of the classes, e.g. periodic=0.4,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.1;
    /// classes left out share the rest.
    #[arg(long = "mix", value_name = "CLASS=SHARE,...")]
    pub mix: Option<String>,

    /// Send each visit in N bursts, detector by detector (Rubin's alert
    /// production emits a visit per detector) [default: 1].
    #[arg(long = "bursts", value_name = "N")]
    pub bursts: Option<u32>,

    /// Seconds the bursts of a visit are spread over [default: 0].
    #[arg(long = "spread", value_name = "SECONDS")]
    pub spread: Option<f64>,

    /// Make only detectors d with d mod N == I (ZTF: readout quadrants), with
    /// the ids an unsharded run gives them: N hosts with I = 0..N-1 make one stream.
    #[arg(long = "shard", value_name = "I/N")]
    pub shard: Option<String>,

    /// --shard counted from 1, as Docker Swarm numbers a service's replicas:
    /// ALERTSTREAM_SHARD_SLOT="{{.Task.Slot}}/3" in a stack file's environment.
    #[arg(
        long = "shard-slot",
        value_name = "S/N",
        env = "ALERTSTREAM_SHARD_SLOT",
        conflicts_with = "shard"
    )]
    pub shard_slot: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (alertstream-SUBCOMMAND(1)) [default: alertstream(1)].
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The survey whose alerts to simulate.
    #[arg(value_enum)]
    pub survey: SurveyName,

    /// Alerts per visit.
    #[arg(default_value_t = 10_000)]
    pub count: u32,

    /// Folder to write the visits to, one Avro object container file each (visit-N.avro).
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,

    /// Number of visits.
    #[arg(long = "visits", default_value_t = 1, value_name = "N")]
    pub visits: u64,

    /// Seconds between visits (the simulated survey's cadence).
    #[arg(long = "interval", default_value_t = crate::schedule::DEFAULT_INTERVAL, value_name = "SECONDS")]
    pub interval: f64,

    /// Leave the cutout fields empty (null), without postage stamps.
    #[arg(long = "no-stamps")]
    pub no_stamps: bool,

    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Args)]
pub struct ConsumerArgs {
    /// Exit once every partition read has reached its end.
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,

    /// Exit after this many messages.
    #[arg(long = "max-messages", value_name = "N")]
    pub max_messages: Option<u64>,

    /// Fail at once if the topic does not exist, instead of waiting for it.
    #[arg(long = "no-wait")]
    pub no_wait: bool,

    /// Start at this time instead of where the command starts (a group's
    /// committed offsets, or the partitions' ends): each
    /// partition from its first message with a broker timestamp at or after
    /// TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now
    /// (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000).
    ///
    /// A time window reads every partition outside any consumer group and
    /// commits no offsets: reading it again gives the same alerts.
    #[arg(long = "from", value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,

    /// Stop each partition at its first message at or after TIME (not
    /// included); exit once every partition has stopped. Forms as --from.
    #[arg(long = "until", value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Exit with an error once every broker has been unreachable this long.
    #[arg(
        long = "broker-timeout",
        default_value_t = 60.0,
        value_name = "SECONDS"
    )]
    pub broker_timeout: f64,
}

#[derive(Debug, Args)]
pub struct PrintArgs {
    /// Topic to consume.
    pub topic: String,

    /// Consumer group id [default: $HOSTNAME]. Consumers in one group share the
    /// stream; offsets are committed only after an alert is written out.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub group: Option<String>,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Write each alert's cutouts into this folder (created if missing), named by their fileName.
    #[arg(long = "stamp-dir", value_name = "DIR")]
    pub stamp_dir: Option<PathBuf>,

    /// Print only the alerts this CEL expression selects, e.g.
    /// 'candidate.magpsf < 17.0' (see filter).
    #[arg(long = "where", value_name = "EXPR", conflicts_with = "decode_off")]
    pub filter: Option<String>,

    /// Print payloads as they are, without Avro decoding (for streams sent with --encode-off).
    #[arg(long = "decode-off")]
    pub decode_off: bool,

    /// Add where each alert came from to its line, as a "_kafka" object:
    /// partition, offset, timestamp (ms), the visit and index send gave it,
    /// the framing (schemaless, container, confluent, key-schema), the schema
    /// id of a Confluent-framed message (else null), and, for a copy on a
    /// --dead-letter topic, "dead_letter": its error, detail and source; for
    /// a message a replay sent, "replay": its loop and offset_ms.
    #[arg(long = "meta")]
    pub meta: bool,

    /// Copy every message that is not handled (refused by the decode gate,
    /// an unknown schema id under --on-unknown-schema skip, over
    /// --max-alert-bytes) unchanged to this topic, with the reason in headers
    /// alertstream-error, alertstream-error-detail and alertstream-source
    /// (topic/partition/offset); its offset is committed only once the copy
    /// is acknowledged.
    #[arg(long = "dead-letter", value_name = "TOPIC")]
    pub dead_letter: Option<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Topic to monitor.
    pub topic: String,

    /// A consumer group to watch (repeatable): its lag per partition, from
    /// its committed offsets. Monitor never joins or commits for it.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    /// Seconds between status lines (rate, lag, latency); 0 turns them off.
    #[arg(
        long = "every",
        default_value_t = 10.0,
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub every: f64,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Topics to show (read outside any consumer group: nothing is committed).
    #[arg(required_unless_present = "archive", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Show a folder that `record` wrote (Avro or Parquet) instead of
    /// topics: its newest --keep alerts, with the topic, partition and
    /// offset each came from (filter with e.g. objectId == "ZTF18abc").
    /// The folder is shown as it is: --group, -e, --max-messages,
    /// --no-wait, --from and --until are for topics.
    #[arg(
        long = "archive",
        value_name = "DIR",
        conflicts_with_all = ["topics", "groups", "exit_at_end", "max_messages", "no_wait", "from", "until"]
    )]
    pub archive: Option<PathBuf>,

    /// Address the page is served on. Anything but a loopback address is
    /// reachable by others: give --token then.
    #[arg(
        long = "listen",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    pub listen: String,

    /// Require this token on every request: `Authorization: Bearer TOKEN`, or
    /// `?token=TOKEN` in the page's address (the page passes it on).
    #[arg(
        long = "token",
        env = "ALERTSTREAM_VIEW_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Keep only the alerts this CEL expression selects (as print --where);
    /// the page's filter box narrows further.
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Keep the newest N alerts in memory.
    #[arg(long = "keep", default_value_t = 2000, value_name = "N")]
    pub keep: usize,

    /// ... and at most this many bytes of messages (the oldest go first).
    /// Suffixes K, M, G.
    #[arg(long = "keep-bytes", default_value = "192M", value_name = "BYTES")]
    pub keep_bytes: String,

    /// A consumer group whose lag the page shows (repeatable); view never
    /// joins or commits for it.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Topic to record.
    pub topic: String,

    /// Folder to write the archive into (created if missing). Nothing is
    /// written outside it.
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,

    /// Consumer group id [default: $HOSTNAME]. Offsets are committed only
    /// for alerts in files already renamed into place.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub group: Option<String>,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    /// Archive format: avro keeps each alert's bytes as they arrived, with
    /// its writer schema; parquet derives columns from the Avro schema (how
    /// messages frame their Avro is --wire).
    #[arg(long = "format", value_enum, default_value_t = ArchiveFormat::Avro, value_name = "FORMAT")]
    pub format: ArchiveFormat,

    /// Compression of the archive's blocks (Avro) or pages (Parquet).
    #[arg(long = "codec", value_enum, default_value_t = CodecArg::Null, value_name = "CODEC")]
    pub codec: CodecArg,

    /// Start a new file after this many alerts.
    #[arg(long = "roll-alerts", default_value_t = 10_000, value_name = "N")]
    pub roll_alerts: u64,

    /// Start a new file after this many seconds.
    #[arg(
        long = "roll-seconds",
        default_value_t = 3600.0,
        value_name = "SECONDS"
    )]
    pub roll_seconds: f64,

    /// Start a new file past this size (suffixes K, M, G).
    #[arg(long = "roll-bytes", default_value = "256M", value_name = "BYTES")]
    pub roll_bytes: String,

    /// Archive only the alerts this CEL expression selects (see filter).
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Leave the cutouts out (Parquet only: Avro archives keep alerts whole).
    #[arg(long = "no-stamps")]
    pub no_stamps: bool,

    #[command(flatten)]
    pub decode: DecodeArgs,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Topic to read.
    pub topic: String,

    /// A CEL expression over the alert as print shows it, e.g.
    /// 'candidate.rb >= 0.65 && abs(candidate.magdiff) <= 0.1'. Each --where
    /// pairs with the --to that follows it (repeatable: several routes).
    #[arg(long = "where", value_name = "EXPR", required = true)]
    pub wheres: Vec<String>,

    /// Topic the alerts its --where selects go to (created if missing).
    #[arg(long = "to", value_name = "TOPIC", required = true)]
    pub to: Vec<String>,

    /// Consumer group id [default: $HOSTNAME]. Input offsets are committed in
    /// the same transaction as the alerts they selected (not with --from or
    /// --until: a window is read outside the group and commits no offsets).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub group: Option<String>,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    /// The producer's transactional.id [default: alertstream-filter-GROUP-TOPIC-HOST;
    /// with --from or --until, alertstream-filter-window-GROUP-TOPIC-HOST].
    /// A restart with the same id fences the old instance's open transaction.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_id: Option<String>,

    /// Each route forwards at most N messages per visit, the first N it
    /// reads. The visit is what --visit-key names, or else the
    /// alertstream-visit header send writes; messages with neither are not
    /// capped (said once). Counts live in this process: a restart mid-visit
    /// counts that visit afresh.
    #[arg(long = "limit-per-visit", value_name = "N")]
    pub limit_per_visit: Option<u64>,

    /// What names an alert's visit for --limit-per-visit, e.g.
    /// 'diaSource.visit' (Rubin) or 'candidate.jd' (ZTF: one exposure)
    /// [default: the alertstream-visit header].
    #[arg(long = "visit-key", value_name = "EXPR", requires = "limit_per_visit")]
    pub visit_key: Option<String>,

    /// Each route forwards an object once per --dedupe-window; EXPR names
    /// the object, e.g. 'objectId' (ZTF) or 'diaObject.diaObjectId' (Rubin).
    /// An alert whose key is null is never a duplicate. What was routed is
    /// remembered in this process: after a restart an object may go once more.
    #[arg(long = "dedupe-key", value_name = "EXPR", requires = "dedupe_window")]
    pub dedupe_key: Option<String>,

    /// How long after an object is routed it is not routed again, in the
    /// messages' own time (their timestamps): 90s, 30m, 12h, 2d.
    #[arg(
        long = "dedupe-window",
        value_name = "DURATION",
        requires = "dedupe_key"
    )]
    pub dedupe_window: Option<String>,

    /// Seconds between transaction commits: what a read_committed reader
    /// waits for at most, besides the transport.
    #[arg(
        long = "commit-interval",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub commit_interval: f64,

    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// How print and view read messages: their framing, the size limit, the
/// reader schema and where schema ids are looked up (record and filter take
/// the same as --wire, their --format being the output's).
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// How messages frame their Avro data.
    ///
    /// auto: an Avro container (magic Obj\x01) is read as one; a message whose
    /// key is a JSON schema (an object with "type") as key-schema framing
    /// (bare Avro, the writer schema in the key, as Fink writes); a message
    /// whose first byte is 0 as Confluent-framed, and as bare Avro if that
    /// fails; anything else as bare Avro. A fixed format guesses nothing.
    #[arg(long = "format", visible_alias = "wire", value_enum, default_value_t = ReadFormat::Auto, value_name = "FORMAT")]
    pub format: ReadFormat,

    /// The most one alert may take, in bytes of Avro binary (after
    /// decompression); larger ones are reported and skipped. Suffixes K, M, G.
    #[arg(long = "max-alert-bytes", default_value = "16M", value_name = "BYTES")]
    pub max_alert_bytes: String,

    /// Reader schema: .avsc files or a folder of them [default: built-in].
    ///
    /// Decodes bare and Confluent-framed Avro; messages that name their
    /// writer schema (containers, Confluent with --schema-registry or
    /// --schema-dir) are resolved to it (fields added since get their
    /// defaults), so a topic mixing schema versions prints in one layout.
    #[arg(long = "schema", value_name = "FILE", num_args = 1..)]
    pub schema: Vec<PathBuf>,

    #[command(flatten)]
    pub ids: SchemaIdArgs,
}

/// How record and filter decode what they read.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// How messages frame their Avro data (as print --format).
    #[arg(long = "wire", value_enum, default_value_t = ReadFormat::Auto, value_name = "FORMAT")]
    pub wire: ReadFormat,

    /// Reader schema for bare and Confluent-framed messages [default:
    /// built-in]; with it, containers are resolved to it too. The fields
    /// --where may name, and the columns of Parquet archives, follow it.
    #[arg(long = "schema", value_name = "FILE", num_args = 1..)]
    pub schema: Vec<PathBuf>,

    /// The most one alert may take, in bytes of Avro binary.
    #[arg(long = "max-alert-bytes", default_value = "16M", value_name = "BYTES")]
    pub max_alert_bytes: String,

    #[command(flatten)]
    pub ids: SchemaIdArgs,

    /// Copy every message that is not handled (refused by the decode gate,
    /// an unknown schema id under --on-unknown-schema skip, over
    /// --max-alert-bytes) unchanged to this topic, with the reason in headers
    /// alertstream-error, alertstream-error-detail and alertstream-source
    /// (topic/partition/offset); its offset is committed only once the copy
    /// is acknowledged.
    #[arg(long = "dead-letter", value_name = "TOPIC")]
    pub dead_letter: Option<String>,
}

/// How to reach a schema registry (consumers and send).
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or
    /// Apicurio's http://HOST:8080/apis/ccompat/v7. Consumers decode each
    /// Confluent-framed message with the writer schema its id names; send
    /// --format confluent registers its schema there. Basic auth may come in
    /// the URL (https://user:password@host) or --registry-auth-file.
    #[arg(
        long = "schema-registry",
        env = "ALERTSTREAM_SCHEMA_REGISTRY",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: Option<String>,

    /// A file holding one line user:password for the registry's basic auth
    /// (kept out of the command line and process list).
    #[arg(long = "registry-auth-file", value_name = "FILE", requires = "url")]
    pub auth_file: Option<PathBuf>,

    /// PEM file of the CA that signed the registry's certificate [default:
    /// the system's roots].
    #[arg(long = "registry-ca", value_name = "FILE", requires = "url")]
    pub ca: Option<PathBuf>,
}

impl RegistryArgs {
    pub fn options(&self) -> crate::avro::registry::RegistryOptions {
        crate::avro::registry::RegistryOptions {
            url: self.url.clone().unwrap_or_default(),
            auth_file: self.auth_file.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// Where consumers find writer schemas by Confluent id.
#[derive(Debug, Args, Clone, Default)]
pub struct SchemaIdArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Keep each schema fetched from the registry in this folder too, so a
    /// restart decodes without the registry (ids are never reused).
    #[arg(long = "registry-cache", value_name = "DIR", requires = "url")]
    pub registry_cache: Option<PathBuf>,

    /// Writer schemas by id without a registry, laid out as Rubin publishes
    /// them (lsst-alert-packet's schema/ folder): id 703 is DIR/7/3/*.avsc.
    #[arg(long = "schema-dir", value_name = "DIR")]
    pub schema_dir: Option<PathBuf>,

    /// A Confluent-framed message whose schema id neither the registry nor
    /// --schema-dir knows: stop before it (exit 1, its offset not committed:
    /// an unknown id almost always means a wrong or reset registry), or skip
    /// it (counted in alertstream_decode_errors_total, reason unknown_schema).
    #[arg(
        long = "on-unknown-schema",
        value_enum,
        default_value_t = OnUnknownSchema::Stop,
        value_name = "ACTION"
    )]
    pub on_unknown_schema: OnUnknownSchema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OnUnknownSchema {
    #[default]
    Stop,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchiveFormat {
    Avro,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    Null,
    Deflate,
    Snappy,
    Zstandard,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate the completion script for.
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WireFormat {
    Schemaless,
    Container,
    Confluent,
    KeySchema,
}

/// How `print` reads each message's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadFormat {
    Auto,
    Schemaless,
    Container,
    Confluent,
    KeySchema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

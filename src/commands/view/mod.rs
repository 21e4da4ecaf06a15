//! `alertstream view`: reads topics outside any consumer group (never
//! committing, like monitor), keeps the newest alerts, and serves a page to
//! look at them: rates, a live table, cutouts, light curves (`crate::page`).

mod archive;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use apache_avro::Schema;
use bytes::Bytes;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message as _};

use crate::avro::codec::{Decoder, Framing, Payload};
use crate::avro::plan::Need;
use crate::cli::ViewArgs;
use crate::commands::DecodeOptions;
use crate::exit::bad_input;
use crate::expr::Selector;
use crate::kafka::consume::{self, Handler};
use crate::kafka::consumer::{self, ConsumerOptions};
use crate::kafka::groups::{watermarks, GroupWatch};
use crate::kafka::{ClientLog, KafkaSettings};
use crate::page::store::{Entry, Message, Store};
use crate::page::summary::Summary;
use crate::page::Shared;
use crate::shutdown::Shutdown;

/// Validated `view` options.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    pub topics: Vec<String>,
    pub archive: Option<std::path::PathBuf>,
    pub listen: String,
    pub token: Option<String>,
    pub filter: Option<String>,
    pub keep: usize,
    pub keep_bytes: usize,
    pub groups: Vec<String>,
    pub consumer: ConsumerOptions,
    pub decode: DecodeOptions,
}

impl ViewOptions {
    pub fn from_args(args: ViewArgs) -> Result<Self> {
        for topic in &args.topics {
            crate::kafka::admin::check_topic(topic)?;
        }
        if args.keep == 0 {
            return Err(bad_input("--keep 0: give at least 1"));
        }
        if args.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(bad_input(
                "--token is empty: give a secret, or leave --token out on a loopback address",
            ));
        }
        if args.groups.iter().any(|g| g.trim().is_empty()) {
            return Err(bad_input("--group is empty"));
        }
        if let Some(dir) = args.archive.as_ref().filter(|d| !d.is_dir()) {
            let what = if dir.exists() {
                "not a folder"
            } else {
                "does not exist"
            };
            return Err(bad_input(format!(
                "--archive {}: {what} (give the --out folder of alertstream record)",
                dir.display()
            )));
        }
        Ok(Self {
            topics: args.topics,
            archive: args.archive,
            listen: args.listen,
            token: args.token,
            filter: args.filter,
            keep: args.keep,
            keep_bytes: super::byte_size("--keep-bytes", &args.keep_bytes)?,
            groups: args.groups,
            consumer: ConsumerOptions::from_args(args.consumer)?,
            decode: DecodeOptions::from_read(args.read)?,
        })
    }
}

pub async fn run(options: ViewOptions, kafka: KafkaSettings, shutdown: Shutdown) -> Result<()> {
    let reader = options.decode.reader_schema()?;
    // A bad --where fails before anything starts.
    if let Some(text) = &options.filter {
        Selector::compile(text, &reader)?;
    }
    // A folder with nothing to show fails before the page is announced.
    if let Some(dir) = &options.archive {
        archive::archive_files(dir)?;
    }
    let store = Store::new(&options.topics, options.keep, options.keep_bytes);
    let shared = Arc::new(Shared::new(
        store,
        options.decode.decoder()?,
        reader,
        options.token.clone(),
    ));
    let listener = crate::metrics::bind("--listen", &options.listen, "127.0.0.1:8080")?;
    let local = listener.local_addr()?;
    warn_if_open(local, options.token.is_some());
    crate::metrics::spawn_server(listener, crate::page::router(shared.clone()))?;
    let consumer = &options.consumer;
    let bounded = options.archive.is_none()
        && (consumer.exit_at_end || consumer.until.is_some() || consumer.max_messages.is_some());
    tracing::info!(
        "view on http://{local}/{} ({})",
        address_hint(local, options.token.is_some()),
        match bounded {
            true => "until every topic has ended, or Ctrl-C",
            false => "Ctrl-C to stop",
        }
    );
    if let Some(dir) = options.archive.clone() {
        // No brokers to reach: the archive is what the page serves.
        crate::metrics::get().set_brokers_up(true);
        crate::metrics::serving_without_brokers();
        let (shared, options) = (shared.clone(), options.clone());
        let loaded = tokio::task::spawn_blocking(move || archive::load(&dir, &shared, &options));
        loaded.await??;
        tracing::info!("archive loaded; the page stays up (Ctrl-C to stop)");
        shutdown.wait().await;
        return Ok(());
    }
    read_topics(&options, &kafka, &shutdown, &shared).await
}

/// What to add to the address the log gives: how to open it.
fn address_hint(local: SocketAddr, token: bool) -> String {
    let mut hint = String::new();
    if local.ip().is_unspecified() {
        hint.push_str(&format!(
            " (every address of this host, e.g. http://127.0.0.1:{}/)",
            local.port()
        ));
    }
    if token {
        hint.push_str(" (open it with ?token=TOKEN, the token given)");
    }
    hint
}

/// Reads every topic on a thread of its own until Ctrl-C, or until each has
/// ended (-e, --until, --max-messages); the first error ends the view.
async fn read_topics(
    options: &ViewOptions,
    kafka: &KafkaSettings,
    shutdown: &Shutdown,
    shared: &Arc<Shared>,
) -> Result<()> {
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    for topic in &options.topics {
        let reading = Reading {
            topic: topic.clone(),
            options: options.clone(),
            kafka: kafka.clone(),
            shutdown: shutdown.clone(),
            shared: shared.clone(),
            picker: Picker::for_view(options, &shared.reader)?,
        };
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("view {topic}"))
            .spawn(move || {
                let topic = reading.topic.clone();
                let _ = done.send((topic, reading.read()));
            })?;
    }
    drop(done);
    let mut ended = 0;
    loop {
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            next = finished.recv() => match next {
                Some((topic, Err(e))) => return Err(e.context(format!("view: reading {topic}"))),
                Some((topic, Ok(()))) => {
                    shared.store.set_at_end(&topic);
                    ended += 1;
                    tracing::info!("{topic}: read to the end");
                }
                None => {
                    tracing::info!("read {ended} topic(s) to their end: exiting");
                    return Ok(());
                }
            },
        }
    }
}

/// Anything but loopback is reachable by others, and the page has no
/// accounts: say so unless a token guards it.
fn warn_if_open(local: SocketAddr, token: bool) {
    if !local.ip().is_loopback() && !token {
        tracing::warn!(
            "--listen {local}: the page has no authentication and anyone who can reach this address sees the stream; give --token (or ALERTSTREAM_VIEW_TOKEN)"
        );
    }
}

/// One topic's consumer, on a thread of its own (consuming blocks).
struct Reading {
    topic: String,
    options: ViewOptions,
    kafka: KafkaSettings,
    shutdown: Shutdown,
    shared: Arc<Shared>,
    picker: Picker,
}

impl Reading {
    fn read(self) -> Result<()> {
        let Some(stream) = consumer::open(
            &self.kafka,
            &self.options.consumer,
            &self.topic,
            None,
            &[
                ("client.id", "alertstream-view"),
                // view keeps what it reads, so librdkafka's prefetch (64 MB by
                // default) came on top of the kept alerts: 16 MB still keeps
                // the consumer fed and peak memory 50 MB lower (-X overrides).
                ("queued.max.messages.kbytes", "16384"),
            ],
            &self.shutdown,
        )?
        else {
            return Ok(());
        };
        let mut keeper = Keeper {
            topic: Arc::from(self.topic.as_str()),
            picker: self.picker,
            shared: self.shared,
            groups: GroupWatch::new(&self.kafka, &self.options.groups)?,
            lags_read: None,
        };
        consume::run(
            stream,
            &self.kafka,
            &self.options.consumer,
            &self.shutdown,
            &mut keeper,
        )
    }
}

/// How often the watched groups' lag is read.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Decodes each message and keeps its alerts for the page.
struct Keeper {
    topic: Arc<str>,
    picker: Picker,
    shared: Arc<Shared>,
    groups: GroupWatch,
    lags_read: Option<Instant>,
}

impl Handler for Keeper {
    fn counts_alerts(&self) -> bool {
        false
    }

    /// Bad messages are reported and skipped as in print; an unknown schema
    /// id stops the view unless --on-unknown-schema skip.
    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        match self.keep(message) {
            Ok(entries) => self.shared.store.push(entries),
            Err(e) => {
                super::undecodable(message, e, None, None)?;
                self.shared.store.skipped(&self.topic);
            }
        }
        Ok(())
    }

    fn tick(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        if self.groups.is_empty() || self.lags_read.is_some_and(|at| at.elapsed() < LAG_EVERY) {
            return Ok(());
        }
        self.lags_read = Some(Instant::now());
        let marks = watermarks(consumer, &self.topic);
        self.shared
            .store
            .set_lags(&self.topic, self.groups.lags(&self.topic, &marks));
        Ok(())
    }
}

impl Keeper {
    /// The message's alerts (those --where selects) as entries for the store;
    /// its bytes are copied only when one is kept.
    fn keep(&mut self, message: &BorrowedMessage<'_>) -> Result<Vec<Entry>> {
        let value = message.payload().unwrap_or_default();
        if value.is_empty() {
            return Err(anyhow!("empty message"));
        }
        let key = message.key();
        let at = (self.topic.clone(), message.partition(), message.offset());
        let kept = || Message {
            key: key.map(Arc::from),
            value: Bytes::copy_from_slice(value),
            timestamp_ms: message.timestamp().to_millis(),
            framing: String::new(),
        };
        self.picker.entries(at, Payload { key, value }, kept)
    }
}

/// What view keeps of a message, from Kafka or an archive: the alerts
/// `--where` selects, decoded only as far as a table row and the selector
/// need.
pub(super) struct Picker {
    decoder: Decoder,
    selector: Option<Selector>,
    need: Need,
}

impl Picker {
    /// The picker view's options ask for: their decoder, and their --where
    /// compiled against the reader schema (an error names what is wrong
    /// before anything is read).
    pub(super) fn for_view(options: &ViewOptions, reader: &Schema) -> Result<Self> {
        let selector = options
            .filter
            .as_deref()
            .map(|text| Selector::compile(text, reader))
            .transpose()?;
        let mut need = crate::page::summary::need();
        if let Some(selector) = &selector {
            need.merge(selector.need());
        }
        Ok(Self {
            decoder: options.decode.decoder()?,
            selector,
            need,
        })
    }

    /// A message's selected alerts as entries for the store, each with its
    /// table row. `kept` makes the message to keep, called only if an alert
    /// is selected.
    pub(super) fn entries(
        &self,
        (topic, partition, offset): (Arc<str>, i32, i64),
        payload: Payload<'_>,
        kept: impl FnOnce() -> Message,
    ) -> Result<Vec<Entry>> {
        let (framing, alerts) = self.decoder.framed_fields(payload, &self.need)?;
        let count = alerts.len();
        let selector = self.selector.as_ref();
        let rows: Vec<(usize, Summary)> = alerts
            .iter()
            .enumerate()
            .filter(|(_, alert)| selector.is_none_or(|s| s.selects(alert)))
            .map(|(index, alert)| (index, Summary::of_avro(alert)))
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut message = kept();
        if message.framing.is_empty() {
            message.framing = framing_name(framing);
        }
        let message = Arc::new(message);
        Ok(rows
            .into_iter()
            .map(|(index, summary)| {
                let message = message.clone();
                Entry::new(
                    topic.clone(),
                    partition,
                    offset,
                    index,
                    count,
                    message,
                    summary,
                )
            })
            .collect())
    }
}

fn framing_name(framing: Framing) -> String {
    match framing {
        Framing::Confluent { .. } => "confluent".into(),
        other => other.name(),
    }
}

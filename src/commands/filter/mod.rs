//! `alertstream filter`: routes the alerts each `--where` selects to its
//! `--to` topic, unchanged (payload bytes, key, headers, timestamp), exactly
//! once: the routed messages and the input offsets they came from commit in
//! one Kafka transaction. A filter killed with -9 leaves an open transaction
//! that a `read_committed` reader never sees; restarted in its group, it
//! fences that transaction (same transactional.id) and resumes from the last
//! committed input offsets.
//!
//! A route may also hold back what it selected: past `--limit-per-visit`
//! in a visit, or an object routed within `--dedupe-window`. That state
//! follows the transaction (an abort forgets what it counted) and lives in
//! the process.

mod dedupe;
mod held;
mod route;
mod visits;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::avro::codec::Decoder;
use crate::avro::plan::Need;
use crate::cli::FilterArgs;
use crate::commands::DecodeOptions;
use crate::exit::bad_input;
use crate::kafka::consume::{self, Handler};
use crate::kafka::consumer::{self, ConsumerOptions};
use crate::kafka::dead_letter::DeadLetter;
use crate::kafka::produce::{self, drain, Delivery, Producing};
use crate::kafka::{admin, ClientLog, KafkaSettings};
use crate::progress::ConsumeBar;
use crate::shutdown::Shutdown;
use route::Route;

/// How long a transaction call may wait on the brokers.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a commit that fails abortably may be retried (its input read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Allowed,
    Never,
}

/// Abortable commit failures in a row retried (aborted, input read again)
/// before the filter gives up with an error.
const ABORTABLE_RETRIES: u32 = 3;

/// Validated `filter` options.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub topic: String,
    /// (expression, output topic), in the order given.
    pub routes: Vec<(String, String)>,
    pub group: String,
    pub consumer: ConsumerOptions,
    pub decode: DecodeOptions,
    pub transactional_id: String,
    pub commit_interval: Duration,
    /// --limit-per-visit and --visit-key.
    pub limit_per_visit: Option<(u64, Option<String>)>,
    /// --dedupe-key and --dedupe-window (ms).
    pub dedupe: Option<(String, i64)>,
}

impl FilterOptions {
    pub fn from_args(args: FilterArgs) -> Result<Self> {
        admin::check_topic(&args.topic)?;
        if args.wheres.len() != args.to.len() {
            return Err(bad_input(format!(
                "{} --where and {} --to: give them in pairs, --where EXPR --to TOPIC",
                args.wheres.len(),
                args.to.len()
            )));
        }
        crate::commands::check_dead_letter(args.decode.dead_letter.as_deref(), &args.topic)?;
        if let Some(dead) = args
            .decode
            .dead_letter
            .as_ref()
            .filter(|d| args.to.contains(d))
        {
            return Err(bad_input(format!(
                "--dead-letter {dead} is also a --to topic: undecodable copies would mix with \
                 the routed alerts; give another topic"
            )));
        }
        for to in &args.to {
            admin::check_topic(to)?;
            if *to == args.topic {
                return Err(bad_input(format!("--to {to} is the topic being filtered")));
            }
        }
        if !(args.commit_interval.is_finite() && args.commit_interval > 0.0) {
            return Err(bad_input(
                "--commit-interval must be a positive number of seconds",
            ));
        }
        if args.limit_per_visit == Some(0) {
            return Err(bad_input(
                "--limit-per-visit 0 would route nothing: give 1 or more",
            ));
        }
        let dedupe = match (args.dedupe_key, args.dedupe_window) {
            (Some(key), Some(window)) => {
                let ms = crate::time::parse_duration("--dedupe-window", &window)?;
                Some((key, ms))
            }
            _ => None,
        };
        let group = consumer::group_or_default(args.group)?;
        let consumer = ConsumerOptions::from_args(args.consumer)?;
        // A window is read outside the group: an id of its own, so that a
        // backfill never fences the group's running filter.
        let windowed = consumer.from.is_some() || consumer.until.is_some();
        let transactional_id = args.transactional_id.unwrap_or_else(|| {
            let host = consumer::group_or_default(None).unwrap_or_default();
            let kind = if windowed { "filter-window" } else { "filter" };
            format!("alertstream-{kind}-{group}-{}-{host}", args.topic)
        });
        Ok(Self {
            routes: args.wheres.into_iter().zip(args.to).collect(),
            topic: args.topic,
            group,
            consumer,
            decode: DecodeOptions::from_args(args.decode)?,
            transactional_id,
            commit_interval: Duration::from_secs_f64(args.commit_interval),
            limit_per_visit: args.limit_per_visit.map(|n| (n, args.visit_key)),
            dedupe,
        })
    }
}

pub async fn run(
    options: FilterOptions,
    kafka: KafkaSettings,
    shutdown: Shutdown,
    quiet: bool,
) -> Result<()> {
    let decoder = options.decode.decoder()?;
    let reader = options.decode.reader_schema()?;
    let routes = options
        .routes
        .iter()
        .map(|(text, to)| Route::new(text, to, &options, &reader))
        .collect::<Result<Vec<_>>>()?;
    // The producer (output topics, transactions) is made while the consumer
    // joins its group and starts fetching: each takes round trips to the
    // cluster. Nothing is routed before the producer's transaction begins,
    // and a read_committed consumer waits for the input offsets of a fenced
    // transaction to settle, so the overlap changes nothing of exactly once.
    let runtime = tokio::runtime::Handle::current();
    let (producer, stream) = std::thread::scope(|scope| {
        let making = scope.spawn(|| runtime.block_on(transactional_producer(&kafka, &options)));
        let stream = consumer::open(
            &kafka,
            &options.consumer,
            &options.topic,
            Some(&options.group),
            &[
                ("client.id", "alertstream-filter"),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
            ],
            &shutdown,
        );
        let producer = making
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the producer's set-up panicked")));
        (producer, stream)
    });
    let producer = producer?;
    // Stopped while waiting for the input: nothing was read.
    let Some(stream) = stream? else {
        log_summary(&Counts::default(), &routes);
        return Ok(());
    };
    if !ensure_outputs(&producer, &kafka, &options, &shutdown).await? {
        log_summary(&Counts::default(), &routes);
        return Ok(());
    }
    let mut wanted = Need::none();
    for route in &routes {
        wanted.merge(&route.need());
    }
    let mut filter = Filter {
        wanted,
        topic: options.topic.clone(),
        routes,
        decoder,
        producer,
        pending: BTreeMap::new(),
        started: Instant::now(),
        interval: options.commit_interval,
        counts: Counts::default(),
        open: Counts::default(),
        failed_in_a_row: 0,
        in_group: stream.in_group,
        bar: ConsumeBar::new(quiet, "evaluated"),
        dead_letter: options
            .decode
            .dead_letter
            .as_deref()
            .map(DeadLetter::through_transaction),
    };
    let result = consume::run(stream, &kafka, &options.consumer, &shutdown, &mut filter);
    filter.bar.finish();
    if result.is_err() {
        let _ = abort(&filter.producer);
    }
    log_summary(&filter.counts, &filter.routes);
    result
}

/// The closing line: what was read, routed, skipped and committed.
fn log_summary(c: &Counts, routes: &[Route]) {
    let routed: Vec<String> = routes.iter().map(Route::summary).collect();
    tracing::info!(
        "filtered {} alert(s) from {} message(s): routed {}; {} skipped; {} transaction(s) committed",
        c.alerts,
        c.messages,
        routed.join(", "),
        c.skipped,
        c.transactions
    );
}

/// Creates the output topics that are missing, with the input's partition
/// count, once the input exists: a subscribed consumer waits for its topic
/// without knowing its size, so this waits too. False: stopped while waiting.
async fn ensure_outputs(
    producer: &Producing,
    kafka: &KafkaSettings,
    options: &FilterOptions,
    shutdown: &Shutdown,
) -> Result<bool> {
    let input = admin::reach(
        producer.client(),
        &producer.context().log,
        || {
            producer.poll(Duration::ZERO);
        },
        kafka.brokers(),
        &options.topic,
        admin::REACH_TIMEOUT,
    )?;
    let partitions = match admin::partition_count(&input, &options.topic) {
        Some(n) => n,
        None => match admin::await_topic(producer.client(), &options.topic, shutdown) {
            Some(n) => n,
            None => return Ok(false),
        },
    } as i32;
    let dead_letter = options.decode.dead_letter.iter();
    for to in options.routes.iter().map(|(_, to)| to).chain(dead_letter) {
        produce::ensure_topic(producer, kafka, to, Some(partitions), None).await?;
    }
    Ok(true)
}

/// The producer, its transactions initialised (fencing an earlier instance
/// with the same transactional.id).
async fn transactional_producer(
    kafka: &KafkaSettings,
    options: &FilterOptions,
) -> Result<Producing> {
    let producer = produce::create(
        kafka,
        &[
            ("client.id", "alertstream-filter"),
            ("transactional.id", &options.transactional_id),
            ("allow.auto.create.topics", "false"),
            ("linger.ms", "5"),
            ("queue.buffering.max.kbytes", "65536"),
            // Keyless alerts spread over the output's partitions message by
            // message, as send spreads them, not one partition per batch.
            ("sticky.partitioning.linger.ms", "0"),
        ],
        Delivery::unmetered(),
    )?;
    producer
        .init_transactions(TRANSACTION_TIMEOUT)
        .map_err(|e| {
            anyhow!(
                "cannot start transactions on {} (transactional.id {}): {e}; transactions need \
             Kafka 0.11 or later and a transaction state log the cluster can replicate",
                kafka.brokers(),
                options.transactional_id
            )
        })?;
    producer.begin_transaction()?;
    Ok(producer)
}

#[derive(Debug, Default)]
struct Counts {
    messages: u64,
    alerts: u64,
    skipped: u64,
    transactions: u64,
}

impl Counts {
    /// Adds what a committed transaction handled.
    fn add(&mut self, done: &Counts) {
        self.messages += done.messages;
        self.alerts += done.alerts;
        self.skipped += done.skipped;
    }
}

struct Filter {
    /// What the routes' expressions and keys read, together: only that is decoded.
    wanted: Need,
    topic: String,
    routes: Vec<Route>,
    decoder: Decoder,
    producer: Producing,
    /// Input partition to the offset after the last message handled in the open transaction.
    pending: BTreeMap<i32, i64>,
    started: Instant,
    interval: Duration,
    /// What committed transactions handled; `open`: the open one, counted
    /// once it commits (an aborted one's messages are read again).
    counts: Counts,
    open: Counts,
    /// Abortable commit failures since the last commit that succeeded.
    failed_in_a_row: u32,
    /// Whether the input is read in the group, whose offsets commit with the
    /// routed alerts; a time window reads outside any group and commits none.
    in_group: bool,
    bar: ConsumeBar,
    /// Copies of what cannot be decoded, in the same transaction.
    dead_letter: Option<DeadLetter>,
}

impl Handler for Filter {
    fn message(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        self.open.messages += 1;
        self.pending
            .insert(message.partition(), message.offset() + 1);
        let alerts = match self.decoder.fields(super::wire(message), &self.wanted) {
            Ok(alerts) => alerts,
            Err(e) => {
                super::undecodable(message, e, self.dead_letter.as_ref(), Some(&self.producer))?;
                self.open.skipped += 1;
                return Ok(());
            }
        };
        self.open.alerts += alerts.len() as u64;
        self.bar.inc(alerts.len() as u64);
        for route in &mut self.routes {
            // A message goes to a route once if any of its alerts is taken.
            if route.takes(message, &alerts) {
                forward(&self.producer, &route.to, message)?;
            }
        }
        Ok(())
    }

    fn tick(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        self.bar.tick(consumer, &self.topic);
        if !self.pending.is_empty() && self.started.elapsed() >= self.interval {
            self.commit(consumer, Retry::Allowed)?;
        }
        Ok(())
    }

    fn holds_messages(&self) -> bool {
        true
    }

    fn revoked(&mut self, consumer: &BaseConsumer<ClientLog>, partitions: &[i32]) {
        // What the open transaction holds is dropped; the partitions kept are
        // read again from their committed offsets, the others by their new owner.
        if let Err(e) = self.restart_transaction(consumer) {
            tracing::warn!("after partitions {partitions:?} were revoked: {e:#}");
        }
    }

    fn finish(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        self.bar.finish();
        if self.pending.is_empty() {
            let _ = abort(&self.producer);
            return Ok(());
        }
        // The last commit: a failure is the command's failure.
        self.commit(consumer, Retry::Never)
    }
}

impl Filter {
    /// Commits the routed alerts and, in a group, the input offsets
    /// together, and opens the next transaction. A failure aborts: nothing
    /// of it is visible and the input offsets stay where they were.
    fn commit(&mut self, consumer: &BaseConsumer<ClientLog>, retry: Retry) -> Result<()> {
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &self.pending {
            offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))?;
        }
        let metadata = match self.in_group {
            true => Some(
                consumer
                    .group_metadata()
                    .ok_or_else(|| anyhow!("the consumer has no group metadata"))?,
            ),
            false => None,
        };
        // The routed alerts are acknowledged here first: commit_transaction
        // would wait for them in 100 ms steps (see produce::SERVE_SLICE).
        drain(&self.producer, TRANSACTION_TIMEOUT, || false);
        let committed = match &metadata {
            Some(metadata) => {
                self.producer
                    .send_offsets_to_transaction(&offsets, metadata, TRANSACTION_TIMEOUT)
            }
            None => Ok(()),
        }
        .and_then(|()| self.producer.commit_transaction(TRANSACTION_TIMEOUT));
        // A window has no committed offsets to read an aborted transaction's
        // input again from: its failure is the command's (run the window again).
        let retry = match self.in_group {
            true => retry,
            false => Retry::Never,
        };
        if let Err(e) = committed {
            if retry == Retry::Allowed && abortable(&e) && self.failed_in_a_row < ABORTABLE_RETRIES
            {
                // A transaction the brokers refused (a sequence gap after a
                // rebalance, a coordinator moving): abort it and read its
                // messages again, as after a rebalance.
                self.failed_in_a_row += 1;
                tracing::warn!(
                    "the transaction failed and was aborted ({e}); its input is read again"
                );
                return self.restart_transaction(consumer);
            }
            let _ = abort(&self.producer);
            self.routes.iter_mut().for_each(Route::abort);
            self.open = Counts::default();
            let why = self.producer.context().log.last_error().unwrap_or_default();
            let outcome = match self.in_group {
                true => "the input offsets were not committed",
                false => "run the window again (what earlier transactions routed stays routed)",
            };
            return Err(anyhow!(
                "cannot commit the transaction to {}: {e} {why}; it was aborted: {outcome}",
                self.routes
                    .iter()
                    .map(|r| r.to.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.failed_in_a_row = 0;
        self.counts.transactions += 1;
        self.counts.add(&std::mem::take(&mut self.open));
        self.routes.iter_mut().for_each(Route::commit);
        self.pending.clear();
        self.started = Instant::now();
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Aborts the open transaction and rewinds what the consumer still owns
    /// to its committed offsets.
    fn restart_transaction(&mut self, consumer: &BaseConsumer<ClientLog>) -> Result<()> {
        abort(&self.producer).context("cannot abort the open transaction")?;
        self.routes.iter_mut().for_each(Route::abort);
        self.open = Counts::default();
        self.pending.clear();
        let assignment = consumer.assignment()?;
        if assignment.count() > 0 {
            let committed = consumer.committed_offsets(assignment, TRANSACTION_TIMEOUT)?;
            for element in committed.elements() {
                let offset = match element.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::Beginning,
                };
                consumer.seek(
                    element.topic(),
                    element.partition(),
                    offset,
                    TRANSACTION_TIMEOUT,
                )?;
            }
        }
        self.started = Instant::now();
        self.producer.begin_transaction()?;
        Ok(())
    }
}

/// Aborts the open transaction. What it produced is acknowledged first,
/// served here: librdkafka's abort waits for those reports and this producer
/// has no thread of its own that serves them (a rebalance aborted from
/// inside the consumer's poll waited 30 s, then failed). Nothing is purged
/// unless that wait runs out: purging in-flight messages leaves a gap in the
/// idempotent producer's sequence numbers, and the next transaction failed
/// with OUT_OF_ORDER_SEQUENCE_NUMBER. Acknowledged or not, an aborted
/// transaction's messages are never seen by a read_committed reader.
fn abort(producer: &Producing) -> rdkafka::error::KafkaResult<()> {
    if !drain(producer, TRANSACTION_TIMEOUT, || false) {
        produce::purge(producer);
    }
    producer.abort_transaction(TRANSACTION_TIMEOUT)
}

/// Whether a failed transaction call leaves the producer usable once the
/// transaction is aborted (librdkafka's "abortable" errors), rather than fenced
/// or fatal.
fn abortable(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.txn_requires_abort() && !e.is_fatal())
}

/// Produces a message to `to` as it is: payload, key, headers, timestamp.
fn forward(producer: &Producing, to: &str, message: &BorrowedMessage<'_>) -> Result<()> {
    produce::forward(producer, to, message, &[]).map_err(|e| anyhow!("cannot route to {to}: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn options(extra: &[&str]) -> FilterOptions {
        let mut line = vec![
            "alertstream",
            "filter",
            "in",
            "-g",
            "g",
            "--where",
            "candid > 0",
        ];
        line.extend_from_slice(&["--to", "out"]);
        line.extend_from_slice(extra);
        match Cli::try_parse_from(line).unwrap().command {
            Command::Filter(args) => FilterOptions::from_args(args).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// A backfill of a window must not fence the group's running filter:
    /// a restart of either fences only its own earlier instance.
    #[test]
    fn a_window_has_a_transactional_id_of_its_own() {
        let group = options(&[]).transactional_id;
        let window = options(&["--from", "-1h"]).transactional_id;
        assert!(group.starts_with("alertstream-filter-g-in-"), "{group}");
        assert!(
            window.starts_with("alertstream-filter-window-g-in-"),
            "{window}"
        );
        assert_eq!(options(&["--until", "-1m"]).transactional_id, window);
        let given = options(&["--from", "-1h", "--transactional-id", "mine"]);
        assert_eq!(given.transactional_id, "mine");
    }
}

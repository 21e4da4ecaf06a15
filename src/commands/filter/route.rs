//! One `--where` and its `--to`, with what may hold its alerts back.

use anyhow::Result;
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use prometheus_client::metrics::counter::Counter;
use rdkafka::message::{BorrowedMessage, Message};

use super::dedupe::Dedupe;
use super::visits::VisitLimit;
use super::FilterOptions;
use crate::avro::plan::Need;
use crate::expr::{KeyOf, Selector};

pub struct Route {
    selector: Selector,
    pub to: String,
    limit: Option<VisitLimit>,
    dedupe: Option<Dedupe>,
    /// What committed transactions routed and held back.
    counts: Tally,
    /// What the open transaction did: counted only once it commits.
    pending: Tally,
    /// --limit-per-visit found a message without a visit (said once).
    no_visit_said: bool,
    /// alertstream_alerts_routed_total{topic,to}.
    routed_meter: Counter,
    /// alertstream_alerts_withheld_total{topic,to,reason}.
    over_limit_meter: Counter,
    duplicate_meter: Counter,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    routed: u64,
    over_limit: u64,
    duplicates: u64,
}

impl Route {
    pub fn new(where_: &str, to: &str, options: &FilterOptions, reader: &Schema) -> Result<Self> {
        let limit = match &options.limit_per_visit {
            Some((n, key)) => {
                let key = key
                    .as_deref()
                    .map(|k| KeyOf::compile("--visit-key", k, reader))
                    .transpose()?;
                Some(VisitLimit::new(*n, key))
            }
            None => None,
        };
        let dedupe = match &options.dedupe {
            Some((key, window)) => Some(Dedupe::new(
                KeyOf::compile("--dedupe-key", key, reader)?,
                *window,
            )),
            None => None,
        };
        let m = crate::metrics::get();
        let labels = |reason: Option<&str>| {
            let mut pairs = vec![("topic", options.topic.as_str()), ("to", to)];
            pairs.extend(reason.map(|r| ("reason", r)));
            crate::metrics::labels(&pairs)
        };
        // One statement each: a family's guard lives to the end of its
        // statement, and a second get_or_create on it would wait for it.
        let routed_meter = m.routed.get_or_create(&labels(None)).clone();
        let over_limit_meter = m
            .withheld
            .get_or_create(&labels(Some("visit_limit")))
            .clone();
        let duplicate_meter = m.withheld.get_or_create(&labels(Some("duplicate"))).clone();
        Ok(Self {
            selector: Selector::compile(where_, reader)?,
            to: to.to_string(),
            limit,
            dedupe,
            counts: Tally::default(),
            pending: Tally::default(),
            no_visit_said: false,
            routed_meter,
            over_limit_meter,
            duplicate_meter,
        })
    }

    /// What this route reads of an alert: its expression and keys.
    pub fn need(&self) -> Need {
        let mut need = self.selector.need().clone();
        if let Some(key) = self.limit.as_ref().and_then(|l| l.key()) {
            need.merge(key.need());
        }
        if let Some(dedupe) = &self.dedupe {
            need.merge(dedupe.key.need());
        }
        need
    }

    /// Whether `message` goes to this route: one of its alerts is selected,
    /// its visit is under the limit, and one of the selected alerts is not a
    /// duplicate. What it takes is counted in the open transaction.
    pub fn takes(&mut self, message: &BorrowedMessage<'_>, alerts: &[Avro]) -> bool {
        let selected: Vec<&Avro> = alerts.iter().filter(|a| self.selector.selects(a)).collect();
        if selected.is_empty() {
            return false;
        }
        let visit = match &self.limit {
            Some(limit) => match limit.visit_of(message, &selected) {
                Some(visit) if !limit.allows(&visit) => {
                    self.pending.over_limit += 1;
                    return false;
                }
                Some(visit) => Some(visit),
                None => {
                    self.no_visit(message);
                    None
                }
            },
            None => None,
        };
        if let Some(dedupe) = &mut self.dedupe {
            let at = message
                .timestamp()
                .to_millis()
                .unwrap_or_else(crate::time::now_ms);
            // New: not routed within the window. An alert with no key is
            // never a duplicate, so it makes the message go too.
            let mut keyless = false;
            let mut new_keys = Vec::new();
            for alert in &selected {
                match dedupe.key.of(alert) {
                    None => keyless = true,
                    Some(key) if dedupe.allows(&key, at) => new_keys.push(key),
                    Some(_) => {}
                }
            }
            if new_keys.is_empty() && !keyless {
                self.pending.duplicates += 1;
                return false;
            }
            for key in new_keys {
                dedupe.record(key, at);
            }
        }
        if let (Some(limit), Some(visit)) = (&mut self.limit, visit) {
            limit.record(visit);
        }
        self.pending.routed += 1;
        true
    }

    fn no_visit(&mut self, message: &BorrowedMessage<'_>) {
        if !self.no_visit_said {
            self.no_visit_said = true;
            tracing::warn!(
                "{} partition {} offset {}: no visit (no --visit-key value, no alertstream-visit \
                 header); --limit-per-visit does not cap such messages to {}. Give --visit-key EXPR",
                message.topic(),
                message.partition(),
                message.offset(),
                self.to
            );
        }
    }

    /// The open transaction committed: what it routed and held back counts.
    pub fn commit(&mut self) {
        self.limit.iter_mut().for_each(VisitLimit::commit);
        self.dedupe.iter_mut().for_each(Dedupe::commit);
        let done = std::mem::take(&mut self.pending);
        self.counts.routed += done.routed;
        self.counts.over_limit += done.over_limit;
        self.counts.duplicates += done.duplicates;
        self.routed_meter.inc_by(done.routed);
        self.over_limit_meter.inc_by(done.over_limit);
        self.duplicate_meter.inc_by(done.duplicates);
    }

    /// The open transaction aborted: what it counted goes, as its messages
    /// are read again.
    pub fn abort(&mut self) {
        self.limit.iter_mut().for_each(VisitLimit::abort);
        self.dedupe.iter_mut().for_each(Dedupe::abort);
        self.pending = Tally::default();
    }

    /// `N to TOPIC`, and what was held back.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut held = Vec::new();
        if self.limit.is_some() {
            held.push(format!("{} over --limit-per-visit", c.over_limit));
        }
        if self.dedupe.is_some() {
            held.push(format!("{} duplicate(s)", c.duplicates));
        }
        if held.is_empty() {
            format!("{} to {}", c.routed, self.to)
        } else {
            format!("{} to {} ({})", c.routed, self.to, held.join(", "))
        }
    }
}

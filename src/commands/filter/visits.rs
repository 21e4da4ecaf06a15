//! `--limit-per-visit`: a route forwards at most N messages per visit, the
//! first N it reads (the original's successor capped each visit at 20).

use std::collections::VecDeque;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::held::Held;
use crate::expr::{AlertKey, KeyOf};
use crate::kafka::produce::VISIT_HEADER;

/// How many visits are remembered: a night of Rubin is about 1,000.
const MAX_VISITS: usize = 4096;

/// Messages routed per visit, kept with the transaction: what the open one
/// counted is forgotten if it aborts, as its messages are read again.
#[derive(Debug)]
pub struct VisitLimit {
    limit: u64,
    /// What names a message's visit; `None`: the alertstream-visit header.
    key: Option<KeyOf>,
    counts: Held<u64>,
    /// Committed visits, oldest first, so that the oldest are forgotten first.
    order: VecDeque<AlertKey>,
}

impl VisitLimit {
    pub fn new(limit: u64, key: Option<KeyOf>) -> Self {
        Self {
            limit,
            key,
            counts: Held::default(),
            order: VecDeque::new(),
        }
    }

    /// The --visit-key expression, if one was given.
    pub fn key(&self) -> Option<&KeyOf> {
        self.key.as_ref()
    }

    /// The visit of a message whose selected alerts are `alerts`: the
    /// --visit-key of the first that has one, else the alertstream-visit header.
    pub fn visit_of(
        &self,
        message: &BorrowedMessage<'_>,
        alerts: &[&apache_avro::types::Value],
    ) -> Option<AlertKey> {
        match &self.key {
            Some(key) => alerts.iter().find_map(|alert| key.of(alert)),
            None => message
                .headers()?
                .iter()
                .find(|h| h.key == VISIT_HEADER)?
                .value
                .map(|v| AlertKey::Bytes(v.into())),
        }
    }

    /// Whether one more message of `visit` may be routed.
    pub fn allows(&self, visit: &AlertKey) -> bool {
        let (committed, pending) = self.counts.get(visit);
        committed.unwrap_or(&0) + pending.unwrap_or(&0) < self.limit
    }

    /// A message of `visit` was routed in the open transaction.
    pub fn record(&mut self, visit: AlertKey) {
        *self.counts.pending.entry(visit).or_insert(0) += 1;
    }

    /// The open transaction committed: its counts hold.
    pub fn commit(&mut self) {
        let order = &mut self.order;
        self.counts.commit(|committed, visit, n| {
            let count = committed.entry(visit.clone()).or_insert_with(|| {
                order.push_back(visit);
                0
            });
            *count += n;
        });
        while self.order.len() > MAX_VISITS {
            if let Some(oldest) = self.order.pop_front() {
                self.counts.committed.remove(&oldest);
            }
        }
    }

    /// The open transaction aborted: its messages will be read again.
    pub fn abort(&mut self) {
        self.counts.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hold_when_committed_and_go_when_aborted() {
        let mut limit = VisitLimit::new(2, None);
        let (a, b) = (AlertKey::Int(1), AlertKey::Int(2));
        limit.record(a.clone());
        limit.record(a.clone());
        assert!(!limit.allows(&a), "two in the open transaction");
        limit.abort();
        assert!(limit.allows(&a), "aborted: read again, counted again");
        limit.record(a.clone());
        limit.commit();
        limit.record(a.clone());
        assert!(!limit.allows(&a));
        assert!(limit.allows(&b), "each visit on its own");
        limit.commit();
        assert!(!limit.allows(&a), "committed counts hold");
    }

    #[test]
    fn the_oldest_visits_are_forgotten_beyond_the_bound() {
        let mut limit = VisitLimit::new(1, None);
        for visit in 0..(MAX_VISITS as i64 + 10) {
            limit.record(AlertKey::Int(visit));
            limit.commit();
        }
        assert_eq!(limit.counts.committed.len(), MAX_VISITS);
        assert!(limit.allows(&AlertKey::Int(0)), "forgotten");
        assert!(!limit.allows(&AlertKey::Int(MAX_VISITS as i64 + 9)));
    }
}

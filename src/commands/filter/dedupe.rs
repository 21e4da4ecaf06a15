//! `--dedupe-key` and `--dedupe-window`: a route forwards an object once per
//! window (Lasair's consumer de-duplicates objects this way). Time is the
//! messages' own timestamps, so a replayed night de-duplicates as it did live.

use super::held::Held;
use crate::expr::{AlertKey, KeyOf};

/// How many objects are remembered at most (about 100 bytes each), beyond
/// what one transaction routes.
pub const MAX_KEYS: usize = 1_000_000;

/// When each object was last routed, kept with the transaction: what the
/// open one routed is forgotten if it aborts, as its messages are read again.
#[derive(Debug)]
pub struct Dedupe {
    pub key: KeyOf,
    window_ms: i64,
    capacity: usize,
    routed: Held<i64>,
    /// The newest committed timestamp: what is older by a window is forgotten.
    newest: i64,
    /// The committed size after the last pruning: the next waits for twice that.
    pruned_at: usize,
    warned: bool,
}

impl Dedupe {
    pub fn new(key: KeyOf, window_ms: i64) -> Self {
        Self::with_capacity(key, window_ms, MAX_KEYS)
    }

    fn with_capacity(key: KeyOf, window_ms: i64, capacity: usize) -> Self {
        Self {
            key,
            window_ms,
            capacity,
            routed: Held::default(),
            newest: i64::MIN,
            pruned_at: 0,
            warned: false,
        }
    }

    /// Whether `key`, seen at `at` (epoch ms), was not routed within a window of it.
    pub fn allows(&self, key: &AlertKey, at: i64) -> bool {
        let (committed, pending) = self.routed.get(key);
        match pending.or(committed) {
            Some(&routed) => at.saturating_sub(routed).saturating_abs() >= self.window_ms,
            None => true,
        }
    }

    /// `key` was routed at `at` in the open transaction.
    pub fn record(&mut self, key: AlertKey, at: i64) {
        self.routed.pending.insert(key, at);
    }

    /// The open transaction committed: what it routed is remembered.
    pub fn commit(&mut self) {
        let newest = &mut self.newest;
        self.routed.commit(|committed, key, at| {
            *newest = (*newest).max(at);
            committed.insert(key, at);
        });
        let due = (2 * self.pruned_at).max(1024).min(self.capacity);
        if self.routed.committed.len() > due {
            self.prune();
        }
    }

    /// The open transaction aborted: its messages will be read again.
    pub fn abort(&mut self) {
        self.routed.abort();
    }

    /// Forgets objects a window older than the newest; beyond the capacity,
    /// the oldest quarter too (said once: they may be routed again early).
    fn prune(&mut self) {
        let horizon = self.newest.saturating_sub(self.window_ms);
        self.routed.committed.retain(|_, at| *at > horizon);
        if self.routed.committed.len() > self.capacity {
            let mut times: Vec<i64> = self.routed.committed.values().copied().collect();
            let cut = times.len() - self.capacity * 3 / 4;
            let (_, &mut oldest_kept, _) = times.select_nth_unstable(cut);
            self.routed.committed.retain(|_, at| *at >= oldest_kept);
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    "--dedupe-window holds more than {} objects: the oldest are forgotten \
                     early, so they may be routed again within the window",
                    self.capacity
                );
            }
        }
        self.pruned_at = self.routed.committed.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dedupe(window_ms: i64, capacity: usize) -> Dedupe {
        let schema = crate::avro::schema::built_in();
        let key = KeyOf::compile("--dedupe-key", "objectId", &schema).unwrap();
        Dedupe::with_capacity(key, window_ms, capacity)
    }

    fn object(name: &str) -> AlertKey {
        AlertKey::Text(name.into())
    }

    #[test]
    fn an_object_goes_once_per_window_of_message_time() {
        let mut d = dedupe(60_000, MAX_KEYS);
        let a = object("ZTF18aaaaaaa");
        assert!(d.allows(&a, 1_000));
        d.record(a.clone(), 1_000);
        assert!(!d.allows(&a, 1_000), "same transaction");
        d.commit();
        assert!(!d.allows(&a, 60_999), "within the window");
        assert!(
            !d.allows(&a, -50_000),
            "an older message, within the window"
        );
        assert!(d.allows(&a, 61_000), "a window later");
        assert!(d.allows(&object("ZTF18aaaaaab"), 2_000), "another object");
    }

    #[test]
    fn an_aborted_transaction_forgets_what_it_routed() {
        let mut d = dedupe(60_000, MAX_KEYS);
        let a = object("ZTF18aaaaaaa");
        d.record(a.clone(), 1_000);
        d.abort();
        assert!(d.allows(&a, 1_000), "read again, routed again: not lost");
    }

    #[test]
    fn memory_is_bounded_by_window_and_capacity() {
        let mut d = dedupe(10, 5_000);
        for i in 0..20_000 {
            d.record(AlertKey::Int(i), i);
            d.commit();
        }
        assert!(
            d.routed.committed.len() <= 2048,
            "a window of 10 ms: {}",
            d.routed.committed.len()
        );
        let mut wide = dedupe(i64::MAX, 5_000);
        for i in 0..20_000 {
            wide.record(AlertKey::Int(i), i);
            wide.commit();
        }
        assert!(
            wide.routed.committed.len() <= 5_000,
            "{}",
            wide.routed.committed.len()
        );
        assert!(wide.warned);
        assert!(
            !wide.allows(&AlertKey::Int(19_999), 20_000),
            "the newest kept"
        );
    }
}

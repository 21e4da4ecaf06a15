//! What a route remembers per key (a visit's count, an object's last
//! routing), kept with the transaction: the open transaction's part is held
//! apart until it commits, and forgotten if it aborts, as its messages are
//! then read again.

use std::collections::HashMap;

use crate::expr::AlertKey;

#[derive(Debug)]
pub struct Held<V> {
    pub committed: HashMap<AlertKey, V>,
    pub pending: HashMap<AlertKey, V>,
}

impl<V> Default for Held<V> {
    fn default() -> Self {
        Self {
            committed: HashMap::new(),
            pending: HashMap::new(),
        }
    }
}

impl<V> Held<V> {
    /// The committed and the open transaction's value of `key`.
    pub fn get(&self, key: &AlertKey) -> (Option<&V>, Option<&V>) {
        (self.committed.get(key), self.pending.get(key))
    }

    /// The open transaction committed: `merge` folds each of its entries
    /// into the committed ones.
    pub fn commit(&mut self, mut merge: impl FnMut(&mut HashMap<AlertKey, V>, AlertKey, V)) {
        for (key, value) in self.pending.drain() {
            merge(&mut self.committed, key, value);
        }
    }

    /// The open transaction aborted.
    pub fn abort(&mut self) {
        self.pending.clear();
    }
}

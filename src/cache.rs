//! One small bounded cache for what is costly to make and repeats in a
//! stream (parsed writer schemas, resolutions, Parquet layouts). When full it
//! starts afresh: a stream carries a few schemas at a time, so the simplest
//! bound keeps memory flat under a hostile stream of endless new schemas
//! without any bookkeeping on the hit path.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// At most `limit` entries, shared between threads.
#[derive(Debug)]
pub struct Bounded<K, V> {
    entries: Mutex<HashMap<K, V>>,
    limit: usize,
}

/// Entries kept at once by the caches of the decode path.
pub const ENTRIES: usize = 64;

impl<K: Eq + Hash, V: Clone> Default for Bounded<K, V> {
    fn default() -> Self {
        Self::new(ENTRIES)
    }
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    /// The entry for `key`, made by `make` (outside the lock) if missing.
    pub fn get_or_try_insert<Q, E>(
        &self,
        key: &Q,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(found) = self.lock().get(key) {
            return Ok(found.clone());
        }
        let value = make()?;
        let mut entries = self.lock();
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key.to_owned(), value.clone());
        Ok(value)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_once_and_stays_bounded() {
        let cache: Bounded<String, usize> = Bounded::new(3);
        let mut made = 0;
        for round in 0..2 {
            for key in ["a", "b"] {
                let v = cache
                    .get_or_try_insert(key, || {
                        made += 1;
                        Ok::<_, ()>(key.len())
                    })
                    .unwrap();
                assert_eq!(v, 1, "round {round}");
            }
        }
        assert_eq!(made, 2);
        for i in 0..100 {
            let key = format!("k{i}");
            cache.get_or_try_insert(&*key, || Ok::<_, ()>(i)).unwrap();
            assert!(cache.len() <= 3);
        }
        assert!(cache
            .get_or_try_insert("z", || Err::<usize, _>("refused"))
            .is_err());
    }
}

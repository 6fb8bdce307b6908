//! A cache bounded in bytes that evicts the least recently used entries first: the font cache
//! (in memory and on disk) and the memo of generated CSS.

use std::{collections::HashMap, hash::Hash};

pub(crate) struct ByteLru<K, V> {
    entries: HashMap<K, Entry<V>>,
    capacity: u64,
    size: u64,
    clock: u64,
}

struct Entry<V> {
    value: V,
    size: u64,
    used: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    pub(crate) fn new(capacity: u64) -> Self {
        Self { entries: HashMap::new(), capacity, size: 0, clock: 0 }
    }

    /// The value, now the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|e| {
            e.used = clock;
            e.value.clone()
        })
    }

    /// Keeps `value` as the most recently used, then evicts the least recently used entries
    /// until the cache fits its capacity; returns what was evicted. A value larger than the
    /// whole capacity is not kept (it comes back as evicted).
    pub(crate) fn insert(&mut self, key: K, value: V, size: u64) -> Vec<(K, V)> {
        self.clock += 1;
        if let Some(old) = self.entries.insert(key, Entry { value, size, used: self.clock }) {
            self.size -= old.size;
        }
        self.size += size;
        let mut evicted = Vec::new();
        while self.size > self.capacity {
            let Some(oldest) =
                self.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.size -= e.size;
                evicted.push((oldest, e.value));
            }
        }
        evicted
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_to_fit() {
        let mut lru = ByteLru::new(10);
        assert!(lru.insert("a", 1, 4).is_empty());
        assert!(lru.insert("b", 2, 4).is_empty());
        assert_eq!(lru.get(&"a"), Some(1)); // "b" is now the oldest
        assert_eq!(lru.insert("c", 3, 4), vec![("b", 2)]);
        assert_eq!((lru.len(), lru.size()), (2, 8));
        assert!(lru.get(&"a").is_some() && lru.get(&"c").is_some());
    }

    #[test]
    fn replacing_an_entry_counts_its_new_size_once() {
        let mut lru = ByteLru::new(10);
        lru.insert("a", 1, 6);
        lru.insert("a", 2, 3);
        assert_eq!((lru.len(), lru.size(), lru.get(&"a")), (1, 3, Some(2)));
    }

    #[test]
    fn a_value_larger_than_the_capacity_is_not_kept() {
        let mut lru = ByteLru::new(10);
        lru.insert("small", 1, 2);
        let evicted = lru.insert("huge", 2, 11);
        assert_eq!(lru.size(), 0);
        assert_eq!(evicted.len(), 2);
        assert!(lru.get(&"huge").is_none());
    }
}

//! The hasher of the simulator's hash maps: fixed and unkeyed, so a map's order (which
//! the simulator never lets show) is the same run after run. Keys come from the
//! simulator's own clients, so there is no adversary to key against.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::Index;

/// Builds the hasher of every hash map of the simulator.
pub(crate) type FixedHash = rustc_hash::FxBuildHasher;

/// A map whose entries are found by hashing their key and listed in key order: a hash
/// table of the entries beside the sorted set of their keys. Keys are cloned once per
/// entry (for the set), so they should be cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct SortedHashMap<K, V> {
    entries: HashMap<K, V, FixedHash>,
    keys: BTreeSet<K>,
}

impl<K, V> Default for SortedHashMap<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
            keys: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Hash + Clone, V> SortedHashMap<K, V> {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    /// The value of `key`, to change.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key)
    }

    /// Sets the value of `key`, returning the one it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(old) = self.entries.get_mut(&key) {
            return Some(std::mem::replace(old, value));
        }
        self.keys.insert(key.clone());
        self.entries.insert(key, value);
        None
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Ord + ?Sized,
    {
        let value = self.entries.remove(key)?;
        self.keys.remove(key);
        Some(value)
    }

    /// The entries, by key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.keys
            .iter()
            .filter_map(|k| self.entries.get(k).map(|v| (k, v)))
    }

    /// The values, by key.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Ord + Hash + Clone, V> Index<&K> for SortedHashMap<K, V> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry for the key")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn the_same_key_hashes_alike_in_every_map_and_names_spread() {
        let (a, b) = (FixedHash::default(), FixedHash::default());
        assert_eq!(a.hash_one("volume-1"), b.hash_one("volume-1"));
        let hashes: HashSet<u64> = (0..1000)
            .map(|i| a.hash_one(format!("array-a:pg.1.volume-{i}-cinder")))
            .collect();
        assert_eq!(hashes.len(), 1000);
    }

    #[test]
    fn a_sorted_hash_map_lists_by_key_whatever_the_insertion_order() {
        let mut m = SortedHashMap::new();
        for k in ["b", "d", "a", "c"] {
            assert_eq!(m.insert(k.to_owned(), k.len()), None);
        }
        assert_eq!(m.insert("c".to_owned(), 7), Some(1));
        assert_eq!(m.remove("d"), Some(1));
        assert_eq!(m.remove("d"), None);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [1, 1, 7]);
        assert_eq!(m[&"c".to_owned()], 7);
        assert!(m.get("a").is_some() && m.get("d").is_none());
        *m.get_mut("a").unwrap() += 1;
        assert_eq!(m.get("a"), Some(&2));
    }
}

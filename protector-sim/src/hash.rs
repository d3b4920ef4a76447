//! The hasher of the simulator's hash maps: fixed and unkeyed, so a map's order (which
//! the simulator never lets show) is the same run after run. Keys come from the
//! simulator's own clients, so there is no adversary to key against.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::Index;

/// Builds the hasher of every hash map of the simulator.
pub(crate) type FixedHash = rustc_hash::FxBuildHasher;

/// A map whose entries are found by hashing their key and listed in key order: a hash
/// table of the entries beside the sorted set of their keys. Keys are cloned once per
/// entry (for the set), so they should be cheap to clone.
///
/// Keys are text (ids): the sorted set orders each key by its first eight bytes read
/// as a big-endian number first and by the whole key only when those tie, which is
/// the key's own order (`K`'s `Ord` must be that of its text) at the cost of an integer
/// comparison for most steps of a search, not a string comparison.
#[derive(Clone, Debug)]
pub(crate) struct SortedHashMap<K, V> {
    entries: HashMap<K, V, FixedHash>,
    keys: BTreeSet<OrderKey<K>>,
}

/// A key of a [`SortedHashMap`] in its sorted set: its text's leading bytes as a number,
/// then the key (fields compare in that order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey<K> {
    lead: u64,
    key: K,
}

impl<K: Borrow<str>> OrderKey<K> {
    fn new(key: K) -> Self {
        Self {
            lead: leading_bytes(key.borrow()),
            key,
        }
    }
}

/// The first eight bytes of `s` as a big-endian number, zero-padded when `s` is
/// shorter. When two texts' numbers differ, they order the texts as the texts order
/// themselves: the first byte that differs decides both (a padding zero stands for an
/// end of text, which sorts first, and ids hold no zero bytes that it could be mistaken
/// for; if one did, the numbers would tie and the texts be compared whole).
fn leading_bytes(s: &str) -> u64 {
    let mut lead = [0u8; 8];
    let n = s.len().min(8);
    lead[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(lead)
}

impl<K, V> Default for SortedHashMap<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
            keys: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Hash + Clone + Borrow<str>, V> SortedHashMap<K, V> {
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
        match self.entries.entry(key) {
            Entry::Occupied(mut e) => Some(e.insert(value)),
            Entry::Vacant(e) => {
                self.keys.insert(OrderKey::new(e.key().clone()));
                e.insert(value);
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, value) = self.entries.remove_entry(key)?;
        self.keys.remove(&OrderKey::new(key));
        Some(value)
    }

    /// The entries, by key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.keys
            .iter()
            .filter_map(|k| self.entries.get::<K>(&k.key).map(|v| (&k.key, v)))
    }

    /// The values, by key.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Ord + Hash + Clone + Borrow<str>, V> Index<&K> for SortedHashMap<K, V> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get::<K>(key).expect("no entry for the key")
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

    #[test]
    fn a_sorted_hash_map_lists_keys_that_share_or_lack_eight_leading_bytes_in_text_order() {
        let texts = [
            "",
            "a",
            "volume-",
            "volume-1",
            "volume-10",
            "volume-1-cinder",
            "volume-2",
            "volume-\u{e9}",
            "volume-z",
            "volumf",
            "Volume-1",
            "volume-0123456789",
            "volume-0123456788",
            "zz",
            "a\u{0}",
            "a\u{0}\u{0}b",
            "\u{7f}",
        ];
        let mut m = SortedHashMap::new();
        let mut expected = BTreeSet::new();
        for (i, t) in texts.iter().enumerate() {
            m.insert(t.to_string(), i);
            expected.insert(t.to_string());
        }
        assert_eq!(m.remove("volume-10"), Some(4));
        expected.remove("volume-10");
        let keys: Vec<&String> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, expected.iter().collect::<Vec<_>>());
        for (a, b) in keys.iter().zip(keys.iter().skip(1)) {
            assert!(leading_bytes(a) <= leading_bytes(b), "{a:?} {b:?}");
        }
    }
}

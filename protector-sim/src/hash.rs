//! The hasher of the simulator's hash maps: fixed and unkeyed, so a map's order (which
//! the simulator never lets show) is the same run after run. Keys come from the
//! simulator's own clients, so there is no adversary to key against.

/// Builds the hasher of every hash map of the simulator.
pub(crate) type FixedHash = rustc_hash::FxBuildHasher;

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
}

//! Where a run keeps its collaborators' private states between fan-outs.
//!
//! A runtime over a list of names without a cache bound keeps one slot per collaborator (the
//! historical layout: a vector indexed by position). A population, or any runtime with
//! [`LocalRuntime::private_state_cache`](crate::LocalRuntime::private_state_cache), keeps only
//! the states built so far, in a map by position, and with a bound evicts the least recently
//! used one when a state is put back into a full cache.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes collaborator positions with one multiply (Fibonacci hashing): positions come from the
/// flow's own fan-outs, not from an adversary, and SipHash would cost more than the lookup.
#[derive(Default)]
pub(crate) struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) enum Privates<C> {
    /// One slot per collaborator of the list.
    Dense(Vec<Option<C>>),
    /// Only the states built so far.
    Cached(Cache<C>),
}

impl<C> Privates<C> {
    /// The layout for a run over `collaborators` collaborators; `dense` for a list.
    pub(crate) fn new(collaborators: usize, dense: bool, bound: Option<usize>) -> Self {
        match (dense, bound) {
            (true, None) => Privates::Dense((0..collaborators).map(|_| None).collect()),
            _ => Privates::Cached(Cache::new(bound)),
        }
    }

    /// Takes out the state of the collaborator at `position`, if one is kept.
    pub(crate) fn take(&mut self, position: usize) -> Option<C> {
        match self {
            Privates::Dense(slots) => slots.get_mut(position).and_then(Option::take),
            Privates::Cached(cache) => cache.take(position),
        }
    }

    /// Puts back the state of the collaborator at `position`, evicting if the cache is full.
    pub(crate) fn put(&mut self, position: usize, state: C) {
        match self {
            Privates::Dense(slots) => {
                if let Some(slot) = slots.get_mut(position) {
                    *slot = Some(state);
                }
            }
            Privates::Cached(cache) => cache.put(position, state),
        }
    }
}

/// Built states by position; with a bound, least recently used first out.
pub(crate) struct Cache<C> {
    entries: HashMap<usize, (C, u64), BuildHasherDefault<PositionHasher>>,
    /// Last use → position, oldest first; kept only with a bound.
    by_use: BTreeMap<u64, usize>,
    clock: u64,
    bound: Option<usize>,
}

impl<C> Cache<C> {
    fn new(bound: Option<usize>) -> Self {
        Cache {
            entries: HashMap::default(),
            by_use: BTreeMap::new(),
            clock: 0,
            bound,
        }
    }

    pub(crate) fn take(&mut self, position: usize) -> Option<C> {
        let (state, used) = self.entries.remove(&position)?;
        if self.bound.is_some() {
            self.by_use.remove(&used);
        }
        Some(state)
    }

    pub(crate) fn put(&mut self, position: usize, state: C) {
        self.clock += 1;
        let Some(bound) = self.bound else {
            self.entries.insert(position, (state, self.clock));
            return;
        };
        if let Some((_, used)) = self.entries.insert(position, (state, self.clock)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.clock, position);
        while self.entries.len() > bound {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            // Dropped here; the factory rebuilds it on the collaborator's next step.
            self.entries.remove(&oldest);
            tracing::trace!(position = oldest, "private state evicted");
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_evicts_the_least_recently_used() {
        let mut cache = Cache::new(Some(2));
        cache.put(1, "one");
        cache.put(2, "two");
        let one = cache.take(1).expect("1 is cached");
        cache.put(1, one); // 1 is now the most recent
        cache.put(3, "three");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.take(2), None, "2 was the least recently used");
        assert_eq!(cache.take(1), Some("one"));
        assert_eq!(cache.take(3), Some("three"));
    }

    #[test]
    fn an_unbounded_cache_keeps_everything() {
        let mut cache = Cache::new(None);
        for i in 0..100 {
            cache.put(i, i);
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.by_use.len(), 0);
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let mut cache = Cache::new(Some(0));
        cache.put(5, ());
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.by_use.len(), 0);
    }
}

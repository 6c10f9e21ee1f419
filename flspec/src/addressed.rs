//! Addressed fields: a field of which each collaborator of a fan-out receives only its own entry.
//!
//! Declare them on the flow, `#[flow(addressed = [inbox])]`, with a type that implements
//! [`Addressed`], usually [`PerCollaborator<T>`]. In every fan-out each collaborator's copy of the
//! state holds only its own entry of these fields; the others' entries are neither copied nor
//! sent. Without this, a field holding one message per collaborator (such as SecAgg's encrypted
//! shares) would reach every collaborator whole: O(n²) bytes per round, and other collaborators'
//! data on every site.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A field type whose entries are addressed to collaborators.
pub trait Addressed: Default {
    /// Removes and returns the part addressed to `name` (empty if there is none).
    fn take_for(&mut self, name: &str) -> Self;
}

/// A map from collaborator name to a value for that collaborator, as an addressed field.
///
/// # Example
/// ```
/// use flspec::PerCollaborator;
///
/// let mut inbox = PerCollaborator::new();
/// inbox.insert("Portland", vec![1u8]);
/// inbox.insert("Bengaluru", vec![2u8]);
/// assert_eq!(inbox.get("Portland"), Some(&vec![1u8]));
/// assert_eq!(inbox.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerCollaborator<T> {
    entries: BTreeMap<String, T>,
}

impl<T> Default for PerCollaborator<T> {
    fn default() -> Self {
        PerCollaborator {
            entries: BTreeMap::new(),
        }
    }
}

impl<T> PerCollaborator<T> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value for a collaborator, returning the previous one.
    pub fn insert(&mut self, name: impl Into<String>, value: T) -> Option<T> {
        self.entries.insert(name.into(), value)
    }

    /// The value for a collaborator.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.entries.get(name)
    }

    /// The value for a collaborator, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.entries.get_mut(name)
    }

    /// The value for a collaborator, inserting `T::default()` first if there is none.
    pub fn entry(&mut self, name: &str) -> &mut T
    where
        T: Default,
    {
        self.entries.entry(name.to_string()).or_default()
    }

    /// Removes the value for a collaborator.
    pub fn remove(&mut self, name: &str) -> Option<T> {
        self.entries.remove(name)
    }

    /// How many collaborators have a value.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no collaborator has a value.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<T> Addressed for PerCollaborator<T> {
    fn take_for(&mut self, name: &str) -> Self {
        let mut out = PerCollaborator::new();
        if let Some(v) = self.entries.remove(name) {
            out.entries.insert(name.to_string(), v);
        }
        out
    }
}

impl<T> FromIterator<(String, T)> for PerCollaborator<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        PerCollaborator {
            entries: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_for_moves_one_entry_and_leaves_the_rest() {
        let mut all: PerCollaborator<u32> = [("a".to_string(), 1), ("b".to_string(), 2)]
            .into_iter()
            .collect();
        let a = all.take_for("a");
        assert_eq!(a.get("a"), Some(&1));
        assert_eq!(a.len(), 1);
        assert_eq!(all.get("a"), None);
        assert_eq!(all.get("b"), Some(&2));
        assert!(all.take_for("zz").is_empty());
    }
}

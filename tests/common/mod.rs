//! Helpers shared by the integration tests: the `flows_*` tests' collaborators and step log,
//! (`mnist`) the MNIST flows' set-up, and (`cargo`) nested cargo builds.
#![allow(dead_code)]

pub mod cargo;
#[cfg(feature = "torch")]
pub mod mnist;

use std::sync::{Arc, Mutex};

use flspec::Event;

/// The collaborators of OpenFL's test flows.
pub const CITIES: [&str; 8] = [
    "Portland",
    "Seattle",
    "Chandler",
    "Bangalore",
    "Delhi",
    "Paris",
    "London",
    "New York",
];

/// `n` collaborator names `c0`, `c1`, ...
pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// Records `(step, participant)` for every `StepStarted` event, in the order they happen.
#[derive(Clone, Default)]
pub struct StepLog(Arc<Mutex<Vec<(String, String)>>>);

impl StepLog {
    /// An observer that appends to this log; give it to `LocalRuntime::observer`.
    pub fn observer(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let log = self.0.clone();
        move |e: &Event<'_>| {
            if let Event::StepStarted {
                step, participant, ..
            } = e
            {
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(((*step).to_string(), (*participant).to_string()));
            }
        }
    }

    /// Everything recorded so far.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// How many times `step` started (on any participant).
    pub fn count(&self, step: &str) -> usize {
        self.entries().iter().filter(|(s, _)| s == step).count()
    }

    /// The steps one participant started, in order.
    pub fn of(&self, participant: &str) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|(_, p)| p == participant)
            .map(|(s, _)| s)
            .collect()
    }
}

/// `(step, participant)` pairs from string slices, for comparisons with [`StepLog::entries`].
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(s, p)| ((*s).to_string(), (*p).to_string()))
        .collect()
}

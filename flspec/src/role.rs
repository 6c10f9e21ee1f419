//! The two roles of a federation.

use std::fmt;

/// Where a step runs: on the aggregator or on each collaborator of a fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The coordinating participant; runs `start`, joins and `end`.
    Aggregator,
    /// A site holding private data; runs the steps a fan-out sends it to.
    Collaborator,
}

impl Role {
    /// The role's name in lower case, as used in messages and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Aggregator => "aggregator",
            Role::Collaborator => "collaborator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

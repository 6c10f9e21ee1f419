//! What the benches share.

pub mod counting;

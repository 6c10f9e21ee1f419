//! flspec: federated-learning workflows as typed Rust state machines.

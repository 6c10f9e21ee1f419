//! Benchmarks of the federated runtime (written below).

fn main() {}

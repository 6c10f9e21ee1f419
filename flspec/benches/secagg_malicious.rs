//! The cost of the malicious-secure mode against the semi-honest one: a whole simulated round
//! (every client and the server, `simulate_round`, no dropouts) with vectors of 21,840 values
//! (the MNIST CNN of the flagship example), at n = 10 and 100 (full graph and SecAgg+) and
//! n = 1,000 (SecAgg+). Both modes use the same config apart from `security`, with the
//! malicious mode's threshold (`min_malicious_threshold` of each group), so the difference is
//! the signatures and the consistency-check round. Also prints the bytes client 1 sends and
//! receives in each mode.
//!
//! Run: `cargo bench -p flspec --bench secagg_malicious -- --warm-up-time 1 --measurement-time 5`
//! (`SECAGG_BENCH_D=1` for the fixed costs alone; `SECAGG_BENCH_N=100` for the cases of one `n`
//! only: a criterion filter such as `n100` skips the timing of the others but not their
//! one-off round for the byte counts, which at n = 1,000 takes seconds).

#![allow(clippy::unwrap_used)] // a benchmark that fails should stop loudly
#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion};
use flspec::secagg::{
    ClientId, Config, DropoutPlan, Input, Mode, Quantizer, Security, min_malicious_threshold,
    simulate_round,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// The vector length: 21,840 unless `SECAGG_BENCH_D` says otherwise (e.g. 1, to see the
/// protocol's fixed costs alone).
fn d() -> usize {
    std::env::var("SECAGG_BENCH_D")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21_840)
}

fn config(n: usize, mode: &Mode, security: Security) -> Config {
    let hood = match mode {
        Mode::Full => n,
        Mode::SecAggPlus { k, .. } => *k as usize + 1,
    };
    Config::new(
        (1..=n as u32).map(ClientId),
        min_malicious_threshold(hood as u32),
        d(),
        Quantizer::new(1.0, n as u32).unwrap(),
    )
    .with_mode(mode.clone())
    .with_session([3; 32])
    .with_round(1)
    .with_security(security)
}

fn inputs(n: usize) -> BTreeMap<ClientId, Input> {
    (1..=n as u32)
        .map(|i| {
            let d = d();
            let x = (0..d)
                .map(|j| ((i as usize * d + j) as f32 * 1e-3).sin())
                .collect();
            (ClientId(i), Input::Float(x))
        })
        .collect()
}

/// The `n` to run: all unless `SECAGG_BENCH_N` names one.
fn wanted(n: usize) -> bool {
    std::env::var("SECAGG_BENCH_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_none_or(|only| only == n)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    let cases: Vec<(usize, &str, Mode)> = [10usize, 100, 1000]
        .into_iter()
        .filter(|&n| wanted(n))
        .flat_map(|n| {
            let plus = Mode::SecAggPlus {
                k: Mode::secagg_plus_degree(n),
                graph_seed: 1,
            };
            let mut v = vec![(n, "secagg+", plus)];
            if n < 1000 {
                v.insert(0, (n, "full", Mode::Full));
            }
            v
        })
        .collect();
    for (n, name, mode) in cases {
        let mut g = c.benchmark_group(format!("secagg_round/{name}/n{n}/d{}", d()));
        g.sample_size(10);
        for (label, security) in [
            ("semi-honest", Security::SemiHonest),
            ("malicious", Security::Malicious),
        ] {
            let cfg = config(n, &mode, security);
            let out = simulate_round(
                &cfg,
                &inputs(n),
                &DropoutPlan::none(),
                &mut ChaCha20Rng::seed_from_u64(1),
            )
            .unwrap();
            assert!(out.result.is_ok());
            rows.push((
                n,
                name,
                label,
                out.bytes_sent[&ClientId(1)],
                out.bytes_received[&ClientId(1)],
            ));
            g.bench_function(label, |b| {
                b.iter_batched(
                    || inputs(n),
                    |x| {
                        simulate_round(
                            &cfg,
                            &x,
                            &DropoutPlan::none(),
                            &mut ChaCha20Rng::seed_from_u64(1),
                        )
                        .unwrap()
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }
    c.final_summary();
    println!("\nbytes of client 1 per round (d = {}):", d());
    println!("| n | graph | mode | sent | received |");
    for (n, name, label, sent, received) in rows {
        println!("| {n} | {name} | {label} | {sent} | {received} |");
    }
}

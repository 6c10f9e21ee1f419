//! Folding joins against `Inputs` joins (issue 12): one round `start -> foreach train -> join
//! -> end` whose state carries a payload (1 KiB, or none), for fan-outs of 1,000, 10,000 and
//! 100,000 collaborators, sequentially and with `parallel(2)`. Memory: the peak heap above the
//! level before the run (the runtime and its name list already exist), from a counting global
//! allocator (it includes the `foreach` list that `start` builds: a copy of every name), and
//! the most copies of the payload alive at once (the allocator counts live blocks of exactly
//! 1,024 bytes, which nothing else in the run allocates). Time: the median of `FLSPEC_FOLD_REPS` runs (default 5), fold and join runs
//! alternating so that a changing load hits both alike.
//!
//! `cargo bench -p flspec-local --bench fold` (`FLSPEC_FOLD_SIZES=1000,10000` to pick the
//! fan-outs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use flspec::prelude::*;
use flspec_local::LocalRuntime;

mod common;
use common::counting::{peak_blocks_during, peak_during, watch_blocks_of};

const PAYLOAD: usize = 1024;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Folding {
    size: usize,
    payload: Vec<u8>,
    total: u64,
}

#[flow]
impl Folding {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.payload = vec![1; self.size];
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        if let Some(b) = self.payload.first_mut() {
            *b = 2;
        }
        next!(self.add, include = [payload])
    }

    #[aggregator]
    fn add(&mut self, input: Input<Self>) -> Next<Self> {
        self.total += input.payload.iter().map(|&b| u64::from(b)).sum::<u64>() + 1;
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Joining {
    size: usize,
    payload: Vec<u8>,
    total: u64,
}

#[flow]
impl Joining {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        self.payload = vec![1; self.size];
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        if let Some(b) = self.payload.first_mut() {
            *b = 2;
        }
        next!(self.join, include = [payload])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs
            .iter()
            .map(|i| i.payload.iter().map(|&b| u64::from(b)).sum::<u64>() + 1)
            .sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn fold(runtime: &LocalRuntime<()>, size: usize) -> u64 {
    Folding {
        size,
        ..Folding::default()
    }
    .run(runtime)
    .expect("a folding run")
    .total
}

fn join(runtime: &LocalRuntime<()>, size: usize) -> u64 {
    Joining {
        size,
        ..Joining::default()
    }
    .run(runtime)
    .expect("a joining run")
    .total
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FLSPEC_FOLD_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("a fan-out size"))
        .collect();
    let reps: usize = std::env::var("FLSPEC_FOLD_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("CPU: {cpu}; load average at start: {}", load.trim());
    println!(
        "| mode | n | fold: peak heap of the run | join: peak heap of the run | fold: payload copies alive at once | join: payload copies alive at once | fold: peak / n | fold time | join time | fold / join |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    watch_blocks_of(PAYLOAD);
    let mut shares = Vec::new();
    // The runtime keeps a slot per collaborator for its private state (one byte for `()`),
    // unless a cache bounds the states it keeps.
    let modes = [
        ("sequential", 1, None),
        ("parallel(2)", 2, None),
        ("sequential, private_state_cache(64)", 1, Some(64)),
    ];
    for (mode, workers, cache) in modes {
        for &n in &sizes {
            let names: Vec<String> = (0..n).map(|i| format!("site-{i:06}")).collect();
            let mut runtime = LocalRuntime::new(names, |_| ()).parallel(workers);
            if let Some(states) = cache {
                runtime = runtime.private_state_cache(states);
            }
            // Warm-up: lazily initialised statics, the allocator's arenas.
            black_box(fold(&runtime, PAYLOAD));
            black_box(join(&runtime, PAYLOAD));
            let (fold_peak, total) = peak_during(|| fold(&runtime, PAYLOAD));
            assert_eq!(total, n as u64 * (PAYLOAD as u64 + 2));
            let (join_peak, total) = peak_during(|| join(&runtime, PAYLOAD));
            assert_eq!(total, n as u64 * (PAYLOAD as u64 + 2));
            let (fold_copies, _) = peak_blocks_during(|| fold(&runtime, PAYLOAD));
            let (join_copies, _) = peak_blocks_during(|| join(&runtime, PAYLOAD));
            shares.push((mode, n, fold_peak, fold_copies));
            let (mut fold_times, mut join_times) = (Vec::new(), Vec::new());
            for rep in 0..reps {
                let mut time_fold = || {
                    let t = Instant::now();
                    black_box(fold(&runtime, PAYLOAD));
                    fold_times.push(t.elapsed());
                };
                let mut time_join = || {
                    let t = Instant::now();
                    black_box(join(&runtime, PAYLOAD));
                    join_times.push(t.elapsed());
                };
                if rep % 2 == 0 {
                    time_fold();
                    time_join();
                } else {
                    time_join();
                    time_fold();
                }
            }
            let (f, j) = (median(fold_times), median(join_times));
            println!(
                "| {mode} | {n} | {fold_peak} | {join_peak} | {fold_copies} | {join_copies} | {:.1} | {} | {} | {:.2}x |",
                fold_peak as f64 / n as f64,
                ms(f),
                ms(j),
                f.as_secs_f64() / j.as_secs_f64()
            );
        }
    }
    println!();
    for (mode, _, _) in modes {
        let of = |n: usize| shares.iter().find(|s| s.0 == mode && s.1 == n);
        if let (Some(small), Some(large)) = (of(sizes[0]), of(*sizes.last().expect("sizes"))) {
            println!(
                "{mode}: fold at n = {} against n = {}: peak heap of the run {:.2}x, payload copies alive at once {:.2}x ({} against {})",
                large.1,
                small.1,
                large.2 as f64 / small.2 as f64,
                large.3 as f64 / small.3.max(1) as f64,
                large.3,
                small.3
            );
        }
    }
}

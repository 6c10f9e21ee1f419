//! One round of a sampled population: `start` samples 1,000 collaborators with
//! `ctx.roster().sample(..)` (a seeded `ClientSampler`), each clones the 1 KiB state and trains
//! on its private data (256 bytes, built by the factory on first use), `join` sums, `end`.
//! The same round from a population of 1,000 (every collaborator sampled) and of 1,000,000
//! (one in a thousand): the ratio of their medians is the cost of the population's size.
//! For contrast, the same round on a runtime that lists its names (`LocalRuntime::new`), where
//! sampling sorts every name.
//!
//! Memory: a counting global allocator (live heap bytes and their peak) measures the bytes a
//! runtime holds once built and the peak above that during one run, for both populations; their
//! difference over the 999,000 extra collaborators is the cost of an idle collaborator. It also
//! runs ten rounds with and without `private_state_cache(1_000)`.
//!
//! `cargo bench -p flspec-local --bench population -- --warm-up-time 1 --measurement-time 3`;
//! `FLSPEC_BENCH_MEMORY_ONLY=1` prints the memory table and skips the timings. Before
//! criterion's groups (one after the other), it prints the medians of 1,000 rounds from each
//! population measured in alternation, which a changing load on a shared machine skews less.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use flspec::fl::sampling::{ClientSampler, SamplingError};
use flspec::prelude::*;
use flspec::runtime::Population;
use flspec_local::LocalRuntime;

mod common;
use common::counting::{held_by, peak_during};

const STATE_BYTES: usize = 1024;
const PRIVATE_BYTES: usize = 256;
const SAMPLE: usize = 1_000;
const SMALL: usize = 1_000;
const LARGE: usize = 1_000_000;

/// The flow state: 1 KiB of "model", the round, the sampler's seed.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Round {
    model: Vec<u8>,
    counter: u64,
    round: u32,
    rounds: u32,
}

/// A collaborator's private data.
struct Site {
    data: Vec<u8>,
}

fn site(name: &str) -> Site {
    let b = name.bytes().last().unwrap_or(0);
    Site {
        data: vec![b; PRIVATE_BYTES],
    }
}

impl Round {
    fn initial(rounds: u32) -> Self {
        Round {
            model: (0..STATE_BYTES).map(|i| i as u8).collect(),
            counter: 0,
            round: 0,
            rounds,
        }
    }

    fn sample(&self, ctx: &Ctx) -> Result<Vec<String>, SamplingError> {
        let sampler = ClientSampler::new(7)
            .fraction(0.0)
            .min_clients(SAMPLE)
            .min_available(1);
        ctx.roster().sample(&sampler, u64::from(self.round))
    }
}

#[flow(collaborator = Site)]
impl Round {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Result<Next<Self>, SamplingError> {
        let picked = self.sample(ctx)?;
        Ok(next!(self.train, foreach = picked))
    }

    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Next<Self> {
        let i = (self.counter as usize) % self.model.len();
        self.counter += 1 + u64::from(self.model[i]) + u64::from(site.data[i % PRIVATE_BYTES]);
        self.model[i] = self.model[i].wrapping_add(1);
        site.data[0] = site.data[0].wrapping_add(1);
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Result<Next<Self>, SamplingError> {
        self.counter = inputs.iter().map(|i| i.counter).sum();
        self.round += 1;
        if self.round < self.rounds {
            let picked = self.sample(ctx)?;
            Ok(next!(self.train, foreach = picked))
        } else {
            Ok(next!(self.end))
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn population(n: usize) -> LocalRuntime<Site> {
    LocalRuntime::population(Population::new(n), site)
}

fn listed(n: usize) -> LocalRuntime<Site> {
    LocalRuntime::new((0..n).map(|i| format!("site-{i:07}")), site)
}

fn one_round(runtime: &LocalRuntime<Site>) -> Round {
    Round::initial(1).run(runtime).expect("the run")
}

fn timings(c: &mut Criterion) {
    for (mode, workers) in [("sequential", 1), ("parallel2", 2)] {
        let mut group = c.benchmark_group(format!("population/{mode}"));
        group.sample_size(30);
        for n in [SMALL, LARGE] {
            let runtime = population(n).parallel(workers);
            group.bench_with_input(BenchmarkId::new("round_of_1000", n), &n, |b, _| {
                b.iter(|| black_box(one_round(&runtime)));
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("listed/sequential");
    group.sample_size(10);
    for n in [SMALL, LARGE] {
        let runtime = listed(n);
        group.bench_with_input(BenchmarkId::new("round_of_1000", n), &n, |b, _| {
            b.iter(|| black_box(one_round(&runtime)));
        });
    }
    group.finish();
}

/// The memory table.
fn memory() {
    println!(
        "population runtime memory (bytes; counting allocator; a private state is {} bytes)",
        PRIVATE_BYTES + std::mem::size_of::<Site>()
    );
    let mut rows = Vec::new();
    for n in [SMALL, LARGE] {
        let (held, runtime) = held_by(|| population(n));
        one_round(&runtime); // warm-up: lazily initialised statics
        let (peak, _) = peak_during(|| one_round(&runtime));
        let (after, ()) = held_by(|| drop(one_round(&runtime)));
        println!(
            "population {n:>9}: runtime holds {held:>6}, one round's peak {peak:>9}, left after a run {after}"
        );
        rows.push((held, peak));
    }
    let extra = (LARGE - SMALL) as f64;
    let per_idle =
        ((rows[1].0 + rows[1].1 as isize) - (rows[0].0 + rows[0].1 as isize)) as f64 / extra;
    println!(
        "per idle collaborator (1,000,000 vs 1,000, runtime + peak of a round): {per_idle:.3} bytes"
    );
    assert!(per_idle <= 64.0, "{per_idle} bytes per idle collaborator");
    let (names, runtime) = held_by(|| listed(LARGE));
    println!(
        "for contrast, a runtime listing 1,000,000 names holds {names} bytes ({:.1} per name)",
        names as f64 / LARGE as f64
    );
    drop(runtime);

    for (label, cache) in [
        ("no bound", None),
        ("private_state_cache(1000)", Some(1_000)),
    ] {
        let runtime = match cache {
            Some(bound) => population(LARGE).private_state_cache(bound),
            None => population(LARGE),
        };
        let (peak, _) = peak_during(|| Round::initial(10).run(&runtime).expect("the run"));
        println!("ten rounds of 1,000 from 1,000,000, {label}: peak {peak} bytes");
    }
}

/// Medians of one round from each population, the two measured in alternation (so that a
/// change in the machine's load hits both alike), and their ratio.
fn interleaved(rounds: usize) {
    use std::time::Instant;
    for workers in [1, 2] {
        let small = population(SMALL).parallel(workers);
        let large = population(LARGE).parallel(workers);
        let (mut t_small, mut t_large) = (Vec::new(), Vec::new());
        for i in 0..rounds + 50 {
            let time = |runtime: &LocalRuntime<Site>| {
                let began = Instant::now();
                black_box(one_round(runtime));
                began.elapsed().as_secs_f64()
            };
            let (a, b) = if i % 2 == 0 {
                let a = time(&small);
                (a, time(&large))
            } else {
                let b = time(&large);
                (time(&small), b)
            };
            if i >= 50 {
                // The first 50 pairs warm up.
                t_small.push(a);
                t_large.push(b);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (m_small, m_large) = (median(&mut t_small), median(&mut t_large));
        println!(
            "interleaved, {workers} worker(s), {rounds} rounds each: median round from 1,000: {:.1} us, from 1,000,000: {:.1} us, ratio {:.3}",
            m_small * 1e6,
            m_large * 1e6,
            m_large / m_small
        );
    }
}

fn main() {
    // Same result whatever the population's size or workers (sample of 1,000 either way).
    for workers in [1, 2] {
        assert!(one_round(&population(SMALL).parallel(workers)).counter > 0);
        assert!(one_round(&population(LARGE).parallel(workers)).counter > 0);
    }
    memory();
    if std::env::var_os("FLSPEC_BENCH_MEMORY_ONLY").is_some() {
        return;
    }
    interleaved(1_000);
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c);
    c.final_summary();
}

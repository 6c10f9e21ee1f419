//! The local runtime's overhead: a flow `start -> foreach train -> join -> end` with a 1 KiB
//! state, for 1 to 10,000 collaborators, sequential and parallel (2 workers), against a
//! hand-written loop that makes the same clones and calls without the framework.
//!
//! Also reports the peak heap memory of one run of each (a counting global allocator), to check
//! that memory grows linearly with the collaborators, about one state copy per collaborator.
//!
//! `cargo bench -p flspec-local --bench local -- --warm-up-time 1 --measurement-time 3`;
//! `FLSPEC_BENCH_MEMORY_ONLY=1` prints the memory table and skips the timings;
//! `FLSPEC_BENCH_NO_MEMORY=1` skips the memory table (e.g. to profile one timing with
//! `-- --profile-time 5 'local/sequential/framework/1000$'`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap bytes above the current level while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    (peak.max(0) as usize, out)
}

const STATE_BYTES: usize = 1024;
const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

/// The flow state: 1 KiB of "model" and a counter.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Bench {
    model: Vec<u8>,
    counter: u64,
}

impl Bench {
    fn initial() -> Self {
        Bench {
            model: (0..STATE_BYTES).map(|i| i as u8).collect(),
            counter: 0,
        }
    }
}

/// The collaborators' work: cheap, so that the benchmark measures the framework.
#[inline(never)]
fn train(state: &mut Bench) {
    let i = (state.counter as usize) % state.model.len();
    state.counter += 1 + u64::from(state.model[i]);
    state.model[i] = state.model[i].wrapping_add(1);
}

/// The aggregator's work.
#[inline(never)]
fn join<'a>(state: &mut Bench, inputs: impl Iterator<Item = &'a Bench>) {
    state.counter = inputs.map(|b| b.counter).sum();
}

#[flow]
impl Bench {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        train(self);
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        join(self, inputs.iter().map(|i| i.state()));
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("collaborator-{i}")).collect()
}

/// The same clones and calls as the flow, without the framework: a copy of the state per
/// collaborator, `train` on it, the `(name, state)` pairs collected in order, `join`.
fn hand_loop(mut state: Bench, names: &[String]) -> Bench {
    let inputs: Vec<(String, Bench)> = names
        .iter()
        .map(|name| {
            let mut copy = state.clone();
            train(&mut copy);
            (name.clone(), copy)
        })
        .collect();
    join(&mut state, inputs.iter().map(|(_, s)| s));
    state
}

/// The hand loop on two threads: each takes half of the collaborators, in order. Like the
/// runtime, it runs a single collaborator on the calling thread.
fn hand_loop_parallel(mut state: Bench, names: &[String]) -> Bench {
    if names.len() < 2 {
        return hand_loop(state, names);
    }
    let half = names.len().div_ceil(2);
    let shared = &state;
    let inputs: Vec<(String, Bench)> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .chunks(half.max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|name| {
                            let mut copy = shared.clone();
                            train(&mut copy);
                            (name.clone(), copy)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker"))
            .collect()
    });
    join(&mut state, inputs.iter().map(|(_, s)| s));
    state
}

fn framework(runtime: &LocalRuntime<()>) -> Bench {
    Bench::initial().run(runtime).expect("the run")
}

fn check_same(n: usize) {
    let names = names(n);
    let expected = hand_loop(Bench::initial(), &names).counter;
    assert_eq!(
        hand_loop_parallel(Bench::initial(), &names).counter,
        expected
    );
    for workers in [1, 2] {
        let rt = LocalRuntime::new(names.clone(), |_| ()).parallel(workers);
        assert_eq!(framework(&rt).counter, expected);
    }
}

fn timings(c: &mut Criterion) {
    for (mode, workers) in [("sequential", 1), ("parallel2", 2)] {
        let mut group = c.benchmark_group(format!("local/{mode}"));
        for n in SIZES {
            check_same(n);
            group.throughput(Throughput::Elements(n as u64));
            group.sample_size(if n >= 10_000 {
                10
            } else if n >= 1_000 {
                30
            } else {
                50
            });
            let list = names(n);
            let runtime = LocalRuntime::new(list.clone(), |_| ()).parallel(workers);
            group.bench_with_input(BenchmarkId::new("framework", n), &n, |b, _| {
                b.iter(|| black_box(framework(&runtime)));
            });
            group.bench_with_input(BenchmarkId::new("hand_loop", n), &n, |b, _| {
                if workers == 1 {
                    b.iter(|| black_box(hand_loop(Bench::initial(), &list)));
                } else {
                    b.iter(|| black_box(hand_loop_parallel(Bench::initial(), &list)));
                }
            });
        }
        group.finish();
    }
}

/// Peak heap bytes of one run of each, printed as a table.
fn memory() {
    let state_size = STATE_BYTES + std::mem::size_of::<Bench>();
    println!("peak heap during one run (bytes; a state copy is {state_size} bytes)");
    println!(
        "{:>7} | {:>12} {:>12} {:>8} | {:>12} {:>12} {:>8} | {:>9} {:>9}",
        "n", "fw seq", "hand seq", "ratio", "fw par2", "hand par2", "ratio", "fw/n seq", "fw/n par"
    );
    for n in SIZES {
        let list = names(n);
        let seq = LocalRuntime::new(list.clone(), |_| ());
        let par = LocalRuntime::new(list.clone(), |_| ()).parallel(2);
        // Warm up once, so that lazily initialised statics do not count.
        framework(&seq);
        framework(&par);
        let (fw_seq, _) = peak_during(|| framework(&seq));
        let (hand_seq, _) = peak_during(|| hand_loop(Bench::initial(), &list));
        let (fw_par, _) = peak_during(|| framework(&par));
        let (hand_par, _) = peak_during(|| hand_loop_parallel(Bench::initial(), &list));
        println!(
            "{n:>7} | {fw_seq:>12} {hand_seq:>12} {:>8.2} | {fw_par:>12} {hand_par:>12} {:>8.2} | {:>9.0} {:>9.0}",
            fw_seq as f64 / hand_seq as f64,
            fw_par as f64 / hand_par as f64,
            fw_seq as f64 / n as f64,
            fw_par as f64 / n as f64,
        );
        // About one state copy per collaborator (the join's inputs), plus bookkeeping.
        if n >= 100 {
            let per = fw_seq.max(fw_par) as f64 / n as f64;
            assert!(
                per < 1.5 * state_size as f64,
                "{per} bytes per collaborator at n = {n}"
            );
        }
    }
}

fn main() {
    if std::env::var_os("FLSPEC_BENCH_NO_MEMORY").is_none() {
        memory();
    }
    if std::env::var_os("FLSPEC_BENCH_MEMORY_ONLY").is_some() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c);
    c.final_summary();
}

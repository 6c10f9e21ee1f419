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
//!
//! Before criterion's groups, the bench times the framework and the hand loop **in
//! alternation** (one run of each, in turn, after warm-up pairs) and prints both medians and
//! their ratio: on a machine shared with other work, criterion's groups (measured one after
//! the other) drift with the load, while alternating runs see the same load.
//! `FLSPEC_BENCH_INTERLEAVED_ONLY=1` prints only that table.
//!
//! `FLSPEC_BENCH_PROFILE=<framework|hand_loop|hand_loop_listed>:<n>:<runs>` runs only that side, `runs` times
//! sequentially for `n` collaborators, and exits: under `perf record`, the sample counts of two
//! such runs with the same `n` and `runs` compare the two sides' work function by function.
//!
//! The allocator counts bytes only while the memory table is measured, so the timings see the
//! system allocator's own cost (`FLSPEC_BENCH_COUNT_ALWAYS=1` counts during the timings too, as
//! this bench did before).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Whether allocations are counted: only while [`memory`] measures (two atomic adds per
/// allocation would otherwise weigh on the timings, more on the side that allocates more).
static COUNTING: AtomicBool = AtomicBool::new(false);

fn grew(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let now = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
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

/// The hand loop, after making and freeing an owned copy of the name list, as the flow's
/// `foreach = ctx.collaborators()` does (a `next!` fan-out list is a `Vec<String>`): the share
/// of the framework's overhead that is that copy.
fn hand_loop_listed(state: Bench, names: &[String]) -> Bench {
    let list: Vec<String> = black_box(names.to_vec());
    let out = hand_loop(state, names);
    drop(list);
    out
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
    COUNTING.store(true, Ordering::SeqCst);
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
    COUNTING.store(false, Ordering::SeqCst);
}

/// Times the framework, the hand loop and the hand loop with a copy of the name list in
/// rotation (one run of each in turn, the first of the three rotating), `pairs` rounds after
/// `pairs / 10` warm-up rounds, and prints the medians per collaborator-step and the ratios.
fn interleaved() {
    use std::time::Instant;
    println!(
        "interleaved medians per collaborator-step: framework, hand loop, hand loop + list copy; \
         framework / hand loop, framework / (hand loop + list copy)"
    );
    for (mode, workers) in [("sequential", 1), ("parallel2", 2)] {
        for n in SIZES {
            let list = names(n);
            let runtime = LocalRuntime::new(list.clone(), |_| ()).parallel(workers);
            let fw = || framework(&runtime);
            let hand = || {
                if workers == 1 {
                    hand_loop(Bench::initial(), &list)
                } else {
                    hand_loop_parallel(Bench::initial(), &list)
                }
            };
            let listed = || {
                let copy: Vec<String> = black_box(list.to_vec());
                let out = hand();
                drop(copy);
                out
            };
            let sides: [&dyn Fn() -> Bench; 3] = [&fw, &hand, &listed];
            // About 2 s of each at the pre-change speeds (1 us per collaborator-step), at
            // least 200 rounds.
            let rounds = (2_000_000 / n).clamp(200, 20_000);
            let warm_up = rounds / 10;
            let mut times: [Vec<f64>; 3] = Default::default();
            for i in 0..warm_up + rounds {
                for k in 0..3 {
                    let side = (i + k) % 3;
                    let began = Instant::now();
                    black_box(sides[side]());
                    let took = began.elapsed().as_secs_f64();
                    if i >= warm_up {
                        times[side].push(took);
                    }
                }
            }
            let [m_fw, m_hand, m_listed] = times.map(|mut v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2] * 1e9 / n as f64
            });
            println!(
                "{mode:>10} n = {n:>6} ({rounds:>5} rounds): {m_fw:>8.1} ns, {m_hand:>8.1} ns, {m_listed:>8.1} ns; ratios {:.2}, {:.2}",
                m_fw / m_hand,
                m_fw / m_listed
            );
        }
    }
}

/// `FLSPEC_BENCH_PROFILE=<side>:<n>:<runs>`: runs one side alone (for a profiler).
fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [side, n, runs] = parts[..] else {
        panic!(
            "FLSPEC_BENCH_PROFILE is `<framework|hand_loop|hand_loop_listed>:<n>:<runs>`, not `{spec}`"
        );
    };
    let n: usize = n.parse().expect("FLSPEC_BENCH_PROFILE: n is a number");
    let runs: usize = runs
        .parse()
        .expect("FLSPEC_BENCH_PROFILE: runs is a number");
    let list = names(n);
    let runtime = LocalRuntime::new(list.clone(), |_| ());
    let began = std::time::Instant::now();
    for _ in 0..runs {
        match side {
            "framework" => black_box(framework(&runtime)),
            "hand_loop" => black_box(hand_loop(Bench::initial(), &list)),
            "hand_loop_listed" => black_box(hand_loop_listed(Bench::initial(), &list)),
            other => panic!(
                "FLSPEC_BENCH_PROFILE: unknown side `{other}`; use framework, hand_loop or hand_loop_listed"
            ),
        };
    }
    let per = began.elapsed().as_secs_f64() * 1e9 / (runs * n) as f64;
    println!("{side}, n = {n}, {runs} runs: {per:.1} ns per collaborator-step (mean)");
}

fn main() {
    if let Some(spec) = std::env::var_os("FLSPEC_BENCH_PROFILE") {
        profile(&spec.to_string_lossy());
        return;
    }
    let count_always = std::env::var_os("FLSPEC_BENCH_COUNT_ALWAYS").is_some();
    if std::env::var_os("FLSPEC_BENCH_NO_MEMORY").is_none()
        && std::env::var_os("FLSPEC_BENCH_INTERLEAVED_ONLY").is_none()
    {
        memory();
    }
    if std::env::var_os("FLSPEC_BENCH_MEMORY_ONLY").is_some() {
        return;
    }
    COUNTING.store(count_always, Ordering::SeqCst);
    if std::env::var_os("FLSPEC_BENCH_NO_INTERLEAVED").is_none() {
        interleaved();
    }
    if std::env::var_os("FLSPEC_BENCH_INTERLEAVED_ONLY").is_some() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c);
    c.final_summary();
}

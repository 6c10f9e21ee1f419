//! Benchmarks of the SecAgg MNIST flow (issue 4, point 7); results in `BENCH-secagg-mnist.md`.
//!
//! ```text
//! cargo run --release --example secagg_bench                 # everything, about 10 minutes
//! cargo run --release --example secagg_bench -- --quick      # a smoke run, about 1 minute
//! cargo run --release --example secagg_bench -- --parts overhead --reps 9 --rounds 2
//! cargo run --release --example secagg_bench -- --parts scale --scale 2,10,100
//! ```
//!
//! Parts (`--parts`, comma-separated; all by default):
//!
//! * `overhead`: the same work three ways, interleaved in this process (order rotated) and
//!   repeated (medians): a hand-written tch loop without flspec (`raw`: per round and
//!   collaborator shard, set the global weights, validate, train one epoch, validate, flatten;
//!   then FedAvg weighted by samples in plain Rust), the flow with `secure = false` (`plain`) and
//!   the flow with SecAgg (`secagg`); 2 collaborators, `--rounds` rounds, bundled data. Also
//!   prints the accuracy per round of each variant.
//! * `breakdown`: the same runs with an observer that sums the time of every step, so that the
//!   SecAgg steps (client and server crypto) are separated from training and validation.
//! * `scale`: `--scale` collaborators (each takes every n-th sample), raw, plain, SecAgg on the
//!   full graph and SecAgg+, each configuration in a child process of this binary (so peak RSS,
//!   `VmHWM`, is its own); time per round and per step, and the memory per collaborator. Also
//!   the baselines' n = 2 configurations (`--rounds`) as whole processes.
//! * `cli`: the wall time of the `secagg_mnist` example binary (2 collaborators, 2 rounds), with
//!   its default threads and with one per core, if it was built next to this one (`cargo build
//!   --release --example secagg_mnist`), and its start-up cost (wall time minus the time of the
//!   run it reports).
//! * `threads`: the raw loop with 1 libtorch thread per operation against one per core.
//!
//! Times are wall-clock seconds; on a shared machine compare the ratios measured in one run.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use flspec::{Event, Flow, Role};
use flspec_examples::example_support::{cpu_seconds, max, median, min};
use flspec_examples::secagg_mnist::{RoundRow, RunOptions, SecAggMnist, Site};
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::models::mnist_cnn::{NUM_PARAMETERS, Net};
use flspec_tch::threads;
use flspec_tch::train::{self, Batches, TrainConfig};
use tch::nn::{self, OptimizerConfig};

/// The parts of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Part {
    /// Raw tch loop vs plain flow vs SecAgg flow (ratios).
    Overhead,
    /// Time per step of the flows (SecAgg crypto separated).
    Breakdown,
    /// 2, 10, 100 collaborators: time per round and peak memory, in child processes.
    Scale,
    /// Wall time and start-up cost of the `secagg_mnist` example binary.
    Cli,
    /// The raw loop with 1 libtorch thread vs one per core.
    Threads,
}

/// Benchmarks of the SecAgg MNIST flow against a raw tch loop.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// A quick run: 2 repetitions, 2 rounds, 2 and 10 collaborators.
    #[arg(long)]
    quick: bool,
    /// Parts to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Threads, Part::Overhead, Part::Breakdown, Part::Scale, Part::Cli])]
    parts: Vec<Part>,
    /// Repetitions of each interleaved comparison (default 5, 2 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Rounds of the overhead comparison, one comparison per value (default 2,10; 2 with --quick).
    #[arg(long, value_delimiter = ',')]
    rounds: Vec<u32>,
    /// Collaborator counts of the scale part (default 2,10,100; 2,10 with --quick).
    #[arg(long, value_delimiter = ',')]
    scale: Vec<usize>,
    /// Rounds of each scale configuration (the first includes building the collaborators).
    #[arg(long, default_value_t = 1)]
    scale_rounds: u32,
    /// Repetitions of each scale configuration (default 3, 1 with --quick).
    #[arg(long)]
    scale_reps: Option<usize>,
    /// libtorch threads per operation. 1 (the default) gives stable ratios: one per core (the
    /// default of `secagg_mnist` when it runs collaborators one after the other) is faster on
    /// an idle machine but far slower on a shared one (see `--parts threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Internal: run one configuration (`MODE:N:ROUNDS`) and print its measurements.
    #[arg(long, hide = true)]
    child: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = args.threads.max(1);
    threads::set_num_threads(threads);
    if let Some(spec) = &args.child {
        return child(spec, started);
    }
    let quick = args.quick;
    let reps = args.reps.unwrap_or(if quick { 2 } else { 5 }).max(1);
    if args.rounds.is_empty() {
        args.rounds = if quick { vec![2] } else { vec![2, 10] };
    }
    if args.scale.is_empty() {
        args.scale = if quick { vec![2, 10] } else { vec![2, 10, 100] };
    }
    let scale_reps = args.scale_reps.unwrap_or(if quick { 1 } else { 3 }).max(1);
    args.parts.sort();
    args.parts.dedup();

    let data = Arc::new(Mnist::load_bundled().context("reading the bundled MNIST subset")?);
    println!(
        "# secagg_bench: {} train / {} test samples (bundled), {threads} libtorch thread(s), {cores} cores, {reps} repetitions",
        data.train.len(),
        data.test.len()
    );
    println!("(load average at start: {})", load_average());
    let mut accuracy: BTreeMap<u32, Vec<(Variant, Vec<RoundRow>)>> = BTreeMap::new();
    for &part in &args.parts {
        match part {
            Part::Overhead => {
                for &rounds in &args.rounds {
                    let rows = overhead(&data, rounds, reps)?;
                    accuracy.insert(rounds, rows);
                }
                for (rounds, rows) in &accuracy {
                    print_accuracy(*rounds, rows);
                }
            }
            Part::Breakdown => {
                let rounds = args.rounds.iter().copied().max().unwrap_or(2);
                breakdown(&data, rounds, reps)?;
            }
            Part::Scale => scale(
                &args.scale,
                args.scale_rounds,
                &args.rounds,
                scale_reps,
                threads,
            )?,
            Part::Cli => cli(reps.min(3), cores)?,
            Part::Threads => thread_counts(&data, reps.min(3), threads, cores)?,
        }
    }
    println!(
        "\n(total {:.1} s; load average at end: {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Variants

/// One way of doing the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    /// The hand-written tch loop.
    Raw,
    /// The flow, `secure = false`.
    Plain,
    /// The flow with SecAgg on the full graph.
    Secure,
    /// The flow with SecAgg+.
    SecurePlus,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw tch loop",
            Variant::Plain => "flow, plain FedAvg",
            Variant::Secure => "flow, SecAgg",
            Variant::SecurePlus => "flow, SecAgg+",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Plain => "plain",
            Variant::Secure => "secure",
            Variant::SecurePlus => "plus",
        }
    }

    fn from_tag(tag: &str) -> anyhow::Result<Self> {
        Ok(match tag {
            "raw" => Variant::Raw,
            "plain" => Variant::Plain,
            "secure" => Variant::Secure,
            "plus" => Variant::SecurePlus,
            other => bail!("unknown variant `{other}`"),
        })
    }
}

/// Time per step name, summed over participants, and the end of each round.
#[derive(Default)]
struct StepClock {
    steps: BTreeMap<&'static str, Duration>,
    round_ends: Vec<Instant>,
}

/// Runs `variant` with `n` collaborators for `rounds` rounds; with `clock`, an observer times
/// every step.
fn run_variant(
    variant: Variant,
    data: &Arc<Mnist>,
    n: usize,
    rounds: u32,
    clock: Option<&Arc<Mutex<StepClock>>>,
) -> anyhow::Result<Vec<RoundRow>> {
    if variant == Variant::Raw {
        return raw_loop(data, n, rounds, clock);
    }
    let mut options = RunOptions::new(n, Arc::clone(data));
    options.settings.rounds = rounds;
    options.settings.secure = variant != Variant::Plain;
    if variant == Variant::SecurePlus {
        options.settings.neighbours = flspec::secagg::Mode::secagg_plus_degree(n);
    }
    let mut runtime = options.local_runtime()?;
    if let Some(clock) = clock {
        let clock = Arc::clone(clock);
        runtime = runtime.observer(move |event: &Event<'_>| {
            if let Event::StepFinished {
                step,
                role,
                elapsed,
                ..
            } = *event
            {
                let mut c = clock.lock().unwrap_or_else(PoisonError::into_inner);
                *c.steps.entry(step).or_default() += elapsed;
                if step == "join" && role == Role::Aggregator {
                    c.round_ends.push(Instant::now());
                }
            }
        });
    }
    let flow: SecAggMnist = options.initial_state()?.run(&runtime)?;
    Ok(flow.results)
}

/// The same work without flspec: one model, the shards as tensors, FedAvg in plain Rust.
fn raw_loop(
    data: &Mnist,
    n: usize,
    rounds: u32,
    clock: Option<&Arc<Mutex<StepClock>>>,
) -> anyhow::Result<Vec<RoundRow>> {
    let config = TrainConfig::default();
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let shard = data.shard(i, n)?;
        shards.push((Batches::new(&shard.train)?, Batches::new(&shard.test)?));
    }
    let mut net = Net::new(42)?;
    let mut global = net.to_flat()?;
    let total_train: usize = shards.iter().map(|(train, _)| train.len()).sum();
    let total_test: usize = shards.iter().map(|(_, test)| test.len()).sum();
    let mut rows = Vec::with_capacity(rounds as usize);
    for round in 0..rounds {
        let mut sum = vec![0f64; NUM_PARAMETERS];
        let (mut agg_correct, mut local_correct, mut loss) = (0usize, 0usize, 0f64);
        for (train, test) in &shards {
            net.set_flat(&global)?;
            let count = |acc: f64| (acc * test.len() as f64).round() as usize;
            agg_correct += count(train::validate_on(&net, test, 1000)?);
            let l = train::train_one_epoch_on(&mut net, train, &config)?;
            local_correct += count(train::validate_on(&net, test, 1000)?);
            let w = train.len() as f64 / total_train as f64;
            loss += l * w;
            for (s, x) in sum.iter_mut().zip(net.to_flat()?) {
                *s += w * f64::from(x);
            }
        }
        global = sum.into_iter().map(|x| x as f32).collect();
        rows.push(RoundRow {
            round,
            agg_accuracy: agg_correct as f64 / total_test as f64,
            train_loss: loss,
            local_accuracy: local_correct as f64 / total_test as f64,
            contributors: Vec::new(),
            dropped: Vec::new(),
            returned: Vec::new(),
            train_samples: total_train as u64,
            epsilon: None,
        });
        if let Some(clock) = clock {
            let mut c = clock.lock().unwrap_or_else(PoisonError::into_inner);
            c.round_ends.push(Instant::now());
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Part (a): overhead

fn overhead(
    data: &Arc<Mnist>,
    rounds: u32,
    reps: usize,
) -> anyhow::Result<Vec<(Variant, Vec<RoundRow>)>> {
    let variants = [Variant::Raw, Variant::Plain, Variant::Secure];
    println!(
        "\n## Overhead: 2 collaborators, {rounds} rounds, {reps} repetitions (interleaved, order rotated)\n"
    );
    // Warm-up: libtorch's lazy initialisation, the allocator, page faults.
    for &v in &variants {
        run_variant(v, data, 2, 1, None)?;
    }
    // Wall and CPU seconds of each run, and each run's ratio to the raw loop of its repetition.
    let mut wall: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    let mut paired_wall: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    let mut paired_cpu: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    let mut results = Vec::new();
    for rep in 0..reps {
        let mut this_rep = BTreeMap::new();
        for k in 0..variants.len() {
            let v = variants[(rep + k) % variants.len()];
            let (t, c) = (Instant::now(), cpu_seconds());
            let rows = run_variant(v, data, 2, rounds, None)?;
            let (w, c) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
            this_rep.insert(v, (w, c));
            wall.entry(v).or_default().push(w);
            cpu.entry(v).or_default().push(c);
            if rep == 0 {
                results.push((v, rows));
            }
        }
        let (raw_w, raw_c) = this_rep[&Variant::Raw];
        for (&v, &(w, c)) in &this_rep {
            paired_wall.entry(v).or_default().push(w / raw_w);
            paired_cpu.entry(v).or_default().push(c / raw_c);
        }
        eprintln!(
            "  rep {}: {}",
            rep + 1,
            this_rep
                .iter()
                .map(|(v, (w, c))| format!("{} {w:.3} s (cpu {c:.3} s)", v.tag()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    results.sort_by_key(|(v, _)| *v);
    let raw_wall = median(&wall[&Variant::Raw]);
    let raw_min = min(&wall[&Variant::Raw]);
    let raw_cpu = median(&cpu[&Variant::Raw]);
    println!(
        "| variant | wall s: median | min | max | s per round (median) | CPU s: median | ratio to raw: medians of wall | median of paired wall ratios | mins of wall | medians of CPU | median of paired CPU ratios |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &v in &variants {
        let (w, c) = (&wall[&v], &cpu[&v]);
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}x | {:.3}x | {:.3}x | {:.3}x | {:.3}x |",
            v.name(),
            median(w),
            min(w),
            max(w),
            median(w) / f64::from(rounds),
            median(c),
            median(w) / raw_wall,
            median(&paired_wall[&v]),
            min(w) / raw_min,
            median(c) / raw_cpu,
            median(&paired_cpu[&v]),
        );
    }
    Ok(results)
}

fn print_accuracy(rounds: u32, rows: &[(Variant, Vec<RoundRow>)]) {
    println!("\n## Accuracy per round, 2 collaborators, {rounds} rounds (first repetition)\n");
    let mut header = String::from("| round |");
    let mut rule = String::from("|---|");
    for (v, _) in rows {
        header.push_str(&format!(
            " {0}: agg acc | {0}: train loss | {0}: local acc |",
            v.tag()
        ));
        rule.push_str("---|---|---|");
    }
    println!("{header}\n{rule}");
    for r in 0..rounds as usize {
        let mut line = format!("| {r} |");
        for (_, results) in rows {
            match results.get(r) {
                Some(row) => line.push_str(&format!(
                    " {:.4} | {:.4} | {:.4} |",
                    row.agg_accuracy, row.train_loss, row.local_accuracy
                )),
                None => line.push_str(" - | - | - |"),
            }
        }
        println!("{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Part (a), continued: where the time goes

const TRAINING_STEPS: [&str; 3] = [
    "aggregated_model_validation",
    "train",
    "local_model_validation",
];
const CLIENT_CRYPTO: [&str; 4] = [
    "generate_keys",
    "generate_ciphertexts",
    "decrypt_ciphertext",
    "reveal_shares",
];
const SERVER_CRYPTO: [&str; 4] = [
    "generate_collaborator_index",
    "filter_ciphertexts",
    "receive_masked",
    "reconstruct",
];

fn breakdown(data: &Arc<Mnist>, rounds: u32, reps: usize) -> anyhow::Result<()> {
    println!(
        "\n## Where the time goes: 2 collaborators, {rounds} rounds, observer timing every step, {reps} repetitions (medians, ms per round)\n"
    );
    let variants = [Variant::Raw, Variant::Plain, Variant::Secure];
    let mut per: BTreeMap<(Variant, String), Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        for k in 0..variants.len() {
            let v = variants[(rep + k) % variants.len()];
            let clock = Arc::new(Mutex::new(StepClock::default()));
            let t = Instant::now();
            run_variant(v, data, 2, rounds, Some(&clock))?;
            let total = t.elapsed().as_secs_f64();
            let c = clock.lock().unwrap_or_else(PoisonError::into_inner);
            let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(rounds);
            let mut record = |key: &str, value: f64| {
                per.entry((v, key.to_string())).or_default().push(value);
            };
            record("total", total * 1e3 / f64::from(rounds));
            let mut stepped = 0.0;
            for (step, d) in &c.steps {
                record(step, ms(*d));
                stepped += ms(*d);
            }
            let mut sum_of = |key: &str, names: &[&str]| {
                let times: Vec<f64> = names
                    .iter()
                    .filter_map(|n| c.steps.get(n))
                    .map(|d| ms(*d))
                    .collect();
                if !times.is_empty() {
                    record(key, times.iter().sum());
                }
            };
            sum_of("= training and validation", &TRAINING_STEPS);
            sum_of("= SecAgg client steps", &CLIENT_CRYPTO);
            sum_of("= SecAgg server steps", &SERVER_CRYPTO);
            if v != Variant::Raw {
                record(
                    "= outside any step (runtime, set-up)",
                    total * 1e3 / f64::from(rounds) - stepped,
                );
            }
            // Round times: the first round includes building the collaborators.
            let mut last = t;
            for (i, end) in c.round_ends.iter().enumerate() {
                let key = if i == 0 {
                    "round 0 (wall, incl. set-up)"
                } else {
                    "rounds 1.. (wall, each)"
                };
                per.entry((v, key.to_string()))
                    .or_default()
                    .push((*end - last).as_secs_f64() * 1e3);
                last = *end;
            }
        }
    }
    let mut keys: Vec<String> = TRAINING_STEPS
        .iter()
        .chain(&CLIENT_CRYPTO)
        .chain(&SERVER_CRYPTO)
        .chain(&["join"])
        .map(|s| (*s).to_string())
        .collect();
    keys.extend(
        [
            "= training and validation",
            "= SecAgg client steps",
            "= SecAgg server steps",
            "= outside any step (runtime, set-up)",
            "total",
            "round 0 (wall, incl. set-up)",
            "rounds 1.. (wall, each)",
        ]
        .map(String::from),
    );
    println!("| ms per round | raw | plain | secagg |");
    println!("|---|---|---|---|");
    for key in keys {
        let cell = |v: Variant| {
            per.get(&(v, key.clone()))
                .map_or_else(|| "-".to_string(), |x| format!("{:.1}", median(x)))
        };
        println!(
            "| {key} | {} | {} | {} |",
            cell(Variant::Raw),
            cell(Variant::Plain),
            cell(Variant::Secure)
        );
    }
    println!(
        "\n(`join`: plain = sum + decode; secagg = unmasking (Shamir reconstruction, mask expansion) + decode + next round's config.)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part (b): scale, in child processes

/// What a child reports.
#[derive(Clone, Debug, Default)]
struct ChildReport {
    /// `key=value` lines of the child, and `wall_ms` (measured by the parent).
    values: BTreeMap<String, f64>,
}

impl ChildReport {
    fn get(&self, key: &str) -> f64 {
        self.values.get(key).copied().unwrap_or(f64::NAN)
    }
}

/// glibc's `struct mallinfo2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes allocated with malloc and not freed (libtorch's CPU tensors included), in KiB: unlike
/// RSS, it does not count memory that was freed but kept by the allocator.
fn heap_kib() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 (glibc >= 2.33) takes no argument and only reads the allocator's
        // statistics.
        let m = unsafe { mallinfo2() };
        (m.uordblks + m.hblkhd) as f64 / 1024.0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        f64::NAN
    }
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn memory_kib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Runs one configuration and prints `key=value` lines (`MODE:N:ROUNDS`, MODE one of raw,
/// plain, secure, plus; or `sites` (n collaborators' private state, as the runtime's factory
/// builds it) or `nets` (n models and shards built by hand, before and after one epoch each)).
fn child(spec: &str, started: Instant) -> anyhow::Result<()> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [mode, n, rounds] = parts.as_slice() else {
        bail!("--child MODE:N:ROUNDS, got `{spec}`");
    };
    let n: usize = n.parse()?;
    let rounds: u32 = rounds.parse()?;
    let data = Arc::new(Mnist::load_bundled()?);
    // Initialise libtorch (and its allocator) before the baseline reading.
    drop(Net::new(42)?);
    let (_, rss_loaded) = memory_kib();
    let mut out = vec![
        (
            "startup_ms".to_string(),
            started.elapsed().as_secs_f64() * 1e3,
        ),
        ("rss_loaded_kib".to_string(), rss_loaded),
        ("heap_loaded_kib".to_string(), heap_kib()),
    ];
    match *mode {
        "sites" => {
            let t = Instant::now();
            let sites = (0..n)
                .map(|i| Site::new(&format!("c{i}"), &data, i, n, 42, None))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.push(("build_ms".into(), t.elapsed().as_secs_f64() * 1e3));
            out.push(("rss_built_kib".into(), memory_kib().1));
            out.push(("heap_built_kib".into(), heap_kib()));
            drop(sites);
        }
        "nets" => {
            let mut held = Vec::with_capacity(n);
            for i in 0..n {
                let shard = data.shard(i, n)?;
                held.push((
                    Net::new(42)?,
                    Batches::new(&shard.train)?,
                    Batches::new(&shard.test)?,
                ));
            }
            out.push(("rss_built_kib".into(), memory_kib().1));
            out.push(("heap_built_kib".into(), heap_kib()));
            for (net, train, _) in &mut held {
                train::train_one_epoch_on(net, train, &TrainConfig::default())?;
            }
            out.push(("rss_trained_kib".into(), memory_kib().1));
            out.push(("heap_trained_kib".into(), heap_kib()));
            // What `train_one_epoch_on` could do at its end: libtorch's `Optimizer::zero_grad`
            // sets the gradients to undefined (frees them).
            for (net, _, _) in &held {
                nn::Sgd::default().build(net.var_store(), 0.01)?.zero_grad();
            }
            out.push(("heap_grads_freed_kib".into(), heap_kib()));
        }
        _ => {
            let variant = Variant::from_tag(mode)?;
            let clock = Arc::new(Mutex::new(StepClock::default()));
            let t = Instant::now();
            let rows = run_variant(variant, &data, n, rounds, Some(&clock))?;
            out.push(("run_ms".into(), t.elapsed().as_secs_f64() * 1e3));
            let c = clock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut last = t;
            for (i, end) in c.round_ends.iter().enumerate() {
                out.push((format!("round{i}_ms"), (*end - last).as_secs_f64() * 1e3));
                last = *end;
            }
            for (step, d) in &c.steps {
                out.push((format!("step_{step}_ms"), d.as_secs_f64() * 1e3));
            }
            if let Some(row) = rows.last() {
                out.push(("agg_accuracy".into(), row.agg_accuracy));
                out.push(("local_accuracy".into(), row.local_accuracy));
            }
        }
    }
    let (hwm, rss) = memory_kib();
    out.push(("hwm_kib".into(), hwm));
    out.push(("rss_end_kib".into(), rss));
    for (k, v) in out {
        println!("{k}={v}");
    }
    Ok(())
}

fn run_child(mode: &str, n: usize, rounds: u32, threads: usize) -> anyhow::Result<ChildReport> {
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let output = Command::new(exe)
        .args([
            "--threads",
            &threads.to_string(),
            "--child",
            &format!("{mode}:{n}:{rounds}"),
        ])
        .output()?;
    let wall = t.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() {
        bail!(
            "child {mode}:{n}:{rounds} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut report = ChildReport::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((k, v)) = line.split_once('=')
            && let Ok(v) = v.parse::<f64>()
        {
            report.values.insert(k.to_string(), v);
        }
    }
    report.values.insert("wall_ms".into(), wall);
    Ok(report)
}

/// A child configuration: mode, collaborators, rounds.
type Config = (&'static str, usize, u32);

fn scale(
    ns: &[usize],
    rounds: u32,
    n2_rounds: &[u32],
    reps: usize,
    threads: usize,
) -> anyhow::Result<()> {
    println!("\n## Scale: each configuration in its own process, {reps} repetition(s) (medians)\n");
    let mut configs: Vec<Config> = Vec::new();
    for &n in ns {
        configs.push(("sites", n, 0));
        configs.push(("nets", n, 0));
        for mode in ["raw", "plain", "secure"] {
            configs.push((mode, n, rounds));
        }
        if n >= 10 {
            configs.push(("plus", n, rounds));
        }
    }
    // The baselines' configurations at n = 2.
    for &r in n2_rounds {
        if r != rounds || !ns.contains(&2) {
            for mode in ["raw", "plain", "secure"] {
                configs.push((mode, 2, r));
            }
        }
    }
    let mut reports: BTreeMap<Config, Vec<ChildReport>> = BTreeMap::new();
    for rep in 0..reps {
        for k in 0..configs.len() {
            let config = configs[(rep + k) % configs.len()];
            let (mode, n, r) = config;
            let report = run_child(mode, n, r, threads)?;
            eprintln!(
                "  rep {} {mode}:{n}:{r}: wall {:.0} ms, run {:.0} ms, VmHWM {:.0} MiB",
                rep + 1,
                report.get("wall_ms"),
                report.get("run_ms"),
                report.get("hwm_kib") / 1024.0
            );
            reports.entry(config).or_default().push(report);
        }
    }
    let med = |config: Config, key: &str| -> f64 {
        reports
            .get(&config)
            .map(|rs| median(&rs.iter().map(|r| r.get(key)).collect::<Vec<_>>()))
            .unwrap_or(f64::NAN)
    };
    let mut runs: Vec<Config> = configs
        .iter()
        .copied()
        .filter(|(m, _, _)| !matches!(*m, "sites" | "nets"))
        .collect();
    runs.sort_by_key(|&(m, n, r)| {
        let order = ["raw", "plain", "secure", "plus"];
        (n, r, order.iter().position(|x| *x == m))
    });
    runs.dedup();
    println!(
        "| n | rounds | variant | process wall s | run s | round 0 s (incl. building sites) | later rounds s (mean) | peak RSS (VmHWM) MiB | RSS after load MiB | last round agg acc |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &config in &runs {
        let (mode, n, r) = config;
        let label = match mode {
            "plus" => {
                // As the flow: the neighbourhood is the k neighbours and oneself.
                let k = flspec::secagg::Mode::secagg_plus_degree(n) as usize;
                let hood = k + 1;
                format!(
                    "{} (k = {k}, t = {})",
                    Variant::SecurePlus.name(),
                    (hood / 2 + 1).max(2)
                )
            }
            "secure" => format!(
                "{} (full graph, t = {})",
                Variant::Secure.name(),
                (n / 2 + 1).max(2)
            ),
            other => Variant::from_tag(other)?.name().to_string(),
        };
        let warm = if r > 1 {
            let xs: Vec<f64> = (1..r)
                .map(|i| med(config, &format!("round{i}_ms")))
                .collect();
            format!("{:.3}", xs.iter().sum::<f64>() / xs.len() as f64 / 1e3)
        } else {
            "-".into()
        };
        println!(
            "| {n} | {r} | {label} | {:.2} | {:.3} | {:.3} | {warm} | {:.1} | {:.1} | {:.4} |",
            med(config, "wall_ms") / 1e3,
            med(config, "run_ms") / 1e3,
            med(config, "round0_ms") / 1e3,
            med(config, "hwm_kib") / 1024.0,
            med(config, "rss_loaded_kib") / 1024.0,
            med(config, "agg_accuracy"),
        );
    }

    println!("\n### Time per round by step (seconds per round, summed over collaborators)\n");
    let steps: Vec<&str> = TRAINING_STEPS
        .iter()
        .chain(&CLIENT_CRYPTO)
        .chain(&SERVER_CRYPTO)
        .chain(&["join"])
        .copied()
        .collect();
    let flows: Vec<Config> = runs
        .iter()
        .copied()
        .filter(|(m, _, r)| *m != "raw" && *r == rounds)
        .collect();
    let mut header = String::from("| step |");
    let mut rule = String::from("|---|");
    for (m, n, _) in &flows {
        header.push_str(&format!(" n = {n}, {m} |"));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    for step in steps {
        let mut line = format!("| {step} |");
        for &config in &flows {
            let v = med(config, &format!("step_{step}_ms"));
            if v.is_nan() {
                line.push_str(" - |");
            } else {
                line.push_str(&format!(" {:.4} |", v / 1e3 / f64::from(config.2)));
            }
        }
        println!("{line}");
    }

    println!("\n### Memory per collaborator (KiB each; heap = bytes malloc'd and not freed)\n");
    println!(
        "| n | expected: Net + its shard's tensors | heap: n `Site`s (the runtime's factory) | heap: n (Net, shards) by hand | heap: same after one epoch each | heap: after freeing the gradients | RSS: n `Site`s | RSS: after one epoch each |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in ns {
        let per = |config: Config, key: &str, base: &str| {
            (med(config, key) - med(config, base)) / n as f64
        };
        // Net: 21,840 f32; shard: 784 f32 and one i64 label per image.
        let images = 5000.0 / n as f64;
        let expected = (NUM_PARAMETERS as f64 * 4.0 + images * (784.0 * 4.0 + 8.0)) / 1024.0;
        println!(
            "| {n} | {expected:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            per(("sites", n, 0), "heap_built_kib", "heap_loaded_kib"),
            per(("nets", n, 0), "heap_built_kib", "heap_loaded_kib"),
            per(("nets", n, 0), "heap_trained_kib", "heap_loaded_kib"),
            per(("nets", n, 0), "heap_grads_freed_kib", "heap_loaded_kib"),
            per(("sites", n, 0), "rss_built_kib", "rss_loaded_kib"),
            per(("nets", n, 0), "rss_trained_kib", "rss_loaded_kib"),
        );
    }
    println!(
        "\n| n | RSS after load MiB | raw loop peak MiB | plain flow peak MiB | SecAgg flow peak MiB | SecAgg+ flow peak MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for &n in ns {
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            med(("raw", n, rounds), "rss_loaded_kib") / 1024.0,
            med(("raw", n, rounds), "hwm_kib") / 1024.0,
            med(("plain", n, rounds), "hwm_kib") / 1024.0,
            med(("secure", n, rounds), "hwm_kib") / 1024.0,
            med(("plus", n, rounds), "hwm_kib") / 1024.0,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part (c): the example binary

fn cli(reps: usize, cores: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let Some(dir) = exe.parent() else {
        return Ok(());
    };
    let bin = dir.join("secagg_mnist");
    println!("\n## `secagg_mnist` (2 collaborators, 2 rounds, SecAgg), {reps} runs\n");
    if !bin.is_file() {
        println!(
            "skipped: {} not found; run `cargo build --release --example secagg_mnist` first",
            bin.display()
        );
        return Ok(());
    }
    // (label, extra arguments): the example's default, and one libtorch thread per core.
    let cores_arg = cores.to_string();
    let mut settings: Vec<(String, Vec<&str>)> =
        vec![("the example's default threads".to_string(), vec![])];
    if cores > 1 {
        settings.push((
            format!("`--threads {cores}`"),
            vec!["--threads", &cores_arg],
        ));
    }
    let mut measured: BTreeMap<usize, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut helps = Vec::new();
    for rep in 0..reps {
        for k in 0..settings.len() {
            let which = (rep + k) % settings.len();
            let t = Instant::now();
            let out = Command::new(&bin)
                .arg("--quiet")
                .args(&settings[which].1)
                .output()?;
            let wall = t.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "secagg_mnist failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let total = stdout
                .lines()
                .find_map(|l| l.strip_prefix("total "))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            let entry = measured.entry(which).or_default();
            entry.0.push(wall);
            entry.1.push(total);
        }
        // Process start and libtorch loading alone.
        let t = Instant::now();
        Command::new(&bin).arg("--help").output()?;
        helps.push(t.elapsed().as_secs_f64());
    }
    println!("| measure | median s | min s | max s |");
    println!("|---|---|---|---|");
    let row = |name: &str, xs: &[f64]| {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            median(xs),
            min(xs),
            max(xs)
        );
    };
    for (which, (walls, runs)) in &measured {
        let label = &settings[*which].0;
        let startup: Vec<f64> = walls.iter().zip(runs).map(|(w, r)| w - r).collect();
        row(&format!("{label}: process wall time"), walls);
        row(&format!("{label}: the run it reports (`total`)"), runs);
        row(
            &format!("{label}: start-up and exit (wall − run)"),
            &startup,
        );
    }
    row(
        "`--help` (process start, dynamic linking of libtorch)",
        &helps,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// libtorch threads

fn thread_counts(data: &Mnist, reps: usize, threads: usize, cores: usize) -> anyhow::Result<()> {
    println!(
        "\n## libtorch threads per operation: the raw loop, 2 collaborators, 1 round, {reps} repetitions (interleaved)\n"
    );
    let counts: Vec<usize> = if cores > 1 { vec![1, cores] } else { vec![1] };
    let mut times: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        for k in 0..counts.len() {
            let t = counts[(rep + k) % counts.len()];
            threads::set_num_threads(t);
            let began = Instant::now();
            raw_loop(data, 2, 1, None)?;
            times
                .entry(t)
                .or_default()
                .push(began.elapsed().as_secs_f64());
        }
    }
    threads::set_num_threads(threads);
    println!("| threads | median s | min s | max s |");
    println!("|---|---|---|---|");
    for (t, xs) in &times {
        println!(
            "| {t} | {:.3} | {:.3} | {:.3} |",
            median(xs),
            min(xs),
            max(xs)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The machine (statistics: `flspec_examples::example_support`)

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

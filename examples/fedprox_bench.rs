//! Flow overhead of the `fedprox_noniid` example (issue 9, point 7): the `fedavg_mnist` flow on
//! the local runtime against a hand-written tch loop doing exactly the same work
//! (`flspec_examples::hand_loop`: the same partition, training, validations and averaging, no
//! flow, no runtime). Target: the flow within 1.03x of the loop.
//!
//! ```text
//! cargo run --release --example fedprox_bench                  # 7 repetitions, 3 rounds
//! cargo run --release --example fedprox_bench -- --reps 11 --rounds 5 --mu 0.1
//! ```
//!
//! One configuration (default: FedProx mu = 0.01, 10 collaborators, Dirichlet alpha = 0.1, the
//! bundled data, 1 libtorch thread, collaborators one after the other), both variants in this
//! process, interleaved (the order alternates every repetition) after one warm-up run of each;
//! the medians of wall-clock and CPU seconds, and the median of the per-repetition ratios.
//! The first repetition's final models are compared value by value.
//!
//! A bench binary rather than a criterion bench: one sample is a whole federated run of
//! seconds, the two variants must alternate within one process so that a noisy shared machine
//! affects both alike (criterion measures one function's samples after another's), and the
//! run must also check that both compute the same model, which criterion has no place for.
//!
//! # Results
//!
//! Intel(R) Xeon(R) Processor (2 cores, `grep -m1 'model name' /proc/cpuinfo`; load average
//! about 1 during the runs), release, 1 libtorch thread, 10 collaborators, Dirichlet
//! alpha = 0.1 (partition seed 42), model seed 42, collaborators one after the other.
//!
//! `fedprox_bench --reps 9` (FedProx mu = 0.01, 3 rounds), 42 s:
//!
//! ```text
//! | | flow | hand-written loop | flow / loop |
//! |---|---:|---:|---:|
//! | wall s, median | 2.227 | 2.240 | 0.9943x |
//! | wall s, min | 2.197 | 2.210 | 0.9943x |
//! | CPU s, median | 2.227 | 2.240 | 0.9942x |
//! | paired ratio, median (wall / CPU) | | | 0.9971x / 0.9971x |
//! final models: 0 of 21840 values differ (max |diff| 0e0); accuracy per round: flow [0.1, 0.275, 0.351], loop [0.1, 0.275, 0.351]
//! ```
//!
//! `fedprox_bench --reps 7 --rounds 5 --mu 0.1`, 55 s:
//!
//! ```text
//! | | flow | hand-written loop | flow / loop |
//! |---|---:|---:|---:|
//! | wall s, median | 3.740 | 3.756 | 0.9959x |
//! | wall s, min | 3.631 | 3.632 | 0.9998x |
//! | CPU s, median | 3.739 | 3.755 | 0.9959x |
//! | paired ratio, median (wall / CPU) | | | 0.9885x / 0.9884x |
//! final models: 0 of 21840 values differ (max |diff| 0e0)
//! ```
//!
//! The flow costs nothing measurable over the loop (within +-1.5% per repetition; target
//! 1.03x): per round it moves 10 models of 87 KB between participants, next to 4,000 images
//! of training and 3,000 of validation. Both compute bit-identical models (the same libtorch
//! calls in the same order on one thread, the same averaging function). An earlier run while
//! the machine was busy with other builds (wall up to 2x CPU) gave medians of 1.02x wall and
//! 1.01x CPU.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use flspec::Flow;
use flspec::fl::partition::Partitioner;
use flspec_examples::example_support::{cpu_seconds, median, min};
use flspec_examples::fedavg_mnist::{FedAvgMnist, RunOptions};
use flspec_examples::hand_loop::{self, HandRun};
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::threads;

/// The fedprox_noniid flow against a hand-written tch loop doing the same work.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Repetitions of the interleaved pair (after one warm-up run of each).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Rounds per run.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Collaborators.
    #[arg(long, default_value_t = 10)]
    collaborators: usize,
    /// FedProx's mu (0: FedAvg).
    #[arg(long, default_value_t = 0.01)]
    mu: f64,
    /// Dirichlet concentration of the label skew.
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// libtorch threads per operation.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What one timed run took.
#[derive(Clone, Copy, Debug)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.reps == 0 {
        bail!("`--reps 0`: give at least one repetition");
    }
    threads::set_num_threads(args.threads.max(1));
    let data = Mnist::load_bundled().context("reading the bundled MNIST subset")?;
    let mut options = RunOptions::new(args.collaborators, std::sync::Arc::new(data));
    options.partition = Partitioner::dirichlet(args.alpha);
    options.partition_seed = 42;
    options.settings.rounds = args.rounds;
    options.settings.mu = args.mu;
    options.validate()?;

    println!(
        "fedprox_noniid flow vs hand-written tch loop: {}, {} threads/op of libtorch, {} collaborators, `--partition {}`, mu = {}, {} rounds, {} repetitions (interleaved, after a warm-up run of each)",
        cpu_model(),
        args.threads.max(1),
        args.collaborators,
        options.partition,
        args.mu,
        args.rounds,
        args.reps
    );
    // Warm-up: libtorch's lazy initialisation, the allocator, page faults.
    {
        let mut warm = options.clone();
        warm.settings.rounds = 1;
        run_flow(&warm)?;
        hand_loop::run(&warm)?;
    }
    let (mut flow_t, mut hand_t, mut ratios, mut cpu_ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first: Option<(FedAvgMnist, HandRun)> = None;
    for rep in 0..args.reps {
        let (f, h, flow, hand) = if rep % 2 == 0 {
            let (f, flow) = timed(|| run_flow(&options))?;
            let (h, hand) = timed(|| hand_loop::run(&options))?;
            (f, h, flow, hand)
        } else {
            let (h, hand) = timed(|| hand_loop::run(&options))?;
            let (f, flow) = timed(|| run_flow(&options))?;
            (f, h, flow, hand)
        };
        eprintln!(
            "  rep {}: flow {:.3} s (cpu {:.3}), loop {:.3} s (cpu {:.3}), ratio {:.4}",
            rep + 1,
            f.wall,
            f.cpu,
            h.wall,
            h.cpu,
            f.wall / h.wall
        );
        flow_t.push(f);
        hand_t.push(h);
        ratios.push(f.wall / h.wall);
        cpu_ratios.push(f.cpu / h.cpu);
        if first.is_none() {
            first = Some((flow, hand));
        }
    }
    let walls = |t: &[Timing]| t.iter().map(|t| t.wall).collect::<Vec<_>>();
    let cpus = |t: &[Timing]| t.iter().map(|t| t.cpu).collect::<Vec<_>>();
    println!("| | flow | hand-written loop | flow / loop |");
    println!("|---|---:|---:|---:|");
    println!(
        "| wall s, median | {:.3} | {:.3} | {:.4}x |",
        median(&walls(&flow_t)),
        median(&walls(&hand_t)),
        median(&walls(&flow_t)) / median(&walls(&hand_t))
    );
    println!(
        "| wall s, min | {:.3} | {:.3} | {:.4}x |",
        min(&walls(&flow_t)),
        min(&walls(&hand_t)),
        min(&walls(&flow_t)) / min(&walls(&hand_t))
    );
    println!(
        "| CPU s, median | {:.3} | {:.3} | {:.4}x |",
        median(&cpus(&flow_t)),
        median(&cpus(&hand_t)),
        median(&cpus(&flow_t)) / median(&cpus(&hand_t))
    );
    println!(
        "| paired ratio, median (wall / CPU) | | | {:.4}x / {:.4}x |",
        median(&ratios),
        median(&cpu_ratios)
    );
    let (flow, hand) = first.context("at least one repetition")?;
    let flow_accuracy: Vec<f64> = flow.results.iter().map(|r| r.accuracy).collect();
    let differing = flow
        .model
        .iter()
        .zip(&hand.model)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    let max_diff = flow
        .model
        .iter()
        .zip(&hand.model)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "final models: {} of {} values differ (max |diff| {max_diff:e}); accuracy per round: flow {:?}, loop {:?}",
        differing,
        flow.model.len(),
        flow_accuracy,
        hand.accuracy
    );
    if flow.model.len() != hand.model.len() || differing > 0 || flow_accuracy != hand.accuracy {
        bail!("the flow and the hand-written loop computed different models");
    }
    println!("the flow and the loop computed bit-identical models");
    Ok(())
}

fn run_flow(options: &RunOptions) -> anyhow::Result<FedAvgMnist> {
    let runtime = options.local_runtime()?;
    Ok(options.initial_state()?.run(&runtime)?)
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Timing, T)> {
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = f()?;
    Ok((
        Timing {
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c,
        },
        out,
    ))
}

/// The CPU's model name (Linux), for the results.
fn cpu_model() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".to_string());
    format!("{name} ({cores} cores)")
}

//! Distributed differential privacy on the SecAgg MNIST flow: the accuracy it costs and the
//! time it adds (issue 10, part 2).
//!
//! For each number of collaborators and each target ε, runs the SecAgg MNIST flow on the bundled
//! MNIST subset (4,000 training and 1,000 test images, strided among the collaborators) and
//! prints one Markdown row: the final model's accuracy, ε spent, the mean round time and its
//! ratio to SecAgg without DP at the same n. Settings:
//!
//! - `inf`: SecAgg without DP, the flow's FedAvg weighted by sample counts;
//! - `clip only`: the DP path with a huge ε (`--clip-only-epsilon`, 1e12): clipping to C,
//!   rounding, unweighted mean and negligible noise, to separate their cost from the noise's;
//! - each `--epsilons` value: (ε, `--dp-delta`)-DP over all rounds at the collaborator level.
//!
//! The runs are interleaved (each repetition runs every setting at one n, in an order rotated per
//! repetition), so that the time ratios compare runs made under the same load. Before the runs it
//! prints the L2 norm of one local epoch's model update at the initial model (median over the
//! collaborators: `--dp-clip` defaults sit near it), and after them the same norm at the final
//! model without DP; then the client's time per step, and the client-side DP encoding
//! (`private_update::encode`: clip, round and noise 21,840 values) timed against the plain
//! encoding. `--plan-clips` prints only the noise plans (noise on the mean update against C).
//! Results and their reading: `docs/dp-accuracy.md`.
//!
//! ```text
//! cargo run --release --example dp_accuracy                        # n = 10, 100; 10 rounds
//! cargo run --release --example dp_accuracy -- --collaborators 10 --epsilons 8 inf --repeats 1
//! cargo run --release --example dp_accuracy -- --dp-clip 10=0.5 --local 100=10:0.05 --plot dp.svg
//! cargo run --release --example dp_accuracy -- --collaborators 10 100 1000 --plan-clips 1
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use flspec::{Event, Flow, Role};
use flspec_examples::example_support::{self as support, markdown_table, median};
use flspec_examples::secagg_mnist::private_update::{self, DpSettings, NoisePlan};
use flspec_examples::secagg_mnist::update::{self, Measurements};
use flspec_examples::secagg_mnist::{RoundRow, RunOptions};
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::models::mnist_cnn::{NUM_PARAMETERS, Net};
use flspec_tch::train::{Batches, TrainConfig, train_one_epoch_on, validate_on};
use indicatif::ProgressBar;
use plotters::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};

/// Accuracy and time cost of distributed DP on the SecAgg MNIST flow.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Training rounds per run.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Numbers of collaborators to sweep.
    #[arg(long, num_args = 1.., default_values_t = [10, 100])]
    collaborators: Vec<usize>,
    /// Target ε of the whole run (all rounds); `inf` is SecAgg without DP.
    #[arg(long, num_args = 1.., default_values_t = [Epsilon::Finite(1.0), Epsilon::Finite(3.0), Epsilon::Finite(8.0), Epsilon::Infinite])]
    epsilons: Vec<Epsilon>,
    /// ε of the "clip only" row (the DP path with negligible noise); 0 leaves the row out.
    #[arg(long, default_value_t = 1e12)]
    clip_only_epsilon: f64,
    /// δ of every DP run.
    #[arg(long, default_value_t = 1e-5)]
    dp_delta: f64,
    /// L2 clip of a collaborator's model update for N collaborators, as N=C (repeatable).
    /// Default: the median norm of one round's local update at the initial model, as the run
    /// measures it (to two significant digits; the run prints it).
    #[arg(long = "dp-clip", value_name = "N=C", value_parser = parse_clip)]
    dp_clips: Vec<(usize, f64)>,
    /// Local training for N collaborators, as N=EPOCHS:LR (repeatable). Defaults: 10=1:0.01
    /// (the seed's) and 100=5:0.05 (each of 100 collaborators holds 40 images: one epoch at
    /// 0.01 is 2 SGD steps and does not learn in 10 rounds); other n: the seed's.
    #[arg(long = "local", value_name = "N=EPOCHS:LR", value_parser = parse_local)]
    local: Vec<(usize, u32, f64)>,
    /// The fewest survivors the noise is provisioned for (default: the SecAgg threshold,
    /// n/2 + 1, as in `secagg_mnist`).
    #[arg(long)]
    dp_min_survivors: Option<u32>,
    /// Runs of each setting; the time ratio is the median over them of the per-repetition ratio.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// SecAgg+ degree (0: the full graph, the flow's default).
    #[arg(long, default_value_t = 0)]
    secagg_plus: u32,
    /// Timed calls of the client-side encodings, per setting.
    #[arg(long, default_value_t = 100)]
    encode_iterations: usize,
    /// Seed of the initial model.
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// libtorch threads per operation (1: reproducible training, fair timings).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Plot the global model's accuracy per round, one panel per n, to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print the noise plan for each n, each finite ε and each of these clips (comma
    /// separated, e.g. 0.02,0.1,0.5), then exit without training.
    #[arg(long, value_name = "C,...", value_delimiter = ',')]
    plan_clips: Vec<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// A target ε: a number, or `inf` for no DP.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Epsilon {
    Finite(f64),
    Infinite,
}

impl std::str::FromStr for Epsilon {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if matches!(s, "inf" | "infinity" | "∞") {
            return Ok(Epsilon::Infinite);
        }
        match s.parse::<f64>() {
            Ok(e) if e.is_finite() && e > 0.0 => Ok(Epsilon::Finite(e)),
            Ok(e) if e == f64::INFINITY => Ok(Epsilon::Infinite),
            _ => Err(format!(
                "`{s}` is not an epsilon: give a positive number or `inf` (no DP)"
            )),
        }
    }
}

impl fmt::Display for Epsilon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Epsilon::Finite(e) => write!(f, "{e}"),
            Epsilon::Infinite => f.write_str("inf"),
        }
    }
}

fn parse_clip(s: &str) -> Result<(usize, f64), String> {
    let bad = || format!("`--dp-clip {s}`: expected N=C, e.g. 100=0.06 (C > 0)");
    let (n, c) = s.split_once('=').ok_or_else(bad)?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    let c: f64 = c.trim().parse().map_err(|_| bad())?;
    if !(c.is_finite() && c > 0.0) {
        return Err(bad());
    }
    Ok((n, c))
}

/// The clip without `--dp-clip`: the median update norm `measured`, to two significant digits.
fn default_clip(measured: f64) -> f64 {
    let scale = 10f64.powi(1 - measured.log10().floor() as i32);
    (measured * scale).round() / scale
}

fn parse_local(s: &str) -> Result<(usize, u32, f64), String> {
    let bad = || format!("`--local {s}`: expected N=EPOCHS:LR, e.g. 100=5:0.05");
    let (n, rest) = s.split_once('=').ok_or_else(bad)?;
    let (e, lr) = rest.split_once(':').ok_or_else(bad)?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    let e: u32 = e.trim().parse().map_err(|_| bad())?;
    let lr: f64 = lr.trim().parse().map_err(|_| bad())?;
    if e == 0 || !(lr.is_finite() && lr > 0.0) {
        return Err(bad());
    }
    Ok((n, e, lr))
}

/// Local epochs and learning rate for `n` collaborators (`--local`, else the defaults).
fn local_for(args: &Args, n: usize) -> (u32, f64) {
    if let Some(&(_, e, lr)) = args.local.iter().rev().find(|(m, _, _)| *m == n) {
        return (e, lr);
    }
    match n {
        100 => (5, 0.05),
        _ => (1, 0.01),
    }
}

/// ε as the table prints it (scientific beyond a million: the "clip only" row's).
fn format_epsilon(e: f64) -> String {
    if e >= 1e6 {
        format!("{e:.3e}")
    } else {
        format!("{e:.3}")
    }
}

/// One setting of the sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Privacy {
    /// SecAgg without DP.
    Off,
    /// The DP path with a negligible-noise ε.
    ClipOnly(f64),
    /// DP with this target ε.
    Dp(f64),
}

impl Privacy {
    fn label(&self) -> String {
        match self {
            Privacy::Off => "inf (no DP)".to_string(),
            Privacy::ClipOnly(e) => format!("clip only ({e:e})"),
            Privacy::Dp(e) => format!("{e}"),
        }
    }

    /// The plot's legend entry.
    fn legend(&self) -> String {
        match self {
            Privacy::Off => "no DP (ε = ∞)".to_string(),
            Privacy::ClipOnly(e) => format!("clip only (ε = {e:e})"),
            Privacy::Dp(e) => format!("ε = {e}"),
        }
    }

    fn epsilon(&self) -> Option<f64> {
        match *self {
            Privacy::Off => None,
            Privacy::ClipOnly(e) | Privacy::Dp(e) => Some(e),
        }
    }
}

/// The settings of the sweep, in table order: no DP, clip only, then the finite ε from the
/// largest to the smallest.
fn settings(epsilons: &[Epsilon], clip_only: f64) -> Vec<Privacy> {
    let mut out = Vec::new();
    if epsilons.contains(&Epsilon::Infinite) {
        out.push(Privacy::Off);
    }
    if clip_only > 0.0 {
        out.push(Privacy::ClipOnly(clip_only));
    }
    let mut finite: Vec<f64> = epsilons
        .iter()
        .filter_map(|e| match e {
            Epsilon::Finite(e) => Some(*e),
            Epsilon::Infinite => None,
        })
        .collect();
    finite.sort_by(|a, b| b.total_cmp(a));
    finite.dedup();
    out.extend(finite.into_iter().map(Privacy::Dp));
    out
}

/// One run's outcome.
struct Run {
    rows: Vec<RoundRow>,
    /// The model after the last round.
    model: Vec<f32>,
    /// The accuracy of the model after the last round on the whole test set.
    final_accuracy: f64,
    seconds: f64,
    /// Client step → (total time, calls).
    steps: BTreeMap<&'static str, (Duration, u32)>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.collaborators.is_empty() || args.collaborators.contains(&0) {
        bail!("`--collaborators`: give one or more numbers of collaborators, each at least 2");
    }
    if args.repeats == 0 || args.rounds == 0 {
        bail!("`--repeats` and `--rounds` must be at least 1");
    }
    let sweep = settings(&args.epsilons, args.clip_only_epsilon);
    if sweep.is_empty() {
        bail!("nothing to run: give `--epsilons` (e.g. `--epsilons 8 inf`)");
    }
    if let Some(path) = &args.plot
        && path.extension().and_then(|e| e.to_str()) != Some("svg")
    {
        bail!(
            "`--plot {}`: give a file name ending in .svg",
            path.display()
        );
    }
    tch::set_num_threads(i32::try_from(args.threads.max(1))?);
    let data = Arc::new(Mnist::load_bundled()?);
    if !args.plan_clips.is_empty() {
        println!("{}", plans_table(&args, &sweep, &data)?);
        return Ok(());
    }
    let mut clips = BTreeMap::new();
    println!(
        "dp_accuracy: {} training / {} test images, {} round(s), n in {:?}, settings: {}; δ = {}, {} repetition(s); {}",
        data.train.len(),
        data.test.len(),
        args.rounds,
        args.collaborators,
        sweep
            .iter()
            .map(Privacy::label)
            .collect::<Vec<_>>()
            .join(", "),
        args.dp_delta,
        args.repeats,
        if args.secagg_plus == 0 {
            "SecAgg on the full graph".to_string()
        } else {
            format!("SecAgg+ with k = {}", args.secagg_plus)
        },
    );
    let mut base = BTreeMap::new();
    for &n in &args.collaborators {
        let options = options_for(&args, n, Arc::clone(&data))?;
        let initial = Net::new(args.seed)?.to_flat()?;
        let norms = update_norms(&options, args.seed, &initial)?;
        let c = args
            .dp_clips
            .iter()
            .rev()
            .find(|(m, _)| *m == n)
            .map_or_else(|| default_clip(median(&norms)), |(_, c)| *c);
        clips.insert(n, c);
        println!(
            "n = {n}: L2 norm of one local epoch's update at the initial model over {} collaborators: median {:.4}, min {:.4}, max {:.4}; --dp-clip {n}={}",
            norms.len(),
            median(&norms),
            support::min(&norms),
            support::max(&norms),
            c
        );
        base.insert(n, options);
    }
    let clip = |n: usize| clips.get(&n).copied().unwrap_or(f64::NAN);
    let test = Batches::new(&data.test)?;
    let total = args.repeats * args.collaborators.len() * sweep.len();
    let bar = support::prefixed_progress_bar(
        (args.repeats * sweep.len()) as u64
            * u64::from(args.rounds)
            * args.collaborators.iter().sum::<usize>() as u64,
        args.quiet,
    );
    let mut runs: BTreeMap<(usize, usize), Vec<Run>> = BTreeMap::new();
    let started = Instant::now();
    let mut done = 0;
    for rep in 0..args.repeats {
        for &n in &args.collaborators {
            for k in 0..sweep.len() {
                let s = (k + rep) % sweep.len();
                let privacy = sweep[s];
                let mut options = base[&n].clone();
                options.settings.dp = privacy.epsilon().map(|epsilon| DpSettings {
                    epsilon,
                    delta: args.dp_delta,
                    clip: clip(n),
                    min_survivors: args.dp_min_survivors.unwrap_or(0),
                });
                let label = format!(
                    "n={n} ε={} rep {}/{}",
                    privacy.label(),
                    rep + 1,
                    args.repeats
                );
                bar.set_prefix(label.clone());
                let run = run_once(&options, &bar, &test, args.seed)
                    .with_context(|| format!("the run {label} failed"))?;
                done += 1;
                support::say(
                    &bar,
                    format!(
                        "[{done}/{total}] {label}: final accuracy {:.4}, ε spent {}, {:.1} s ({:.2} s/round), {:.0} s elapsed",
                        run.final_accuracy,
                        run.rows
                            .last()
                            .and_then(|r| r.epsilon)
                            .map_or("-".to_string(), format_epsilon),
                        run.seconds,
                        run.seconds / f64::from(args.rounds),
                        started.elapsed().as_secs_f64()
                    ),
                );
                runs.entry((n, s)).or_default().push(run);
            }
        }
    }
    bar.finish_and_clear();
    // The update norm later in training, for choosing C: one local epoch from the final
    // model without DP.
    if let Some(off) = sweep.iter().position(|p| *p == Privacy::Off) {
        for &n in &args.collaborators {
            if let Some(run) = runs.get(&(n, off)).and_then(|l| l.first()) {
                let norms = update_norms(&base[&n], args.seed, &run.model)?;
                println!(
                    "n = {n}: L2 norm of one local epoch's update at the final model without DP (round {}): median {:.4}, min {:.4}, max {:.4}",
                    args.rounds,
                    median(&norms),
                    support::min(&norms),
                    support::max(&norms)
                );
            }
        }
    }
    let plans: BTreeMap<(usize, usize), Option<NoisePlan>> = runs
        .keys()
        .map(|&(n, s)| {
            let plan = noise_plan(&args, &base[&n], sweep[s], clip(n))?;
            Ok(((n, s), plan))
        })
        .collect::<anyhow::Result<_>>()?;
    println!();
    println!("{}", results_table(&args, &sweep, &runs, &plans, &clip)?);
    println!("{}", steps_table(&args, &sweep, &runs)?);
    println!("{}", encode_table(&args, &sweep, &clip)?);
    if let Some(path) = &args.plot {
        plot(&args, &sweep, &runs, path)?;
        println!("plot: {}", path.display());
    }
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The run options for `n` collaborators: the bundled data strided, SecAgg semi-honest, sample
/// counts scaled by the largest share (`--max-samples`, for SecAgg's quantization).
fn options_for(args: &Args, n: usize, data: Arc<Mnist>) -> anyhow::Result<RunOptions> {
    let mut options = RunOptions::new(n, Arc::clone(&data));
    options.settings.rounds = args.rounds;
    options.settings.neighbours = args.secagg_plus;
    (
        options.settings.local_epochs,
        options.settings.learning_rate,
    ) = local_for(args, n);
    options.settings.max_samples = u32::try_from(data.train.len().div_ceil(n))?;
    options.seed = args.seed;
    options.validate()?;
    Ok(options)
}

/// The L2 norm of `w_local - w_global` after one round's local training from `global`, per
/// collaborator (the flow's training: the run's epochs and learning rate on the collaborator's
/// share).
fn update_norms(options: &RunOptions, seed: i64, global: &[f32]) -> anyhow::Result<Vec<f64>> {
    let mut norms = Vec::new();
    for name in &options.collaborators {
        let share = options.site_data(name)?;
        let mut net = Net::new(seed)?;
        net.set_flat(global)?;
        let config = TrainConfig {
            learning_rate: options.settings.learning_rate,
            ..TrainConfig::default()
        };
        let batches = Batches::new(&share.train)?;
        for _ in 0..options.settings.local_epochs {
            train_one_epoch_on(&mut net, &batches, &config)?;
        }
        let local = net.to_flat()?;
        norms.push(l2_distance(&local, global));
    }
    Ok(norms)
}

fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn run_once(
    options: &RunOptions,
    bar: &ProgressBar,
    test: &Batches,
    seed: i64,
) -> anyhow::Result<Run> {
    let steps: Arc<Mutex<BTreeMap<&'static str, (Duration, u32)>>> = Arc::default();
    let observer = {
        let bar = bar.clone();
        let steps = Arc::clone(&steps);
        move |event: &Event<'_>| {
            if let Event::StepFinished {
                step,
                role: Role::Collaborator,
                elapsed,
                ..
            } = *event
            {
                if step == "local_model_validation" {
                    bar.inc(1);
                }
                if let Ok(mut steps) = steps.lock() {
                    let entry = steps.entry(step).or_default();
                    entry.0 += elapsed;
                    entry.1 += 1;
                }
            }
        }
    };
    let runtime = options.local_runtime()?.observer(observer);
    let t = Instant::now();
    let flow = options.initial_state()?.run(&runtime)?;
    let seconds = t.elapsed().as_secs_f64();
    let mut net = Net::new(seed)?;
    net.set_flat(&flow.model)?;
    let final_accuracy = validate_on(&net, test, 1000)?;
    let steps = steps
        .lock()
        .map_err(|_| anyhow::anyhow!("the step timer's lock was poisoned"))?
        .clone();
    Ok(Run {
        rows: flow.results,
        model: flow.model,
        final_accuracy,
        seconds,
        steps,
    })
}

/// The noise plan a DP setting gets at `n` (as the flow makes it: survivors default to the
/// SecAgg threshold).
fn noise_plan(
    args: &Args,
    options: &RunOptions,
    privacy: Privacy,
    clip: f64,
) -> anyhow::Result<Option<NoisePlan>> {
    let Some(epsilon) = privacy.epsilon() else {
        return Ok(None);
    };
    let n = options.collaborators.len();
    let survivors = match args.dp_min_survivors {
        Some(m) if m > 0 => m as usize,
        _ => threshold(options) as usize,
    };
    let dp = DpSettings {
        epsilon,
        delta: args.dp_delta,
        clip,
        min_survivors: 0,
    };
    let (plan, _) =
        NoisePlan::new(&dp, args.rounds, n, survivors).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(plan))
}

/// The noise plans for every n, DP setting and `--plan-clips` value: how the noise on the mean
/// update compares with the clip.
fn plans_table(args: &Args, sweep: &[Privacy], data: &Arc<Mnist>) -> anyhow::Result<String> {
    let mut body = Vec::new();
    for &n in &args.collaborators {
        let options = options_for(args, n, Arc::clone(data))?;
        for privacy in sweep {
            for &c in &args.plan_clips {
                if !(c.is_finite() && c > 0.0) {
                    bail!("`--plan-clips {c}`: give positive clips, e.g. 0.02,0.1,0.5");
                }
                let Some(plan) = noise_plan(args, &options, *privacy, c)? else {
                    continue;
                };
                let noise = mean_noise_norm(&plan, n);
                body.push(vec![
                    n.to_string(),
                    privacy.label(),
                    format!("{c}"),
                    format!("{:.3e}", plan.gamma),
                    format!("{:.3e}", plan.clip_units),
                    format!("{:.3e}", plan.local_variance.sqrt()),
                    format!("{noise:.4}"),
                    format!("{:.2}", noise / c),
                ]);
            }
        }
    }
    let headers = [
        "n",
        "ε target",
        "C",
        "γ",
        "C/γ",
        "σ per client (units)",
        "noise ‖·‖ of the mean update",
        "noise / C",
    ]
    .map(String::from);
    Ok(format!(
        "Noise plans ({} rounds, δ = {}, survivors provisioned: the SecAgg threshold unless --dp-min-survivors; all n surviving):\n\n{}",
        args.rounds,
        args.dp_delta,
        markdown_table(&headers, &body)
    ))
}

/// The L2 norm of the noise on the decoded mean update when all `n` collaborators survive:
/// γ·σ·√n/n per coordinate, times √d.
fn mean_noise_norm(plan: &NoisePlan, n: usize) -> f64 {
    plan.local_std_dev() * (n as f64).sqrt() / n as f64 * (NUM_PARAMETERS as f64).sqrt()
}

/// The flow's default SecAgg threshold at these options.
fn threshold(options: &RunOptions) -> u32 {
    let group = match options.settings.neighbours {
        0 => options.collaborators.len(),
        k => k as usize + 1,
    };
    flspec::secagg::min_safe_threshold(u32::try_from(group).unwrap_or(u32::MAX))
}

fn results_table(
    args: &Args,
    sweep: &[Privacy],
    runs: &BTreeMap<(usize, usize), Vec<Run>>,
    plans: &BTreeMap<(usize, usize), Option<NoisePlan>>,
    clip: &dyn Fn(usize) -> f64,
) -> anyhow::Result<String> {
    let headers = [
        "n",
        "ε target",
        "ε spent",
        "C",
        "noise ‖·‖ of the mean update",
        "final accuracy",
        "range",
        "round time (s)",
        "DP / no-DP time",
    ]
    .map(String::from);
    let mut body = Vec::new();
    for &n in &args.collaborators {
        let off = sweep.iter().position(|p| *p == Privacy::Off);
        for (s, privacy) in sweep.iter().enumerate() {
            let Some(list) = runs.get(&(n, s)) else {
                continue;
            };
            let accuracies: Vec<f64> = list.iter().map(|r| r.final_accuracy).collect();
            let spent: Vec<f64> = list
                .iter()
                .filter_map(|r| r.rows.last().and_then(|row| row.epsilon))
                .collect();
            let round_times: Vec<f64> = list
                .iter()
                .map(|r| r.seconds / f64::from(args.rounds))
                .collect();
            let ratio = match off.and_then(|o| runs.get(&(n, o))) {
                Some(base) if *privacy != Privacy::Off => {
                    let ratios: Vec<f64> = list
                        .iter()
                        .zip(base)
                        .map(|(r, b)| r.seconds / b.seconds)
                        .collect();
                    format!(
                        "{:.3}x ({:.2}–{:.2})",
                        median(&ratios),
                        support::min(&ratios),
                        support::max(&ratios)
                    )
                }
                _ => "1".to_string(),
            };
            let noise = match plans.get(&(n, s)).copied().flatten() {
                // The decoded mean divides the n collaborators' summed noise by n.
                Some(plan) => format!("{:.3}", mean_noise_norm(&plan, n)),
                None => "0".to_string(),
            };
            body.push(vec![
                n.to_string(),
                privacy.label(),
                if spent.is_empty() {
                    "∞".to_string()
                } else {
                    format_epsilon(median(&spent))
                },
                match privacy {
                    Privacy::Off => "-".to_string(),
                    _ => format!("{}", clip(n)),
                },
                noise,
                format!("{:.4}", mean(&accuracies)),
                format!(
                    "{:.4}–{:.4}",
                    support::min(&accuracies),
                    support::max(&accuracies)
                ),
                format!("{:.2}", median(&round_times)),
                ratio,
            ]);
        }
    }
    Ok(format!(
        "Final accuracy: the model after round {} on the 1,000 test images (mean over {} run(s), range); ε spent: after the last round (median); round time: run time / rounds (median); DP / no-DP: median of the per-repetition ratios (range).\n\n{}",
        args.rounds,
        args.repeats,
        markdown_table(&headers, &body)
    ))
}

/// The client's mean time per round in each collaborator step, per setting.
fn steps_table(
    args: &Args,
    sweep: &[Privacy],
    runs: &BTreeMap<(usize, usize), Vec<Run>>,
) -> anyhow::Result<String> {
    let names: Vec<&'static str> = runs
        .values()
        .flatten()
        .flat_map(|r| r.steps.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut headers = vec!["n".to_string(), "ε target".to_string()];
    headers.extend(names.iter().map(|s| format!("{s} (ms)")));
    let mut body = Vec::new();
    for &n in &args.collaborators {
        for (s, privacy) in sweep.iter().enumerate() {
            let Some(list) = runs.get(&(n, s)) else {
                continue;
            };
            let mut row = vec![n.to_string(), privacy.label()];
            for name in &names {
                let per_call: Vec<f64> = list
                    .iter()
                    .filter_map(|r| r.steps.get(name))
                    .map(|(d, c)| d.as_secs_f64() * 1e3 / f64::from((*c).max(1)))
                    .collect();
                row.push(format!("{:.2}", median(&per_call)));
            }
            body.push(row);
        }
    }
    Ok(format!(
        "Client time per step and round (one collaborator's call, mean over the run, median over the repetitions; local_model_validation holds the encoding, decrypt_ciphertext the masking):\n\n{}",
        markdown_table(&headers, &body)
    ))
}

/// Times the client-side encodings on a real update (one local epoch of collaborator 0 at the
/// initial model): the plain SecAgg encoding and the DP one per setting.
fn encode_table(
    args: &Args,
    sweep: &[Privacy],
    clip: &dyn Fn(usize) -> f64,
) -> anyhow::Result<String> {
    let data = Arc::new(Mnist::load_bundled()?);
    let mut body = Vec::new();
    for &n in &args.collaborators {
        let options = options_for(args, n, Arc::clone(&data))?;
        let global = Net::new(args.seed)?.to_flat()?;
        let share = options.site_data(&options.collaborators[0])?;
        let mut net = Net::new(args.seed)?;
        train_one_epoch_on(
            &mut net,
            &Batches::new(&share.train)?,
            &TrainConfig::default(),
        )?;
        let local = net.to_flat()?;
        let measured = Measurements {
            train_count: share.train.len(),
            test_count: share.test.len(),
            train_loss: 0.5,
            agg_correct: 1,
            local_correct: 1,
        };
        let max_samples = options.settings.max_samples as usize;
        let plain = time_median(args.encode_iterations, || {
            let (v, _) = update::encode(&local, &measured, options.settings.clip, max_samples);
            std::hint::black_box(v);
            Ok(())
        })?;
        body.push(vec![
            n.to_string(),
            "inf (no DP): update::encode".to_string(),
            "-".to_string(),
            format!("{:.3}", plain * 1e3),
            "-".to_string(),
        ]);
        for privacy in sweep {
            let Some(plan) = noise_plan(args, &options, *privacy, clip(n))? else {
                continue;
            };
            // As the flow calls it: the operating system's generator, one system call per
            // draw.
            let os = time_median(args.encode_iterations, || {
                let (v, _) = private_update::encode(&local, &global, &measured, &plan, &mut OsRng)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                std::hint::black_box(v);
                Ok(())
            })?;
            // A ChaCha20 stream seeded from it once per contribution.
            let chacha = time_median(args.encode_iterations, || {
                let mut rng = ChaCha20Rng::from_rng(OsRng)?;
                let (v, _) = private_update::encode(&local, &global, &measured, &plan, &mut rng)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                std::hint::black_box(v);
                Ok(())
            })?;
            body.push(vec![
                n.to_string(),
                privacy.label(),
                format!("{:.1}", plan.local_variance.sqrt()),
                format!("{:.3}", os * 1e3),
                format!("{:.3}", chacha * 1e3),
            ]);
        }
    }
    let headers = [
        "n",
        "ε target",
        "σ per client (integer units)",
        "encode, OsRng (ms)",
        "encode, ChaCha20 seeded from OsRng (ms)",
    ]
    .map(String::from);
    Ok(format!(
        "Client-side encoding of one update ({} values; median of {} calls; the flow draws the noise from ChaCha20 seeded from the OS, on another thread while the collaborator trains; OsRng, one system call per draw, for comparison):\n\n{}",
        NUM_PARAMETERS,
        args.encode_iterations,
        markdown_table(&headers, &body)
    ))
}

/// The median wall time of `iterations` calls of `f`, in seconds (after one warm-up call).
fn time_median(
    iterations: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&times))
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// The global model's accuracy after each round `r` (0: the initial model), mean over the
/// repetitions: round r's `agg_accuracy` is measured at the start of round r, i.e. on the
/// model after round r - 1; the last point is the final model's.
fn curve(list: &[Run], rounds: u32) -> Vec<(u32, f64)> {
    (0..=rounds)
        .map(|r| {
            let values: Vec<f64> = list
                .iter()
                .filter_map(|run| match run.rows.get(r as usize) {
                    Some(row) => Some(row.agg_accuracy),
                    None if r == rounds => Some(run.final_accuracy),
                    None => None,
                })
                .collect();
            (r, mean(&values))
        })
        .collect()
}

/// One panel per n, one line per setting.
fn plot(
    args: &Args,
    sweep: &[Privacy],
    runs: &BTreeMap<(usize, usize), Vec<Run>>,
    path: &Path,
) -> anyhow::Result<()> {
    #[cfg(feature = "plot")]
    let _ = flspec::fl::history::plot::system_font();
    let panels = args.collaborators.len();
    let root = SVGBackend::new(path, (480 * panels as u32, 420)).into_drawing_area();
    root.fill(&WHITE).context("drawing the plot")?;
    let colors = [
        BLACK,
        RGBColor(120, 120, 120),
        BLUE,
        GREEN,
        RED,
        MAGENTA,
        CYAN,
    ];
    for (area, &n) in root
        .split_evenly((1, panels))
        .iter()
        .zip(&args.collaborators)
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{n} collaborators"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0..args.rounds, 0f64..1f64)
            .context("drawing the plot")?;
        chart
            .configure_mesh()
            .x_desc("round")
            .y_desc("test accuracy")
            .draw()
            .context("drawing the plot")?;
        for (s, privacy) in sweep.iter().enumerate() {
            let Some(list) = runs.get(&(n, s)) else {
                continue;
            };
            let color = colors[s % colors.len()];
            chart
                .draw_series(LineSeries::new(
                    curve(list, args.rounds),
                    color.stroke_width(2),
                ))
                .context("drawing the plot")?
                .label(privacy.legend())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .context("drawing the plot")?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_training_flags_parse_and_default_per_n() {
        assert_eq!(parse_local("100=10:0.05"), Ok((100, 10, 0.05)));
        for bad in ["100", "100=5", "x=5:0.1", "100=0:0.1", "100=5:-1"] {
            assert!(parse_local(bad).is_err(), "{bad}");
        }
        let args = Args::parse_from(["dp_accuracy", "--local", "10=2:0.02"]);
        assert_eq!(local_for(&args, 10), (2, 0.02));
        assert_eq!(local_for(&args, 100), (5, 0.05));
        assert_eq!(local_for(&args, 20), (1, 0.01));
    }

    #[test]
    fn epsilons_parse_numbers_and_inf_and_refuse_the_rest() {
        assert_eq!("8".parse::<Epsilon>(), Ok(Epsilon::Finite(8.0)));
        assert_eq!("inf".parse::<Epsilon>(), Ok(Epsilon::Infinite));
        for bad in ["0", "-1", "x", "nan"] {
            let err = bad.parse::<Epsilon>().unwrap_err();
            assert!(err.contains("positive number or `inf`"), "{err}");
        }
    }

    #[test]
    fn clips_parse_as_n_equals_c() {
        assert_eq!(parse_clip("100=0.06"), Ok((100, 0.06)));
        for bad in ["100", "x=1", "10=0", "10=-1", "10=inf"] {
            assert!(parse_clip(bad).unwrap_err().contains("N=C"), "{bad}");
        }
        let args = Args::parse_from(["dp_accuracy", "--dp-clip", "10=0.5"]);
        assert_eq!(args.dp_clips, vec![(10, 0.5)]);
        assert_eq!(args.collaborators, vec![10, 100]);
    }

    #[test]
    fn default_clips_are_the_median_to_two_digits() {
        assert!((default_clip(0.5) - 0.5).abs() < 1e-12);
        assert!((default_clip(0.04567) - 0.046).abs() < 1e-12);
        assert!((default_clip(0.1234) - 0.12).abs() < 1e-12);
        assert_eq!(format_epsilon(2.5), "2.500");
        assert_eq!(format_epsilon(6e11), "6.000e11");
    }

    #[test]
    fn the_sweep_runs_no_dp_then_clip_only_then_epsilons_from_the_largest() {
        let e = |s: &str| s.parse::<Epsilon>().unwrap();
        let sweep = settings(&[e("1"), e("inf"), e("8"), e("3"), e("8")], 1e12);
        assert_eq!(
            sweep,
            vec![
                Privacy::Off,
                Privacy::ClipOnly(1e12),
                Privacy::Dp(8.0),
                Privacy::Dp(3.0),
                Privacy::Dp(1.0)
            ]
        );
        assert_eq!(settings(&[e("3")], 0.0), vec![Privacy::Dp(3.0)]);
    }

    #[test]
    fn the_curve_ends_with_the_final_model() {
        let row = |round, agg_accuracy| RoundRow {
            round,
            agg_accuracy,
            ..RoundRow::default()
        };
        let run = Run {
            rows: vec![row(0, 0.1), row(1, 0.5)],
            model: Vec::new(),
            final_accuracy: 0.7,
            seconds: 1.0,
            steps: BTreeMap::new(),
        };
        assert_eq!(curve(&[run], 2), vec![(0, 0.1), (1, 0.5), (2, 0.7)]);
    }
}

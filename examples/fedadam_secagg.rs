//! FedAdam on top of secure aggregation: the SecAgg MNIST flow with a server optimizer, run side
//! by side with FedAvg (and FedAvgM, FedYogi, FedAdagrad) under SecAgg+.
//!
//! A server optimizer needs only the round's weighted sum of the collaborators' models and the
//! summed weight, which is exactly what secure aggregation reveals: the aggregator never sees an
//! individual update, and the types say so, since `ServerOptimizer::step` takes a `WeightedSum`,
//! built here from the unmasked SecAgg sum with `WeightedSum::from_sum`. The optimizer's state
//! (moments, momentum) stays in the aggregator's private state and is never sent.
//!
//! ```text
//! cargo run --release --example fedadam_secagg                        # 10 collaborators, 10 rounds
//! cargo run --release --example fedadam_secagg -- --rounds 3 --variants fedavg fedadam:eta=0.01
//! cargo run --release --example fedadam_secagg -- --history runs/ --plot accuracy.svg
//! cargo run --release --example fedadam_secagg -- --save-models models/   # VARIANT.safetensors
//! ```
//!
//! Variants are `NAME[:KEY=VALUE,...]` with Flower 1.42's defaults (`fedadam` is η = 0.1,
//! τ = 1e-9); see `flspec_examples::secagg_mnist::server_opt` for the keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use flspec::fl::history::{History, ParticipantRecord};
use flspec::{Event, Flow, Role};
use flspec_examples::example_support::{self as support, MnistArgs, markdown_table};
use flspec_examples::secagg_mnist::{RunOptions, SecAggMnist, ServerOpt};
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::export;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{Batches, validate_on};

/// FedAvg vs FedAdam (and other server optimizers) on the secure sum, MNIST, SecAgg+.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Collaborators.
    #[arg(long, default_value_t = 10)]
    collaborators: usize,
    /// Training rounds per variant.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// The server optimizers to compare, each `NAME[:KEY=VALUE,...]` (names: fedavg, fedavgm,
    /// fedadam, fedyogi, fedadagrad; Flower's defaults unless overridden, e.g.
    /// `fedadam:eta=0.01,tau=1e-3`).
    #[arg(
        long,
        num_args = 1..,
        default_values_t = default_variants()
    )]
    variants: Vec<ServerOpt>,
    /// SecAgg+ degree: each collaborator shares its secrets with K neighbours (default
    /// 2 * ceil(log2 n), at most n - 1); 0 for the full graph (plain SecAgg).
    #[arg(long)]
    secagg_plus: Option<u32>,
    /// Plain aggregation instead of secure aggregation (to compare).
    #[arg(long)]
    no_secagg: bool,
    /// Clip every parameter to [-CLIP, CLIP] before aggregation.
    #[arg(long, default_value_t = 4.0)]
    clip: f32,
    /// The most training samples one collaborator may hold: sample counts travel as fractions of
    /// it, so the smaller, the finer SecAgg's quantization of the weighted models (default: the
    /// largest collaborator's share).
    #[arg(long)]
    max_samples: Option<u32>,
    /// Use only the first N training images (default: all), for quick runs.
    #[arg(long)]
    train_samples: Option<usize>,
    /// Seed of the initial model (the same for every variant).
    #[arg(long, default_value_t = 42)]
    seed: i64,
    #[command(flatten)]
    mnist: MnistArgs,
    /// libtorch threads per operation (default: every core this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Write each variant's history to `DIR/VARIANT/`: `history.jsonl`, `history_rounds.csv`
    /// and `history_participants.csv` (flspec::fl::history).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Save each variant's final model as `DIR/VARIANT.safetensors` (the seed's tensor names;
    /// PyTorch loads it with `safetensors.torch.load_file`).
    #[arg(long, value_name = "DIR")]
    save_models: Option<PathBuf>,
    /// Plot every variant's accuracy per round to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn default_variants() -> Vec<ServerOpt> {
    [
        "fedavg",
        "fedavgm:momentum=0.9",
        "fedadam",
        "fedadam:tau=1e-3",
        "fedyogi",
        "fedadagrad",
    ]
    .iter()
    .map(|s| s.parse().expect("the default variants parse"))
    .collect()
}

/// One variant's run.
struct Outcome {
    label: String,
    flow: SecAggMnist,
    /// Accuracy of the final model on the whole test set (the model after the last round,
    /// which the flow itself never validates).
    final_accuracy: f64,
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.variants.is_empty() {
        bail!("give at least one `--variants` entry, e.g. `--variants fedavg fedadam`");
    }
    support::set_threads(args.threads, 1);
    let data = Arc::new(load_data(&args)?);
    let mut options = RunOptions::new(args.collaborators, Arc::clone(&data));
    options.settings.rounds = args.rounds;
    options.settings.secure = !args.no_secagg;
    options.settings.neighbours = args
        .secagg_plus
        .unwrap_or_else(|| flspec::secagg::Mode::secagg_plus_degree(args.collaborators));
    options.settings.clip = args.clip;
    options.settings.max_samples = match args.max_samples {
        Some(m) => m,
        None => u32::try_from(data.train.len().div_ceil(args.collaborators.max(1)))?,
    };
    options.seed = args.seed;
    options.validate()?;
    let labels: Vec<String> = args.variants.iter().map(ToString::to_string).collect();
    println!(
        "flspec FedAdam on SecAgg: {} collaborators, {} round(s), {} on the local runtime; {} training / {} test images; variants: {}",
        args.collaborators,
        args.rounds,
        mode(&options),
        data.train.len(),
        data.test.len(),
        labels.join(", ")
    );
    let bar = support::prefixed_progress_bar(
        args.variants.len() as u64 * u64::from(args.rounds) * args.collaborators as u64,
        args.quiet,
    );
    let test = Batches::new(&data.test)?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (opt, label) in args.variants.iter().zip(&labels) {
        let mut options = options.clone();
        options.settings.server_optimizer = *opt;
        bar.set_prefix(label.clone());
        let observer = {
            let bar = bar.clone();
            move |event: &Event<'_>| match *event {
                Event::StepFinished {
                    step: "local_model_validation",
                    ..
                } => bar.inc(1),
                Event::Dropped { participant, .. } => {
                    bar.println(format!("{participant} dropped out"));
                }
                Event::StepStarted {
                    step,
                    role: Role::Collaborator,
                    participant,
                } => bar.set_message(format!("{participant}: {step}")),
                _ => {}
            }
        };
        let runtime = options.local_runtime()?.observer(observer);
        let t = Instant::now();
        let flow = options
            .initial_state()?
            .run(&runtime)
            .with_context(|| format!("the `{label}` run failed"))?;
        let mut net = Net::new(args.seed)?;
        net.set_flat(&flow.model)?;
        let final_accuracy = validate_on(&net, &test, 1000)?;
        if let Some(dir) = &args.save_models {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{}.safetensors", file_name(label)));
            export::save_net(&net, &path)
                .with_context(|| format!("saving the `{label}` model to {}", path.display()))?;
        }
        outcomes.push(Outcome {
            label: label.clone(),
            flow,
            final_accuracy,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    bar.finish_and_clear();
    print!("{}", table(&outcomes, args.rounds));
    let contributions: Vec<usize> = outcomes
        .iter()
        .flat_map(|o| o.flow.results.iter().map(|r| r.contributors.len()))
        .collect();
    let (fewest, most) = (
        contributions.iter().min().copied().unwrap_or(0),
        contributions.iter().max().copied().unwrap_or(0),
    );
    if options.settings.secure {
        let count = if fewest == most {
            most.to_string()
        } else {
            format!("{fewest} to {most}")
        };
        println!(
            "every round the aggregator unmasked one sum of {count} contributions and gave it to the server optimizer; it never held an individual update"
        );
    }
    println!(
        "total {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        outcomes
            .iter()
            .map(|o| format!("{} {:.1} s", o.label, o.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(dir) = &args.history {
        for o in &outcomes {
            let sub = dir.join(file_name(&o.label));
            support::write_history(&history(o), &sub)?;
        }
        println!("histories: {}", dir.display());
    }
    if let Some(path) = &args.plot {
        plot(&outcomes, path, &mode(&options))?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

fn mode(options: &RunOptions) -> String {
    match (options.settings.secure, options.settings.neighbours) {
        (false, _) => "plain aggregation".to_string(),
        (true, 0) => "secure aggregation".to_string(),
        (true, k) => format!("secure aggregation (SecAgg+, k = {k})"),
    }
}

fn load_data(args: &Args) -> anyhow::Result<Mnist> {
    let mut data = args.mnist.load()?;
    if let Some(n) = args.train_samples {
        if n == 0 || n > data.train.len() {
            bail!(
                "`--train-samples {n}`: give 1 to {} (the training images available)",
                data.train.len()
            );
        }
        let first: Vec<usize> = (0..n).collect();
        data.train = data.train.subset(&first)?;
    }
    Ok(data)
}

/// Two markdown tables, one column per variant: the accuracy of the aggregated model after each
/// round (row 0: the initial model; the last row: the final model, on the whole test set), and
/// the mean training loss of each round.
fn table(outcomes: &[Outcome], rounds: u32) -> String {
    let mut headers = vec!["Round".to_string()];
    headers.extend(outcomes.iter().map(|o| o.label.clone()));
    let accuracy: Vec<Vec<String>> = (0..=rounds as usize)
        .map(|r| {
            let mut row = vec![r.to_string()];
            for o in outcomes {
                // Row r: the model after r rounds, which round r's collaborators validated
                // first; after the last round, the final model.
                let acc = match o.flow.results.get(r) {
                    Some(row) => Some(row.agg_accuracy),
                    None if r == o.flow.results.len() => Some(o.final_accuracy),
                    None => None,
                };
                row.push(acc.map_or_else(|| "-".to_string(), |a| format!("{a:.4}")));
            }
            row
        })
        .collect();
    let loss: Vec<Vec<String>> = (0..rounds as usize)
        .map(|r| {
            let mut row = vec![r.to_string()];
            for o in outcomes {
                row.push(
                    o.flow
                        .results
                        .get(r)
                        .map_or_else(|| "-".to_string(), |row| format!("{:.4}", row.train_loss)),
                );
            }
            row
        })
        .collect();
    format!(
        "Accuracy of the aggregated model after each round (test set):\n{}\nMean local training loss per round:\n{}",
        markdown_table(&headers, &accuracy),
        markdown_table(&headers, &loss)
    )
}

/// One variant's run as a [`History`]: per round the aggregated model's accuracy (before the
/// round's training) and the mean training loss, the samples in the sum, and each collaborator
/// that dropped out. Under secure aggregation the aggregator has no per-collaborator metric
/// beyond who contributed.
fn history(o: &Outcome) -> History {
    let mut history = History::new();
    for row in &o.flow.results {
        let record = history
            .record(u64::from(row.round))
            .accuracy(row.agg_accuracy)
            .loss(row.train_loss)
            .metric("local_accuracy", row.local_accuracy)
            .metric("train_samples", row.train_samples as f64)
            .metric("contributors", row.contributors.len() as f64);
        for name in &row.dropped {
            record.participant(ParticipantRecord::dropout(name.clone()));
        }
    }
    history
        .record(u64::from(o.flow.settings.rounds))
        .accuracy(o.final_accuracy);
    history
}

/// A folder name for a variant label (`fedadam:eta=0.01` → `fedadam_eta=0.01`).
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| if c == ':' || c == ',' { '_' } else { c })
        .collect()
}

/// Accuracy of the aggregated model per round, one line per variant (.svg or .png).
fn plot(outcomes: &[Outcome], path: &Path, mode: &str) -> anyhow::Result<()> {
    let series = outcomes
        .iter()
        .map(|o| {
            let points = o
                .flow
                .results
                .iter()
                .map(|r| (u64::from(r.round), r.agg_accuracy))
                .chain([(o.flow.results.len() as u64, o.final_accuracy)]);
            (o.label.clone(), points.collect())
        })
        .collect();
    support::line_chart(
        &format!("Aggregated model accuracy, {mode}"),
        Some("rounds of training"),
        "test accuracy",
        series,
        path,
    )?;
    Ok(())
}

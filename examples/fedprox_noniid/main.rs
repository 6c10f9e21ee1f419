//! FedProx on non-IID MNIST: OpenFL's FedProx tutorial idea as an flspec flow. The training set
//! is split across 10 collaborators with Dirichlet label skew (alpha = 0.1: most collaborators
//! see two or three digits), and the same run is repeated with plain FedAvg (`mu = 0`) and with
//! FedProx (Li et al. 2020; `mu = 0.01`, `0.1`), whose proximal term `mu/2 * ||w - w_global||^2`
//! keeps each collaborator's model near the round's global model.
//!
//! ```text
//! cargo run --release --example fedprox_noniid                       # 10 collaborators, 20 rounds
//! cargo run --release --example fedprox_noniid -- --mu 0,0.01,0.1,1 --alpha 0.3 --rounds 10
//! cargo run --release --example fedprox_noniid -- --lr step:0.05,every=5,gamma=0.5 --epochs 2
//! cargo run --release --example fedprox_noniid -- --plot fedprox.svg --history runs
//! cargo run --release --example fedprox_noniid -- --save-model model.safetensors
//! ```
//!
//! The table has one column per variant: the accuracy, after each round, of the new global
//! model (the sample-weighted mean of the collaborators' models) on the whole held-out test set,
//! which the aggregator holds. Every variant starts from the same model and the same partition.
//! The flow is `flspec_examples::fedavg_mnist` (each collaborator trains with
//! `flspec_tch::train::train_one_epoch_with` and `flspec_tch::fedprox::Proximal` when `mu > 0`).

mod compare;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use compare::{VariantRun, variant_name};
use flspec::Flow;
use flspec::fl::partition::{DEFAULT_MIN_PARTITION_SIZE, Partitioner};
use flspec::fl::schedule::LrSchedule;
use flspec_examples::example_support::{self as support, MnistArgs, TrainingArgs, say};
use flspec_examples::fedavg_mnist::{FedAvgMnist, RunOptions};
use flspec_tch::datasets::mnist::CLASSES;
use flspec_tch::export;
use flspec_tch::models::mnist_cnn::Net;

/// FedAvg vs FedProx on MNIST with Dirichlet label skew, as an flspec flow.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Collaborators.
    #[arg(long, default_value_t = 10)]
    collaborators: usize,
    /// Training rounds per variant.
    #[arg(long, default_value_t = 20)]
    rounds: u32,
    /// Dirichlet concentration of the label skew (0.1: very skewed; 100: nearly IID).
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// The smallest share of the training set a collaborator may get (Flower Datasets'
    /// min_partition_size; the split is drawn again, up to 10 times, until every share has it).
    #[arg(long, default_value_t = DEFAULT_MIN_PARTITION_SIZE)]
    min_partition_size: usize,
    /// Seed of the partition.
    #[arg(long, default_value_t = 42)]
    partition_seed: u64,
    /// The variants: FedProx's mu for each, comma-separated; 0 is plain FedAvg.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.01, 0.1])]
    mu: Vec<f64>,
    /// The collaborators' SGD learning rate per round: a number (0.01) or a schedule
    /// (step:0.05,every=5,gamma=0.5; exp:0.05,gamma=0.9; cos:0.05,min=0.001,rounds=20; ...).
    #[arg(long, value_name = "SCHEDULE", default_value = "0.01")]
    lr: LrSchedule,
    #[command(flatten)]
    training: TrainingArgs,
    /// Seed of the initial model (the same for every variant).
    #[arg(long, default_value_t = 42)]
    seed: i64,
    #[command(flatten)]
    mnist: MnistArgs,
    /// Write each variant's history to this folder: VARIANT/history.jsonl and
    /// VARIANT/history_rounds.csv, VARIANT/history_participants.csv (VARIANT: fedavg,
    /// fedprox-mu0.01, ...).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Save each variant's final global model as safetensors that PyTorch loads
    /// (`safetensors.torch.load_file`, the seed's `Net` names): FILE's name with the variant
    /// added, e.g. model.safetensors -> model-fedavg.safetensors, model-fedprox-mu0.01.safetensors.
    #[arg(long, value_name = "FILE.safetensors")]
    save_model: Option<PathBuf>,
    /// Draw every variant's accuracy per round to this file (.svg or .png; needs the `plot`
    /// feature, on by default).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mu.is_empty() {
        bail!("give at least one variant: `--mu 0,0.01,0.1`");
    }
    if let Some(mu) = args.mu.iter().find(|mu| !(mu.is_finite() && **mu >= 0.0)) {
        bail!("`--mu {mu}`: FedProx's mu must be a finite number >= 0 (0 is plain FedAvg)");
    }
    support::check_plot_feature(args.plot.is_some())?;
    let data = args.mnist.load()?;
    args.training.set_threads();
    let mut options = RunOptions::new(args.collaborators, Arc::new(data));
    options.partition = Partitioner::Dirichlet {
        alpha: args.alpha,
        min_partition_size: args.min_partition_size,
    };
    options.partition_seed = args.partition_seed;
    options.seed = args.seed;
    args.training.apply(&mut options)?;
    options.settings.rounds = args.rounds;
    options.settings.learning_rate = args.lr.clone();
    options.validate()?;

    let partition = options.partition()?;
    println!(
        "flspec FedProx on non-IID MNIST: {} collaborators, `--partition {}` (seed {}), {} round(s), variants: {}",
        args.collaborators,
        options.partition,
        args.partition_seed,
        args.rounds,
        args.mu
            .iter()
            .map(|&mu| variant_name(mu))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("training samples per collaborator and digit:");
    print!(
        "{}",
        partition.histogram(options.data.train.labels(), CLASSES)?
    );

    let bar = support::progress_bar(
        args.mu.len() as u64 * u64::from(args.rounds) * args.collaborators as u64,
        args.quiet,
    );
    let started = Instant::now();
    let mut runs = Vec::with_capacity(args.mu.len());
    for &mu in &args.mu {
        let mut options = options.clone();
        options.settings.mu = mu;
        let runtime = options
            .local_runtime()?
            .observer(support::train_progress(&bar, variant_name(mu)));
        let t = Instant::now();
        let flow: FedAvgMnist = options
            .initial_state()?
            .run(&runtime)
            .with_context(|| format!("the {} run failed", variant_name(mu)))?;
        let run = VariantRun {
            mu,
            rows: flow.results.clone(),
            seconds: t.elapsed().as_secs_f64(),
        };
        if let Some(dir) = &args.history {
            support::write_history(&flow.history(), &dir.join(slug(mu)))?;
        }
        if let Some(file) = &args.save_model {
            let path = support::file_with_suffix(file, &slug(mu));
            export::save_flat(Net::layout(), &flow.model, &path)
                .with_context(|| format!("saving the {} model", variant_name(mu)))?;
            say(&bar, format!("model: {}", path.display()));
        }
        say(
            &bar,
            format!(
                "{}: final accuracy {:.4} ({:.1} s)",
                run.name(),
                run.rows.last().map_or(0.0, |r| r.accuracy),
                run.seconds
            ),
        );
        runs.push(run);
    }
    bar.finish_and_clear();

    println!(
        "\naccuracy of the global model on the held-out test set ({} images) after each round:\n",
        options.data.test.len()
    );
    print!("{}", compare::table(&runs));
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.plot {
        plot(&runs, &args, path)?;
    }
    if let Some(dir) = &args.history {
        println!("histories: {}", dir.display());
    }
    Ok(())
}

/// The folder name of a variant's history: `fedavg` or `fedprox-mu0.01`.
fn slug(mu: f64) -> String {
    if mu == 0.0 {
        "fedavg".to_string()
    } else {
        format!("fedprox-mu{mu}")
    }
}

fn plot(runs: &[VariantRun], args: &Args, path: &Path) -> anyhow::Result<()> {
    let series = runs
        .iter()
        .map(|run| {
            let points = run
                .rows
                .iter()
                .map(|r| (u64::from(r.round) + 1, r.accuracy));
            (run.name(), points.collect())
        })
        .collect();
    let drawn = support::line_chart(
        &format!(
            "MNIST, Dirichlet alpha={}, {} collaborators",
            args.alpha, args.collaborators
        ),
        None,
        "test accuracy of the global model",
        series,
        path,
    )?;
    println!("plot: {}", drawn.display());
    Ok(())
}

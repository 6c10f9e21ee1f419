//! Byzantine collaborators against robust aggregation, as an flspec flow. Ten collaborators
//! train the seed's CNN on MNIST with plain federated averaging (each sends its own model);
//! two of them are attackers. Every aggregation rule runs twice from the same model and the same
//! partition, without and with the attack: the sample-weighted mean (FedAvg), the
//! coordinate-wise median, the trimmed mean, Krum, Multi-Krum and (when there are enough
//! collaborators for it) Bulyan, all from `flspec::fl::aggregate`.
//!
//! ```text
//! cargo run --release --example byzantine                    # 2 of 10 send sign-flipped updates
//! cargo run --release --example byzantine -- --attack collaborator-009:label-flip --attack collaborator-010:noise:1
//! cargo run --release --example byzantine -- --rule mean --rule median --rounds 20 --per-round
//! cargo run --release --example byzantine -- --plot byzantine.svg --history runs
//! cargo run --release --example byzantine -- --rule median --save-model model.safetensors
//! ```
//!
//! Attacks (`--attack NAME:ATTACK`, repeatable): `sign-flip[:SCALE]` trains honestly and sends
//! `global − SCALE · (local − global)`; `label-flip` trains on the labels `9 − y`;
//! `noise[:STD]` sends `global + N(0, STD²)` per parameter. The attack is part of the
//! attacker's private state and runs inside its own step: the aggregator sees a model like any
//! other.
//!
//! Robust aggregation needs each update, so this flow cannot use secure aggregation: SecAgg
//! gives the aggregator only the sum, and `RobustAggregator::aggregate` takes an `Individual`
//! (each update), which a SecAgg sum (`WeightedSum`) cannot become (a compile_fail doctest in
//! `flspec::fl::aggregate` checks it).

mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use flspec::Flow;
use flspec::fl::partition::Partitioner;
use flspec::fl::schedule::LrSchedule;
use flspec_examples::example_support::{self as support, MnistArgs, TrainingArgs, say};
use flspec_examples::fedavg_mnist::{Attacker, FedAvgMnist, Rule, RunOptions, collaborator_names};
use flspec_tch::export;
use flspec_tch::models::mnist_cnn::Net;
use table::{Run, default_attackers, default_rules};

/// Byzantine collaborators against mean, median, trimmed mean, Krum, Multi-Krum and Bulyan.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Collaborators (Bengaluru, Portland, collaborator-003, ...).
    #[arg(long, default_value_t = 10)]
    collaborators: usize,
    /// Training rounds per run.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// A Byzantine collaborator: NAME:sign-flip[:SCALE] (default scale 4), NAME:label-flip or
    /// NAME:noise[:STD] (default std 1). Repeatable. Default: the last two collaborators with
    /// sign-flip.
    #[arg(long = "attack", value_name = "NAME:ATTACK")]
    attacks: Vec<Attacker>,
    /// An aggregation rule: mean, median, trimmed-mean[:BETA], krum:F, multi-krum:F,M,
    /// bulyan:F. Repeatable. Default: all of them, with F = the number of attackers (Bulyan
    /// only when there are at least 4F + 3 collaborators).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<Rule>,
    /// Skip the runs without attackers (halves the time; the table then has no baseline).
    #[arg(long)]
    no_baseline: bool,
    /// How the training set is split: iid, dirichlet:ALPHA, shards:K, quantity:ALPHA, strided.
    #[arg(long, default_value = "iid")]
    partition: Partitioner,
    /// Seed of the partition.
    #[arg(long, default_value_t = 42)]
    partition_seed: u64,
    /// The collaborators' SGD learning rate per round: a number or a schedule
    /// (step:0.05,every=5,gamma=0.5; ...). The default, 5 times the seed's 0.01, brings 400
    /// images per collaborator (the bundled subset) to about 0.92 in 10 rounds.
    #[arg(long, value_name = "SCHEDULE", default_value = "0.05")]
    lr: LrSchedule,
    #[command(flatten)]
    training: TrainingArgs,
    /// Seed of the initial model (the same for every run).
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// Print the accuracy after every round, one column per run.
    #[arg(long)]
    per_round: bool,
    /// Save each run's final global model as safetensors that PyTorch loads
    /// (`safetensors.torch.load_file`, the seed's `Net` names): FILE's name with the run added,
    /// e.g. model.safetensors -> model-median-attack.safetensors.
    #[arg(long, value_name = "FILE.safetensors")]
    save_model: Option<PathBuf>,
    #[command(flatten)]
    mnist: MnistArgs,
    /// Write each run's history to this folder: RUN/history.jsonl (appended per round),
    /// RUN/history_rounds.csv and RUN/history_participants.csv (RUN: mean-attack,
    /// median-clean, ...).
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// Draw every run's accuracy per round to this file (.svg or .png; needs the `plot`
    /// feature, on by default).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::check_plot_feature(args.plot.is_some())?;
    let names = collaborator_names(args.collaborators);
    let attackers = if args.attacks.is_empty() {
        default_attackers(&names)
    } else {
        args.attacks.clone()
    };
    let (rules, skipped) = if args.rules.is_empty() {
        default_rules(args.collaborators, attackers.len())
    } else {
        (args.rules.clone(), Vec::new())
    };

    let data = args.mnist.load()?;
    args.training.set_threads();
    let mut options = RunOptions::new(args.collaborators, Arc::new(data));
    options.partition = args.partition;
    options.partition_seed = args.partition_seed;
    options.seed = args.seed;
    args.training.apply(&mut options)?;
    options.settings.rounds = args.rounds;
    options.settings.learning_rate = args.lr.clone();
    // Check every rule and the attackers before the first (long) run.
    let mut plan = Vec::new();
    for rule in &rules {
        for attacked in [false, true] {
            if !attacked && args.no_baseline {
                continue;
            }
            let mut o = options.clone();
            o.settings.rule = *rule;
            o.attackers = if attacked {
                attackers.clone()
            } else {
                Vec::new()
            };
            o.validate()?;
            plan.push((*rule, attacked, o));
        }
    }
    if plan.is_empty() {
        bail!("no run to make: give at least one `--rule`");
    }

    println!(
        "flspec Byzantine MNIST: {} collaborators, `--partition {}`, {} round(s), attackers: {}",
        args.collaborators,
        options.partition,
        args.rounds,
        attackers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (rule, why) in &skipped {
        println!("skipped {rule}: {why}");
    }

    let bar = support::progress_bar(
        plan.len() as u64 * u64::from(args.rounds) * args.collaborators as u64,
        args.quiet,
    );
    let started = Instant::now();
    let mut runs = Vec::with_capacity(plan.len());
    for (rule, attacked, options) in plan {
        let run_name = table::run_name(&rule, attacked);
        if let Some(dir) = &args.history {
            let dir = dir.join(table::slug(&rule, attacked));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut options = options;
        options.history_jsonl = args
            .history
            .as_ref()
            .map(|d| d.join(table::slug(&rule, attacked)).join("history.jsonl"));
        let runtime = options
            .local_runtime()?
            .observer(support::train_progress(&bar, run_name.clone()));
        let t = Instant::now();
        let flow: FedAvgMnist = options
            .initial_state()?
            .run(&runtime)
            .with_context(|| format!("the run `{run_name}` failed"))?;
        if let Some(dir) = &args.history {
            flow.history()
                .write_csv(dir.join(table::slug(&rule, attacked)).join("history"))?;
        }
        if let Some(file) = &args.save_model {
            let path = table::run_file(file, &rule, attacked);
            export::save_flat(Net::layout(), &flow.model, &path)
                .with_context(|| format!("saving the model of `{run_name}`"))?;
            say(&bar, format!("model: {}", path.display()));
        }
        let run = Run {
            rule,
            attacked,
            rows: flow.results,
            seconds: t.elapsed().as_secs_f64(),
        };
        say(
            &bar,
            format!(
                "{run_name}: final accuracy {:.4} ({:.1} s)",
                run.final_accuracy(),
                run.seconds
            ),
        );
        runs.push(run);
    }
    bar.finish_and_clear();

    println!(
        "\nfinal accuracy of the global model on the held-out test set ({} images), after {} round(s):\n",
        options.data.test.len(),
        args.rounds
    );
    print!("{}", table::final_table(&runs));
    if args.per_round {
        println!("\naccuracy after each round:\n");
        print!("{}", table::per_round_table(&runs));
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.plot {
        plot(&runs, &args, attackers.len(), path)?;
    }
    if let Some(dir) = &args.history {
        println!("histories: {}", dir.display());
    }
    Ok(())
}

fn plot(runs: &[Run], args: &Args, attackers: usize, path: &Path) -> anyhow::Result<()> {
    let series = runs
        .iter()
        .map(|run| {
            let points = run
                .rows
                .iter()
                .map(|r| (u64::from(r.round) + 1, r.accuracy));
            (table::run_name(&run.rule, run.attacked), points.collect())
        })
        .collect();
    let drawn = support::line_chart(
        &format!(
            "MNIST, {} collaborators, {attackers} of them attackers",
            args.collaborators
        ),
        None,
        "test accuracy of the global model",
        series,
        path,
    )?;
    println!("plot: {}", drawn.display());
    Ok(())
}

//! Secure aggregation with MNIST: OpenFL's "Secure Aggregation with MNIST" tutorial, as an
//! flspec flow. Collaborators train the seed's CNN with libtorch on their shards of MNIST; the
//! aggregator averages their models through secure aggregation (Bonawitz et al. 2017) and
//! learns only the sum.
//!
//! ```text
//! cargo run --release --example secagg_mnist                      # 2 collaborators, 2 rounds
//! cargo run --release --example secagg_mnist -- --rounds 10 --plot curves.svg
//! cargo run --release --example secagg_mnist -- --collaborators 3 --drop Portland@decrypt_ciphertext
//! cargo run --release --example secagg_mnist -- --no-secagg       # plain FedAvg, for comparison
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use flspec::{Event, Flow, Role};
use flspec_examples::mnist::{self, Mnist};
use flspec_examples::model;
use flspec_examples::secagg_mnist::{Drop, RunOptions, SecAggMnist, report};
use indicatif::{ProgressBar, ProgressStyle};

/// Where the flow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// Every participant simulated in this process.
    Local,
    /// A director and envoys over the network, with mutual TLS.
    Federated,
}

/// Secure aggregation with MNIST, as an flspec flow.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Collaborators (the first two are Bengaluru and Portland).
    #[arg(long, default_value_t = 2)]
    collaborators: usize,
    /// Training rounds (the seed's default is 2; 10 reach about 0.94 accuracy).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Where the flow runs.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Local)]
    runtime: RuntimeKind,
    /// The director's address, for `--runtime federated`.
    #[arg(long)]
    director: Option<String>,
    /// Train the collaborators in parallel (local runtime), with this many workers.
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    parallel: Option<usize>,
    /// Write a checkpoint after every step to this folder.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Plain FedAvg without secure aggregation (the aggregator then sees every update).
    #[arg(long)]
    no_secagg: bool,
    /// Shamir threshold (default: more than half of each neighbourhood, at least 2).
    #[arg(long)]
    threshold: Option<u32>,
    /// SecAgg+: share with K neighbours instead of all (default K: 2 * ceil(log2 n)).
    #[arg(long, num_args = 0..=1, default_missing_value = "0")]
    secagg_plus: Option<u32>,
    /// Clip every parameter to [-CLIP, CLIP] before aggregation.
    #[arg(long, default_value_t = 4.0)]
    clip: f32,
    /// The most training samples one collaborator may hold (sample counts travel as fractions).
    #[arg(long, default_value_t = 60_000)]
    max_samples: u32,
    /// Plot accuracy and loss per round to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seed of the initial model.
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// Make a collaborator vanish at a step, e.g. Portland@decrypt_ciphertext (repeatable).
    #[arg(long = "drop", value_name = "NAME@STEP")]
    drops: Vec<Drop>,
    /// A full MNIST folder (torchvision's MNIST/raw layout, .gz or not) instead of the bundled
    /// 5,000-image subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Download MNIST into the --data folder (or .cache/mnist), verifying SHA-256, first.
    #[arg(long)]
    download: bool,
    /// libtorch threads per operation (default: all cores, or 1 per worker with --parallel).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.runtime == RuntimeKind::Federated {
        bail!(
            "`--runtime federated` needs a director (`--director HOST:PORT`) and envoys; the federated runtime is not wired into this example yet: use `--runtime local`"
        );
    }
    let data = load_data(&args)?;
    let workers = args.parallel.unwrap_or(1).max(1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    model::set_num_threads(args.threads.unwrap_or((cores / workers).max(1)));
    let mut options = RunOptions::new(args.collaborators, Arc::new(data));
    options.settings.rounds = args.rounds;
    options.settings.secure = !args.no_secagg;
    options.settings.threshold = args.threshold.unwrap_or(0);
    options.settings.neighbours = match args.secagg_plus {
        None => 0,
        Some(0) => flspec::secagg::Mode::secagg_plus_degree(args.collaborators),
        Some(k) => k,
    };
    options.settings.clip = args.clip;
    options.settings.max_samples = args.max_samples;
    options.seed = args.seed;
    options.workers = workers;
    options.checkpoint = args.checkpoint.clone();
    options.drops = args.drops.clone();

    let progress = Progress::new(args.rounds, args.collaborators, args.quiet);
    let runtime = options.local_runtime()?.observer(progress.observer());
    println!(
        "flspec SecAgg MNIST: {} collaborators ({}), {} rounds, {} on the local runtime",
        args.collaborators,
        options.collaborators.join(", "),
        args.rounds,
        if args.no_secagg {
            "plain FedAvg".to_string()
        } else {
            match options.settings.neighbours {
                0 => "secure aggregation".to_string(),
                k => format!("secure aggregation (SecAgg+, k = {k})"),
            }
        }
    );
    let started = Instant::now();
    let flow = options.initial_state()?.run(&runtime);
    progress.finish();
    let flow: SecAggMnist = match flow {
        Ok(flow) => flow,
        Err(e) => {
            if let (Some(dir), Some(id)) = (&args.checkpoint, runtime.last_run_id()) {
                eprintln!("checkpoints of the failed run: {}", dir.join(id).display());
            }
            return Err(e).context("the flow failed");
        }
    };
    println!("********** Simulation results **********");
    print!(
        "{}",
        report::results_table(&flow.results, &progress.round_times())
    );
    for row in &flow.results {
        if !row.dropped.is_empty() {
            println!(
                "round {}: dropped out: {}; the sum holds {} contributions ({})",
                row.round,
                row.dropped.join(", "),
                row.contributors.len(),
                row.contributors.join(", ")
            );
        }
    }
    println!(
        "total {:.2} s; graph fingerprint {}",
        started.elapsed().as_secs_f64(),
        SecAggMnist::graph().fingerprint()
    );
    if let Some(path) = &args.plot {
        report::plot(&flow.results, path)?;
        println!("plot: {}", path.display());
    }
    if let (Some(dir), Some(id)) = (&args.checkpoint, runtime.last_run_id()) {
        println!("checkpoints: {}", dir.join(id).display());
    }
    Ok(())
}

fn load_data(args: &Args) -> anyhow::Result<Mnist> {
    if args.download {
        let dir = args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(".cache/mnist"));
        mnist::download::download(&dir).context("downloading MNIST")?;
        return Mnist::load(&dir).with_context(|| format!("reading MNIST from {}", dir.display()));
    }
    match &args.data {
        Some(dir) => {
            Mnist::load(dir).with_context(|| format!("reading MNIST from {}", dir.display()))
        }
        None => Mnist::load_bundled().context("reading the bundled MNIST subset"),
    }
}

/// A progress bar over rounds and collaborators, and the time of each round.
struct Progress {
    bar: ProgressBar,
    round_ends: Arc<Mutex<Vec<Instant>>>,
    started: Instant,
}

impl Progress {
    fn new(rounds: u32, collaborators: usize, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(u64::from(rounds) * collaborators as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} collaborator-rounds {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            round_ends: Arc::new(Mutex::new(Vec::new())),
            started: Instant::now(),
        }
    }

    fn observer(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let bar = self.bar.clone();
        let ends = Arc::clone(&self.round_ends);
        move |event: &Event<'_>| match *event {
            Event::StepStarted {
                step,
                role: Role::Collaborator,
                participant,
            } => bar.set_message(format!("{participant}: {step}")),
            Event::StepFinished {
                step: "local_model_validation",
                ..
            } => bar.inc(1),
            Event::StepFinished {
                step: "join",
                role: Role::Aggregator,
                ..
            } => {
                if let Ok(mut ends) = ends.lock() {
                    ends.push(Instant::now());
                }
            }
            Event::Dropped {
                participant,
                reason,
                ..
            } => bar.println(format!("{participant} dropped out: {reason}")),
            _ => {}
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn round_times(&self) -> Vec<Duration> {
        let ends = self
            .round_ends
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let mut last = self.started;
        ends.into_iter()
            .map(|end| {
                let d = end - last;
                last = end;
                d
            })
            .collect()
    }
}

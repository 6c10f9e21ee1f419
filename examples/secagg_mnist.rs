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
//! cargo run --release --example secagg_mnist -- --collaborators 5 --partition dirichlet:0.3 --histogram labels.svg
//! ```
//!
//! `--partition` splits the training set among the collaborators (default `strided`, the seed's
//! `data[i::n]`); each collaborator's test samples follow its training labels (see
//! `flspec_examples::secagg_mnist::shares`). The run prints each collaborator's label counts
//! before training.
//!
//! The same binary is the federation's director and envoys (`make demo-federated` starts them):
//!
//! ```text
//! secagg_mnist director --listen 127.0.0.1:50050 --certs certs
//! secagg_mnist envoy --director 127.0.0.1:50050 --name Portland --certs certs
//! secagg_mnist --runtime federated --director 127.0.0.1:50050 --certs certs
//! ```

use flspec_tch::device::DeviceChoice;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use flspec::fl::partition::Partitioner;
use flspec::{Event, Flow, Role};
use flspec_examples::example_support::{self as support, MnistArgs};
use flspec_examples::secagg_mnist::ServerOpt;
use flspec_examples::secagg_mnist::private_update::DpSettings;
use flspec_examples::secagg_mnist::shares::{self, DEFAULT_PARTITION_SEED, Shares};
use flspec_examples::secagg_mnist::site::SigningKeys;
use flspec_examples::secagg_mnist::{
    Coordinator, Drop, RunOptions, SecAggMnist, Site, collaborator_names, report,
};
use flspec_federated::logs::LogFormat;
use flspec_federated::signing::{SigningCredentials, SigningTrust};
use flspec_federated::{Director, DirectorOptions, FederatedRuntime, Registry, TlsConfig};
use flspec_tch::threads;
use indicatif::ProgressBar;

/// Where the flow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// Every participant simulated in this process.
    Local,
    /// A director and envoys over the network, with mutual TLS.
    Federated,
}

/// Which aggregator secure aggregation resists (`--secagg-security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SecAggSecurity {
    /// Bonawitz et al. 2017's semi-honest protocol.
    SemiHonest,
    /// The actively secure variant (signed keys, consistency check).
    Malicious,
}

/// Secure aggregation with MNIST, as an flspec flow.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    /// Serve as the federation's director or as an envoy instead of running the flow.
    #[command(subcommand)]
    serve: Option<Serve>,
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
    /// The federation's certificate folder (`flspec-fed certs`), for `--runtime federated`.
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Train the collaborators in parallel (local runtime), with this many workers.
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    parallel: Option<usize>,
    /// Write a checkpoint after every step to this folder.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Plain FedAvg without secure aggregation (the aggregator then sees every update).
    #[arg(long)]
    no_secagg: bool,
    /// Shamir threshold: shares needed to rebuild a secret, and the fewest collaborators that
    /// must finish a round (default: more than 2/3 of the collaborators, or of each SecAgg+
    /// neighbourhood, with --secagg-security malicious; more than half, at least 2, with
    /// semi-honest). A semi-honest threshold at or below half is refused: a malicious or
    /// inconsistent aggregator could then unmask one collaborator's update (see
    /// --unsafe-allow-low-threshold); a malicious-secure one must exceed 2/3.
    #[arg(long)]
    threshold: Option<u32>,
    /// UNSAFE, for experiments only: accept a --threshold at or below half of the group that
    /// shares secrets. An aggregator that sends different unmask requests to two groups of
    /// collaborators can then rebuild both secrets of one collaborator and recover its update.
    #[arg(long)]
    unsafe_allow_low_threshold: bool,
    /// SecAgg+: share with K neighbours instead of all (default K: 2 * ceil(log2 n)).
    #[arg(long, num_args = 0..=1, default_missing_value = "0")]
    secagg_plus: Option<u32>,
    /// Which aggregator secure aggregation resists: semi-honest (one that follows the
    /// protocol learns only the sum) or malicious (also one that deviates: keys signed with
    /// each collaborator's signing certificate from the federation's CA, checked by every
    /// peer; a consistency round on the survivor set; a threshold above 2/3 of each group).
    /// The local runtime makes a CA and the identities per run; envoys load
    /// envoys/NAME.secagg.{crt,key} made by `flspec-fed certs`. Malicious is the default: it
    /// cost 1.02x a semi-honest run's time with 10 collaborators and 1.12x per round with 100
    /// simulated in one process (README, "Privacy guarantees").
    #[arg(long, value_enum, default_value_t = SecAggSecurity::Malicious)]
    secagg_security: SecAggSecurity,
    /// Distributed differential privacy: the (epsilon, delta) the released models meet over
    /// all --rounds, at the collaborator level. Each collaborator clips its model update to
    /// --dp-clip, rounds it and adds discrete Gaussian noise before SecAgg masks it; the
    /// aggregator sees only the noisy sum. The table prints epsilon spent after each round.
    #[arg(long, value_name = "E")]
    dp_epsilon: Option<f64>,
    /// Delta of --dp-epsilon.
    #[arg(
        long,
        value_name = "D",
        default_value_t = 1e-5,
        requires = "dp_epsilon"
    )]
    dp_delta: f64,
    /// L2 norm bound of a collaborator's model update per round under --dp-epsilon.
    #[arg(long, value_name = "C", default_value_t = 1.0, requires = "dp_epsilon")]
    dp_clip: f64,
    /// The fewest collaborators a round may keep for the --dp-epsilon guarantee (the noise is
    /// provisioned so that any this many survivors meet it; a round with fewer stops before
    /// unmasking). Default: the SecAgg threshold. Higher: less noise, fewer dropouts tolerated.
    #[arg(long, value_name = "N", requires = "dp_epsilon")]
    dp_min_survivors: Option<u32>,
    /// Local epochs each collaborator trains per round (the seed's 1).
    #[arg(long, value_name = "E", default_value_t = 1)]
    local_epochs: u32,
    /// Local SGD learning rate (the seed's 0.01).
    #[arg(long, value_name = "LR", default_value_t = 0.01)]
    lr: f64,
    /// Clip every parameter to [-CLIP, CLIP] before aggregation.
    #[arg(long, default_value_t = 4.0)]
    clip: f32,
    /// The most training samples one collaborator may hold (sample counts travel as fractions).
    #[arg(long, default_value_t = 60_000)]
    max_samples: u32,
    /// The server optimizer that turns each round's sum into the next global model: fedavg (the
    /// seed's weighted mean), fedavgm, fedadam, fedyogi or fedadagrad, with Flower 1.42's
    /// defaults (FedAvgM: lr 1.0, momentum 0.0; FedAdam: eta 0.1, tau 1e-9; FedYogi: eta 0.01,
    /// tau 1e-3; FedAdagrad: eta 0.1, tau 1e-9; beta_1 0.9, beta_2 0.99), overridden as
    /// NAME:KEY=VALUE,... (e.g. fedadam:eta=0.01,tau=1e-3). It needs only the sum, so it works
    /// under secure aggregation; its state stays with the aggregator.
    #[arg(long, value_name = "NAME[:KEY=VALUE,...]", default_value = "fedavg")]
    server_opt: ServerOpt,
    /// Server learning rate: FedAvgM's server_learning_rate or FedOpt's eta (overrides the
    /// --server-opt default).
    #[arg(long)]
    server_lr: Option<f64>,
    /// Plot accuracy and loss per round to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// How the training set is split among the collaborators: strided (the seed's: collaborator
    /// i of n takes every n-th sample from i), iid, dirichlet:ALPHA (label skew, e.g.
    /// dirichlet:0.3), shards:K (K digits per collaborator) or quantity:ALPHA (size skew);
    /// dirichlet and quantity take a smallest share, e.g. dirichlet:0.1/min=20. Each
    /// collaborator's test samples follow its training labels: strided takes every n-th test
    /// sample as the seed does; the others cut each digit's test samples in proportion to the
    /// collaborators' training samples of that digit. A split that leaves a collaborator
    /// without training samples is refused before training. With --runtime federated the envoys
    /// hold the data: start each with the same --partition and --partition-seed (they refuse a
    /// run that asks for another).
    #[arg(long, value_name = "SPEC", default_value = "strided", value_parser = shares::parse_partition)]
    partition: Partitioner,
    /// Seed of --partition (strided ignores it).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARTITION_SEED)]
    partition_seed: u64,
    /// Draw each collaborator's training samples per digit as stacked bars to this file: .svg
    /// (names under the bars), or .png (the `plot` feature, on by default).
    #[arg(long, value_name = "FILE.svg|png")]
    histogram: Option<PathBuf>,
    /// Seed of the initial model.
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// Make a collaborator vanish at a step, e.g. Portland@decrypt_ciphertext (repeatable);
    /// NAME@STEP:restart makes it restart there instead: it drops out of that round, having lost
    /// its keys as a restarted envoy does, and is invited again from the next round.
    #[arg(long = "drop", value_name = "NAME@STEP[:restart]")]
    drops: Vec<Drop>,
    #[command(flatten)]
    mnist: MnistArgs,
    /// libtorch threads per operation. Default: the cores this process may use divided by the
    /// collaborators trained at once (1, or the --parallel workers), at least 1, so that training
    /// uses every core without oversubscribing it. On a machine busy with other work, threads
    /// that wait for each other can make rounds many times slower: use --threads 1 there.
    #[arg(long)]
    threads: Option<usize>,
    /// Where the collaborators train and validate: auto (the first CUDA device if libtorch
    /// sees one, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The federation's servers, built with this flow.
#[derive(Subcommand, Debug)]
enum Serve {
    /// The director: runs the aggregator's steps and coordinates the envoys.
    Director {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: String,
        /// The federation's certificate folder (uses director.pem).
        #[arg(long)]
        certs: PathBuf,
        /// A certificate deny list: one SHA-256 fingerprint per line (as `flspec-fed
        /// fingerprint` prints them), `#` comments allowed. A listed envoy or client is refused;
        /// the director reads the file again when it changes.
        #[arg(long, value_name = "FILE")]
        revoked: Option<PathBuf>,
        /// The hosting list: one line per envoy, its name then the collaborators it may host
        /// (`envoy --host`), separated by spaces; `#` comments.
        #[arg(long, value_name = "FILE")]
        hosts: Option<PathBuf>,
        /// Write a checkpoint of the aggregator's state after every step of every run to this
        /// folder.
        #[arg(long, conflicts_with = "state")]
        checkpoint: Option<PathBuf>,
        /// The director's state folder: each run's record and checkpoints. A director restarted
        /// after a crash (even SIGKILL) resumes every unfinished run from its last checkpoint
        /// (a SecAgg round in progress starts over with fresh keys) and still answers for the
        /// finished ones. One director at a time per folder.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// With --state: how long a resumed run waits for its envoys to register again before
        /// going on without those still missing (dropouts), in seconds.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        resume_wait_secs: u64,
        /// Serve Prometheus metrics (/metrics) and health probes (/healthz, /readyz) on this
        /// address, over plain HTTP without authentication: never a public address.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// Log lines as `text`, or `json`: one JSON object per line, naming the run, flow,
        /// step and participant on each line inside a run.
        #[arg(long, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// An envoy: runs one collaborator's steps next to its data.
    Envoy {
        /// The director's address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        director: String,
        /// The envoy's name (its certificate's name); the collaborator it serves unless --host
        /// or --hosts-file say otherwise.
        #[arg(long)]
        name: String,
        /// A collaborator this envoy hosts (repeatable), each with its own share of the data,
        /// private state and SecAgg signing key (envoys/NAME.secagg.*). The director must give
        /// them to this envoy in its --hosts list.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// As --host, one collaborator name per line (`#` comments).
        #[arg(long, value_name = "FILE")]
        hosts_file: Option<PathBuf>,
        /// The federation's certificate folder (uses envoys/NAME.pem).
        #[arg(long)]
        certs: PathBuf,
        /// How many collaborators share the data (this one takes its share by its position
        /// among Bengaluru, Portland, collaborator-003, ...; see --partition).
        #[arg(long, default_value_t = 2)]
        collaborators: usize,
        /// A full MNIST folder instead of the bundled subset.
        #[arg(long)]
        data: Option<PathBuf>,
        /// How the training set is split among the collaborators (see the run's --partition);
        /// every envoy and the run must give the same.
        #[arg(long, value_name = "SPEC", default_value = "strided", value_parser = shares::parse_partition)]
        partition: Partitioner,
        /// Seed of --partition; every envoy and the run must give the same.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_PARTITION_SEED)]
        partition_seed: u64,
        /// Vanish at this collaborator step (to see the dropout path).
        #[arg(long)]
        drop_at: Option<String>,
        /// libtorch threads per operation. Default: every core this process may use (one
        /// collaborator per envoy); when several envoys share a machine, divide its cores among
        /// them.
        #[arg(long)]
        threads: Option<usize>,
        /// Where the collaborators train and validate: auto (the first CUDA device if libtorch
        /// sees one, else the CPU), cpu, cuda or cuda:N.
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Log lines as `text`, or `json`: one JSON object per line, naming the run, flow,
        /// step and participant on each line inside a run.
        #[arg(long, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(args.serve.as_ref());
    if let Some(serve) = args.serve {
        return serve_federation(serve);
    }
    let data = args.mnist.load()?;
    let workers = args.parallel.unwrap_or(1).max(1);
    support::set_threads(args.threads, workers);
    let mut options = RunOptions::new(args.collaborators, Arc::new(data));
    options.settings.rounds = args.rounds;
    options.settings.secure = !args.no_secagg;
    options.settings.threshold = args.threshold.unwrap_or(0);
    options.settings.unsafe_allow_low_threshold = args.unsafe_allow_low_threshold;
    options.settings.neighbours = match args.secagg_plus {
        None => 0,
        Some(0) => flspec::secagg::Mode::secagg_plus_degree(args.collaborators),
        Some(k) => k,
    };
    options.settings.security = match args.secagg_security {
        SecAggSecurity::SemiHonest => flspec::secagg::Security::SemiHonest,
        SecAggSecurity::Malicious => flspec::secagg::Security::Malicious,
    };
    options.settings.dp = args.dp_epsilon.map(|epsilon| DpSettings {
        epsilon,
        delta: args.dp_delta,
        clip: args.dp_clip,
        min_survivors: args.dp_min_survivors.unwrap_or(0),
    });
    options.settings.local_epochs = args.local_epochs;
    options.settings.learning_rate = args.lr;
    options.settings.clip = args.clip;
    options.settings.max_samples = args.max_samples;
    options.settings.server_optimizer = match args.server_lr {
        Some(lr) => args
            .server_opt
            .with_server_lr(lr)
            .map_err(anyhow::Error::msg)?,
        None => args.server_opt,
    };
    options.seed = args.seed;
    options.workers = workers;
    options.checkpoint = args.checkpoint.clone();
    options.drops = args.drops.clone();
    options.device = args
        .device
        .resolve()
        .with_context(|| format!("`--device {}`", args.device))?;
    options.partition = args.partition;
    options.partition_seed = args.partition_seed;
    options.validate()?;
    print_partition(&options, args.histogram.as_deref())?;
    if args.runtime == RuntimeKind::Federated {
        println!(
            "(the envoys split their own --data the same way: start each with this --partition and --partition-seed)"
        );
        return run_federated(&args, &options);
    }

    let progress = Progress::new(args.rounds, args.collaborators, args.quiet);
    let runtime = options.local_runtime()?.observer(progress.observer());
    println!(
        "flspec SecAgg MNIST: {} collaborators ({}), {} round(s), {} on the local runtime",
        args.collaborators,
        options.collaborators.join(", "),
        args.rounds,
        mode(&options)
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
    print_results(&flow, &progress, started);
    if let Some(path) = &args.plot {
        report::plot(&flow.results, path)?;
        println!("plot: {}", path.display());
    }
    if let (Some(dir), Some(id)) = (&args.checkpoint, runtime.last_run_id()) {
        println!("checkpoints: {}", dir.join(id).display());
    }
    Ok(())
}

/// Prints each collaborator's label counts (and draws them with `--histogram`).
fn print_partition(options: &RunOptions, chart: Option<&std::path::Path>) -> anyhow::Result<()> {
    let shares = options.shares()?;
    println!(
        "training and test samples per collaborator and digit (`--partition {}`):",
        shares.label()
    );
    print!("{}", shares.table(&options.data, &options.collaborators)?);
    if let Some(path) = chart {
        let warning = report::histogram_chart(
            &shares.histogram(&options.data)?,
            &options.collaborators,
            path,
        )?;
        println!("histogram: {}", path.display());
        if let Some(warning) = warning {
            eprintln!("{warning}");
        }
    }
    Ok(())
}

fn mode(options: &RunOptions) -> String {
    let opt = options.settings.server_optimizer;
    let security = options.settings.security;
    let mut aggregation = match (options.settings.secure, options.settings.neighbours) {
        (false, _) if opt == ServerOpt::FedAvg => "plain FedAvg".to_string(),
        (false, _) => "plain aggregation".to_string(),
        (true, 0) => format!("secure aggregation ({security})"),
        (true, k) => format!("secure aggregation (SecAgg+, k = {k}, {security})"),
    };
    if let Some(dp) = &options.settings.dp {
        aggregation.push_str(&format!(
            ", distributed DP (epsilon {} at delta {:e}, clip {})",
            dp.epsilon, dp.delta, dp.clip
        ));
    }
    match opt {
        ServerOpt::FedAvg => aggregation,
        opt => format!("{aggregation}, server optimizer {opt}"),
    }
}

fn print_results(flow: &SecAggMnist, progress: &Progress, started: Instant) {
    print!(
        "{}",
        report::results_table(&flow.results, &progress.round_times())
    );
    for row in &flow.results {
        if !row.returned.is_empty() {
            println!(
                "round {}: came back after dropping out: {}",
                row.round,
                row.returned.join(", ")
            );
        }
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
}

/// Log lines to stderr (warnings for a run, info for the servers); an envoy also forwards its
/// lines to the program that submitted the run.
fn init_logs(serve: Option<&Serve>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| if serve.is_some() { "info" } else { "warn" }.into())
    };
    let forward =
        matches!(serve, Some(Serve::Envoy { .. })).then(flspec_federated::envoy::log_layer);
    let format = match serve {
        Some(Serve::Director { log_format, .. } | Serve::Envoy { log_format, .. }) => *log_format,
        None => LogFormat::Text,
    };
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let json = (format == LogFormat::Json)
        .then(|| flspec_federated::logs::json_layer(std::io::stderr).with_filter(filter()));
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(forward)
        .init();
}

/// Runs the flow through a director and its envoys.
fn run_federated(args: &Args, options: &RunOptions) -> anyhow::Result<()> {
    let Some(director) = &args.director else {
        bail!("`--runtime federated` needs the director's address: `--director HOST:PORT`");
    };
    if args.checkpoint.is_some() || args.parallel.is_some() || !args.drops.is_empty() {
        bail!(
            "with `--runtime federated`, checkpoints are the director's (`director --state` or `--checkpoint`), envoys run in parallel anyway, and a dropout is an envoy's `--drop-at`: drop `--checkpoint`, `--parallel` and `--drop` here"
        );
    }
    let tls = match &args.certs {
        Some(dir) => TlsConfig::from_dir(dir, "client")?,
        None => bail!(
            "`--runtime federated` needs the federation's certificates: `--certs DIR` (make them with `flspec-fed certs`)"
        ),
    };
    let progress = Progress::new(args.rounds, args.collaborators, args.quiet);
    let runtime = FederatedRuntime::connect(director, tls)
        .with_context(|| format!("connecting to the director at {director}"))?
        .collaborators(options.collaborators.clone())
        .observer(progress.observer());
    let envoys = runtime.envoys().context("listing the envoys")?;
    println!(
        "flspec SecAgg MNIST: {} collaborators ({}), {} round(s), {} through the director at {director} ({} envoys registered)",
        options.collaborators.len(),
        options.collaborators.join(", "),
        args.rounds,
        mode(options),
        envoys.len()
    );
    let started = Instant::now();
    let flow = options.initial_state()?.run(&runtime);
    progress.finish();
    let flow = flow.context("the federated run failed")?;
    println!("********** Federation results **********");
    print_results(&flow, &progress, started);
    if let Some(path) = &args.plot {
        report::plot(&flow.results, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// Serves as the director or as an envoy until stopped.
fn serve_federation(serve: Serve) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    match serve {
        Serve::Director {
            listen,
            certs,
            revoked,
            hosts,
            checkpoint,
            state,
            resume_wait_secs,
            admin,
            log_format: _,
        } => {
            let tls = TlsConfig::from_dir(&certs, "director")?;
            let registry = Registry::new().aggregator::<SecAggMnist>(Coordinator::default);
            let mut options = DirectorOptions::default();
            if let Some(path) = revoked {
                options = options.revocation_list(path);
            }
            options.checkpoint_dir = checkpoint;
            options.hosts_file = hosts;
            options.state_dir = state;
            options.resume_wait = std::time::Duration::from_secs(resume_wait_secs);
            options.admin_addr = admin;
            runtime.block_on(async {
                Director::start(&listen, tls, registry, options)
                    .await?
                    .wait()
                    .await
            })?;
        }
        Serve::Envoy {
            director,
            name,
            hosts,
            hosts_file,
            certs,
            collaborators,
            data,
            partition,
            partition_seed,
            drop_at,
            threads,
            device,
            log_format: _,
        } => {
            let device = device
                .resolve()
                .with_context(|| format!("`--device {device}`"))?;
            threads::set_num_threads(threads.unwrap_or_else(threads::available_cores));
            let names = collaborator_names(collaborators);
            let mut hosted = hosts;
            if let Some(file) = &hosts_file {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading `--hosts-file {}`", file.display()))?;
                hosted.extend(
                    text.lines()
                        .map(|l| l.split('#').next().unwrap_or_default().trim())
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
            if hosted.is_empty() {
                hosted.push(name.clone());
            }
            for site in &hosted {
                if !names.contains(site) {
                    bail!(
                        "collaborator `{site}` is not one of the {collaborators} collaborators: {}{}",
                        names.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                        if collaborators > 5 { ", ..." } else { "" }
                    );
                }
            }
            let data = Arc::new(support::load_mnist(data.as_deref(), false)?);
            let shares = Arc::new(Shares::new(
                &data,
                partition,
                collaborators,
                partition_seed,
            )?);
            let label = shares.label();
            let tls = TlsConfig::from_dir(&certs, &format!("envoys/{name}"))?;
            // The SecAgg signing identities, for malicious-secure runs; semi-honest runs work
            // without them (a federation made before signing certificates existed).
            let envoys = certs.join("envoys");
            let missing: Vec<&String> = hosted
                .iter()
                .filter(|site| !envoys.join(format!("{site}.secagg.crt")).exists())
                .collect();
            let trust = if missing.len() < hosted.len() {
                Some(Arc::new(SigningTrust::load(&certs)?))
            } else {
                None
            };
            if let Some(first) = missing.first() {
                tracing::warn!(
                    "no SecAgg signing certificate {} ({} of the {} hosted collaborators lack one): they can join only semi-honest runs; make them with `flspec-fed certs`",
                    envoys.join(format!("{first}.secagg.crt")).display(),
                    missing.len(),
                    hosted.len()
                );
            }
            let registry = Registry::new().try_flow::<SecAggMnist, anyhow::Error>(
                move |site: &str| -> anyhow::Result<Site> {
                    let index = names
                        .iter()
                        .position(|n| n == site)
                        .with_context(|| format!("`{site}` is not a collaborator"))?;
                    let share = shares.site_data(&data, index)?;
                    let mut built = Site::from_share(site, &share, &label, 42, drop_at.clone())?
                        .on_device(device)?;
                    let credentials = envoys.join(format!("{site}.secagg.crt"));
                    if let (true, Some(trust)) = (credentials.exists(), &trust) {
                        let identity = SigningCredentials::load(&envoys, site)?;
                        built = built.with_signing(SigningKeys::new(identity, Arc::clone(trust)));
                    }
                    Ok(built)
                },
            );
            let envoy = flspec_federated::Envoy::new(director, tls, name, registry).hosting(hosted);
            runtime.block_on(envoy.run())?;
        }
    }
    Ok(())
}

/// A progress bar over rounds and collaborators, and the time of each round.
struct Progress {
    bar: ProgressBar,
    round_ends: Arc<Mutex<Vec<Instant>>>,
    started: Instant,
}

impl Progress {
    fn new(rounds: u32, collaborators: usize, quiet: bool) -> Self {
        Progress {
            bar: support::progress_bar(u64::from(rounds) * collaborators as u64, quiet),
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

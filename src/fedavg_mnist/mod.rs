//! Plain (not secure) federated averaging of the seed's CNN on MNIST, as a library that the
//! `byzantine` and `fedprox_noniid` examples and their tests share: [`flow::FedAvgMnist`] (the
//! DSL flow), [`site::Site`] (a collaborator's private state), [`rule::Rule`] (the aggregator's
//! rule: mean, median, trimmed mean, Krum, Multi-Krum, Bulyan) and [`attack`] (Byzantine
//! collaborators).
//!
//! Each collaborator sends its own model, so the aggregator can use any rule, robust ones
//! included; the SecAgg MNIST flow ([`crate::secagg_mnist`]) hides them and can only average.
//!
//! ```no_run
//! use std::sync::Arc;
//! use flspec::Flow;
//! use flspec_examples::fedavg_mnist::{RunOptions, Rule};
//! use flspec_tch::datasets::mnist::Mnist;
//!
//! let mut options = RunOptions::new(10, Arc::new(Mnist::load_bundled()?));
//! options.settings.rule = Rule::Median;
//! options.partition = "dirichlet:0.3".parse()?;
//! options.attackers = vec!["collaborator-010:sign-flip".parse()?];
//! let flow = options.initial_state()?.run(&options.local_runtime()?)?;
//! println!("final accuracy {:.4}", flow.results.last().map_or(0.0, |r| r.accuracy));
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod attack;
pub mod flow;
pub mod rule;
pub mod site;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use flspec::fl::partition::{Partition, Partitioner};
use flspec_local::LocalRuntime;
use flspec_tch::datasets::mnist::{CLASSES, Mnist};
use flspec_tch::models::mnist_cnn::Net;
use tch::Device;

pub use crate::secagg_mnist::collaborator_names;
pub use attack::{Attack, Attacker};
pub use flow::{FedAvgMnist, ParticipantRow, RoundRow, Server, Settings, SiteReport};
pub use rule::Rule;
pub use site::Site;

/// How to run the flow locally.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Collaborator names (see [`collaborator_names`]).
    pub collaborators: Vec<String>,
    /// The data: loaded once, the training set partitioned across collaborators, the test set
    /// strided into their test shards and held whole by the aggregator.
    pub data: Arc<Mnist>,
    /// Public settings of the flow.
    pub settings: Settings,
    /// Seed of the initial model.
    pub seed: i64,
    /// How the training set is split across collaborators (default: strided, the seed's).
    pub partition: Partitioner,
    /// Seed of the partition.
    pub partition_seed: u64,
    /// Byzantine collaborators.
    pub attackers: Vec<Attacker>,
    /// Collaborators trained at once (1: one after the other).
    pub workers: usize,
    /// Checkpoint folder.
    pub checkpoint: Option<PathBuf>,
    /// Where the collaborators and the aggregator's validation run (from
    /// `flspec_tch::device::DeviceChoice::resolve`; default the CPU).
    pub device: Device,
    /// A JSON-lines file the aggregator appends each round's record to (see
    /// [`RoundRow::to_record`]), flushed per round.
    pub history_jsonl: Option<PathBuf>,
}

impl RunOptions {
    /// Options for `count` collaborators on `data` with default settings: the strided split,
    /// FedAvg, no attacker, one worker.
    pub fn new(count: usize, data: Arc<Mnist>) -> Self {
        RunOptions {
            collaborators: collaborator_names(count),
            data,
            settings: Settings::default(),
            seed: 42,
            partition: Partitioner::Strided,
            partition_seed: 42,
            attackers: Vec::new(),
            workers: 1,
            checkpoint: None,
            history_jsonl: None,
            device: Device::Cpu,
        }
    }

    /// Checks the options.
    ///
    /// # Errors
    /// No collaborator, an attacker that is not a collaborator or is named twice, or settings
    /// out of range ([`Settings::validate`]).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.collaborators.is_empty() {
            bail!("give at least one collaborator");
        }
        for (i, a) in self.attackers.iter().enumerate() {
            if !self.collaborators.contains(&a.name) {
                bail!(
                    "`--attack {a}`: no collaborator `{}`; collaborators: {}",
                    a.name,
                    self.collaborators.join(", ")
                );
            }
            if self.attackers[..i].iter().any(|b| b.name == a.name) {
                bail!(
                    "`--attack {a}`: collaborator `{}` already has an attack; give each attacker one",
                    a.name
                );
            }
        }
        self.settings.validate(self.collaborators.len())
    }

    /// The training set's partition across the collaborators.
    ///
    /// # Errors
    /// The partitioner's, e.g. too little data for the scheme.
    pub fn partition(&self) -> anyhow::Result<Partition> {
        self.partition
            .partition(
                self.data.train.labels(),
                CLASSES,
                self.collaborators.len(),
                self.partition_seed,
            )
            .with_context(|| format!("partitioning the training set with `{}`", self.partition))
    }

    /// The flow's initial state: the seed's model from `seed`.
    ///
    /// # Errors
    /// A libtorch error.
    pub fn initial_state(&self) -> anyhow::Result<FedAvgMnist> {
        let model = Net::new(self.seed)?.to_flat()?;
        Ok(FedAvgMnist::new(self.settings.clone(), model))
    }

    /// The local runtime for these options (the observer and run id are the caller's).
    ///
    /// # Errors
    /// As [`RunOptions::validate`] and [`RunOptions::partition`].
    pub fn local_runtime(&self) -> anyhow::Result<LocalRuntime<Site, Server>> {
        self.validate()?;
        let partition = Arc::new(self.partition()?);
        let names = self.collaborators.clone();
        let count = names.len();
        let data = Arc::clone(&self.data);
        let attackers = self.attackers.clone();
        let seed = self.seed;
        let device = self.device;
        let factory = move |name: &str| -> anyhow::Result<Site> {
            let index = names
                .iter()
                .position(|n| n == name)
                .with_context(|| format!("unknown collaborator `{name}`"))?;
            let train = data.train.subset(partition.site(index))?;
            let test = data.test.shard(index, count)?;
            let attack = attackers.iter().find(|a| a.name == name).map(|a| a.attack);
            let noise_seed = (seed as u64) ^ ((index as u64 + 1) << 32);
            Site::new(name, &train, &test, attack, noise_seed, device)
        };
        let test_data = Arc::clone(&self.data);
        let jsonl = self.history_jsonl.clone();
        let server = move || {
            let server = Server::new(Arc::clone(&test_data)).on_device(device);
            match &jsonl {
                Some(path) => server.with_jsonl(path),
                None => server,
            }
        };
        let mut runtime = LocalRuntime::try_new(self.collaborators.clone(), factory)
            .with_aggregator(server)
            .parallel(self.workers);
        if let Some(dir) = &self.checkpoint {
            runtime = runtime.checkpoint_dir(dir);
        }
        Ok(runtime)
    }
}

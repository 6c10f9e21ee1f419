//! The SecAgg MNIST flow of `cargo run --example secagg_mnist`, as a library so that tests and
//! benchmarks run the very same flow: [`flow::SecAggMnist`] (the DSL flow), [`site::Site`] (a
//! collaborator's private state), [`update`] (what travels inside the masked vector) and
//! [`report`] (the results table and plots) and [`shares`] (which samples each collaborator
//! holds: `--partition`).

pub mod flow;
pub mod private_update;
pub mod report;
pub mod server_opt;
pub mod shares;
pub mod site;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use flspec::Flow;
use flspec_local::LocalRuntime;

pub use flow::{Coordinator, RoundRow, SecAggMnist, Settings};
use flspec::fl::partition::Partitioner;
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::models::mnist_cnn::Net;
pub use server_opt::ServerOpt;
pub use shares::Shares;
pub use site::Site;

/// The seed tutorial's collaborators, then generated names.
pub fn collaborator_names(count: usize) -> Vec<String> {
    const SEED_NAMES: [&str; 2] = ["Bengaluru", "Portland"];
    (0..count)
        .map(|i| match SEED_NAMES.get(i) {
            Some(name) => (*name).to_string(),
            None => format!("collaborator-{:03}", i + 1),
        })
        .collect()
}

/// A collaborator that vanishes at a step (`--drop NAME@STEP`), or restarts there
/// (`--drop NAME@STEP:restart`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drop {
    /// The collaborator.
    pub name: String,
    /// The collaborator step at which it vanishes.
    pub step: String,
    /// Whether it comes back: it drops out of that round only, having lost what a restarted
    /// envoy loses (its SecAgg keys and its peers' signing certificates), and is invited again
    /// from the next round.
    pub restart: bool,
}

impl std::str::FromStr for Drop {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let Some((name, step)) = s.split_once('@') else {
            bail!(
                "`--drop {s}`: expected NAME@STEP or NAME@STEP:restart, e.g. Portland@decrypt_ciphertext"
            );
        };
        let (step, restart) = match step.split_once(':') {
            None => (step, false),
            Some((step, "restart")) => (step, true),
            Some((_, other)) => bail!(
                "`--drop {s}`: `:{other}` is not a drop mode; NAME@STEP vanishes for good, NAME@STEP:restart comes back in the next round"
            ),
        };
        Ok(Drop {
            name: name.to_string(),
            step: step.to_string(),
            restart,
        })
    }
}

/// How to run the flow locally.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Collaborator names, in the order of the partition's sites.
    pub collaborators: Vec<String>,
    /// The data: loaded once and split among the collaborators by `partition`.
    pub data: Arc<Mnist>,
    /// How the training set is split (default [`Partitioner::Strided`]: collaborator `i` of `n`
    /// takes every `n`-th sample from `i`); the test set follows (see [`shares`]).
    pub partition: Partitioner,
    /// The partition's seed (default [`shares::DEFAULT_PARTITION_SEED`]; `strided` ignores it).
    pub partition_seed: u64,
    /// Public settings of the flow.
    pub settings: Settings,
    /// Seed of the initial model.
    pub seed: i64,
    /// Collaborators trained at once (1: one after the other).
    pub workers: usize,
    /// Checkpoint folder.
    pub checkpoint: Option<PathBuf>,
    /// Collaborators that vanish at a step.
    pub drops: Vec<Drop>,
    /// Where the collaborators train and validate (`--device`; default the CPU).
    pub device: tch::Device,
}

impl RunOptions {
    /// Options for `count` collaborators on `data` with default settings.
    pub fn new(count: usize, data: Arc<Mnist>) -> Self {
        RunOptions {
            collaborators: collaborator_names(count),
            data,
            partition: Partitioner::Strided,
            partition_seed: shares::DEFAULT_PARTITION_SEED,
            settings: Settings::default(),
            seed: 42,
            workers: 1,
            checkpoint: None,
            drops: Vec::new(),
            device: tch::Device::Cpu,
        }
    }

    /// Checks the options against the flow.
    ///
    /// # Errors
    /// An unknown collaborator or step in a `--drop`, no collaborator, a threshold out of range
    /// or (without [`Settings::unsafe_allow_low_threshold`]) at or below half of the group that
    /// shares secrets, or a partition that fails or leaves a collaborator without training
    /// samples or with more than `--max-samples` (see [`RunOptions::shares`]).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.collaborators.is_empty() {
            bail!("give at least one collaborator");
        }
        self.validate_threshold()?;
        self.shares()?;
        let graph = SecAggMnist::graph();
        let steps: Vec<&str> = graph
            .steps()
            .iter()
            .filter(|s| s.role() == flspec::Role::Collaborator)
            .map(|s| s.name())
            .collect();
        for d in &self.drops {
            if !self.collaborators.contains(&d.name) {
                bail!(
                    "`--drop {}@{}`: no collaborator `{}`; collaborators: {}",
                    d.name,
                    d.step,
                    d.name,
                    self.collaborators.join(", ")
                );
            }
            if !steps.contains(&d.step.as_str()) {
                bail!(
                    "`--drop {}@{}`: `{}` is not a collaborator step; steps: {}",
                    d.name,
                    d.step,
                    d.step,
                    steps.join(", ")
                );
            }
        }
        Ok(())
    }

    /// Which samples each collaborator holds.
    ///
    /// # Errors
    /// The partitioner's error (naming `--partition`), or a collaborator left without training
    /// samples or with more than [`Settings::max_samples`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flspec_examples::secagg_mnist::RunOptions;
    /// use flspec_examples::secagg_mnist::shares::parse_partition;
    /// use flspec_tch::datasets::mnist::Mnist;
    ///
    /// let mut options = RunOptions::new(5, Arc::new(Mnist::load_bundled()?));
    /// options.partition = parse_partition("dirichlet:0.3")?;
    /// print!("{}", options.shares()?.table(&options.data, &options.collaborators)?);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn shares(&self) -> anyhow::Result<Shares> {
        let shares = Shares::new(
            &self.data,
            self.partition,
            self.collaborators.len(),
            self.partition_seed,
        )?;
        let max = self.settings.max_samples as usize;
        if let Some((i, site)) = shares
            .train()
            .sites()
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() > max)
        {
            bail!(
                "`--partition {}` gives `{}` {} training samples, more than `--max-samples {max}`; raise `--max-samples`",
                shares.label(),
                self.collaborators[i],
                site.len()
            );
        }
        Ok(shares)
    }

    /// The group a secret is shared in: every collaborator, or a closed neighbourhood of
    /// `k + 1` in SecAgg+ (`settings.neighbours = k`).
    fn secret_group(&self) -> (usize, String) {
        match self.settings.neighbours {
            0 => {
                let n = self.collaborators.len();
                (n, format!("the {n} collaborators"))
            }
            k => {
                let size = k as usize + 1;
                (
                    size,
                    format!("each SecAgg+ neighbourhood of k + 1 = {size} collaborators"),
                )
            }
        }
    }

    /// Refuses a `--threshold` the round would refuse (below 2 or above the group), and one at
    /// or below half of the group unless the unsafe opt-out is set.
    /// Malicious-secure runs on the local runtime: a CA made for this run alone, and one
    /// signing certificate per collaborator issued by it (the PKI the federated runtime gets
    /// from `flspec-fed certs`). `None` for semi-honest runs.
    fn run_identities(&self) -> anyhow::Result<Option<Arc<site::RunIdentities>>> {
        if !self.settings.secure || self.settings.security != flspec::secagg::Security::Malicious {
            return Ok(None);
        }
        Ok(Some(Arc::new(site::RunIdentities::new(
            &self.collaborators,
        )?)))
    }

    fn validate_threshold(&self) -> anyhow::Result<()> {
        let t = self.settings.threshold;
        if !self.settings.secure || t == 0 {
            return Ok(());
        }
        if self.settings.security == flspec::secagg::Security::Malicious {
            let (size, group) = self.secret_group();
            let least =
                flspec::secagg::min_malicious_threshold(u32::try_from(size).unwrap_or(u32::MAX));
            if t < least || t as usize > size {
                bail!(
                    "`--threshold {t}`: malicious-secure SecAgg needs a threshold above 2/3 of {group}, from {least} to {size}; leave it out for the default ({least})"
                );
            }
            return Ok(());
        }
        let (size, group) = self.secret_group();
        let group_size = u32::try_from(size).unwrap_or(u32::MAX);
        if t < 2 || t > group_size {
            bail!(
                "`--threshold {t}`: the threshold must lie between 2 and the size of {group}; leave it out for the default ({})",
                flspec::secagg::min_safe_threshold(group_size)
            );
        }
        let safe = flspec::secagg::min_safe_threshold(group_size);
        if t < safe && !self.settings.unsafe_allow_low_threshold {
            bail!(
                "`--threshold {t}` is at or below half of {group}: a malicious or inconsistent aggregator that sends different unmask requests to two groups of collaborators could then rebuild both secrets of one collaborator and unmask its update. Use `--threshold {safe}` or more (or leave it out: {safe} is the default); to accept the risk for an experiment, add `--unsafe-allow-low-threshold`"
            );
        }
        Ok(())
    }

    /// The flow's initial state: the seed's model from `seed`, and the settings with the
    /// partition's name ([`shares::label`]) that every collaborator checks its data against.
    ///
    /// # Errors
    /// A libtorch error.
    pub fn initial_state(&self) -> anyhow::Result<SecAggMnist> {
        let model = Net::new(self.seed)?.to_flat()?;
        let mut settings = self.settings.clone();
        settings.partition = shares::label(&self.partition, self.partition_seed);
        Ok(SecAggMnist::new(settings, model))
    }

    /// Collaborator `name`'s training and test data, as the local runtime gives it.
    ///
    /// # Errors
    /// An unknown collaborator, or as [`RunOptions::shares`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use flspec_examples::secagg_mnist::RunOptions;
    /// # use flspec_tch::datasets::mnist::Mnist;
    /// let options = RunOptions::new(2, Arc::new(Mnist::load_bundled()?));
    /// // The default split is the seed's: every other sample.
    /// assert_eq!(options.site_data("Portland")?, options.data.shard(1, 2)?);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn site_data(&self, name: &str) -> anyhow::Result<Mnist> {
        let index = self.index(name)?;
        self.shares()?.site_data(&self.data, index)
    }

    fn index(&self, name: &str) -> anyhow::Result<usize> {
        self.collaborators
            .iter()
            .position(|n| n == name)
            .with_context(|| format!("unknown collaborator `{name}`"))
    }

    /// The local runtime for these options (the observer and run id are the caller's).
    ///
    /// # Errors
    /// As [`RunOptions::validate`].
    pub fn local_runtime(&self) -> anyhow::Result<LocalRuntime<Site, Coordinator>> {
        self.validate()?;
        let names = self.collaborators.clone();
        let shares = self.shares()?;
        let partition = shares.label();
        let data = Arc::clone(&self.data);
        let seed = self.seed;
        let drops = self.drops.clone();
        let device = self.device;
        let signing = self.run_identities()?;
        let factory = move |name: &str| -> anyhow::Result<Site> {
            let index = names
                .iter()
                .position(|n| n == name)
                .with_context(|| format!("unknown collaborator `{name}`"))?;
            let drop = drops.iter().find(|d| d.name == name);
            let share = shares.site_data(&data, index)?;
            let mut site = Site::from_share(name, &share, &partition, seed, None)?;
            if let Some(drop) = drop {
                site = site.drop_at(&drop.step, drop.restart);
            }
            let site = site.on_device(device)?;
            Ok(match &signing {
                Some(identities) => site.with_signing(identities.keys_of(name)?),
                None => site,
            })
        };
        let mut runtime = LocalRuntime::try_new(self.collaborators.clone(), factory)
            .with_aggregator(Coordinator::default)
            .parallel(self.workers);
        if let Some(dir) = &self.checkpoint {
            runtime = runtime.checkpoint_dir(dir);
        }
        Ok(runtime)
    }
}

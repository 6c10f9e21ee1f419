//! The plain federated-averaging MNIST flow, written with the public DSL only.
//!
//! Per round: the aggregator sends the global model and the round's settings to every
//! collaborator (`start`, then `join` for later rounds); each collaborator validates the global
//! model on its test shard, trains it for the round's local epochs on its partition (with
//! FedProx's proximal term when `mu > 0`), validates the result, and sends its model and a
//! report (`train`); the aggregator combines the models with its [`Rule`], validates the new
//! global model on the full test set it holds, and records the round (`join`).
//!
//! Each collaborator's model travels in the clear: the robust rules need each one, which secure
//! aggregation would hide (it gives only the sum). A Byzantine collaborator's attack lives in its
//! private state ([`Site`]) and runs inside its own step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use flspec::BoxError;
use flspec::fl::history::{History, HistoryWriter, ParticipantRecord, RoundRecord};
use flspec::fl::schedule::{EpochSchedule, LrSchedule};
use flspec::prelude::*;
use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::fedprox::Proximal;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{Batches, TrainConfig, train_one_epoch_with, validate_on};
use tch::Device;

use super::rule::Rule;
use super::site::Site;

/// Samples per validation batch.
const EVAL_BATCH: usize = 1000;

/// Public settings of a run; they travel to the collaborators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Training rounds.
    pub rounds: u32,
    /// Local epochs per round (a schedule over rounds, e.g. `1` or `piecewise:0=2,10=1`).
    pub epochs: EpochSchedule,
    /// The collaborators' SGD learning rate per round (e.g. `0.01` or
    /// `step:0.05,every=5,gamma=0.5`).
    pub learning_rate: LrSchedule,
    /// The collaborators' SGD momentum.
    pub momentum: f64,
    /// Samples per training batch.
    pub batch_size: usize,
    /// FedProx's `mu` (0: plain FedAvg).
    pub mu: f64,
    /// How the aggregator combines the models.
    pub rule: Rule,
}

impl Default for Settings {
    /// The seed tutorial's training (one epoch, SGD 0.01 with momentum 0.5, batches of 32),
    /// 2 rounds, FedAvg.
    fn default() -> Self {
        let train = TrainConfig::default();
        Settings {
            rounds: 2,
            epochs: EpochSchedule::constant(1).expect("1 epoch is a valid schedule"),
            learning_rate: LrSchedule::constant(train.learning_rate)
                .expect("the seed's learning rate is a valid schedule"),
            momentum: train.momentum,
            batch_size: train.batch_size,
            mu: 0.0,
            rule: Rule::Mean,
        }
    }
}

impl Settings {
    /// Checks the settings against `collaborators` collaborators.
    ///
    /// # Errors
    /// A setting out of range, or a rule that needs more collaborators.
    pub fn validate(&self, collaborators: usize) -> anyhow::Result<()> {
        if self.batch_size == 0 {
            anyhow::bail!("`--batch-size 0`: the batch size must be at least 1");
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            anyhow::bail!("momentum {}: it must be in [0, 1), e.g. 0.5", self.momentum);
        }
        if !(self.mu.is_finite() && self.mu >= 0.0) {
            anyhow::bail!(
                "FedProx mu {}: it must be a finite number >= 0 (0 is plain FedAvg)",
                self.mu
            );
        }
        let needed = self.rule.min_updates();
        if collaborators < needed {
            anyhow::bail!(
                "rule `{}` needs at least {needed} collaborators' updates, but the run has {collaborators}; lower F or add collaborators",
                self.rule
            );
        }
        if let Rule::MultiKrum { m, .. } = self.rule
            && m > collaborators
        {
            anyhow::bail!(
                "rule `{}` averages {m} updates, but the run has {collaborators} collaborators",
                self.rule
            );
        }
        Ok(())
    }

    /// The collaborators' training configuration in `round` (from 0).
    pub fn train_config(&self, round: u32) -> TrainConfig {
        TrainConfig {
            learning_rate: self.learning_rate.at(u64::from(round)),
            momentum: self.momentum,
            batch_size: self.batch_size,
        }
    }
}

/// What a collaborator reports with its model (collaborator → aggregator).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteReport {
    /// Training samples (the model's weight in the mean).
    pub samples: u64,
    /// Mean training loss of the last local epoch (the data loss, without FedProx's term).
    pub loss: f64,
    /// Accuracy of the global model it received, on its test shard.
    pub global_accuracy: f64,
    /// Accuracy of its trained model, on its test shard.
    pub local_accuracy: f64,
    /// `‖local − global‖₂` of its trained model (before any attack): how far training moved it.
    pub distance: f64,
    /// FedProx's term `mu/2 · ‖local − global‖²` after training (0 for FedAvg).
    pub proximal_term: f64,
    /// Test samples in its shard.
    pub test_samples: u64,
    /// Seconds the step took (validation, training, validation).
    pub seconds: f64,
}

/// One collaborator's part in a round.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRow {
    /// The collaborator.
    pub name: String,
    /// What it reported.
    pub report: SiteReport,
}

impl ParticipantRow {
    /// The row as a [`ParticipantRecord`] of a run's [`History`]: loss, accuracy (the local
    /// model's), samples and seconds, plus the extra metrics `global_accuracy`, `test_samples`,
    /// `distance`, `proximal_term`, and `rejected` (1) if its model was left out.
    pub fn to_record(&self, rejected: bool) -> ParticipantRecord {
        let r = &self.report;
        let mut record = ParticipantRecord::new(&self.name)
            .loss(r.loss)
            .accuracy(r.local_accuracy)
            .samples(r.samples)
            .seconds(r.seconds)
            .metric("global_accuracy", r.global_accuracy)
            .metric("test_samples", r.test_samples as f64)
            .metric("distance", r.distance)
            .metric("proximal_term", r.proximal_term);
        if rejected {
            record = record.metric("rejected", 1.0);
        }
        record
    }
}

/// One round of the results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    /// Round number, from 0.
    pub round: u32,
    /// Accuracy of the new global model on the aggregator's full test set.
    pub accuracy: f64,
    /// Mean training loss, weighted by training samples.
    pub train_loss: f64,
    /// Accuracy of the local models on their test shards, weighted by test samples.
    pub local_accuracy: f64,
    /// Training samples in the round.
    pub samples: u64,
    /// The learning rate of the round.
    pub learning_rate: f64,
    /// Local epochs of the round.
    pub epochs: usize,
    /// Collaborators whose model held a NaN or an infinity and was left out.
    pub rejected: Vec<String>,
    /// Seconds from sending the model to the new global model's validation.
    pub seconds: f64,
    /// Each collaborator's report, in collaborator order.
    pub participants: Vec<ParticipantRow>,
}

impl RoundRow {
    /// The row as a [`RoundRecord`] of a run's [`History`], numbered from 1 (Flower's rounds):
    /// accuracy (the new global model's), loss (the mean training loss), seconds, plus the
    /// extra metrics `local_accuracy`, `samples`, `learning_rate`, `epochs`, `rejected` (how
    /// many models were left out), and one [`ParticipantRow::to_record`] per collaborator.
    pub fn to_record(&self) -> RoundRecord {
        let mut record = RoundRecord::new(u64::from(self.round) + 1);
        record
            .accuracy(self.accuracy)
            .loss(self.train_loss)
            .seconds(self.seconds)
            .metric("local_accuracy", self.local_accuracy)
            .metric("samples", self.samples as f64)
            .metric("learning_rate", self.learning_rate)
            .metric("epochs", self.epochs as f64)
            .metric("rejected", self.rejected.len() as f64);
        for p in &self.participants {
            record.participant(p.to_record(self.rejected.contains(&p.name)));
        }
        record
    }
}

/// The flow state: what travels between the aggregator and the collaborators, as each
/// transition's `include` list says.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct FedAvgMnist {
    /// Public settings.
    pub settings: Settings,
    /// The current round.
    pub round: u32,
    /// The global model, as [`Net::to_flat`] lays it out.
    pub model: Vec<f32>,
    /// Collaborator → aggregator: its model after training (or its attack's).
    pub update: Vec<f32>,
    /// Collaborator → aggregator: what it measured.
    pub report: SiteReport,
    /// The results (aggregator only).
    pub results: Vec<RoundRow>,
}

impl FedAvgMnist {
    /// A run with these settings starting from `model`.
    pub fn new(settings: Settings, model: Vec<f32>) -> Self {
        FedAvgMnist {
            settings,
            model,
            ..Default::default()
        }
    }

    /// The results as a [`History`] (see [`RoundRow::to_record`]), for JSON lines, CSV and
    /// plots.
    pub fn history(&self) -> History {
        let mut history = History::new();
        for row in &self.results {
            history.push(row.to_record());
        }
        history
    }
}

/// The aggregator's private state: the full test set and a model to validate the global model
/// with, when the round started, and where to append each round's record as a JSON line.
pub struct Server {
    data: Arc<Mnist>,
    device: Device,
    eval: Option<(Net, Batches)>,
    round_started: Option<Instant>,
    jsonl_path: Option<PathBuf>,
    jsonl: Option<HistoryWriter>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("test", &self.data.test.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// An aggregator that validates on `data.test` (converted on the first round), on the CPU.
    pub fn new(data: Arc<Mnist>) -> Self {
        Server {
            data,
            device: Device::Cpu,
            eval: None,
            round_started: None,
            jsonl_path: None,
            jsonl: None,
        }
    }

    /// Validates on `device` instead of the CPU.
    pub fn on_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Also writes each round's [`RoundRow::to_record`] to `path` as a JSON line, flushed per
    /// round (the file is created, or truncated, when the run starts).
    pub fn with_jsonl(mut self, path: impl Into<PathBuf>) -> Self {
        self.jsonl_path = Some(path.into());
        self
    }

    /// The accuracy of `model` on the full test set.
    fn validate(&mut self, model: &[f32]) -> Result<f64, BoxError> {
        if self.eval.is_none() {
            self.eval = Some((
                Net::new_on(0, self.device)?,
                Batches::new(&self.data.test)?.to_device(self.device)?,
            ));
        }
        let (net, test) = self
            .eval
            .as_mut()
            .ok_or("the aggregator's test set is missing")?;
        net.set_flat(model)?;
        Ok(validate_on(net, test, EVAL_BATCH)?)
    }
}

/// A site's noise seed for one round.
fn round_seed(seed: u64, round: u32) -> u64 {
    seed ^ u64::from(round).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

#[flow(collaborator = Site, aggregator = Server)]
impl FedAvgMnist {
    /// Sends the initial model to every collaborator.
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, server: &mut Server) -> Result<Next<Self>, BoxError> {
        if let Some(path) = &server.jsonl_path {
            server.jsonl = Some(HistoryWriter::create(path)?);
        }
        server.round_started = Some(Instant::now());
        Ok(next!(
            self.train,
            foreach = ctx.collaborators().to_vec(),
            include = [settings, round, model]
        ))
    }

    /// Validates the global model on the test shard, trains it on the local data, validates
    /// the result, and sends it (or the attack's vector).
    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        let started = Instant::now();
        site.net.set_flat(&self.model)?;
        let global_accuracy = validate_on(&site.net, &site.test, EVAL_BATCH)?;
        let config = self.settings.train_config(self.round);
        let proximal = if self.settings.mu > 0.0 {
            Some(Proximal::new(site.net.parameters(), self.settings.mu)?)
        } else {
            None
        };
        let mut loss = 0.0;
        for _ in 0..self.settings.epochs.at(u64::from(self.round)) {
            loss = train_one_epoch_with(&mut site.net, &site.train, &config, proximal.as_ref())?;
        }
        let local_accuracy = validate_on(&site.net, &site.test, EVAL_BATCH)?;
        let mut update = site.net.to_flat()?;
        let distance = update
            .iter()
            .zip(&self.model)
            .map(|(l, g)| (f64::from(*l) - f64::from(*g)).powi(2))
            .sum::<f64>()
            .sqrt();
        if let Some(attack) = site.attack {
            attack.apply(
                &self.model,
                &mut update,
                round_seed(site.noise_seed, self.round),
            );
        }
        self.update = update;
        self.report = SiteReport {
            samples: site.train.len() as u64,
            loss,
            global_accuracy,
            local_accuracy,
            distance,
            proximal_term: self.settings.mu / 2.0 * distance * distance,
            test_samples: site.test.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(next!(self.join, include = [update, report]))
    }

    /// Combines the models with the rule, validates the new global model, records the round,
    /// and starts the next one.
    #[aggregator]
    fn join(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        server: &mut Server,
    ) -> Result<Next<Self>, BoxError> {
        let mut rejected = Vec::new();
        let mut updates: Vec<(&[f32], f64)> = Vec::with_capacity(inputs.len());
        for input in &inputs {
            if input.update.len() != self.model.len() {
                return Err(format!(
                    "collaborator `{}` sent {} values, but the model has {}",
                    input.name(),
                    input.update.len(),
                    self.model.len()
                )
                .into());
            }
            if input.update.iter().all(|v| v.is_finite()) {
                updates.push((&input.update, input.report.samples as f64));
            } else {
                rejected.push(input.name().to_string());
            }
        }
        if updates.is_empty() {
            return Err(format!(
                "round {}: every collaborator's model holds a NaN or an infinity; lower the learning rate",
                self.round
            )
            .into());
        }
        let mut model = vec![0.0f32; self.model.len()];
        self.settings.rule.aggregate(&updates, &mut model)?;
        let accuracy = server.validate(&model)?;
        self.model = model;

        let reports = || inputs.iter().map(|i| &i.report);
        let samples: u64 = reports().map(|r| r.samples).sum();
        let test_samples: u64 = reports().map(|r| r.test_samples).sum();
        let weighted = |f: fn(&SiteReport) -> f64, w: fn(&SiteReport) -> u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                reports().map(|r| f(r) * w(r) as f64).sum::<f64>() / total as f64
            }
        };
        self.results.push(RoundRow {
            round: self.round,
            accuracy,
            train_loss: weighted(|r| r.loss, |r| r.samples, samples),
            local_accuracy: weighted(|r| r.local_accuracy, |r| r.test_samples, test_samples),
            samples,
            learning_rate: self.settings.learning_rate.at(u64::from(self.round)),
            epochs: self.settings.epochs.at(u64::from(self.round)),
            rejected,
            seconds: server
                .round_started
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            participants: inputs
                .iter()
                .map(|i| ParticipantRow {
                    name: i.name().to_string(),
                    report: i.report.clone(),
                })
                .collect(),
        });
        if let (Some(writer), Some(row)) = (server.jsonl.as_mut(), self.results.last()) {
            writer.write(&row.to_record())?;
        }
        self.update = Vec::new();
        self.report = SiteReport::default();
        self.round += 1;
        if self.round < self.settings.rounds {
            server.round_started = Some(Instant::now());
            Ok(next!(
                self.train,
                foreach = ctx.collaborators().to_vec(),
                include = [settings, round, model]
            ))
        } else {
            Ok(next!(self.end))
        }
    }

    /// The end of the flow.
    #[aggregator]
    fn end(&mut self) {}
}

/// The join driven directly, as the runtime would, with hand-made updates.
#[cfg(test)]
mod tests {
    use super::*;
    use flspec_tch::datasets::mnist::Dataset;
    use flspec_tch::models::mnist_cnn::NUM_PARAMETERS;

    fn server() -> Server {
        let blank = || Dataset::new(vec![0; 4 * 784], vec![0, 1, 2, 3]);
        Server::new(Arc::new(Mnist {
            train: blank(),
            test: blank(),
        }))
    }

    fn input(name: &str, value: f32, samples: u64) -> Input<FedAvgMnist> {
        let state = FedAvgMnist {
            update: vec![value; NUM_PARAMETERS],
            report: SiteReport {
                samples,
                ..SiteReport::default()
            },
            ..FedAvgMnist::default()
        };
        Input::new(name, state)
    }

    fn join(rule: Rule, inputs: Vec<Input<FedAvgMnist>>) -> Result<FedAvgMnist, BoxError> {
        let names: Vec<String> = inputs.iter().map(|i| i.name().to_string()).collect();
        let settings = Settings {
            rounds: 1,
            rule,
            ..Settings::default()
        };
        let mut flow = FedAvgMnist::new(settings, vec![0.0; NUM_PARAMETERS]);
        let ctx = Ctx::aggregator("FedAvgMnist", "test", &names);
        let _next = flow.join(&ctx, Inputs::new(inputs), &mut server())?;
        Ok(flow)
    }

    #[test]
    fn a_model_with_a_nan_is_left_out_and_named() {
        let mut poisoned = input("c", 0.0, 100);
        poisoned.update[7] = f32::NAN;
        let flow = join(
            Rule::Mean,
            vec![input("a", 1.0, 100), input("b", 4.0, 300), poisoned],
        )
        .expect("the join runs");
        let row = &flow.results[0];
        assert_eq!(row.rejected, ["c"]);
        // The mean of the other two, weighted by their samples: (1·100 + 4·300) / 400.
        assert!(flow.model.iter().all(|&v| v == 3.25), "{}", flow.model[0]);
        assert_eq!(row.samples, 500);
        assert_eq!(row.participants.len(), 3);
        assert_eq!(flow.history().rounds()[0].value("rejected"), Some(1.0));
    }

    #[test]
    fn the_rule_decides_and_all_non_finite_models_are_an_error() {
        let flow = join(
            Rule::Median,
            vec![input("a", 1.0, 1), input("b", 2.0, 1), input("c", 90.0, 1)],
        )
        .expect("the join runs");
        assert!(flow.model.iter().all(|&v| v == 2.0));
        let err = join(
            Rule::Median,
            vec![input("a", f32::INFINITY, 1), input("b", f32::NAN, 1)],
        )
        .err()
        .expect("no finite model");
        assert!(
            err.to_string().contains("every collaborator's model"),
            "{err}"
        );
        let mut short = input("b", 1.0, 1);
        short.update.pop();
        let err = join(Rule::Mean, vec![input("a", 1.0, 1), short])
            .err()
            .expect("a short update");
        assert!(
            err.to_string()
                .contains("collaborator `b` sent 21839 values"),
            "{err}"
        );
    }
}

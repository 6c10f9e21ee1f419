//! The SecAgg MNIST flow, written with the public DSL only.
//!
//! Per round: each collaborator validates the aggregated model, trains one epoch and validates
//! its local model (the seed's steps); then, under secure aggregation, it makes fresh keys
//! (`generate_keys`), the aggregator numbers the collaborators and broadcasts their public keys
//! (`generate_collaborator_index`), each collaborator encrypts Shamir shares of its secrets for
//! its peers (`generate_ciphertexts`), the aggregator routes each collaborator only the
//! ciphertexts addressed to it (`filter_ciphertexts`), each collaborator decrypts them and sends
//! its masked contribution (`decrypt_ciphertext`), the aggregator asks the survivors for the
//! shares it needs (`reconstruct`), they reveal them (`reveal_shares`), and the aggregator
//! removes the masks and averages the sum (`join`).
//!
//! The seed runs its key exchange once, before training, and lets the aggregator rebuild every
//! collaborator's secrets; here keys are fresh each round and the aggregator only ever holds
//! shares it may hold, so it learns the sum and nothing else. Everything it averages (every
//! parameter, the loss times the sample count, the validation counts, the sample count) travels
//! inside the masked vector ([`super::update`]).

use flspec::prelude::*;
use flspec::secagg::{self, ClientId, Mode, Quantizer};
use flspec::{BoxError, PerCollaborator};
use rand_core::{OsRng, RngCore};

use super::server_opt::{ServerOpt, ServerState};
use super::site::Site;
use super::update::{self, Measurements};
use flspec_tch::train::{train_one_epoch_on, validate_on};

/// Public settings of a run; they travel to the collaborators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Training rounds.
    pub rounds: u32,
    /// Secure aggregation on (`false`: plain FedAvg, `--no-secagg`).
    pub secure: bool,
    /// Shamir threshold; 0 picks [`secagg::min_safe_threshold`] of the group (`n / 2 + 1`, at
    /// least 2; per neighbourhood in SecAgg+) each round.
    pub threshold: u32,
    /// Accept a threshold at or below half of the group (`--unsafe-allow-low-threshold`).
    ///
    /// # Security
    /// With such a threshold a malicious or inconsistent aggregator, by sending different
    /// unmask requests to two groups of collaborators, can rebuild both secrets of one
    /// collaborator and recover its update. For experiments only.
    #[serde(default)]
    pub unsafe_allow_low_threshold: bool,
    /// SecAgg+ neighbours per collaborator; 0 for the full graph.
    pub neighbours: u32,
    /// Parameters are clipped to `[-clip, clip]` before aggregation.
    pub clip: f32,
    /// The most training samples a collaborator may hold (sample counts are sent as fractions
    /// of it).
    pub max_samples: u32,
    /// The server optimizer that turns each round's sum into the next global model (FedAvg:
    /// the weighted mean, the seed's). Its state stays in the aggregator's [`Coordinator`].
    #[serde(default)]
    pub server_optimizer: ServerOpt,
    /// How the data is split among the collaborators (`--partition`, `--partition-seed`), as
    /// [`super::shares::label`] names it. Each collaborator checks it against the partition its
    /// data came from before it trains, so that envoys started with another `--partition` refuse
    /// the run instead of training on overlapping data.
    #[serde(default = "strided")]
    pub partition: String,
}

fn strided() -> String {
    "strided".to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rounds: 2,
            secure: true,
            threshold: 0,
            unsafe_allow_low_threshold: false,
            neighbours: 0,
            clip: 4.0,
            max_samples: 60_000,
            server_optimizer: ServerOpt::FedAvg,
            partition: strided(),
        }
    }
}

/// One row of the results table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    /// Round number, from 0.
    pub round: u32,
    /// Accuracy of the aggregated model at the start of the round, over all test shards.
    pub agg_accuracy: f64,
    /// Mean training loss, weighted by sample count.
    pub train_loss: f64,
    /// Accuracy of the local models after training, over all test shards.
    pub local_accuracy: f64,
    /// Collaborators whose contribution is in the sum.
    pub contributors: Vec<String>,
    /// Collaborators invited to the round that did not finish it.
    pub dropped: Vec<String>,
    /// Training samples in the sum.
    pub train_samples: u64,
}

/// The flow state: what travels between the aggregator and the collaborators, as each
/// transition's `include` list says.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SecAggMnist {
    /// Public settings.
    pub settings: Settings,
    /// The current round.
    pub round: u32,
    /// The global model, as [`flspec_tch::models::mnist_cnn::Net::to_flat`] lays it out.
    pub model: Vec<f32>,
    /// The round's SecAgg parameters (public).
    pub secagg: Option<secagg::Config>,
    /// Collaborator → aggregator: public keys.
    pub advertise: Option<secagg::AdvertiseKeys>,
    /// Aggregator → collaborators: everyone's public keys.
    pub public_keys: Option<secagg::AllAdvertised>,
    /// Collaborator → aggregator: encrypted shares for its peers.
    pub outbox: Vec<secagg::EncryptedShare>,
    /// Aggregator → each collaborator: only the shares addressed to it.
    pub inbox: PerCollaborator<Vec<secagg::EncryptedShare>>,
    /// Collaborator → aggregator: the masked contribution.
    pub masked: Option<secagg::MaskedInput>,
    /// Aggregator → survivors: which shares to reveal.
    pub unmask_request: Option<secagg::UnmaskRequest>,
    /// Survivor → aggregator: the shares.
    pub unmask_response: Option<secagg::UnmaskResponse>,
    /// Collaborator → aggregator, only with `--no-secagg`: the contribution in the clear.
    pub plain_contribution: Vec<f32>,
    /// The collaborators invited to the current round (aggregator only).
    pub invited: Vec<String>,
    /// The results table (aggregator only).
    pub results: Vec<RoundRow>,
}

impl SecAggMnist {
    /// A run with these settings starting from `model`.
    pub fn new(settings: Settings, model: Vec<f32>) -> Self {
        SecAggMnist {
            settings,
            model,
            ..Default::default()
        }
    }
}

/// The aggregator's private state: this round's SecAgg server, the session id, and the server
/// optimizer's state (FedAvgM's momentum, FedOpt's moments), which no collaborator ever sees.
///
/// Private state is not checkpointed: a run resumed from a checkpoint starts the optimizer
/// afresh (zero moments) from the checkpointed global model.
#[derive(Default)]
pub struct Coordinator {
    server: Option<secagg::Server>,
    session: [u8; 32],
    optimizer: Option<ServerState>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").finish_non_exhaustive()
    }
}

fn client_id(ctx: &Ctx, name: &str) -> Result<ClientId, BoxError> {
    let position = ctx
        .collaborators()
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| format!("`{name}` is not a collaborator of this run"))?;
    Ok(ClientId(u32::try_from(position + 1)?))
}

fn name_of(ctx: &Ctx, id: ClientId) -> Result<String, BoxError> {
    (id.0 as usize)
        .checked_sub(1)
        .and_then(|i| ctx.collaborators().get(i))
        .cloned()
        .ok_or_else(|| format!("no collaborator has SecAgg id {id}").into())
}

/// The SecAgg id of `name`, the collaborator the runtime authenticated as the sender of a
/// message, if it belongs to the current round (`invited`).
fn round_id(ctx: &Ctx, invited: &[String], round: u32, name: &str) -> Result<ClientId, BoxError> {
    if !invited.iter().any(|n| n == name) {
        return Err(format!(
            "refused a message from `{name}`: it is not in round {round} (this round's collaborators: {})",
            invited.join(", ")
        )
        .into());
    }
    client_id(ctx, name)
}

/// Binds a SecAgg message to its authenticated sender: refuses it unless the sender id it
/// carries is the id the flow gave `name` (the name the runtime authenticated) in this round.
/// Without this, one collaborator could send messages labelled as another's.
fn check_sender(
    ctx: &Ctx,
    invited: &[String],
    round: u32,
    name: &str,
    what: &str,
    claimed: ClientId,
) -> Result<(), BoxError> {
    let id = round_id(ctx, invited, round, name)?;
    if claimed != id {
        return Err(format!(
            "refused the {what} of collaborator `{name}`: it is labelled as from SecAgg id {claimed}, but `{name}` has id {id} in round {round}; a collaborator may send only its own messages"
        )
        .into());
    }
    Ok(())
}

fn missing(what: &str) -> BoxError {
    format!("the flow state carries no {what}; was a step skipped?").into()
}

#[flow(collaborator = Site, aggregator = Coordinator, addressed = [inbox], tolerate_dropouts)]
impl SecAggMnist {
    /// Invites every collaborator to the first round.
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, coordinator: &mut Coordinator) -> Result<Next<Self>, BoxError> {
        OsRng.fill_bytes(&mut coordinator.session);
        self.settings.server_optimizer.validate()?;
        coordinator.optimizer = None;
        self.invited = ctx.collaborators().to_vec();
        self.begin_round(ctx, coordinator)?;
        Ok(next!(
            self.aggregated_model_validation,
            foreach = self.invited.clone(),
            include = [settings, round, model, secagg]
        ))
    }

    /// Validates the aggregated model on the local test shard.
    #[collaborator]
    fn aggregated_model_validation(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("aggregated_model_validation")?;
        if site.partition != self.settings.partition {
            return Err(format!(
                "`{}` holds the data of `--partition {}`, but this run splits the data by `--partition {}`; start every envoy with the run's `--partition` and `--partition-seed`",
                site.name(),
                site.partition,
                self.settings.partition
            )
            .into());
        }
        site.net.set_flat(&self.model)?;
        let accuracy = validate_on(&site.net, &site.test, 1000)?;
        site.measured = Measurements {
            test_count: site.test.len(),
            agg_correct: (accuracy * site.test.len() as f64).round() as usize,
            ..Measurements::default()
        };
        Ok(next!(self.train))
    }

    /// Trains one epoch on the local training shard.
    #[collaborator]
    fn train(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("train")?;
        let loss = train_one_epoch_on(&mut site.net, &site.train, &site.config)?;
        site.measured.train_loss = loss;
        site.measured.train_count = site.train.len();
        Ok(next!(self.local_model_validation))
    }

    /// Validates the local model, then builds this round's contribution.
    #[collaborator]
    fn local_model_validation(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("local_model_validation")?;
        let accuracy = validate_on(&site.net, &site.test, 1000)?;
        site.measured.local_correct = (accuracy * site.test.len() as f64).round() as usize;
        let max_samples = self.settings.max_samples as usize;
        if site.measured.train_count > max_samples {
            return Err(format!(
                "{} training samples exceed `--max-samples {max_samples}`; raise it",
                site.measured.train_count
            )
            .into());
        }
        let (contribution, _clipped) = update::encode(
            &site.net.to_flat()?,
            &site.measured,
            self.settings.clip,
            max_samples,
        );
        if self.settings.secure {
            site.contribution = contribution;
            Ok(next!(self.generate_keys))
        } else {
            self.plain_contribution = contribution;
            Ok(next!(self.join, include = [plain_contribution]))
        }
    }

    /// Makes this round's key pairs and advertises the public keys.
    #[collaborator]
    fn generate_keys(&mut self, ctx: &Ctx, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("generate_keys")?;
        let config = self
            .secagg
            .clone()
            .ok_or_else(|| missing("SecAgg config"))?;
        let mut client = secagg::Client::new(config, client_id(ctx, ctx.name())?, &mut OsRng)?;
        self.advertise = Some(client.advertise()?);
        site.client = Some(client);
        Ok(next!(
            self.generate_collaborator_index,
            include = [advertise]
        ))
    }

    /// Collects the public keys and broadcasts them.
    #[aggregator]
    fn generate_collaborator_index(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let config = self
            .secagg
            .clone()
            .ok_or_else(|| missing("SecAgg config"))?;
        let mut server = secagg::Server::new(config)?;
        for input in &inputs {
            let keys = input
                .advertise
                .clone()
                .ok_or_else(|| missing("public keys"))?;
            check_sender(
                ctx,
                &self.invited,
                self.round,
                input.name(),
                "public keys",
                keys.sender,
            )?;
            server.receive_advertise(keys)?;
        }
        self.public_keys = Some(server.broadcast_keys()?);
        coordinator.server = Some(server);
        Ok(next!(
            self.generate_ciphertexts,
            foreach = inputs.names(),
            include = [public_keys]
        ))
    }

    /// Encrypts shares of this round's secrets for each peer.
    #[collaborator]
    fn generate_ciphertexts(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("generate_ciphertexts")?;
        let keys = self
            .public_keys
            .as_ref()
            .ok_or_else(|| missing("public keys"))?;
        let client = site
            .client
            .as_mut()
            .ok_or_else(|| missing("SecAgg client"))?;
        self.outbox = client.share_keys(keys)?;
        Ok(next!(self.filter_ciphertexts, include = [outbox]))
    }

    /// Routes each collaborator the ciphertexts addressed to it (it cannot read them).
    #[aggregator]
    fn filter_ciphertexts(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let server = coordinator
            .server
            .as_mut()
            .ok_or_else(|| missing("SecAgg server"))?;
        let names: Vec<String> = inputs.names().map(str::to_string).collect();
        for input in inputs {
            let (name, state) = input.into_parts();
            let id = round_id(ctx, &self.invited, self.round, &name)?;
            // The server also refuses a ciphertext whose own sender field is not `id`.
            server.receive_shares(id, state.outbox)?;
        }
        self.public_keys = None;
        self.inbox = PerCollaborator::new();
        for (id, shares) in server.route_shares()? {
            self.inbox.insert(name_of(ctx, id)?, shares);
        }
        Ok(next!(
            self.decrypt_ciphertext,
            foreach = names,
            include = [inbox]
        ))
    }

    /// Decrypts the shares addressed to this collaborator and sends its masked contribution.
    #[collaborator]
    fn decrypt_ciphertext(&mut self, ctx: &Ctx, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("decrypt_ciphertext")?;
        let received = self.inbox.remove(ctx.name()).unwrap_or_default();
        let client = site
            .client
            .as_mut()
            .ok_or_else(|| missing("SecAgg client"))?;
        self.masked = Some(client.masked_input(&site.contribution, &received)?);
        site.contribution = Vec::new();
        Ok(next!(self.reconstruct, include = [masked]))
    }

    /// Collects the masked contributions and asks the survivors for the shares it needs.
    #[aggregator]
    fn reconstruct(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let server = coordinator
            .server
            .as_mut()
            .ok_or_else(|| missing("SecAgg server"))?;
        let names: Vec<String> = inputs.names().map(str::to_string).collect();
        for input in inputs {
            let (name, state) = input.into_parts();
            let masked = state.masked.ok_or_else(|| missing("masked input"))?;
            check_sender(
                ctx,
                &self.invited,
                self.round,
                &name,
                "masked input",
                masked.sender,
            )?;
            server.receive_masked(masked)?;
        }
        self.inbox = PerCollaborator::new();
        self.unmask_request = Some(server.unmask_request()?);
        Ok(next!(
            self.reveal_shares,
            foreach = names,
            include = [unmask_request]
        ))
    }

    /// Reveals the requested shares (never both of one peer's secrets).
    #[collaborator]
    fn reveal_shares(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("reveal_shares")?;
        let request = self
            .unmask_request
            .as_ref()
            .ok_or_else(|| missing("unmask request"))?;
        let mut client = site.client.take().ok_or_else(|| missing("SecAgg client"))?;
        self.unmask_response = Some(client.unmask(request)?);
        Ok(next!(self.join, include = [unmask_response]))
    }

    /// Removes the masks, averages, records the round and starts the next one.
    #[aggregator]
    fn join(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let survivors: Vec<String> = inputs.names().map(str::to_string).collect();
        for name in &survivors {
            round_id(ctx, &self.invited, self.round, name)?;
        }
        let (sum, contributors) = if self.settings.secure {
            let mut server = coordinator
                .server
                .take()
                .ok_or_else(|| missing("SecAgg server"))?;
            for input in inputs {
                let (name, state) = input.into_parts();
                let response = state
                    .unmask_response
                    .ok_or_else(|| missing("unmask response"))?;
                check_sender(
                    ctx,
                    &self.invited,
                    self.round,
                    &name,
                    "unmask response",
                    response.sender,
                )?;
                server.receive_unmask(response)?;
            }
            let sum = server.finish()?;
            let contributors = sum
                .contributors
                .iter()
                .map(|&id| name_of(ctx, id))
                .collect::<Result<Vec<_>, _>>()?;
            (sum.values, contributors)
        } else {
            let mut sum = vec![0f32; update::LEN];
            for input in &inputs {
                if input.plain_contribution.len() != update::LEN {
                    return Err(missing("contribution"));
                }
                for (s, v) in sum.iter_mut().zip(&input.plain_contribution) {
                    *s += v;
                }
            }
            (sum, survivors.clone())
        };
        let decoded = update::decode(&sum, self.settings.max_samples as usize)?;
        self.model = match self.settings.server_optimizer {
            ServerOpt::FedAvg => decoded.model,
            opt => {
                // The optimizer needs only the sum, exactly what secure aggregation revealed.
                let state = match &mut coordinator.optimizer {
                    Some(state) => state,
                    empty => empty.insert(
                        opt.start(std::mem::take(&mut self.model))
                            .ok_or_else(|| missing("server optimizer"))?,
                    ),
                };
                let weighted = update::weighted_sum(&sum, contributors.len())?;
                state.step(&weighted)?.to_vec()
            }
        };
        let dropped = self
            .invited
            .iter()
            .filter(|n| !survivors.contains(n))
            .cloned()
            .collect();
        self.results.push(RoundRow {
            round: self.round,
            agg_accuracy: decoded.agg_accuracy,
            train_loss: decoded.train_loss,
            local_accuracy: decoded.local_accuracy,
            contributors,
            dropped,
            train_samples: decoded.train_samples,
        });
        self.clear_messages();
        self.round += 1;
        if self.round < self.settings.rounds {
            self.invited = survivors;
            self.begin_round(ctx, coordinator)?;
            Ok(next!(
                self.aggregated_model_validation,
                foreach = self.invited.clone(),
                include = [settings, round, model, secagg]
            ))
        } else {
            Ok(next!(self.end))
        }
    }

    /// The end of the flow.
    #[aggregator]
    fn end(&mut self) {}

    /// The public parameters of the round about to start.
    fn begin_round(&mut self, ctx: &Ctx, coordinator: &Coordinator) -> Result<(), BoxError> {
        if !self.settings.secure {
            self.secagg = None;
            return Ok(());
        }
        let n = self.invited.len();
        if n < 2 {
            return Err(format!(
                "secure aggregation needs at least 2 collaborators, but round {} has {n}; use more collaborators or `--no-secagg`",
                self.round
            )
            .into());
        }
        let ids = self
            .invited
            .iter()
            .map(|name| client_id(ctx, name))
            .collect::<Result<Vec<_>, _>>()?;
        let mode = match self.settings.neighbours {
            0 => Mode::Full,
            k => Mode::SecAggPlus {
                k,
                graph_seed: u64::from_le_bytes(
                    coordinator.session[..8]
                        .try_into()
                        .expect("a session id has 32 bytes"),
                ),
            },
        };
        let hood = match mode {
            Mode::Full => n,
            Mode::SecAggPlus { k, .. } => k as usize + 1,
        };
        let threshold = match self.settings.threshold {
            0 => secagg::min_safe_threshold(u32::try_from(hood)?),
            t => t,
        };
        let quantizer = Quantizer::new(self.settings.clip.max(1.0), u32::try_from(n)?)?;
        let mut config = secagg::Config::new(ids, threshold, update::LEN, quantizer)
            .with_mode(mode)
            .with_session(coordinator.session)
            .with_round(u64::from(self.round));
        if self.settings.unsafe_allow_low_threshold {
            config = config.unsafe_allow_low_threshold();
        }
        config.validate()?;
        self.secagg = Some(config);
        Ok(())
    }

    fn clear_messages(&mut self) {
        self.advertise = None;
        self.public_keys = None;
        self.outbox.clear();
        self.inbox = PerCollaborator::new();
        self.masked = None;
        self.unmask_request = None;
        self.unmask_response = None;
        self.plain_contribution.clear();
    }
}

/// The joins bind every SecAgg message to the collaborator the runtime authenticated: driven
/// here step by step with real SecAgg clients, as the runtime would, with forged inputs.
#[cfg(test)]
mod tests {
    use super::*;
    use flspec_tch::models::mnist_cnn::NUM_PARAMETERS;

    const NAMES: [&str; 3] = ["Bengaluru", "Portland", "collaborator-003"];

    /// One round as the aggregator sees it, with the collaborators' SecAgg clients.
    struct Round {
        names: Vec<String>,
        agg: SecAggMnist,
        coordinator: Coordinator,
        clients: Vec<secagg::Client>,
    }

    impl Round {
        /// The round after `start` on the full graph, threshold 2, and the collaborators'
        /// clients. With `invited`, only those collaborators are in the round (the others
        /// dropped out of an earlier one).
        fn start(invited: Option<&[&str]>) -> Round {
            let names: Vec<String> = NAMES.iter().map(|n| (*n).to_string()).collect();
            let settings = Settings {
                rounds: 1,
                threshold: 2,
                ..Settings::default()
            };
            let mut agg = SecAggMnist::new(settings, Vec::new());
            let mut coordinator = Coordinator::default();
            let ctx = Ctx::aggregator("SecAggMnist", "test", &names);
            let _next = agg.start(&ctx, &mut coordinator).expect("start");
            if let Some(invited) = invited {
                agg.invited = invited.iter().map(|n| (*n).to_string()).collect();
                agg.begin_round(&ctx, &coordinator).expect("begin_round");
            }
            let config = agg.secagg.clone().expect("a SecAgg config");
            let clients = agg
                .invited
                .iter()
                .map(|name| {
                    let id = client_id(&ctx, name).expect("id");
                    secagg::Client::new(config.clone(), id, &mut OsRng).expect("client")
                })
                .collect();
            Round {
                names,
                agg,
                coordinator,
                clients,
            }
        }

        /// The position of `name`'s client (the invited collaborators, in order).
        fn index(&self, name: &str) -> usize {
            self.agg
                .invited
                .iter()
                .position(|n| n == name)
                .expect("an invited name")
        }

        /// The aggregator's join `step` over these inputs.
        fn join(&mut self, step: Join, inputs: Vec<Input<SecAggMnist>>) -> Result<(), BoxError> {
            let ctx = Ctx::aggregator("SecAggMnist", "test", &self.names);
            let inputs = Inputs::new(inputs);
            let c = &mut self.coordinator;
            let _next = match step {
                Join::Keys => self.agg.generate_collaborator_index(&ctx, inputs, c),
                Join::Shares => self.agg.filter_ciphertexts(&ctx, inputs, c),
                Join::Masked => self.agg.reconstruct(&ctx, inputs, c),
                Join::Unmask => self.agg.join(&ctx, inputs, c),
            }?;
            Ok(())
        }

        /// Every collaborator's public keys, honestly labelled.
        fn advertise(&mut self, who: &[&str]) -> Vec<Input<SecAggMnist>> {
            who.iter()
                .map(|name| {
                    let i = self.index(name);
                    let keys = self.clients[i].advertise().expect("advertise");
                    message(name, |s| s.advertise = Some(keys))
                })
                .collect()
        }

        /// Runs the honest round from the start through `filter_ciphertexts` (every inbox is
        /// then in the aggregator's state).
        fn through_shares(&mut self) {
            let inputs = self.advertise(&NAMES);
            self.join(Join::Keys, inputs).expect("honest keys");
            let keys = self.agg.public_keys.clone().expect("broadcast keys");
            let inputs = (0..NAMES.len())
                .map(|i| {
                    let outbox = self.clients[i].share_keys(&keys).expect("shares");
                    message(NAMES[i], |s| s.outbox = outbox)
                })
                .collect();
            self.join(Join::Shares, inputs).expect("honest shares");
        }

        /// A collaborator's masked contribution (zero weights, 100 samples).
        fn masked(&mut self, name: &str) -> secagg::MaskedInput {
            let measured = Measurements {
                train_count: 100,
                test_count: 10,
                ..Measurements::default()
            };
            let (contribution, _) =
                update::encode(&vec![0.0; NUM_PARAMETERS], &measured, 4.0, 60_000);
            let received = self.agg.inbox.get(name).cloned().unwrap_or_default();
            let i = self.index(name);
            self.clients[i]
                .masked_input(&contribution, &received)
                .expect("masked input")
        }

        /// Runs the honest round through `reconstruct`, every collaborator sending.
        fn through_masked(&mut self) {
            self.through_shares();
            let inputs = NAMES
                .iter()
                .map(|name| {
                    let masked = self.masked(name);
                    message(name, |s| s.masked = Some(masked))
                })
                .collect();
            self.join(Join::Masked, inputs)
                .expect("honest masked inputs");
        }

        fn unmask(&mut self, name: &str) -> secagg::UnmaskResponse {
            let request = self.agg.unmask_request.clone().expect("a request");
            let i = self.index(name);
            self.clients[i].unmask(&request).expect("unmask")
        }
    }

    #[derive(Clone, Copy)]
    enum Join {
        Keys,
        Shares,
        Masked,
        Unmask,
    }

    /// What the runtime hands a join: `name` is the authenticated sender.
    fn message(name: &str, fill: impl FnOnce(&mut SecAggMnist)) -> Input<SecAggMnist> {
        let mut state = SecAggMnist::default();
        fill(&mut state);
        Input::new(name, state)
    }

    fn refused(result: Result<(), BoxError>) -> String {
        match result {
            Ok(()) => panic!("the forged message was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn honest_round_passes_every_join() {
        let mut round = Round::start(None);
        round.through_masked();
        let inputs = NAMES
            .iter()
            .map(|name| {
                let response = round.unmask(name);
                message(name, |s| s.unmask_response = Some(response))
            })
            .collect();
        round.join(Join::Unmask, inputs).expect("honest unmasking");
        let row = &round.agg.results[0];
        assert_eq!(row.contributors, NAMES);
        assert_eq!(row.train_samples, 300);
    }

    #[test]
    fn public_keys_labelled_as_another_collaborator_are_refused() {
        let mut round = Round::start(None);
        // Bengaluru is absent; Portland advertises its keys as Bengaluru's (id 1).
        let mut inputs = round.advertise(&["Portland", "collaborator-003"]);
        inputs[0].advertise.as_mut().expect("keys").sender = ClientId(1);
        let err = refused(round.join(Join::Keys, inputs));
        assert!(err.contains("`Portland`"), "{err}");
        assert!(err.contains("SecAgg id 1"), "{err}");
        assert!(err.contains("public keys"), "{err}");
    }

    #[test]
    fn a_message_from_a_collaborator_outside_the_round_is_refused() {
        // collaborator-003 dropped out of an earlier round; it tries to come back as Bengaluru,
        // who is absent in this step.
        let mut round = Round::start(Some(&["Bengaluru", "Portland"]));
        let mut inputs = round.advertise(&["Portland"]);
        let keys = secagg::AdvertiseKeys {
            sender: ClientId(1),
            round: 0,
            c_public: [7; 32],
            s_public: [9; 32],
        };
        inputs.push(message("collaborator-003", |s| s.advertise = Some(keys)));
        let err = refused(round.join(Join::Keys, inputs));
        assert!(err.contains("`collaborator-003`"), "{err}");
        assert!(err.contains("not in round 0"), "{err}");
    }

    #[test]
    fn a_masked_input_labelled_as_another_collaborator_is_refused() {
        let mut round = Round::start(None);
        round.through_shares();
        // Bengaluru drops out before sending; Portland sends its masked input as Bengaluru's.
        let mut forged = round.masked("Portland");
        forged.sender = ClientId(1);
        let honest = round.masked("collaborator-003");
        let inputs = vec![
            message("Portland", |s| s.masked = Some(forged)),
            message("collaborator-003", |s| s.masked = Some(honest)),
        ];
        let err = refused(round.join(Join::Masked, inputs));
        assert!(err.contains("`Portland`"), "{err}");
        assert!(err.contains("SecAgg id 1"), "{err}");
        assert!(err.contains("masked input"), "{err}");
    }

    #[test]
    fn an_unmask_response_labelled_as_another_collaborator_is_refused() {
        let mut round = Round::start(None);
        round.through_masked();
        // collaborator-003 drops out before revealing; Portland answers as collaborator-003.
        let mut forged = round.unmask("Portland");
        forged.sender = ClientId(3);
        let honest = round.unmask("Bengaluru");
        let inputs = vec![
            message("Bengaluru", |s| s.unmask_response = Some(honest)),
            message("Portland", |s| s.unmask_response = Some(forged)),
        ];
        let err = refused(round.join(Join::Unmask, inputs));
        assert!(err.contains("`Portland`"), "{err}");
        assert!(err.contains("SecAgg id 3"), "{err}");
        assert!(err.contains("unmask response"), "{err}");
    }
}

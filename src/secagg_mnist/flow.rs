//! The SecAgg MNIST flow, written with the public DSL only.
//!
//! Per round: each collaborator validates the aggregated model, trains one epoch and validates
//! its local model (the seed's steps); then, under secure aggregation, it makes fresh keys
//! (`generate_keys`), the aggregator numbers the collaborators and broadcasts their public keys
//! (`generate_collaborator_index`), each collaborator encrypts Shamir shares of its secrets for
//! its peers (`generate_ciphertexts`), the aggregator routes each collaborator only the
//! ciphertexts addressed to it (`filter_ciphertexts`), each collaborator decrypts them and sends
//! its masked contribution (`decrypt_ciphertext`), the aggregator adds each to its running sum
//! as it arrives (`receive_masked`, a folding join: it holds one collaborator's masked vector
//! at a time), asks the survivors for the shares it needs (`reconstruct`), they reveal them
//! (`reveal_shares`), and the aggregator
//! removes the masks and averages the sum (`join`).
//!
//! The seed runs its key exchange once, before training, and lets the aggregator rebuild every
//! collaborator's secrets; here keys are fresh each round and the aggregator only ever holds
//! shares it may hold, so it learns the sum and nothing else. Everything it averages (every
//! parameter, the loss times the sample count, the validation counts, the sample count) travels
//! inside the masked vector ([`super::update`]).

use flspec::fl::aggregate::WeightedSum;
use flspec::prelude::*;
use flspec::secagg::{self, ClientId, Mode, Quantizer};
use flspec::{BoxError, PerCollaborator};
use rand_core::{OsRng, RngCore};

use super::private_update::{self, DpSettings, NoisePlan};
use super::server_opt::{ServerOpt, ServerState};
use super::site::{PeerKeys, Site};
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
    /// Which aggregator secure aggregation resists (`--secagg-security`): semi-honest, or
    /// malicious-secure (signed keys checked against the federation's CA, a consistency
    /// round, a threshold above 2/3 of each group).
    #[serde(default)]
    pub security: secagg::Security,
    /// Distributed differential privacy on the secure sum (`--dp-epsilon`, ...); `None`: off.
    #[serde(default)]
    pub dp: Option<DpSettings>,
    /// Local epochs per round (`--local-epochs`; the seed's 1). The table's training loss is
    /// the last local epoch's.
    #[serde(default = "one")]
    pub local_epochs: u32,
    /// Local SGD learning rate (`--lr`; the seed's 0.01).
    #[serde(default = "seed_lr")]
    pub learning_rate: f64,
}

fn one() -> u32 {
    1
}

fn seed_lr() -> f64 {
    0.01
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
            security: secagg::Security::SemiHonest,
            dp: None,
            local_epochs: 1,
            learning_rate: 0.01,
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
    /// Contributors that had dropped out of the round before (a restarted envoy, a healed
    /// link): back in the sum.
    #[serde(default)]
    pub returned: Vec<String>,
    /// Training samples in the sum.
    pub train_samples: u64,
    /// Under distributed DP: ε spent after this round (all rounds so far, at the run's δ).
    #[serde(default)]
    pub epsilon: Option<f64>,
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
    /// The run's noise plan under distributed DP (public).
    pub noise_plan: Option<NoisePlan>,
    /// Collaborator → aggregator, once per run (malicious-secure): its SecAgg signing
    /// certificate (DER).
    pub signing_certificate: Vec<u8>,
    /// Aggregator → collaborators, once per run (malicious-secure): every collaborator's
    /// signing certificate, which each checks against the CA it trusts.
    pub signing_certificates: Vec<(String, Vec<u8>)>,
    /// Aggregator → each collaborator back from a dropout (malicious-secure): every
    /// collaborator's signing certificate again, since a restarted envoy lost them.
    pub rejoin_certificates: PerCollaborator<Vec<(String, Vec<u8>)>>,
    /// The signing certificates the collaborators presented (aggregator only; public).
    pub identities: Vec<(String, Vec<u8>)>,
    /// The collaborators invited to every round (aggregator only): all of the run's, or in a
    /// malicious-secure run those that presented a certificate. A dropout of one round is
    /// invited to the next.
    pub members: Vec<String>,
    /// Collaborator → aggregator (malicious-secure): signed public keys.
    pub signed_advertise: Option<secagg::SignedAdvertiseKeys>,
    /// Aggregator → each collaborator (malicious-secure): its neighbourhood's signed keys.
    pub signed_keys: PerCollaborator<secagg::SignedKeyBroadcast>,
    /// Aggregator → survivors (malicious-secure): the survivor set to sign.
    pub consistency_request: Option<secagg::ConsistencyRequest>,
    /// Survivor → aggregator (malicious-secure): its signature on the survivor set.
    pub consistency_signature: Option<secagg::ConsistencySignature>,
    /// Aggregator → each survivor (malicious-secure): which shares to reveal, with the
    /// signatures it needs to check first.
    pub checked_unmask: PerCollaborator<secagg::CheckedUnmaskRequest>,
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
    /// Aggregator: the collaborators whose masked contribution `receive_masked` took this
    /// round, in fan-out order (`reconstruct` asks them for shares).
    pub masked_by: Vec<String>,
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
    /// The noise plan's provisioning, for the accountant (rebuilt from the settings after a
    /// resume).
    noise: Option<flspec::dp::ddg::DdgPlan>,
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

/// The SecAgg ids whose signing keys `config`'s round can make `id` check: its closed
/// neighbourhood's closed neighbourhoods (everyone on the full graph; on SecAgg+ at most
/// `(k + 1)²`, whatever the population).
fn keys_needed(
    config: &secagg::Config,
    id: ClientId,
) -> Result<std::collections::BTreeSet<ClientId>, BoxError> {
    let graph = config.graph()?;
    let hood = graph
        .closed_neighbourhood(id)
        .ok_or_else(|| format!("SecAgg id {id} is not in this round"))?;
    Ok(hood
        .iter()
        .flat_map(|&v| {
            graph
                .closed_neighbourhood(v)
                .unwrap_or_default()
                .iter()
                .copied()
        })
        .collect())
}

/// Binds one collaborator's SecAgg message to its authenticated sender: `message`, the `what`
/// that `name` sent, if it sent one and labelled it with its own id in this round
/// ([`check_sender`]).
fn sent_by<T>(
    ctx: &Ctx,
    invited: &[String],
    round: u32,
    name: &str,
    what: &str,
    message: Option<T>,
    sender: impl Fn(&T) -> ClientId,
) -> Result<T, BoxError> {
    let message = message.ok_or_else(|| missing(what))?;
    check_sender(ctx, invited, round, name, what, sender(&message))?;
    Ok(message)
}

fn missing(what: &str) -> BoxError {
    format!("the flow state carries no {what}; was a step skipped?").into()
}

#[flow(
    collaborator = Site,
    aggregator = Coordinator,
    addressed = [inbox, signed_keys, checked_unmask, rejoin_certificates],
    // A round's SecAgg server lives in the aggregator's private state: a resumed run (after a
    // crash of the director) starts the interrupted round over, every collaborator with fresh
    // keys.
    resume_from = [start, collect_identities, join],
    tolerate_dropouts
)]
impl SecAggMnist {
    /// Invites every collaborator to the first round.
    #[aggregator]
    fn start(&mut self, ctx: &Ctx, coordinator: &mut Coordinator) -> Result<Next<Self>, BoxError> {
        OsRng.fill_bytes(&mut coordinator.session);
        self.settings.server_optimizer.validate()?;
        if self.settings.local_epochs == 0 {
            return Err("`--local-epochs 0`: a collaborator must train at least one epoch".into());
        }
        let lr = self.settings.learning_rate;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("`--lr {lr}`: the learning rate must be positive").into());
        }
        coordinator.optimizer = None;
        self.invited = ctx.collaborators().to_vec();
        self.members = self.invited.clone();
        self.begin_round(ctx, coordinator)?;
        self.plan_noise(coordinator)?;
        if self.malicious() {
            Ok(next!(
                self.present_identity,
                foreach = self.invited.clone(),
                include = [settings]
            ))
        } else {
            Ok(next!(
                self.aggregated_model_validation,
                foreach = self.invited.clone(),
                include = [settings, round, model, secagg, noise_plan]
            ))
        }
    }

    /// Malicious-secure, once per run: presents this collaborator's SecAgg signing
    /// certificate (issued by the federation's CA) to its peers.
    #[collaborator]
    fn present_identity(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("present_identity")?;
        let keys = site.signing.as_ref().ok_or_else(|| {
            format!(
                "`{}` has no SecAgg signing key, but the run is malicious-secure; start it with the federation's certificates (`--certs`, made by `flspec-fed certs`)",
                site.name()
            )
        })?;
        self.signing_certificate = keys.certificate().to_vec();
        Ok(next!(
            self.collect_identities,
            include = [signing_certificate]
        ))
    }

    /// Malicious-secure, once per run: relays every collaborator's signing certificate to all
    /// (the collaborators check them against the CA: the aggregator cannot substitute a key).
    #[aggregator]
    fn collect_identities(
        &mut self,
        ctx: &Ctx,
        inputs: Inputs<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let mut certificates = Vec::new();
        for input in inputs {
            let (name, state) = input.into_parts();
            round_id(ctx, &self.invited, self.round, &name)?;
            certificates.push((name, state.signing_certificate));
        }
        self.identities = certificates.clone();
        self.signing_certificates = certificates;
        self.invited = self
            .signing_certificates
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        self.members = self.invited.clone();
        self.begin_round(ctx, coordinator)?;
        Ok(next!(
            self.aggregated_model_validation,
            foreach = self.invited.clone(),
            include = [
                settings,
                round,
                model,
                secagg,
                noise_plan,
                signing_certificates
            ]
        ))
    }

    /// Validates the aggregated model on the local test shard.
    #[collaborator]
    fn aggregated_model_validation(
        &mut self,
        ctx: &Ctx,
        site: &mut Site,
    ) -> Result<Next<Self>, BoxError> {
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
        let certificates = match self.rejoin_certificates.remove(ctx.name()) {
            Some(again) => again,
            None => std::mem::take(&mut self.signing_certificates),
        };
        if !certificates.is_empty() {
            // Kept unverified: `generate_keys` checks each one the first time a round needs
            // its key (on SecAgg+ only the neighbourhood's, not the whole population's).
            site.peers = PeerKeys::new(
                certificates
                    .into_iter()
                    .map(|(name, der)| Ok((client_id(ctx, &name)?, (name, der))))
                    .collect::<Result<_, BoxError>>()?,
            );
        }
        site.net.set_flat(&self.model)?;
        // Under DP, the noise does not depend on the update: draw it while this collaborator
        // validates and trains.
        site.noise = self
            .noise_plan
            .map(private_update::Noise::draw_in_background);
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
        site.config.learning_rate = self.settings.learning_rate;
        let mut loss = 0.0;
        for _ in 0..self.settings.local_epochs {
            loss = train_one_epoch_on(&mut site.net, &site.train, &site.config)?;
        }
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
        if let Some(plan) = &self.noise_plan {
            // A ChaCha20 generator seeded from the OS (wiped on drop): one system call
            // instead of one per rounding and noise draw (tens of thousands per update).
            let mut rng = secagg::rng::SecretRng::from_rng(&mut OsRng);
            let noise = match site.noise.take() {
                Some(pending) => pending
                    .join()
                    .map_err(|_| "the thread drawing the DP noise panicked")??,
                None => private_update::Noise::draw(plan, &mut rng)?,
            };
            let (ring, _clipped) = private_update::encode_with_noise(
                &site.net.to_flat()?,
                &self.model,
                &site.measured,
                plan,
                noise,
                &mut rng,
            )?;
            site.ring_contribution = ring;
            return Ok(next!(self.generate_keys));
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
        let id = client_id(ctx, ctx.name())?;
        let round = (config.session, config.round);
        if site.revealed == Some(round) {
            // The round started over (the director restarted after this collaborator revealed
            // its shares): the aggregator may hold this round's sum already, and a second sum
            // over other survivors would expose differences of updates. Sit it out.
            return Err(Dropout::new(format!(
                "`{}` revealed its shares for round {} already; it sits out the round's restart",
                site.name(),
                config.round
            ))
            .into());
        }
        site.round_in_progress = Some(round);
        if config.security == secagg::Security::Malicious {
            if site.peers.is_empty() {
                // Built afresh mid-run (a restarted envoy): it sits this round out, and the
                // aggregator sends it the certificates again with its next invitation.
                return Err(Dropout::new(format!(
                    "`{}` lost its peers' signing certificates (restarted); it rejoins next round",
                    site.name()
                ))
                .into());
            }
            let keys = site
                .signing
                .as_ref()
                .ok_or_else(|| missing("SecAgg signing key"))?;
            let directory = site.peers.directory(keys, keys_needed(&config, id)?)?;
            let mut client =
                secagg::Client::new_signed(config, id, keys.identity(), directory, &mut OsRng)?;
            self.signed_advertise = Some(client.advertise_signed()?);
            site.client = Some(client);
            return Ok(next!(
                self.generate_collaborator_index,
                include = [signed_advertise]
            ));
        }
        let mut client = secagg::Client::new(config, id, &mut OsRng)?;
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
        if self.malicious() {
            for input in &inputs {
                let signed = sent_by(
                    ctx,
                    &self.invited,
                    self.round,
                    input.name(),
                    "signed public keys",
                    input.signed_advertise.clone(),
                    |m| m.keys.sender,
                )?;
                server.receive_signed_advertise(signed)?;
            }
            server.broadcast_signed_keys()?;
            self.signed_keys = PerCollaborator::new();
            for name in inputs.names() {
                let id = client_id(ctx, name)?;
                self.signed_keys
                    .insert(name.to_string(), server.signed_keys_for(id)?);
            }
            coordinator.server = Some(server);
            return Ok(next!(
                self.generate_ciphertexts,
                foreach = inputs.names(),
                include = [signed_keys]
            ));
        }
        for input in &inputs {
            let keys = sent_by(
                ctx,
                &self.invited,
                self.round,
                input.name(),
                "public keys",
                input.advertise.clone(),
                |m| m.sender,
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
    fn generate_ciphertexts(&mut self, ctx: &Ctx, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("generate_ciphertexts")?;
        let client = site
            .client
            .as_mut()
            .ok_or_else(|| missing("SecAgg client"))?;
        self.outbox = match self.signed_keys.remove(ctx.name()) {
            Some(signed) => client.share_keys_signed(&signed)?,
            None => {
                let keys = self
                    .public_keys
                    .as_ref()
                    .ok_or_else(|| missing("public keys"))?;
                client.share_keys(keys)?
            }
        };
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
        self.signed_keys = PerCollaborator::new();
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
        // Under DP, `local_model_validation` left the noisy ring vector (and no float one).
        self.masked = Some(if !site.ring_contribution.is_empty() {
            client.masked_input_ring(&site.ring_contribution, &received)?
        } else {
            client.masked_input(&site.contribution, &received)?
        });
        site.contribution = Vec::new();
        site.ring_contribution = Vec::new();
        Ok(next!(self.receive_masked, include = [masked]))
    }

    /// A folding join: takes each survivor's masked contribution as it arrives (the server
    /// adds it to its running sum), so the aggregator holds one contribution at a time, not
    /// one per collaborator.
    #[aggregator]
    fn receive_masked(
        &mut self,
        ctx: &Ctx,
        input: Input<Self>,
        coordinator: &mut Coordinator,
    ) -> Result<Next<Self>, BoxError> {
        let server = coordinator
            .server
            .as_mut()
            .ok_or_else(|| missing("SecAgg server"))?;
        // The shares were routed: the collaborators have theirs.
        self.inbox = PerCollaborator::new();
        let (name, state) = input.into_parts();
        let masked = sent_by(
            ctx,
            &self.invited,
            self.round,
            &name,
            "masked input",
            state.masked,
            |m| m.sender,
        )?;
        server.receive_masked(masked)?;
        self.masked_by.push(name);
        Ok(next!(self.reconstruct))
    }

    /// Asks the collaborators whose masked contribution arrived for the shares it needs.
    #[aggregator]
    fn reconstruct(&mut self, coordinator: &mut Coordinator) -> Result<Next<Self>, BoxError> {
        let server = coordinator
            .server
            .as_mut()
            .ok_or_else(|| missing("SecAgg server"))?;
        let names = std::mem::take(&mut self.masked_by);
        if let Some(plan) = &self.noise_plan {
            // Unmasking fewer than the provisioned survivors would release a sum with less
            // noise than the guarantee needs: stop before anything is unmasked.
            if names.len() < plan.min_survivors as usize {
                return Err(format!(
                    "round {}: only {} collaborators sent their masked update, fewer than the {} the differential-privacy noise is provisioned for; the round is stopped before unmasking (the guarantee would not hold). Lower `--dp-min-survivors` to tolerate more dropouts (more noise per collaborator)",
                    self.round,
                    names.len(),
                    plan.min_survivors
                )
                .into());
            }
        }
        if self.malicious() {
            self.consistency_request = Some(server.consistency_request()?);
            return Ok(next!(
                self.sign_survivors,
                foreach = names,
                include = [consistency_request]
            ));
        }
        self.unmask_request = Some(server.unmask_request()?);
        Ok(next!(
            self.reveal_shares,
            foreach = names,
            include = [unmask_request]
        ))
    }

    /// Malicious-secure consistency check: signs the survivor set the aggregator announces.
    #[collaborator]
    fn sign_survivors(&mut self, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("sign_survivors")?;
        let request = self
            .consistency_request
            .as_ref()
            .ok_or_else(|| missing("consistency request"))?;
        let client = site
            .client
            .as_mut()
            .ok_or_else(|| missing("SecAgg client"))?;
        self.consistency_signature = Some(client.sign_survivors(request)?);
        Ok(next!(
            self.check_consistency,
            include = [consistency_signature]
        ))
    }

    /// Malicious-secure: collects the survivors' signatures and sends each survivor the
    /// signatures it must check before it reveals any share.
    #[aggregator]
    fn check_consistency(
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
            let signature = sent_by(
                ctx,
                &self.invited,
                self.round,
                &name,
                "consistency signature",
                state.consistency_signature,
                |m| m.sender,
            )?;
            server.receive_consistency(signature)?;
        }
        server.checked_unmask_request()?;
        self.consistency_request = None;
        self.checked_unmask = PerCollaborator::new();
        for name in &names {
            let id = client_id(ctx, name)?;
            self.checked_unmask
                .insert(name.clone(), server.checked_unmask_request_for(id)?);
        }
        Ok(next!(
            self.reveal_shares,
            foreach = names,
            include = [checked_unmask]
        ))
    }

    /// Reveals the requested shares (never both of one peer's secrets).
    #[collaborator]
    fn reveal_shares(&mut self, ctx: &Ctx, site: &mut Site) -> Result<Next<Self>, BoxError> {
        site.check_presence("reveal_shares")?;
        let mut client = site.client.take().ok_or_else(|| missing("SecAgg client"))?;
        site.revealed = site.round_in_progress;
        self.unmask_response = Some(match self.checked_unmask.remove(ctx.name()) {
            Some(checked) => client.unmask_checked(&checked)?,
            None => {
                let request = self
                    .unmask_request
                    .as_ref()
                    .ok_or_else(|| missing("unmask request"))?;
                client.unmask(request)?
            }
        });
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
        let (decoded, weighted, contributors) = if self.settings.secure {
            let mut server = coordinator
                .server
                .take()
                .ok_or_else(|| missing("SecAgg server"))?;
            for input in inputs {
                let (name, state) = input.into_parts();
                let response = sent_by(
                    ctx,
                    &self.invited,
                    self.round,
                    &name,
                    "unmask response",
                    state.unmask_response,
                    |m| m.sender,
                )?;
                server.receive_unmask(response)?;
            }
            let sum = server.finish()?;
            let contributors = sum
                .contributors
                .iter()
                .map(|&id| name_of(ctx, id))
                .collect::<Result<Vec<_>, _>>()?;
            match &self.noise_plan {
                Some(plan) => self.read_private_sum(&sum.sum, contributors, plan)?,
                None => self.read_sum(&sum.values, contributors)?,
            }
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
            self.read_sum(&sum, survivors.clone())?
        };
        self.model = match (self.settings.server_optimizer, weighted) {
            (ServerOpt::FedAvg, _) | (_, None) => decoded.model,
            (opt, Some(weighted)) => {
                // The optimizer needs only the sum, exactly what secure aggregation revealed.
                let state = match &mut coordinator.optimizer {
                    Some(state) => state,
                    empty => empty.insert(
                        opt.start(std::mem::take(&mut self.model))
                            .ok_or_else(|| missing("server optimizer"))?,
                    ),
                };
                state.step(&weighted)?.to_vec()
            }
        };
        let epsilon = self.spend_privacy(coordinator, contributors.len())?;
        let dropped: Vec<String> = self
            .invited
            .iter()
            .filter(|n| !survivors.contains(n))
            .cloned()
            .collect();
        let returned = match self.results.last() {
            Some(last) => contributors
                .iter()
                .filter(|c| last.dropped.contains(c))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        self.results.push(RoundRow {
            round: self.round,
            agg_accuracy: decoded.agg_accuracy,
            train_loss: decoded.train_loss,
            local_accuracy: decoded.local_accuracy,
            contributors,
            dropped: dropped.clone(),
            returned,
            train_samples: decoded.train_samples,
            epsilon,
        });
        self.clear_messages();
        self.round += 1;
        if self.round < self.settings.rounds {
            // Every member again, this round's dropouts too (a restarted envoy comes back);
            // in a malicious-secure run each returning one gets the certificates again.
            self.invited = self.members.clone();
            for name in dropped.iter().filter(|_| !self.identities.is_empty()) {
                self.rejoin_certificates
                    .insert(name.clone(), self.identities.clone());
            }
            self.begin_round(ctx, coordinator)?;
            Ok(next!(
                self.aggregated_model_validation,
                foreach = self.invited.clone(),
                include = [
                    settings,
                    round,
                    model,
                    secagg,
                    noise_plan,
                    rejoin_certificates
                ]
            ))
        } else {
            Ok(next!(self.end))
        }
    }

    /// Reads a round's de-quantized sum (FedAvg weighted by sample count), and the weighted
    /// sum a server optimizer other than FedAvg steps with.
    #[allow(clippy::type_complexity)]
    fn read_sum(
        &self,
        sum: &[f32],
        contributors: Vec<String>,
    ) -> Result<(update::RoundSum, Option<WeightedSum>, Vec<String>), BoxError> {
        let decoded = update::decode(sum, self.settings.max_samples as usize)?;
        let weighted = match self.settings.server_optimizer {
            ServerOpt::FedAvg => None,
            _ => Some(update::weighted_sum(sum, contributors.len())?),
        };
        Ok((decoded, weighted, contributors))
    }

    /// Reads a DP round's ring sum: the global model moved by the noisy mean update.
    #[allow(clippy::type_complexity)]
    fn read_private_sum(
        &self,
        sum: &[u32],
        contributors: Vec<String>,
        plan: &NoisePlan,
    ) -> Result<(update::RoundSum, Option<WeightedSum>, Vec<String>), BoxError> {
        let decoded = private_update::decode(sum, contributors.len(), &self.model, plan)?;
        let weighted = match self.settings.server_optimizer {
            ServerOpt::FedAvg => None,
            _ => Some(private_update::as_weighted_sum(
                &decoded.model,
                contributors.len(),
            )?),
        };
        Ok((decoded, weighted, contributors))
    }

    /// The end of the flow.
    #[aggregator]
    fn end(&mut self) {}

    /// The public parameters of the round about to start.
    fn begin_round(&mut self, ctx: &Ctx, coordinator: &mut Coordinator) -> Result<(), BoxError> {
        if !self.settings.secure {
            self.secagg = None;
            return Ok(());
        }
        if coordinator.session == [0; 32] {
            // A director restarted from its checkpoints lost its private state: the run's
            // session is public, in the last round's configuration.
            coordinator.session = self
                .secagg
                .as_ref()
                .map(|c| c.session)
                .ok_or_else(|| missing("SecAgg session"))?;
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
        let malicious = self.malicious();
        let threshold = match self.settings.threshold {
            0 if malicious => secagg::min_malicious_threshold(u32::try_from(hood)?),
            0 => secagg::min_safe_threshold(u32::try_from(hood)?),
            t => t,
        };
        let quantizer = Quantizer::new(self.settings.clip.max(1.0), u32::try_from(n)?)?;
        let mut config = secagg::Config::new(ids, threshold, update::LEN, quantizer)
            .with_mode(mode)
            .with_session(coordinator.session)
            .with_round(u64::from(self.round))
            .with_security(self.settings.security);
        if self.settings.unsafe_allow_low_threshold {
            config = config.unsafe_allow_low_threshold();
        }
        config.validate()?;
        self.secagg = Some(config);
        Ok(())
    }

    /// Whether this run's secure aggregation is malicious-secure.
    fn malicious(&self) -> bool {
        self.settings.secure && self.settings.security == secagg::Security::Malicious
    }

    /// Under distributed DP: provisions the noise for the collaborators invited to the first
    /// round, any `--dp-min-survivors` (default: the first round's SecAgg threshold) of which
    /// meet the target over all rounds.
    fn plan_noise(&mut self, coordinator: &mut Coordinator) -> Result<(), BoxError> {
        let Some(dp) = self.settings.dp else {
            self.noise_plan = None;
            return Ok(());
        };
        if !self.settings.secure {
            return Err("distributed differential privacy adds each collaborator's noise before secure aggregation masks it; it needs SecAgg (drop `--no-secagg`)".into());
        }
        let config = self
            .secagg
            .as_ref()
            .ok_or_else(|| missing("SecAgg config"))?;
        let min_survivors = match dp.min_survivors {
            0 => config.threshold as usize,
            m => m as usize,
        };
        let clients = self.invited.len();
        if min_survivors > clients {
            return Err(format!(
                "`--dp-min-survivors {min_survivors}` exceeds the {clients} collaborators of the run"
            )
            .into());
        }
        let (plan, ddg) = private_update::NoisePlan::new(
            &dp,
            self.settings.rounds.max(1),
            clients,
            min_survivors,
        )?;
        self.noise_plan = Some(plan);
        coordinator.noise = Some(ddg);
        Ok(())
    }

    /// Under distributed DP: ε spent after this round, composed over every released round
    /// with the survivors each actually had (the accountant is rebuilt from the table, so a
    /// resumed run accounts for the rounds before the checkpoint).
    fn spend_privacy(
        &self,
        coordinator: &mut Coordinator,
        contributors: usize,
    ) -> Result<Option<f64>, BoxError> {
        let (Some(dp), Some(plan)) = (self.settings.dp, &self.noise_plan) else {
            return Ok(None);
        };
        let ddg = match &coordinator.noise {
            Some(ddg) => *ddg,
            None => {
                let (_, ddg) = private_update::NoisePlan::new(
                    &dp,
                    self.settings.rounds.max(1),
                    plan.clients as usize,
                    plan.min_survivors as usize,
                )?;
                *coordinator.noise.insert(ddg)
            }
        };
        let mut accountant = flspec::dp::accountant::Accountant::new(dp.delta)?;
        for row in &self.results {
            accountant.record(&ddg.provisioning.achieved(row.contributors.len())?.rdp())?;
        }
        Ok(Some(
            accountant.record(&ddg.provisioning.achieved(contributors)?.rdp())?,
        ))
    }

    fn clear_messages(&mut self) {
        self.advertise = None;
        self.signed_advertise = None;
        self.signed_keys = PerCollaborator::new();
        self.consistency_request = None;
        self.consistency_signature = None;
        self.checked_unmask = PerCollaborator::new();
        self.signing_certificate.clear();
        self.signing_certificates.clear();
        self.rejoin_certificates = PerCollaborator::new();
        self.public_keys = None;
        self.outbox.clear();
        self.inbox = PerCollaborator::new();
        self.masked = None;
        self.masked_by.clear();
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
    use std::sync::Arc;

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
                agg.begin_round(&ctx, &mut coordinator)
                    .expect("begin_round");
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
                Join::Masked => {
                    // The runtime folds the masked inputs one at a time, then reconstructs.
                    for input in inputs {
                        let _next = self.agg.receive_masked(&ctx, input, c)?;
                    }
                    self.agg.reconstruct(c)
                }
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

    fn names() -> Vec<String> {
        NAMES.iter().map(|n| (*n).to_string()).collect()
    }

    fn certificates(ids: &super::super::site::RunIdentities) -> Vec<(String, Vec<u8>)> {
        ids_certificates(ids, &names())
    }

    fn ids_certificates(
        ids: &super::super::site::RunIdentities,
        names: &[String],
    ) -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .map(|n| {
                let der = ids.keys_of(n).expect("keys").certificate().to_vec();
                (n.clone(), der)
            })
            .collect()
    }

    /// The relayed certificates by SecAgg id (ids as the flow numbers `names`).
    fn peer_keys(certificates: &[(String, Vec<u8>)], names: &[String]) -> PeerKeys {
        PeerKeys::new(
            certificates
                .iter()
                .map(|(n, der)| {
                    let i = names.iter().position(|m| m == n).expect("a name");
                    (ClientId(i as u32 + 1), (n.clone(), der.clone()))
                })
                .collect(),
        )
    }

    fn ids(n: u32) -> Vec<ClientId> {
        (1..=n).map(ClientId).collect()
    }

    /// The aggregator relays the signing certificates; it cannot substitute one: each
    /// collaborator checks every certificate against the CA for the name it is presented under.
    #[test]
    fn a_relayed_signing_certificate_that_is_not_the_named_collaborators_is_refused() {
        let ids_ = super::super::site::RunIdentities::new(&names()).expect("identities");
        let keys = ids_.keys_of("Bengaluru").expect("keys");
        let honest = certificates(&ids_);
        let directory = peer_keys(&honest, &names())
            .directory(&keys, ids(3))
            .expect("honest certificates");
        assert_eq!(directory.len(), 3);
        // collaborator-003's certificate presented as Portland's.
        let mut swapped = honest.clone();
        swapped[1].1 = honest[2].1.clone();
        let err = peer_keys(&swapped, &names())
            .directory(&keys, ids(3))
            .expect_err("a certificate of another name")
            .to_string();
        assert!(err.contains("presented for `Portland`"), "{err}");
        assert!(err.contains("collaborator-003"), "{err}");
        // Portland's certificate from another CA (the aggregator's own, say).
        let other = super::super::site::RunIdentities::new(&names()).expect("identities");
        let mut foreign = honest.clone();
        foreign[1].1 = certificates(&other)[1].1.clone();
        let err = peer_keys(&foreign, &names())
            .directory(&keys, ids(3))
            .expect_err("a certificate of another CA")
            .to_string();
        assert!(err.contains("presented for `Portland`"), "{err}");
        // A certificate the aggregator withheld is left out (its signatures will fail).
        let directory = peer_keys(&honest[..2], &names())
            .directory(&keys, ids(3))
            .expect("two certificates");
        assert_eq!(directory.len(), 2);
    }

    /// On SecAgg+ a collaborator verifies only the certificates its round can need (its
    /// neighbours' neighbourhoods), not the whole population's, and each once.
    #[test]
    fn secagg_plus_verifies_only_the_neighbourhoods_certificates() {
        let all: Vec<String> = (1..=40).map(|i| format!("site-{i:02}")).collect();
        let run = super::super::site::RunIdentities::new(&all).expect("identities");
        let keys = run.keys_of("site-01").expect("keys");
        let config = secagg::Config::new(
            ids(40),
            4,
            update::LEN,
            secagg::Quantizer::new(4.0, 40).expect("quantizer"),
        )
        .with_mode(Mode::SecAggPlus {
            k: 4,
            graph_seed: 7,
        });
        let needed = keys_needed(&config, ClientId(1)).expect("needed");
        assert!(
            needed.len() <= 9 && needed.contains(&ClientId(1)),
            "{needed:?}"
        );
        let mut peers = peer_keys(&ids_certificates(&run, &all), &all);
        let directory = peers.directory(&keys, needed.clone()).expect("verified");
        assert_eq!(directory.len(), needed.len());
        assert_eq!(peers.verified_count(), needed.len());
        let again = peers.directory(&keys, needed.clone()).expect("again");
        assert!(
            Arc::ptr_eq(&directory, &again),
            "nothing verified or decoded twice"
        );
        // On the full graph everyone is needed.
        let full = secagg::Config::new(
            ids(40),
            27,
            update::LEN,
            secagg::Quantizer::new(4.0, 40).expect("quantizer"),
        );
        assert_eq!(keys_needed(&full, ClientId(1)).expect("needed").len(), 40);
    }

    /// Malicious-secure joins bind signed keys and consistency signatures to the
    /// authenticated sender, as the semi-honest ones do.
    #[test]
    fn signed_keys_labelled_as_another_collaborator_are_refused() {
        let ids = super::super::site::RunIdentities::new(&names()).expect("identities");
        let settings = Settings {
            rounds: 1,
            security: secagg::Security::Malicious,
            ..Settings::default()
        };
        let mut agg = SecAggMnist::new(settings, Vec::new());
        let mut coordinator = Coordinator::default();
        let all = names();
        let ctx = Ctx::aggregator("SecAggMnist", "test", &all);
        let _next = agg.start(&ctx, &mut coordinator).expect("start");
        let inputs = certificates(&ids)
            .into_iter()
            .map(|(n, der)| message(&n, |s| s.signing_certificate = der))
            .collect();
        let _next = agg
            .collect_identities(&ctx, Inputs::new(inputs), &mut coordinator)
            .expect("certificates relayed");
        assert_eq!(agg.signing_certificates.len(), 3);
        let config = agg.secagg.clone().expect("a config");
        assert_eq!(config.security, secagg::Security::Malicious);
        assert_eq!(config.threshold, 3, "t > 2n/3 for n = 3");
        let keys = ids.keys_of("Portland").expect("keys");
        let directory = peer_keys(&agg.signing_certificates, &names())
            .directory(&keys, (1..=3).map(ClientId))
            .expect("verified");
        let mut portland =
            secagg::Client::new_signed(config, ClientId(2), keys.identity(), directory, &mut OsRng)
                .expect("a signed client");
        let mut signed = portland.advertise_signed().expect("advertise");
        signed.keys.sender = ClientId(1);
        let inputs = vec![message("Portland", |s| s.signed_advertise = Some(signed))];
        let err = refused(
            agg.generate_collaborator_index(&ctx, Inputs::new(inputs), &mut coordinator)
                .map(|_| ()),
        );
        assert!(err.contains("`Portland`"), "{err}");
        assert!(err.contains("signed public keys"), "{err}");
    }

    /// A collaborator that revealed its shares for a round sits out that round's restart
    /// (after a crash of the director) instead of masking a second sum over other survivors;
    /// the next round it takes part again.
    #[test]
    fn a_collaborator_sits_out_the_restart_of_a_round_it_revealed_shares_for() {
        let data = flspec_tch::datasets::mnist::Mnist::load_bundled().expect("bundled MNIST");
        let share = data.shard(1, 3).expect("a share");
        let mut site = Site::from_share("Portland", &share, "strided", 42, None).expect("a site");
        let round = Round::start(None);
        let names = round.names.clone();
        let ctx = Ctx::collaborator("SecAggMnist", "test", &names, "Portland");
        let mut copy = round.agg.clone();
        let _keys = copy
            .generate_keys(&ctx, &mut site)
            .expect("the round's keys");
        // `reveal_shares` records the round it revealed shares for.
        site.revealed = site.round_in_progress;
        let mut again = round.agg.clone();
        let err = again
            .generate_keys(&ctx, &mut site)
            .expect_err("a restart of the revealed round");
        let dropout = err
            .downcast_ref::<flspec::Dropout>()
            .unwrap_or_else(|| panic!("not a dropout: {err}"));
        assert!(
            dropout.to_string().contains("revealed its shares"),
            "{dropout}"
        );
        let mut next = round.agg.clone();
        next.secagg.as_mut().expect("a config").round += 1;
        let _keys = next
            .generate_keys(&ctx, &mut site)
            .expect("the next round goes on");
    }
}

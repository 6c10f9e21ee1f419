//! Running a whole round in memory: for tests, benchmarks and the local runtime.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::{Result, SecAggError};
use super::identity::{SigningIdentity, VerifyingDirectory};
use super::messages::{AllAdvertised, SignedKeyBroadcast};
use super::messages::{Redacted, encode};
use super::parallel::{self, default_threads};
use super::rng::SecretRng;
use super::server::AggregateSum;
use super::{Client, ClientId, Config, Security, Server, Stage};

/// One client's input to a simulated round.
///
/// # Security
/// The private value the round protects: wiped on drop, `Debug` prints only its kind and
/// length, and it is not `Clone` (no unwiped-later copies by accident).
pub enum Input {
    /// Raw values, quantized by the client.
    Float(Vec<f32>),
    /// Values already quantized by the round's quantizer.
    Quantized(Vec<u32>),
    /// Elements of `Z_(2^32)` of the caller's own encoding
    /// ([`Client::masked_input_ring`]).
    Ring(Vec<u32>),
}

impl core::fmt::Debug for Input {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (kind, len) = match self {
            Self::Float(v) => ("Float", v.len()),
            Self::Quantized(v) => ("Quantized", v.len()),
            Self::Ring(v) => ("Ring", v.len()),
        };
        f.debug_tuple(kind).field(&Redacted(4 * len)).finish()
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        match self {
            Self::Float(v) => v.zeroize(),
            Self::Quantized(v) | Self::Ring(v) => v.zeroize(),
        }
    }
}

impl ZeroizeOnDrop for Input {}

/// When each client vanishes: a client dropped "before" a stage sends nothing from that stage
/// on. Clients not listed take part to the end.
#[derive(Clone, Debug, Default)]
pub struct DropoutPlan {
    drops: BTreeMap<ClientId, Stage>,
}

impl DropoutPlan {
    /// No dropouts.
    pub fn none() -> Self {
        Self::default()
    }

    /// Makes `client` vanish before it sends its message of `stage`.
    pub fn drop_before(mut self, client: ClientId, stage: Stage) -> Self {
        self.drops.insert(client, stage);
        self
    }

    /// The stage before which `client` vanishes, if any.
    pub fn stage_of(&self, client: ClientId) -> Option<Stage> {
        self.drops.get(&client).copied()
    }

    fn sends(&self, client: ClientId, stage: Stage) -> bool {
        self.drops.get(&client).is_none_or(|d| stage < *d)
    }
}

/// One message the server received, as encoded bytes. In the malicious-secure mode the
/// consistency signatures are recorded under [`Stage::Unmasking`] (they open that round).
///
/// # Security
/// An unmasking response holds revealed shares, so the bytes are wiped on drop, `Debug`
/// prints only their length, and it is not `Clone`.
pub struct TranscriptEntry {
    /// The round it belongs to.
    pub stage: Stage,
    /// Its sender.
    pub from: ClientId,
    /// Its postcard encoding.
    pub bytes: Vec<u8>,
}

impl core::fmt::Debug for TranscriptEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TranscriptEntry")
            .field("stage", &self.stage)
            .field("from", &self.from)
            .field("bytes", &Redacted(self.bytes.len()))
            .finish()
    }
}

impl Drop for TranscriptEntry {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for TranscriptEntry {}

/// Everything the server received in a round: its whole view, besides its own config.
#[derive(Debug, Default)]
pub struct Transcript {
    /// The messages, in arrival order.
    pub entries: Vec<TranscriptEntry>,
}

impl Transcript {
    /// Total bytes received.
    pub fn total_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes.len()).sum()
    }

    /// Whether any received message contains `needle` as a contiguous byte string.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && self
                .entries
                .iter()
                .any(|e| e.bytes.windows(needle.len()).any(|w| w == needle))
    }
}

/// What a simulated round produced.
#[derive(Debug)]
pub struct SimulationOutcome {
    /// The server's result: the sum, or the error that aborted the round.
    pub result: Result<AggregateSum>,
    /// Every message the server received.
    pub transcript: Transcript,
    /// Clients that refused to go on (treated as dropped from then on), with their reason.
    pub client_errors: BTreeMap<ClientId, SecAggError>,
    /// Bytes each client sent (postcard encoding of its messages).
    pub bytes_sent: BTreeMap<ClientId, usize>,
    /// Bytes each client received from the server.
    pub bytes_received: BTreeMap<ClientId, usize>,
}

struct Run {
    transcript: Transcript,
    client_errors: BTreeMap<ClientId, SecAggError>,
    bytes_sent: BTreeMap<ClientId, usize>,
    bytes_received: BTreeMap<ClientId, usize>,
}

impl Run {
    fn record_in(&mut self, stage: Stage, from: ClientId, bytes: Vec<u8>) {
        *self.bytes_sent.entry(from).or_default() += bytes.len();
        self.transcript
            .entries
            .push(TranscriptEntry { stage, from, bytes });
    }

    fn record_out(&mut self, to: ClientId, len: usize) {
        *self.bytes_received.entry(to).or_default() += len;
    }
}

/// Runs one round in memory: every client in `config` (with its input from `inputs`) and the
/// server, with the dropouts of `plan`. Each client's RNG is a ChaCha20 ([`super::rng::SecretRng`],
/// wiped on drop) seeded with 32 bytes from `rng` (in sorted id order), so a seeded `rng` makes the round reproducible.
///
/// A malicious-secure config ([`Security::Malicious`]) runs the signed protocol with the
/// consistency check: each client first gets a fresh Ed25519 [`SigningIdentity`] drawn from
/// `rng` (identities made per run, as in the local runtime), the directory holds them all,
/// and the server checks signatures too. A client dropped before [`Stage::Unmasking`] neither
/// signs the survivor set nor answers.
///
/// # Errors
/// An invalid config, or a client without an input. Errors of the round itself (too few
/// survivors) are in [`SimulationOutcome::result`].
///
/// ```
/// use std::collections::BTreeMap;
/// use flspec::secagg::{simulate_round, ClientId, Config, DropoutPlan, Input, Quantizer, Stage};
/// use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
///
/// let ids: Vec<ClientId> = (1..=4).map(ClientId).collect();
/// let config = Config::new(ids.clone(), 3, 2, Quantizer::new(1.0, 4)?);
/// let inputs: BTreeMap<_, _> = ids.iter().map(|&id| (id, Input::Float(vec![0.5, -0.25]))).collect();
/// let plan = DropoutPlan::none().drop_before(ClientId(4), Stage::MaskedInputCollection);
/// let out = simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::from_seed([0; 32]))?;
/// let sum = out.result?;
/// assert_eq!(sum.contributors.len(), 3);
/// assert!((sum.values[0] - 1.5).abs() < 1e-6);
/// # Ok::<(), flspec::secagg::SecAggError>(())
/// ```
pub fn simulate_round<R: RngCore + CryptoRng>(
    config: &Config,
    inputs: &BTreeMap<ClientId, Input>,
    plan: &DropoutPlan,
    rng: &mut R,
) -> Result<SimulationOutcome> {
    simulate_round_with_threads(config, inputs, plan, rng, default_threads())
}

/// [`simulate_round`] on `threads` worker threads: within each stage the clients' work (key
/// generation, key agreements, Shamir sharing and encryption, masking, signing and
/// verifying) runs in parallel, and so does the server's [`Server::finish`]
/// ([`Server::with_threads`]). [`simulate_round`] uses [`default_threads`].
///
/// The outcome is the same, byte for byte, for any `threads`: the clients' RNGs are drawn from
/// `rng` in id order before any work starts, and their messages reach the server (and the
/// transcript) in the order of the sequential round.
///
/// # Errors
/// As [`simulate_round`].
pub fn simulate_round_with_threads<R: RngCore + CryptoRng>(
    config: &Config,
    inputs: &BTreeMap<ClientId, Input>,
    plan: &DropoutPlan,
    rng: &mut R,
    threads: NonZeroUsize,
) -> Result<SimulationOutcome> {
    config.validate()?;
    let ids = config.sorted_clients();
    let signed = config.security == Security::Malicious;
    let mut identities = BTreeMap::new();
    if signed {
        for &id in &ids {
            identities.insert(id, SigningIdentity::generate(&mut SecretRng::from_rng(rng)));
        }
    }
    let directory = Arc::new(VerifyingDirectory::from_identities(
        identities.iter().map(|(id, i)| (*id, i)),
    )?);
    // Every client's RNG is drawn here, in id order: a fresh one per client, wiped on drop (the
    // seed too). The clients are then built in parallel.
    let mut to_build = Vec::with_capacity(ids.len());
    let mut missing = None;
    for &id in &ids {
        let Some(input) = inputs.get(&id) else {
            missing = Some(id);
            break;
        };
        to_build.push((id, input, identities.remove(&id), SecretRng::from_rng(rng)));
    }
    let built = parallel::map(
        threads,
        to_build,
        |(id, input, identity, mut client_rng)| {
            let client = match identity {
                Some(identity) => Client::new_signed(
                    config.clone(),
                    id,
                    identity,
                    directory.clone(),
                    &mut client_rng,
                ),
                None => Client::new(config.clone(), id, &mut client_rng),
            };
            client.map(|c| (id, (c, input)))
        },
    );
    let mut clients: BTreeMap<ClientId, (Client, &Input)> =
        built.into_iter().collect::<Result<_>>()?;
    if let Some(client) = missing {
        return Err(SecAggError::UnexpectedClient {
            client,
            why: "has no input in the simulation",
        });
    }
    let mut server = Server::new(config.clone())?.with_threads(threads);
    if signed {
        server = server.with_directory(directory);
    }
    let mut run = Run {
        transcript: Transcript::default(),
        client_errors: BTreeMap::new(),
        bytes_sent: ids.iter().map(|&id| (id, 0)).collect(),
        bytes_received: ids.iter().map(|&id| (id, 0)).collect(),
    };
    let result = drive(&mut server, &mut clients, plan, &mut run, threads);
    let result = match result {
        Ok(()) => server.finish(),
        Err(e) => Err(e),
    };
    Ok(SimulationOutcome {
        result,
        transcript: run.transcript,
        client_errors: run.client_errors,
        bytes_sent: run.bytes_sent,
        bytes_received: run.bytes_received,
    })
}

/// One client's answer in a stage, computed on a worker: `Err` for an error of the simulation
/// itself (it ends the round, as `?` would in a sequential loop), else the bytes the client
/// received and its reply: `Err` if the client refused (it counts as dropped from then on),
/// else its message with the message's encoding (an encoding error ends the round).
type Answer<M> = Result<(usize, Result<(Result<Vec<u8>>, M)>)>;

/// An [`Answer`] for a client that received `received` bytes and replied `reply`.
fn answer<M: serde::Serialize>(received: usize, reply: Result<M>) -> Answer<M> {
    Ok((received, reply.map(|m| (encode(&m), m))))
}

/// Hands the clients' answers of `stage` to the server in order, exactly as a sequential loop
/// over the same clients would (stopping at the first error of the simulation), and returns
/// the clients whose message the server accepted.
fn deliver<M>(
    run: &mut Run,
    server: &mut Server,
    stage: Stage,
    answers: Vec<(ClientId, Answer<M>)>,
    mut receive: impl FnMut(&mut Server, ClientId, M) -> Result<()>,
) -> Result<Vec<ClientId>> {
    let mut accepted = Vec::with_capacity(answers.len());
    for (id, answer) in answers {
        let (received, reply) = answer?;
        run.record_out(id, received);
        match reply {
            Ok((bytes, msg)) => {
                run.record_in(stage, id, bytes?);
                receive(server, id, msg)?;
                accepted.push(id);
            }
            Err(e) => {
                run.client_errors.insert(id, e);
            }
        }
    }
    Ok(accepted)
}

/// The clients still taking part in `stage`, in id order.
fn live_clients<'c, 'i>(
    clients: &'c mut BTreeMap<ClientId, (Client, &'i Input)>,
    plan: &DropoutPlan,
    run: &Run,
    stage: Stage,
) -> Vec<(ClientId, &'c mut Client, &'i Input)> {
    clients
        .iter_mut()
        .filter(|(id, _)| plan.sends(**id, stage) && !run.client_errors.contains_key(*id))
        .map(|(&id, (client, input))| (id, client, *input))
        .collect()
}

/// The clients of `order` (in that order, each at most once) still taking part in the
/// unmasking.
fn listed_clients<'c>(
    clients: &'c mut BTreeMap<ClientId, (Client, &Input)>,
    order: &[ClientId],
    plan: &DropoutPlan,
    run: &Run,
) -> Vec<(ClientId, &'c mut Client)> {
    let mut by_id: BTreeMap<ClientId, &mut Client> =
        clients.iter_mut().map(|(&id, (c, _))| (id, c)).collect();
    order
        .iter()
        .filter(|&&id| plan.sends(id, Stage::Unmasking) && !run.client_errors.contains_key(&id))
        .filter_map(|&id| Some((id, by_id.remove(&id)?)))
        .collect()
}

fn drive(
    server: &mut Server,
    clients: &mut BTreeMap<ClientId, (Client, &Input)>,
    plan: &DropoutPlan,
    run: &mut Run,
    threads: NonZeroUsize,
) -> Result<()> {
    let signed = server.config().security == Security::Malicious;
    let secagg_plus = matches!(server.config().mode, super::Mode::SecAggPlus { .. });
    // Round 0 (a client that cannot advertise ends the simulation).
    let live = live_clients(clients, plan, run, Stage::AdvertiseKeys);
    let adverts = parallel::map(threads, live, |(id, client, _)| -> Result<_> {
        let msg = if signed {
            Advert::Signed(client.advertise_signed()?)
        } else {
            Advert::Plain(client.advertise()?)
        };
        let bytes = match &msg {
            Advert::Plain(m) => encode(m),
            Advert::Signed(m) => encode(m),
        };
        Ok((id, bytes?, msg))
    });
    for advert in adverts {
        let (id, bytes, msg) = advert?;
        run.record_in(Stage::AdvertiseKeys, id, bytes);
        match msg {
            Advert::Plain(m) => server.receive_advertise(m)?,
            Advert::Signed(m) => server.receive_signed_advertise(m)?,
        }
    }
    let (all, all_len) = if signed {
        let all = server.broadcast_signed_keys()?;
        let len = encode(&all)?.len();
        (Broadcast::Signed(all), len)
    } else {
        let all = server.broadcast_keys()?;
        let len = encode(&all)?.len();
        (Broadcast::Plain(all), len)
    };
    // Round 1.
    let live = live_clients(clients, plan, run, Stage::ShareKeys);
    let view: &Server = server;
    let answers = parallel::map(threads, live, |(id, client, _)| {
        let mut shared = || match &all {
            Broadcast::Plain(all) => answer(all_len, client.share_keys(all)),
            // SecAgg+: each client gets only its neighbourhood's signed keys.
            Broadcast::Signed(_) if secagg_plus => {
                let mine = view.signed_keys_for(id)?;
                answer(encode(&mine)?.len(), client.share_keys_signed(&mine))
            }
            Broadcast::Signed(all) => answer(all_len, client.share_keys_signed(all)),
        };
        (id, shared())
    });
    deliver(run, server, Stage::ShareKeys, answers, |s, id, shares| {
        s.receive_shares(id, shares)
    })?;
    let routed = server.route_shares()?;
    // Round 2.
    let live = live_clients(clients, plan, run, Stage::MaskedInputCollection);
    let answers = parallel::map(threads, live, |(id, client, input)| {
        let mut masked = || {
            let inbox = routed.get(&id).map_or(&[][..], Vec::as_slice);
            let received = encode(&inbox)?.len();
            let masked = match input {
                Input::Float(x) => client.masked_input(x, inbox),
                Input::Quantized(q) => client.masked_input_quantized(q, inbox),
                Input::Ring(r) => client.masked_input_ring(r, inbox),
            };
            answer(received, masked)
        };
        (id, masked())
    });
    deliver(
        run,
        server,
        Stage::MaskedInputCollection,
        answers,
        |s, _, msg| s.receive_masked(msg),
    )?;
    if signed {
        return drive_checked_unmasking(server, clients, plan, run, threads);
    }
    let request = server.unmask_request()?;
    let request_len = encode(&request)?.len();
    // Round 3.
    let live = listed_clients(clients, &request.survivors, plan, run);
    let answers = parallel::map(threads, live, |(id, client)| {
        (id, answer(request_len, client.unmask(&request)))
    });
    deliver(run, server, Stage::Unmasking, answers, |s, _, resp| {
        s.receive_unmask(resp)
    })?;
    Ok(())
}

/// A round-0 message of either mode.
enum Advert {
    Plain(super::messages::AdvertiseKeys),
    Signed(super::messages::SignedAdvertiseKeys),
}

enum Broadcast {
    Plain(AllAdvertised),
    Signed(SignedKeyBroadcast),
}

/// The consistency check and unmasking of the malicious-secure mode.
fn drive_checked_unmasking(
    server: &mut Server,
    clients: &mut BTreeMap<ClientId, (Client, &Input)>,
    plan: &DropoutPlan,
    run: &mut Run,
    threads: NonZeroUsize,
) -> Result<()> {
    let check = server.consistency_request()?;
    let check_len = encode(&check)?.len();
    let live = listed_clients(clients, &check.survivors, plan, run);
    let answers = parallel::map(threads, live, |(id, client)| {
        (id, answer(check_len, client.sign_survivors(&check)))
    });
    let signers = deliver(run, server, Stage::Unmasking, answers, |s, _, sig| {
        s.receive_consistency(sig)
    })?;
    let full = server.checked_unmask_request()?;
    let secagg_plus = matches!(server.config().mode, super::Mode::SecAggPlus { .. });
    let live = listed_clients(clients, &signers, plan, run);
    let view: &Server = server;
    let answers = parallel::map(threads, live, |(id, client)| {
        let mut unmasked = || {
            // SecAgg+: each client gets only the signatures it counts.
            let trimmed;
            let request = if secagg_plus {
                trimmed = view.checked_unmask_request_for(id)?;
                &trimmed
            } else {
                &full
            };
            answer(encode(request)?.len(), client.unmask_checked(request))
        };
        (id, unmasked())
    });
    deliver(run, server, Stage::Unmasking, answers, |s, _, resp| {
        s.receive_unmask(resp)
    })?;
    Ok(())
}

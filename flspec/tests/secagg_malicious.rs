//! The malicious-secure mode (`Security::Malicious`) against a malicious server: an attack
//! catalogue. A harness plays the server, drives real clients through the sans-IO API, and
//! deviates from the protocol in one way per test. Each attack must end in a refusal by the
//! honest clients (a typed error naming the check), or in the server learning nothing beyond a
//! sum of at least `t` inputs: its whole view (every byte it received) is searched for any
//! client's input, as `secagg_transcript.rs` does.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;

use flspec::secagg::kdf;
use flspec::secagg::messages::encode;
use flspec::secagg::prg::Sign;
use flspec::secagg::shamir::{self, SecretShare};
use flspec::secagg::{
    CheckedUnmaskRequest, Client, ClientId, Config, ConsistencyRequest, ConsistencySignature,
    EncryptedShare, MaskedInput, Mode, Quantizer, SecAggError, Security, Server,
    SignedAdvertiseKeys, SignedKeyBroadcast, SigningIdentity, UnmaskRequest, UnmaskResponse,
    VerifyingDirectory,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;
use x25519_dalek::{PublicKey, StaticSecret};

const D: usize = 64;
const SESSION: [u8; 32] = [7; 32];

/// Client `id`'s long-term identity: the same in every session and round, as a PKI's would be.
fn identity(id: ClientId) -> SigningIdentity {
    SigningIdentity::from_secret_bytes(&[id.0 as u8; 32])
}

fn directory(ids: &[ClientId]) -> Arc<VerifyingDirectory> {
    let identities: Vec<_> = ids.iter().map(|&id| (id, identity(id))).collect();
    Arc::new(
        VerifyingDirectory::from_identities(identities.iter().map(|(id, i)| (*id, i))).unwrap(),
    )
}

fn ids(n: u32) -> Vec<ClientId> {
    (1..=n).map(ClientId).collect()
}

fn config(n: u32, t: u32) -> Config {
    Config::new(ids(n), t, D, Quantizer::new(1.0, n).unwrap())
        .with_session(SESSION)
        .with_round(1)
        .with_security(Security::Malicious)
}

/// The malicious server: real clients, and every byte they send it.
struct Harness {
    cfg: Config,
    clients: BTreeMap<ClientId, Client>,
    inputs: BTreeMap<ClientId, Vec<u32>>,
    /// The `s` public keys the clients advertised.
    s_public: BTreeMap<ClientId, [u8; 32]>,
    /// The signed advertisements, by sender.
    adverts: BTreeMap<ClientId, SignedAdvertiseKeys>,
    /// The encrypted shares each client sent.
    shares_sent: BTreeMap<ClientId, Vec<EncryptedShare>>,
    view: Vec<Vec<u8>>,
}

impl Harness {
    fn new(cfg: &Config, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let all = cfg.sorted_clients();
        let dir = directory(&all);
        let q = &cfg.quantizer;
        let inputs = all
            .iter()
            .map(|&id| {
                let raw: Vec<f32> = (0..D)
                    .map(|j| ((id.0 as usize * D + j) as f32 * 0.37).sin() * 0.9)
                    .collect();
                (id, q.quantize(&raw, &mut rng).unwrap())
            })
            .collect();
        let clients = all
            .iter()
            .map(|&id| {
                let c = Client::new_signed(cfg.clone(), id, identity(id), dir.clone(), &mut rng);
                (id, c.unwrap())
            })
            .collect();
        Self {
            cfg: cfg.clone(),
            clients,
            inputs,
            s_public: BTreeMap::new(),
            adverts: BTreeMap::new(),
            shares_sent: BTreeMap::new(),
            view: Vec::new(),
        }
    }

    fn record<T: Serialize>(&mut self, m: &T) {
        self.view.push(encode(m).unwrap());
    }

    fn client(&mut self, id: ClientId) -> &mut Client {
        self.clients.get_mut(&id).unwrap()
    }

    fn advertise(&mut self) -> Vec<SignedAdvertiseKeys> {
        let out: Vec<_> = self
            .clients
            .values_mut()
            .map(|c| c.advertise_signed().unwrap())
            .collect();
        for m in &out {
            self.record(m);
            self.s_public.insert(m.keys.sender, m.keys.s_public);
            self.adverts.insert(m.keys.sender, m.clone());
        }
        out
    }

    fn broadcast(&self, keys: Vec<SignedAdvertiseKeys>) -> SignedKeyBroadcast {
        SignedKeyBroadcast {
            session: self.cfg.session,
            round: self.cfg.round,
            keys,
        }
    }

    /// Every client shares keys; returns the inboxes routed honestly.
    fn share_keys(&mut self, b: &SignedKeyBroadcast) -> BTreeMap<ClientId, Vec<EncryptedShare>> {
        let mut inbox: BTreeMap<ClientId, Vec<EncryptedShare>> = BTreeMap::new();
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            let shares = self.client(id).share_keys_signed(b).unwrap();
            self.record(&shares);
            self.shares_sent.insert(id, shares.clone());
            for e in shares {
                inbox.entry(e.recipient).or_default().push(e);
            }
        }
        inbox
    }

    fn mask(
        &mut self,
        id: ClientId,
        inbox: &BTreeMap<ClientId, Vec<EncryptedShare>>,
    ) -> MaskedInput {
        let input = self.inputs[&id].clone();
        let m = self
            .client(id)
            .masked_input_quantized(&input, &inbox[&id])
            .unwrap();
        self.record(&m);
        m
    }

    /// Rounds 0 to 2, honest; returns the masked inputs of everyone.
    fn through_masked(cfg: &Config, seed: u64) -> (Self, BTreeMap<ClientId, MaskedInput>) {
        let mut h = Self::new(cfg, seed);
        let adverts = h.advertise();
        let b = h.broadcast(adverts);
        let inbox = h.share_keys(&b);
        let ids = cfg.sorted_clients();
        let masked = ids.iter().map(|&id| (id, h.mask(id, &inbox))).collect();
        (h, masked)
    }

    /// Rounds 0 to 2 through a real [`Server`] that checks signatures: every client advertises
    /// and shares keys, and the clients in `masking` send their masked inputs.
    fn through_masked_with_server(cfg: &Config, seed: u64, masking: &[ClientId]) -> (Self, Server) {
        let all = cfg.sorted_clients();
        let mut server = Server::new(cfg.clone())
            .unwrap()
            .with_directory(directory(&all));
        let mut h = Self::new(cfg, seed);
        for m in h.advertise() {
            server.receive_signed_advertise(m).unwrap();
        }
        let b = server.broadcast_signed_keys().unwrap();
        for &id in &all {
            let shares = h.client(id).share_keys_signed(&b).unwrap();
            h.record(&shares);
            h.shares_sent.insert(id, shares.clone());
            server.receive_shares(id, shares).unwrap();
        }
        let inbox = server.route_shares().unwrap();
        for &id in masking {
            server.receive_masked(h.mask(id, &inbox)).unwrap();
        }
        (h, server)
    }

    fn consistency(&self, survivors: &[ClientId]) -> ConsistencyRequest {
        ConsistencyRequest {
            session: self.cfg.session,
            round: self.cfg.round,
            survivors: survivors.to_vec(),
        }
    }

    /// `signers` sign `survivors`.
    fn sign(
        &mut self,
        signers: &[ClientId],
        survivors: &[ClientId],
    ) -> BTreeMap<ClientId, ConsistencySignature> {
        let req = self.consistency(survivors);
        let out: BTreeMap<_, _> = signers
            .iter()
            .map(|&id| (id, self.client(id).sign_survivors(&req).unwrap()))
            .collect();
        for m in out.values() {
            self.record(m);
        }
        out
    }

    fn checked(
        &self,
        survivors: &[ClientId],
        dropped: &[ClientId],
        signatures: impl IntoIterator<Item = ConsistencySignature>,
    ) -> CheckedUnmaskRequest {
        CheckedUnmaskRequest {
            session: self.cfg.session,
            request: UnmaskRequest {
                round: self.cfg.round,
                survivors: survivors.to_vec(),
                dropped: dropped.to_vec(),
            },
            signatures: signatures.into_iter().collect(),
        }
    }

    fn unmask(&mut self, id: ClientId, req: &CheckedUnmaskRequest) -> UnmaskResponse {
        let r = self.client(id).unmask_checked(req).unwrap();
        self.record(&r);
        r
    }

    /// Whether any 3 consecutive quantized words of `id`'s input appear in the server's view.
    fn leaked(&self, id: ClientId) -> bool {
        self.inputs[&id].windows(3).any(|w| {
            let needle: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.view
                .iter()
                .any(|m| m.windows(needle.len()).any(|s| s == needle.as_slice()))
        })
    }

    fn assert_nothing_leaked(&self) {
        assert!(self.view.iter().map(Vec::len).sum::<usize>() > D * 4);
        for &id in self.inputs.keys() {
            assert!(
                !self.leaked(id),
                "client {id}'s quantized input is in the server's view"
            );
        }
    }
}

fn without(all: &[ClientId], gone: &[ClientId]) -> Vec<ClientId> {
    all.iter().copied().filter(|v| !gone.contains(v)).collect()
}

/// A client that refused must have aborted: it reveals nothing even to a valid-looking request.
fn assert_aborted(c: &mut Client, h_round: u64) {
    let req = CheckedUnmaskRequest {
        session: SESSION,
        request: UnmaskRequest {
            round: h_round,
            survivors: vec![],
            dropped: vec![],
        },
        signatures: vec![],
    };
    let e = c.unmask_checked(&req).unwrap_err();
    assert!(matches!(e, SecAggError::Aborted { .. }), "{e}");
}

// ------------------------------------------------------------------ honest rounds

fn honest_round(cfg: &Config, seed: u64) {
    let all = cfg.sorted_clients();
    let dropped_early = all[1]; // sends no masked input
    let dropped_late = all[3]; // signs U3, then vanishes before unmasking
    let (mut h, mut server) =
        Harness::through_masked_with_server(cfg, seed, &without(&all, &[dropped_early]));
    let creq = server.consistency_request().unwrap();
    assert!(!creq.survivors.contains(&dropped_early));
    let u3 = creq.survivors.clone();
    for &id in &u3 {
        server
            .receive_consistency(h.client(id).sign_survivors(&creq).unwrap())
            .unwrap();
    }
    let ureq = server.checked_unmask_request().unwrap();
    assert_eq!(ureq.request.dropped, vec![dropped_early]);
    for &id in &without(&u3, &[dropped_late]) {
        server.receive_unmask(h.unmask(id, &ureq)).unwrap();
    }
    let sum = server.finish().unwrap();
    assert_eq!(sum.contributors, u3);
    let mut plain = vec![0u32; D];
    for id in &u3 {
        for (s, v) in plain.iter_mut().zip(&h.inputs[id]) {
            *s = s.wrapping_add(*v);
        }
    }
    assert_eq!(
        sum.sum, plain,
        "the malicious-secure round gives the exact sum"
    );
    h.assert_nothing_leaked();
}

#[test]
fn honest_malicious_secure_round_full_graph_gives_the_exact_sum() {
    honest_round(&config(7, 5), 1);
}

#[test]
fn honest_malicious_secure_round_secagg_plus_gives_the_exact_sum() {
    let cfg = config(12, 5).with_mode(Mode::SecAggPlus {
        k: 6,
        graph_seed: 5,
    });
    honest_round(&cfg, 2);
}

// ------------------------------------------------------------------ the attack catalogue

#[test]
fn substituted_public_keys_are_refused() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let victim = ClientId(3);
    for resign in [false, true] {
        let mut h = Harness::new(&cfg, 10);
        let mut adverts = h.advertise();
        // The server swaps in a mask key it knows the secret of.
        let known = StaticSecret::from([42u8; 32]);
        let a = adverts
            .iter_mut()
            .find(|a| a.keys.sender == victim)
            .unwrap();
        a.keys.s_public = PublicKey::from(&known).to_bytes();
        if resign {
            // ... or a whole advertisement for the victim's id, validly signed with a key of
            // its own (a client it runs with its own directory).
            let server_key = SigningIdentity::from_secret_bytes(&[200; 32]);
            let dir =
                Arc::new(VerifyingDirectory::from_identities([(victim, &server_key)]).unwrap());
            let mut impostor = Client::new_signed(
                cfg.clone(),
                victim,
                server_key,
                dir,
                &mut ChaCha20Rng::seed_from_u64(0),
            )
            .unwrap();
            *a = impostor.advertise_signed().unwrap();
        }
        let b = h.broadcast(adverts);
        for &id in &all {
            let e = h.client(id).share_keys_signed(&b).unwrap_err();
            assert!(
                matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
                "client {id}: {e}"
            );
            assert!(e.to_string().contains("refused"), "{e}");
            assert_aborted(h.client(id), cfg.round);
        }
    }
}

#[test]
fn keys_replayed_from_another_session_are_refused() {
    let cfg_a = config(6, 5).with_session([1; 32]);
    let cfg_b = config(6, 5).with_session([2; 32]);
    let victim = ClientId(2);
    let mut old = Harness::new(&cfg_a, 20);
    let stale = old
        .advertise()
        .into_iter()
        .find(|a| a.keys.sender == victim)
        .unwrap();
    for relabel in [false, true] {
        let mut h = Harness::new(&cfg_b, 21);
        let mut adverts = h.advertise();
        let mut replay = stale.clone();
        if relabel {
            replay.session = cfg_b.session;
        }
        *adverts
            .iter_mut()
            .find(|a| a.keys.sender == victim)
            .unwrap() = replay;
        let b = h.broadcast(adverts);
        let e = h.client(ClientId(1)).share_keys_signed(&b).unwrap_err();
        if relabel {
            assert!(
                matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
                "{e}"
            );
        } else {
            assert!(matches!(e, SecAggError::WrongSession { .. }), "{e}");
        }
        assert_aborted(h.client(ClientId(1)), cfg_b.round);
    }
}

#[test]
fn keys_replayed_from_another_round_are_refused() {
    let cfg1 = config(6, 5);
    let cfg2 = config(6, 5).with_round(2);
    let victim = ClientId(4);
    let mut old = Harness::new(&cfg1, 30);
    let stale = old
        .advertise()
        .into_iter()
        .find(|a| a.keys.sender == victim)
        .unwrap();
    for relabel in [false, true] {
        let mut h = Harness::new(&cfg2, 31);
        let mut adverts = h.advertise();
        let mut replay = stale.clone();
        if relabel {
            replay.keys.round = 2;
        }
        *adverts
            .iter_mut()
            .find(|a| a.keys.sender == victim)
            .unwrap() = replay;
        let b = h.broadcast(adverts);
        let e = h.client(ClientId(1)).share_keys_signed(&b).unwrap_err();
        if relabel {
            assert!(
                matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
                "{e}"
            );
        } else {
            assert!(
                matches!(
                    e,
                    SecAggError::WrongRound {
                        expected: 2,
                        got: 1
                    }
                ),
                "{e}"
            );
        }
    }
}

/// Client X's masked input arrived, but the server declares it dropped (to everyone alike) and
/// asks for its `s` shares. The clients give them (X is outside U3), but never X's `b` shares:
/// with `s_X` rebuilt the server strips X's pairwise masks and is left with `x_X + PRG(b_X)`,
/// still uniformly masked. Asking a client for `b_X` too, with X listed as a survivor, is refused.
#[test]
fn client_declared_dropped_after_its_masked_input_stays_hidden() {
    let cfg = config(7, 5);
    let all = cfg.sorted_clients();
    let x = ClientId(2);
    let (mut h, masked) = Harness::through_masked(&cfg, 40);
    let u3 = without(&all, &[x]);
    // X itself refuses to sign a survivor set without it.
    let creq = h.consistency(&u3);
    let e = h.client(x).sign_survivors(&creq).unwrap_err();
    assert!(
        matches!(e, SecAggError::UnexpectedClient { client, .. } if client == x),
        "{e}"
    );
    let sigs = h.sign(&u3, &u3);
    let req = h.checked(&u3, &[x], sigs.values().cloned());
    let held_back = ClientId(7);
    let mut responses = Vec::new();
    for &id in &without(&u3, &[held_back]) {
        responses.push(h.unmask(id, &req));
    }
    // No b share of X was revealed; s shares of X were.
    assert!(
        responses
            .iter()
            .all(|r| r.seed_shares.iter().all(|s| s.owner != x))
    );
    let key_shares: Vec<_> = responses
        .iter()
        .flat_map(|r| r.key_shares.iter().map(move |s| (r.sender, s)))
        .filter(|(_, s)| s.owner == x)
        .collect();
    assert_eq!(key_shares.len(), 5);
    // The server now asks the last client for X's b share, listing X as a survivor.
    let greedy = h.checked(&all, &[], sigs.values().cloned());
    let e = h.client(held_back).unmask_checked(&greedy).unwrap_err();
    assert!(
        matches!(e, SecAggError::InconsistentSurvivors { .. }),
        "{e}"
    );
    assert_aborted(h.client(held_back), cfg.round);
    // What the server can do with s_X: strip X's pairwise masks. b_X still hides x_X.
    let graph = cfg.graph().unwrap();
    let shares: Vec<SecretShare> = key_shares
        .iter()
        .map(|(holder, s)| SecretShare::new(graph.share_x(x, *holder).unwrap(), s.share.clone()))
        .collect();
    let s_x = StaticSecret::from(*shamir::recover(cfg.shamir_field(), &shares, 5).unwrap());
    let mut y = masked[&x].masked.clone();
    for &v in &without(&all, &[x]) {
        let dh = s_x.diffie_hellman(&PublicKey::from(h.s_public[&v]));
        let sign = if x < v { Sign::Minus } else { Sign::Plus };
        kdf::pairwise_mask_key(dh.as_bytes(), &cfg.session, cfg.round, x, v).apply(&mut y, sign);
    }
    let same = y.iter().zip(&h.inputs[&x]).filter(|(a, b)| a == b).count();
    assert!(same <= 1, "{same} of {D} words of x_X exposed without b_X");
    h.assert_nothing_leaked();
}

/// The server shows U3 with X to one group and U3 without X to the other (so the first would
/// reveal `b_X`, the second `s_X`). Neither group reaches `t > 2n/3` signatures on its set.
#[test]
fn different_survivor_sets_to_different_clients_are_refused() {
    let cfg = config(7, 5);
    let all = cfg.sorted_clients();
    let x = ClientId(2);
    let group_a = [ClientId(1), ClientId(2), ClientId(3), ClientId(4)];
    let group_b = [ClientId(5), ClientId(6), ClientId(7)];
    let without_x = without(&all, &[x]);
    // (1) Each group gets its own group's signatures: too few.
    let (mut h, _) = Harness::through_masked(&cfg, 50);
    let sig_a = h.sign(&group_a, &all);
    let sig_b = h.sign(&group_b, &without_x);
    let req_a = h.checked(&all, &[], sig_a.values().cloned());
    let req_b = h.checked(&without_x, &[x], sig_b.values().cloned());
    for id in [ClientId(1), ClientId(3)] {
        let e = h.client(id).unmask_checked(&req_a).unwrap_err();
        assert!(
            matches!(
                e,
                SecAggError::TooFewSignatures {
                    got: 4,
                    threshold: 5,
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = h.client(ClientId(5)).unmask_checked(&req_b).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewSignatures {
                got: 3,
                threshold: 5,
                ..
            }
        ),
        "{e}"
    );
    // (2) Every signature forwarded to everyone: the other group's are on another set.
    let all_sigs: Vec<_> = sig_a.values().chain(sig_b.values()).cloned().collect();
    let req_a = h.checked(&all, &[], all_sigs.clone());
    let e = h.client(ClientId(4)).unmask_checked(&req_a).unwrap_err();
    assert!(
        matches!(e, SecAggError::BadSignature { signer, .. } if group_b.contains(&signer)),
        "{e}"
    );
    // (2b) The same to group B: X's signature is from outside B's U3, and without it group
    // A's signatures (on the set with X) fail.
    let req_b = h.checked(&without_x, &[x], all_sigs.clone());
    let e = h.client(ClientId(6)).unmask_checked(&req_b).unwrap_err();
    assert!(
        matches!(e, SecAggError::UnexpectedClient { client, .. } if client == x),
        "{e}"
    );
    let (mut h, _) = Harness::through_masked(&cfg, 51);
    let sig_a = h.sign(&group_a, &all);
    let sig_b = h.sign(&group_b, &without_x);
    let req_b = h.checked(
        &without_x,
        &[x],
        sig_a
            .values()
            .chain(sig_b.values())
            .filter(|s| s.sender != x)
            .cloned(),
    );
    let e = h.client(ClientId(6)).unmask_checked(&req_b).unwrap_err();
    assert!(
        matches!(e, SecAggError::BadSignature { signer, .. } if group_a.contains(&signer)),
        "group B signed without_x, so group A's signatures fail: {e}"
    );
    // (3) A request whose survivors differ from the set the client signed.
    let req_a_to_b = h.checked(&all, &[], sig_a.values().cloned());
    let e = h
        .client(ClientId(7))
        .unmask_checked(&req_a_to_b)
        .unwrap_err();
    assert!(
        matches!(e, SecAggError::InconsistentSurvivors { .. }),
        "{e}"
    );
    h.assert_nothing_leaked();
}

#[test]
fn withheld_ciphertexts_below_t_are_refused_and_otherwise_leak_nothing() {
    let cfg = config(7, 5);
    let all = cfg.sorted_clients();
    // (1) Client 1 gets only 3 peers' ciphertexts: with itself 4 < t = 5.
    let mut h = Harness::new(&cfg, 60);
    let adverts = h.advertise();
    let b = h.broadcast(adverts);
    let mut inbox = h.share_keys(&b);
    inbox.get_mut(&ClientId(1)).unwrap().truncate(3);
    let input = h.inputs[&ClientId(1)].clone();
    let e = h
        .client(ClientId(1))
        .masked_input_quantized(&input, &inbox[&ClientId(1)])
        .unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewPeers {
                got: 4,
                threshold: 5,
                ..
            }
        ),
        "{e}"
    );
    assert_aborted(h.client(ClientId(1)), cfg.round);
    // (2) Client 1 misses one ciphertext (5 of 6 left): the round goes on, and the server's
    // whole view still holds no input.
    let mut h = Harness::new(&cfg, 61);
    let adverts = h.advertise();
    let b = h.broadcast(adverts);
    let mut inbox = h.share_keys(&b);
    inbox.get_mut(&ClientId(1)).unwrap().remove(0);
    for &id in &all {
        h.mask(id, &inbox);
    }
    let sigs = h.sign(&all, &all);
    let req = h.checked(&all, &[], sigs.into_values());
    for &id in &all {
        let r = h.unmask(id, &req);
        assert!(r.key_shares.is_empty());
    }
    h.assert_nothing_leaked();
}

#[test]
fn consistency_messages_replayed_from_another_round_are_refused() {
    let cfg1 = config(6, 5);
    let cfg2 = config(6, 5).with_round(2);
    let all = cfg1.sorted_clients();
    let (mut old, _) = Harness::through_masked(&cfg1, 70);
    let stale = old.sign(&all, &all);
    let (mut h, _) = Harness::through_masked(&cfg2, 71);
    // A consistency request of round 1 in round 2.
    let mut creq = h.consistency(&all);
    creq.round = 1;
    let e = h.client(ClientId(6)).sign_survivors(&creq).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::WrongRound {
                expected: 2,
                got: 1
            }
        ),
        "{e}"
    );
    let fresh = h.sign(&all[..5], &all);
    // Round-1 signature of client 2 replayed as is, then relabelled as round 2.
    for (relabel, id) in [(false, ClientId(1)), (true, ClientId(2))] {
        let mut replay = stale[&ClientId(2)].clone();
        if relabel {
            replay.round = 2;
        }
        let sigs = fresh
            .values()
            .filter(|s| s.sender != ClientId(2))
            .cloned()
            .chain([replay]);
        let req = h.checked(&all, &[], sigs);
        let e = h.client(id).unmask_checked(&req).unwrap_err();
        if relabel {
            assert!(
                matches!(
                    e,
                    SecAggError::BadSignature {
                        signer: ClientId(2),
                        ..
                    }
                ),
                "{e}"
            );
        } else {
            assert!(
                matches!(
                    e,
                    SecAggError::WrongRound {
                        expected: 2,
                        got: 1
                    }
                ),
                "{e}"
            );
        }
        assert_aborted(h.client(id), 2);
    }
    // A whole checked request of round 1 (its unmask request included).
    let req = old.checked(&all, &[], stale.into_values());
    let e = h.client(ClientId(3)).unmask_checked(&req).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::WrongRound {
                expected: 2,
                got: 1
            }
        ),
        "{e}"
    );
}

#[test]
fn consistency_signatures_replayed_from_another_session_are_refused() {
    let cfg_a = config(6, 5).with_session([1; 32]);
    let cfg_b = config(6, 5).with_session([2; 32]);
    let all = cfg_a.sorted_clients();
    let (mut old, _) = Harness::through_masked(&cfg_a, 80);
    let stale = old.sign(&all, &all);
    let (mut h, _) = Harness::through_masked(&cfg_b, 81);
    let fresh = h.sign(&all, &all);
    for (relabel, id) in [(false, ClientId(1)), (true, ClientId(2))] {
        let mut replay = stale[&ClientId(3)].clone();
        if relabel {
            replay.session = cfg_b.session;
        }
        let sigs = fresh
            .values()
            .filter(|s| s.sender != ClientId(3))
            .cloned()
            .chain([replay]);
        let req = h.checked(&all, &[], sigs);
        let e = h.client(id).unmask_checked(&req).unwrap_err();
        if relabel {
            assert!(
                matches!(
                    e,
                    SecAggError::BadSignature {
                        signer: ClientId(3),
                        ..
                    }
                ),
                "{e}"
            );
        } else {
            assert!(matches!(e, SecAggError::WrongSession { .. }), "{e}");
        }
    }
}

#[test]
fn forged_consistency_signatures_are_refused() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let (mut h, _) = Harness::through_masked(&cfg, 90);
    let sigs = h.sign(&all, &all);
    // (1) Random bytes; (2) a valid signature by another client relabelled; (3) bit flip.
    let forgeries: [fn(&mut ConsistencySignature, &ConsistencySignature); 3] = [
        |s, _| s.signature = [0x11; 64],
        |s, other| s.signature = other.signature,
        |s, _| s.signature[10] ^= 1,
    ];
    for (i, forge) in forgeries.iter().enumerate() {
        let id = all[i];
        // Among the t = 5 signatures clients 1 to 3 verify (their own and the lowest ids).
        let victim = ClientId(4);
        let mut list: Vec<_> = sigs.values().cloned().collect();
        let other = sigs[&ClientId(5)].clone();
        forge(
            list.iter_mut().find(|s| s.sender == victim).unwrap(),
            &other,
        );
        let req = h.checked(&all, &[], list);
        let e = h.client(id).unmask_checked(&req).unwrap_err();
        assert!(
            matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
            "forgery {i}: {e}"
        );
        assert_aborted(h.client(id), cfg.round);
    }
}

/// Lazy verification on the full graph: a client verifies only `t` signatures (its own, by
/// comparison, and the lowest other ids). A forged signature beyond those is never needed and
/// never looked at: the client answers on the `t` valid ones. Once the forged one is needed to
/// reach `t`, it is verified and the client aborts: it never reveals on fewer than `t` valid ones.
#[test]
fn forged_consistency_signature_beyond_the_t_verified_is_ignored() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let victim = ClientId(6);
    let (mut h, _) = Harness::through_masked(&cfg, 95);
    let sigs = h.sign(&all, &all);
    let mut forged: Vec<_> = sigs.values().cloned().collect();
    forged
        .iter_mut()
        .find(|s| s.sender == victim)
        .unwrap()
        .signature = [0x11; 64];
    // Five valid signatures besides the forged one: clients 1 and 2 answer.
    let req = h.checked(&all, &[], forged.clone());
    for id in [ClientId(1), ClientId(2)] {
        let r = h.unmask(id, &req);
        assert_eq!(
            r.seed_shares.len(),
            all.len(),
            "client {id} reveals every b share"
        );
    }
    // Without client 2's signature the forged one is needed for t = 5: client 3 aborts.
    forged.retain(|s| s.sender != ClientId(2));
    let req = h.checked(&all, &[], forged);
    let e = h.client(ClientId(3)).unmask_checked(&req).unwrap_err();
    assert!(
        matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
        "{e}"
    );
    assert_aborted(h.client(ClientId(3)), cfg.round);
    h.assert_nothing_leaked();
}

/// A client compares its own entries with what it sent instead of verifying them: an altered
/// own consistency signature or own advertisement is refused all the same.
#[test]
fn altered_own_signatures_are_refused() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let me = ClientId(2);
    let (mut h, _) = Harness::through_masked(&cfg, 96);
    let mut sigs: Vec<_> = h.sign(&all, &all).into_values().collect();
    sigs.iter_mut().find(|s| s.sender == me).unwrap().signature[3] ^= 1;
    let req = h.checked(&all, &[], sigs);
    let e = h.client(me).unmask_checked(&req).unwrap_err();
    assert!(
        matches!(e, SecAggError::BadSignature { signer, message: "survivor set" } if signer == me),
        "{e}"
    );
    assert_aborted(h.client(me), cfg.round);

    let mut h = Harness::new(&cfg, 97);
    let mut adverts = h.advertise();
    adverts
        .iter_mut()
        .find(|a| a.keys.sender == me)
        .unwrap()
        .signature[3] ^= 1;
    let b = h.broadcast(adverts);
    let e = h.client(me).share_keys_signed(&b).unwrap_err();
    assert!(
        matches!(e, SecAggError::BadSignature { signer, message: "advertised public keys" } if signer == me),
        "{e}"
    );
    assert_aborted(h.client(me), cfg.round);
}

/// Lazy verification in SecAgg+. Single forgeries: the client either aborts naming the forged
/// signer or answers, and it does skip some (on this ring graph, k = 4 and t = 4, 7 of the 9
/// relevant signatures are enough: the two it skips are each in only one neighbourhood of its
/// own). Pairs of forgeries: whenever both are in the neighbourhood of one owner whose share it
/// holds (leaving that owner fewer than t valid signatures), it aborts.
#[test]
fn secagg_plus_verifies_only_the_signatures_it_needs() {
    let cfg = config(12, 4).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 9,
    });
    let graph = cfg.graph().unwrap();
    let all = cfg.sorted_clients();
    let y = ClientId(1);
    let hood = |o: ClientId| graph.closed_neighbourhood(o).unwrap().to_vec();
    let hood_y = hood(y);
    let relevant: Vec<ClientId> = all
        .iter()
        .copied()
        .filter(|v| *v != y && hood_y.iter().any(|&o| hood(o).contains(v)))
        .collect();
    assert_eq!(relevant.len(), 8);
    // y's answer to a request where `forged` signatures are replaced by junk.
    let attempt = |forged: &[ClientId]| {
        let (mut h, _) = Harness::through_masked(&cfg, 125);
        let mut sigs: Vec<_> = h.sign(&all, &all).into_values().collect();
        for s in &mut sigs {
            if forged.contains(&s.sender) {
                s.signature = [0x22; 64];
            }
        }
        let req = h.checked(&all, &[], sigs);
        h.client(y).unmask_checked(&req)
    };
    let mut ignored = Vec::new();
    for &victim in &relevant {
        match attempt(&[victim]) {
            Ok(r) => {
                assert_eq!(r.seed_shares.len(), hood_y.len());
                ignored.push(victim);
            }
            Err(e) => assert!(
                matches!(e, SecAggError::BadSignature { signer, .. } if signer == victim),
                "signer {victim}: {e}"
            ),
        }
    }
    assert_eq!(ignored.len(), 2, "ignored: {ignored:?}");
    for v in &ignored {
        let in_hoods = hood_y.iter().filter(|&&o| hood(o).contains(v)).count();
        assert_eq!(in_hoods, 1, "signer {v}");
    }
    for (i, &a) in relevant.iter().enumerate() {
        for &b in &relevant[i + 1..] {
            let short = hood_y
                .iter()
                .any(|&o| hood(o).contains(&a) && hood(o).contains(&b));
            match attempt(&[a, b]) {
                Ok(_) => assert!(!short, "answered with {a} and {b} forged"),
                Err(e) => assert!(
                    matches!(e, SecAggError::BadSignature { signer, .. } if signer == a || signer == b),
                    "signers {a}, {b}: {e}"
                ),
            }
        }
    }
}

#[test]
fn signer_missing_from_the_directory_is_refused() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    // Client 1's directory lacks client 6.
    let partial = {
        let ids: Vec<_> = all.iter().map(|&id| (id, identity(id))).collect();
        Arc::new(
            VerifyingDirectory::from_identities(
                ids.iter()
                    .filter(|(id, _)| id.0 != 6)
                    .map(|(id, i)| (*id, i)),
            )
            .unwrap(),
        )
    };
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    let mut c1 = Client::new_signed(
        cfg.clone(),
        ClientId(1),
        identity(ClientId(1)),
        partial,
        &mut rng,
    )
    .unwrap();
    let mut h = Harness::new(&cfg, 101);
    let mut adverts = h.advertise();
    adverts.retain(|a| a.keys.sender != ClientId(1));
    adverts.push(c1.advertise_signed().unwrap());
    adverts.sort_by_key(|a| a.keys.sender);
    let b = h.broadcast(adverts);
    let e = c1.share_keys_signed(&b).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::UnknownSigner {
                signer: ClientId(6)
            }
        ),
        "{e}"
    );
}

#[test]
fn fewer_than_t_signatures_are_refused() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let (mut h, _) = Harness::through_masked(&cfg, 110);
    let sigs = h.sign(&all, &all);
    let four: Vec<_> = sigs.values().take(4).cloned().collect();
    let req = h.checked(&all, &[], four);
    for &id in &all {
        let e = h.client(id).unmask_checked(&req).unwrap_err();
        assert!(
            matches!(
                e,
                SecAggError::TooFewSignatures {
                    got: 4,
                    threshold: 5,
                    ..
                }
            ),
            "client {id}: {e}"
        );
        assert!(e.to_string().contains("reveals nothing"), "{e}");
        assert_aborted(h.client(id), cfg.round);
    }
    h.assert_nothing_leaked();
}

/// SecAgg+: the signatures that count for revealing a share of X are those of X's closed
/// neighbourhood, so t signatures from elsewhere in the round are not enough.
#[test]
fn secagg_plus_counts_signatures_per_neighbourhood() {
    let cfg = config(12, 4).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 9,
    });
    let graph = cfg.graph().unwrap();
    let all = cfg.sorted_clients();
    let (mut h, _) = Harness::through_masked(&cfg, 120);
    let sigs = h.sign(&all, &all);
    let y = ClientId(1);
    let hood_y = graph.closed_neighbourhood(y).unwrap().to_vec();
    // Keep only the signatures of clients outside Y's neighbourhood, plus Y's own: plenty in
    // number (8 > t), but only 1 from the neighbourhood of Y (whose b share Y would reveal).
    let kept: Vec<_> = sigs
        .values()
        .filter(|s| s.sender == y || !hood_y.contains(&s.sender))
        .cloned()
        .collect();
    assert!(kept.len() >= cfg.threshold as usize);
    let req = h.checked(&all, &[], kept);
    let e = h.client(y).unmask_checked(&req).unwrap_err();
    assert!(
        matches!(e, SecAggError::TooFewSignatures { threshold: 4, .. }),
        "{e}"
    );
    // With every signature it answers.
    let req = h.checked(&all, &[], sigs.into_values());
    let peer = all.iter().copied().find(|v| !hood_y.contains(v)).unwrap();
    assert!(h.client(peer).unmask_checked(&req).is_ok());
}

// ------------------------------------------------------------------ modes and parameters

#[test]
fn malicious_mode_needs_more_than_two_thirds() {
    let e = config(6, 4).validate().unwrap_err();
    assert!(e.to_string().contains("two thirds"), "{e}");
    assert!(config(6, 5).validate().is_ok());
    // The semi-honest bound is unchanged.
    assert!(
        config(6, 4)
            .with_security(Security::SemiHonest)
            .validate()
            .is_ok()
    );
    // SecAgg+: per neighbourhood of k + 1 = 7.
    let plus = |t| {
        config(12, t).with_mode(Mode::SecAggPlus {
            k: 6,
            graph_seed: 1,
        })
    };
    assert!(plus(4).validate().is_err());
    assert!(plus(5).validate().is_ok());
    // The documented opt-out.
    assert!(config(6, 4).unsafe_allow_low_threshold().validate().is_ok());
    // A serialized config without the field is semi-honest; a malicious one is checked on load.
    let mut json = serde_json::to_value(config(6, 5)).unwrap();
    json.as_object_mut().unwrap().remove("security");
    let back: Config = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.security, Security::SemiHonest);
    json["security"] = serde_json::json!("Malicious");
    json["threshold"] = serde_json::json!(4);
    assert!(serde_json::from_value::<Config>(json).is_err());
}

#[test]
fn calls_of_the_other_mode_are_refused() {
    let cfg = config(6, 5);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let e = Client::new(cfg.clone(), ClientId(1), &mut rng).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::InvalidParameter {
                name: "security",
                ..
            }
        ),
        "{e}"
    );
    let semi = cfg.clone().with_security(Security::SemiHonest);
    let dir = directory(&cfg.sorted_clients());
    let e = Client::new_signed(
        semi.clone(),
        ClientId(1),
        identity(ClientId(1)),
        dir.clone(),
        &mut rng,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::InvalidParameter {
                name: "security",
                ..
            }
        ),
        "{e}"
    );
    // The wrong identity for the id.
    let e = Client::new_signed(
        cfg.clone(),
        ClientId(1),
        identity(ClientId(2)),
        dir.clone(),
        &mut rng,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::InvalidParameter {
                name: "directory",
                ..
            }
        ),
        "{e}"
    );
    // A malicious-secure client never answers the semi-honest unmask request.
    let (mut h, _) = Harness::through_masked(&cfg, 2);
    let plain = UnmaskRequest {
        round: 1,
        survivors: cfg.sorted_clients(),
        dropped: vec![],
    };
    let e = h.client(ClientId(1)).unmask(&plain).unwrap_err();
    assert!(
        matches!(e, SecAggError::WrongSecurityMode { call: "unmask", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("unmask_checked"), "{e}");
    // ... nor the semi-honest key broadcast.
    let mut h = Harness::new(&cfg, 3);
    let adverts = h.advertise();
    let plain = flspec::secagg::AllAdvertised {
        round: 1,
        keys: adverts.into_iter().map(|a| a.keys).collect(),
    };
    let e = h.client(ClientId(1)).share_keys(&plain).unwrap_err();
    assert!(matches!(e, SecAggError::WrongSecurityMode { .. }), "{e}");
    // The server likewise.
    let mut server = Server::new(cfg).unwrap();
    let e = server.broadcast_keys().unwrap_err();
    assert!(matches!(e, SecAggError::WrongSecurityMode { .. }), "{e}");
    let mut server = Server::new(semi).unwrap();
    let e = server.broadcast_signed_keys().unwrap_err();
    assert!(matches!(e, SecAggError::WrongSecurityMode { .. }), "{e}");
}

#[test]
fn server_with_a_directory_drops_bad_signatures() {
    let cfg = config(6, 5);
    let dir = directory(&cfg.sorted_clients());
    let mut server = Server::new(cfg.clone()).unwrap().with_directory(dir);
    let mut h = Harness::new(&cfg, 130);
    let mut adverts = h.advertise();
    adverts[0].signature[0] ^= 1;
    let e = server
        .receive_signed_advertise(adverts[0].clone())
        .unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::BadSignature {
                signer: ClientId(1),
                ..
            }
        ),
        "{e}"
    );
    let mut other = adverts[1].clone();
    other.session = [9; 32];
    let e = server.receive_signed_advertise(other).unwrap_err();
    assert!(matches!(e, SecAggError::WrongSession { .. }), "{e}");
}

/// The server admits one consistency signature per survivor, and none from a client outside
/// `U3` (its `admit` check, shared by every receive step of both modes).
#[test]
fn server_admits_one_consistency_signature_per_survivor() {
    let cfg = config(6, 5);
    let all = cfg.sorted_clients();
    let (mut h, mut server) = Harness::through_masked_with_server(&cfg, 135, &all[..5]);
    let creq = server.consistency_request().unwrap();
    let sig = h.client(all[0]).sign_survivors(&creq).unwrap();
    server.receive_consistency(sig.clone()).unwrap();
    let e = server.receive_consistency(sig.clone()).unwrap_err();
    assert!(
        matches!(e, SecAggError::Duplicate { message: "ConsistencySignature", client } if client == all[0]),
        "{e}"
    );
    let outsider = ConsistencySignature {
        sender: all[5],
        ..sig
    };
    let e = server.receive_consistency(outsider).unwrap_err();
    assert!(
        matches!(e, SecAggError::UnexpectedClient { client, .. } if client == all[5]),
        "{e}"
    );
}

#[test]
fn signing_identity_never_prints_its_secret() {
    let secret = [0xab; 32];
    let id = SigningIdentity::from_secret_bytes(&secret);
    let debug = format!("{id:?}");
    assert!(!debug.contains(&"ab".repeat(32)), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    let dir = VerifyingDirectory::from_identities([(ClientId(1), &id)]).unwrap();
    assert_eq!(dir.public_key(ClientId(1)), Some(id.public_key()));
    assert!(!format!("{dir:?}").contains("ab"));
}

#[test]
fn signed_messages_round_trip_through_postcard() {
    let cfg = config(6, 5);
    let (mut h, _) = Harness::through_masked(&cfg, 140);
    let all = cfg.sorted_clients();
    let sigs = h.sign(&all, &all);
    let req = h.checked(&all, &[], sigs.into_values());
    let bytes = encode(&req).unwrap();
    let back: CheckedUnmaskRequest = flspec::secagg::messages::decode(&bytes).unwrap();
    assert_eq!(back, req);
    let json = serde_json::to_string(&req).unwrap();
    assert_eq!(
        serde_json::from_str::<CheckedUnmaskRequest>(&json).unwrap(),
        req
    );
}

// ------------------------------------------------------------------ simulate

fn simulate_mode(mode: Mode, t: u32) {
    use flspec::secagg::{DropoutPlan, Input, Stage, simulate_round};
    let n = 10;
    let cfg = config(n, t).with_mode(mode);
    let q = cfg.quantizer.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(150);
    let quantized: BTreeMap<ClientId, Vec<u32>> = cfg
        .sorted_clients()
        .iter()
        .map(|&id| {
            let raw: Vec<f32> = (0..D)
                .map(|j| ((id.0 as usize * D + j) as f32 * 0.01).sin())
                .collect();
            (id, q.quantize(&raw, &mut rng).unwrap())
        })
        .collect();
    let inputs = quantized
        .iter()
        .map(|(&id, v)| (id, Input::Quantized(v.clone())))
        .collect();
    let plan = DropoutPlan::none()
        .drop_before(ClientId(5), Stage::MaskedInputCollection)
        .drop_before(ClientId(8), Stage::Unmasking);
    let out = simulate_round(&cfg, &inputs, &plan, &mut rng).unwrap();
    assert!(out.client_errors.is_empty(), "{:?}", out.client_errors);
    let sum = out.result.unwrap();
    assert_eq!(
        sum.contributors.len(),
        9,
        "client 5 dropped before its masked input"
    );
    let mut plain = vec![0u32; D];
    for id in &sum.contributors {
        for (s, v) in plain.iter_mut().zip(&quantized[id]) {
            *s = s.wrapping_add(*v);
        }
    }
    assert_eq!(sum.sum, plain);
    for (id, v) in &quantized {
        for w in v.windows(3) {
            let needle: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert!(
                !out.transcript.contains(&needle),
                "client {id}'s input leaked"
            );
        }
    }
    // The same round, semi-honest: the malicious-secure one sends more (signatures, the
    // consistency round), and the same sum comes out.
    let semi = cfg.clone().with_security(Security::SemiHonest);
    let inputs = quantized
        .iter()
        .map(|(&id, v)| (id, Input::Quantized(v.clone())))
        .collect();
    let base = simulate_round(&semi, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(150)).unwrap();
    assert_eq!(base.result.unwrap().sum, plain);
    let total = |m: &BTreeMap<ClientId, usize>| m.values().sum::<usize>();
    assert!(total(&out.bytes_sent) > total(&base.bytes_sent));
    assert!(total(&out.bytes_received) > total(&base.bytes_received));
}

#[test]
fn simulate_malicious_round_full_graph() {
    simulate_mode(Mode::Full, 7);
}

#[test]
fn simulate_malicious_round_secagg_plus() {
    simulate_mode(
        Mode::SecAggPlus {
            k: 6,
            graph_seed: 3,
        },
        5,
    );
}

/// SecAgg+ at scale: the server may send each client only the signatures it counts; the round
/// completes, each request is much shorter than `|U3|`, and a request trimmed for a far-away
/// client does not satisfy another.
#[test]
fn secagg_plus_requests_trimmed_per_client() {
    let cfg = config(30, 4).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 2,
    });
    let all = cfg.sorted_clients();
    let (mut h, mut server) = Harness::through_masked_with_server(&cfg, 160, &all);
    let creq = server.consistency_request().unwrap();
    for &id in &all {
        server
            .receive_consistency(h.client(id).sign_survivors(&creq).unwrap())
            .unwrap();
    }
    let full = server.checked_unmask_request().unwrap();
    assert_eq!(full.signatures.len(), 30);
    let graph = cfg.graph().unwrap();
    let near = graph.closed_neighbourhood(ClientId(1)).unwrap().to_vec();
    let far = all
        .iter()
        .copied()
        .find(|&v| {
            let hv = graph.closed_neighbourhood(v).unwrap();
            near.iter().all(|u| {
                graph
                    .closed_neighbourhood(*u)
                    .unwrap()
                    .iter()
                    .all(|w| !hv.contains(w))
            })
        })
        .unwrap();
    let wrong = server.checked_unmask_request_for(far).unwrap();
    let e = h.client(ClientId(1)).unmask_checked(&wrong).unwrap_err();
    assert!(matches!(e, SecAggError::TooFewSignatures { .. }), "{e}");
    for &id in &all[1..] {
        let req = server.checked_unmask_request_for(id).unwrap();
        assert!(
            req.signatures.len() <= 2 * 4 + 1,
            "{}",
            req.signatures.len()
        );
        server.receive_unmask(h.unmask(id, &req)).unwrap();
    }
    let sum = server.finish().unwrap();
    let mut plain = vec![0u32; D];
    for id in &all {
        for (s, v) in plain.iter_mut().zip(&h.inputs[id]) {
            *s = s.wrapping_add(*v);
        }
    }
    assert_eq!(sum.sum, plain);
}

/// SecAgg+: the server may send each client only its neighbourhood's signed keys.
#[test]
fn secagg_plus_key_broadcast_trimmed_per_client() {
    let cfg = config(30, 4).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 2,
    });
    let mut server = Server::new(cfg.clone()).unwrap();
    let mut h = Harness::new(&cfg, 170);
    for a in h.advertise() {
        server.receive_signed_advertise(a).unwrap();
    }
    let e = server.signed_keys_for(ClientId(1)).unwrap_err();
    assert!(matches!(e, SecAggError::UnexpectedClient { .. }), "{e}");
    let full = server.broadcast_signed_keys().unwrap();
    assert_eq!(full.keys.len(), 30);
    for id in cfg.sorted_clients() {
        let mine = server.signed_keys_for(id).unwrap();
        assert_eq!(mine.keys.len(), 5);
        let shares = h.client(id).share_keys_signed(&mine).unwrap();
        assert_eq!(shares.len(), 4);
    }
}

//! The threshold rule (issue 8, point 3): `t` must be more than half of each group of share
//! holders, because with `t <= n/2` a server that merely sends two different unmask lists to
//! two groups of clients (no forgery) rebuilds both secrets of one client and its input.
//!
//! The attack is written against the sans-IO API: the real clients and server run rounds 0 to
//! 2, then the "server" sends its two lists and rebuilds client X's input from the answers.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;

use flspec::secagg::prg::Sign;
use flspec::secagg::shamir::{SecretShare, recover};
use flspec::secagg::{
    AdvertiseKeys, Client, ClientId, Config, MaskedInput, Mode, Quantizer, SecAggError, Server,
    UnmaskRequest, UnmaskResponse, kdf, min_safe_threshold,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use x25519_dalek::{PublicKey, StaticSecret};

const D: usize = 6;
const X: ClientId = ClientId(4);

fn ids() -> Vec<ClientId> {
    (1..=4).map(ClientId).collect()
}

fn input(id: ClientId) -> Vec<u32> {
    (0..D as u32).map(|j| 1_000 * id.0 + 17 * j + 3).collect()
}

/// What the server holds after round 2: the clients (waiting for an unmask request), every
/// advertised key and every masked vector.
struct AfterMasking {
    clients: BTreeMap<ClientId, Client>,
    keys: BTreeMap<ClientId, AdvertiseKeys>,
    masked: BTreeMap<ClientId, MaskedInput>,
}

fn run_to_masking(config: &Config) -> AfterMasking {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut clients: BTreeMap<ClientId, Client> = ids()
        .into_iter()
        .map(|id| (id, Client::new(config.clone(), id, &mut rng).unwrap()))
        .collect();
    let mut server = Server::new(config.clone()).unwrap();
    for c in clients.values_mut() {
        server.receive_advertise(c.advertise().unwrap()).unwrap();
    }
    let all = server.broadcast_keys().unwrap();
    let keys = all.keys.iter().map(|k| (k.sender, k.clone())).collect();
    for c in clients.values_mut() {
        server
            .receive_shares(c.id(), c.share_keys(&all).unwrap())
            .unwrap();
    }
    let inboxes = server.route_shares().unwrap();
    let mut masked = BTreeMap::new();
    for (id, c) in &mut clients {
        let m = c.masked_input_quantized(&input(*id), &inboxes[id]).unwrap();
        masked.insert(*id, m);
    }
    AfterMasking {
        clients,
        keys,
        masked,
    }
}

/// The attack: `alive` get a list where X survived (they reveal shares of `b_X`), `dead` a
/// list where X dropped (they reveal shares of `s_X`). Returns X's quantized input if the
/// server could rebuild it.
fn attack(config: &Config, alive: &[ClientId], dead: &[ClientId]) -> Option<Vec<u32>> {
    let mut round = run_to_masking(config);
    let everyone = UnmaskRequest {
        round: config.round,
        survivors: ids(),
        dropped: vec![],
    };
    let without_x = UnmaskRequest {
        round: config.round,
        survivors: ids().into_iter().filter(|&id| id != X).collect(),
        dropped: vec![X],
    };
    let mut answers: Vec<(ClientId, UnmaskResponse)> = Vec::new();
    for (group, request) in [(alive, &everyone), (dead, &without_x)] {
        for id in group {
            // A client that refuses simply gives the server nothing.
            if let Ok(r) = round.clients.get_mut(id).unwrap().unmask(request) {
                answers.push((*id, r));
            }
        }
    }
    let graph = config.graph().unwrap();
    let t = config.threshold as usize;
    let shares_of = |pick: fn(&UnmaskResponse) -> &[flspec::secagg::RevealedShare]| {
        answers
            .iter()
            .flat_map(|(holder, r)| {
                pick(r)
                    .iter()
                    .filter(|s| s.owner == X)
                    .map(|s| SecretShare::new(graph.share_x(X, *holder).unwrap(), s.share.clone()))
            })
            .collect::<Vec<_>>()
    };
    let b_shares = shares_of(|r| &r.seed_shares);
    let s_shares = shares_of(|r| &r.key_shares);
    if b_shares.len() < t || s_shares.len() < t {
        return None;
    }
    let b_x = recover(config.shamir_field(), &b_shares, t).ok()?;
    let s_x = StaticSecret::from(*recover(config.shamir_field(), &s_shares, t).ok()?);
    assert_eq!(
        PublicKey::from(&s_x).to_bytes(),
        round.keys[&X].s_public,
        "the rebuilt s_X is X's real mask key"
    );
    // Remove X's self mask and every pairwise mask from X's masked vector.
    let mut y = round.masked[&X].masked.clone();
    kdf::self_mask_key(&b_x, &config.session, config.round, X).apply(&mut y, Sign::Minus);
    for (&v, keys) in &round.keys {
        if v == X {
            continue;
        }
        let dh = s_x.diffie_hellman(&PublicKey::from(keys.s_public));
        // X added +PRG for a larger peer and -PRG for a smaller one.
        let sign = if X < v { Sign::Minus } else { Sign::Plus };
        kdf::pairwise_mask_key(dh.as_bytes(), &config.session, config.round, X, v)
            .apply(&mut y, sign);
    }
    Some(y)
}

fn config(t: u32) -> Config {
    Config::new(ids(), t, D, Quantizer::new(1.0, 4).unwrap())
        .with_session([0xa7; 32])
        .with_round(5)
}

/// DANGER, documented: with the opt-out, n = 4 and t = 2, X (client 4) and client 1 get a list
/// where X is alive, clients 2 and 3 one where X dropped. Every client answers (each sees a
/// consistent list with at least t survivors) and the server reads X's input exactly.
#[test]
fn two_unmask_lists_expose_an_input_when_t_is_at_most_half() {
    let config = config(2).unsafe_allow_low_threshold();
    let alive = [ClientId(1), X];
    let dead = [ClientId(2), ClientId(3)];
    assert_eq!(attack(&config, &alive, &dead), Some(input(X)));
}

/// With t = 3 > n/2 the same attack fails, and so does every other split of the four clients
/// between the two lists: each client answers one list, so the two lists can never collect
/// t shares of both secrets of X.
#[test]
fn two_unmask_lists_expose_nothing_when_t_is_more_than_half() {
    let config = config(3);
    assert!(config.validate().is_ok());
    assert_eq!(
        attack(&config, &[ClientId(1), X], &[ClientId(2), ClientId(3)]),
        None
    );
    // Every assignment of the four clients to "alive list", "dropped list" or neither.
    for code in 0..3u32.pow(4) {
        let (mut alive, mut dead) = (Vec::new(), Vec::new());
        for (i, id) in ids().into_iter().enumerate() {
            match code / 3u32.pow(i as u32) % 3 {
                0 => alive.push(id),
                1 => dead.push(id),
                _ => {}
            }
        }
        assert_eq!(attack(&config, &alive, &dead), None, "{alive:?} / {dead:?}");
    }
}

#[test]
fn validate_refuses_a_threshold_at_or_below_half_without_the_opt_out() {
    let e = config(2).validate().unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            SecAggError::InvalidParameter {
                name: "threshold",
                ..
            }
        ),
        "{msg}"
    );
    for needle in [
        "threshold = 2",
        "different unmask lists",
        "b_u",
        "s_u",
        "at least 3",
        "unsafe_allow_low_threshold",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    // Client and Server refuse it too (they validate their config).
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    assert!(Client::new(config(2), ClientId(1), &mut rng).is_err());
    assert!(Server::new(config(2)).is_err());
    assert!(config(2).unsafe_allow_low_threshold().validate().is_ok());
    assert!(config(3).validate().is_ok());
    // Below 2 and above n stay refused even with the opt-out.
    assert!(config(1).unsafe_allow_low_threshold().validate().is_err());
    assert!(config(5).unsafe_allow_low_threshold().validate().is_err());
}

#[test]
fn min_safe_threshold_is_more_than_half_of_each_group() {
    let expected = [
        (1, 2),
        (2, 2),
        (3, 2),
        (4, 3),
        (5, 3),
        (6, 4),
        (7, 4),
        (10, 6),
    ];
    for (group, t) in expected {
        assert_eq!(min_safe_threshold(group), t, "group of {group}");
    }
    for group in 2..200u32 {
        let t = min_safe_threshold(group);
        assert!(
            2 * t > group && 2 * (t - 1) <= group.max(2),
            "group of {group}"
        );
    }
    let ids: Vec<ClientId> = (1..=10).map(ClientId).collect();
    let q = Quantizer::new(1.0, 10).unwrap();
    let full = Config::new(ids.clone(), 6, 3, q.clone());
    assert_eq!(full.min_safe_threshold(), 6);
    assert!(full.validate().is_ok());
    assert!(
        Config {
            threshold: 5,
            ..full.clone()
        }
        .validate()
        .is_err()
    );
    // SecAgg+: per closed neighbourhood of k + 1 = 5.
    let plus = Config::new(ids, 3, 3, q).with_mode(Mode::SecAggPlus {
        k: 4,
        graph_seed: 2,
    });
    assert_eq!(plus.min_safe_threshold(), 3);
    assert!(plus.validate().is_ok());
    let e = Config {
        threshold: 2,
        ..plus.clone()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("k + 1 = 5"), "{e}");
    assert!(
        Config {
            threshold: 2,
            ..plus
        }
        .unsafe_allow_low_threshold()
        .validate()
        .is_ok()
    );
}

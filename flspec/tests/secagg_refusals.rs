//! Refusals that protect a client (point 4 of the issue), server-side rejections, and secrets
//! that never print.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;

use flspec::secagg::{
    AllAdvertised, Client, ClientId, Config, EncryptedShare, Mode, Quantizer, SecAggError, Server,
    UnmaskRequest,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const D: usize = 8;

fn config(n: u32, t: u32) -> Config {
    Config::new((1..=n).map(ClientId), t, D, Quantizer::new(1.0, n).unwrap())
        .with_session([7; 32])
        .with_round(1)
}

fn clients(config: &Config, seed: u64) -> Vec<Client> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    config
        .sorted_clients()
        .iter()
        .map(|&id| Client::new(config.clone(), id, &mut rng).unwrap())
        .collect()
}

/// Runs rounds 0 and 1; returns the clients, the server, the broadcast and the inboxes.
fn through_share_keys(
    config: &Config,
    seed: u64,
) -> (
    Vec<Client>,
    Server,
    AllAdvertised,
    BTreeMap<ClientId, Vec<EncryptedShare>>,
) {
    let mut cs = clients(config, seed);
    let mut server = Server::new(config.clone()).unwrap();
    for c in &mut cs {
        server.receive_advertise(c.advertise().unwrap()).unwrap();
    }
    let all = server.broadcast_keys().unwrap();
    for c in &mut cs {
        let shares = c.share_keys(&all).unwrap();
        server.receive_shares(c.id(), shares).unwrap();
    }
    let inbox = server.route_shares().unwrap();
    (cs, server, all, inbox)
}

fn through_masked(config: &Config, seed: u64) -> (Vec<Client>, Server, UnmaskRequest) {
    let (mut cs, mut server, _, inbox) = through_share_keys(config, seed);
    for c in &mut cs {
        let m = c.masked_input(&[0.25; D], &inbox[&c.id()]).unwrap();
        server.receive_masked(m).unwrap();
    }
    let req = server.unmask_request().unwrap();
    (cs, server, req)
}

fn assert_aborted(c: &mut Client) {
    let e = c
        .unmask(&UnmaskRequest {
            round: 1,
            survivors: vec![],
            dropped: vec![],
        })
        .unwrap_err();
    assert!(matches!(e, SecAggError::Aborted { .. }), "{e}");
}

#[test]
fn never_reveals_both_shares_of_one_peer() {
    let cfg = config(5, 3);
    let (mut cs, _, req) = through_masked(&cfg, 1);
    let bad = UnmaskRequest {
        dropped: vec![ClientId(2)],
        ..req.clone()
    };
    assert!(bad.survivors.contains(&ClientId(2)));
    let e = cs[0].unmask(&bad).unwrap_err();
    assert!(
        matches!(e, SecAggError::BothSharesRequested { peer: ClientId(2) }),
        "{e}"
    );
    assert!(e.to_string().contains("refused"));
    // The client aborted: it reveals nothing afterwards, not even for a valid request.
    let e = cs[0].unmask(&req).unwrap_err();
    assert!(matches!(e, SecAggError::Aborted { .. }), "{e}");
    // Each client answers at most one request: a second one (e.g. with other lists) is refused.
    assert!(cs[1].unmask(&req).is_ok());
    let e = cs[1].unmask(&req).unwrap_err();
    assert!(matches!(e, SecAggError::OutOfOrder { .. }), "{e}");
}

#[test]
fn refuses_to_answer_when_listed_as_dropped() {
    let cfg = config(5, 3);
    let (mut cs, _, req) = through_masked(&cfg, 2);
    let bad = UnmaskRequest {
        survivors: req
            .survivors
            .iter()
            .copied()
            .filter(|&v| v != ClientId(1))
            .collect(),
        dropped: vec![ClientId(1)],
        ..req
    };
    assert!(cs[0].unmask(&bad).is_err());
    assert_aborted(&mut cs[0]);
}

#[test]
fn fewer_than_t_peers_in_any_list_aborts() {
    let cfg = config(5, 4);
    // AllAdvertised with 3 < t = 4 entries.
    let mut cs = clients(&cfg, 3);
    let adv: Vec<_> = cs.iter_mut().map(|c| c.advertise().unwrap()).collect();
    let short = AllAdvertised {
        round: 1,
        keys: adv[..3].to_vec(),
    };
    let e = cs[0].share_keys(&short).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewPeers {
                got: 3,
                threshold: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_aborted(&mut cs[0]);

    // Received shares from 2 peers (+ itself = 3) < t = 4.
    let (mut cs, _, _, inbox) = through_share_keys(&cfg, 4);
    let e = cs[0]
        .masked_input(&[0.0; D], &inbox[&ClientId(1)][..2])
        .unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewPeers {
                got: 3,
                threshold: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_aborted(&mut cs[0]);

    // Unmask request naming 3 < t = 4 survivors.
    let (mut cs, _, req) = through_masked(&cfg, 5);
    let short = UnmaskRequest {
        survivors: req.survivors[..3].to_vec(),
        dropped: req.survivors[3..].to_vec(),
        ..req
    };
    let e = cs[0].unmask(&short).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewPeers {
                got: 3,
                threshold: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tampered_ciphertext_is_rejected() {
    let cfg = config(4, 3);
    let (mut cs, _, _, inbox) = through_share_keys(&cfg, 6);
    let mut mine = inbox[&ClientId(1)].clone();
    let last = mine[0].ciphertext.len() - 1;
    mine[0].ciphertext[last / 2] ^= 0x01;
    let sender = mine[0].sender;
    let e = cs[0].masked_input(&[0.0; D], &mine).unwrap_err();
    assert!(
        matches!(e, SecAggError::DecryptionFailed { sender: s, recipient: ClientId(1) } if s == sender),
        "{e}"
    );
    assert_aborted(&mut cs[0]);
}

#[test]
fn ciphertext_for_another_recipient_is_rejected() {
    let cfg = config(4, 3);
    let (mut cs, _, _, inbox) = through_share_keys(&cfg, 7);
    // 3 -> 2 delivered to 1, with its recipient field rewritten to 1 (or left as is).
    let stolen = inbox[&ClientId(2)]
        .iter()
        .find(|e| e.sender == ClientId(3))
        .unwrap()
        .clone();
    let mut mine: Vec<EncryptedShare> = inbox[&ClientId(1)]
        .iter()
        .filter(|e| e.sender != ClientId(3))
        .cloned()
        .collect();
    mine.push(EncryptedShare {
        recipient: ClientId(1),
        ..stolen.clone()
    });
    let e = cs[0].masked_input(&[0.0; D], &mine).unwrap_err();
    assert!(matches!(e, SecAggError::DecryptionFailed { .. }), "{e}");

    let (mut cs, _, _, inbox) = through_share_keys(&cfg, 7);
    let mut mine: Vec<EncryptedShare> = inbox[&ClientId(1)]
        .iter()
        .filter(|e| e.sender != ClientId(3))
        .cloned()
        .collect();
    mine.push(stolen);
    let e = cs[0].masked_input(&[0.0; D], &mine).unwrap_err();
    assert!(matches!(e, SecAggError::DecryptionFailed { .. }), "{e}");
}

#[test]
fn ciphertext_replayed_from_another_round_or_session_is_rejected() {
    // Same clients' RNG seeds (so the same keys) in round 1 and round 2: only the binding of the
    // round (key derivation and associated data) tells the ciphertexts apart.
    let cfg1 = config(4, 3);
    let (_, _, _, old_inbox) = through_share_keys(&cfg1, 8);
    let cfg2 = cfg1.clone().with_round(2);
    let (mut cs, _, _, inbox) = through_share_keys(&cfg2, 8);
    let replayed: Vec<EncryptedShare> = old_inbox[&ClientId(1)]
        .iter()
        .map(|e| EncryptedShare {
            round: 2,
            ..e.clone()
        })
        .collect();
    assert_ne!(replayed, inbox[&ClientId(1)], "fresh ciphertexts differ");
    let e = cs[0].masked_input(&[0.0; D], &replayed).unwrap_err();
    assert!(matches!(e, SecAggError::DecryptionFailed { .. }), "{e}");
    // Unmodified round field: rejected before decryption.
    let (mut cs, _, _, _) = through_share_keys(&cfg2, 8);
    let e = cs[0]
        .masked_input(&[0.0; D], &old_inbox[&ClientId(1)])
        .unwrap_err();
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
    // Another session, same round and keys.
    let cfg3 = cfg1.clone().with_session([8; 32]);
    let (mut cs, _, _, _) = through_share_keys(&cfg3, 8);
    let e = cs[0]
        .masked_input(&[0.0; D], &old_inbox[&ClientId(1)])
        .unwrap_err();
    assert!(matches!(e, SecAggError::DecryptionFailed { .. }), "{e}");
}

#[test]
fn altered_or_repeated_keys_abort() {
    let cfg = config(4, 3);
    let mut cs = clients(&cfg, 9);
    let mut adv: Vec<_> = cs.iter_mut().map(|c| c.advertise().unwrap()).collect();
    adv[0].s_public[0] ^= 1; // the server altered client 1's key
    let e = cs[0]
        .share_keys(&AllAdvertised {
            round: 1,
            keys: adv.clone(),
        })
        .unwrap_err();
    assert!(
        e.to_string().contains("own keys are missing or altered"),
        "{e}"
    );
    adv[0].s_public[0] ^= 1;
    adv[3].c_public = adv[2].c_public;
    let e = cs[1]
        .share_keys(&AllAdvertised {
            round: 1,
            keys: adv.clone(),
        })
        .unwrap_err();
    assert!(
        e.to_string().contains("repeats another advertised key"),
        "{e}"
    );
    adv[3].c_public = [0; 32]; // low-order point
    let e = cs[2]
        .share_keys(&AllAdvertised {
            round: 1,
            keys: adv,
        })
        .unwrap_err();
    assert!(
        matches!(e, SecAggError::WeakKey { peer: ClientId(4) }),
        "{e}"
    );
}

/// Every receive step admits each sender once, and only senders of the step before (the
/// server's `admit` check): shares, masked inputs and unmask responses.
#[test]
fn server_admits_each_sender_once_per_step() {
    let cfg = config(4, 3);
    let mut cs = clients(&cfg, 12);
    let mut server = Server::new(cfg.clone()).unwrap();
    for c in &mut cs[..3] {
        server.receive_advertise(c.advertise().unwrap()).unwrap(); // client 4 never advertises
    }
    let all = server.broadcast_keys().unwrap();
    let s1 = cs[0].share_keys(&all).unwrap();
    server.receive_shares(ClientId(1), s1.clone()).unwrap();
    let e = server.receive_shares(ClientId(1), s1).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::Duplicate {
                message: "ShareKeys",
                client: ClientId(1)
            }
        ),
        "{e}"
    );
    let e = server.receive_shares(ClientId(4), vec![]).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::UnexpectedClient {
                client: ClientId(4),
                ..
            }
        ),
        "{e}"
    );
    for c in &mut cs[1..3] {
        let shares = c.share_keys(&all).unwrap();
        server.receive_shares(c.id(), shares).unwrap();
    }
    let inbox = server.route_shares().unwrap();
    let m1 = cs[0]
        .masked_input(&[0.25; D], &inbox[&ClientId(1)])
        .unwrap();
    server.receive_masked(m1.clone()).unwrap();
    let e = server.receive_masked(m1.clone()).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::Duplicate {
                message: "MaskedInput",
                client: ClientId(1)
            }
        ),
        "{e}"
    );
    let stranger = flspec::secagg::MaskedInput {
        sender: ClientId(4),
        ..m1
    };
    let e = server.receive_masked(stranger).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::UnexpectedClient {
                client: ClientId(4),
                ..
            }
        ),
        "{e}"
    );
    for c in &mut cs[1..3] {
        let m = c.masked_input(&[0.25; D], &inbox[&c.id()]).unwrap();
        server.receive_masked(m).unwrap();
    }
    let req = server.unmask_request().unwrap();
    let mut r = cs[0].unmask(&req).unwrap();
    r.sender = ClientId(4);
    let e = server.receive_unmask(r).unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::UnexpectedClient {
                client: ClientId(4),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn server_rejects_out_of_place_messages() {
    let cfg = config(4, 3);
    let (mut cs, mut server, req) = through_masked(&cfg, 10);
    let r1 = cs[0].unmask(&req).unwrap();
    // A b share of a client the sender does not hold, or an s share of a survivor.
    let mut wrong = r1.clone();
    wrong.key_shares = wrong.seed_shares.clone();
    assert!(server.receive_unmask(wrong).is_err());
    server.receive_unmask(r1.clone()).unwrap();
    assert!(matches!(
        server.receive_unmask(r1).unwrap_err(),
        SecAggError::Duplicate { .. }
    ));
    // Below t responses: finish aborts with the counts, no partial result.
    server.receive_unmask(cs[1].unmask(&req).unwrap()).unwrap();
    let e = server.finish().unwrap_err();
    assert!(
        matches!(
            e,
            SecAggError::TooFewSurvivors {
                survived: 2,
                threshold: 3,
                ..
            }
        ),
        "{e}"
    );

    let mut server = Server::new(cfg.clone()).unwrap();
    let mut cs = clients(&cfg, 11);
    let a = cs[0].advertise().unwrap();
    server.receive_advertise(a.clone()).unwrap();
    assert!(matches!(
        server.receive_advertise(a.clone()).unwrap_err(),
        SecAggError::Duplicate { .. }
    ));
    let stranger = flspec::secagg::AdvertiseKeys {
        sender: ClientId(99),
        ..a.clone()
    };
    assert!(matches!(
        server.receive_advertise(stranger).unwrap_err(),
        SecAggError::UnexpectedClient { .. }
    ));
    let late = flspec::secagg::AdvertiseKeys { round: 0, ..a };
    assert!(matches!(
        server.receive_advertise(late).unwrap_err(),
        SecAggError::WrongRound { .. }
    ));
    assert!(matches!(
        server.route_shares().unwrap_err(),
        SecAggError::OutOfOrder { .. }
    ));
}

#[test]
fn client_calls_out_of_order_do_not_abort() {
    let cfg = config(3, 2);
    let mut cs = clients(&cfg, 12);
    let e = cs[0].masked_input(&[0.0; D], &[]).unwrap_err();
    assert!(matches!(e, SecAggError::OutOfOrder { .. }), "{e}");
    cs[0].advertise().unwrap();
    assert!(matches!(
        cs[0].advertise().unwrap_err(),
        SecAggError::OutOfOrder { .. }
    ));
    // A wrong-length or non-finite input is an input error, not an abort.
    let (mut cs, _, _, inbox) = through_share_keys(&cfg, 13);
    let e = cs[0]
        .masked_input(&[0.0; 3], &inbox[&ClientId(1)])
        .unwrap_err();
    assert!(matches!(e, SecAggError::LengthMismatch { .. }), "{e}");
    let e = cs[0]
        .masked_input(&[f32::NAN; D], &inbox[&ClientId(1)])
        .unwrap_err();
    assert!(matches!(e, SecAggError::NonFiniteInput { index: 0 }), "{e}");
    assert!(cs[0].masked_input(&[0.0; D], &inbox[&ClientId(1)]).is_ok());
}

#[test]
fn secrets_never_print() {
    let cfg = config(3, 2).with_mode(Mode::Full);
    let (cs, server, all, inbox) = through_share_keys(&cfg, 14);
    let dbg = format!("{:?} {server:?}", cs[0]);
    assert!(dbg.contains("shared-keys"), "{dbg}");
    // No 32-byte value (key, seed) in hex or as a byte list.
    let key_hex: String = all.keys[0]
        .s_public
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!dbg.contains(&key_hex));
    assert!(!dbg.chars().any(|c| c == '['), "{dbg}");
    // Errors hold ids and counts only.
    let e = SecAggError::DecryptionFailed {
        sender: ClientId(1),
        recipient: ClientId(2),
    };
    assert!(
        !e.to_string()
            .contains(&format!("{:?}", inbox[&ClientId(1)][0].ciphertext))
    );
}

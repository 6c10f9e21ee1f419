//! Secret hygiene (issue 8, point 5): every public type that holds secret bytes prints none of
//! them with `{:?}` or `{:#?}`, and the wiping RNG gives exactly rand_chacha's stream (so the
//! golden digests of `secagg_kat` still hold).

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;

use flspec::secagg::prg::MaskKey;
use flspec::secagg::rng::SecretRng;
use flspec::secagg::shamir::SecretShare;
use flspec::secagg::{
    Client, ClientId, Config, DropoutPlan, Input, Quantizer, RevealedShare, Server, Stage,
    TranscriptEntry, UnmaskResponse, kdf, simulate_round,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// 32 distinctive secret bytes (a run no formatter would print by chance).
fn secret(start: u8) -> Vec<u8> {
    (0..32).map(|i| start.wrapping_add(i * 3)).collect()
}

/// Every integer in `text`, in order (the decimal list forms of `{:?}` and `{:#?}` alike).
fn integers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() < 20)
        .map(|s| s.parse().unwrap())
        .collect()
}

/// Neither debug form of `value` shows `bytes`: not as hex (either case, any 8-byte window),
/// not as a decimal list (any 4 consecutive bytes).
fn assert_hidden(what: &str, value: &impl core::fmt::Debug, bytes: &[u8]) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        let lower = text.to_lowercase();
        for w in bytes.windows(8) {
            let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!lower.contains(&hex), "{what} prints secret hex: {text}");
        }
        let ints = integers(&text);
        for w in bytes.windows(4) {
            let w: Vec<u64> = w.iter().map(|&b| u64::from(b)).collect();
            assert!(
                !ints.windows(4).any(|x| x == w.as_slice()),
                "{what} prints secret bytes as a list: {text}"
            );
        }
    }
}

/// The harness itself must catch a leak, or the test could never fail.
#[test]
fn the_check_catches_both_forms() {
    let bytes = secret(200);
    for leak in [format!("{bytes:?}"), format!("{bytes:#?}")] {
        let r = std::panic::catch_unwind(|| assert_hidden("leak", &leak, &bytes));
        assert!(r.is_err(), "missed: {leak}");
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(std::panic::catch_unwind(|| assert_hidden("hex", &hex, &bytes)).is_err());
}

#[test]
fn no_secret_bearing_type_prints_its_bytes() {
    let a = secret(200);
    let b = secret(7);
    let share = RevealedShare {
        owner: ClientId(3),
        share: a.clone(),
    };
    assert_hidden("RevealedShare", &share, &a);
    let response = UnmaskResponse {
        sender: ClientId(1),
        round: 2,
        seed_shares: vec![share.clone()],
        key_shares: vec![RevealedShare {
            owner: ClientId(4),
            share: b.clone(),
        }],
    };
    assert_hidden("UnmaskResponse", &response, &a);
    assert_hidden("UnmaskResponse", &response, &b);
    assert_hidden("SecretShare", &SecretShare::new(1, a.clone()), &a);
    let key: [u8; 32] = a.clone().try_into().unwrap();
    assert_hidden("MaskKey", &MaskKey::from_bytes(key), &a);
    let aead = kdf::share_encryption_key(&key, &[1; 32], 3, ClientId(1), ClientId(2));
    let aead_bytes = aead.as_bytes().to_vec();
    assert_hidden("AeadKey", &aead, &aead_bytes);
    let mut rng = SecretRng::from_seed_ref(&key);
    assert_hidden("SecretRng (fresh)", &rng, &a);
    let mut out = [0u8; 40];
    rng.fill_bytes(&mut out);
    assert_hidden("SecretRng (seed)", &rng, &a);
    // The next buffered output must not show either.
    let mut peek = SecretRng::from_seed_ref(&key);
    let mut next = [0u8; 64];
    peek.fill_bytes(&mut [0u8; 40]);
    peek.fill_bytes(&mut next);
    assert_hidden("SecretRng (buffer)", &rng, &next);
    let entry = TranscriptEntry {
        stage: Stage::Unmasking,
        from: ClientId(1),
        bytes: a.clone(),
    };
    assert_hidden("TranscriptEntry", &entry, &a);
    let values: Vec<f32> = (0..8).map(|i| 0.123_456_78 + i as f32).collect();
    let input = Input::Float(values.clone());
    let words: Vec<u32> = a.iter().map(|&x| u32::from(x) * 1000).collect();
    for text in [format!("{input:?}"), format!("{input:#?}")] {
        assert!(!text.contains("0.12345"), "Input prints its values: {text}");
    }
    let quantized = Input::Quantized(words.clone());
    let ints = integers(&format!("{quantized:?}"));
    assert!(!ints.contains(&u64::from(words[1])), "{quantized:?}");
}

/// The state machines: a client's Debug never shows its X25519 secret keys (the first bytes
/// its RNG draws) nor the shares it holds; the server's never shows the revealed shares.
#[test]
fn client_and_server_print_no_secret() {
    let ids: Vec<ClientId> = (1..=3).map(ClientId).collect();
    let config = Config::new(ids.clone(), 2, 4, Quantizer::new(1.0, 3).unwrap());
    let seeds: Vec<[u8; 32]> = (0..3u8).map(|i| [i + 40; 32]).collect();
    let drawn = |seed: [u8; 32]| {
        let mut first = vec![0u8; 64]; // c, then s
        ChaCha20Rng::from_seed(seed).fill_bytes(&mut first);
        first
    };
    let mut clients: Vec<Client> = ids
        .iter()
        .zip(&seeds)
        .map(|(&id, seed)| {
            Client::new(config.clone(), id, &mut ChaCha20Rng::from_seed(*seed)).unwrap()
        })
        .collect();
    let check = |clients: &[Client]| {
        for (c, seed) in clients.iter().zip(&seeds) {
            assert_hidden("Client", c, &drawn(*seed));
        }
    };
    check(&clients);
    let mut server = Server::new(config).unwrap();
    for c in &mut clients {
        server.receive_advertise(c.advertise().unwrap()).unwrap();
    }
    check(&clients);
    let all = server.broadcast_keys().unwrap();
    for c in &mut clients {
        server
            .receive_shares(c.id(), c.share_keys(&all).unwrap())
            .unwrap();
    }
    check(&clients);
    let inboxes = server.route_shares().unwrap();
    for c in &mut clients {
        let m = c.masked_input(&[0.5; 4], &inboxes[&c.id()]).unwrap();
        server.receive_masked(m).unwrap();
    }
    check(&clients);
    let request = server.unmask_request().unwrap();
    let mut revealed = Vec::new();
    for c in &mut clients {
        let r = c.unmask(&request).unwrap();
        assert_hidden("UnmaskResponse", &r, &r.seed_shares[0].share);
        revealed.extend(r.seed_shares.iter().map(|s| s.share.clone()));
        server.receive_unmask(r).unwrap();
    }
    for bytes in &revealed {
        assert_hidden("Server", &server, bytes);
    }
    server.finish().unwrap();
}

#[test]
fn a_simulation_outcome_prints_no_share() {
    let ids: Vec<ClientId> = (1..=3).map(ClientId).collect();
    let config = Config::new(ids.clone(), 2, 4, Quantizer::new(1.0, 3).unwrap());
    let inputs: BTreeMap<_, _> = ids
        .iter()
        .map(|&id| (id, Input::Quantized(vec![id.0; 4])))
        .collect();
    let plan = DropoutPlan::none().drop_before(ClientId(3), Stage::MaskedInputCollection);
    let out = simulate_round(&config, &inputs, &plan, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let unmask: Vec<&TranscriptEntry> = out
        .transcript
        .entries
        .iter()
        .filter(|e| e.stage == Stage::Unmasking)
        .collect();
    assert_eq!(unmask.len(), 2);
    for e in unmask {
        let r: UnmaskResponse = flspec::secagg::messages::decode(&e.bytes).unwrap();
        for s in r.seed_shares.iter().chain(&r.key_shares) {
            assert_hidden("SimulationOutcome", &out, &s.share);
        }
    }
}

/// Every public type that holds secret bytes wipes them on drop (a compile-time check: the
/// marker trait is implemented only next to a wiping `Drop`).
#[test]
fn secret_bearing_types_zeroize_on_drop() {
    fn wiped<T: zeroize::ZeroizeOnDrop>() {}
    wiped::<RevealedShare>();
    wiped::<SecretShare>();
    wiped::<MaskKey>();
    wiped::<kdf::AeadKey>();
    wiped::<SecretRng>();
    wiped::<TranscriptEntry>();
    wiped::<Input>();
}

/// Shares survive a JSON round trip (a list of numbers, grown by hand while parsing).
#[test]
fn revealed_shares_round_trip_through_json_and_postcard() {
    for len in [0usize, 1, 32, 64, 65, 1000] {
        let share = RevealedShare {
            owner: ClientId(9),
            share: (0..len).map(|i| i as u8).collect(),
        };
        let json = serde_json::to_string(&share).unwrap();
        assert_eq!(serde_json::from_str::<RevealedShare>(&json).unwrap(), share);
        let bytes = postcard::to_stdvec(&share).unwrap();
        assert_eq!(
            postcard::from_bytes::<RevealedShare>(&bytes).unwrap(),
            share
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    U32,
    U64,
    Fill(usize),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any mix of calls gives rand_chacha's ChaCha20Rng output, word for word.
    #[test]
    fn secret_rng_equals_rand_chacha(
        seed in any::<[u8; 32]>(),
        ops in prop::collection::vec(
            prop_oneof![Just(Op::U32), Just(Op::U64), (0usize..300).prop_map(Op::Fill)],
            1..200,
        ),
    ) {
        let mut ours = SecretRng::from_seed_ref(&seed);
        let mut theirs = ChaCha20Rng::from_seed(seed);
        for op in ops {
            match op {
                Op::U32 => prop_assert_eq!(ours.next_u32(), theirs.next_u32()),
                Op::U64 => prop_assert_eq!(ours.next_u64(), theirs.next_u64()),
                Op::Fill(n) => {
                    let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                    ours.fill_bytes(&mut a);
                    theirs.fill_bytes(&mut b);
                    prop_assert_eq!(a, b);
                }
            }
        }
    }
}

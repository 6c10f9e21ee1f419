//! Known answers: each primitive against its published vectors, then our own derivations,
//! PRG and a whole round pinned as golden digests (seeded RNG).

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use flspec::secagg::prg::{MaskKey, Sign};
use flspec::secagg::{
    ClientId, Config, DropoutPlan, Input, Mode, Quantizer, Stage, kdf, simulate_round,
};
use hkdf::Hkdf;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 7748 §6.1 (X25519 Diffie-Hellman): Alice's and Bob's keys and their shared secret.
#[test]
fn x25519_rfc7748_6_1() {
    let a: [u8; 32] = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        .try_into()
        .unwrap();
    let b: [u8; 32] = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        .try_into()
        .unwrap();
    let (a, b) = (StaticSecret::from(a), StaticSecret::from(b));
    let (pa, pb) = (PublicKey::from(&a), PublicKey::from(&b));
    assert_eq!(
        hex(pa.as_bytes()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    assert_eq!(
        hex(pb.as_bytes()),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    );
    let k = a.diffie_hellman(&pb);
    assert_eq!(k.as_bytes(), b.diffie_hellman(&pa).as_bytes());
    assert_eq!(
        hex(k.as_bytes()),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );
}

/// RFC 8439 §2.8.2 (ChaCha20-Poly1305 AEAD), the "sunscreen" vector.
#[test]
fn chacha20poly1305_rfc8439_2_8_2() {
    let key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = unhex("070000004041424344454647");
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let cipher = ChaCha20Poly1305::new(key.as_slice().into());
    let ct = cipher
        .encrypt(nonce.as_slice().into(), Payload { msg: pt, aad: &aad })
        .unwrap();
    assert_eq!(
        hex(&ct[..16]),
        "d31a8d34648e60db7b86afbc53ef7ec2",
        "first ciphertext block"
    );
    assert_eq!(
        hex(&ct[ct.len() - 16..]),
        "1ae10b594f09e26a7e902ecbd0600691",
        "tag"
    );
    let back = cipher
        .decrypt(
            nonce.as_slice().into(),
            Payload {
                msg: &ct,
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(back, pt);
    let mut bad = ct.clone();
    bad[3] ^= 1;
    assert!(
        cipher
            .decrypt(
                nonce.as_slice().into(),
                Payload {
                    msg: &bad,
                    aad: &aad
                }
            )
            .is_err()
    );
    assert!(
        cipher
            .decrypt(
                nonce.as_slice().into(),
                Payload {
                    msg: &ct,
                    aad: b"other"
                }
            )
            .is_err()
    );
}

/// RFC 5869 Appendix A.1 (HKDF-SHA256, basic test case).
#[test]
fn hkdf_sha256_rfc5869_a1() {
    let ikm = [0x0bu8; 22];
    let salt = unhex("000102030405060708090a0b0c");
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let mut okm = [0u8; 42];
    Hkdf::<Sha256>::new(Some(&salt), &ikm)
        .expand(&info, &mut okm)
        .unwrap();
    assert_eq!(
        hex(&okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
}

/// Our own HKDF-SHA256 (it wipes every intermediate value, which the `hkdf` crate does not):
/// RFC 5869 Appendix A.1 to A.3 (A.2 has a salt longer than the 64-byte HMAC block, A.3 an
/// empty salt and info).
#[test]
fn own_hkdf_sha256_rfc5869_a1_a2_a3() {
    let a2_ikm: Vec<u8> = (0x00..=0x4fu8).collect();
    let a2_salt: Vec<u8> = (0x60..=0xafu8).collect();
    let a2_info: Vec<u8> = (0xb0..=0xffu8).collect();
    // (ikm, salt, info, okm)
    type Case<'a> = (&'a [u8], Vec<u8>, Vec<u8>, &'a str);
    let cases: [Case; 3] = [
        (
            &[0x0b; 22],
            unhex("000102030405060708090a0b0c"),
            unhex("f0f1f2f3f4f5f6f7f8f9"),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            &a2_ikm,
            a2_salt,
            a2_info,
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
             59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
             cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            &[0x0b; 22],
            vec![],
            vec![],
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (ikm, salt, info, okm_hex) in cases {
        let mut okm = vec![0u8; okm_hex.len() / 2];
        kdf::hkdf_sha256(&salt, ikm, &info, &mut okm);
        assert_eq!(hex(&okm), okm_hex);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any lengths: our HKDF-SHA256 equals the `hkdf` crate's.
    #[test]
    fn own_hkdf_equals_the_hkdf_crate(
        salt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..150),
        ikm in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..150),
        info in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..150),
        len in 1usize..200,
    ) {
        let mut ours = vec![0u8; len];
        kdf::hkdf_sha256(&salt, &ikm, &info, &mut ours);
        let mut theirs = vec![0u8; len];
        Hkdf::<Sha256>::new(Some(&salt), &ikm).expand(&info, &mut theirs).unwrap();
        proptest::prop_assert_eq!(ours, theirs);
    }
}

/// RFC 8439 Appendix A.1, test vector #1 (ChaCha20 block: zero key, zero nonce, counter 0):
/// our PRG is that keystream read as little-endian u32 words.
#[test]
fn prg_is_chacha20_keystream_rfc8439_a1() {
    let words = MaskKey::from_bytes([0; 32]).keystream_words(16);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(
        hex(&bytes),
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
         da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    );
    // Subtracting the same keystream cancels it exactly (wrapping).
    let mut acc: Vec<u32> = (0..10_000u32).collect();
    MaskKey::from_bytes([3; 32]).apply(&mut acc, Sign::Plus);
    MaskKey::from_bytes([3; 32]).apply(&mut acc, Sign::Minus);
    assert_eq!(acc, (0..10_000u32).collect::<Vec<_>>());
    // Chunk boundaries do not change the stream.
    let long = MaskKey::from_bytes([5; 32]).keystream_words(10_000);
    let short = MaskKey::from_bytes([5; 32]).keystream_words(4097);
    assert_eq!(&long[..4097], &short[..]);
}

/// Our derivations (no RFC vectors exist): pinned values, plus the properties that matter.
#[test]
fn kdf_known_answers() {
    let ss = [0x11u8; 32];
    let session = [0x22u8; 32];
    let (a, b) = (ClientId(1), ClientId(2));
    let pair = MaskKey::keystream_words(kdf::pairwise_mask_key(&ss, &session, 7, a, b), 4);
    let pair_rev = MaskKey::keystream_words(kdf::pairwise_mask_key(&ss, &session, 7, b, a), 4);
    assert_eq!(pair, pair_rev, "pairwise keys are symmetric");
    let other_round = MaskKey::keystream_words(kdf::pairwise_mask_key(&ss, &session, 8, a, b), 4);
    assert_ne!(pair, other_round);
    let enc_ab = kdf::share_encryption_key(&ss, &session, 7, a, b);
    let enc_ba = kdf::share_encryption_key(&ss, &session, 7, b, a);
    assert_ne!(
        enc_ab.as_bytes(),
        enc_ba.as_bytes(),
        "one key per direction"
    );
    let self_key = MaskKey::keystream_words(kdf::self_mask_key(&ss, &session, 7, a), 4);
    assert_ne!(self_key, pair);
    assert!(!format!("{enc_ab:?}").contains(&hex(enc_ab.as_bytes())));
    assert_eq!(
        hex(enc_ab.as_bytes()),
        "d18ff0ed534cbe3ce27d36598038546875003af8797a5300439c61abc27badff"
    );
    assert_eq!(
        format!("{pair:08x?}"),
        "[a090815a, 2a01e18f, 309e81b6, 88931c1e]"
    );
    assert_eq!(
        format!("{self_key:08x?}"),
        "[e08601de, fd96f6c9, f5e23c02, 2994d15b]"
    );
    let ad = kdf::share_associated_data(&session, 7, a, b);
    assert_eq!(&ad[..16], b"flspec/secagg/v1");
    assert_eq!(
        &ad[48..64],
        &[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2]
    );
}

fn golden_round(mode: Mode, threshold: u32) -> (String, String) {
    let ids: Vec<ClientId> = (1..=6).map(ClientId).collect();
    let config = Config::new(ids.clone(), threshold, 32, Quantizer::new(1.0, 6).unwrap())
        .with_mode(mode)
        .with_session([0x5e; 32])
        .with_round(3);
    let inputs: BTreeMap<ClientId, Input> = ids
        .iter()
        .map(|&id| {
            (
                id,
                Input::Float((0..32).map(|j| ((id.0 * 31 + j) as f32).sin()).collect()),
            )
        })
        .collect();
    let plan = DropoutPlan::none()
        .drop_before(ClientId(2), Stage::MaskedInputCollection)
        .drop_before(ClientId(5), Stage::Unmasking);
    let out = simulate_round(
        &config,
        &inputs,
        &plan,
        &mut ChaCha20Rng::from_seed([0x42; 32]),
    )
    .unwrap();
    let mut transcript = Sha256::new();
    for e in &out.transcript.entries {
        transcript.update((e.bytes.len() as u64).to_be_bytes());
        transcript.update(&e.bytes);
    }
    let sum = out.result.unwrap();
    assert_eq!(
        sum.contributors,
        vec![
            ClientId(1),
            ClientId(3),
            ClientId(4),
            ClientId(5),
            ClientId(6)
        ]
    );
    let sum_bytes: Vec<u8> = sum.sum.iter().flat_map(|v| v.to_le_bytes()).collect();
    (
        hex(&transcript.finalize()),
        hex(&Sha256::digest(&sum_bytes)),
    )
}

/// A whole seeded round (with dropouts) is reproducible: the server's transcript and the sum
/// are pinned. A change here changes the wire format or the protocol's randomness use.
#[test]
fn round_golden_digests() {
    let (transcript, sum) = golden_round(Mode::Full, 4);
    assert_eq!(
        transcript,
        "239ebd3cb861d3ef9e659537ea42e0536978f33938551137f227366e730fecc2"
    );
    assert_eq!(
        sum,
        "d77fecab20410f76c8db9c8725bf1543c103d59b177481f72a0780eba1e79ec7"
    );
    let (transcript, sum) = golden_round(
        Mode::SecAggPlus {
            k: 4,
            graph_seed: 9,
        },
        3,
    );
    assert_eq!(
        transcript,
        "05c159cae8008cb21de9c449f7201f263640671eb25a63048dcc3a58979d9d53"
    );
    assert_eq!(
        sum,
        "d77fecab20410f76c8db9c8725bf1543c103d59b177481f72a0780eba1e79ec7"
    );
}

//! Secure-aggregation benchmarks: mask PRG throughput against the raw ChaCha20 keystream, and
//! client and server time per round for n = 2, 10, 100, 1,000 with vectors of 21,840 values
//! (the MNIST CNN of the flagship example) and 1,000,000 values, full graph and SecAgg+.
//! Also prints the bytes each client sends and the expansion against a plain `f32` vector.
//!
//! Run: `cargo bench -p flspec --bench secagg -- --warm-up-time 1 --measurement-time 3`.
//! The two largest cases (n = 1,000 with 1,000,000 values: about 4 GB of masked vectors for
//! the server, and 4 GB of keystream per client on the full graph) run only with
//! `SECAGG_BENCH_HUGE=1`.

#![allow(clippy::unwrap_used)] // a benchmark that fails should stop loudly
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use criterion::{BatchSize, Criterion, Throughput};
use flspec::secagg::messages::encode;
use flspec::secagg::prg::{MaskKey, Sign};
use flspec::secagg::rng::SecretRng;
use flspec::secagg::{
    AdvertiseKeys, AllAdvertised, Client, ClientId, Config, EncryptedShare, MaskedInput, Mode,
    Quantizer, Server, UnmaskRequest, UnmaskResponse, kdf,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

const MNIST_CNN: usize = 21_840;
const MILLION: usize = 1_000_000;

fn bench_prg(c: &mut Criterion) {
    let mut g = c.benchmark_group("prg");
    for len in [MNIST_CNN, MILLION] {
        g.throughput(Throughput::Bytes(4 * len as u64));
        let mut bytes = vec![0u8; 4 * len];
        g.bench_function(format!("chacha20_keystream/{len}"), |b| {
            b.iter(|| {
                let mut cipher = ChaCha20::new(&[7u8; 32].into(), &[0u8; 12].into());
                cipher.apply_keystream(&mut bytes);
                black_box(&bytes);
            })
        });
        let mut acc = vec![0u32; len];
        g.bench_function(format!("mask_add/{len}"), |b| {
            b.iter(|| {
                MaskKey::from_bytes([7; 32]).apply(&mut acc, Sign::Plus);
                black_box(&acc);
            })
        });
    }
    g.finish();
}

fn config(n: usize, mode: &Mode, d: usize) -> Config {
    let hood = match mode {
        Mode::Full => n,
        Mode::SecAggPlus { k, .. } => *k as usize + 1,
    };
    Config::new(
        (1..=n as u32).map(ClientId),
        (hood / 2 + 1).max(2) as u32,
        d,
        Quantizer::new(1.0, n as u32).unwrap(),
    )
    .with_mode(mode.clone())
    .with_session([3; 32])
    .with_round(1)
}

fn seed_of(id: ClientId) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&id.0.to_le_bytes());
    s
}

fn input(d: usize, id: ClientId) -> Vec<f32> {
    let mut r = ChaCha20Rng::seed_from_u64(u64::from(id.0));
    (0..d)
        .map(|_| (r.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect()
}

/// Every message of one round without dropouts, and what client 1 sent (in bytes).
struct Round {
    all: AllAdvertised,
    advertise: Vec<AdvertiseKeys>,
    shares: Vec<(ClientId, Vec<EncryptedShare>)>,
    inboxes: BTreeMap<ClientId, Vec<EncryptedShare>>,
    masked: Vec<MaskedInput>,
    request: UnmaskRequest,
    responses: Vec<UnmaskResponse>,
    client1_bytes: usize,
}

fn prepare(cfg: &Config) -> Round {
    let ids = cfg.sorted_clients();
    let mut clients: Vec<Client> = ids
        .iter()
        .map(|&id| Client::new(cfg.clone(), id, &mut ChaCha20Rng::from_seed(seed_of(id))).unwrap())
        .collect();
    let mut server = Server::new(cfg.clone()).unwrap();
    let advertise: Vec<AdvertiseKeys> =
        clients.iter_mut().map(|c| c.advertise().unwrap()).collect();
    for a in &advertise {
        server.receive_advertise(a.clone()).unwrap();
    }
    let all = server.broadcast_keys().unwrap();
    let shares: Vec<(ClientId, Vec<EncryptedShare>)> = clients
        .iter_mut()
        .map(|c| (c.id(), c.share_keys(&all).unwrap()))
        .collect();
    for (id, s) in &shares {
        server.receive_shares(*id, s.clone()).unwrap();
    }
    let inboxes = server.route_shares().unwrap();
    let masked: Vec<MaskedInput> = clients
        .iter_mut()
        .map(|c| {
            c.masked_input(&input(cfg.vector_len, c.id()), &inboxes[&c.id()])
                .unwrap()
        })
        .collect();
    for m in &masked {
        server.receive_masked(m.clone()).unwrap();
    }
    let request = server.unmask_request().unwrap();
    let responses: Vec<UnmaskResponse> = clients
        .iter_mut()
        .map(|c| c.unmask(&request).unwrap())
        .collect();
    let client1_bytes = encode(&advertise[0]).unwrap().len()
        + encode(&shares[0].1).unwrap().len()
        + encode(&masked[0]).unwrap().len()
        + encode(&responses[0]).unwrap().len();
    Round {
        all,
        advertise,
        shares,
        inboxes,
        masked,
        request,
        responses,
        client1_bytes,
    }
}

/// One client's whole round (key generation, sharing, quantizing and masking, unmasking).
fn client_round(cfg: &Config, round: &Round, x: &[f32]) -> MaskedInput {
    let id = ClientId(1);
    let mut c = Client::new(cfg.clone(), id, &mut ChaCha20Rng::from_seed(seed_of(id))).unwrap();
    c.advertise().unwrap();
    c.share_keys(&round.all).unwrap();
    let m = c.masked_input(x, &round.inboxes[&id]).unwrap();
    black_box(c.unmask(&round.request).unwrap());
    m
}

type ServerInput = (
    Vec<AdvertiseKeys>,
    Vec<(ClientId, Vec<EncryptedShare>)>,
    Vec<MaskedInput>,
    Vec<UnmaskResponse>,
);

fn server_round(cfg: &Config, (adv, shares, masked, responses): ServerInput) -> Vec<u32> {
    let mut s = Server::new(cfg.clone()).unwrap();
    for a in adv {
        s.receive_advertise(a).unwrap();
    }
    s.broadcast_keys().unwrap();
    for (id, sh) in shares {
        s.receive_shares(id, sh).unwrap();
    }
    s.route_shares().unwrap();
    for m in masked {
        s.receive_masked(m).unwrap();
    }
    s.unmask_request().unwrap();
    for r in responses {
        s.receive_unmask(r).unwrap();
    }
    s.finish().unwrap().sum
}

struct Row {
    n: usize,
    mode: &'static str,
    d: usize,
    bytes: usize,
}

fn bench_rounds(c: &mut Criterion, rows: &mut Vec<Row>) {
    let huge = std::env::var("SECAGG_BENCH_HUGE").is_ok_and(|v| v == "1");
    for n in [2usize, 10, 100, 1000] {
        let modes: Vec<(&'static str, Mode)> = if n == 2 {
            vec![("full", Mode::Full)]
        } else {
            vec![
                ("full", Mode::Full),
                (
                    "secagg+",
                    Mode::SecAggPlus {
                        k: Mode::secagg_plus_degree(n),
                        graph_seed: 1,
                    },
                ),
            ]
        };
        for (name, mode) in modes {
            let mut small: Option<Round> = None;
            for d in [MNIST_CNN, MILLION] {
                let cfg = config(n, &mode, d);
                let full_1000 = n == 1000 && name == "full";
                let server_ok = huge || !(n == 1000 && d == MILLION);
                let client_ok = huge || !(full_1000 && d == MILLION);
                let t0 = Instant::now();
                let round = if server_ok { Some(prepare(&cfg)) } else { None };
                eprintln!("prepared n={n} {name} d={d} in {:.1?}", t0.elapsed());
                let reference = round
                    .as_ref()
                    .or(small.as_ref())
                    .expect("the d = 21,840 round runs first");
                let bytes = match &round {
                    Some(r) => r.client1_bytes,
                    // Only the masked vector grows with d.
                    None => reference.client1_bytes + 4 * (d - MNIST_CNN),
                };
                rows.push(Row {
                    n,
                    mode: name,
                    d,
                    bytes,
                });
                let mut g = c.benchmark_group(format!("round/{name}/n{n}/d{d}"));
                g.sample_size(10);
                if client_ok {
                    let x = input(d, ClientId(1));
                    g.bench_function("client", |b| b.iter(|| client_round(&cfg, reference, &x)));
                }
                if let Some(r) = &round {
                    g.bench_function("server", |b| {
                        b.iter_batched(
                            || {
                                (
                                    r.advertise.clone(),
                                    r.shares.clone(),
                                    r.masked.clone(),
                                    r.responses.clone(),
                                )
                            },
                            |input| server_round(&cfg, input),
                            BatchSize::PerIteration,
                        )
                    });
                }
                g.finish();
                if d == MNIST_CNN {
                    small = round;
                }
            }
        }
    }
}

/// The wiping replacements against the crates they replace: the client's stochastic rounding
/// with `SecretRng` or `rand_chacha::ChaCha20Rng` (same stream), and one 32-byte key
/// derivation with our `kdf::hkdf_sha256` or the `hkdf` crate.
fn bench_secret_hygiene(c: &mut Criterion) {
    let mut g = c.benchmark_group("secrets");
    let q = Quantizer::new(1.0, 10).unwrap();
    for len in [MNIST_CNN, MILLION] {
        let x = input(len, ClientId(1));
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("quantize_rand_chacha/{len}"), |b| {
            b.iter(|| {
                black_box(
                    q.quantize(&x, &mut ChaCha20Rng::from_seed([5; 32]))
                        .unwrap(),
                )
            })
        });
        g.bench_function(format!("quantize_secret_rng/{len}"), |b| {
            b.iter(|| {
                black_box(
                    q.quantize(&x, &mut SecretRng::from_seed_ref(&[5; 32]))
                        .unwrap(),
                )
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let info = [7u8; 29];
    g.bench_function("hkdf_own", |b| {
        b.iter(|| {
            let mut okm = [0u8; 32];
            kdf::hkdf_sha256(&[1; 32], black_box(&[2; 32]), &info, &mut okm);
            black_box(okm)
        })
    });
    g.bench_function("hkdf_crate", |b| {
        b.iter(|| {
            let mut okm = [0u8; 32];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(&[1; 32]), black_box(&[2; 32]))
                .expand(&info, &mut okm)
                .unwrap();
            black_box(okm)
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_prg(&mut c);
    bench_secret_hygiene(&mut c);
    let mut rows = Vec::new();
    bench_rounds(&mut c, &mut rows);
    c.final_summary();
    println!(
        "\nbytes sent per client (client 1, no dropouts) and expansion against a plain f32 vector:"
    );
    println!("| n | mode | values | bytes sent | plain f32 | expansion |");
    for r in rows {
        let plain = encode(&vec![0f32; r.d]).unwrap().len();
        println!(
            "| {} | {} | {} | {} | {} | {:.4}x |",
            r.n,
            r.mode,
            r.d,
            r.bytes,
            plain,
            r.bytes as f64 / plain as f64
        );
    }
}

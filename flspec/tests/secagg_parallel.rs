//! The parallel simulation and the parallel server give the same bytes as the sequential
//! round: the whole outcome of `simulate_round_with_threads` (sum or error, every transcript
//! byte, client errors, byte counts) is pinned to digests recorded from the sequential
//! implementation before parallelism existed (commit a4f0607), for 1 and for several worker
//! threads, on the full graph and SecAgg+, semi-honest and malicious-secure, with dropouts at
//! every stage, a client that refuses its input, and rounds that fail.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use flspec::secagg::{
    AggregateSum, ClientId, Config, DropoutPlan, Input, Mode, Quantizer, Result, Security, Server,
    SimulationOutcome, Stage, min_malicious_threshold, simulate_round, simulate_round_with_threads,
};
use flspec::secagg::{Client, UnmaskResponse};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

const D: usize = 200;

fn threads(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// SHA-256 of everything a simulated round produced, or of the error that stopped it.
fn fingerprint(out: Result<SimulationOutcome>) -> String {
    let mut h = Sha256::new();
    match out {
        Err(e) => h.update(format!("simulation error: {e}")),
        Ok(out) => {
            match &out.result {
                Ok(sum) => {
                    h.update(b"sum");
                    for w in &sum.sum {
                        h.update(w.to_le_bytes());
                    }
                    for v in &sum.values {
                        h.update(v.to_le_bytes());
                    }
                    h.update(format!("{:?}", sum.contributors));
                }
                Err(e) => h.update(format!("round error: {e}")),
            }
            for e in &out.transcript.entries {
                h.update(format!("{:?} {} {}", e.stage, e.from, e.bytes.len()));
                h.update(&e.bytes);
            }
            for (id, e) in &out.client_errors {
                h.update(format!("client {id}: {e}"));
            }
            h.update(format!("{:?} {:?}", out.bytes_sent, out.bytes_received));
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn ids(n: u32) -> Vec<ClientId> {
    (1..=n).map(ClientId).collect()
}

fn float_inputs(ids: &[ClientId]) -> BTreeMap<ClientId, Input> {
    ids.iter()
        .map(|&id| {
            let x = (0..D)
                .map(|j| ((id.0 as usize * D + j) as f32 * 0.013).sin())
                .collect();
            (id, Input::Float(x))
        })
        .collect()
}

/// One scenario: a name, its config, inputs, dropout plan and RNG seed.
struct Scenario {
    name: &'static str,
    config: Config,
    inputs: BTreeMap<ClientId, Input>,
    plan: DropoutPlan,
    seed: u64,
}

fn dropouts() -> DropoutPlan {
    DropoutPlan::none()
        .drop_before(ClientId(2), Stage::ShareKeys)
        .drop_before(ClientId(4), Stage::MaskedInputCollection)
        .drop_before(ClientId(7), Stage::MaskedInputCollection)
        .drop_before(ClientId(9), Stage::Unmasking)
}

fn scenarios() -> Vec<Scenario> {
    let q = |n| Quantizer::new(1.0, n).unwrap();
    let plus = |n: usize| Mode::SecAggPlus {
        k: Mode::secagg_plus_degree(n),
        graph_seed: 5,
    };
    let mut out = vec![
        Scenario {
            name: "full graph, semi-honest, dropouts at every stage",
            config: Config::new(ids(14), 8, D, q(14)).with_session([1; 32]),
            inputs: float_inputs(&ids(14)),
            plan: dropouts(),
            seed: 1,
        },
        Scenario {
            name: "SecAgg+, semi-honest, dropouts at every stage",
            config: Config::new(ids(24), 6, D, q(24))
                .with_mode(plus(24))
                .with_round(3),
            inputs: float_inputs(&ids(24)),
            plan: dropouts(),
            seed: 2,
        },
        Scenario {
            name: "full graph, malicious-secure, dropouts at every stage",
            config: Config::new(ids(15), min_malicious_threshold(15), D, q(15))
                .with_security(Security::Malicious),
            inputs: float_inputs(&ids(15)),
            plan: dropouts(),
            seed: 3,
        },
        Scenario {
            name: "SecAgg+, malicious-secure, dropouts at every stage",
            config: Config::new(ids(20), 8, D, q(20))
                .with_mode(plus(20))
                .with_security(Security::Malicious),
            inputs: float_inputs(&ids(20)),
            plan: dropouts(),
            seed: 4,
        },
        Scenario {
            name: "full graph, ring and quantized inputs, one client refuses a too-short input",
            config: Config::new(ids(10), 6, D, q(10)),
            inputs: ids(10)
                .into_iter()
                .map(|id| {
                    let input = match id.0 {
                        3 => Input::Quantized(vec![1; D - 1]),
                        x if x % 2 == 0 => Input::Ring((0..D as u32).map(|j| j * x).collect()),
                        x => Input::Quantized(vec![x; D]),
                    };
                    (id, input)
                })
                .collect(),
            plan: DropoutPlan::none().drop_before(ClientId(5), Stage::MaskedInputCollection),
            seed: 5,
        },
        Scenario {
            name: "full graph, too few survivors at unmasking: the round fails",
            config: Config::new(ids(8), 6, D, q(8)),
            inputs: float_inputs(&ids(8)),
            plan: DropoutPlan::none()
                .drop_before(ClientId(1), Stage::Unmasking)
                .drop_before(ClientId(6), Stage::Unmasking)
                .drop_before(ClientId(8), Stage::Unmasking),
            seed: 6,
        },
    ];
    let mut missing = float_inputs(&ids(6));
    missing.remove(&ClientId(4));
    out.push(Scenario {
        name: "a client without an input: the simulation refuses to start",
        config: Config::new(ids(6), 4, D, q(6)),
        inputs: missing,
        plan: DropoutPlan::none(),
        seed: 7,
    });
    out
}

/// The digests of the sequential implementation (commit a4f0607, `simulate_round` before it
/// ran anything in parallel), in the order of [`scenarios`].
const SEQUENTIAL: [&str; 7] = [
    "676aab78d8761887aab4990499c0c240672b4ce99d02912d8cc690c3a44093bc",
    "c11bad8bfda7317eaf94abe005c0faf91e19173df4f718407290b37e8a1a177d",
    "aa89ee68766ddb679aa9eff480b0ba326c633681f5aecaae35402aec7f0a3a4a",
    "31dc40e0a70990b15188ff3b0bccd59de7aec9a767a3d43ce10ddced5bb93a5f",
    "3cb4a04813dc337fc4252724e3f0e6ac343b1b9842156b09190c30d5c5582f32",
    "78cef6065a5eb7b73dc7dcb77b3cbabbc5a28728755180939bce7df8319eebfc",
    "69f4ac28f9700a51c99f59c93dd27f3fb7618c022c2012aa91b74b5b59c4041d",
];

#[test]
fn any_worker_count_gives_the_bytes_of_the_sequential_round() {
    let all = scenarios();
    assert_eq!(all.len(), SEQUENTIAL.len());
    for (s, want) in all.iter().zip(SEQUENTIAL) {
        for n in [1, 2, 3, 8] {
            let mut rng = ChaCha20Rng::seed_from_u64(s.seed);
            let out =
                simulate_round_with_threads(&s.config, &s.inputs, &s.plan, &mut rng, threads(n));
            assert_eq!(fingerprint(out), want, "{}: {n} worker thread(s)", s.name);
        }
        // The default (the machine's parallelism) too.
        let mut rng = ChaCha20Rng::seed_from_u64(s.seed);
        let out = simulate_round(&s.config, &s.inputs, &s.plan, &mut rng);
        assert_eq!(fingerprint(out), want, "{}: default threads", s.name);
    }
}

#[test]
fn the_scenarios_cover_what_they_claim() {
    let all = scenarios();
    let run = |s: &Scenario| {
        simulate_round_with_threads(
            &s.config,
            &s.inputs,
            &s.plan,
            &mut ChaCha20Rng::seed_from_u64(s.seed),
            threads(2),
        )
    };
    for s in &all[..4] {
        let out = run(s).unwrap();
        let sum = out.result.unwrap();
        // 2 dropped before sharing, 4 and 7 before masking: their masks were removed.
        assert!(!sum.contributors.contains(&ClientId(4)), "{}", s.name);
        assert!(sum.contributors.contains(&ClientId(9)), "{}", s.name);
        assert!(out.client_errors.is_empty(), "{}", s.name);
    }
    let refused = run(&all[4]).unwrap();
    assert!(refused.client_errors.contains_key(&ClientId(3)));
    assert!(refused.result.is_ok());
    assert!(run(&all[5]).unwrap().result.is_err());
    assert!(run(&all[6]).is_err());
}

/// A round of 16 clients driven by hand, clients 3, 10 and 11 vanishing before their masked
/// inputs; the unmask responses pass through `tamper`, then the server with `n` workers closes
/// the round.
fn finish_with(n: usize, tamper: impl Fn(&mut UnmaskResponse)) -> Result<AggregateSum> {
    let dropped = [ClientId(3), ClientId(10), ClientId(11)];
    let config = Config::new(ids(16), 9, 3000, Quantizer::new(1.0, 16).unwrap());
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut clients: Vec<Client> = ids(16)
        .into_iter()
        .map(|id| Client::new(config.clone(), id, &mut rng).unwrap())
        .collect();
    let mut server = Server::new(config).unwrap().with_threads(threads(n));
    assert_eq!(server.threads().get(), n);
    for c in &mut clients {
        server.receive_advertise(c.advertise().unwrap()).unwrap();
    }
    let all = server.broadcast_keys().unwrap();
    for c in &mut clients {
        server
            .receive_shares(c.id(), c.share_keys(&all).unwrap())
            .unwrap();
    }
    let inboxes = server.route_shares().unwrap();
    let x: Vec<f32> = (0..3000).map(|j| (j as f32 * 0.01).cos() * 0.5).collect();
    for c in clients.iter_mut().filter(|c| !dropped.contains(&c.id())) {
        server
            .receive_masked(c.masked_input(&x, &inboxes[&c.id()]).unwrap())
            .unwrap();
    }
    let request = server.unmask_request().unwrap();
    for c in clients.iter_mut().filter(|c| !dropped.contains(&c.id())) {
        let mut resp = c.unmask(&request).unwrap();
        tamper(&mut resp);
        server.receive_unmask(resp).unwrap();
    }
    server.finish()
}

#[test]
fn server_finish_gives_the_same_sum_for_any_worker_count() {
    let one = finish_with(1, |_| {}).unwrap();
    assert_eq!(one.contributors.len(), 13);
    // The masks are gone: 13 contributors of the same vector.
    for (j, v) in one.values.iter().enumerate() {
        let want = 13.0 * (j as f32 * 0.01).cos() * 0.5;
        assert!((v - want).abs() < 1e-3, "value {j}: {v} against {want}");
    }
    for n in [2, 3, 8, 64] {
        assert_eq!(finish_with(n, |_| {}).unwrap(), one, "{n} workers");
    }
}

#[test]
fn server_finish_reports_the_first_corrupt_key_in_owner_order_for_any_worker_count() {
    // Every share of the mask keys of dropped clients 10 and 11 is altered: both rebuilt keys
    // are wrong, and the error must name 10, the first in order, whichever worker meets 11 first.
    let corrupt = |resp: &mut UnmaskResponse| {
        for r in &mut resp.key_shares {
            if r.owner == ClientId(10) || r.owner == ClientId(11) {
                r.share[0] ^= 0x5a;
            }
        }
    };
    for n in [1, 2, 3, 8] {
        let e = finish_with(n, corrupt).unwrap_err().to_string();
        assert!(e.contains("mask key of client 10 "), "{n} workers: {e}");
    }
}

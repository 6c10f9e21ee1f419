//! The full-graph SecAgg round at n = 1,000 on 1 worker thread against several: where the
//! time goes (each stage of a hand-driven sequential round), then the whole simulated round
//! (`simulate_round_with_threads`) and the server's `finish` alone, with each thread count
//! run interleaved with the others (the order alternates between repetitions) so that load
//! from other processes hits every count alike. Prints medians, ratios, the CPU model and the
//! load average.
//!
//! Run: `cargo bench -p flspec --bench secagg_parallel`. Settings (environment):
//! `SECAGG_PAR_N` (clients, default 1000), `SECAGG_PAR_D` (vector lengths, default
//! `1000,21840`), `SECAGG_PAR_THREADS` (default `1,2`), `SECAGG_PAR_DROP` (per mille of the
//! clients that vanish before their masked input, default 50), `SECAGG_PAR_REPS` (whole
//! simulated rounds per thread count, default 3), `SECAGG_PAR_FINISH_REPS` (server `finish`
//! calls per thread count, default 7), `SECAGG_PAR_SKIP_SIM=1` (only the breakdown and the
//! server).

#![allow(clippy::unwrap_used)] // a benchmark that fails should stop loudly
#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use flspec::secagg::{
    AdvertiseKeys, AggregateSum, Client, ClientId, Config, DropoutPlan, EncryptedShare, Input,
    MaskedInput, Quantizer, Server, Stage, UnmaskResponse, simulate_round_with_threads,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    env_or(name, default)
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

fn config(n: usize, d: usize) -> Config {
    Config::new(
        (1..=n as u32).map(ClientId),
        (n / 2 + 1) as u32,
        d,
        Quantizer::new(1.0, n as u32).unwrap(),
    )
    .with_session([3; 32])
    .with_round(1)
}

fn input(d: usize, id: ClientId) -> Vec<f32> {
    let mut r = ChaCha20Rng::seed_from_u64(u64::from(id.0));
    (0..d)
        .map(|_| (r.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect()
}

/// The clients that vanish before their masked input: every `1000 / per_mille`-th one.
fn dropped(n: usize, per_mille: usize) -> BTreeSet<ClientId> {
    let count = n * per_mille / 1000;
    (0..count)
        .map(|i| ClientId((i * n / count.max(1) + 1) as u32))
        .collect()
}

/// The server's messages of one round, for timing `finish` alone.
struct Messages {
    advertise: Vec<AdvertiseKeys>,
    shares: Vec<(ClientId, Vec<EncryptedShare>)>,
    masked: Vec<MaskedInput>,
    responses: Vec<UnmaskResponse>,
}

fn timed<T>(
    stages: &mut Vec<(&'static str, Duration)>,
    name: &'static str,
    f: impl FnOnce() -> T,
) -> T {
    let t0 = Instant::now();
    let out = f();
    stages.push((name, t0.elapsed()));
    out
}

/// One round driven by hand on the calling thread, each stage timed (all clients together).
fn breakdown(cfg: &Config, gone: &BTreeSet<ClientId>) -> (Vec<(&'static str, Duration)>, Messages) {
    let mut st = Vec::new();
    let ids = cfg.sorted_clients();
    let mut clients: Vec<Client> = timed(&mut st, "clients: new (key generation)", || {
        ids.iter()
            .map(|&id| {
                Client::new(
                    cfg.clone(),
                    id,
                    &mut ChaCha20Rng::seed_from_u64(u64::from(id.0)),
                )
                .unwrap()
            })
            .collect()
    });
    let mut server = Server::new(cfg.clone())
        .unwrap()
        .with_threads(NonZeroUsize::MIN);
    let advertise: Vec<AdvertiseKeys> = timed(&mut st, "clients: advertise", || {
        clients.iter_mut().map(|c| c.advertise().unwrap()).collect()
    });
    let all = timed(&mut st, "server: receive_advertise, broadcast_keys", || {
        for a in &advertise {
            server.receive_advertise(a.clone()).unwrap();
        }
        server.broadcast_keys().unwrap()
    });
    let shares: Vec<(ClientId, Vec<EncryptedShare>)> = timed(
        &mut st,
        "clients: share_keys (n-1 key agreements and encryptions, Shamir split)",
        || {
            clients
                .iter_mut()
                .map(|c| (c.id(), c.share_keys(&all).unwrap()))
                .collect()
        },
    );
    let inboxes = timed(&mut st, "server: receive_shares, route_shares", || {
        for (id, s) in &shares {
            server.receive_shares(*id, s.clone()).unwrap();
        }
        server.route_shares().unwrap()
    });
    let xs: Vec<Vec<f32>> = ids.iter().map(|&id| input(cfg.vector_len, id)).collect();
    let masked: Vec<MaskedInput> = timed(
        &mut st,
        "clients: masked_input (n-1 key agreements, n mask expansions)",
        || {
            clients
                .iter_mut()
                .zip(&xs)
                .filter(|(c, _)| !gone.contains(&c.id()))
                .map(|(c, x)| c.masked_input(x, &inboxes[&c.id()]).unwrap())
                .collect()
        },
    );
    let request = timed(&mut st, "server: receive_masked, unmask_request", || {
        for m in &masked {
            server.receive_masked(m.clone()).unwrap();
        }
        server.unmask_request().unwrap()
    });
    let responses: Vec<UnmaskResponse> = timed(&mut st, "clients: unmask", || {
        clients
            .iter_mut()
            .filter(|c| !gone.contains(&c.id()))
            .map(|c| c.unmask(&request).unwrap())
            .collect()
    });
    timed(&mut st, "server: receive_unmask", || {
        for r in &responses {
            server.receive_unmask(r.clone()).unwrap();
        }
    });
    timed(
        &mut st,
        "server: finish (rebuild secrets, remove masks), 1 thread",
        || server.finish().unwrap(),
    );
    let messages = Messages {
        advertise,
        shares,
        masked,
        responses,
    };
    (st, messages)
}

/// A fresh server fed every message (cloned outside the timing), then `finish` timed.
fn time_finish(cfg: &Config, m: &Messages, threads: NonZeroUsize) -> (Duration, AggregateSum) {
    let mut s = Server::new(cfg.clone()).unwrap().with_threads(threads);
    for a in &m.advertise {
        s.receive_advertise(a.clone()).unwrap();
    }
    s.broadcast_keys().unwrap();
    for (id, sh) in &m.shares {
        s.receive_shares(*id, sh.clone()).unwrap();
    }
    s.route_shares().unwrap();
    for x in &m.masked {
        s.receive_masked(x.clone()).unwrap();
    }
    s.unmask_request().unwrap();
    for r in &m.responses {
        s.receive_unmask(r.clone()).unwrap();
    }
    let t0 = Instant::now();
    let sum = s.finish().unwrap();
    (t0.elapsed(), sum)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn fmt(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Runs `f` for every thread count, `reps` times, alternating the order of the counts between
/// repetitions; returns each count's times.
fn interleaved<T>(
    counts: &[usize],
    reps: usize,
    mut f: impl FnMut(NonZeroUsize) -> (Duration, T),
    mut check: impl FnMut(&T),
) -> Vec<Vec<Duration>> {
    let mut times = vec![Vec::new(); counts.len()];
    for rep in 0..reps {
        let order: Vec<usize> = if rep % 2 == 0 {
            (0..counts.len()).collect()
        } else {
            (0..counts.len()).rev().collect()
        };
        for i in order {
            let (t, out) = f(NonZeroUsize::new(counts[i]).unwrap());
            check(&out);
            eprintln!(
                "  rep {rep}, {} thread(s): {} (load {})",
                counts[i],
                fmt(t),
                loadavg()
            );
            times[i].push(t);
        }
    }
    times
}

/// One table row: each count's median and fastest run, with the ratios to the first count
/// (the fastest run is the least disturbed by other processes on a shared machine).
fn report(what: &str, counts: &[usize], mut times: Vec<Vec<Duration>>) {
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let fastest: Vec<Duration> = times.iter().map(|t| t[0]).collect();
    let cells: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{c} thread(s): median {} ({:.2}x), fastest {} ({:.2}x)",
                fmt(medians[i]),
                medians[0].as_secs_f64() / medians[i].as_secs_f64(),
                fmt(fastest[i]),
                fastest[0].as_secs_f64() / fastest[i].as_secs_f64(),
            )
        })
        .collect();
    println!("| {what} | {} |", cells.join(" | "));
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no arguments.
    let n: usize = env_or("SECAGG_PAR_N", "1000").parse().unwrap();
    let ds = env_list("SECAGG_PAR_D", "1000,21840");
    let counts = env_list("SECAGG_PAR_THREADS", "1,2");
    let per_mille: usize = env_or("SECAGG_PAR_DROP", "50").parse().unwrap();
    let reps: usize = env_or("SECAGG_PAR_REPS", "3").parse().unwrap();
    let finish_reps: usize = env_or("SECAGG_PAR_FINISH_REPS", "7").parse().unwrap();
    let skip_sim = env_or("SECAGG_PAR_SKIP_SIM", "0") == "1";
    let gone = dropped(n, per_mille);
    println!(
        "CPU: {} ({} available threads); n = {n}, full graph, t = {}, {} clients vanish before \
         their masked input; load average at start {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n / 2 + 1,
        gone.len(),
        loadavg()
    );
    for &d in &ds {
        let cfg = config(n, d);
        println!(
            "\n## d = {d}: where the time goes (one sequential round, every client and the server)\n"
        );
        let (stages, messages) = breakdown(&cfg, &gone);
        let total: Duration = stages.iter().map(|(_, t)| *t).sum();
        println!("| stage | time | share |");
        println!("|---|---:|---:|");
        for (name, t) in &stages {
            println!(
                "| {name} | {} | {:.1} % |",
                fmt(*t),
                100.0 * t.as_secs_f64() / total.as_secs_f64()
            );
        }
        println!("| total | {} | |", fmt(total));

        println!("\n## d = {d}: medians, interleaved (ratio = 1 thread / k threads)\n");
        let mut reference: Option<AggregateSum> = None;
        let times = interleaved(
            &counts,
            finish_reps,
            |t| time_finish(&cfg, &messages, t),
            |sum| match &reference {
                None => reference = Some(sum.clone()),
                Some(r) => assert_eq!(r, sum, "the sum depends on the worker count"),
            },
        );
        report(
            &format!("server `finish`, {finish_reps} runs"),
            &counts,
            times,
        );
        drop(messages);
        if skip_sim {
            continue;
        }
        let inputs: BTreeMap<ClientId, Input> = cfg
            .sorted_clients()
            .into_iter()
            .map(|id| (id, Input::Float(input(d, id))))
            .collect();
        let plan = gone.iter().fold(DropoutPlan::none(), |p, &id| {
            p.drop_before(id, Stage::MaskedInputCollection)
        });
        let mut reference: Option<(Vec<u32>, usize)> = None;
        let times = interleaved(
            &counts,
            reps,
            |t| {
                let t0 = Instant::now();
                let out = simulate_round_with_threads(
                    &cfg,
                    &inputs,
                    &plan,
                    &mut ChaCha20Rng::seed_from_u64(7),
                    t,
                )
                .unwrap();
                let elapsed = t0.elapsed();
                let sum = out.result.unwrap().sum;
                (elapsed, (sum, out.transcript.total_bytes()))
            },
            |out| match &reference {
                None => reference = Some(out.clone()),
                Some(r) => assert_eq!(r, out, "the round depends on the worker count"),
            },
        );
        report(
            &format!("`simulate_round_with_threads`, {reps} rounds"),
            &counts,
            times,
        );
    }
    println!("\nload average at the end: {}", loadavg());
}

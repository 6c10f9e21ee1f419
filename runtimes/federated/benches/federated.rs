//! Benchmark of the federated runtime on loopback, against the local runtime: the latency a
//! transition gains by crossing the network, and the throughput of a large state, with 2, 10 and
//! 50 envoys. The director and the envoys run in this process (each envoy a task with its own
//! mutual-TLS connection); the client is a `FederatedRuntime` as a user's program has.
//!
//! ```text
//! cargo bench -p flspec-federated --bench federated            # full (a few minutes)
//! FLSPEC_BENCH_QUICK=1 cargo bench -p flspec-federated --bench federated
//! ```
//! Prints a Markdown table (the one in `BENCH.md`).

#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::{Duration, Instant};

use flspec_federated::certs::{FederationSpec, create_federation};
use flspec_federated::{Director, DirectorOptions, Envoy, EnvoyState, FederatedRuntime, TlsConfig};
use flspec_local::LocalRuntime;
use testflows::PayloadFlow;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn time_run(runtime: &dyn flspec::Runtime<PayloadFlow>, flow: PayloadFlow) -> Duration {
    let began = Instant::now();
    let done = runtime.execute(flow).expect("the benchmark run succeeds");
    let elapsed = began.elapsed();
    assert_eq!(done.round, done.rounds);
    elapsed
}

struct Row {
    envoys: usize,
    local_round_ms: f64,
    fed_round_ms: f64,
    added_per_transition_ms: f64,
    payload_mb: f64,
    local_payload_round_ms: f64,
    fed_payload_round_ms: f64,
    throughput_mb_s: f64,
}

fn main() {
    let quick = std::env::var_os("FLSPEC_BENCH_QUICK").is_some();
    let dir = tempfile::tempdir().expect("temp dir");
    let counts: Vec<usize> = match std::env::var("FLSPEC_BENCH_ENVOYS") {
        Ok(list) => list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        Err(_) if quick => vec![2, 10],
        Err(_) => vec![2, 10, 50],
    };
    // `FLSPEC_BENCH_PLAINTEXT=1`: no TLS, to see what TLS costs.
    let plain = std::env::var_os("FLSPEC_BENCH_PLAINTEXT").is_some();
    let tls = |who: &str| {
        if plain {
            TlsConfig::insecure_plaintext()
        } else {
            TlsConfig::from_dir(dir.path(), who).expect("certificates load")
        }
    };
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio starts");
    let all: Vec<String> = (0..50).map(|i| format!("site-{i:02}")).collect();
    create_federation(
        dir.path(),
        &FederationSpec {
            director_hosts: vec!["127.0.0.1".into()],
            envoys: all.clone(),
            clients: vec!["client".into()],
            days: 1,
            new_ca: false,
        },
    )
    .expect("certificates");
    let mut rows = Vec::new();
    for &n in &counts {
        let names: Vec<String> = all[..n].to_vec();
        let director = server
            .block_on(Director::start(
                "127.0.0.1:0",
                tls("director"),
                testflows::director_registry(),
                DirectorOptions::default(),
            ))
            .expect("director starts");
        let addr = director.local_addr().to_string();
        let envoys: Vec<_> = names
            .iter()
            .map(|name| {
                server.spawn(
                    Envoy::new(
                        addr.clone(),
                        tls(&format!("envoys/{name}")),
                        name.clone(),
                        testflows::envoy_registry(None),
                    )
                    .run(),
                )
            })
            .collect();
        let client = FederatedRuntime::connect(&addr, tls("client"))
            .expect("client connects")
            .collaborators(names.clone())
            .step_timeout(Duration::from_secs(120));
        let end = Instant::now() + Duration::from_secs(60);
        while client
            .envoys()
            .expect("envoys")
            .iter()
            .filter(|e| e.state == EnvoyState::Online)
            .count()
            < n
        {
            assert!(Instant::now() < end, "envoys did not come online");
            std::thread::sleep(Duration::from_millis(50));
        }
        let local = LocalRuntime::new(names.clone(), |_| ());

        // Latency: rounds of a fan-out with an empty payload; each round is two transitions
        // that cross the network (the fan-out and the return to the join).
        let rounds = 20u32;
        let runs = if quick { 5 } else { 15 };
        let small = || PayloadFlow {
            rounds,
            ..Default::default()
        };
        for _ in 0..2 {
            time_run(&client, small());
        }
        let local_ms = median(
            (0..runs)
                .map(|_| time_run(&local, small()).as_secs_f64() * 1e3 / f64::from(rounds))
                .collect(),
        );
        let fed_ms = median(
            (0..runs)
                .map(|_| time_run(&client, small()).as_secs_f64() * 1e3 / f64::from(rounds))
                .collect(),
        );

        // Throughput: a 10 MB state to every envoy and back, per round.
        let payload_mb = 10.0;
        let payload = bytes::Bytes::from(vec![3u8; 10 * 1_000_000]);
        let prounds = if n >= 50 { 1 } else { 3 };
        let pruns = if quick { 1 } else { 3 };
        let big = || PayloadFlow {
            rounds: prounds,
            payload: payload.clone(),
            ..Default::default()
        };
        let local_p = median(
            (0..pruns)
                .map(|_| time_run(&local, big()).as_secs_f64() * 1e3 / f64::from(prounds))
                .collect(),
        );
        let fed_p = median(
            (0..pruns)
                .map(|_| time_run(&client, big()).as_secs_f64() * 1e3 / f64::from(prounds))
                .collect(),
        );
        let moved_mb = payload_mb * 2.0 * n as f64;
        rows.push(Row {
            envoys: n,
            local_round_ms: local_ms,
            fed_round_ms: fed_ms,
            added_per_transition_ms: (fed_ms - local_ms) / 2.0,
            payload_mb,
            local_payload_round_ms: local_p,
            fed_payload_round_ms: fed_p,
            throughput_mb_s: moved_mb / (fed_p / 1e3),
        });
        eprintln!("done: {n} envoys");
        drop(client);
        for e in envoys {
            e.abort();
        }
        server.block_on(director.shutdown());
    }
    println!(
        "| envoys | local round (ms) | federated round (ms) | added per transition (ms) | \
         10 MB round: local (ms) | 10 MB round: federated (ms) | state throughput (MB/s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.3} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} |",
            r.envoys,
            r.local_round_ms,
            r.fed_round_ms,
            r.added_per_transition_ms,
            r.local_payload_round_ms,
            r.fed_payload_round_ms,
            r.throughput_mb_s
        );
        let _ = r.payload_mb;
    }
}

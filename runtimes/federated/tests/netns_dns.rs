//! The director moves to another host (a failover, a rescheduled pod): its DNS name now
//! resolves to a new address. The envoys, in namespaces of their own with their own
//! `/etc/hosts` (`/etc/netns/NS/hosts`), dial the name, not an address: after the old director
//! dies they resolve the name again on each reconnection and register with the new one.
//!
//! Skipped, with a printed reason, where namespaces are unavailable (not root, no `ip`).

mod common;
mod netns_support;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::{Duration, Instant};

use flspec::Flow;
use flspec_federated::{EnvoyState, FederatedRuntime, TlsConfig};
use netns_support::{DIRECTOR_PORT, Net, certs, within};
use testflows::FanOutFlow;

const SITES: [&str; 2] = ["Bengaluru", "Portland"];
const NAME: &str = "director.flt.test";

/// A client of the director at `addr`, once both sites are online there (at most `limit`).
fn client_when_online(dir: &std::path::Path, addr: &str, limit: Duration) -> FederatedRuntime {
    let runtime = FederatedRuntime::connect(
        addr,
        TlsConfig::from_dir(dir, "client").expect("client certificate"),
    )
    .expect("the client connects")
    .collaborators(SITES)
    .step_timeout(Duration::from_secs(30));
    let end = Instant::now() + limit;
    loop {
        let envoys = runtime.envoys().expect("the director lists envoys");
        if SITES.iter().all(|n| {
            envoys
                .iter()
                .any(|e| e.name == *n && e.state != EnvoyState::Offline)
        }) {
            return runtime;
        }
        assert!(
            Instant::now() < end,
            "the envoys did not register with the director at {addr} within {limit:?}: \
             {envoys:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn envoys_follow_the_directors_name_to_its_new_address() {
    skip_without_netns!();
    within(Duration::from_secs(90), || {
        let mut net = match Net::new() {
            Ok(n) => n,
            Err(e) => {
                eprintln!("SKIPPED: {e}");
                return;
            }
        };
        // Nodes 0 and 3 are the director's old and new hosts; 1 and 2 the sites.
        for i in 0..4 {
            net.add_node(i).expect("a node namespace");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        // The envoys check the director's certificate against its name; the client, in the
        // root namespace (whose /etc/hosts the test leaves alone), against its addresses.
        certs(&path, &[NAME.to_string(), net.addr(0), net.addr(3)], &SITES);
        let hosts = |i: usize| format!("127.0.0.1 localhost\n{} {NAME}\n", net.addr(i));
        let (old, new) = (hosts(0), hosts(3));
        for site in [1, 2] {
            net.set_hosts(site, &old);
        }
        let first = net.start_director_on(0, &path, &[]);
        let director = format!("{NAME}:{DIRECTOR_PORT}");
        net.start_envoy(1, "Bengaluru", &director, &path);
        net.start_envoy(2, "Portland", &director, &path);
        let runtime = client_when_online(
            &path,
            &format!("{}:{DIRECTOR_PORT}", net.addr(0)),
            Duration::from_secs(30),
        );
        let flow = FanOutFlow::default()
            .run(&runtime)
            .expect("a run at the old address");
        assert_eq!(flow.names, SITES);
        drop(runtime);
        net.kill(first);
        for site in [1, 2] {
            net.set_hosts(site, &new);
        }
        let moved = Instant::now();
        net.start_director_on(3, &path, &[]);
        let runtime = client_when_online(
            &path,
            &format!("{}:{DIRECTOR_PORT}", net.addr(3)),
            Duration::from_secs(30),
        );
        println!(
            "the director moved to {}: both envoys registered there {:.2} s after it was \
             restarted",
            net.addr(3),
            moved.elapsed().as_secs_f64()
        );
        let flow = FanOutFlow::default()
            .run(&runtime)
            .expect("a run at the new address");
        assert_eq!(flow.names, SITES);
    });
}

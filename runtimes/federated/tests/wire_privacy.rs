//! Private state never goes on the wire: a run in plaintext mode through a recording TCP proxy
//! (envoys and client both talk to the director through it), and a search of every recorded
//! byte for the markers that live only in private state.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Tls, director, envoy, wait_online, within};
use flspec::Flow;
use flspec_federated::{FederatedRuntime, TlsConfig};
use testflows::{AGGREGATOR_MARKER, FanOutFlow, LoopFlow, SHARED_MARKER, private_marker};

type Recording = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// Forwards every connection to `upstream`, recording each direction of each connection.
fn recording_proxy(upstream: String) -> (String, Recording) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let recording: Recording = Arc::default();
    let rec = recording.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(down) = conn else { return };
            let Ok(up) = TcpStream::connect(&upstream) else {
                return;
            };
            for (mut from, mut to) in [
                (
                    down.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                ),
                (up, down),
            ] {
                let buf = Arc::new(Mutex::new(Vec::new()));
                rec.lock().expect("lock").push(buf.clone());
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 16384];
                    loop {
                        match from.read(&mut chunk) {
                            Ok(0) | Err(_) => {
                                let _ = to.shutdown(std::net::Shutdown::Write);
                                return;
                            }
                            Ok(n) => {
                                buf.lock().expect("lock").extend_from_slice(&chunk[..n]);
                                if to.write_all(&chunk[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
    });
    (addr, recording)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn private_state_never_appears_on_the_wire() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let (_director, addr) = director(&path, &Tls::Plain, &[]);
        let (proxy, recording) = recording_proxy(addr);
        let sites = ["Bengaluru", "Portland"];
        let _envoys: Vec<_> = sites
            .iter()
            .map(|n| envoy(&path, &proxy, n, &Tls::Plain, &[]))
            .collect();
        let runtime = FederatedRuntime::connect(&proxy, TlsConfig::insecure_plaintext())
            .expect("connect")
            .collaborators(sites)
            .step_timeout(Duration::from_secs(30));
        wait_online(&runtime, &sites);
        let flow = FanOutFlow::default().run(&runtime).expect("run");
        // The steps did read the private values (their lengths made it into the state).
        assert_eq!(
            flow.marker_len, 0,
            "the join's own state has no collaborator value"
        );
        assert_eq!(flow.agg_marker_len, AGGREGATOR_MARKER.len());
        assert!(flow.total > 0);
        LoopFlow::default().run(&runtime).expect("run");

        let streams: Vec<Vec<u8>> = recording
            .lock()
            .expect("lock")
            .iter()
            .map(|b| b.lock().expect("lock").clone())
            .collect();
        let total: usize = streams.iter().map(Vec::len).sum();
        assert!(total > 1000, "recorded only {total} bytes");
        assert!(
            streams
                .iter()
                .any(|s| contains(s, SHARED_MARKER.as_bytes())),
            "the recording must see shared state (else it proves nothing)"
        );
        for site in sites {
            let marker = private_marker(site);
            assert!(
                !streams.iter().any(|s| contains(s, marker.as_bytes())),
                "{site}'s private marker went on the wire"
            );
        }
        assert!(
            !streams
                .iter()
                .any(|s| contains(s, AGGREGATOR_MARKER.as_bytes())),
            "the aggregator's private marker went on the wire"
        );
    });
}

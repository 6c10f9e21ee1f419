//! The same flows give the same final states on the local runtime and on a federation of a
//! director and two envoys, each a separate process, over mutual TLS.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Tls, certs, client, director, envoy, wait_online, within};
use flspec::{Event, Flow};
use flspec_federated::{EnvoyState, RunPhase};
use flspec_local::LocalRuntime;
use testflows::{
    AggSecret, FanOutFlow, FilterFlow, FoldFlow, LoopFlow, MailFlow, Site, SubsetFlow,
};

const SITES: [&str; 2] = ["Bengaluru", "Portland"];

/// Collects the log lines the client re-emits for the participants (`flspec_federated::remote`).
#[derive(Clone, Default)]
struct RemoteLogs(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RemoteLogs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "flspec_federated::remote" {
            return;
        }
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={v:?}", f.name()));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text.0);
    }
}

#[test]
fn federated_runs_equal_local_runs() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = RemoteLogs::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.clone()))
        .expect("the only subscriber of this test binary");
    within(Duration::from_secs(180), move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &SITES);
        let tls = Tls::Certs(path.clone());
        let (_director, addr) = director(&path, &tls, &[]);
        let _envoys: Vec<_> = SITES
            .iter()
            .map(|n| envoy(&path, &addr, n, &tls, &[]))
            .collect();
        let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let log = seen.clone();
        let federated = client(&path, &addr)
            .collaborators(SITES)
            .observer(move |e: &Event<'_>| {
                if let Event::StepStarted {
                    step, participant, ..
                } = e
                {
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((step.to_string(), participant.to_string()));
                }
            });
        wait_online(&federated, &SITES);

        // The `get_envoys()` analogue, from the library and from the CLI.
        let envoys = federated.envoys().expect("envoys");
        assert_eq!(
            envoys.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            SITES
        );
        assert!(envoys.iter().all(|e| e.state == EnvoyState::Online));
        let out = std::process::Command::new(common::CLI)
            .args(["envoys", "--director", &addr, "--certs"])
            .arg(&path)
            .output()
            .expect("flspec-fed runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Bengaluru") && text.contains("Portland") && text.contains("online"),
            "{text}"
        );

        // Fan-out with private state on both sides.
        let local = LocalRuntime::new(SITES, Site::new).with_aggregator(AggSecret::new);
        let expected = FanOutFlow::default().run(&local).expect("local run");
        let got = FanOutFlow::default()
            .run(&federated)
            .expect("federated run");
        assert_eq!(got, expected);
        assert_eq!(got.names, SITES);

        // A loop of three rounds, with private state carried between rounds on each envoy.
        let local = LocalRuntime::new(SITES, Site::new);
        let expected = LoopFlow::default().run(&local).expect("local run");
        let handle = federated.submit(LoopFlow::default()).expect("submitted");
        let got = handle_wait(handle, &federated);
        assert_eq!(got, expected);
        assert_eq!(got.round, 3);
        assert_eq!(
            got.visits,
            3 * 2,
            "each site counted its visits in private state"
        );

        // A folding join: the director folds the arrivals in fan-out order, as the local
        // runtime does.
        let local = LocalRuntime::new(SITES, Site::new);
        let expected = FoldFlow::default().run(&local).expect("local run");
        let got = FoldFlow::default().run(&federated).expect("federated run");
        assert_eq!(got, expected);
        assert_eq!(
            got.order,
            [
                "Bengaluru",
                "Portland",
                "Portland",
                "Bengaluru",
                "Portland",
                "Bengaluru"
            ]
        );

        // exclude/include on every kind of transition.
        let local = LocalRuntime::new(SITES, |_| ());
        let expected = FilterFlow::default().run(&local).expect("local run");
        let got = FilterFlow::default()
            .run(&federated)
            .expect("federated run");
        assert_eq!(got, expected);

        // A fan-out to a subset, then to all.
        let local = LocalRuntime::new(SITES, Site::new);
        let expected = SubsetFlow::default().run(&local).expect("local run");
        let got = SubsetFlow::default()
            .run(&federated)
            .expect("federated run");
        assert_eq!(got, expected);
        assert_eq!(got.first.len(), 1);

        // Addressed fields: each envoy receives only its own entry.
        let local = LocalRuntime::new(SITES, |_| ());
        let expected = MailFlow::default().run(&local).expect("local run");
        let got = MailFlow::default().run(&federated).expect("federated run");
        assert_eq!(got, expected);
        for (name, seen) in &got.received {
            assert_eq!(seen, &vec![format!("{name}:for {name}")]);
        }

        // The envoys' log lines reached this program, named by participant.
        let lines = logs
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for site in SITES {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("contributing to the sum") && l.contains(site)),
                "no log line from {site}: {lines:?}"
            );
        }

        // The observer saw the envoys' collaborator steps.
        let seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for site in SITES {
            assert!(
                seen.contains(&("contribute".to_string(), site.to_string())),
                "no `contribute` event from {site}: {seen:?}"
            );
        }
    });
}

fn handle_wait(
    handle: flspec_federated::RunHandle<LoopFlow>,
    federated: &flspec_federated::FederatedRuntime,
) -> LoopFlow {
    let id = handle.id().to_string();
    let status = handle.status().expect("status while running");
    assert_eq!(status.participants, SITES);
    let got = handle
        .wait_timeout(Duration::from_secs(60))
        .expect("federated run");
    let status = federated.run_status(&id).expect("status after the run");
    assert_eq!(status.phase, RunPhase::Finished);
    assert_eq!(status.rounds, 3);
    assert!(status.steps_done >= 3 * 2 * 2, "{status:?}");
    got
}

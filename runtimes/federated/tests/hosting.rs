//! Envoys that host many collaborators (`envoy --host NAME ...`, authorised by the director's
//! hosting list): each hosted collaborator has its own private state behind the envoy's one
//! mTLS identity, a fan-out sends one message per envoy, addressed fields still give each
//! collaborator only its own entries, and the results equal the local runtime's. An envoy that
//! asks to host a name the list does not give it is refused, naming it.

mod common;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::Duration;

use common::{Tls, certs, client, director, envoy, wait_online, within};
use flspec::prelude::*;
use flspec_local::LocalRuntime;
use testflows::{LoopFlow, MailFlow, Site};

/// `site-a` hosts three collaborators, `Portland` itself.
const HOSTED: [&str; 3] = ["alpha", "bravo", "charlie"];

fn names() -> Vec<String> {
    let mut names: Vec<String> = HOSTED.iter().map(|s| s.to_string()).collect();
    names.push("Portland".into());
    names.sort();
    names
}

#[test]
fn an_envoy_hosting_three_collaborators_runs_them_as_the_local_runtime_does() {
    within(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &["site-a", "Portland"]);
        let tls = Tls::Certs(path.clone());
        let list = path.join("hosts.txt");
        std::fs::write(
            &list,
            "# envoy: the collaborators it may host\nsite-a alpha bravo charlie\n",
        )
        .expect("the hosting list");
        let list_arg = list.display().to_string();
        let (director, addr) = director(&path, &tls, &["--hosts", &list_arg]);
        let mut hosting = vec![];
        for name in HOSTED {
            hosting.push("--host");
            hosting.push(name);
        }
        let _site_a = envoy(&path, &addr, "site-a", &tls, &hosting);
        let _portland = envoy(&path, &addr, "Portland", &tls, &[]);
        let runtime = client(&path, &addr);
        wait_online(&runtime, &["site-a", "Portland"]);

        // The run's collaborators default to every hosted name of the online envoys.
        let looped = LoopFlow::default().run(&runtime).expect("the loop flow");
        let local = LoopFlow::default()
            .run(&LocalRuntime::new(names(), Site::new))
            .expect("the local loop");
        assert_eq!(
            looped, local,
            "each hosted collaborator keeps its own private state"
        );

        // Addressed fields: each collaborator reads only its own entry, also inside a batch.
        let mail = MailFlow::default().run(&runtime).expect("the mail flow");
        assert_eq!(mail.received.len(), 4);
        for (name, seen) in &mail.received {
            assert_eq!(seen, &[format!("{name}:for {name}")], "{name} saw {seen:?}");
        }
        let log = director.stderr();
        assert!(log.contains("collaborators=3"), "{log}");
    });
}

#[test]
fn an_envoy_asking_to_host_a_name_the_list_does_not_give_it_is_refused() {
    within(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        certs(&path, &["site-a"]);
        let tls = Tls::Certs(path.clone());
        let list = path.join("hosts.txt");
        std::fs::write(&list, "site-a alpha\n").expect("the hosting list");
        let list_arg = list.display().to_string();
        let (_director, addr) = director(&path, &tls, &["--hosts", &list_arg]);
        let mut greedy = envoy(
            &path,
            &addr,
            "site-a",
            &tls,
            &["--host", "alpha", "--host", "Portland"],
        );
        let status = greedy
            .wait_exit(Duration::from_secs(30))
            .expect("a refused envoy exits");
        assert!(!status.success());
        let log = greedy.stderr();
        assert!(
            log.contains("may not host collaborator `Portland`") && log.contains("--hosts"),
            "{log}"
        );
    });
}

//! The director's dashboard (`/` on the admin address), loaded in a real headless browser
//! (Debian's Chromium) during a run: the envoys, the runs, the running step marked on the
//! flow's graph, and a finished run's rounds. Skipped, saying why, without Chromium.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flspec::prelude::*;
use flspec_federated::DirectorOptions;
use testflows::{LoopFlow, SlowFlow, director_registry, envoy_registry};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The page's DOM after Chromium loaded it (at most 60 s).
fn dump_dom(url: &str, profile: &Path) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--timeout=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let end = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("chromium's status").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("chromium did not dump {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium's output");
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// Saves a PNG of the page (for the README: `FLSPEC_DASHBOARD_SCREENSHOT=PATH`).
fn screenshot(url: &str, profile: &Path, path: &Path) {
    let status = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("chromium starts");
    assert!(
        status.success() && path.exists(),
        "no screenshot at {}",
        path.display()
    );
}

#[test]
fn the_dashboard_shows_envoys_runs_the_running_step_and_rounds_in_a_browser() {
    if !Path::new(CHROMIUM).exists() {
        println!(
            "skipped: {CHROMIUM} is missing (Debian's `chromium` package; `make render-tools`)"
        );
        return;
    }
    let fed = inproc::start(
        &["Bengaluru", "Portland"],
        DirectorOptions {
            admin_addr: Some("127.0.0.1:0".into()),
            ..DirectorOptions::default()
        },
        director_registry(),
    );
    let admin = fed
        .director
        .as_ref()
        .and_then(|d| d.admin_addr())
        .expect("the admin address is bound");
    let _a = fed.envoy("Bengaluru", envoy_registry(None));
    let _b = fed.envoy("Portland", envoy_registry(None));
    let client = fed
        .client("client")
        .collaborators(["Bengaluru", "Portland"]);
    inproc::wait_envoys(&client, &["Bengaluru", "Portland"], true);
    let looped = LoopFlow::default().run(&client).expect("three rounds");
    assert_eq!(looped.round, 3);
    let slow = client
        .submit(SlowFlow {
            slow: "Portland".into(),
            sleep_ms: 8_000,
            ..SlowFlow::default()
        })
        .expect("submitted");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .run_status(slow.id())
        .expect("status")
        .current_step
        .as_deref()
        != Some("work")
    {
        assert!(
            Instant::now() < deadline,
            "the slow run never reached `work`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let profile = tempfile::tempdir().expect("temp dir");
    let dom = dump_dom(&format!("http://{admin}/"), profile.path());
    if let Some(path) = std::env::var_os("FLSPEC_DASHBOARD_SCREENSHOT") {
        screenshot(
            &format!("http://{admin}/"),
            profile.path(),
            Path::new(&path),
        );
    }
    assert!(dom.contains("<h1>flspec director</h1>"), "{dom}");
    for envoy in ["Bengaluru", "Portland"] {
        assert!(dom.contains(&format!("data-envoy=\"{envoy}\"")), "{dom}");
    }
    // Portland works for the slow run.
    assert!(
        dom.contains(&format!("<td>{}</td>", slow.id())),
        "the envoy table names the run Portland works for: {dom}"
    );
    // The runs table: the slow run running at `work`, the loop finished after 3 rounds.
    let row = |id: &str| {
        let start = dom
            .find(&format!("<tr data-run=\"{id}\">"))
            .unwrap_or_else(|| panic!("no row for {id}: {dom}"));
        let end = start + dom[start..].find("</tr>").expect("the row ends");
        dom[start..end].to_string()
    };
    let running = row(slow.id());
    assert!(
        running.contains("class=\"running\">running</td><td>work</td>"),
        "{running}"
    );
    let runs: Vec<_> = client.runs().expect("runs");
    let loop_id = &runs[0].run_id;
    let finished = row(loop_id);
    assert!(
        finished.contains("class=\"finished\">finished</td>") && finished.contains("<td>3</td>"),
        "{finished}"
    );
    // The slow run's graph marks the step running now; the loop's chart has its 3 rounds.
    let section = |id: &str| {
        let start = dom
            .find(&format!("<section class=\"run\" id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no section for {id}"));
        let end = start + dom[start..].find("</section>").expect("the section ends");
        dom[start..end].to_string()
    };
    let slow_section = section(slow.id());
    assert!(
        slow_section.contains("<g class=\"step current\" data-step=\"work\">"),
        "{slow_section}"
    );
    assert!(slow_section.contains("data-step=\"join\""));
    assert!(slow_section.contains("flowchart TD"), "the Mermaid text");
    let loop_section = section(loop_id);
    let rounds = loop_section.matches("class=\"round\" data-round=").count();
    assert_eq!(rounds, 3, "{loop_section}");
    assert!(
        loop_section.contains("data-round=\"3\"") && loop_section.contains("data-inputs=\"2\"")
    );
    assert!(
        !loop_section.contains("step current"),
        "a finished run has no current step"
    );

    slow.cancel().expect("cancelled");
}

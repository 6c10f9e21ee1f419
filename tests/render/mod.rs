//! Renders flow graphs with real renderers: Mermaid's own CLI (`mmdc`, in headless Chromium) and
//! Graphviz's `dot`. A graph either renderer rejects fails the test with the renderer's error.
//!
//! The tools are installed by `scripts/setup-render-tools.sh` (`make test` runs it). Where they
//! are missing the check prints why and skips, unless `FLSPEC_REQUIRE_RENDER=1` is set (then a
//! missing tool fails the test).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use flspec::Graph;

/// The repository root (the root package's manifest folder).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Skips with a printed reason, or fails when `FLSPEC_REQUIRE_RENDER=1`.
fn skip(reason: &str) {
    let required = std::env::var("FLSPEC_REQUIRE_RENDER").is_ok_and(|v| v == "1");
    assert!(!required, "FLSPEC_REQUIRE_RENDER=1 but {reason}");
    eprintln!("SKIPPED graph rendering: {reason}; run scripts/setup-render-tools.sh");
}

/// Renders every graph with Mermaid (one `mmdc` run for all) and with Graphviz, and fails with
/// the renderer's message if any is rejected. `name` names the temporary files.
pub fn check(name: &str, graphs: &[&Graph]) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    check_mermaid(dir.path(), name, graphs);
    check_dot(dir.path(), graphs);
}

/// Renders with Mermaid's CLI; returns false (after printing why) where it is not installed.
pub fn check_mermaid(dir: &Path, name: &str, graphs: &[&Graph]) -> bool {
    let tools = root().join("tools/render");
    let mmdc = tools.join("node_modules/.bin/mmdc");
    if !mmdc.exists() {
        skip(&format!("{} is not installed", mmdc.display()));
        return false;
    }
    if !Path::new("/usr/bin/chromium").exists() {
        skip("/usr/bin/chromium (Debian package chromium) is not installed");
        return false;
    }
    // One Markdown file with a `mermaid` block per graph: mmdc renders each to <out>-<n>.svg.
    let mut markdown = String::new();
    for g in graphs {
        markdown.push_str(&format!(
            "# {}\n\n```mermaid\n{}```\n\n",
            g.flow(),
            g.to_mermaid()
        ));
    }
    let input = dir.join(format!("{name}.md"));
    std::fs::write(&input, &markdown).expect("write the Mermaid input");
    let output = dir.join(format!("{name}-rendered.md"));
    let run = Command::new(&mmdc)
        .arg("--puppeteerConfigFile")
        .arg(tools.join("puppeteer-config.json"))
        .arg("--quiet")
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .expect("run mmdc");
    assert!(
        run.status.success(),
        "Mermaid rejected a graph of {name}:\n{}\n--- input ---\n{markdown}",
        String::from_utf8_lossy(&run.stderr)
    );
    for (i, g) in graphs.iter().enumerate() {
        let svg = dir.join(format!("{name}-rendered-{}.svg", i + 1));
        let text = std::fs::read_to_string(&svg)
            .unwrap_or_else(|e| panic!("no SVG for flow {} ({}): {e}", g.flow(), svg.display()));
        assert!(text.contains("<svg"), "not an SVG: {}", svg.display());
        for step in g.steps() {
            assert!(
                text.contains(&format!(">{}<", step.name())),
                "step {} of flow {} is not drawn in {}",
                step.name(),
                g.flow(),
                svg.display()
            );
        }
        assert!(
            !text.contains("Syntax error"),
            "Mermaid drew an error for flow {}",
            g.flow()
        );
        // One drawn edge per edge line: nothing lost, nothing drawn twice.
        let lines = g.to_mermaid().lines().filter(|l| l.contains("-->")).count();
        let drawn = text.matches(r#"data-et="edge""#).count();
        assert_eq!(drawn, lines, "edges drawn by Mermaid for flow {}", g.flow());
    }
    true
}

/// Renders with Graphviz's `dot`; returns false (after printing why) where it is not installed.
pub fn check_dot(dir: &Path, graphs: &[&Graph]) -> bool {
    if Command::new("dot").arg("-V").output().is_err() {
        skip("Graphviz `dot` (Debian package graphviz) is not installed");
        return false;
    }
    for g in graphs {
        let input = dir.join(format!("{}.dot", g.flow()));
        std::fs::write(&input, g.to_dot()).expect("write the DOT input");
        let run = Command::new("dot")
            .arg("-Tsvg")
            .arg(&input)
            .output()
            .expect("run dot");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success() && stderr.trim().is_empty(),
            "Graphviz rejected or warned about flow {}:\n{stderr}\n--- input ---\n{}",
            g.flow(),
            g.to_dot()
        );
        let svg = String::from_utf8_lossy(&run.stdout);
        for step in g.steps() {
            assert!(
                svg.contains(&format!(">{}</text>", step.name())),
                "step {} of flow {} is not drawn by dot",
                step.name(),
                g.flow()
            );
        }
    }
    true
}

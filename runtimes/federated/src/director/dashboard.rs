//! The director's read-only web dashboard, served at `/` on the admin address: the envoys, the
//! runs (every client's: the admin address is for the federation's operator), each run's flow
//! graph drawn as SVG with its current step marked (and its Mermaid text), and per-round
//! charts (round durations, join inputs, dropouts).
//!
//! The page is rendered on the server as plain HTML and inline SVG: no script, no external
//! resource, so it works offline and in any browser; it reloads itself every
//! [`DirectorOptions::dashboard_refresh`](super::DirectorOptions::dashboard_refresh).

use std::fmt::Write as _;

use flspec::{Graph, Role};

use super::Shared;
use crate::wire::{EnvoyState, RunPhase, RunStatus};

use super::runs::RoundMark;

/// The most rounds drawn in a run's chart (the newest).
const MAX_ROUNDS_DRAWN: usize = 200;

/// Escapes text for HTML (element content and quoted attributes).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn phase(p: RunPhase) -> &'static str {
    match p {
        RunPhase::Running => "running",
        RunPhase::Finished => "finished",
        RunPhase::Failed => "failed",
        RunPhase::Cancelled => "cancelled",
    }
}

/// The dashboard page.
pub(super) fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(16 << 10);
    let refresh = shared.options.dashboard_refresh.as_secs();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    if refresh > 0 {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{refresh}\">");
    }
    out.push_str(
        "<title>flspec director</title><style>\
         body{font-family:sans-serif;margin:1.5em;color:#222}\
         table{border-collapse:collapse;margin-bottom:1em}\
         td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
         th{background:#f3f3f3}.running{color:#06c}.finished{color:#080}\
         .failed,.offline{color:#c00}.cancelled{color:#888}\
         section.run{border-top:1px solid #ddd;padding-top:.5em}\
         pre{background:#f7f7f7;padding:.5em;font-size:.8em}\
         </style></head><body>\n<h1>flspec director</h1>\n",
    );
    render_envoys(shared, &mut out);
    let runs = shared.runs.list();
    let _ = write!(
        out,
        "<h2>Runs</h2>\n<table id=\"runs\"><tr><th>run</th><th>flow</th><th>state</th><th>step</th><th>steps</th><th>rounds</th><th>participants</th><th>dropped</th><th>elapsed (s)</th></tr>\n"
    );
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status()).collect();
    for s in &statuses {
        let state = phase(s.phase);
        let _ = writeln!(
            out,
            "<tr data-run=\"{id}\"><td><a href=\"#{id}\">{id}</a></td><td>{flow}</td>\
             <td class=\"{state}\">{state}</td><td>{step}</td><td>{steps}</td><td>{rounds}</td>\
             <td>{participants}</td><td>{dropped}</td><td>{elapsed:.1}</td></tr>",
            id = esc(&s.run_id),
            flow = esc(&s.flow),
            step = esc(s.current_step.as_deref().unwrap_or("-")),
            steps = s.steps_done,
            rounds = s.rounds,
            participants = esc(&s.participants.join(", ")),
            dropped = esc(&s.dropped.join(", ")),
            elapsed = s.elapsed_ms as f64 / 1000.0,
        );
    }
    out.push_str("</table>\n");
    if runs.is_empty() {
        out.push_str("<p>No runs yet.</p>\n");
    }
    for (run, s) in runs.iter().zip(&statuses).rev() {
        let _ = writeln!(
            out,
            "<section class=\"run\" id=\"{id}\"><h3>{flow} <small>{id}</small> \
             <span class=\"{state}\">{state}</span></h3>",
            id = esc(&s.run_id),
            flow = esc(&s.flow),
            state = phase(s.phase),
        );
        if let Some(error) = &s.error {
            let _ = writeln!(out, "<p class=\"failed\">{}</p>", esc(error));
        }
        if let Some(entry) = shared.registry.aggregators.get(s.flow.as_str()) {
            let current = (s.phase == RunPhase::Running)
                .then_some(s.current_step.as_deref())
                .flatten();
            graph_svg(entry.graph(), current, &mut out);
            let _ = writeln!(
                out,
                "<details><summary>Mermaid</summary><pre class=\"mermaid\">{}</pre></details>",
                esc(&entry.graph().to_mermaid())
            );
        }
        rounds_svg(&run.round_marks(), &mut out);
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn render_envoys(shared: &Shared, out: &mut String) {
    out.push_str(
        "<h2>Envoys</h2>\n<table id=\"envoys\"><tr><th>name</th><th>state</th><th>address</th>\
         <th>last seen (s)</th><th>run</th><th>flows</th></tr>\n",
    );
    for e in shared.envoys.list() {
        let state = match e.state {
            EnvoyState::Online => "online",
            EnvoyState::Busy => "busy",
            EnvoyState::Offline => "offline",
        };
        let flows: Vec<&str> = e.flows.iter().map(|f| f.name.as_str()).collect();
        let _ = writeln!(
            out,
            "<tr data-envoy=\"{name}\"><td>{name}</td><td class=\"{state}\">{state}{reason}</td>\
             <td>{address}</td><td>{seen:.1}</td><td>{run}</td><td>{flows}</td></tr>",
            name = esc(&e.name),
            reason = e
                .offline_reason
                .as_deref()
                .map(|r| format!(" ({})", esc(r)))
                .unwrap_or_default(),
            address = esc(&e.address),
            seen = e.last_seen_ms as f64 / 1000.0,
            run = esc(e.run_id.as_deref().unwrap_or("-")),
            flows = esc(&flows.join(", ")),
        );
    }
    out.push_str("</table>\n");
}

/// The flow's graph: its steps top to bottom in declaration order (aggregator steps square,
/// collaborator steps rounded), the step running now filled; a transition to the next step is
/// a straight arrow, any other a curve on the right, fan-outs labelled `foreach`.
fn graph_svg(graph: &Graph, current: Option<&str>, out: &mut String) {
    const W: usize = 200;
    const H: usize = 34;
    const GAP: usize = 26;
    let steps = graph.steps();
    let height = steps.len() * (H + GAP) + 10;
    let _ = writeln!(
        out,
        "<svg class=\"graph\" width=\"{}\" height=\"{height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><defs><marker id=\"arrow\" markerWidth=\"8\" \
         markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" \
         fill=\"#555\"/></marker></defs>",
        W + 40 + 40 * steps.len().min(8)
    );
    let top = |i: usize| 5 + i * (H + GAP);
    for (i, t) in graph.transitions().iter().enumerate() {
        let (from, to) = (t.from(), t.to());
        let label = if t.is_foreach() { "foreach" } else { "" };
        if to == from + 1 {
            let x = 20 + W / 2;
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#555\" \
                 marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{label}</text>",
                top(from) + H,
                top(to) - 2,
                x + 6,
                top(from) + H + GAP / 2 + 4
            );
        } else {
            let x = 20 + W;
            let bend = x + 20 + 12 * (i % 8);
            let (y1, y2) = (top(from) + H / 2, top(to) + H / 2);
            let _ = writeln!(
                out,
                "<path d=\"M{x},{y1} C{bend},{y1} {bend},{y2} {},{y2}\" fill=\"none\" \
                 stroke=\"#555\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" \
                 font-size=\"11\">{label}</text>",
                x + 2,
                bend - 10,
                (y1 + y2) / 2
            );
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let radius = match s.role() {
            Role::Aggregator => 0,
            Role::Collaborator => 14,
        };
        let is_current = current == Some(s.name());
        let fill = if is_current { "#ffe08a" } else { "#fff" };
        let _ = writeln!(
            out,
            "<g class=\"step{}\" data-step=\"{name}\"><rect x=\"20\" y=\"{y}\" width=\"{W}\" \
             height=\"{H}\" rx=\"{radius}\" fill=\"{fill}\" stroke=\"#333\"/><text x=\"{tx}\" \
             y=\"{ty}\" text-anchor=\"middle\" font-size=\"13\">{name} ({role})</text></g>",
            if is_current { " current" } else { "" },
            name = esc(s.name()),
            y = top(i),
            tx = 20 + W / 2,
            ty = top(i) + H / 2 + 4,
            role = match s.role() {
                Role::Aggregator => "aggregator",
                Role::Collaborator => "collaborator",
            },
        );
    }
    out.push_str("</svg>\n");
}

/// Per-round charts: each round's duration as a bar (its number of join inputs and dropouts
/// written on it), the newest [`MAX_ROUNDS_DRAWN`] rounds.
fn rounds_svg(marks: &[RoundMark], out: &mut String) {
    if marks.is_empty() {
        out.push_str("<p class=\"rounds\">No round has ended yet.</p>\n");
        return;
    }
    let skip = marks.len().saturating_sub(MAX_ROUNDS_DRAWN);
    let mut previous = if skip == 0 {
        std::time::Duration::ZERO
    } else {
        marks[skip - 1].at
    };
    let mut rounds = Vec::with_capacity(marks.len() - skip);
    for m in &marks[skip..] {
        rounds.push((m, m.at.saturating_sub(previous).as_secs_f64()));
        previous = m.at;
    }
    let longest = rounds.iter().map(|r| r.1).fold(1e-3, f64::max);
    let bar = (600 / rounds.len()).clamp(3, 40);
    let (width, height) = ((rounds.len() * (bar + 2) + 60).max(320), 160);
    let _ = writeln!(
        out,
        "<h4>Rounds</h4><svg class=\"rounds\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"12\" font-size=\"11\">round \
         duration (s), longest {longest:.3}</text>"
    );
    for (i, (m, seconds)) in rounds.iter().enumerate() {
        let h = ((seconds / longest) * 110.0).max(1.0);
        let x = 40 + i * (bar + 2);
        let y = 130.0 - h;
        let color = if m.dropouts > 0 { "#e08a00" } else { "#4a90d9" };
        let _ = writeln!(
            out,
            "<rect class=\"round\" data-round=\"{round}\" data-seconds=\"{seconds:.3}\" \
             data-inputs=\"{inputs}\" data-dropouts=\"{dropouts}\" x=\"{x}\" y=\"{y:.1}\" \
             width=\"{bar}\" height=\"{h:.1}\" fill=\"{color}\"><title>round {round}: \
             {seconds:.3} s, {inputs} inputs, {dropouts} dropouts</title></rect>",
            round = m.round,
            inputs = m.inputs,
            dropouts = m.dropouts,
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"40\" y=\"150\" font-size=\"11\">rounds {}..{} (orange: with dropouts)</text>\
         </svg>",
        rounds.first().map_or(0, |r| r.0.round),
        rounds.last().map_or(0, |r| r.0.round)
    );
    out.push_str("<table class=\"rounds\"><tr><th>round</th><th>duration (s)</th><th>inputs</th><th>dropouts</th></tr>\n");
    for (m, seconds) in rounds.iter().rev().take(20) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{seconds:.3}</td><td>{}</td><td>{}</td></tr>",
            m.round, m.inputs, m.dropouts
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}

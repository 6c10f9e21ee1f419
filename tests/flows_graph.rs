//! `Flow::graph()` at run time, and its Mermaid and DOT renderings, for a flow with a loop
//! (join back to the collaborators' step), a chain of collaborator steps and field filters.

use flspec::prelude::*;
use flspec::{FieldFilter, Role};

mod render;

#[derive(Clone, Default, Serialize, Deserialize)]
struct LoopFlow {
    rounds: u32,
    round: u32,
    model: Vec<f32>,
    loss: f32,
    log: Vec<String>,
}

#[flow]
impl LoopFlow {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators(), exclude = [log])
    }

    #[collaborator]
    fn train(&mut self) -> Next<Self> {
        next!(self.validate)
    }

    #[collaborator]
    fn validate(&mut self) -> Next<Self> {
        next!(self.join, include = [model, loss])
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.round += 1;
        if self.round < self.rounds {
            next!(self.train, foreach = inputs.names())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn the_graph_lists_steps_roles_joins_and_transitions() {
    let g = LoopFlow::graph();
    assert_eq!(g.flow(), "LoopFlow");
    let steps: Vec<(&str, Role, bool)> = g
        .steps()
        .iter()
        .map(|s| (s.name(), s.role(), s.is_join()))
        .collect();
    assert_eq!(
        steps,
        [
            ("start", Role::Aggregator, false),
            ("train", Role::Collaborator, false),
            ("validate", Role::Collaborator, false),
            ("join", Role::Aggregator, true),
            ("end", Role::Aggregator, false),
        ]
    );
    let name = |i: usize| g.step(i).expect("a step").name();
    let edges: Vec<(&str, &str, bool, FieldFilter)> = g
        .transitions()
        .iter()
        .map(|t| (name(t.from()), name(t.to()), t.is_foreach(), t.fields()))
        .collect();
    assert_eq!(
        edges,
        [
            ("start", "train", true, FieldFilter::Exclude(&["log"])),
            ("train", "validate", false, FieldFilter::All),
            (
                "validate",
                "join",
                false,
                FieldFilter::Include(&["model", "loss"])
            ),
            ("join", "train", true, FieldFilter::All),
            ("join", "end", false, FieldFilter::All),
        ]
    );
    // The loop: `join` leads back to `train`.
    let (join, _) = g.step_named("join").expect("join");
    let targets: Vec<&str> = g.transitions_from(join).map(|t| name(t.to())).collect();
    assert_eq!(targets, ["train", "end"]);
    assert!(g.step_named("nope").is_none());
    // The step enum agrees with the graph.
    for (i, s) in g.steps().iter().enumerate() {
        let id: LoopFlowStep = s.name().parse().expect("a step name");
        assert_eq!(id.index(), i);
        assert_eq!(id.as_str(), s.name());
    }
    assert!("nope".parse::<LoopFlowStep>().is_err());
}

#[test]
fn mermaid_output_draws_the_loop() {
    let m = LoopFlow::graph().to_mermaid();
    let lines: Vec<&str> = m.lines().map(str::trim).collect();
    assert_eq!(lines[0], "flowchart TD");
    // Aggregator steps are rectangles, collaborator steps rounded; ids are prefixed, labels
    // name the step and its role.
    for (step, role, open, close) in [
        ("start", "aggregator", "[", "]"),
        ("train", "collaborator", "(", ")"),
        ("validate", "collaborator", "(", ")"),
        ("join", "aggregator", "[", "]"),
        ("end", "aggregator", "[", "]"),
    ] {
        let node = format!("step_{step}{open}\"{step}<br/><i>{role}</i>\"{close}");
        assert!(lines.contains(&node.as_str()), "node {node} in {m}");
    }
    for edge in [
        r#"step_start -->|"foreach; exclude log"| step_train"#,
        "step_train --> step_validate",
        r#"step_validate -->|"include model, loss"| step_join"#,
        r#"step_join -->|"foreach"| step_train"#,
        "step_join --> step_end",
    ] {
        assert_eq!(
            lines.iter().filter(|l| **l == edge).count(),
            1,
            "{edge} in {m}"
        );
    }
    assert_eq!(lines.iter().filter(|l| l.contains("-->")).count(), 5, "{m}");
}

#[test]
fn dot_output_draws_the_loop() {
    let d = LoopFlow::graph().to_dot();
    assert!(d.starts_with("digraph \"LoopFlow\" {\n"), "{d}");
    assert!(d.trim_end().ends_with('}'), "{d}");
    let lines: Vec<&str> = d.lines().map(str::trim).collect();
    for node in [
        r#""start" [shape=box];"#,
        r#""train" [shape=ellipse];"#,
        r#""validate" [shape=ellipse];"#,
        r#""join" [shape=box];"#,
        r#""end" [shape=box];"#,
    ] {
        assert!(lines.contains(&node), "{node} in {d}");
    }
    for edge in [
        r#""start" -> "train" [label="foreach; exclude log"];"#,
        r#""train" -> "validate";"#,
        r#""validate" -> "join" [label="include model, loss"];"#,
        r#""join" -> "train" [label="foreach"];"#,
        r#""join" -> "end";"#,
    ] {
        assert_eq!(
            lines.iter().filter(|l| **l == edge).count(),
            1,
            "{edge} in {d}"
        );
    }
    assert_eq!(lines.iter().filter(|l| l.contains("->")).count(), 5, "{d}");
}

/// `next!(self.end)` in two branches, and the same fan-out in two branches: two transitions
/// of the graph each, one edge of each drawing.
#[derive(Clone, Default, Serialize, Deserialize)]
struct TwoWaysToEnd {
    round: u32,
    stop: bool,
}

#[flow]
impl TwoWaysToEnd {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        if self.stop {
            self.round = 0;
            next!(self.work, foreach = ctx.collaborators())
        } else {
            next!(self.work, foreach = ctx.collaborators())
        }
    }

    #[collaborator]
    fn work(&mut self) -> Next<Self> {
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
        self.round += 1;
        if self.stop {
            self.round = 0;
            next!(self.end)
        } else if self.round > 3 {
            next!(self.end)
        } else {
            next!(self.end, include = [round])
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn identical_transitions_are_drawn_once() {
    let g = TwoWaysToEnd::graph();
    // The graph (and so the fingerprint) keeps every `next!` call.
    assert_eq!(g.transitions().len(), 6);
    assert_eq!(g.canonical().matches("next join end\n").count(), 2);
    assert_eq!(g.canonical().matches("foreach start work\n").count(), 2);

    let m = g.to_mermaid();
    let edges: Vec<&str> = m
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("-->"))
        .collect();
    assert_eq!(
        edges,
        [
            r#"step_start -->|"foreach"| step_work"#,
            "step_work --> step_join",
            "step_join --> step_end",
            r#"step_join -->|"include round"| step_end"#,
        ],
        "{m}"
    );
    let d = g.to_dot();
    let edges: Vec<&str> = d
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("->"))
        .collect();
    assert_eq!(
        edges,
        [
            r#""start" -> "work" [label="foreach"];"#,
            r#""work" -> "join";"#,
            r#""join" -> "end";"#,
            r#""join" -> "end" [label="include round"];"#,
        ],
        "{d}"
    );
}

#[test]
fn no_node_id_is_a_word_mermaid_reserves() {
    for g in [LoopFlow::graph(), TwoWaysToEnd::graph(), Keywords::graph()] {
        let m = g.to_mermaid();
        for line in m.lines().skip(1) {
            let id = line.trim().split(['[', '(', ' ']).next().expect("an id");
            assert!(id.starts_with("step_"), "{id} in {m}");
        }
        // `end` only inside a quoted label.
        assert!(
            !m.contains(" end\n") && !m.contains(" end[") && !m.contains("    end"),
            "{m}"
        );
    }
}

/// Steps named like DOT keywords (`node`, `edge`, `digraph`, `subgraph`) and Mermaid words
/// (`subgraph`, `class`, `style`). (A step cannot be named `graph`: it would hide `Flow::graph`.)
#[derive(Clone, Default, Serialize, Deserialize)]
struct Keywords {
    n: u32,
}

#[flow]
impl Keywords {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.node, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn node(&mut self) -> Next<Self> {
        next!(self.edge)
    }

    #[collaborator]
    fn edge(&mut self) -> Next<Self> {
        next!(self.digraph, exclude = [n])
    }

    #[aggregator]
    fn digraph(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
        next!(self.subgraph)
    }

    #[aggregator]
    fn subgraph(&mut self) -> Next<Self> {
        next!(self.class)
    }

    #[aggregator]
    fn class(&mut self) -> Next<Self> {
        next!(self.style)
    }

    #[aggregator]
    fn style(&mut self) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Mermaid's CLI and Graphviz accept every graph of this file, `end` and keyword-named steps
/// included (skips, saying why, where `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_graph",
        &[LoopFlow::graph(), TwoWaysToEnd::graph(), Keywords::graph()],
    );
}

/// The SecAgg MNIST flow's graph (it needs the `torch` feature to compile).
#[cfg(feature = "torch")]
#[test]
fn real_renderers_accept_the_secagg_mnist_graph() {
    use flspec_examples::secagg_mnist::SecAggMnist;
    render::check("secagg_mnist", &[SecAggMnist::graph()]);
}

#[test]
fn the_fingerprint_is_stable_and_changes_with_the_graph() {
    let a = LoopFlow::graph().fingerprint();
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a, LoopFlow::graph().fingerprint());
    assert!(LoopFlow::graph().canonical().contains("foreach join train"));

    #[derive(Clone, Default, Serialize, Deserialize)]
    struct Other {
        log: Vec<String>,
    }
    #[flow]
    impl Other {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.train, foreach = ctx.collaborators())
        }
        #[collaborator]
        fn train(&mut self) -> Next<Self> {
            next!(self.join)
        }
        #[aggregator]
        fn join(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
            next!(self.end)
        }
        #[aggregator]
        fn end(&mut self) {}
    }
    assert_ne!(Other::graph().fingerprint(), a);
}

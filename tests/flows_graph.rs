//! `Flow::graph()` at run time, and its Mermaid and DOT renderings, for a flow with a loop
//! (join back to the collaborators' step), a chain of collaborator steps and field filters.

use flspec::prelude::*;
use flspec::{FieldFilter, Role};

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
    // Aggregator steps are rectangles, collaborator steps rounded.
    for (step, open, close) in [
        ("start", "[", "]"),
        ("train", "(", ")"),
        ("validate", "(", ")"),
        ("join", "[", "]"),
        ("end", "[", "]"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{step}{open}")) && l.ends_with(close)),
            "node {step} in {m}"
        );
    }
    for edge in [
        "start -->|foreach; exclude log| train",
        "train --> validate",
        "validate -->|include model, loss| join",
        "join -->|foreach| train",
        "join --> end",
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
    assert!(d.starts_with("digraph LoopFlow {\n"), "{d}");
    assert!(d.trim_end().ends_with('}'), "{d}");
    let lines: Vec<&str> = d.lines().map(str::trim).collect();
    for node in [
        "start [shape=box];",
        "train [shape=ellipse];",
        "validate [shape=ellipse];",
        "join [shape=box];",
        "end [shape=box];",
    ] {
        assert!(lines.contains(&node), "{node} in {d}");
    }
    for edge in [
        "start -> train [label=\"foreach; exclude log\"];",
        "train -> validate;",
        "validate -> join [label=\"include model, loss\"];",
        "join -> train [label=\"foreach\"];",
        "join -> end;",
    ] {
        assert_eq!(
            lines.iter().filter(|l| **l == edge).count(),
            1,
            "{edge} in {d}"
        );
    }
    assert_eq!(lines.iter().filter(|l| l.contains("->")).count(), 5, "{d}");
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

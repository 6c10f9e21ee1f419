//! The step graph of a flow, available at run time through [`Flow::graph`](crate::Flow::graph).
//!
//! `#[flow]` builds the graph at compile time from the `next!` calls of every step, so the graph
//! holds every transition a run can take, including each branch of a run-time `if`.

use std::fmt::Write as _;

use crate::Role;

/// The identifier of a transition (an edge of the graph): its position in
/// [`Graph::transitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TransitionId(u16);

impl TransitionId {
    /// The transition at a position of [`Graph::transitions`].
    pub const fn new(index: u16) -> Self {
        TransitionId(index)
    }

    /// The position in [`Graph::transitions`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Which fields of the flow state a transition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFilter {
    /// Every field (no `exclude` or `include`).
    All,
    /// Every field but these (`exclude = [..]`).
    Exclude(&'static [&'static str]),
    /// Only these fields (`include = [..]`).
    Include(&'static [&'static str]),
}

/// One step of a flow.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    name: &'static str,
    role: Role,
    join: bool,
    fold: bool,
}

impl StepInfo {
    #[doc(hidden)]
    pub const fn __new(name: &'static str, role: Role, join: bool) -> Self {
        StepInfo {
            name,
            role,
            join,
            fold: false,
        }
    }

    #[doc(hidden)]
    pub const fn __folding(self) -> Self {
        StepInfo {
            join: true,
            fold: true,
            ..self
        }
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where the step runs.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the step is a join (an aggregator step that takes the inputs of a fan-out).
    pub fn is_join(&self) -> bool {
        self.join
    }

    /// Whether the step is a folding join (`input: Input<Self>`): it runs once per arrival of
    /// the fan-out, in fan-out order, so the aggregator holds one collaborator's state at a time.
    pub fn is_fold(&self) -> bool {
        self.fold
    }
}

/// One transition (`next!` call) of a flow.
#[derive(Debug, Clone, Copy)]
pub struct TransitionInfo {
    from: usize,
    to: usize,
    foreach: bool,
    fields: FieldFilter,
}

impl TransitionInfo {
    #[doc(hidden)]
    pub const fn __new(from: usize, to: usize, foreach: bool, fields: FieldFilter) -> Self {
        TransitionInfo {
            from,
            to,
            foreach,
            fields,
        }
    }

    /// The index of the step that makes the transition.
    pub fn from(&self) -> usize {
        self.from
    }

    /// The index of the target step.
    pub fn to(&self) -> usize {
        self.to
    }

    /// Whether the transition is a fan-out (`foreach = ..`).
    pub fn is_foreach(&self) -> bool {
        self.foreach
    }

    /// The fields the transition carries.
    pub fn fields(&self) -> FieldFilter {
        self.fields
    }
}

/// The step graph of a flow.
///
/// # Example
/// ```
/// use flspec::prelude::*;
///
/// #[derive(Clone, Default, Serialize, Deserialize)]
/// struct Hello { greeting: String }
///
/// #[flow]
/// impl Hello {
///     #[aggregator]
///     fn start(&mut self, ctx: &Ctx) -> Next<Self> {
///         next!(self.greet, foreach = ctx.collaborators())
///     }
///     #[collaborator]
///     fn greet(&mut self, ctx: &Ctx) -> Next<Self> {
///         self.greeting = format!("hello from {}", ctx.name());
///         next!(self.join)
///     }
///     #[aggregator]
///     fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
///         next!(self.end)
///     }
///     #[aggregator]
///     fn end(&mut self) {}
/// }
///
/// let graph = Hello::graph();
/// assert_eq!(graph.steps().len(), 4);
/// assert!(graph.to_mermaid().contains(r#"step_start -->|"foreach"| step_greet"#));
/// assert!(graph.to_dot().starts_with(r#"digraph "Hello" {"#));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Graph {
    flow: &'static str,
    steps: &'static [StepInfo],
    transitions: &'static [TransitionInfo],
}

impl Graph {
    #[doc(hidden)]
    pub const fn __new(
        flow: &'static str,
        steps: &'static [StepInfo],
        transitions: &'static [TransitionInfo],
    ) -> Self {
        Graph {
            flow,
            steps,
            transitions,
        }
    }

    /// The flow's name.
    pub fn flow(&self) -> &'static str {
        self.flow
    }

    /// The steps, in the order they are written in the flow.
    pub fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// The transitions, in the order the `next!` calls are written.
    pub fn transitions(&self) -> &'static [TransitionInfo] {
        self.transitions
    }

    /// A step by index.
    pub fn step(&self, index: usize) -> Option<&'static StepInfo> {
        self.steps.get(index)
    }

    /// A step by name.
    pub fn step_named(&self, name: &str) -> Option<(usize, &'static StepInfo)> {
        self.steps.iter().enumerate().find(|(_, s)| s.name == name)
    }

    /// A transition by id.
    pub fn transition(&self, id: TransitionId) -> Option<&'static TransitionInfo> {
        self.transitions.get(id.index())
    }

    /// The transitions leaving a step.
    pub fn transitions_from(&self, step: usize) -> impl Iterator<Item = &'static TransitionInfo> {
        self.transitions.iter().filter(move |t| t.from == step)
    }

    /// Whether the collaborators of a fan-out that begins at step `first` may reach a folding
    /// join: the aggregator steps reachable from `first` through collaborator steps.
    pub fn reaches_fold(&self, first: usize) -> bool {
        let mut seen = vec![false; self.steps.len()];
        let mut stack = vec![first];
        while let Some(i) = stack.pop() {
            let Some(step) = self.steps.get(i) else {
                continue;
            };
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            if step.role == Role::Aggregator {
                if step.fold {
                    return true;
                }
                continue;
            }
            stack.extend(self.transitions_from(i).map(|t| t.to));
        }
        false
    }

    /// A canonical text of the graph: one line per step and per transition.
    ///
    /// Two builds of a flow have the same canonical text exactly when their graphs (steps, roles,
    /// joins, transitions, fan-outs and field filters) are the same.
    pub fn canonical(&self) -> String {
        let mut out = format!("flow {}\n", self.flow);
        for s in self.steps {
            // A folding join is marked on its own, so that the fingerprints of flows without
            // one are those of earlier versions.
            let join = match (s.join, s.fold) {
                (_, true) => " fold",
                (true, false) => " join",
                (false, false) => "",
            };
            let _ = writeln!(out, "step {} {}{}", s.name, s.role, join);
        }
        for t in self.transitions {
            let kind = if t.foreach { "foreach" } else { "next" };
            let _ = write!(
                out,
                "{kind} {} {}",
                self.steps[t.from].name, self.steps[t.to].name
            );
            match t.fields {
                FieldFilter::All => {}
                FieldFilter::Exclude(f) => {
                    let _ = write!(out, " exclude {}", f.join(","));
                }
                FieldFilter::Include(f) => {
                    let _ = write!(out, " include {}", f.join(","));
                }
            }
            out.push('\n');
        }
        out
    }

    /// A fingerprint of the graph: the first 16 hex digits of the SHA-256 of
    /// [`canonical`](Self::canonical). Runtimes compare it to refuse a run between participants
    /// built from different versions of a flow.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.canonical().as_bytes());
        digest[..8].iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The transitions to draw: one per distinct (from, to, fan-out, fields), in the order of
    /// their first `next!` call. Two `next!` calls with the same target and arguments (one per
    /// branch of an `if`) are two transitions of the graph but one edge of the drawing.
    fn edges(&self) -> Vec<&'static TransitionInfo> {
        let mut edges: Vec<&'static TransitionInfo> = Vec::with_capacity(self.transitions.len());
        for t in self.transitions {
            let seen = edges.iter().any(|e| {
                e.from == t.from && e.to == t.to && e.foreach == t.foreach && e.fields == t.fields
            });
            if !seen {
                edges.push(t);
            }
        }
        edges
    }

    /// The graph as a Mermaid flowchart. Aggregator steps are rectangles, collaborator steps
    /// rounded; fan-outs are labelled `foreach`, filtered transitions list their fields.
    ///
    /// Node ids are the step names prefixed with `step_` (`end`, a word Mermaid reserves, is
    /// never an id); each node is labelled with its step's name and role. Transitions with the
    /// same source, target, fan-out and fields are drawn once.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for s in self.steps {
            let (open, close) = match s.role {
                Role::Aggregator => ("[", "]"),
                Role::Collaborator => ("(", ")"),
            };
            let _ = writeln!(
                out,
                "    step_{name}{open}\"{name}<br/><i>{role}</i>\"{close}",
                name = s.name,
                role = s.role
            );
        }
        for t in self.edges() {
            let label = edge_label(t);
            let (from, to) = (self.steps[t.from].name, self.steps[t.to].name);
            if label.is_empty() {
                let _ = writeln!(out, "    step_{from} --> step_{to}");
            } else {
                let _ = writeln!(out, "    step_{from} -->|\"{label}\"| step_{to}");
            }
        }
        out
    }

    /// The graph in Graphviz DOT. Aggregator steps are boxes, collaborator steps ellipses.
    ///
    /// The graph and node ids are quoted (a step may be named like a DOT keyword, e.g. `node`
    /// or `graph`). Transitions with the same source, target, fan-out and fields are drawn once.
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph \"{}\" {{\n", self.flow);
        for s in self.steps {
            let shape = match s.role {
                Role::Aggregator => "box",
                Role::Collaborator => "ellipse",
            };
            let _ = writeln!(out, "    \"{}\" [shape={shape}];", s.name);
        }
        for t in self.edges() {
            let label = edge_label(t);
            let (from, to) = (self.steps[t.from].name, self.steps[t.to].name);
            if label.is_empty() {
                let _ = writeln!(out, "    \"{from}\" -> \"{to}\";");
            } else {
                let _ = writeln!(out, "    \"{from}\" -> \"{to}\" [label=\"{label}\"];");
            }
        }
        out.push_str("}\n");
        out
    }
}

fn edge_label(t: &TransitionInfo) -> String {
    let mut parts = Vec::new();
    if t.foreach {
        parts.push("foreach".to_string());
    }
    match t.fields {
        FieldFilter::All => {}
        FieldFilter::Exclude(f) => parts.push(format!("exclude {}", f.join(", "))),
        FieldFilter::Include(f) => parts.push(format!("include {}", f.join(", "))),
    }
    parts.join("; ")
}

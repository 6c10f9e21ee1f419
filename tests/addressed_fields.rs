//! Addressed fields: each collaborator of a fan-out receives only its own entry.

use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Mail {
    inbox: PerCollaborator<String>,
    seen: Vec<String>,
    received: Vec<(String, Vec<String>)>,
}

#[flow(addressed = [inbox])]
impl Mail {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        for name in ctx.collaborators() {
            self.inbox.insert(name.clone(), format!("for {name}"));
        }
        next!(self.read, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn read(&mut self) -> Next<Self> {
        self.seen = self.inbox.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.received = inputs
            .iter()
            .map(|i| (i.name().to_string(), i.seen.clone()))
            .collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn check(runtime: &LocalRuntime<()>) {
    let flow = Mail::default().run(runtime).expect("the flow runs");
    assert_eq!(flow.received.len(), 3);
    for (name, seen) in &flow.received {
        assert_eq!(
            seen,
            &vec![format!("{name}:for {name}")],
            "{name} saw {seen:?}"
        );
    }
    // The aggregator keeps its own copy of the addressed field.
    assert_eq!(flow.inbox.len(), 3);
}

#[test]
fn each_collaborator_receives_only_its_own_entry() {
    check(&LocalRuntime::new(["a", "b", "c"], |_| ()));
}

#[test]
fn parallel_fan_out_addresses_the_same_way() {
    check(&LocalRuntime::new(["a", "b", "c"], |_| ()).parallel(2));
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check("addressed_fields", &[Mail::graph()]);
}

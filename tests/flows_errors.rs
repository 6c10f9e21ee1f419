//! Errors a run reports: a failing or panicking step names the flow, the step and the
//! participant; collaborators that branch to different joins at run time; bad `foreach` lists;
//! bad collaborator lists and private-state factories; steps returning `Result`.

mod common;

use std::fmt;

use flspec::prelude::*;
use flspec::{Error, ParticipantName};
use flspec_local::LocalRuntime;

/// Which participant and step should fail, and how.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Failing {
    fail_on: String,
    fail_step: String,
    panic: bool,
    /// Collaborators that ran `train` and `validate` (in join order).
    trained: Vec<String>,
    me: String,
    rounds: u32,
    round: u32,
}

/// A user error type, to check that it comes back as the error's `source`.
#[derive(Debug, PartialEq)]
struct TrainingDiverged {
    loss: f32,
}

impl fmt::Display for TrainingDiverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "training diverged (loss {})", self.loss)
    }
}

impl std::error::Error for TrainingDiverged {}

impl Failing {
    fn maybe_fail(&self, step: &str, who: &str) -> Result<(), TrainingDiverged> {
        if self.fail_step == step && self.fail_on == who {
            if self.panic {
                panic!("boom in {step} on {who}");
            }
            return Err(TrainingDiverged {
                loss: f32::INFINITY,
            });
        }
        Ok(())
    }
}

#[flow]
impl Failing {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Result<Next<Self>, TrainingDiverged> {
        self.maybe_fail("start", ctx.name())?;
        Ok(next!(self.train, foreach = ctx.collaborators()))
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx) -> Result<Next<Self>, TrainingDiverged> {
        self.maybe_fail("train", ctx.name())?;
        Ok(next!(self.validate))
    }

    #[collaborator]
    fn validate(
        &mut self,
        ctx: &Ctx,
    ) -> Result<Next<Self>, Box<dyn std::error::Error + Send + Sync>> {
        self.maybe_fail("validate", ctx.name())?;
        self.me = ctx.name().to_string();
        Ok(next!(self.join))
    }

    #[aggregator]
    fn join(&mut self, ctx: &Ctx, inputs: Inputs<Self>) -> Result<Next<Self>, String> {
        self.maybe_fail("join", ctx.name())
            .map_err(|e| e.to_string())?;
        self.trained.extend(inputs.iter().map(|i| i.me.clone()));
        self.round += 1;
        if self.round < self.rounds {
            Ok(next!(self.train, foreach = inputs.names()))
        } else {
            Ok(next!(self.end))
        }
    }

    #[aggregator]
    fn end(&mut self, ctx: &Ctx) -> Result<(), TrainingDiverged> {
        self.maybe_fail("end", ctx.name())
    }
}

const SITES: [&str; 4] = ["Portland", "Seattle", "Chandler", "Bangalore"];

fn run_failing(
    fail_step: &str,
    fail_on: &str,
    panic: bool,
    workers: usize,
) -> flspec::Result<Failing> {
    let runtime = LocalRuntime::new(SITES, |_| ()).parallel(workers);
    Failing {
        fail_on: fail_on.to_string(),
        fail_step: fail_step.to_string(),
        panic,
        rounds: 2,
        ..Default::default()
    }
    .run(&runtime)
}

#[test]
fn steps_returning_result_run_normally() -> flspec::Result<()> {
    let flow = run_failing("none", "none", false, 1)?;
    let mut expected: Vec<String> = SITES.iter().map(|s| s.to_string()).collect();
    expected.extend(expected.clone());
    assert_eq!(flow.trained, expected);
    Ok(())
}

#[test]
fn a_collaborator_step_error_names_flow_step_and_collaborator() {
    for workers in [1, 2, 4] {
        for step in ["train", "validate"] {
            let err = run_failing(step, "Chandler", false, workers).expect_err("the run must fail");
            let text = err.to_string();
            for part in ["Failing", step, "Chandler", "training diverged"] {
                assert!(text.contains(part), "{part:?} missing from {text:?}");
            }
            match &err {
                Error::StepFailed {
                    flow,
                    step: s,
                    participant,
                    source,
                } => {
                    assert_eq!(*flow, "Failing");
                    assert_eq!(s, &step);
                    assert_eq!(
                        participant,
                        &ParticipantName::Collaborator("Chandler".into())
                    );
                    let user = source
                        .downcast_ref::<TrainingDiverged>()
                        .expect("the step's own error is the source");
                    assert!(user.loss.is_infinite());
                }
                other => panic!("expected StepFailed, got {other:?}"),
            }
            // `std::error::Error::source` reaches the user's error too.
            let source = std::error::Error::source(&err).expect("a source");
            assert!(source.to_string().contains("training diverged"));
        }
    }
}

#[test]
fn a_collaborator_panic_names_flow_step_and_collaborator() {
    for workers in [1, 3] {
        let err = run_failing("validate", "Seattle", true, workers).expect_err("the run must fail");
        let text = err.to_string();
        for part in [
            "Failing",
            "validate",
            "Seattle",
            "boom in validate on Seattle",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text:?}");
        }
        match err {
            Error::StepPanicked {
                flow,
                step,
                participant,
                message,
            } => {
                assert_eq!(flow, "Failing");
                assert_eq!(step, "validate");
                assert_eq!(participant, ParticipantName::Collaborator("Seattle".into()));
                assert_eq!(message, "boom in validate on Seattle");
            }
            other => panic!("expected StepPanicked, got {other:?}"),
        }
    }
}

#[test]
fn aggregator_step_errors_and_panics_name_the_aggregator() {
    for step in ["start", "join", "end"] {
        for panic in [false, true] {
            let err = run_failing(step, "aggregator", panic, 1).expect_err("the run must fail");
            let text = err.to_string();
            assert!(text.contains("Failing") && text.contains(step), "{text}");
            assert!(text.contains("aggregator"), "{text}");
            match err {
                Error::StepFailed {
                    participant,
                    step: s,
                    ..
                }
                | Error::StepPanicked {
                    participant,
                    step: s,
                    ..
                } => {
                    assert_eq!(participant, ParticipantName::Aggregator);
                    assert_eq!(s, step);
                }
                other => panic!("expected a step error, got {other:?}"),
            }
        }
    }
}

#[test]
fn the_first_failure_in_fan_out_order_is_reported() {
    // Two collaborators fail; sequentially the first in fan-out order is the one reported.
    #[derive(Clone, Default, Debug, Serialize, Deserialize)]
    struct TwoFail {}
    #[flow]
    impl TwoFail {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.work, foreach = ctx.collaborators())
        }
        #[collaborator]
        fn work(&mut self, ctx: &Ctx) -> Result<Next<Self>, String> {
            if ctx.name() == "b" || ctx.name() == "d" {
                return Err(format!("{} failed", ctx.name()));
            }
            Ok(next!(self.join))
        }
        #[aggregator]
        fn join(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
            next!(self.end)
        }
        #[aggregator]
        fn end(&mut self) {}
    }
    let err = TwoFail::default()
        .run(&LocalRuntime::new(["a", "b", "c", "d"], |_| ()))
        .expect_err("must fail");
    assert!(err.to_string().contains("collaborator `b`"), "{err}");
    // In parallel, either failing collaborator may be reported, but never a healthy one.
    for _ in 0..10 {
        let err = TwoFail::default()
            .run(&LocalRuntime::new(["a", "b", "c", "d"], |_| ()).parallel(4))
            .expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("collaborator `b`") || text.contains("collaborator `d`"),
            "{text}"
        );
    }
}

/// Collaborators branch at run time to two different joins.
#[derive(Clone, Default, Debug, Serialize, Deserialize)]
struct Branchy {
    to_b: Vec<String>,
}

#[flow]
impl Branchy {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.work, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn work(&mut self, ctx: &Ctx) -> Next<Self> {
        if self.to_b.iter().any(|n| n == ctx.name()) {
            next!(self.join_b)
        } else {
            next!(self.join_a)
        }
    }

    #[aggregator]
    fn join_a(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn join_b(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

#[test]
fn collaborators_branching_to_different_joins_is_a_split_join_error() {
    for workers in [1, 3] {
        let runtime = LocalRuntime::new(["a", "b", "c", "d"], |_| ()).parallel(workers);
        let err = Branchy {
            to_b: vec!["c".into(), "d".into()],
        }
        .run(&runtime)
        .expect_err("a split join must fail");
        let text = err.to_string();
        match err {
            Error::SplitJoin {
                flow,
                fan_out,
                first_join,
                first_collaborators,
                other_join,
                other_collaborators,
            } => {
                assert_eq!(flow, "Branchy");
                assert_eq!(fan_out, "work");
                assert_eq!(first_join, "join_a");
                assert_eq!(first_collaborators, "a, b");
                assert_eq!(other_join, "join_b");
                assert_eq!(other_collaborators, "c, d");
            }
            other => panic!("expected SplitJoin, got {other:?}"),
        }
        for part in ["Branchy", "work", "join_a", "join_b", "a, b", "c, d"] {
            assert!(text.contains(part), "{part:?} missing from {text:?}");
        }
    }
    // All to one join (either one) is fine.
    let runtime = LocalRuntime::new(["a", "b"], |_| ());
    Branchy::default().run(&runtime).expect("all reach join_a");
    Branchy {
        to_b: vec!["a".into(), "b".into()],
    }
    .run(&runtime)
    .expect("all reach join_b");
}

/// A fan-out whose list comes from the state.
#[derive(Clone, Default, Debug, Serialize, Deserialize)]
struct Targets {
    targets: Vec<String>,
    ran: Vec<String>,
}

#[flow]
impl Targets {
    #[aggregator]
    fn start(&mut self) -> Next<Self> {
        next!(self.work, foreach = self.targets.clone())
    }

    #[collaborator]
    fn work(&mut self, ctx: &Ctx) -> Next<Self> {
        self.ran = vec![ctx.name().to_string()];
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.ran = inputs.iter().flat_map(|i| i.ran.clone()).collect();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn run_targets(targets: &[&str]) -> flspec::Result<Targets> {
    let log = common::StepLog::default();
    let runtime =
        LocalRuntime::new(["Portland", "Seattle", "Chandler"], |_| ()).observer(log.observer());
    let result = Targets {
        targets: targets.iter().map(|s| s.to_string()).collect(),
        ran: Vec::new(),
    }
    .run(&runtime);
    if result.is_err() {
        // A bad list is refused before any collaborator runs.
        assert_eq!(log.count("work"), 0, "{:?}", log.entries());
    }
    result
}

#[test]
fn unknown_duplicate_and_empty_foreach_lists_are_refused() {
    match run_targets(&["Portland", "Tokyo"]) {
        Err(Error::UnknownCollaborator { step, name, known }) => {
            assert_eq!(step, "work");
            assert_eq!(name, "Tokyo");
            assert_eq!(known, "Portland, Seattle, Chandler");
        }
        other => panic!("expected UnknownCollaborator, got {other:?}"),
    }
    match run_targets(&["Seattle", "Portland", "Seattle"]) {
        Err(Error::DuplicateCollaborator { step, name }) => {
            assert_eq!(step, "work");
            assert_eq!(name, "Seattle");
        }
        other => panic!("expected DuplicateCollaborator, got {other:?}"),
    }
    match run_targets(&[]) {
        Err(Error::EmptyFanOut { step }) => assert_eq!(step, "work"),
        other => panic!("expected EmptyFanOut, got {other:?}"),
    }
    // Names are case-sensitive.
    assert!(matches!(
        run_targets(&["portland"]),
        Err(Error::UnknownCollaborator { .. })
    ));
    let ok = run_targets(&["Chandler", "Portland"]).expect("a valid subset");
    assert_eq!(ok.ran, ["Chandler", "Portland"]);
}

#[test]
fn an_unknown_collaborator_message_shortens_long_lists() {
    let names: Vec<String> = (0..20).map(|i| format!("site{i}")).collect();
    let runtime = LocalRuntime::new(names, |_| ());
    let err = Targets {
        targets: vec!["nope".into()],
        ran: Vec::new(),
    }
    .run(&runtime)
    .expect_err("unknown");
    let text = err.to_string();
    assert!(
        text.contains("nope") && text.contains("(20 in all)"),
        "{text}"
    );
}

#[test]
fn bad_runtime_collaborator_lists_are_refused() {
    let flow = || Targets {
        targets: vec!["a".into()],
        ran: Vec::new(),
    };
    let empty: [&str; 0] = [];
    for (names, what) in [
        (&empty[..], "at least one"),
        (&["a", "b", "a"][..], "`a` is listed twice"),
        (&["a", ""][..], "empty"),
    ] {
        let err = flow()
            .run(&LocalRuntime::new(names.to_vec(), |_| ()))
            .expect_err("a bad list");
        assert!(
            matches!(&err, Error::InvalidCollaborators(m) if m.contains(what)),
            "{err}"
        );
    }
}

#[test]
fn a_failing_private_state_factory_names_the_collaborator() {
    #[derive(Debug)]
    struct Site;
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct WithSite {}
    #[flow(collaborator = Site)]
    impl WithSite {
        #[aggregator]
        fn start(&mut self, ctx: &Ctx) -> Next<Self> {
            next!(self.work, foreach = ctx.collaborators())
        }
        #[collaborator]
        fn work(&mut self, _site: &mut Site) -> Next<Self> {
            next!(self.join)
        }
        #[aggregator]
        fn join(&mut self, _inputs: Inputs<Self>) -> Next<Self> {
            next!(self.end)
        }
        #[aggregator]
        fn end(&mut self) {}
    }
    for workers in [1, 2] {
        let runtime = LocalRuntime::try_new(["ok", "broken", "ok2"], |name: &str| {
            if name == "broken" {
                Err(format!("no data at {name}"))
            } else {
                Ok(Site)
            }
        })
        .parallel(workers);
        match WithSite::default().run(&runtime) {
            Err(Error::PrivateState { name, source }) => {
                assert_eq!(name, "broken");
                assert_eq!(source.to_string(), "no data at broken");
            }
            other => panic!("expected PrivateState, got {:?}", other.map(|_| ())),
        }
        // A panicking factory is reported the same way.
        let runtime = LocalRuntime::new(["ok", "broken"], |name: &str| {
            assert_ne!(name, "broken", "factory panic");
            Site
        })
        .parallel(workers);
        match WithSite::default().run(&runtime) {
            Err(Error::PrivateState { name, source }) => {
                assert_eq!(name, "broken");
                assert!(source.to_string().contains("factory panic"), "{source}");
            }
            other => panic!("expected PrivateState, got {:?}", other.map(|_| ())),
        }
    }
}

mod render;

/// Mermaid's CLI and Graphviz accept the graphs of this file's flows (skips, saying why, where
/// `scripts/setup-render-tools.sh` could not install them).
#[test]
fn real_renderers_accept_the_graphs() {
    render::check(
        "flows_errors",
        &[Failing::graph(), Branchy::graph(), Targets::graph()],
    );
}

//! The hot path of a fan-out (issue 12, the sequential overhead): a fan-out to every
//! collaborator in the runtime's order runs over the runtime's own name list, not over the
//! step's copy of it (which the driver frees before the collaborators run); any other list runs
//! as given. Checked through the driver's `FanOut` hook, which sees the list a runtime gets, and
//! end to end on the local runtime, with and without an observer.

use std::sync::{Arc, Mutex};

use flspec::Event;
use flspec::driver::{
    FanOut, FanOutRequest, FanOutResult, Resume, RunSetup, drive, run_collaborator,
};
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Rounds {
    /// The first round fans out to `ctx.collaborators()`, the second to this list if set.
    second: Vec<String>,
    round: u32,
    counter: u64,
    seen: Vec<Vec<String>>,
}

#[flow]
impl Rounds {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.train, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn train(&mut self, ctx: &Ctx) -> Next<Self> {
        self.counter = ctx.name().len() as u64;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.seen.push(inputs.names().map(str::to_string).collect());
        self.counter = inputs.iter().map(|i| i.counter).sum();
        self.round += 1;
        if self.round == 1 && !self.second.is_empty() {
            next!(self.train, foreach = self.second.clone())
        } else {
            next!(self.end)
        }
    }

    #[aggregator]
    fn end(&mut self) {}
}

/// Runs collaborators one after the other, recording for each fan-out the names it was given
/// and whether they are the runtime's own list (the same slice, not an equal copy).
struct Recording<'a> {
    setup: &'a RunSetup<'a>,
    lists: Vec<(Vec<String>, bool)>,
}

impl FanOut<Rounds> for Recording<'_> {
    fn run(&mut self, request: FanOutRequest<'_, Rounds>) -> flspec::Result<FanOutResult<Rounds>> {
        let own = std::ptr::eq(request.names, self.setup.collaborators);
        self.lists.push((request.names.to_vec(), own));
        let mut result = FanOutResult::default();
        for name in request.names {
            let state = request.state.clone();
            result.push(
                name,
                run_collaborator(name, state, request.step, &mut (), self.setup),
            )?;
        }
        Ok(result)
    }
}

fn names() -> Vec<String> {
    ["alpha", "bravo", "charlie", "delta"]
        .map(String::from)
        .to_vec()
}

fn drive_recorded(flow: Rounds) -> (Rounds, Vec<(Vec<String>, bool)>) {
    let collaborators = names();
    let setup = RunSetup {
        run_id: "fan-out-list",
        collaborators: &collaborators,
        observer: None,
        checkpoints: None,
    };
    let mut fan_out = Recording {
        setup: &setup,
        lists: Vec::new(),
    };
    let out = drive(Resume::start(flow), &setup, &mut (), &mut fan_out).expect("the run");
    (out, fan_out.lists)
}

#[test]
fn a_fan_out_to_every_collaborator_runs_over_the_runtimes_own_list() {
    let (out, lists) = drive_recorded(Rounds::default());
    assert_eq!(lists.len(), 1);
    let (given, own) = &lists[0];
    assert_eq!(given, &names());
    assert!(
        own,
        "the runtime got a copy of its list, not the list itself"
    );
    assert_eq!(out.seen, vec![names()]);
    assert_eq!(out.counter, 5 + 5 + 7 + 5);
}

#[test]
fn other_lists_run_as_given_and_in_their_order() {
    let flow = Rounds {
        second: vec!["delta".into(), "alpha".into()],
        ..Rounds::default()
    };
    let (out, lists) = drive_recorded(flow);
    assert_eq!(lists.len(), 2);
    assert!(lists[0].1);
    assert_eq!(lists[1].0, ["delta", "alpha"]);
    assert!(!lists[1].1, "a subset is its own list");
    assert_eq!(out.seen[1], ["delta", "alpha"]);
    assert_eq!(out.counter, 5 + 5);

    // The whole list in another order is not the runtime's list either.
    let mut reversed = names();
    reversed.reverse();
    let (out, lists) = drive_recorded(Rounds {
        second: reversed.clone(),
        ..Rounds::default()
    });
    assert!(!lists[1].1);
    assert_eq!(lists[1].0, reversed);
    assert_eq!(out.seen[1], reversed);
}

#[test]
fn the_local_runtime_gives_the_same_result_with_and_without_an_observer() {
    let flow = || Rounds {
        second: vec!["charlie".into(), "bravo".into()],
        ..Rounds::default()
    };
    let plain = flow()
        .run(&LocalRuntime::new(names(), |_| ()))
        .expect("the run");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let observed = flow()
        .run(
            &LocalRuntime::new(names(), |_| ()).observer(move |e: &Event<'_>| {
                let what = match e {
                    Event::RunStarted { .. } => "run started".to_string(),
                    Event::StepStarted {
                        step, participant, ..
                    } => format!("{step} started on {participant}"),
                    Event::StepFinished {
                        step, participant, ..
                    } => format!("{step} finished on {participant}"),
                    Event::FanOut { collaborators, .. } => format!("fan-out to {collaborators}"),
                    Event::Joined { inputs, .. } => format!("joined {inputs}"),
                    Event::RunFinished { .. } => "run finished".to_string(),
                    _ => "other".to_string(),
                };
                seen.lock().expect("the event list").push(what);
            }),
        )
        .expect("the run");
    assert_eq!(plain, observed);
    let events = events.lock().expect("the event list");
    let train: Vec<&String> = events.iter().filter(|e| e.starts_with("train")).collect();
    assert_eq!(
        train.len(),
        2 * (4 + 2),
        "train started and finished on 4, then 2"
    );
    assert_eq!(train[0], "train started on alpha");
    assert_eq!(train[1], "train finished on alpha");
    assert_eq!(events.first().map(String::as_str), Some("run started"));
    assert_eq!(events.last().map(String::as_str), Some("run finished"));
    assert!(events.contains(&"fan-out to 4".to_string()));
    assert!(events.contains(&"joined 2".to_string()));
}

//! The director does not trust envoys: a modified envoy (played here by a raw session that
//! speaks the public wire types over real mutual TLS) cannot reach a join its fan-out cannot
//! reach, smuggle fields the transition into the join does not carry, answer another envoy's
//! task, or register under another envoy's name.

mod inproc;
#[path = "../testflows/mod.rs"]
mod testflows;

use std::time::Duration;

use flspec::Flow;
use flspec_federated::DirectorOptions;
use flspec_federated::wire::{EnvoyMsg, TaskOutcome};
use inproc::{FakeSession, flow_info};
use testflows::{BranchFlow, TrustFlow, director_registry};

/// Submits a run of `F` from a thread and answers its first fan-out's task on the fake
/// `Portland` session with `answer`, then its second fan-out's (if the run gets there) with
/// `second`; returns the run's result.
fn run_answering<F: Flow + Default + Send + 'static>(
    answer: impl FnOnce(&[u8]) -> TaskOutcome + Send + 'static,
    second: fn(&[u8]) -> TaskOutcome,
) -> flspec::Result<F> {
    let fed = inproc::start(
        &["Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let channel = fed.channel("envoys/Portland").expect("the envoy connects");
    let mut session = fed
        .runtime
        .block_on(FakeSession::open(
            channel,
            "Portland",
            vec![flow_info::<F>()],
        ))
        .expect("the director welcomes the envoy");
    let client = fed.client("client").collaborators(["Portland"]);
    let run = std::thread::spawn(move || F::default().run(&client));
    fed.runtime.block_on(async {
        let task = session.next_task().await;
        assert_eq!(task.step, "work");
        let outcome = answer(&task.state);
        session
            .out
            .send(EnvoyMsg::TaskDone {
                task: task.task,
                outcome,
            })
            .expect("the session is open");
        if let Ok(Ok(Some(flspec_federated::wire::DirectorMsg::Task(task)))) =
            tokio::time::timeout(Duration::from_secs(5), session.inbound.message()).await
        {
            let _ = session.out.send(EnvoyMsg::TaskDone {
                task: task.task,
                outcome: second(&task.state),
            });
        }
    });
    run.join().expect("the client thread does not panic")
}

/// Runs a `TrustFlow` whose first fan-out `answer`s; its second is answered honestly.
fn run_with_answer(
    answer: impl FnOnce(&[u8]) -> TaskOutcome + Send + 'static,
) -> flspec::Result<TrustFlow> {
    run_answering(answer, |bytes| {
        let mut state: TrustFlow = flspec::codec::decode_state(bytes).expect("decodes");
        state.value += 1; // as `work2` does
        arrived("join2", &state)
    })
}

fn arrived(join: &str, state: &TrustFlow) -> TaskOutcome {
    TaskOutcome::Arrived {
        join: join.into(),
        state: flspec::codec::encode_state(state).expect("encodes").into(),
    }
}

#[test]
fn fields_the_transition_does_not_carry_are_filtered_out() {
    let result = run_with_answer(|bytes| {
        let mut state: TrustFlow = flspec::codec::decode_state(bytes).expect("decodes");
        state.value = 7;
        // `work` → `join` carries only `value`: a modified envoy sends more.
        state.leak = "SMUGGLED".into();
        state.total = 1_000_000;
        arrived("join", &state)
    })
    .expect("the run finishes");
    assert_eq!(result.total, 7, "the honest field arrives");
    assert!(
        result.leaks.is_empty(),
        "a field the transition does not carry reached the join: {:?}",
        result.leaks
    );
    assert_eq!(
        result.second,
        vec![1],
        "the second fan-out runs from the aggregator's state"
    );
}

#[test]
fn a_join_the_fan_out_cannot_reach_is_refused() {
    for join in ["join2", "end", "start"] {
        let err = run_with_answer(move |bytes| {
            let state: TrustFlow = flspec::codec::decode_state(bytes).expect("decodes");
            arrived(join, &state)
        })
        .expect_err("the run must fail");
        let text = err.to_string();
        assert!(
            text.contains("Portland") && text.contains(&format!("`{join}`")),
            "{text}"
        );
        assert!(text.contains("cannot reach"), "{text}");
    }
}

#[test]
fn a_failure_in_a_step_outside_the_fan_out_is_refused() {
    let err = run_with_answer(|_| TaskOutcome::StepFailed {
        step: "work2".into(),
        message: "blame another step".into(),
    })
    .expect_err("the run must fail");
    let text = err.to_string();
    assert!(
        text.contains("Portland") && text.contains("not a step of this fan-out"),
        "{text}"
    );
}

#[test]
fn an_envoy_cannot_answer_another_envoys_task_or_take_its_name() {
    let fed = inproc::start(
        &["Bengaluru", "Portland"],
        DirectorOptions::default(),
        director_registry(),
    );
    let open = |cert: &str, name: &str| {
        let channel = fed.channel(cert).expect("connects");
        fed.runtime.block_on(FakeSession::open(
            channel,
            name,
            vec![flow_info::<TrustFlow>()],
        ))
    };
    // Portland's certificate cannot register as Bengaluru.
    let refusal = open("envoys/Portland", "Bengaluru")
        .err()
        .expect("registering under another name is refused");
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied);
    assert!(
        refusal.message().contains("Portland"),
        "{}",
        refusal.message()
    );

    let mut bengaluru = open("envoys/Bengaluru", "Bengaluru").expect("registers");
    let mut portland = open("envoys/Portland", "Portland").expect("registers");
    let client = fed
        .client("client")
        .collaborators(["Bengaluru", "Portland"]);
    let run = std::thread::spawn(move || TrustFlow::default().run(&client));
    fed.runtime.block_on(async {
        let b_task = bengaluru.next_task().await;
        let p_task = portland.next_task().await;
        let forged = |value| {
            let state = TrustFlow {
                value,
                ..TrustFlow::default()
            };
            arrived("join", &state)
        };
        // Portland answers Bengaluru's task first, with a forged value.
        portland
            .out
            .send(EnvoyMsg::TaskDone {
                task: b_task.task,
                outcome: forged(1000),
            })
            .expect("open");
        portland
            .out
            .send(EnvoyMsg::TaskDone {
                task: p_task.task,
                outcome: forged(7),
            })
            .expect("open");
        tokio::time::sleep(Duration::from_millis(300)).await;
        bengaluru
            .out
            .send(EnvoyMsg::TaskDone {
                task: b_task.task,
                outcome: forged(7),
            })
            .expect("open");
        for session in [&mut bengaluru, &mut portland] {
            let task = session.next_task().await;
            session
                .out
                .send(EnvoyMsg::TaskDone {
                    task: task.task,
                    outcome: arrived(
                        "join2",
                        &TrustFlow {
                            value: 8,
                            ..TrustFlow::default()
                        },
                    ),
                })
                .expect("open");
        }
    });
    let result = run.join().expect("no panic").expect("the run finishes");
    assert_eq!(
        result.total, 14,
        "the forged answer to another envoy's task was counted"
    );
}

#[test]
fn a_state_that_does_not_decode_names_the_envoy() {
    let err = run_with_answer(|_| TaskOutcome::Arrived {
        join: "join".into(),
        state: vec![0xff; 3].into(),
    })
    .expect_err("the run must fail");
    let text = err.to_string();
    assert!(
        text.contains("Portland") && text.contains("does not decode"),
        "{text}"
    );
}

/// Runs a `BranchFlow` (one fan-out) whose task the fake `Portland` envoy `answer`s.
fn run_branch_with_answer(
    answer: impl FnOnce(&[u8]) -> TaskOutcome + Send + 'static,
) -> flspec::Result<BranchFlow> {
    run_answering(answer, |_| unreachable!("BranchFlow has one fan-out"))
}

fn branch_arrived(state: &BranchFlow) -> TaskOutcome {
    TaskOutcome::Arrived {
        join: "join".into(),
        state: flspec::codec::encode_state(state).expect("encodes").into(),
    }
}

#[test]
fn a_join_reached_through_differently_filtered_transitions_takes_only_what_one_carries() {
    // Honest answers along either branch are accepted as they are.
    for note in ["", "noted"] {
        let result = run_branch_with_answer(move |_| {
            branch_arrived(&BranchFlow {
                value: 7,
                note: note.into(),
                ..BranchFlow::default()
            })
        })
        .expect("an answer one transition carries is accepted");
        assert_eq!(result.total, 7);
        assert_eq!(result.notes, vec![note.to_owned()]);
    }
    // A field neither transition carries is refused, not passed on.
    let err = run_branch_with_answer(|_| {
        branch_arrived(&BranchFlow {
            value: 7,
            note: "noted".into(),
            leak: "SMUGGLED".into(),
            ..BranchFlow::default()
        })
    })
    .expect_err("a smuggled field must end the run");
    let text = err.to_string();
    assert!(
        text.contains("Portland") && text.contains("no transition into the join carries"),
        "{text}"
    );
    assert!(!text.contains("SMUGGLED"), "{text}");
}

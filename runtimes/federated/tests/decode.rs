//! The wire decoders reject malformed input with an error, never a panic or a huge allocation.

use bytes::Bytes;
use flspec_federated::codec::{decode, encode};
use flspec_federated::wire::{
    DirectorMsg, EnvoyMsg, FlowInfo, LogLine, RunUpdate, SubmitRequest, Task, TaskOutcome,
    WireEvent, WireRole,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _-]{0,24}"
}

fn envoy_msg() -> impl Strategy<Value = EnvoyMsg> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            proptest::collection::vec((text(), text()), 0..4),
            proptest::collection::vec(text(), 0..4)
        )
            .prop_map(|(protocol, name, flows, collaborators)| EnvoyMsg::Hello {
                protocol,
                name,
                flows: flows
                    .into_iter()
                    .map(|(name, fingerprint)| FlowInfo { name, fingerprint })
                    .collect(),
                collaborators,
            }),
        Just(EnvoyMsg::Heartbeat),
        (
            any::<u64>(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(task, join, state)| EnvoyMsg::TaskDone {
                task,
                outcome: TaskOutcome::Arrived {
                    join,
                    state: Bytes::from(state),
                },
            }),
        (text(), text(), text()).prop_map(|(run_id, step, participant)| EnvoyMsg::Event {
            run_id,
            event: WireEvent::StepStarted {
                step,
                role: WireRole::Collaborator,
                participant,
            },
        }),
        (text(), text(), text()).prop_map(|(run_id, target, message)| EnvoyMsg::Log {
            run_id,
            line: LogLine {
                level: "INFO".into(),
                target,
                message,
            },
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<EnvoyMsg>(&bytes);
        let _ = decode::<DirectorMsg>(&bytes);
        let _ = decode::<SubmitRequest>(&bytes);
        let _ = decode::<RunUpdate>(&bytes);
        let _ = decode::<TaskOutcome>(&bytes);
    }

    #[test]
    fn messages_round_trip(msg in envoy_msg()) {
        let bytes = encode(&msg).expect("encodes");
        prop_assert_eq!(decode::<EnvoyMsg>(&bytes).expect("decodes"), msg);
    }

    #[test]
    fn corrupted_messages_never_panic(
        msg in envoy_msg(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = encode(&msg).expect("encodes");
        for (at, value) in flips {
            let n = bytes.len();
            bytes[at % n] ^= value;
        }
        let _ = decode::<EnvoyMsg>(&bytes);
        let n = bytes.len();
        let _ = decode::<EnvoyMsg>(&bytes[..cut % (n + 1)]);
    }
}

#[test]
fn a_huge_length_prefix_is_an_error_not_an_allocation() {
    // Task variant of DirectorMsg (index 2), then a run id claiming 2^63 bytes.
    let mut bytes = vec![2u8, 1];
    bytes.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(decode::<DirectorMsg>(&bytes).is_err());
    let task = DirectorMsg::Task(Task {
        task: 1,
        run_id: "r".into(),
        collaborator: "c".into(),
        step: "s".into(),
        state: Bytes::from_static(b"state"),
    });
    let mut ok = encode(&task).expect("encodes");
    assert_eq!(decode::<DirectorMsg>(&ok).expect("decodes"), task);
    ok.push(0);
    let err = decode::<DirectorMsg>(&ok).expect_err("trailing bytes");
    assert!(err.to_string().contains("trailing"), "{err}");
}

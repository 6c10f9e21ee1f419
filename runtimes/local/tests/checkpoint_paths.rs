//! Checkpoints never read or write outside their folder: a journal line whose `file` is not the
//! name the store writes (`../x`, an absolute path, another file of the folder, ...) is refused,
//! naming the line; a state file that is a symbolic link is refused; a run id that is not a plain
//! folder name is refused by `run`, `resume` and `RunCheckpoints::open`.

use std::fs;
use std::path::Path;

use flspec::Error;
use flspec::checkpoint::RunCheckpoints;
use flspec::prelude::*;
use flspec_local::LocalRuntime;

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Tally {
    value: u64,
    total: u64,
}

#[flow]
impl Tally {
    #[aggregator]
    fn start(&mut self, ctx: &Ctx) -> Next<Self> {
        next!(self.add, foreach = ctx.collaborators())
    }

    #[collaborator]
    fn add(&mut self, ctx: &Ctx) -> Next<Self> {
        self.value = ctx.name().len() as u64;
        next!(self.join)
    }

    #[aggregator]
    fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
        self.total = inputs.iter().map(|i| i.value).sum();
        next!(self.end)
    }

    #[aggregator]
    fn end(&mut self) {}
}

fn runtime() -> LocalRuntime<()> {
    LocalRuntime::new(["Portland", "Seattle"], |_: &str| ())
}

/// Runs the flow with checkpoints in `<root>/runs/run-1`, and puts a valid state file with a
/// marker value next to the checkpoint folder (`<root>/outside.state`): the file a malicious
/// journal would point to.
fn checkpointed_run(root: &Path) -> flspec::Result<()> {
    Tally::default().run(&runtime().checkpoint_dir(root.join("runs")).run_id("run-1"))?;
    let run = RunCheckpoints::open(&root.join("runs"), "run-1")?;
    let state = fs::read(run.folder().join(&run.records()[0].file)).expect("a state file");
    fs::write(root.join("outside.state"), state).expect("write the outside file");
    Ok(())
}

/// Replaces the `file` of the journal's first line (record 0) with `file`.
fn tamper_first_line(root: &Path, file: &str) {
    let journal = root.join("runs/run-1/journal.jsonl");
    let text = fs::read_to_string(&journal).expect("read the journal");
    let original = r#""file":"00000000.state""#;
    assert!(text.contains(original), "{text}");
    let escaped = file.replace('\\', "\\\\").replace('"', "\\\"");
    let tampered = text.replacen(original, &format!(r#""file":"{escaped}""#), 1);
    fs::write(&journal, tampered).expect("write the journal");
}

fn assert_refused(result: flspec::Result<RunCheckpoints>, file: &str) {
    match result {
        Err(Error::CheckpointFormat { path, reason }) => {
            assert!(path.ends_with("journal.jsonl"), "{path:?}");
            assert!(reason.starts_with("line 1:"), "{reason}");
            assert!(reason.contains(&format!("{file:?}")), "{reason}");
            assert!(reason.contains("\"00000000.state\""), "{reason}");
        }
        other => panic!("`file` {file:?} must be refused, got {other:?}"),
    }
}

#[test]
fn a_journal_pointing_outside_the_run_folder_is_refused() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    checkpointed_run(root.path())?;
    let outside = root.path().join("outside.state");
    let absolute = outside.to_str().expect("a UTF-8 path").to_string();
    for file in [
        "../../outside.state",
        "../run-1/00000000.state",
        absolute.as_str(),
        "/etc/passwd",
    ] {
        tamper_first_line(root.path(), file);
        assert_refused(
            RunCheckpoints::open(&root.path().join("runs"), "run-1"),
            file,
        );
        // Restore the run for the next case.
        tamper_first_line_back(root.path(), file);
    }
    Ok(())
}

#[test]
fn a_journal_naming_any_other_file_is_refused() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    checkpointed_run(root.path())?;
    for file in [
        "run.json",
        "journal.jsonl",
        "00000001.state",
        "00000000.state.tmp",
        "00000000.tmp",
        "./00000000.state",
        "00000000.state/",
        "sub/00000000.state",
        "0.state",
        "",
        "..",
        "C:\\outside.state",
    ] {
        tamper_first_line(root.path(), file);
        assert_refused(
            RunCheckpoints::open(&root.path().join("runs"), "run-1"),
            file,
        );
        tamper_first_line_back(root.path(), file);
    }
    // Restored, the run reads again.
    let run = RunCheckpoints::open(&root.path().join("runs"), "run-1")?;
    assert_eq!(run.last_state::<Tally>()?.total, 15);
    Ok(())
}

/// Undoes [`tamper_first_line`].
fn tamper_first_line_back(root: &Path, file: &str) {
    let journal = root.join("runs/run-1/journal.jsonl");
    let text = fs::read_to_string(&journal).expect("read the journal");
    let escaped = file.replace('\\', "\\\\").replace('"', "\\\"");
    let restored = text.replacen(
        &format!(r#""file":"{escaped}""#),
        r#""file":"00000000.state""#,
        1,
    );
    fs::write(&journal, restored).expect("write the journal");
}

#[test]
fn load_refuses_a_record_built_by_hand() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    checkpointed_run(root.path())?;
    let run = RunCheckpoints::open(&root.path().join("runs"), "run-1")?;
    let mut record = run.records()[0].clone();
    assert_eq!(run.load::<Tally>(&record)?, Tally::default());
    record.file = "../../outside.state".into();
    match run.load::<Tally>(&record) {
        Err(Error::CheckpointFormat { reason, .. }) => {
            assert!(reason.contains("../../outside.state"), "{reason}");
        }
        other => panic!("a record naming ../../outside.state must be refused, got {other:?}"),
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_state_file_that_is_a_link_is_refused() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    checkpointed_run(root.path())?;
    let folder = root.path().join("runs/run-1");
    fs::remove_file(folder.join("00000000.state")).expect("remove a state file");
    std::os::unix::fs::symlink(
        root.path().join("outside.state"),
        folder.join("00000000.state"),
    )
    .expect("make a link");
    let run = RunCheckpoints::open(&root.path().join("runs"), "run-1")?;
    match run.load::<Tally>(&run.records()[0]) {
        Err(Error::CheckpointFormat { path, reason }) => {
            assert!(path.ends_with("00000000.state"), "{path:?}");
            assert!(reason.contains("not a plain file"), "{reason}");
        }
        other => panic!("a linked state file must be refused, got {other:?}"),
    }
    Ok(())
}

#[test]
fn run_ids_that_are_not_plain_folder_names_are_refused() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    let runs = root.path().join("runs");
    fs::create_dir(&runs).expect("make the checkpoint folder");
    let outside = root.path().to_str().expect("a UTF-8 path").to_string();
    for id in [
        "../escaped",
        "..",
        ".",
        "",
        "a/b",
        "a\\b",
        outside.as_str(),
        ".hidden",
    ] {
        let runtime = runtime().checkpoint_dir(&runs).run_id(id);
        match Tally::default().run(&runtime) {
            Err(Error::CheckpointFormat { reason, .. }) => {
                assert!(
                    reason.contains("a run id may hold only"),
                    "{id:?}: {reason}"
                );
            }
            other => panic!("run id {id:?} must be refused, got {other:?}"),
        }
        assert!(
            matches!(
                runtime.resume::<Tally>(id),
                Err(Error::CheckpointFormat { .. })
            ),
            "resume of {id:?} must be refused"
        );
        assert!(
            matches!(
                RunCheckpoints::open(&runs, id),
                Err(Error::CheckpointFormat { .. })
            ),
            "open of {id:?} must be refused"
        );
    }
    // Nothing was written anywhere but the (still empty) checkpoint folder.
    let mut entries: Vec<String> = fs::read_dir(root.path())
        .expect("read the root")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    entries.sort();
    assert_eq!(entries, ["runs"]);
    assert_eq!(fs::read_dir(&runs).expect("read runs").count(), 0);
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_run_folder_header_or_journal_that_is_a_link_is_refused() -> flspec::Result<()> {
    let root = tempfile::tempdir().expect("a temporary folder");
    checkpointed_run(root.path())?;
    let runs = root.path().join("runs");
    // A run folder that links to a run elsewhere.
    std::os::unix::fs::symlink(runs.join("run-1"), runs.join("run-2")).expect("make a link");
    // A run folder whose header and journal link to files elsewhere.
    let copy = runs.join("run-3");
    fs::create_dir(&copy).expect("make a run folder");
    for name in ["run.json", "journal.jsonl"] {
        std::os::unix::fs::symlink(runs.join("run-1").join(name), copy.join(name))
            .expect("make a link");
    }
    for (id, linked) in [("run-2", "run-2"), ("run-3", "run.json")] {
        match RunCheckpoints::open(&runs, id) {
            Err(Error::CheckpointFormat { path, reason }) => {
                assert!(path.ends_with(linked), "{path:?}");
                assert!(reason.contains("not a plain"), "{reason}");
            }
            other => panic!("run {id} must be refused, got {other:?}"),
        }
    }
    fs::remove_file(copy.join("run.json")).expect("remove the link");
    fs::copy(runs.join("run-1/run.json"), copy.join("run.json")).expect("copy the header");
    match RunCheckpoints::open(&runs, "run-3") {
        Err(Error::CheckpointFormat { path, .. }) => assert!(path.ends_with("journal.jsonl")),
        other => panic!("a linked journal must be refused, got {other:?}"),
    }
    Ok(())
}

//! The errors of flspec: one [`Error`] for runs, one [`StepError`] for a single step.

use std::fmt;

/// A boxed error, as returned by user steps and private-state factories.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of flspec.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who ran a step: the aggregator, or a collaborator by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ParticipantName {
    /// The aggregator.
    Aggregator,
    /// A collaborator, by name.
    Collaborator(String),
}

impl fmt::Display for ParticipantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParticipantName::Aggregator => f.write_str("the aggregator"),
            ParticipantName::Collaborator(name) => write!(f, "collaborator `{name}`"),
        }
    }
}

/// A collaborator that leaves a fan-out: return it from a collaborator step
/// (`return Err(Dropout::new("battery low").into())`, or `Err(Dropout::new(..))` from a step
/// returning `Result<Next<Self>, Dropout>`) to vanish from the round, as a lost site would.
///
/// In a flow declared `#[flow(tolerate_dropouts)]` the run goes on with the survivors (the join
/// receives their inputs only); in any other flow the run ends with [`Error::Dropped`].
///
/// `Debug` prints the message, as [`Error`]'s does.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("dropped out: {reason}")]
pub struct Dropout {
    reason: String,
}

impl Dropout {
    /// A dropout, with a reason for the logs.
    pub fn new(reason: impl Into<String>) -> Self {
        Dropout {
            reason: reason.into(),
        }
    }

    /// Why the collaborator dropped out.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Why a run failed.
///
/// `Debug` prints the message and its causes, not the variant's fields, so that
/// `fn main() -> Result<(), flspec::Error>` shows what went wrong:
///
/// ```text
/// Error: step `train` of flow `FedAvg` failed on collaborator `Portland`: no data
///
/// Caused by:
///     file not found
/// ```
///
/// A cause whose text the message already ends with is not repeated. Match on the variant to
/// read its fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A step returned an error.
    #[error("step `{step}` of flow `{flow}` failed on {participant}: {source}")]
    StepFailed {
        /// The flow's name.
        flow: &'static str,
        /// The step's name.
        step: &'static str,
        /// Who ran it.
        participant: ParticipantName,
        /// What the step returned.
        #[source]
        source: BoxError,
    },
    /// A step panicked.
    #[error("step `{step}` of flow `{flow}` panicked on {participant}: {message}")]
    StepPanicked {
        /// The flow's name.
        flow: &'static str,
        /// The step's name.
        step: &'static str,
        /// Who ran it.
        participant: ParticipantName,
        /// The panic message.
        message: String,
    },
    /// The collaborators of one fan-out would reach different joins.
    #[error(
        "the collaborators of the fan-out to `{fan_out}` in flow `{flow}` must reach the same join, \
         but {first_collaborators} reached `{first_join}` and {other_collaborators} reached `{other_join}`; \
         make every branch of the collaborator steps lead to one join"
    )]
    SplitJoin {
        /// The flow's name.
        flow: &'static str,
        /// The step the fan-out started.
        fan_out: &'static str,
        /// The join the first collaborators reached.
        first_join: &'static str,
        /// Who reached the first join (comma-separated names).
        first_collaborators: String,
        /// The other join.
        other_join: &'static str,
        /// Who reached the other join.
        other_collaborators: String,
    },
    /// Collaborators dropped out of a fan-out of a flow that does not tolerate dropouts, or every
    /// collaborator of a fan-out dropped out.
    #[error(
        "collaborators dropped out of the fan-out to `{step}` in flow `{flow}`: {names}; {hint}"
    )]
    Dropped {
        /// The flow's name.
        flow: &'static str,
        /// The step the fan-out targets.
        step: &'static str,
        /// Who dropped out, with why.
        names: String,
        /// What to do.
        hint: &'static str,
    },
    /// A fan-out named a collaborator the runtime does not know.
    #[error(
        "fan-out to `{step}` names unknown collaborator `{name}`; this run's collaborators are: {known}"
    )]
    UnknownCollaborator {
        /// The step the fan-out targets.
        step: &'static str,
        /// The unknown name.
        name: String,
        /// The names the runtime knows (comma-separated, possibly shortened).
        known: String,
    },
    /// A fan-out named the same collaborator twice.
    #[error(
        "fan-out to `{step}` names collaborator `{name}` twice; each collaborator may appear once"
    )]
    DuplicateCollaborator {
        /// The step the fan-out targets.
        step: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A fan-out with an empty collaborator list.
    #[error("fan-out to `{step}` has no collaborators; give `foreach` at least one name")]
    EmptyFanOut {
        /// The step the fan-out targets.
        step: &'static str,
    },
    /// A runtime was built with no collaborators, or with a repeated name.
    #[error("invalid collaborator list: {0}")]
    InvalidCollaborators(String),
    /// The factory of a collaborator's private state failed.
    #[error("could not build the private state of collaborator `{name}`: {source}")]
    PrivateState {
        /// The collaborator.
        name: String,
        /// What the factory returned.
        #[source]
        source: BoxError,
    },
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The file or folder concerned.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint exists but does not fit this flow or is corrupt.
    #[error("checkpoint {path}: {reason}")]
    CheckpointFormat {
        /// The file or folder concerned.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A flow state could not be encoded or decoded.
    #[error("could not {action} the state of flow `{flow}`: {source}")]
    Codec {
        /// The flow's name.
        flow: &'static str,
        /// `encode` or `decode`.
        action: &'static str,
        /// The serde error.
        #[source]
        source: postcard::Error,
    },
    /// A runtime violated the step protocol (a bug in the runtime, or a corrupt message).
    #[error("flow `{flow}`: {source}")]
    Protocol {
        /// The flow's name.
        flow: &'static str,
        /// What went wrong.
        #[source]
        source: StepError,
    },
    /// An error of a runtime that is not one of the above (network, TLS, ...).
    #[error("runtime: {0}")]
    Runtime(#[source] BoxError),
}

/// Why a single step could not complete.
///
/// Returned by the generated dispatchers
/// ([`Flow::run_aggregator_step`](crate::Flow::run_aggregator_step) and
/// [`Flow::run_collaborator_step`](crate::Flow::run_collaborator_step)). `Debug` prints the
/// message and its causes, as [`Error`]'s does.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The step's own code returned an error.
    #[error(transparent)]
    Failed(BoxError),
    /// A runtime asked a participant of the wrong role to run a step.
    #[error("step `{step}` is a {expected} step; it cannot run on the {actual}")]
    WrongRole {
        /// The step.
        step: &'static str,
        /// The role the step belongs to.
        expected: crate::Role,
        /// The role that was asked to run it.
        actual: crate::Role,
    },
    /// A join was called without inputs.
    #[error("join step `{step}` needs the inputs of a fan-out")]
    MissingInputs {
        /// The step.
        step: &'static str,
    },
    /// A step that is not a join was given inputs.
    #[error("step `{step}` is not a join and takes no inputs")]
    UnexpectedInputs {
        /// The step.
        step: &'static str,
    },
    /// A folding join was given other than one input.
    #[error("folding join `{step}` takes one input per call, but was given {count}")]
    FoldInputs {
        /// The step.
        step: &'static str,
        /// How many inputs it was given.
        count: usize,
    },
}

/// Writes an error as `Debug` should print it at the end of `main`: its message, then
/// `\n\nCaused by:` and one indented line per source (numbered when there are several). A
/// source whose text the line before it already ends with (a message written as
/// `"...: {source}"`) is not repeated, but its own sources are still listed.
pub(crate) fn write_chain(
    error: &(dyn std::error::Error + 'static),
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let message = error.to_string();
    f.write_str(&message)?;
    let mut previous = message;
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !previous.ends_with(&text) {
            causes.push(text.clone());
        }
        previous = text;
        source = cause.source();
    }
    match causes.as_slice() {
        [] => Ok(()),
        [one] => write!(f, "\n\nCaused by:\n    {}", indent(one)),
        many => {
            f.write_str("\n\nCaused by:")?;
            for (i, cause) in many.iter().enumerate() {
                write!(f, "\n    {i}: {}", indent(cause))?;
            }
            Ok(())
        }
    }
}

/// Indents the continuation lines of a multi-line cause under its first line.
fn indent(text: &str) -> String {
    text.replace('\n', "\n       ")
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_chain(self, f)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_chain(self, f)
    }
}

impl fmt::Debug for Dropout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_chain(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a source, like a user's error wrapping an I/O error.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the shard")]
    struct ShardError(#[source] std::io::Error);

    #[test]
    fn debug_prints_the_message_not_the_fields() {
        let e = Error::UnknownCollaborator {
            step: "train",
            name: "Seatle".into(),
            known: "Portland, Seattle".into(),
        };
        assert_eq!(
            format!("{e:?}"),
            "fan-out to `train` names unknown collaborator `Seatle`; this run's collaborators are: Portland, Seattle"
        );
        // What `fn main() -> Result<(), flspec::Error>` prints: `Error: ` and the Debug form.
        assert!(!format!("{e:?}").contains("UnknownCollaborator {"));
        assert_eq!(format!("{e:#?}"), format!("{e:?}"));
    }

    #[test]
    fn debug_lists_the_causes_the_message_does_not_quote() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "shard-3.bin: no such file");
        let e = Error::StepFailed {
            flow: "FedAvg",
            step: "train",
            participant: ParticipantName::Collaborator("Portland".into()),
            source: Box::new(ShardError(io)),
        };
        // The message quotes its source (`: cannot read the shard`); the source's own source
        // comes under "Caused by".
        assert_eq!(
            format!("{e:?}"),
            "step `train` of flow `FedAvg` failed on collaborator `Portland`: cannot read the shard\n\
             \n\
             Caused by:\n    shard-3.bin: no such file"
        );
    }

    #[test]
    fn debug_numbers_several_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] ShardError);
        let io = std::io::Error::other("disk\ngone");
        let e = Error::Runtime(Box::new(Outer(ShardError(io))));
        assert_eq!(
            format!("{e:?}"),
            "runtime: outer\n\nCaused by:\n    0: cannot read the shard\n    1: disk\n       gone"
        );
    }

    #[test]
    fn debug_of_the_other_error_types_prints_their_message() {
        let step = StepError::MissingInputs { step: "join" };
        assert_eq!(
            format!("{step:?}"),
            "join step `join` needs the inputs of a fan-out"
        );
        let wrapped = Error::Protocol {
            flow: "FedAvg",
            source: step,
        };
        assert_eq!(
            format!("{wrapped:?}"),
            "flow `FedAvg`: join step `join` needs the inputs of a fan-out"
        );
        assert_eq!(
            format!("{:?}", Dropout::new("battery low")),
            "dropped out: battery low"
        );
        let unknown = crate::UnknownStep {
            flow: "FedAvg",
            name: "trian".into(),
        };
        assert_eq!(
            format!("{unknown:?}"),
            "unknown step `trian` in flow `FedAvg`"
        );
    }
}

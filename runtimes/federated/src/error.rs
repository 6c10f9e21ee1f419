//! The errors of the federated runtime.

use std::path::PathBuf;
use std::time::Duration;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a director, an envoy or a client of the federated runtime failed.
///
/// Messages say what went wrong and what to do. None of them carries a key, a share or a
/// collaborator's private value.
///
/// `Debug` prints the message and then its causes, as `anyhow` does and in the format of
/// [`flspec::Error`], so that `fn main() -> Result<(), flspec_federated::Error>` shows what went
/// wrong rather than the variant's fields:
/// ```text
/// Error: could not start the client's async runtime: <what the OS said>
///
/// Caused by:
///     <the OS error's own cause, if it has one>
/// ```
/// A cause whose text the line before it already ends with (most messages cite their source)
/// is not repeated; several causes are numbered. Match on the variant to read its fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key file could not be read.
    #[error("could not read the {what} {path}: {source}")]
    ReadFile {
        /// What the file should hold (`CA certificate`, `private key`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The director's state folder (`--state`) could not be created, read or written.
    #[error("the director's state folder: {path}: {source}")]
    State {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another director holds the state folder.
    #[error(
        "the state folder {path} is in use by another director (its `lock` file is locked); stop that director, or give this one another `--state` folder"
    )]
    StateInUse {
        /// The folder.
        path: PathBuf,
    },
    /// A certificate, key or TLS setting is unusable.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// A TLS handshake failed: the peer refused our certificate or we refused theirs.
    #[error("TLS with {peer} failed: {reason}")]
    Tls {
        /// The peer (an address).
        peer: String,
        /// Why, in words.
        reason: String,
    },
    /// Creating certificates failed.
    #[error("could not create the certificate for {subject}: {source}")]
    Certificate {
        /// The certificate's subject.
        subject: String,
        /// What rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// Writing or reading a file other than a certificate failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The director could not listen on its address.
    #[error("could not listen on {addr}: {source}; is another director running on that port?")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The director could not be reached.
    #[error(
        "could not reach the director at {addr}: {reason}; check the address and that the director runs"
    )]
    Connect {
        /// The director's address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An address could not be parsed.
    #[error("invalid address `{addr}`: expected HOST:PORT")]
    Address {
        /// What was given.
        addr: String,
    },
    /// The director refused an envoy's registration.
    #[error("the director refused envoy `{name}`: {reason}")]
    Refused {
        /// The name the envoy asked for.
        name: String,
        /// Why.
        reason: String,
    },
    /// The director refused or could not answer a request.
    #[error("the director answered {code:?}: {message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The director's message.
        message: String,
    },
    /// Two participants were built from different versions of a flow.
    #[error(
        "flow `{flow}` has version {theirs} on {who} but version {ours} on {here}; \
         build every participant from the same source of the flow"
    )]
    FingerprintMismatch {
        /// The flow's name.
        flow: String,
        /// Where the first version is.
        here: String,
        /// Its fingerprint.
        ours: String,
        /// Where the other version is.
        who: String,
        /// Its fingerprint.
        theirs: String,
    },
    /// A flow is not registered where it is needed.
    #[error("flow `{flow}` is not registered on {who}; registered flows: {known}")]
    UnknownFlow {
        /// The flow's name.
        flow: String,
        /// The participant.
        who: String,
        /// The flows it has (comma-separated).
        known: String,
    },
    /// Peers speak different versions of the wire protocol.
    #[error(
        "{peer} speaks wire protocol version {theirs}, this build speaks {ours}; \
         upgrade the older side"
    )]
    ProtocolVersion {
        /// The peer.
        peer: String,
        /// Our version.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// An envoy was lost while it ran a step of a flow that does not tolerate dropouts.
    #[error(
        "envoy `{name}` was lost during step `{step}` of run `{run_id}`: {reason}; \
         the flow does not tolerate dropouts (`#[flow(tolerate_dropouts)]`), so the run ends: \
         restart the envoy and submit the run again"
    )]
    EnvoyLost {
        /// The envoy (collaborator) name.
        name: String,
        /// The step it was running.
        step: String,
        /// The run.
        run_id: String,
        /// What the director saw.
        reason: String,
    },
    /// A message is over the configured size limit.
    #[error(
        "{what} is {size} bytes, over the limit of {limit} bytes; raise `Limits::max_message_bytes` \
         on the director, the envoys and the client alike"
    )]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A message could not be decoded.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A run failed on the director.
    #[error("run `{run_id}` failed: {message}")]
    RunFailed {
        /// The run.
        run_id: String,
        /// The director's error.
        message: String,
    },
    /// A run was cancelled.
    #[error("run `{run_id}` was cancelled")]
    Cancelled {
        /// The run.
        run_id: String,
    },
    /// Something did not happen in time.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// What.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// The connection to the director was lost.
    #[error("lost the connection to the director: {0}")]
    Disconnected(String),
    /// The tokio runtime of a client could not be built.
    #[error("could not start the client's async runtime: {0}")]
    AsyncRuntime(#[source] std::io::Error),
    /// A blocking call of [`FederatedRuntime`](crate::FederatedRuntime) or
    /// [`RunHandle`](crate::RunHandle) was made on a thread that is inside a tokio runtime,
    /// where blocking would stall the runtime or panic.
    #[error(
        "`{call}` blocks, and was called on a thread inside a tokio runtime (an `async fn`, \
         `#[tokio::main]`, `#[tokio::test]`, a `spawn_blocking` closure or a `Runtime::enter` \
         guard), where it must not wait; in async code use the async client instead: \
         `AsyncClient::connect(..).await`, then `.submit(flow).await`, `.wait().await`, \
         `.status().await`, `.cancel().await`, `.envoys().await`; or make the blocking call \
         from a thread of your own (`std::thread::spawn`)"
    )]
    BlockingInAsyncContext {
        /// The blocking call, e.g. `FederatedRuntime::connect`.
        call: &'static str,
    },
    /// An [`AsyncClient`](crate::AsyncClient) was used outside a tokio runtime.
    #[error(
        "`{call}` needs a tokio runtime (the client's connections run on it); call it from \
         async code running on tokio (`#[tokio::main]`), or use the blocking \
         `FederatedRuntime`, which has its own"
    )]
    NoAsyncRuntime {
        /// The call, e.g. `AsyncClient::connect`.
        call: &'static str,
    },
    /// A certificate validity (in days) out of range.
    #[error(
        "a certificate cannot be valid for {days} days: give 1 to {max} days (`--days`, \
         `FederationSpec::days`)"
    )]
    Validity {
        /// What was asked for.
        days: u32,
        /// The maximum.
        max: u32,
    },
    /// The federation's CA in a certificate folder cannot be used or made.
    #[error("the federation's CA in {dir}: {reason}")]
    CertificateAuthority {
        /// The certificate folder.
        dir: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A SecAgg signing certificate or key was refused or could not be read
    /// ([`crate::signing`]).
    #[error(transparent)]
    Signing(#[from] crate::signing::SigningError),
}

impl std::fmt::Debug for Error {
    /// The message, then `\n\nCaused by:` and one indented line per source (numbered when
    /// there are several), leaving out a source whose text the line before already ends with:
    /// the format of `flspec::Error`'s `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.to_string();
        f.write_str(&message)?;
        let mut previous = message;
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !previous.ends_with(&text) {
                causes.push(text.clone());
            }
            previous = text;
            source = cause.source();
        }
        let indent = |text: &str| text.replace('\n', "\n       ");
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
}

impl From<Error> for flspec::Error {
    fn from(e: Error) -> Self {
        flspec::Error::Runtime(Box::new(e))
    }
}

impl Error {
    /// The error of a failed gRPC call, with TLS failures explained.
    pub(crate) fn from_status(
        status: &tonic::Status,
        peer: &str,
        probe: &crate::net::TlsProbe,
    ) -> Self {
        if let Some(reason) = probe.reason().or_else(|| crate::tls::explain_error(status)) {
            return Error::Tls {
                peer: peer.to_string(),
                reason,
            };
        }
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown
                if status.message().contains("transport") =>
            {
                Error::Connect {
                    addr: peer.to_string(),
                    reason: status.message().to_string(),
                }
            }
            code => Error::Rpc {
                code,
                message: status.message().to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose `Display` is `text` and whose source is `source`.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<Link>>);
    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Link {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn debug_prints_the_message_and_its_causes() {
        // A cause the message cites is not repeated: Debug is the message.
        let e = Error::ReadFile {
            what: "CA certificate",
            path: "certs/ca.pem".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(
            format!("{e:?}"),
            "could not read the CA certificate certs/ca.pem: no such file"
        );
        // A cause it does not cite follows under `Caused by:`.
        let e = Error::Io {
            path: "x".into(),
            source: std::io::Error::other(Link("outer", Some(Box::new(Link("inner", None))))),
        };
        assert_eq!(format!("{e:?}"), "x: outer\n\nCaused by:\n    inner");
        // Several are numbered, as anyhow does.
        let chain = Link(
            "a",
            Some(Box::new(Link("b", Some(Box::new(Link("c\nd", None)))))),
        );
        let e = Error::Io {
            path: "x".into(),
            source: std::io::Error::other(chain),
        };
        assert_eq!(
            format!("{e:?}"),
            "x: a\n\nCaused by:\n    0: b\n    1: c\n       d"
        );
        // Without a source, Debug is the message alone, not the struct.
        let e = Error::Cancelled {
            run_id: "run-1".into(),
        };
        assert_eq!(format!("{e:?}"), "run `run-1` was cancelled");
        assert_eq!(format!("{e:?}"), e.to_string());
    }
}

//! The one error type of the secure-aggregation module.

use super::ClientId;
use super::Security;
use super::Stage;

/// Everything that can go wrong in a secure-aggregation round.
///
/// Messages say what is wrong and what to do. They never contain keys, seeds, shares or
/// per-collaborator values: only ids, counts, indices and parameter values.
#[non_exhaustive]
#[derive(thiserror::Error)]
pub enum SecAggError {
    /// A configuration or quantizer parameter is out of range.
    #[error("invalid secure-aggregation parameter `{name}`: {problem}; {fix}")]
    InvalidParameter {
        /// The parameter to change.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// Fewer collaborators than the threshold are left: the round is aborted, no partial result.
    #[error(
        "round aborted at {stage}: {survived} collaborator(s) survived, below the threshold {threshold}; \
         no partial result is released (retry the round with more collaborators, or lower `threshold`, \
         but not to half of each group or below: see `secagg::min_safe_threshold`)"
    )]
    TooFewSurvivors {
        /// The round at which the count fell below the threshold.
        stage: Stage,
        /// How many collaborators were left.
        survived: usize,
        /// The configured threshold.
        threshold: usize,
    },
    /// SecAgg+: one collaborator's neighbourhood has too few surviving share holders.
    #[error(
        "round aborted at unmasking: only {survived} surviving neighbour(s) hold shares of client {owner}, \
         below the threshold {threshold}; no partial result is released (use a larger `k`, or a lower \
         `threshold` that is still more than half of k + 1)"
    )]
    TooFewShareHolders {
        /// The collaborator whose secret could not be rebuilt.
        owner: ClientId,
        /// How many of its share holders answered.
        survived: usize,
        /// The configured threshold.
        threshold: usize,
    },
    /// A client refused to reveal both shares (b and s) of one peer.
    #[error(
        "refused: the unmask request lists client {peer} both as a survivor and as dropped; revealing both \
         of its shares would expose its input, so this client aborts the round"
    )]
    BothSharesRequested {
        /// The peer named in both lists.
        peer: ClientId,
    },
    /// A client refused to go on with fewer than `threshold` peers.
    #[error(
        "refused: the {list} names {got} collaborator(s) in this client's neighbourhood (itself included), \
         below the threshold {threshold}; this client aborts the round to protect its input"
    )]
    TooFewPeers {
        /// Which list was too short.
        list: &'static str,
        /// How many it named.
        got: usize,
        /// The configured threshold.
        threshold: usize,
    },
    /// An encrypted share failed authentication.
    #[error(
        "the encrypted share from client {sender} to client {recipient} failed authentication (tampered, \
         replayed from another round or session, or meant for another recipient); it is rejected and \
         this client aborts the round"
    )]
    DecryptionFailed {
        /// Claimed sender.
        sender: ClientId,
        /// Claimed recipient.
        recipient: ClientId,
    },
    /// A peer's public key is invalid (low order: the key agreement is not contributory).
    #[error("client {peer} advertised a low-order public key; remove it from the round")]
    WeakKey {
        /// The peer with the bad key.
        peer: ClientId,
    },
    /// A method was called in the wrong order.
    #[error("`{call}` called in state `{state}`; the order is {order}")]
    OutOfOrder {
        /// The method called.
        call: &'static str,
        /// The state the machine was in.
        state: &'static str,
        /// The expected order of calls.
        order: &'static str,
    },
    /// A party aborted earlier; its state machine cannot be used any more.
    #[error("this party aborted earlier in the round (first error: {first}); start a new round")]
    Aborted {
        /// The first error, as text (it never holds secrets).
        first: String,
    },
    /// A message names a collaborator that is not in the round, or not where it may be.
    #[error("client {client} is not allowed here: {why}")]
    UnexpectedClient {
        /// The id found.
        client: ClientId,
        /// Why it is not allowed.
        why: &'static str,
    },
    /// A collaborator sent the same message twice.
    #[error("duplicate {message} from client {client}; each client sends one per round")]
    Duplicate {
        /// Which message.
        message: &'static str,
        /// Who sent it.
        client: ClientId,
    },
    /// A message belongs to another round.
    #[error("message for round {got} delivered to round {expected}; route messages by round")]
    WrongRound {
        /// This round.
        expected: u64,
        /// The message's round.
        got: u64,
    },
    /// A vector or field has the wrong length.
    #[error("{what} has length {got}, expected {expected}; {fix}")]
    LengthMismatch {
        /// What was measured.
        what: &'static str,
        /// The length found.
        got: usize,
        /// The length required.
        expected: usize,
        /// What to do.
        fix: &'static str,
    },
    /// An input value is NaN or infinite.
    #[error(
        "input value at index {index} is not finite; fix the update (e.g. a diverged model) before aggregating"
    )]
    NonFiniteInput {
        /// Index of the first bad value.
        index: usize,
    },
    /// A pre-quantized input is above the quantizer's top level, so sums could wrap.
    #[error(
        "quantized input at index {index} exceeds the quantizer's top level {max}; quantize with this \
         round's `Quantizer`"
    )]
    QuantizedOutOfRange {
        /// Index of the first bad value.
        index: usize,
        /// The top level.
        max: u32,
    },
    /// Shamir sharing: a parameter or a share set is invalid.
    #[error("shamir: {problem}")]
    Shamir {
        /// What is wrong.
        problem: String,
    },
    /// A message is malformed.
    #[error("malformed {what}: {problem}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A call of one security mode was made in a round of the other.
    #[error(
        "`{call}` is not available in a {mode} round; call {instead} (the mode is `Config::security`)"
    )]
    WrongSecurityMode {
        /// The method called.
        call: &'static str,
        /// The round's mode.
        mode: Security,
        /// What to call instead.
        instead: &'static str,
    },
    /// A signature does not verify against the signer's key in the [`super::VerifyingDirectory`].
    #[error(
        "refused: the signature of client {signer} on its {message} does not verify (forged, altered, \
         substituted, or replayed from another session or round); this client aborts the round"
    )]
    BadSignature {
        /// The claimed signer.
        signer: ClientId,
        /// What was signed.
        message: &'static str,
    },
    /// A signer has no key in the [`super::VerifyingDirectory`].
    #[error(
        "refused: client {signer} has no verifying key in this client's directory; add its certified \
         identity to the `VerifyingDirectory` (never take keys from the server)"
    )]
    UnknownSigner {
        /// The claimed signer.
        signer: ClientId,
    },
    /// A signed message belongs to another session.
    #[error(
        "refused: the {message} belongs to another session (replayed?); route messages by session id"
    )]
    WrongSession {
        /// Which message.
        message: &'static str,
    },
    /// Too few valid consistency-check signatures to reveal a share.
    #[error(
        "refused: only {got} valid signature(s) on the survivor set from the neighbourhood of client \
         {owner}, below the threshold {threshold}; this client reveals nothing and aborts the round"
    )]
    TooFewSignatures {
        /// The client whose share would have been revealed.
        owner: ClientId,
        /// Valid signatures from its closed neighbourhood.
        got: usize,
        /// The configured threshold.
        threshold: usize,
    },
    /// The survivor set of an unmask request differs from the one this client signed.
    #[error(
        "refused: {problem}; the server showed different survivor sets, so this client reveals nothing \
         and aborts the round"
    )]
    InconsistentSurvivors {
        /// What differs.
        problem: &'static str,
    },
    /// A message could not be encoded or decoded.
    #[error("message encoding failed")]
    Encoding(#[from] postcard::Error),
}

/// The module's result type.
pub type Result<T, E = SecAggError> = core::result::Result<T, E>;

/// Prints the message and its causes, as `Display` would plus `Caused by:` lines, so that
/// `fn main() -> Result<(), SecAggError>` shows what went wrong rather than the variant's fields.
impl core::fmt::Debug for SecAggError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::error::write_chain(self, f)
    }
}

impl SecAggError {
    pub(crate) fn param(
        name: &'static str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::InvalidParameter {
            name,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn shamir(problem: impl Into<String>) -> Self {
        Self::Shamir {
            problem: problem.into(),
        }
    }

    pub(crate) fn malformed(what: &'static str, problem: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SecAggError;

    #[test]
    fn debug_prints_the_message_not_the_fields() {
        let error = SecAggError::param("threshold", "2 is at most half of 4", "use 3 or more");
        let debug = format!("{error:?}");
        assert_eq!(debug, error.to_string());
        assert!(!debug.contains("InvalidParameter"), "{debug}");
        assert!(!debug.contains("problem:"), "{debug}");
    }
}

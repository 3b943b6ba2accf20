//! Exit codes (contract): 0 ok, 1 operation failed or refused, 2 bad usage or bad input.

use std::fmt;

/// Which kind of failure a CLI error is; attach with `Failure::usage(..)` or `.context(Failure::..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad usage or bad input (exit 2).
    BadInput(String),
    /// The operation failed or was refused (exit 1).
    Refused(String),
}

impl Failure {
    /// Bad usage or bad input: exit 2.
    pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
        Failure::BadInput(msg.into()).into()
    }
    /// Operation failed or refused: exit 1.
    pub fn refused(msg: impl Into<String>) -> anyhow::Error {
        Failure::Refused(msg.into()).into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadInput(m) | Failure::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

/// The exit code for an error: 2 when any error in the chain is bad input, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        matches!(e.downcast_ref::<Failure>(), Some(Failure::BadInput(_)))
            || e.downcast_ref::<crate::duration::DurationError>().is_some()
            || e.downcast_ref::<crate::credential::CredentialError>()
                .is_some()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(crate::input::is_too_large)
    });
    if bad_input { 2 } else { 1 }
}

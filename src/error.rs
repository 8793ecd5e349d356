//! The one error type of the core. Every message names the offending value, so the
//! Python layer can map it straight to `ValueError` / `KeyError` without rewording.

use std::fmt;

/// Why a registry change, a routing call or a configuration was refused.
///
/// A refused call leaves every structure exactly as it was before the call.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterError {
    /// An accelerator with this id is already registered.
    DuplicateId(u64),
    /// No accelerator with this id is registered.
    UnknownId(u64),
    /// A value outside its domain: `what` names the parameter, `detail` says why.
    InvalidArgument { what: &'static str, detail: String },
    /// A strategy (or hash kind, or objective) name that does not exist.
    UnknownName {
        kind: &'static str,
        name: String,
        expected: &'static [&'static str],
    },
    /// A release that would take an accelerator's load below zero.
    ReleaseUnderflow { id: u64, load: u64, cost: u64 },
}

impl RouterError {
    /// Shorthand for [`RouterError::InvalidArgument`].
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        RouterError::InvalidArgument {
            what,
            detail: detail.into(),
        }
    }

    /// True for the errors that Python reports as `KeyError` (a missing key).
    pub fn is_missing_key(&self) -> bool {
        matches!(self, RouterError::UnknownId(_))
    }
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::DuplicateId(id) => {
                write!(f, "accelerator id {id} is already registered")
            }
            RouterError::UnknownId(id) => write!(f, "unknown accelerator id {id}"),
            RouterError::InvalidArgument { what, detail } => write!(f, "invalid {what}: {detail}"),
            RouterError::UnknownName {
                kind,
                name,
                expected,
            } => write!(
                f,
                "unknown {kind} {name:?}; expected one of: {}",
                expected.join(", ")
            ),
            RouterError::ReleaseUnderflow { id, load, cost } => write!(
                f,
                "release of cost {cost} on accelerator {id} would take its load below zero \
                 (current load {load})"
            ),
        }
    }
}

impl std::error::Error for RouterError {}

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, RouterError>;

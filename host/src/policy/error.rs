//! How a policy fails: at load time ([`LoadError`], the module is refused)
//! or on a call ([`CallError`], the connection gets the fail mode). A
//! decision the guest made that limen will not carry out is neither: it is
//! a refusal, which `plan` owns; [`Failure`] is either of the last two.

use crate::outcome::PolicyFailure;
use crate::plan::Refusal;

/// Why a module could not become a policy. Nothing of it goes live.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The module file could not be read.
    #[error("P001 cannot read policy module {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not a valid Wasm component (or the engine could not be set up).
    #[error("P002 not a valid WebAssembly component: {0}")]
    Compile(String),
    /// A component, but not of the `limen:router/policy` world (missing or
    /// mistyped exports, imports limen does not provide).
    #[error(
        "P003 component does not implement limen:router/policy@{version}: {0}",
        version = super::INTERFACE_VERSION
    )]
    WrongWorld(String),
    /// Built for another version of limen's interface (`wit/`): another
    /// 0.x series, or a newer 0.2.x whose additions this limen lacks.
    #[error(
        "P006 the module was built for limen:router@{found}; this limen needs \
         limen:router@{needed}: rebuild it against this limen's wit/ (guest SDK, \
         componentize-py/-js or wit-bindgen with the same files)"
    )]
    WrongVersion {
        /// The version the module imports.
        found: String,
        /// The version limen provides.
        needed: &'static str,
    },
    /// `init` returned an error, or trapped.
    #[error("P004 policy init failed: {0}")]
    Init(String),
    /// The candidate made a decision other than a `[[policy.expect]]` sample
    /// says, or failed on one.
    #[error("P005 policy self-test failed: {0}")]
    SelfTest(String),
}

impl LoadError {
    /// The code that starts the message (`P003`), for machine-read answers.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "P001",
            LoadError::Compile(_) => "P002",
            LoadError::WrongWorld(_) => "P003",
            LoadError::WrongVersion { .. } => "P006",
            LoadError::Init(_) => "P004",
            LoadError::SelfTest(_) => "P005",
        }
    }

    /// How it counts in `limen_policy_failures_total`: a candidate whose
    /// code ran and failed is a policy failure; a module that never ran is not.
    pub fn kind(&self) -> Option<PolicyFailure> {
        match self {
            LoadError::Read { .. }
            | LoadError::Compile(_)
            | LoadError::WrongWorld(_)
            | LoadError::WrongVersion { .. } => None,
            LoadError::Init(_) => Some(PolicyFailure::Init),
            LoadError::SelfTest(_) => Some(PolicyFailure::Selftest),
        }
    }
}

/// Why one `route` call gave no decision. The instance it ran on is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No warm instance was free and a new one failed `init`.
    #[error("P004 policy init failed: {0}")]
    Init(String),
    /// The guest trapped.
    #[error("P010 policy trapped: {0}")]
    Trap(String),
    /// The call used its whole fuel budget.
    #[error("P011 policy ran out of fuel")]
    OutOfFuel,
    /// The call passed its wall-clock deadline.
    #[error("P012 policy missed its deadline")]
    Deadline,
    /// The guest tried to grow memory past its limit and then failed.
    #[error("P013 policy exceeded its memory limit")]
    Memory,
    /// The guest's answer is not a decision limen can read (an address
    /// that does not parse, a certificate name that is empty...).
    #[error("P014 policy decision refused: {0}")]
    InvalidDecision(String),
}

impl CallError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Init(_) => "P004",
            CallError::Trap(_) => "P010",
            CallError::OutOfFuel => "P011",
            CallError::Deadline => "P012",
            CallError::Memory => "P013",
            CallError::InvalidDecision(_) => "P014",
        }
    }

    /// How it counts in `limen_policy_failures_total`.
    pub fn kind(&self) -> PolicyFailure {
        match self {
            CallError::Init(_) => PolicyFailure::Init,
            CallError::Trap(_) => PolicyFailure::Trap,
            CallError::OutOfFuel => PolicyFailure::Fuel,
            CallError::Deadline => PolicyFailure::Deadline,
            CallError::Memory => PolicyFailure::Memory,
            CallError::InvalidDecision(_) => PolicyFailure::InvalidDecision,
        }
    }
}

/// Why a connection's decision did not stand: the policy gave none, or
/// limen refused the one it gave. Either way the fail mode applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The decision was refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Failure {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Call(error) => error.code(),
            Failure::Refused(refusal) => refusal.code(),
        }
    }

    /// How it counts in `limen_policy_failures_total`.
    pub fn kind(&self) -> PolicyFailure {
        match self {
            Failure::Call(error) => error.kind(),
            Failure::Refused(refusal) => refusal.kind(),
        }
    }
}

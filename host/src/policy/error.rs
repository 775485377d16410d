//! Every way a policy can fail, at load time or on a call.

/// A policy failure. On the connection path every variant leads to the
/// policy's fail mode; at load time it refuses the module.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The module file could not be read.
    #[error("P001 cannot read policy module {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not a valid Wasm component.
    #[error("P002 not a valid WebAssembly component: {0}")]
    Compile(String),
    /// A component, but not of the `limen:router/policy` world (missing or
    /// mistyped exports, imports limen does not provide).
    #[error("P003 component does not implement limen:router/policy@0.1.0: {0}")]
    WrongWorld(String),
    /// `init` returned an error, or trapped.
    #[error("P004 policy init failed: {0}")]
    Init(String),
    /// The candidate made a decision other than a `[[policy.expect]]` sample
    /// says, or failed on one.
    #[error("P005 policy self-test failed: {0}")]
    SelfTest(String),
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
    /// The decision cannot be carried out (bad address, not allowed, not supported).
    #[error("P014 policy decision refused: {0}")]
    InvalidDecision(String),
}

impl PolicyError {
    /// The code that starts the message (`P003`), for machine-read answers.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Read { .. } => "P001",
            PolicyError::Compile(_) => "P002",
            PolicyError::WrongWorld(_) => "P003",
            PolicyError::Init(_) => "P004",
            PolicyError::SelfTest(_) => "P005",
            PolicyError::Trap(_) => "P010",
            PolicyError::OutOfFuel => "P011",
            PolicyError::Deadline => "P012",
            PolicyError::Memory => "P013",
            PolicyError::InvalidDecision(_) => "P014",
        }
    }

    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Read { .. } | PolicyError::Compile(_) | PolicyError::WrongWorld(_) => {
                "load"
            }
            PolicyError::Init(_) => "init",
            PolicyError::SelfTest(_) => "selftest",
            PolicyError::Trap(_) => "trap",
            PolicyError::OutOfFuel => "fuel",
            PolicyError::Deadline => "deadline",
            PolicyError::Memory => "memory",
            PolicyError::InvalidDecision(_) => "invalid_decision",
        }
    }
}

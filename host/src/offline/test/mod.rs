//! `limen test`: a table of connections and the decisions a policy must make
//! for them, run offline against the real component.
//!
//! `file` reads a cases file (no I/O: text in, cases out), `run` puts each
//! case to the policy and compares, `report` prints the differences.

mod file;
mod report;
mod run;

pub use file::{Case, CaseError, CaseFile, CaseHello, Expected, Limits};
pub use report::report;
pub use run::{Outcome, run};

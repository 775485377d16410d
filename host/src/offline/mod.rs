//! The offline tools: `limen explain` (one decision) and `limen test`
//! (tables of cases). They call the same rules production does (`plan`,
//! the policy, the examiner of hellos), with no socket and no live state.

/// `limen explain`: one decision, offline.
pub mod explain;

/// `limen test`: tables of cases run against a policy, offline.
pub mod test;

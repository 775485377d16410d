//! Limits kept by limen, shared by every instance and surviving swaps and
//! reloads: a policy asks, limen counts.
//!
//! ```ignore
//! let key = format!("sni:{sni}");
//! if !limen_guest::limits::take(&key, 5, 5) {
//!     return Decision::reject(Alert::AccessDenied);
//! }
//! ```

/// Take one token from the bucket `key` (at most `burst` tokens, refilled
/// at `per_second`): true when the connection may go on.
pub fn take(key: &str, per_second: u32, burst: u32) -> bool {
    crate::bindings::limen::router::host::take(key, per_second, burst)
}

/// Take one of `max` slots named `key`, held until this connection ends:
/// true when one was free.
pub fn acquire(key: &str, max: u32) -> bool {
    crate::bindings::limen::router::host::acquire(key, max)
}

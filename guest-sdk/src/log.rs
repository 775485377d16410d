//! Write to limen's log. Lines are tagged with the policy by the host.

use crate::bindings::limen::router::host::{self, Level};

/// Log at trace level.
pub fn trace(message: &str) {
    host::log(Level::Trace, message);
}

/// Log at debug level (preferred on the connection path).
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

/// Log at info level.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// Log at error level.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

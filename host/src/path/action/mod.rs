//! Carrying out a decision: pass through, terminate, or reject; and the
//! copy loop the first two end in.

pub(crate) mod passthrough;
pub(crate) mod pipe;
pub(crate) mod proxy_header;
pub(crate) mod reject;
pub(crate) mod replay;
#[cfg(target_os = "linux")]
pub(crate) mod splice;
pub(crate) mod terminate;

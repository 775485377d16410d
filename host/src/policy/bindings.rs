//! The one `bindgen!` site: host bindings for `wit/`, the same file the guest
//! SDK's `generate!` reads.

#[allow(missing_docs, unreachable_pub)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "limen:router/policy",
    });
}

pub(crate) use generated::limen::router::host as wit_host;
pub(crate) use generated::limen::router::types as wit;
pub(crate) use generated::{Policy as PolicyWorld, PolicyPre};

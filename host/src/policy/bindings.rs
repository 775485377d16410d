//! The one `bindgen!` site: host bindings for `wit/`, the same file the guest
//! SDK's `generate!` reads.

#[allow(missing_docs, unreachable_pub)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "limen:router/policy",
        // Exports run on a fiber so that WASI calls a guest makes (a panic
        // message to stderr, a clock) use the async WASI host and never block
        // a runtime worker. limen's own `log` import stays synchronous.
        exports: { default: async },
        // `log` traps once the call's deadline has passed: copying its
        // message costs no fuel, so a guest looping on it would otherwise
        // outrun a deadline that is only checked at fuel yields.
        // The hello's getters trap when called outside a `route` call.
        imports: {
            "limen:router/host.log": trappable,
            "limen:router/host.take": trappable,
            "limen:router/host.acquire": trappable,
            "limen:router/types": trappable,
        },
        // The hello a `route` call reads through getters (`client_hello.rs`).
        with: { "limen:router/types.client-hello": super::HelloRef },
    });
}

/// The host side of the `client-hello` resource. A call has at most one
/// hello, held in the instance's state for the call (`HostState::hello`),
/// so the handle carries nothing: no table entry is made per call.
// `pub`: the generated code re-exports it (this module is private).
#[allow(unreachable_pub)]
pub struct HelloRef;

pub(crate) use generated::limen::router::host as wit_host;
pub(crate) use generated::limen::router::types as wit;
pub(crate) use generated::{Policy as PolicyWorld, PolicyPre};

//! The one store-data struct: everything a policy instance can reach.
//!
//! WASI is linked so guests built by other languages' toolchains (which
//! import it) instantiate, but the context grants nothing: no preopened
//! directories, no environment or arguments, no sockets, no stdin; stdout
//! and stderr go to limen's log.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{wit, wit_host};
use super::output::GuestOutput;

/// Longest log line a policy may write; the rest is cut.
const MAX_LOG_BYTES: usize = 1024;

/// Per-instance host state.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// Set when the limiter refused a `memory.grow`, so a trap that follows
    /// is reported as a memory failure rather than a generic trap.
    pub(crate) memory_refused: bool,
}

impl HostState {
    pub(crate) fn new(memory_limit: usize) -> HostState {
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::Stdout)
            .stderr(GuestOutput::Stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            memory_limit,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_limit;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables cost a pointer per slot; bound them by the same budget.
        Ok(desired.saturating_mul(8) <= self.memory_limit)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for HostState {}

impl wit_host::Host for HostState {
    fn log(&mut self, level: wit_host::Level, message: String) {
        let message = truncate(&message, MAX_LOG_BYTES);
        match level {
            wit_host::Level::Trace => tracing::trace!(target: "limen::policy", "{message}"),
            wit_host::Level::Debug => tracing::debug!(target: "limen::policy", "{message}"),
            wit_host::Level::Info => tracing::info!(target: "limen::policy", "{message}"),
            wit_host::Level::Warn => tracing::warn!(target: "limen::policy", "{message}"),
            wit_host::Level::Error => tracing::error!(target: "limen::policy", "{message}"),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

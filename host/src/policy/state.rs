//! The one store-data struct: everything a policy instance can reach.
//!
//! WASI is linked so guests built by other languages' toolchains (which
//! import it) instantiate, but the context grants nothing: no preopened
//! directories, no environment or arguments, no sockets, no stdin; stdout
//! and stderr go to limen's log.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::wit_host;
use super::output::{GuestOutput, LineBudget};
use crate::hello::HelloSummary;
use crate::policy::limit_table::{Held, LimitTable};

/// Longest log line a policy may write; the rest is cut.
const MAX_LOG_BYTES: usize = 1024;

/// Lines (log calls and stdout/stderr lines together) one call may write: a
/// policy that logs in a loop must not flood limen's log.
pub(crate) const LOG_LINES_PER_CALL: u32 = 32;

/// Host resources (WASI streams and the like) one instance may hold.
const MAX_RESOURCES: usize = 1024;

/// Per-instance host state.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// Set when the limiter refused a `memory.grow`, so a trap that follows
    /// is reported as a memory failure rather than a generic trap.
    pub(crate) memory_refused: bool,
    /// The largest linear memory the instance has grown to, in bytes.
    memory_high: usize,
    /// `memory_high` once `init` returned: what a fresh instance needs.
    memory_base: usize,
    /// Lines left in this call's budget, shared with the stdout/stderr streams.
    lines_left: LineBudget,
    /// What the guest said decided this call (`report-rule`), if it did.
    pub(crate) rule: Option<wit_host::RuleKind>,
    /// How many rules it said it holds (`report-routes`, from `init`).
    pub(crate) routes: Option<u32>,
    /// The hello of the `route` call running now (its getters read it).
    pub(crate) hello: Option<Arc<HelloSummary>>,
    /// Getter calls in this call, so the clock is read on every
    /// `CLOCK_EVERY`th (see `client_hello.rs`).
    pub(crate) reads: u32,
    /// The limits `take` and `acquire` use (the engine's) ...
    limit_table: Arc<LimitTable>,
    /// ... unless this call has limits apart (a shadow's: what it takes
    /// must not change what live connections read). Set for each call.
    pub(crate) apart: Option<Arc<LimitTable>>,
    /// Slots acquired during this call.
    pub(crate) held: Held,
}

impl HostState {
    pub(crate) fn new(memory_limit: usize, limit_table: Arc<LimitTable>) -> HostState {
        let lines_left = LineBudget::default();
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::stdout(lines_left.clone()))
            .stderr(GuestOutput::stderr(lines_left.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        HostState {
            wasi,
            table,
            memory_limit,
            memory_refused: false,
            memory_high: 0,
            memory_base: 0,
            lines_left,
            rule: None,
            routes: None,
            hello: None,
            reads: 0,
            limit_table,
            apart: None,
            held: Held::default(),
        }
    }

    /// Record what the instance holds after `init`; returns whether that is
    /// already past the recycling threshold (the limit is too tight).
    pub(crate) fn settle_memory(&mut self) -> bool {
        self.memory_base = self.memory_high;
        self.memory_base > self.memory_limit - self.memory_limit / 8
    }

    /// Whether the instance should be replaced before its next call: its
    /// memory is within an eighth of the limit (or, when a fresh instance is
    /// already that close, has used half the room it had left). Some guests'
    /// heaps only grow (a componentize-js 0.23 policy keeps ~2.4 KB per call,
    /// so with 16 MiB it would fail one call in ~2,000); a fresh instance
    /// costs far less than a failed connection.
    pub(crate) fn near_memory_limit(&self) -> bool {
        let top_eighth = self.memory_limit - self.memory_limit / 8;
        let half_the_room = self.memory_base + (self.memory_limit - self.memory_base) / 2;
        self.memory_high > top_eighth.max(half_the_room)
    }

    /// Reset per-call state before a call.
    /// A new call, due by `deadline`.
    pub(crate) fn start_call(&mut self, deadline: Instant) {
        self.memory_refused = false;
        self.rule = None;
        self.reads = 0;
        self.lines_left.refill(LOG_LINES_PER_CALL, deadline);
    }

    /// An import trapped the call because its deadline had passed.
    pub(crate) fn was_late(&self) -> bool {
        self.lines_left.was_late()
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
        if allowed {
            self.memory_high = self.memory_high.max(desired);
        }
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

impl HostState {
    /// The running call is past its deadline: host work a guest asks for
    /// costs no fuel, so each such import checks the clock itself.
    pub(super) fn late(&self) -> bool {
        self.lines_left.late()
    }
}

impl wit_host::Host for HostState {
    fn log(&mut self, level: wit_host::Level, message: String) -> wasmtime::Result<()> {
        if self.late() {
            wasmtime::bail!("policy missed its deadline");
        }
        if !self.lines_left.take() {
            return Ok(());
        }
        let message = truncate(&message, MAX_LOG_BYTES);
        match level {
            wit_host::Level::Trace => tracing::trace!(target: "limen::policy", "{message}"),
            wit_host::Level::Debug => tracing::debug!(target: "limen::policy", "{message}"),
            wit_host::Level::Info => tracing::info!(target: "limen::policy", "{message}"),
            wit_host::Level::Warn => tracing::warn!(target: "limen::policy", "{message}"),
            wit_host::Level::Error => tracing::error!(target: "limen::policy", "{message}"),
        }
        Ok(())
    }

    fn report_rule(&mut self, kind: wit_host::RuleKind) {
        self.rule = Some(kind);
    }

    fn report_routes(&mut self, count: u32) {
        self.routes = Some(count);
    }

    fn take(&mut self, key: String, per_second: u32, burst: u32) -> wasmtime::Result<bool> {
        if self.late() {
            wasmtime::bail!("policy missed its deadline");
        }
        let table = self.apart.as_ref().unwrap_or(&self.limit_table);
        Ok(table.take(&key, per_second, burst))
    }

    fn acquire(&mut self, key: String, max: u32) -> wasmtime::Result<bool> {
        if self.late() {
            wasmtime::bail!("policy missed its deadline");
        }
        let table = self.apart.as_ref().unwrap_or(&self.limit_table);
        Ok(table.acquire(&key, max, &mut self.held))
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

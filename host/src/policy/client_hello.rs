//! The `client-hello` resource's getters: a policy pays for what it reads.
//!
//! Each getter copies one field of the call's `HelloSummary` into the guest;
//! the fingerprints are computed by the first getter that asks (then kept
//! with the summary for the access log and the PROXY header). The handle is
//! a borrow the host made for this call only (`HelloRef`), so it cannot
//! outlive the call; between calls there is no hello, and a getter then
//! traps.

use wasmtime::component::Resource;

use super::bindings::{HelloRef, wit};
use super::state::HostState;
use crate::hello::{HelloSummary, Transport};

type Handle = Resource<HelloRef>;

/// Getter calls between two looks at the clock (a few µs of copying at most).
const CLOCK_EVERY: u32 = 16;

impl HostState {
    /// The call's hello. `route` is only given a handle while one is set.
    /// Copying a field costs no fuel, so a guest looping on getters is
    /// stopped here once its deadline has passed (as `log` is), within
    /// `CLOCK_EVERY` getters: a decision reading a field or two reads no clock.
    fn read<T>(&mut self, field: impl FnOnce(&HelloSummary) -> T) -> wasmtime::Result<T> {
        self.reads = self.reads.wrapping_add(1);
        if self.reads.is_multiple_of(CLOCK_EVERY) && self.late() {
            wasmtime::bail!("policy missed its deadline");
        }
        match self.hello.as_deref() {
            Some(hello) => Ok(field(hello)),
            None => Err(wasmtime::format_err!(
                "client-hello used outside its route call"
            )),
        }
    }
}

impl wit::Host for HostState {}

impl wit::HostClientHello for HostState {
    fn sni(&mut self, _: Handle) -> wasmtime::Result<Option<String>> {
        self.read(|h| h.sni().map(|name| name.as_ref().to_owned()))
    }

    fn server_name(&mut self, _: Handle) -> wasmtime::Result<Option<String>> {
        self.read(|h| h.server_name().map(str::to_owned))
    }

    fn alpn(&mut self, _: Handle) -> wasmtime::Result<Vec<Vec<u8>>> {
        self.read(|h| h.alpn().map(<[u8]>::to_vec).collect())
    }

    fn legacy_version(&mut self, _: Handle) -> wasmtime::Result<u16> {
        self.read(HelloSummary::legacy_version)
    }

    fn record_version(&mut self, _: Handle) -> wasmtime::Result<u16> {
        self.read(HelloSummary::record_version)
    }

    fn supported_versions(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.supported_versions().to_vec())
    }

    fn cipher_suites(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.cipher_suites().to_vec())
    }

    fn extensions(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.extensions().to_vec())
    }

    fn supported_groups(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.supported_groups().to_vec())
    }

    fn key_share_groups(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.key_share_groups().to_vec())
    }

    fn signature_algorithms(&mut self, _: Handle) -> wasmtime::Result<Vec<u16>> {
        self.read(|h| h.signature_algorithms().to_vec())
    }

    fn ech(&mut self, _: Handle) -> wasmtime::Result<bool> {
        self.read(HelloSummary::ech)
    }

    fn ech_outer(&mut self, _: Handle) -> wasmtime::Result<bool> {
        self.read(HelloSummary::ech_outer)
    }

    fn esni(&mut self, _: Handle) -> wasmtime::Result<bool> {
        self.read(HelloSummary::esni)
    }

    fn ja3(&mut self, _: Handle) -> wasmtime::Result<String> {
        self.read(|h| h.fingerprints().ja3.clone())
    }

    fn ja3_hash(&mut self, _: Handle) -> wasmtime::Result<String> {
        self.read(|h| h.fingerprints().ja3_hash.clone())
    }

    fn ja4(&mut self, _: Handle) -> wasmtime::Result<String> {
        self.read(|h| h.fingerprints().ja4.clone())
    }

    fn ja4_r(&mut self, _: Handle) -> wasmtime::Result<String> {
        self.read(|h| h.fingerprints().ja4_r.clone())
    }

    fn hello_length(&mut self, _: Handle) -> wasmtime::Result<u32> {
        self.read(HelloSummary::hello_length)
    }

    fn record_count(&mut self, _: Handle) -> wasmtime::Result<u32> {
        self.read(HelloSummary::record_count)
    }

    fn transport(&mut self, _: Handle) -> wasmtime::Result<wit::Transport> {
        match self.read(HelloSummary::transport)? {
            Transport::Tcp => Ok(wit::Transport::Tcp),
            Transport::Quic => Ok(wit::Transport::Quic),
            // `Transport` is non-exhaustive: a transport this interface
            // cannot name fails the call (the fail mode applies) rather than
            // passing for TCP and being routed as if it were.
            other => Err(wasmtime::format_err!(
                "transport {} has no name in limen:router@{}",
                other.as_str(),
                super::INTERFACE_VERSION
            )),
        }
    }

    /// The host made the borrow; nothing to free.
    fn drop(&mut self, _: Handle) -> wasmtime::Result<()> {
        Ok(())
    }
}

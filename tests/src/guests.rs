//! Guests for tests: the example policies built by `cargo xtask guests`, and
//! fault-injection guests written in WAT and encoded into components here, so
//! host tests need no Wasm toolchain.

use std::path::PathBuf;

use anyhow::Context;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

use crate::workspace_root;

/// Path of an example guest; panics with the fix if it was not built.
pub fn example(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("target/guests")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask guests` (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// Encode a core module (WAT) into a component of the `policy` world.
pub fn policy_component(wat: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(workspace_root().join("wit"))
        .context("parse wit/")?;
    let world = resolve.select_world(&[pkg], Some("policy"))?;
    encode(wat, &resolve, world)
}

/// Encode a core module against an arbitrary world given as WIT text.
pub fn component_of_world(wit: &str, world: &str, wat: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("other.wit", wit)?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    encode(wat, &resolve, world)
}

fn encode(wat: &str, resolve: &Resolve, world: wit_parser::WorldId) -> anyhow::Result<Vec<u8>> {
    let mut module = wat::parse_str(wat)?;
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        StringEncoding::UTF8,
        false,
    )?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}

/// A policy whose `init` succeeds and whose `route` runs `body` (WAT
/// instructions leaving the i32 address of a `decision` in memory).
///
/// Memory layout: the decision written by [`PASSTHROUGH_10_255_0_1`] sits at
/// 512; `init`'s `ok` result is the zeroed word at 256; the bump allocator
/// the host uses for arguments starts at 4096 and is reset after each call.
pub fn route_body(body: &str, data: &str) -> String {
    route_module("", 1, body, data)
}

/// [`route_body`] with `imports` (which a module declares first) and a
/// memory of `pages` 64 KiB pages.
pub fn route_module(imports: &str, pages: u32, body: &str, data: &str) -> String {
    format!(
        r#"(module
  {imports}
  (import "limen:router/types@0.2.0" "[resource-drop]client-hello" (func $drop_hello (param i32)))
  (memory (export "memory") {pages})
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (global.get $bump) (i32.const 16)) (i32.const 1)))
                        (i32.const -1))
              (then unreachable))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) (i32.const 256))
  (func (export "route") (param i32) (result i32)
    (global.set $bump (i32.const 4096))
    ;; A returning call must not hold the hello's borrow: the arguments are
    ;; the connection (48 bytes), then option<borrow<client-hello>> at 48
    ;; (discriminant) and 52 (handle).
    (if (i32.load8_u offset=48 (local.get 0))
      (then (call $drop_hello (i32.load offset=52 (local.get 0)))))
    {body})
  {data}
)"#
    )
}

/// A `passthrough` decision to 10.255.0.1:443 (outside any test allow-list),
/// at address 512: discriminant 0, then the upstream record at +4 (address
/// pointer and length; both options `none`).
pub const PASSTHROUGH_10_255_0_1: &str = r#"(data (i32.const 512) "\00\00\00\00\00\04\00\00\0e\00\00\00") (data (i32.const 1024) "10.255.0.1:443")"#;

/// A component that decides `terminate` with `certificate` towards
/// `upstream` for every connection, TLS or not. The `terminate` record sits
/// in the decision's payload at 516: the certificate string (pointer,
/// length), the upstream record at +8 (its address string first; the
/// options and flags zero: none), `upstream-tls` none at +32, `alpn` an
/// empty list at +48.
pub fn terminate_to(certificate: &str, upstream: &str) -> anyhow::Result<Vec<u8>> {
    let (cert_len, up_len) = (certificate.len(), upstream.len());
    anyhow::ensure!(cert_len < 256 && up_len < 256, "too long");
    let data = format!(
        r#"(data (i32.const 512) "\01\00\00\00\00\04\00\00\{cert_len:02x}\00\00\00\00\06\00\00\{up_len:02x}\00\00\00")
  (data (i32.const 1024) "{certificate}") (data (i32.const 1536) "{upstream}")"#
    );
    policy_component(&route_body("(i32.const 512)", &data))
}

/// A component that passes every connection through to `upstream`
/// (`host:port`), ignoring its config: the smallest real policy.
pub fn passthrough_to(upstream: &str) -> anyhow::Result<Vec<u8>> {
    let len = upstream.len();
    anyhow::ensure!(len < 256, "upstream too long");
    let data = format!(
        r#"(data (i32.const 512) "\00\00\00\00\00\04\00\00\{len:02x}\00\00\00") (data (i32.const 1024) "{upstream}")"#
    );
    policy_component(&route_body("(i32.const 512)", &data))
}

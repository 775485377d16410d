//! The `limen` binary: `check` refuses each kind of bad config or module with
//! a coded message, and `explain` prints one JSON object offline.

use std::path::{Path, PathBuf};

use limen_e2e::cli::{Ran, limen};
use limen_e2e::guests::{self, component_of_world, policy_component, route_body};
use limen_e2e::harness::config;

use crate::common::{config_file, limen_check, scratch};
use crate::faults::INIT_FAILS;

fn check(toml: &str) -> Ran {
    limen_check(toml).run().expect("run limen")
}

/// `limen explain --sni SNI [extra] --config FILE`, FILE holding `toml`:
/// the one JSON object it prints.
fn explain(sni: &str, extra: &[&str], toml: &str) -> serde_json::Value {
    let mut command = limen(["explain", "--sni", sni]);
    for arg in extra {
        command = command.arg(arg);
    }
    let out = command
        .arg("--config")
        .arg(config_file(toml))
        .run()
        .expect("run limen explain");
    assert!(out.ok, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("one JSON object")
}

fn module_file(bytes: &[u8]) -> PathBuf {
    let path = scratch("m.wasm");
    std::fs::write(&path, bytes).expect("write module");
    path
}

#[test]
fn check_accepts_a_good_config() {
    let toml = config(
        &guests::example("static-routes"),
        "default = \"127.0.0.1:9\"",
        "",
        "",
    );
    let out = check(&toml);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.starts_with("ok:"));
}

#[test]
fn check_refuses_bad_toml_with_line_and_column() {
    let toml = config(&guests::example("static-routes"), "", "timeout = 5ms", "");
    let out = check(&toml);
    assert!(!out.ok);
    let err = out.stderr;
    assert!(
        err.contains("E002") && err.contains("line 9, column"),
        "{err}"
    );
}

#[test]
fn check_refuses_a_missing_module() {
    let out = check(&config(Path::new("/nonexistent/policy.wasm"), "", "", ""));
    assert!(!out.ok);
    assert!(out.stderr.contains("P001"), "{}", out.stderr);
}

#[test]
fn check_refuses_a_core_module_and_a_component_of_another_world() {
    let core = wat::parse_str("(module)").expect("wat");
    let out = check(&config(&module_file(&core), "", "", ""));
    assert!(!out.ok);
    assert!(out.stderr.contains("P002"), "{}", out.stderr);

    let other = component_of_world(
        "package test:other; world other { export hello: func() -> u32; }",
        "other",
        r#"(module (func (export "hello") (result i32) (i32.const 7)))"#,
    )
    .expect("encode");
    let out = check(&config(&module_file(&other), "", "", ""));
    assert!(!out.ok);
    assert!(out.stderr.contains("P003"), "{}", out.stderr);
}

/// A module built against an earlier `wit/` is told which version limen
/// needs, not which function fails to type-check.
#[test]
fn check_refuses_a_module_built_for_interface_0_1_with_the_version_it_needs() {
    let old = component_of_world(
        "package limen:router@0.1.0;
         interface host { log: func(message: string); }
         world policy { import host; export init: func(config: string) -> result<_, string>; }",
        "policy",
        r#"(module
  (import "limen:router/host@0.1.0" "log" (func (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "init") (param i32 i32) (result i32) (i32.const 256)))"#,
    )
    .expect("encode");
    let out = check(&config(&module_file(&old), "", "", ""));
    assert!(!out.ok);
    let err = out.stderr;
    assert!(
        err.contains("P006")
            && err.contains("limen:router@0.1.0")
            && err.contains(&format!(
                "limen:router@{}",
                limen::policy::INTERFACE_VERSION
            )),
        "{err}"
    );
}

#[test]
fn check_refuses_a_failing_init() {
    let wat = route_body("unreachable", "").replace(
        "(func (export \"init\") (param i32 i32) (result i32) (i32.const 256))",
        INIT_FAILS,
    );
    let out = check(&config(
        &module_file(&policy_component(&wat).expect("encode")),
        "",
        "",
        "",
    ));
    assert!(!out.ok);
    let err = out.stderr;
    assert!(err.contains("P004") && err.contains("bad config"), "{err}");
}

#[test]
fn explain_prints_hello_and_decision() {
    let toml = config(
        &guests::example("static-routes"),
        "routes = [ { match = \"*.wild.test\", upstream = \"127.0.0.1:9452\" } ]",
        "",
        "",
    );
    let json = explain("Foo.Wild.Test", &["--alpn", "h2,http/1.1"], &toml);
    assert_eq!(json["hello"]["sni"], "foo.wild.test");
    assert_eq!(json["hello"]["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert_eq!(json["decision"]["action"], "passthrough");
    assert_eq!(json["decision"]["upstream"]["address"], "127.0.0.1:9452");
    assert_eq!(json["outcome"], json["decision"]);
    // The fingerprints: a rustls TLS 1.3 client with SNI and ALPN h2.
    let ja4 = json["hello"]["ja4"].as_str().expect("ja4");
    assert!(ja4.starts_with("t13d") && ja4.len() == 36, "{ja4}");
    assert_eq!(&ja4[8..10], "h2");
    let ja3_hash = json["hello"]["ja3_hash"].as_str().expect("ja3_hash");
    assert_eq!(ja3_hash.len(), 32);
    assert!(
        json["hello"]["ja3"]
            .as_str()
            .is_some_and(|s| s.starts_with("771,"))
    );
    assert!(
        json["hello"]["ja4_r"]
            .as_str()
            .is_some_and(|s| s.starts_with(&ja4[..10]))
    );

    let json = explain("other.test", &[], &toml);
    assert_eq!(
        json["decision"],
        serde_json::json!({ "action": "reject", "alert": "unrecognized_name" })
    );
}

/// `[certificates.secure]` with the given files, and a route naming `name`.
fn terminate_config(chain: &Path, key: &Path, name: &str) -> String {
    let route = format!(
        r#"routes = [ {{ match = "s.test", terminate = {{ certificate = "{name}", upstream = "127.0.0.1:9" }} }} ]"#
    );
    let certs = format!(
        "[certificates.secure]\nchain = \"{}\"\nkey = \"{}\"\n",
        chain.display(),
        key.display()
    );
    config(&guests::example("static-routes"), &route, "", &certs)
}

#[test]
fn check_validates_certificates_and_the_names_a_policy_uses() {
    let pki = limen_e2e::pki::Pki::new(&["ca.test"]).expect("pki");
    let dir = scratch("certs");
    let (chain, key) = pki
        .issue_files(&dir, "s", &["s.test"], None)
        .expect("issue");
    let (_, other_key) = pki
        .issue_files(&dir, "o", &["o.test"], None)
        .expect("issue");

    let out = check(&terminate_config(&chain, &key, "secure"));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("1 certificate(s)"));

    for (toml, code, words) in [
        (terminate_config(&chain, &key, "secur"), "E035", "`secur`"),
        (
            terminate_config(&dir.join("nope.pem"), &key, "secure"),
            "E030",
            "nope.pem",
        ),
        (
            terminate_config(&chain, &other_key, "secure"),
            "E032",
            "does not match",
        ),
        (
            terminate_config(&key, &key, "secure"),
            "E031",
            "no CERTIFICATE",
        ),
    ] {
        let out = check(&toml);
        let err = out.stderr;
        assert!(!out.ok, "{code}: accepted");
        assert!(err.contains(code) && err.contains(words), "{code}: {err}");
    }
}

#[test]
fn check_warns_on_an_expired_certificate_and_a_key_all_users_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("expired");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut params = rcgen::CertificateParams::new(vec!["s.test".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let (chain_path, key_path) = (dir.join("s.pem"), dir.join("s.key"));
    std::fs::write(&chain_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = check(&terminate_config(&chain_path, &key_path, "secure"));
    let err = out.stderr;
    assert!(out.ok, "{err}");
    assert!(err.contains("expired on"), "{err}");
    assert!(err.contains("readable by all users (mode 644)"), "{err}");
}

#[test]
fn explain_shows_a_terminate_decision_and_refuses_an_unknown_certificate() {
    let pki = limen_e2e::pki::Pki::new(&["ca.test"]).expect("pki");
    let (chain, key) = pki
        .issue_files(&scratch("certs"), "s", &["s.test"], None)
        .expect("issue");
    let json = explain("s.test", &[], &terminate_config(&chain, &key, "secure"));
    assert_eq!(json["decision"]["action"], "terminate");
    assert_eq!(json["decision"]["certificate"], "secure");
    assert_eq!(json["decision"]["upstream"]["address"], "127.0.0.1:9");
    assert_eq!(json["outcome"], json["decision"]);
    let json = explain("s.test", &[], &terminate_config(&chain, &key, "nope"));
    assert_eq!(json["outcome"]["action"], "reject");
    assert!(
        json["outcome"]["on_error"]
            .as_str()
            .is_some_and(|why| why.contains("no certificate named `nope`")),
        "{json}"
    );
}

/// `limen --version` names the release, the commit it was built from (12 hex
/// digits in a checkout) and the policy interface it serves.
#[test]
fn version_names_the_release_the_commit_and_the_interface() {
    let out = limen(["--version"]).run().expect("run limen --version");
    assert!(out.ok, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let first = lines.next().unwrap_or_default();
    let commit = first
        .strip_prefix(concat!("limen ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("first line: {first}"));
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "commit {commit}"
    );
    let wit = limen::policy::INTERFACE_VERSION;
    let series = wit
        .rsplit_once('.')
        .map(|(series, _)| series)
        .unwrap_or(wit);
    assert_eq!(
        lines.next().unwrap_or_default(),
        format!("policy interface: limen:router@{wit} (guests built for any {series}.x load)"),
    );
}

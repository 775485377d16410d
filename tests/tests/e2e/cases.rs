//! `limen test`, the real binary: the shared cases pass for the four
//! `regex-services` builds, every example passes its own cases, a wrong case
//! prints its diff, recorded hellos replay.

use std::path::Path;

use limen_e2e::cli::{Limen, limen};
use limen_e2e::harness::config;
use limen_e2e::{guests, workspace_root};

use crate::common::{config_file, scratch};
use crate::languages::REGEX_SERVICES;

/// `limen test --module M --config C`, the cases file to follow.
fn limen_test_of(module: &Path, config: &Path) -> Limen {
    limen(["test", "--module"])
        .arg(module)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
}

/// `limen test --module M --config C CASES`: (exit success, stdout, stderr).
fn limen_test(module: &Path, config: &Path, cases: &Path) -> (bool, String, String) {
    let out = limen_test_of(module, config)
        .arg(cases)
        .run()
        .expect("run limen test");
    (out.ok, out.stdout, out.stderr)
}

#[test]
fn the_shared_cases_pass_for_all_four_regex_services() {
    let dir = workspace_root().join("examples-guests/regex-services");
    for name in REGEX_SERVICES {
        for (config, cases, count) in [
            ("policy.toml", "cases.toml", 11),
            ("strict.toml", "strict-cases.toml", 3),
        ] {
            let (ok, stdout, stderr) =
                limen_test(&guests::example(name), &dir.join(config), &dir.join(cases));
            assert!(ok, "{name} {cases}:\n{stdout}{stderr}");
            assert!(
                stdout.ends_with(&format!("{count} case(s): {count} passed, 0 failed\n")),
                "{name} {cases}:\n{stdout}"
            );
        }
    }
}

#[test]
fn every_example_policy_passes_its_own_cases() {
    for name in [
        "static-routes",
        "ja4-gate",
        "misbehave",
        "misbehave-py",
        "misbehave-js",
    ] {
        let dir = workspace_root().join("examples-guests").join(name);
        let (ok, stdout, stderr) = limen_test(
            &guests::example(name),
            &dir.join("policy.toml"),
            &dir.join("cases.toml"),
        );
        assert!(ok, "{name}:\n{stdout}{stderr}");
        assert!(stdout.contains(" passed, 0 failed\n"), "{name}:\n{stdout}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = workspace_root().join("examples-guests/regex-services");
    let cases = scratch("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nsni = \"web-prod.apps.example\"\nexpect = \"passthrough:web.prod:443\"\n\
         rule = \"exact\"\n\n[[case]]\nsni = \"shop.eu.example\"\n\
         expect = \"passthrough:shop.eu.internal:8443\"\n",
    )
    .expect("write cases");
    for name in ["regex-services", "regex-services-py"] {
        let (ok, stdout, stderr) =
            limen_test(&guests::example(name), &dir.join("policy.toml"), &cases);
        assert!(!ok, "{name} passed a wrong case:\n{stdout}");
        assert!(
            stdout.contains(
                "FAIL    1 web-prod.apps.example\n      \
                 - expected: passthrough:web.prod:443\n      \
                 + got:      passthrough:web.prod.svc.cluster.local:443\n      \
                 - rule:     exact\n      + rule:     regex\n"
            ),
            "{name}:\n{stdout}"
        );
        assert!(stdout.contains("ok      2 shop.eu.example"), "{stdout}");
        assert!(
            stdout.ends_with("2 case(s): 1 passed, 1 failed\n"),
            "{stdout}"
        );
        assert!(stderr.contains("1 of 2 case(s) failed"), "{stderr}");
    }
}

/// Recorded hellos in a cases file: a post-quantum 1.8 KB hello from a file,
/// one split over two TLS records in hex, and a truncated one, which fails
/// with the reason rather than reaching the policy.
#[test]
fn cases_can_replay_recorded_hellos() {
    let shared = limen_e2e::shared_dir().join("peerbench/hello");
    let split = std::fs::read(shared.join("large2rec-b.test.bin")).expect("../shared hello");
    let hex: String = split.iter().map(|b| format!("{b:02x}")).collect();
    let cases = scratch("cases.toml");
    std::fs::write(
        &cases,
        format!(
            "[[case]]\nname = \"file\"\nhello_file = \"{}\"\nexpect = \"passthrough:127.0.0.1:9451\"\n\
             rule = \"exact\"\n\n\
             [[case]]\nname = \"two records\"\nhello_hex = \"{hex}\"\nexpect = \"passthrough:127.0.0.1:9452\"\n\n\
             [[case]]\nname = \"truncated\"\nhello_hex = \"{}\"\nexpect = \"passthrough:127.0.0.1:9452\"\n",
            shared.join("large-a.test.bin").display(),
            &hex[..hex.len() / 4 * 2],
        ),
    )
    .expect("write cases");
    let policy = scratch("policy.toml");
    std::fs::write(
        &policy,
        "default = \"127.0.0.1:9\"\nroutes = [\n  { match = \"a.test\", upstream = \"127.0.0.1:9451\" },\n  \
         { match = \"b.test\", upstream = \"127.0.0.1:9452\" },\n]\n",
    )
    .expect("write policy config");
    let (ok, stdout, stderr) = limen_test(&guests::example("static-routes"), &policy, &cases);
    assert!(
        !ok && stderr.contains("1 of 3 case(s) failed"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("ok      1 file: passthrough:127.0.0.1:9451 (exact"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok      2 two records: passthrough:127.0.0.1:9452"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL    3 truncated\n      - expected: passthrough:127.0.0.1:9452\n      + got:      no decision\n        (the hello is incomplete"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("3 case(s): 2 passed, 1 failed\n"),
        "{stdout}"
    );
}

/// With `--limen-config`, `limen test` plans each decision against limen's
/// rules as a live limen does: a route outside the allow-list, or to one of
/// limen's own listeners, is `error:invalid_decision` with the refusal;
/// without it, the policy's decision is all that is checked.
#[test]
fn limen_test_applies_limen_rules_when_given_its_config() -> anyhow::Result<()> {
    let dir = scratch("cases-limen-config");
    std::fs::create_dir_all(&dir)?;
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        r#"routes = [
  { match = "a.test", upstream = "127.0.0.1:9451" },
  { match = "out.test", upstream = "10.255.0.1:443" },
  { match = "own.test", upstream = "127.0.0.1:8443" },
]"#,
    )?;
    // The policy's config is the file above: limen's is for its rules.
    let limen_config = config_file(
        &config(&guests::example("static-routes"), "", "", "")
            .replace("127.0.0.1:0", "127.0.0.1:8443"),
    );
    let case =
        |sni: &str, expect: &str| format!("[[case]]\nsni = \"{sni}\"\nexpect = \"{expect}\"\n");
    let planned = dir.join("planned.toml");
    std::fs::write(
        &planned,
        [
            case("a.test", "passthrough:127.0.0.1:9451"),
            case("out.test", "error:invalid_decision"),
            case("own.test", "error:invalid_decision"),
        ]
        .concat(),
    )?;
    let run = |extra: &[&Path], cases: &Path| {
        let mut command = limen_test_of(&guests::example("static-routes"), &policy);
        for path in extra {
            command = command.arg("--limen-config").arg(path);
        }
        let out = command.arg(cases).run()?;
        anyhow::Ok((out.ok, out.stdout))
    };
    let (ok, stdout) = run(&[&limen_config], &planned)?;
    assert!(ok, "{stdout}");
    assert!(
        stdout.ends_with("3 case(s): 3 passed, 0 failed\n"),
        "{stdout}"
    );
    // The same cases without limen's config: the policy's own decisions.
    let (ok, stdout) = run(&[], &planned)?;
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("+ got:      passthrough:10.255.0.1:443")
            && stdout.contains("+ got:      passthrough:127.0.0.1:8443"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn the_shared_cases_pass_for_both_tenants() {
    let dir = workspace_root().join("examples-guests/tenants");
    for name in ["tenants", "tenants-py"] {
        let (ok, stdout, stderr) = limen_test(
            &guests::example(name),
            &dir.join("policy.toml"),
            &dir.join("cases.toml"),
        );
        assert!(ok, "{name}:\n{stdout}{stderr}");
        assert!(
            stdout.ends_with("8 case(s): 8 passed, 0 failed\n"),
            "{name}:\n{stdout}"
        );
    }
}

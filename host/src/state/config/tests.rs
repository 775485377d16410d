use super::*;

const GOOD: &str = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8443"
[policy]
module = "target/guests/static-routes.wasm"
fuel = 1_000_000
timeout = "5ms"
memory = "16MiB"
on_error = { fallback = "127.0.0.1:9000" }
[policy.config]
default = "127.0.0.1:9451"
routes = [ { match = "a.test", upstream = "127.0.0.1:9451" } ]
[upstreams]
allow = ["127.0.0.1/32"]
"#;

#[test]
fn the_documented_example_loads() {
    let config = Config::from_toml(GOOD).unwrap();
    assert_eq!(config.policy.memory, 16 << 20);
    assert_eq!(config.policy.timeout, Duration::from_millis(5));
    assert!(matches!(config.policy.on_error, FailMode::Fallback(_)));
    assert_eq!(config.limits.hello_max_bytes, 16 * 1024);
    let json: serde_json::Value = serde_json::from_str(&config.policy.config_json).unwrap();
    assert_eq!(json["routes"][0]["match"], "a.test");
}

#[test]
fn value_errors_have_line_and_column() {
    let text = GOOD.replace("timeout = \"5ms\"", "timeout = \"5 parsecs\"");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("line 8, column 11"), "{err}");
    let text = GOOD.replace("\"127.0.0.1/32\"", "\"*.nope\"");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(
        err.contains("line 15, column 9") && err.contains("allow rule"),
        "{err}"
    );
}

#[test]
fn cross_field_errors_are_named() {
    let text = format!("{GOOD}\n[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:1\"\n");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.starts_with("E003") && err.contains("public"), "{err}");
    let text = GOOD.replace(
        "on_error = { fallback = \"127.0.0.1:9000\" }",
        "on_error = { reject = \"nope\" }",
    );
    assert!(
        Config::from_toml(&text)
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
}

/// The configuration reference (docs/configuration.md) must load as written.
#[test]
fn the_configuration_reference_loads() {
    let reference = include_str!("../../../../docs/configuration.md");
    let block = reference
        .split("```toml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let config = Config::from_toml(block).unwrap_or_else(|e| panic!("docs/configuration.md: {e}"));
    assert!(config.allow.allows_addr("[fd00::1]:443".parse().unwrap()));
    assert!(config.allow.allows_name("a.b.svc.cluster.local", 443));
    let access = config.access_log.expect("access log on");
    assert_eq!(
        access.sink,
        AccessLogSink::File("/var/log/limen/access.log".into())
    );
    assert_eq!(
        (access.format, access.buffer),
        (AccessLogFormat::Text, 4096)
    );
    assert_eq!(config.metrics.upstream_labels, 64);
    let status = config.status.expect("[status] documented");
    assert_eq!(status.bind, "127.0.0.1:9902".parse().unwrap());
    assert_eq!(config.log_level.as_deref(), Some("info"));
}

#[test]
fn observability_values_are_checked() {
    let with = |extra: &str| Config::from_toml(&format!("{GOOD}\n{extra}"));
    let err = |extra: &str| with(extra).unwrap_err().to_string();
    assert!(err("[log]\nlevel = \"info,=\"").contains("log.level"));
    assert!(err("[access_log]\nbuffer = 0").contains("access_log.buffer"));
    assert!(err("[access_log]\nformat = \"xml\"").contains("E002"));
    assert!(err("[metrics]\nupstream_labels = 100000").contains("upstream_labels"));
    let stdout = with("[access_log]\npath = \"-\"")
        .unwrap()
        .access_log
        .unwrap();
    assert_eq!(stdout.sink, AccessLogSink::Stdout);
    assert!(with("").unwrap().access_log.is_none(), "off by default");
}

#[test]
fn the_status_page_is_loopback_only_unless_allowed() {
    let with = |extra: &str| Config::from_toml(&format!("{GOOD}\n{extra}"));
    assert!(with("").unwrap().status.is_none(), "not served by default");
    let status = with("[status]\nbind = \"127.0.0.1:9902\"").unwrap().status;
    assert_eq!(status.unwrap().bind, "127.0.0.1:9902".parse().unwrap());
    assert!(with("[status]\nbind = \"[::1]:9902\"").is_ok());
    let public = with("[status]\nbind = \"0.0.0.0:9902\"").unwrap_err();
    assert_eq!(public.code(), "E003");
    assert!(
        public.to_string().contains("status.bind `0.0.0.0:9902`")
            && public.to_string().contains("allow_public = true"),
        "{public}"
    );
    let allowed = with("[status]\nbind = \"0.0.0.0:9902\"\nallow_public = true");
    assert!(allowed.unwrap().status.is_some());
    assert!(
        with("[status]\nallow_public = true")
            .unwrap_err()
            .to_string()
            .contains("E002")
    );
}

#[test]
fn port_zero_may_repeat_but_a_real_address_may_not() {
    let two = |bind: &str| {
        GOOD.replace(
            "bind = \"127.0.0.1:8443\"",
            &format!("bind = \"{bind}\"\n[[listeners]]\nname = \"other\"\nbind = \"{bind}\""),
        )
    };
    assert!(Config::from_toml(&two("127.0.0.1:0")).is_ok());
    let err = Config::from_toml(&two("127.0.0.1:8443"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("used twice"), "{err}");
}

#[test]
fn admin_is_a_unix_socket_or_tcp_with_a_token_loopback_unless_made_public() {
    let with = |admin: &str| Config::from_toml(&format!("{GOOD}\n[admin]\n{admin}"));
    assert!(with("socket = \"/run/limen.sock\"").is_ok());
    // Loopback TCP is reachable by every local user: a token, always.
    let err = with("bind = \"127.0.0.1:9901\"").unwrap_err();
    assert_eq!(err.code(), "E003");
    assert!(err.to_string().contains("token_file"), "{err}");
    assert!(with("bind = \"127.0.0.1:9901\"\ntoken_file = \"t\"").is_ok());
    let err = with("bind = \"0.0.0.0:9901\"\ntoken_file = \"t\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_public"), "{err}");
    let err = with("bind = \"0.0.0.0:9901\"\nallow_public = true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("token_file"), "{err}");
    assert!(with("bind = \"0.0.0.0:9901\"\nallow_public = true\ntoken_file = \"t\"").is_ok());
    assert!(with("socket = \"a\"\nbind = \"127.0.0.1:1\"").is_err());
}

#[test]
fn expectations_name_known_listeners_and_canonical_decisions() {
    let with = |expect: &str| Config::from_toml(&format!("{GOOD}\n[[policy.expect]]\n{expect}"));
    let config = with("sni = \"a.test\"\ndecision = \"passthrough:127.0.0.1:9451\"").unwrap();
    let sample = &config.policy.expect[0];
    assert_eq!((&*sample.listener, sample.local.port()), ("public", 8443));
    let err = with("listener = \"nope\"\ndecision = \"reject:access_denied\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy.expect[0]") && err.contains("nope"),
        "{err}"
    );
    assert!(with("sni = \"a b\"\ndecision = \"reject:access_denied\"").is_err());
}

#[test]
fn pools_load_and_their_mistakes_are_named() {
    let pool = r#"
[upstreams.pools.web]
members = ["127.0.0.1:9451", { address = "backend.internal:443", weight = 2 }]
balance = "least_connections"
[upstreams.pools.web.health]
check = "tls"
check_sni = "web.internal"
"#;
    let text =
        format!("{GOOD}{pool}").replace("fallback = \"127.0.0.1:9000\"", "fallback = \"web\"");
    let config = Config::from_toml(&text).unwrap();
    let web = &config.pools[0];
    assert_eq!(
        (&*web.name, web.balance, web.retries, web.replay_requests),
        ("web", Balance::LeastConnections, 2, true)
    );
    let text = text.replace("balance = ", "replay_requests = false\nbalance = ");
    assert!(!Config::from_toml(&text).unwrap().pools[0].replay_requests);
    assert_eq!(web.members[1].weight, 2);
    assert_eq!(config.policy.rules.pools, vec![Arc::<str>::from("web")]);
    let refused = |from: &str, to: &str| {
        let text = format!("{GOOD}{pool}").replace(from, to);
        let error = Config::from_toml(&text).unwrap_err();
        (error.code(), error.to_string())
    };
    for (from, to, says) in [
        ("pools.web", "pools.\"w.eb\"", "pool name"),
        (
            "\"127.0.0.1:9451\",",
            "\"127.0.0.1:8443\",",
            "own listeners",
        ),
        (
            "\"127.0.0.1:9451\",",
            "\"127.0.0.1:9451\", \"127.0.0.1:9451\",",
            "twice",
        ),
        ("\"127.0.0.1:9451\",", "\"other\",", "not host:port"),
        ("weight = 2", "weight = 0", "weight"),
        ("check = \"tls\"", "check = \"tcp\"", "check_sni"),
        (
            "check = \"tls\"",
            "check = \"http\"",
            "\"tcp\", \"tls\" or \"quic\"",
        ),
        (
            "fallback = \"127.0.0.1:9000\"",
            "fallback = \"api\"",
            "no pool named `api`",
        ),
    ] {
        let (code, error) = refused(from, to);
        assert!(code == "E003" && error.contains(says), "{to}: {error}");
    }
    let (code, error) = refused("balance = \"least_connections\"", "balance = \"fastest\"");
    assert!(code == "E002" && error.contains("round_robin"), "{error}");
}

#[test]
fn acme_entries_need_the_acme_block_and_plain_names() {
    let acme = r#"
[acme]
directory = "https://ca.test/dir"
contact = ["mailto:ops@example.com"]
storage = "/var/lib/limen/acme"
renew_before = "25%"
[certificates.shop]
acme = ["shop.example.com", "www.shop.example.com"]
"#;
    let config = Config::from_toml(&format!("{GOOD}{acme}")).unwrap();
    let block = config.acme.as_ref().unwrap();
    assert_eq!(block.renew_before, RenewBefore::Fraction(0.25));
    assert!(matches!(
        &config.certificates[0].source,
        CertificateSource::Acme(names) if names.0.len() == 2
    ));
    assert_eq!(config.policy.rules.certificates, vec![Arc::from("shop")]);
    let refused = |text: String, what: &str| {
        let err = Config::from_toml(&text).unwrap_err();
        assert_eq!(err.code(), "E003", "{err}");
        assert!(err.to_string().contains(what), "{err}");
    };
    let without_block = format!("{GOOD}[certificates.shop]\nacme = [\"shop.example.com\"]\n");
    refused(without_block, "needs an [acme] section");
    let full = format!("{GOOD}{acme}");
    refused(
        full.replace("https://ca.test", "http://ca.test"),
        "https://",
    );
    refused(full.replace("mailto:ops", "ops"), "mailto:");
    refused(
        full.replace("\"shop.example.com\"", "\"*.example.com\""),
        "wildcard",
    );
    refused(full.replace("\"25%\"", "\"soon\""), "renew_before");
    let twice = format!("{full}[certificates.www]\nacme = [\"www.shop.example.com\"]\n");
    refused(twice, "is also in certificates.");
    // A file pair and `acme` in one entry is neither shape.
    let both = full.replace("acme = [", "chain = \"c.pem\"\nacme = [");
    assert_eq!(Config::from_toml(&both).unwrap_err().code(), "E002");
}

#[test]
fn a_source_replaces_the_module_and_is_checked() {
    let fleet = GOOD
        .replace("module = \"target/guests/static-routes.wasm\"\n", "")
        .replace(
            "[policy.config]\ndefault = \"127.0.0.1:9451\"\nroutes = [ { match = \"a.test\", upstream = \"127.0.0.1:9451\" } ]\n",
            "",
        );
    let source = "[source.etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/limen/prod/\"\nstate_dir = \"/var/lib/limen/state\"\n";
    let config = Config::from_toml(&format!("{fleet}{source}")).unwrap();
    let got = config.source.as_ref().unwrap();
    assert_eq!(got.prefix, "/limen/prod");
    // Where the bootstrap will put the live module (named by its hash).
    assert!(
        config
            .policy
            .module
            .starts_with("/var/lib/limen/state/modules")
    );
    assert!(!config.policy.watch);
    let refused = |text: String, what: &str| {
        let err = Config::from_toml(&text).unwrap_err();
        assert_eq!(err.code(), "E003", "{err}");
        assert!(err.to_string().contains(what), "{err}");
    };
    refused(format!("{GOOD}{source}"), "comes from etcd");
    refused(fleet.clone(), "policy.module is needed");
    refused(
        format!("{fleet}{}", source.replace("http://", "tcp://")),
        "http://",
    );
    refused(
        format!("{fleet}{}", source.replace("/limen/prod/", "limen")),
        "prefix",
    );
    refused(format!("{fleet}{source}user = \"u\"\n"), "password_file");
}

//! `limen explain --quic-file`: a QUIC client's captured Initials decided
//! offline exactly as a QUIC listener decides them (the same `plan`, so a
//! terminate is refused for QUIC there too).

use limen_e2e::cli::limen;
use limen_e2e::harness::quic_config;
use limen_e2e::shared_dir;

use crate::common::config_file;

fn config() -> std::path::PathBuf {
    let routes = r#"{ match = "a.test", upstream = "127.0.0.1:9461" },
  { match = "b.test", terminate = { certificate = "none", upstream = "127.0.0.1:9462" } }"#;
    config_file(&quic_config(0, true, routes, "", ""))
}

async fn explain(files: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut command = limen(["explain", "--config"]).arg(config());
    for file in files {
        let path = shared_dir().join("testdata/quic").join(file);
        command = command.arg("--quic-file").arg(path);
    }
    let out = command.finish().await?;
    assert!(out.ok, "{}", out.text());
    Ok(serde_json::from_str(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_initials_are_explained_as_a_quic_listener_decides() -> anyhow::Result<()> {
    // Chromium's two Initials, second first: one hello, on the QUIC listener.
    let report = explain(&["chromium148-pq-2of2.bin", "chromium148-pq-1of2.bin"]).await?;
    assert_eq!(report["hello"]["sni"], "a.test");
    assert_eq!(report["hello"]["transport"], "quic");
    assert!(
        report["hello"]["ja4"]
            .as_str()
            .is_some_and(|j| j.starts_with("q13"))
    );
    assert_eq!(report["connection"]["listener"], "quic");
    assert_eq!(report["outcome"]["action"], "passthrough", "{report}");
    // A terminate is refused for QUIC by the same plan, and on_error applies.
    let report = explain(&["aioquic172-small.bin"]).await?;
    assert_eq!(report["decision"]["action"], "terminate");
    let refused = report["outcome"]["on_error"].as_str().unwrap_or_default();
    assert!(refused.contains("not available for QUIC"), "{report}");
    // Half a hello is not decided.
    let report = explain(&["chromium148-pq-1of2.bin"]).await?;
    assert!(
        report["hello"].is_null() && report["decision"].is_null(),
        "{report}"
    );
    Ok(())
}

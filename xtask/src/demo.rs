//! `cargo xtask demo`: three TLS backends on 127.0.0.1:9451-9453 behind limen
//! on 127.0.0.1:8443, with a throwaway CA in `target/demo/ca.pem`.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use limen_e2e::{backend, pki::Pki};

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let pki = Pki::new(&[
        "a.test",
        "b.test",
        "*.wild.test",
        "*.rx.test",
        "blocked.test",
    ])?;
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = pki.server_config()?;
        for (name, port) in [("A", 9451), ("B", 9452), ("C", 9453)] {
            let addr = format!("127.0.0.1:{port}").parse()?;
            backend::tls_on(addr, name, server.clone())
                .await
                .with_context(|| format!("demo backend {name} cannot listen on {addr}"))?;
        }
        anyhow::Ok(())
    })?;
    let limen = root.join("target/debug/limen");
    let mut child = Command::new(&limen)
        .args(["run", "--config", "examples/demo.toml"])
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", limen.display()))?;
    let ca = dir.join("ca.pem");
    let ca = ca.display();
    println!(
        "\nlimen is routing 127.0.0.1:8443 (backends A, B, C on 9451-9453). Try:\n\n  \
         curl --cacert {ca} --resolve a.test:8443:127.0.0.1 https://a.test:8443/\n  \
         curl --cacert {ca} --resolve x.wild.test:8443:127.0.0.1 https://x.wild.test:8443/\n  \
         curl --cacert {ca} --resolve node7.rx.test:8443:127.0.0.1 https://node7.rx.test:8443/\n  \
         openssl s_client -connect 127.0.0.1:8443 -servername blocked.test -CAfile {ca} </dev/null   # alert access denied\n  \
         target/debug/limen explain --config examples/demo.toml --sni node7.rx.test\n\n\
         Ctrl-C stops limen and the backends.\n"
    );
    let status = child.wait()?;
    // The backends live in `runtime`, dropped on return.
    drop(runtime);
    anyhow::ensure!(
        status.success() || status.code().is_none(),
        "limen exited with {status}"
    );
    Ok(())
}

//! `cargo xtask demo`: three TLS backends on 127.0.0.1:9451-9453 and a
//! plaintext one on 9454 (the `demo-backends` binary of the test kit) behind
//! limen on 127.0.0.1:8443, with a throwaway CA and the certificate limen
//! serves for secure.test in `target/demo/`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// Kills the child when dropped, so Ctrl-C or an error never leaves it behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let ca = dir.join("ca.pem");
    let _ = std::fs::remove_file(&ca);
    let backends = Command::new(root.join("target/debug/demo-backends"))
        .arg(&ca)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start target/debug/demo-backends")?;
    let mut backends = Guard(backends);
    for _ in 0..50 {
        if ca.is_file() {
            break;
        }
        if let Some(status) = backends.0.try_wait()? {
            anyhow::bail!("demo backends exited ({status}); are ports 9451-9454 free?");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::ensure!(
        ca.is_file(),
        "demo backends did not write {} within 5 s",
        ca.display()
    );
    let limen = root.join("target/debug/limen");
    let mut limen = Guard(
        Command::new(&limen)
            .args(["run", "--config", "examples/demo.toml"])
            .current_dir(root)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", limen.display()))?,
    );
    let ca = ca.display();
    println!(
        "\nlimen is routing 127.0.0.1:8443 (backends A, B, C on 9451-9453, S on 9454). Try:\n\n  \
         curl --cacert {ca} --resolve a.test:8443:127.0.0.1 https://a.test:8443/\n  \
         curl --cacert {ca} --resolve x.wild.test:8443:127.0.0.1 https://x.wild.test:8443/\n  \
         curl --cacert {ca} --resolve node7.rx.test:8443:127.0.0.1 https://node7.rx.test:8443/\n  \
         curl --cacert {ca} --resolve secure.test:8443:127.0.0.1 https://secure.test:8443/      # terminated by limen\n  \
         curl --cacert {ca} --resolve reencrypt.test:8443:127.0.0.1 https://reencrypt.test:8443/  # terminated, re-encrypted to A\n  \
         openssl s_client -connect 127.0.0.1:8443 -servername blocked.test -CAfile {ca} </dev/null   # alert access denied\n  \
         target/debug/limen explain --config examples/demo.toml --sni node7.rx.test\n  \
         target/debug/limen status --admin target/demo/admin.sock\n  \
         curl -s http://127.0.0.1:9900/metrics | grep limen_tls_sni_route_total   # by listener and result\n  \
         curl -s http://127.0.0.1:9902/status.json   # the status page; http://127.0.0.1:9902/status in a browser\n  \
         target/debug/limen swap --admin target/demo/admin.sock --module target/guests/static-routes.wasm \\\n      \
         --config-json '{{\"default\":\"127.0.0.1:9452\"}}'   # every name now goes to B\n  \
         target/debug/limen swap --admin target/demo/admin.sock --module target/guests/regex-services-py.wasm \\\n      \
         --config-json '{{\"default\":\"127.0.0.1:9451\",\"rules\":[{{\"pattern\":\"^(?<n>node[0-9]+)\\\\.rx\\\\.test$\",\"upstream\":\"127.0.0.1:9453\"}}]}}'   # a Python policy\n  \
         kill -HUP $(pgrep -f 'limen run')   # re-read examples/demo.toml\n\n\
         Each finished connection prints an access log line below. Ctrl-C stops limen and the backends.\n"
    );
    let status = limen.0.wait()?;
    backends.0.kill().ok();
    anyhow::ensure!(status.success(), "limen exited with {status}");
    Ok(())
}

//! A deliberately misbehaving policy: try limen's sandbox and fail modes.
//!
//! The first label of the SNI picks the misbehaviour; anything else passes
//! through to `upstream`.
//!
//! | SNI          | what the guest does                         | limen sees        |
//! |--------------|---------------------------------------------|-------------------|
//! | `panic.*`    | panics (message written to stderr, abort)   | trap              |
//! | `loop.*`     | spins forever                               | fuel or deadline  |
//! | `sleep.*`    | sleeps 10 s in a WASI call                  | deadline          |
//! | `alloc.*`    | allocates 1 GiB                              | memory limit      |
//! | `print.*`    | prints to stdout and logs, then routes      | a normal decision |
//! | `open.*`     | routes to `10.255.0.1:443`                  | allow-list refusal |
//!
//! ```toml
//! [policy.config]
//! upstream = "127.0.0.1:9451"
//! ```

use limen_guest::{ClientHello, Connection, Decision, Policy, config_from_json, log};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    upstream: String,
}

/// The one route it knows.
pub struct Misbehave {
    upstream: String,
}

impl Policy for Misbehave {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        Ok(Misbehave {
            upstream: config.upstream,
        })
    }

    fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let sni = hello.and_then(|h| h.sni()).unwrap_or_default();
        let sni = sni.as_str();
        match sni.split('.').next() {
            Some("panic") => panic!("asked to panic for {sni}"),
            Some("loop") => spin(),
            Some("sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                Decision::passthrough(self.upstream.clone())
            }
            Some("alloc") => {
                let big = vec![1u8; 1 << 30];
                Decision::passthrough(format!("{}:{}", big.len(), big[12345]))
            }
            Some("print") => {
                println!("routing {sni}");
                log::info(&format!("routing {sni}"));
                Decision::passthrough(self.upstream.clone())
            }
            Some("open") => Decision::passthrough("10.255.0.1:443"),
            _ => Decision::passthrough(self.upstream.clone()),
        }
    }
}

/// Loops without the optimiser removing the loop.
fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

limen_guest::export_policy!(Misbehave);

//! A pool member as a process of its own, for tests that kill it
//! (`SIGKILL`: its sockets close as a crashed backend's do, listen queue
//! and all) or freeze it (`SIGSTOP`: connects still complete in its
//! kernel, nothing is answered). Listens on 127.0.0.1 (the port given, or
//! any), prints its address on stdout, and answers each connection its id
//! (one byte) and a FIN once it has 5 bytes (`backend::answer_id`).

use std::io::Write;

use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let id: u8 = args.next().unwrap_or_default().parse()?;
    let port: u16 = args.next().map_or(Ok(0), |p| p.parse())?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(limen_e2e::backend::answer_id(stream, id));
    }
}

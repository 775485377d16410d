//! Reject: one fatal alert record, then a clean close.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Ended, Notes};
use crate::decision::Alert;
use crate::observe::access;
use crate::outcome::End;

/// After the alert, how long limen keeps reading (and discarding) so that
/// closing with unread input does not turn into a RST that could destroy the
/// alert before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

/// The 7-byte alert record: the record-layer version echoes the client's so
/// that strict clients accept it.
pub(crate) fn alert_record(alert: Alert, record_version: u16) -> Option<[u8; 7]> {
    let code = alert.code()?;
    let [hi, lo] = record_version.to_be_bytes();
    // content type alert(21), version, length 2, level fatal(2), description.
    Some([21, hi, lo, 0, 2, 2, code])
}

/// Carry a reject decision out: the alert for a TLS client (a bare close
/// otherwise), then the linger.
pub(crate) async fn refuse(notes: &mut impl Notes, client: TcpStream, alert: Alert) -> Ended {
    notes.acting(access::ActionTaken::Reject(alert), None);
    let record_version = notes.hello().map(|h| h.record_version());
    // Noted before the linger, which a shutdown may cut.
    notes.ended((0, 0), End::Rejected);
    run(client, alert, record_version).await;
    ((0, 0), End::Rejected)
}

/// Send the alert (TLS clients only: `record_version` is `None` for plain
/// text, which gets a bare close) and close.
pub(crate) async fn run(mut client: TcpStream, alert: Alert, record_version: Option<u16>) {
    if let Some(record) = record_version.and_then(|v| alert_record(alert, v)) {
        let _ = client.write_all(&record).await;
    }
    close_gently(client).await;
}

/// FIN, then discard input for a moment: closing with unread input would
/// send a RST, and a RST can destroy what was just written.
pub(crate) async fn close_gently(mut client: TcpStream) {
    let _ = client.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            // Readiness and `try_read` spend no tokio budget: without this,
            // a client sending without pause would keep this task (and its
            // worker) past the linger.
            tokio::task::consume_budget().await;
            if client.readable().await.is_err() {
                break;
            }
            // Not held across the wait: a lingering connection's task
            // carries no buffer.
            let mut sink = [0u8; 512];
            match client.try_read(&mut sink) {
                Ok(0) => break,
                Err(error) if error.kind() != std::io::ErrorKind::WouldBlock => break,
                Ok(_) | Err(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_bytes() {
        assert_eq!(
            alert_record(Alert::UnrecognizedName, 0x0301),
            Some([21, 3, 1, 0, 2, 2, 112])
        );
        assert_eq!(
            alert_record(Alert::AccessDenied, 0x0303),
            Some([21, 3, 3, 0, 2, 2, 49])
        );
        assert_eq!(alert_record(Alert::Close, 0x0303), None);
    }
}

//! The hand-over's wire, both ends: a Unix `SOCK_SEQPACKET` pair between a
//! running limen and the one it starts from the binary on disk
//! (`upgrade.rs`), passed to the new process as `LIMEN_UPGRADE_FD`.
//!
//! Before the new process starts, the old one writes one record per group
//! of sockets: a tag, the group's name (a listener's, or an endpoint's:
//! `activation::ADMIN`...), and the sockets themselves (`SCM_RIGHTS`), then
//! an end record. The new process reads them at its first bind (into
//! `activation`'s pool) and answers one record: ready (its pid and
//! versions) or refused (why). Records keep their boundaries and carry
//! their sockets, so there is no framing to get wrong.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};
use socket2::Socket;

/// The variable naming the new process's end of the channel.
pub(crate) const ENV: &str = "LIMEN_UPGRADE_FD";

/// Sockets per record (the kernel's `SCM_MAX_FD`); a larger group takes
/// several records of one name.
const MAX_FDS: usize = 253;
/// Longest record: a tag and a name, or an answer.
const MAX_RECORD: usize = 16 * 1024;

const SOCKETS: u8 = b'S';
const END: u8 = b'E';
const READY: u8 = b'R';
const REFUSED: u8 = b'X';

/// What a new process that is ready says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    /// Its process id.
    pub pid: u32,
    /// The policy version it serves.
    pub version: String,
    /// Its `limen --version` (release and commit).
    pub binary: String,
}

/// A connected pair: (the old process's end, the new process's).
pub(crate) fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((ours, theirs))
}

/// Old side: write every group, then the end record. The records wait in
/// the channel until the new process reads them.
pub(crate) fn send(ours: &OwnedFd, groups: &[(Arc<str>, Vec<OwnedFd>)]) -> io::Result<()> {
    for (name, fds) in groups {
        for chunk in fds.chunks(MAX_FDS) {
            let borrowed: Vec<BorrowedFd<'_>> = chunk.iter().map(AsFd::as_fd).collect();
            let mut space =
                vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(chunk.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
                return Err(io::Error::other("socket group too large to send"));
            }
            let record = [&[SOCKETS][..], name.as_bytes()].concat();
            rustix::net::sendmsg(
                ours,
                &[IoSlice::new(&record)],
                &mut control,
                SendFlags::empty(),
            )?;
        }
    }
    rustix::net::send(ours, &[END], SendFlags::empty())?;
    Ok(())
}

/// Old side: the new process's one answer, within `timeout` (blocking:
/// run off the runtime). Its end closing first (it died) is a refusal too.
pub(crate) fn answer(ours: &OwnedFd, timeout: Duration) -> Result<Ready, String> {
    rustix::net::sockopt::set_socket_timeout(
        ours,
        rustix::net::sockopt::Timeout::Recv,
        Some(timeout),
    )
    .map_err(|e| format!("cannot wait for the new process: {e}"))?;
    let mut buffer = vec![0u8; MAX_RECORD];
    let deadline = std::time::Instant::now() + timeout;
    let n = loop {
        match rustix::net::recv(ours, &mut buffer, rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => break n,
            // A signal handled meanwhile: wait on, for what is left.
            Err(rustix::io::Errno::INTR) if std::time::Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let left = Some(left.max(Duration::from_millis(1)));
                let _ = rustix::net::sockopt::set_socket_timeout(
                    ours,
                    rustix::net::sockopt::Timeout::Recv,
                    left,
                );
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                return Err(format!("no answer within {timeout:?}"));
            }
            Err(error) => return Err(format!("cannot read its answer: {error}")),
        }
    };
    match buffer[..n].split_first() {
        Some((&READY, json)) => {
            serde_json::from_slice(json).map_err(|e| format!("bad answer: {e}"))
        }
        Some((&REFUSED, why)) => Err(String::from_utf8_lossy(why).into_owned()),
        None => Err("it exited before it was ready".into()),
        Some(_) => Err("bad answer".into()),
    }
}

/// New side, at the first bind: the groups the old process sent, by name
/// (none when this process was not started by an upgrade).
pub(super) fn receive() -> Vec<(String, Vec<Socket>)> {
    let mut channel = channel_end();
    let Some(ours) = channel.as_ref() else {
        return Vec::new();
    };
    let (groups, whole) = read_groups(ours);
    if !whole {
        tracing::warn!("upgrade: the hand-over channel failed; binding instead");
        *channel = None;
    }
    groups
}

/// Every group record up to the end record; `false` if the channel failed
/// first.
fn read_groups(ours: &OwnedFd) -> (Vec<(String, Vec<Socket>)>, bool) {
    let mut groups: Vec<(String, Vec<Socket>)> = Vec::new();
    let mut buffer = vec![0u8; MAX_RECORD];
    loop {
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let flags = RecvFlags::CMSG_CLOEXEC;
        let Ok(got) = rustix::net::recvmsg(ours, &mut iov, &mut control, flags) else {
            return (groups, false);
        };
        let mut sockets = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                sockets.extend(fds.map(Socket::from));
            }
        }
        match buffer[..got.bytes].split_first() {
            Some((&SOCKETS, name)) => {
                let name = String::from_utf8_lossy(name).into_owned();
                match groups.last_mut() {
                    Some((last, more)) if *last == name => more.extend(sockets),
                    _ => groups.push((name, sockets)),
                }
            }
            _ => return (groups, true),
        }
    }
}

/// New side: tell the old process this one is ready, or why it is not
/// (it then keeps serving). Nothing when not started by an upgrade.
pub fn report(outcome: Result<Ready, String>) {
    let Some(ours) = channel_end().take() else {
        return;
    };
    if let Err(error) = answer_on(&ours, outcome) {
        tracing::warn!("upgrade: cannot answer the old process: {error}");
    }
}

/// Write the one answer on `ours`, first reading what is left unread.
fn answer_on(ours: &OwnedFd, outcome: Result<Ready, String>) -> io::Result<()> {
    // Records this process never read (it refused before its first bind)
    // would make its end close with unread data: the old process would see
    // a reset instead of this answer. Read, and close, what is left.
    let mut buffer = [0u8; 256];
    loop {
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let flags = RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
        match rustix::net::recvmsg(ours, &mut iov, &mut control, flags) {
            Ok(got) if got.bytes > 0 => drop(control.drain().count()),
            _ => break,
        }
    }
    let record = match outcome {
        Ok(ready) => [
            &[READY][..],
            &serde_json::to_vec(&ready).unwrap_or_default(),
        ]
        .concat(),
        Err(why) => {
            let mut why = why.into_bytes();
            why.truncate(MAX_RECORD - 1);
            [&[REFUSED][..], &why].concat()
        }
    };
    rustix::net::send(ours, &record, SendFlags::empty())?;
    Ok(())
}

static CHANNEL: OnceLock<Mutex<Option<OwnedFd>>> = OnceLock::new();

/// This process's end of the hand-over channel, while it has one.
fn channel_end() -> MutexGuard<'static, Option<OwnedFd>> {
    let channel = CHANNEL.get_or_init(|| Mutex::new(from_env()));
    channel.lock().unwrap_or_else(|p| p.into_inner())
}

/// The descriptor `LIMEN_UPGRADE_FD` names, if it is a `SOCK_SEQPACKET`
/// socket (a stale variable naming anything else is ignored).
fn from_env() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(ENV).ok()?.parse().ok()?;
    if fd < 3 {
        return None;
    }
    // SAFETY: only looked at: its type is read through a borrow, and it is
    // owned below only if it is the channel the old process passed (a
    // SEQPACKET socket nothing else in this process opened).
    #[allow(unsafe_code)]
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if rustix::net::sockopt::socket_type(borrowed).ok()? != SocketType::SEQPACKET {
        return None;
    }
    // SAFETY: as above; `CHANNEL` is filled once, so it is wrapped once.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
    Some(owned)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Ready, answer, answer_on, channel, read_groups, send};

    #[test]
    fn groups_cross_with_their_sockets_and_the_answer_comes_back() {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let addrs: Vec<_> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        let fds = |range: std::ops::Range<usize>| -> Vec<OwnedFd> {
            listeners[range]
                .iter()
                .map(|l| l.try_clone().expect("dup").into())
                .collect()
        };
        let (ours, theirs) = channel().expect("pair");
        let groups = vec![
            (Arc::from("web"), fds(0..2)),
            (Arc::from("limen:admin"), fds(2..3)),
        ];
        send(&ours, &groups).expect("send");
        let (got, whole) = read_groups(&theirs);
        assert!(whole);
        let names: Vec<_> = got.iter().map(|(n, s)| (n.as_str(), s.len())).collect();
        assert_eq!(names, [("web", 2), ("limen:admin", 1)]);
        // The same kernel objects: bound where the originals are.
        let local = |s: &socket2::Socket| s.local_addr().expect("addr").as_socket();
        assert_eq!(local(&got[0].1[1]), Some(addrs[1]));
        assert_eq!(local(&got[1].1[0]), Some(addrs[2]));
        let ready = Ready {
            pid: 7,
            version: "abc@now".into(),
            binary: "0.1.0".into(),
        };
        answer_on(&theirs, Ok(ready)).expect("answer");
        let back = answer(&ours, Duration::from_secs(5)).expect("ready");
        assert_eq!((back.pid, back.version.as_str()), (7, "abc@now"));
    }

    #[test]
    fn a_refusal_before_reading_is_not_lost_and_silence_times_out() {
        let (ours, theirs) = channel().expect("pair");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        send(&ours, &[(Arc::from("web"), vec![listener.into()])]).expect("send");
        // Refused before its first bind: the records are still unread.
        answer_on(&theirs, Err("E010 cannot listen".into())).expect("answer");
        drop(theirs);
        let refused = answer(&ours, Duration::from_secs(5)).expect_err("refused");
        assert_eq!(refused, "E010 cannot listen");
        let (ours, _theirs) = channel().expect("pair");
        let silent = answer(&ours, Duration::from_millis(50)).expect_err("silent");
        assert!(silent.contains("no answer"), "{silent}");
    }
}

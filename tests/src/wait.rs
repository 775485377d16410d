//! Waiting for something that happens asynchronously to the test: a count
//! that lands after the connection's close, a swap, a process coming up.

use std::fmt::{self, Debug, Display};
use std::time::Duration;

use tokio::time::Instant;

/// How long a test waits for what should come promptly (an answer, a
/// count, a close): a broken router fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// The pause between two looks: short, so a wait ends soon after what it
/// waits for (some tests time it), and longer than a look's own cost.
pub const POLL: Duration = Duration::from_millis(10);

/// A wait that ran out of time: what was awaited, for how long, and what
/// the last look saw.
#[derive(Debug)]
pub struct Timeout<T> {
    /// What was awaited.
    pub what: String,
    /// How long the wait allowed.
    pub within: Duration,
    /// How many looks were taken.
    pub looks: u32,
    /// What the last look saw.
    pub last: T,
}

impl<T: Debug> Display for Timeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {:?} for {} ({} looks); last seen: {:?}",
            self.within, self.what, self.looks, self.last
        )
    }
}

impl<T: Debug> std::error::Error for Timeout<T> {}

/// Look with `probe` until what it sees satisfies `done`, for at most
/// `within`, pausing [`POLL`] between looks; returns what the satisfying
/// look saw.
///
/// The first look is taken at once. An error from the probe ends the wait
/// with that error (a look that can fail without meaning "not yet" must say
/// so in what it returns); running out of time ends it with a [`Timeout`]
/// (which `anyhow::Error::downcast` recovers) naming `what`, `within` and
/// the last value seen. The probe bounds its own looks.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> anyhow::Result<T>,
    done: impl Fn(&T) -> bool,
) -> anyhow::Result<T>
where
    T: Debug + Send + Sync + 'static,
{
    let deadline = Instant::now() + within;
    let mut looks = 0;
    loop {
        let seen = probe().await?;
        looks += 1;
        if done(&seen) {
            return Ok(seen);
        }
        if Instant::now() >= deadline {
            return Err(Timeout {
                what: what.to_owned(),
                within,
                looks,
                last: seen,
            }
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait (at most `within`) until a server a test started accepts
/// connections on `addr`.
pub async fn listening(addr: std::net::SocketAddr, within: Duration) -> anyhow::Result<()> {
    let connect = async || {
        let tried = tokio::net::TcpStream::connect(addr).await;
        Ok(tried.map(drop).map_err(|e| e.to_string()))
    };
    let what = format!("a listener on {addr}");
    let connected = eventually(within, &what, connect, Result::is_ok).await?;
    connected.map_err(anyhow::Error::msg)
}

/// For a wait whose caller judges what it gets with its own assertion: a
/// [`Timeout`] gives back the last value seen (`.or_else(last_seen)`); any
/// other error stays an error.
pub fn last_seen<T>(error: anyhow::Error) -> anyhow::Result<T>
where
    T: Debug + Send + Sync + 'static,
{
    error.downcast::<Timeout<T>>().map(|timeout| timeout.last)
}

/// A pipe read to its end off the runtime's threads, as text.
pub fn drain<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> impl Future<Output = anyhow::Result<String>> {
    let task = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        anyhow::Ok(String::from_utf8_lossy(&bytes).into_owned())
    });
    async move { task.await? }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_that_satisfies() -> anyhow::Result<()> {
        let mut n = 0;
        let seen = eventually(
            Duration::from_secs(5),
            "three",
            async || {
                n += 1;
                anyhow::Ok(n)
            },
            |n| *n == 3,
        )
        .await?;
        assert_eq!(seen, 3);
        Ok(())
    }

    #[tokio::test]
    async fn a_timeout_names_the_wait_and_carries_the_last_value() {
        let error = eventually(
            Duration::from_millis(200),
            "a miracle",
            async || anyhow::Ok(7u64),
            |n| *n == 8,
        )
        .await
        .expect_err("never 8");
        let message = error.to_string();
        assert!(
            message.starts_with("waited 200ms for a miracle (")
                && message.ends_with("looks); last seen: 7"),
            "{message}"
        );
        let timeout = error.downcast_ref::<Timeout<u64>>().expect("a Timeout");
        assert!(timeout.looks >= 2, "{}", timeout.looks);
        assert_eq!(last_seen::<u64>(error).ok(), Some(7));
    }

    #[tokio::test]
    async fn a_probe_error_ends_the_wait_at_once() {
        let started = Instant::now();
        let error = eventually(
            Duration::from_secs(5),
            "anything",
            async || -> anyhow::Result<u64> { anyhow::bail!("broken") },
            |_| true,
        )
        .await
        .expect_err("the probe failed");
        assert_eq!(error.to_string(), "broken");
        let still = last_seen::<u64>(error).expect_err("not a timeout");
        assert_eq!(still.to_string(), "broken");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

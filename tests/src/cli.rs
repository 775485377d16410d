//! The `limen` binary, run as an operator runs it: `check`, `explain`,
//! `test`, `swap`, `publish`, `fleet status`, and `run` as a child process.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `target/<profile>/limen`, beside the test binary's `deps/` directory
/// (`cargo xtask test`, or `cargo build --workspace`, builds it).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("limen");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build -p limen`",
        bin.display()
    );
    bin
}

/// One `limen ARGS` to run.
#[derive(Debug)]
pub struct Limen(Command);

/// `limen` with `args` (more with [`Limen::arg`]).
pub fn limen<I, S>(args: I) -> Limen
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(binary());
    command.args(args);
    Limen(command)
}

/// What a finished `limen` left: its exit and its output.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Ran {
    /// Both outputs, stdout first: what an operator's terminal shows.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Limen {
    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Limen {
        self.0.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I, S>(self, args: I) -> Limen
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Limen::arg)
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Limen {
        self.0.env(key, value);
        self
    }

    /// Run it to its end, blocking the thread.
    pub fn run(mut self) -> anyhow::Result<Ran> {
        let out = self.0.output()?;
        Ok(Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// [`Limen::run`] off the async runtime (tests on it must not block it).
    pub async fn finish(self) -> anyhow::Result<Ran> {
        tokio::task::spawn_blocking(move || self.run()).await?
    }

    /// Start it as a child process, its standard error to `log`.
    pub fn spawn(mut self, log: &Path) -> anyhow::Result<Child> {
        let log = std::fs::File::create(log)?;
        Ok(self.0.stderr(Stdio::from(log)).spawn()?)
    }
}

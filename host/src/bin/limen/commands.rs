//! The body of each subcommand. Errors become `anyhow` here, at the edge.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use limen::control::ControlHandle;
use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request};
use limen::control::handover;
use limen::offline::explain::{self, HelloSource};
use limen::policy::Policy;
use limen::state::tls::{ManagedKeys, Tls};
use limen::{Config, Server};

/// `limen explain` flags: exactly one hello source.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("hello").required(true).args(["sni", "hello_hex", "hello_file", "quic_file"]))]
pub(crate) struct ExplainArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Synthesise a ClientHello (a real rustls one) for this server name.
    #[arg(long)]
    sni: Option<String>,
    /// ALPN protocols to offer with --sni, comma separated.
    #[arg(long, value_delimiter = ',', requires = "sni")]
    alpn: Vec<String>,
    /// The ClientHello's TLS records, in hex.
    #[arg(long)]
    hello_hex: Option<String>,
    /// A file holding the ClientHello's TLS records.
    #[arg(long)]
    hello_file: Option<PathBuf>,
    /// A QUIC client's datagram, one per file as captured (repeat for a
    /// hello over several Initials, in any order): decided as on a QUIC
    /// listener.
    #[arg(long)]
    quic_file: Vec<PathBuf>,
    /// Client address the policy sees.
    #[arg(long, default_value = "192.0.2.1:50000")]
    client: SocketAddr,
}

pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let config =
        Config::load(path).inspect_err(|error| handover::report(Err(format!("{error:#}"))))?;
    // Connections run on the workers' runtimes (`workers`); this one only
    // takes signals, changes, admin and metrics requests.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Started by `limen upgrade`, the old process waits for this word:
        // it serves on if this one cannot start.
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(error) => {
                handover::report(Err(error.to_string()));
                return Err(error.into());
            }
        };
        handover::report(Ok(server.ready()));
        tokio::spawn(reload_on_sighup(path.to_owned(), server.handle()));
        tokio::spawn(upgrade_on_sigusr2(server.handle()));
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// SIGUSR2 (as for nginx): `limen upgrade`, the outcome logged.
async fn upgrade_on_sigusr2(handle: ControlHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        tracing::error!("cannot install the SIGUSR2 handler; upgrade with limen upgrade only");
        return;
    };
    while usr2.recv().await.is_some() {
        tracing::info!("SIGUSR2: upgrading");
        // The outcome is logged by the control task.
        let _ = handle.upgrade().await;
    }
}

/// SIGHUP: re-read the config file and apply it (or refuse it whole).
async fn reload_on_sighup(path: PathBuf, handle: ControlHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload with limen swap only");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP: reloading");
        // The outcome is logged (and counted) by the control task.
        let _ = handle.reload_from(&path).await;
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop limen with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT"),
        _ = term.recv() => tracing::info!("SIGTERM"),
    }
}

/// `check` and `explain` need only a small runtime to drive the policy.
pub(crate) fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn check(path: &Path, online: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let start = Instant::now();
    let runtime = small_runtime()?;
    match &config.source {
        // The policy is etcd's: `limen publish` checks it, each instance again.
        Some(source) => eprintln!(
            "limen: the policy comes from [source.etcd] {} (checked by limen publish)",
            source.prefix
        ),
        None => drop(runtime.block_on(Policy::load_offline(&config.policy))?),
    }
    if let Some(acme) = &config.acme {
        limen::control::acme::check(acme)?;
        if online {
            let answer = runtime.block_on(limen::control::acme::check_online(acme))?;
            eprintln!("limen: acme: {}: {answer}", acme.directory);
        }
    }
    // ACME names get empty slots: checking does not order anything.
    let tls = Tls::load(
        &config.certificates,
        &config.upstream_trust,
        &ManagedKeys::default(),
    )?;
    for warning in tls.warnings() {
        eprintln!("limen: warning: {warning}");
    }
    let unknown = config.unknown_certificates();
    if !unknown.is_empty() {
        bail!(
            "E035 policy.config names certificate(s) {} with no [certificates.NAME] entry",
            unknown
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if config.allow.is_empty() {
        eprintln!(
            "limen: warning: [upstreams] allow is empty, so every passthrough will be refused"
        );
    }
    println!(
        "ok: {} listener(s); {} certificate(s); policy {} loaded, type-checked and initialised in {} ms",
        config.listeners.len(),
        config.certificates.len(),
        config.policy.module.display(),
        start.elapsed().as_millis()
    );
    Ok(())
}

pub(crate) fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let source = if let Some(sni) = &args.sni {
        HelloSource::Sni {
            sni: sni.clone(),
            alpn: args.alpn.clone(),
        }
    } else if let Some(text) = &args.hello_hex {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        HelloSource::Bytes(hex::decode(text).context("--hello-hex is not hex")?)
    } else if let Some(file) = &args.hello_file {
        HelloSource::Bytes(
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
        )
    } else if !args.quic_file.is_empty() {
        let read = |file: &PathBuf| {
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
        };
        HelloSource::Quic(args.quic_file.iter().map(read).collect::<Result<_, _>>()?)
    } else {
        bail!("give --sni, --hello-hex, --hello-file or --quic-file");
    };
    let report = small_runtime()?.block_on(explain::explain(&config, source, args.client))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Where a running limen's admin endpoint is.
#[derive(Args)]
pub(crate) struct AdminArgs {
    /// Unix socket path, or loopback `host:port` ([admin] in the config).
    #[arg(long)]
    admin: String,
    /// File holding the admin token, if the endpoint requires one.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// `limen swap` flags.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["module", "promote", "abort"]))]
pub(crate) struct SwapArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The component to make live (or, with --shadow, to try).
    #[arg(long)]
    module: Option<PathBuf>,
    /// Its `init` config as JSON (default: the live policy's).
    #[arg(long, requires = "module")]
    config_json: Option<String>,
    #[command(flatten)]
    trial: TrialArgs,
}

/// A candidate on trial, for `limen swap` (one instance) and `limen
/// publish` (a fleet, through etcd).
#[derive(Args)]
pub(crate) struct TrialArgs {
    /// Shadow the module instead: it decides every connection again, off
    /// the connection's path, and only the comparison is kept (limen status,
    /// limen fleet status).
    #[arg(long, requires = "module")]
    pub(crate) shadow: bool,
    /// Put the module on canary: it decides this percentage of client
    /// addresses (a stable hash of each: the same clients on every
    /// instance), the live policy the rest; rolled back on its own if it
    /// fails too often ([policy.canary]).
    #[arg(long, requires = "module", value_name = "PERCENT")]
    pub(crate) canary: Option<f64>,
    /// Make the candidate on trial live (the published policy).
    #[arg(long)]
    pub(crate) promote: bool,
    /// Drop the candidate on trial.
    #[arg(long)]
    pub(crate) abort: bool,
}

pub(crate) fn swap(args: &SwapArgs) -> anyhow::Result<()> {
    let Some(path) = &args.module else {
        let request = if args.trial.promote {
            Request::Promote
        } else {
            Request::Abort
        };
        return admin_call(&args.admin, request, &[]);
    };
    let module =
        std::fs::read(path).with_context(|| format!("P001 cannot read {}", path.display()))?;
    let request = Request::Swap {
        module_len: module.len(),
        config_json: args.config_json.clone(),
        shadow: args.trial.shadow,
        canary: args.trial.canary,
    };
    admin_call(&args.admin, request, &module)
}

/// `limen renew` flags.
#[derive(Args)]
pub(crate) struct RenewArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The `[certificates.NAME]` entry (one with `acme = [...]`).
    certificate: String,
}

pub(crate) fn renew(args: &RenewArgs) -> anyhow::Result<()> {
    let request = Request::Renew {
        certificate: args.certificate.clone(),
    };
    admin_call(&args.admin, request, &[])
}

pub(crate) fn status(args: &AdminArgs) -> anyhow::Result<()> {
    admin_call(args, Request::Status, &[])
}

pub(crate) fn upgrade(args: &AdminArgs) -> anyhow::Result<()> {
    admin_call(args, Request::Upgrade, &[])
}

/// Print the answer as JSON; a refusal is also the command's error.
fn admin_call(args: &AdminArgs, request: Request, module: &[u8]) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let answer = small_runtime()?.block_on(client::call(&args.admin, token, request, module))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    match answer {
        Answer::Refused { error, .. } if error.starts_with("E043") => bail!("{error}"),
        Answer::Refused { error, .. } if error.starts_with("E070") => {
            bail!("refused, this limen serves on: {error}")
        }
        Answer::Refused { error, .. } => bail!("refused, the live policy stays: {error}"),
        Answer::Denied { error } => bail!("E042 denied: {error}"),
        _ => Ok(()),
    }
}

/// `limen test` flags.
#[derive(Args)]
pub(crate) struct TestArgs {
    /// The policy component.
    #[arg(long)]
    module: PathBuf,
    /// The policy's config (what `[policy.config]` holds), as TOML or, for a
    /// `.json` file, JSON. Default: `{}`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The limen config the policy runs under: each decision is also
    /// checked against its allow-list, listeners and certificate names, as
    /// `limen explain` and a live limen check it.
    #[arg(long)]
    limen_config: Option<PathBuf>,
    /// The cases file.
    cases: PathBuf,
}

pub(crate) fn test(args: &TestArgs) -> anyhow::Result<()> {
    use limen::offline::test::{self, CaseFile};
    use limen::state::config::PolicyConfig;

    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let file = CaseFile::parse(&read(&args.cases)?)
        .with_context(|| format!("in {}", args.cases.display()))?;
    let config_json = match &args.config {
        None => "{}".to_owned(),
        Some(path) if path.extension().is_some_and(|e| e == "json") => {
            let text = read(path)?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("E002 {} is not JSON", path.display()))?;
            text
        }
        Some(path) => {
            let table: toml::Table = toml::from_str(&read(path)?)
                .with_context(|| format!("E002 {} is not TOML", path.display()))?;
            serde_json::to_string(&table)?
        }
    };
    let mut settings = PolicyConfig::offline(args.module.clone(), config_json);
    settings.fuel = file.limits.fuel.unwrap_or(settings.fuel);
    settings.timeout = file.limits.timeout.unwrap_or(settings.timeout);
    if let Some(memory) = file.limits.memory {
        settings.memory = usize::try_from(memory).unwrap_or(usize::MAX);
    }
    let rules = match &args.limen_config {
        Some(path) => Some(limen::Config::load(path)?.policy.rules),
        None => None,
    };
    let base = args.cases.parent().unwrap_or(Path::new("."));
    let outcomes = small_runtime()?.block_on(async {
        let policy = Policy::load_offline(&settings).await?;
        anyhow::Ok(test::run(&policy, &file, base, rules.as_ref()).await)
    })?;
    let failed = test::report(&outcomes, &mut std::io::stdout().lock())?;
    if failed > 0 {
        bail!("{failed} of {} case(s) failed", outcomes.len());
    }
    Ok(())
}

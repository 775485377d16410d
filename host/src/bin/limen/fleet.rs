//! `limen publish` and `limen fleet status`: the operator's side of a fleet
//! that follows `[source.etcd]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use limen::control::fleet::{publish, status};
use limen::state::config::{EtcdTls, SourceConfig};

/// Which etcd, under which prefix, with which credentials.
#[derive(Args)]
pub(crate) struct EtcdArgs {
    /// etcd client URL (repeat for several endpoints).
    #[arg(long = "etcd", required = true)]
    endpoints: Vec<String>,
    /// The fleet's prefix (`[source.etcd] prefix`).
    #[arg(long)]
    prefix: String,
    /// etcd user (with --password-file).
    #[arg(long, requires = "password_file")]
    user: Option<String>,
    /// File holding the user's password.
    #[arg(long, requires = "user")]
    password_file: Option<PathBuf>,
    /// CA bundle for https:// endpoints.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (with --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

impl EtcdArgs {
    /// The same rules as `[source.etcd]`'s, for flags.
    fn source(&self) -> anyhow::Result<SourceConfig> {
        if !self.prefix.starts_with('/') || self.prefix.trim_end_matches('/').len() < 2 {
            bail!(
                "E003 --prefix `{}` must start with / (e.g. /limen/prod)",
                self.prefix
            );
        }
        let tls = self.ca.is_some() || self.cert.is_some();
        for endpoint in &self.endpoints {
            let https = endpoint.starts_with("https://");
            if (!https && !endpoint.starts_with("http://")) || https != tls {
                bail!("E003 --etcd `{endpoint}`: http://, or https:// with --ca (or --cert)");
            }
        }
        Ok(SourceConfig {
            endpoints: self.endpoints.clone(),
            prefix: self.prefix.trim_end_matches('/').to_owned(),
            state_dir: PathBuf::new(),
            id: None,
            user: self.user.clone().zip(self.password_file.clone()),
            tls: (self.ca.is_some() || self.cert.is_some()).then(|| EtcdTls {
                ca: self.ca.clone(),
                identity: self.cert.clone().zip(self.key.clone()),
            }),
        })
    }
}

/// `limen publish` flags.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["module", "promote", "abort"]))]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The component to publish (or, with --shadow / --canary, to try).
    #[arg(long)]
    module: Option<PathBuf>,
    /// As the candidate every instance tries (`P/candidate`), or its end.
    #[command(flatten)]
    trial: super::commands::TrialArgs,
    /// The policy file: `[config]` (what `init` gets) and `[[expect]]`
    /// samples, as TOML (or the same as JSON, for a `.json` file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The instances' limen config, to check the samples' decisions against
    /// their allow-list, listeners and certificates.
    #[arg(long)]
    limen_config: Option<PathBuf>,
}

/// `limen fleet` subcommands.
#[derive(Subcommand)]
pub(crate) enum FleetCommand {
    /// A table of instances and the policy each runs; exit 1 while they do
    /// not all run the published one.
    Status(EtcdArgs),
}

pub(crate) fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    let runtime = super::commands::small_runtime()?;
    let Some(module) = &args.module else {
        let source = args.etcd.source()?;
        if args.trial.promote {
            let revision = runtime.block_on(publish::promote(&source))?;
            println!(
                "{}",
                serde_json::json!({ "promoted": true, "revision": revision })
            );
        } else {
            runtime.block_on(publish::abort(&source))?;
            println!("{}", serde_json::json!({ "aborted": true }));
        }
        return Ok(());
    };
    let (config, expect) = match &args.config {
        Some(path) => policy_file(path)?,
        None => (serde_json::json!({}), Vec::new()),
    };
    let limen_config = match &args.limen_config {
        Some(path) => Some(limen::Config::load(path)?),
        None => None,
    };
    let request = publish::Request {
        source: args.etcd.source()?,
        module: module.clone(),
        config,
        expect,
        limen_config,
        trial: (args.trial.shadow || args.trial.canary.is_some())
            .then_some((args.trial.shadow, args.trial.canary)),
    };
    let published = runtime.block_on(publish::publish(request))?;
    println!("{}", serde_json::to_string_pretty(&published)?);
    Ok(())
}

pub(crate) fn fleet(command: &FleetCommand) -> anyhow::Result<bool> {
    let FleetCommand::Status(args) = command;
    let fleet = super::commands::small_runtime()?.block_on(status::read(&args.source()?))?;
    print!("{}", fleet.table());
    Ok(fleet.converged())
}

/// `[config]` and `[[expect]]` from a TOML (or JSON) file.
fn policy_file(path: &Path) -> anyhow::Result<(serde_json::Value, Vec<serde_json::Value>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)?
    } else {
        serde_json::to_value(toml::from_str::<toml::Table>(&text)?)?
    };
    let serde_json::Value::Object(mut table) = value else {
        bail!("{}: a table with [config] and [[expect]]", path.display());
    };
    let config = table
        .remove("config")
        .unwrap_or_else(|| serde_json::json!({}));
    let expect = match table.remove("expect") {
        Some(serde_json::Value::Array(samples)) => samples,
        None => Vec::new(),
        Some(_) => bail!("{}: expect must be an array of tables", path.display()),
    };
    if let Some(key) = table.keys().next() {
        bail!(
            "{}: unknown key `{key}` (only [config] and [[expect]])",
            path.display()
        );
    }
    Ok((config, expect))
}

//! The `limen` command: parse flags, set up logging, dispatch.

mod commands;
mod fleet;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{Parser, Subcommand, ValueEnum};

/// `limen --version`: the release, the commit it was built from, and the
/// policy interface (WIT package) it serves.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let wit = limen::policy::INTERFACE_VERSION;
    let series = wit.rsplit_once('.').map_or(wit, |(series, _)| series);
    format!(
        "{}\npolicy interface: limen:router@{wit} (guests built for any {series}.x load)",
        limen::control::binary_version(),
    )
});

#[derive(Parser)]
#[command(
    version = VERSION.as_str(),
    about = "A TLS SNI router with a WebAssembly routing policy"
)]
struct Cli {
    /// Log format (level from RUST_LOG, else the config's `[log] level`, else info).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the config, load and type-check the policy, run its init.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Also ask the `[acme]` directory (nothing is created there).
        #[arg(long)]
        online: bool,
    },
    /// Print the parsed hello and the policy's decision as JSON, offline.
    Explain(commands::ExplainArgs),
    /// Run a table of cases (CASES.toml) against a policy, offline; exit 1 on a mismatch.
    Test(commands::TestArgs),
    /// Make a module the live policy of a running limen (via its [admin] endpoint).
    Swap(commands::SwapArgs),
    /// Show a running limen's live policy version and listeners.
    Status(commands::AdminArgs),
    /// Start the binary on disk with a running limen's arguments and hand it the listening
    /// sockets; the old one then drains and exits (via its [admin] endpoint; or send SIGUSR2).
    Upgrade(commands::AdminArgs),
    /// Renew an ACME certificate of a running limen now (via its [admin] endpoint).
    Renew(commands::RenewArgs),
    /// Check a module locally, then publish it (and its config) to a fleet's etcd.
    Publish(fleet::PublishArgs),
    /// A fleet following [source.etcd].
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // RUST_LOG, when set, wins over the config's `[log] level` (a config that
    // does not load is reported by the command itself).
    let configured = match &cli.command {
        Command::Run { config } => limen::Config::load(config).ok().and_then(|c| c.log_level),
        _ => None,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(configured.as_deref().unwrap_or("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let result = match cli.command {
        Command::Run { config } => commands::run(&config),
        Command::Check { config, online } => commands::check(&config, online),
        Command::Explain(args) => commands::explain(&args),
        Command::Test(args) => commands::test(&args),
        Command::Swap(args) => commands::swap(&args),
        Command::Status(args) => commands::status(&args),
        Command::Renew(args) => commands::renew(&args),
        Command::Upgrade(args) => commands::upgrade(&args),
        Command::Publish(args) => fleet::publish(&args),
        // 0: every instance runs the published policy; 1: not (yet);
        // 2: the fleet could not be read. A deploy script waits on 1.
        Command::Fleet(command) => match fleet::fleet(&command) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(error) => {
                eprintln!("limen: {error:#}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("limen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `marketplace` binary: the command line; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{serve, settings::Sources, shutdown};
use clap::{Parser, Subcommand};
use marketplace::{
    Application, healthcheck,
    settings::{ENV_PREFIX, Overrides, Settings},
};

/// Bookshop's Marketplace: recommended books from the Recommendations service, as a web page
/// and as JSON.
///
/// Configuration layers, later wins: defaults, the --config file (or MARKETPLACE_CONFIG),
/// RECOMMENDATIONS_HOST, MARKETPLACE__SECTION__KEY variables, then --port and --recommendations.
#[derive(Debug, Parser)]
#[command(name = "marketplace", version)]
struct Cli {
    /// TOML configuration file
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP until SIGTERM or Ctrl-C (the default)
    Serve,
    /// GET the readiness URL; exit 0 if it answers 200
    Healthcheck {
        /// The URL to check [default: http://127.0.0.1:<server.port>/readyz]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this many milliseconds
        #[arg(long, value_name = "MS", default_value_t = 3000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources::from_process(ENV_PREFIX, cli.config);
    let settings = Settings::load(sources, &cli.overrides);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(
            "Marketplace",
            env!("CARGO_PKG_VERSION"),
            settings,
            |settings| async {
                let app = Application::build(settings).await?;
                app.run_until_stopped(shutdown::signal()).await
            },
        ),
        Command::Healthcheck { url, timeout_ms } => {
            let port = settings.map_or(5001, |s| s.server.port);
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/readyz"));
            serve::once(healthcheck::run(url, Duration::from_millis(timeout_ms)))
        }
    }
}

//! The `recommendations` binary: the command line; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{net::HostPort, serve, settings::Sources, shutdown};
use clap::{Parser, Subcommand};
use recommendations::{
    Application,
    catalog::{self, DEFAULT_MAX_BYTES},
    healthcheck,
    settings::{ENV_PREFIX, Overrides, Settings},
};

/// Bookshop's Recommendations service: the seed's gRPC API, served from a hot-reloaded
/// catalog.toml.
///
/// Configuration layers, later wins: defaults, the --config file (or RECOMMENDATIONS_CONFIG),
/// RECOMMENDATIONS__SECTION__KEY variables, then --catalog and --port.
#[derive(Debug, Parser)]
#[command(name = "recommendations", version)]
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
    /// Serve gRPC until SIGTERM or Ctrl-C (the default)
    Serve,
    /// Validate a catalog file: print books per category and exit 0, or the error and exit 1
    Check {
        /// The catalog file to check
        file: PathBuf,
    },
    /// Ask a running server's health service; exit 0 if it is SERVING
    Healthcheck {
        /// The server [default: 127.0.0.1:<server.health_port or server.port>]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<HostPort>,
        /// Give up after this many milliseconds
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources::from_process(ENV_PREFIX, cli.config);
    let settings = Settings::load(sources, &cli.overrides);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(
            "Recommendations",
            env!("CARGO_PKG_VERSION"),
            settings,
            |settings| async {
                let app = Application::build(settings).await?;
                app.run_until_stopped(shutdown::signal()).await
            },
        ),
        Command::Check { file } => {
            let max_bytes = settings.map_or(DEFAULT_MAX_BYTES, |s| s.catalog.max_bytes);
            serve::report(catalog::check(&file, max_bytes))
        }
        Command::Healthcheck { addr, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms);
            serve::once(healthcheck::run(addr, &settings, timeout))
        }
    }
}

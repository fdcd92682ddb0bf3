//! The `recommendations` binary: the command line; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{net::HostPort, serve, settings};
use clap::{Parser, Subcommand};
use recommendations::settings::{ENV_PREFIX, Settings};
use recommendations::{Application, catalog, healthcheck};

/// glibc's malloc keeps a large catalog's memory in the arena of the blocking thread that parsed
/// it; mimalloc gives it back once that thread exits (docs/benchmarks.md, "Reload memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookshop's Recommendations service: the tutorial's gRPC API, served from a hot-reloaded
/// catalog.toml.
///
/// Configuration layers, later wins: defaults, the --config file (or RECOMMENDATIONS_CONFIG),
/// RECOMMENDATIONS__SECTION__KEY variables, then --catalog and --port.
#[derive(Debug, Parser)]
#[command(name = "recommendations", version)]
#[command(mut_arg("port", |port| port.help("The port to serve on (server.port) [default: 50051]")))]
struct Cli {
    #[command(flatten)]
    settings: settings::Args,
    /// The catalog file (catalog.path) [default: catalog.toml]
    #[arg(long, value_name = "PATH")]
    catalog: Option<PathBuf>,
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
    let catalog = ("catalog.path", cli.catalog.map(|path| path.display().to_string()));
    let sources = cli.settings.sources(ENV_PREFIX, &[catalog]);
    let load = || settings::load::<Settings>(&sources);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run::<Application>("Recommendations", load),
        Command::Check { file } => {
            let max_bytes = load().map_or(catalog::DEFAULT_MAX_BYTES, |s| s.catalog.max_bytes);
            serve::report(catalog::check(&file, max_bytes))
        }
        Command::Healthcheck { addr, timeout_ms } => {
            serve::once(healthcheck::run(addr, &load(), Duration::from_millis(timeout_ms)))
        }
    }
}

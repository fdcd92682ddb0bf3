//! The `marketplace` binary: the command line; everything else is in the library.

use std::{process::ExitCode, time::Duration};

use bookshop_common::{net::HostPort, serve, settings};
use clap::{Parser, Subcommand};
use marketplace::settings::{ENV_PREFIX, Settings};
use marketplace::{Application, healthcheck};

/// A page makes and frees a few hundred small allocations, which mimalloc serves faster than
/// glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bookshop's Marketplace: recommended books from the Recommendations service, as a web page
/// and as JSON.
///
/// Configuration layers, later wins: defaults, the --config file (or MARKETPLACE_CONFIG),
/// RECOMMENDATIONS_HOST, MARKETPLACE__SECTION__KEY variables, then --port and
/// --recommendations.
#[derive(Debug, Parser)]
#[command(name = "marketplace", version)]
#[command(mut_arg("port", |port| port.help("The port to serve on (server.port) [default: 5001]")))]
struct Cli {
    #[command(flatten)]
    settings: settings::Args,
    /// The Recommendations service (recommendations.host and recommendations.port)
    /// [default: localhost:50051]
    #[arg(long, value_name = "HOST:PORT")]
    recommendations: Option<HostPort>,
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
    let flags = [
        ("recommendations.host", cli.recommendations.as_ref().map(|r| r.host.clone())),
        ("recommendations.port", cli.recommendations.as_ref().map(|r| r.port.to_string())),
    ];
    let sources = cli.settings.sources(ENV_PREFIX, &flags);
    let load = || settings::load::<Settings>(&sources);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run::<Application>("Marketplace", load),
        Command::Healthcheck { url, timeout_ms } => {
            let port = load().map_or(5001, |s| s.server.port);
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/readyz"));
            serve::once(healthcheck::run(url, Duration::from_millis(timeout_ms)))
        }
    }
}

//! The `marketplace` binary: the command line; everything else is in the library.

use std::{process::ExitCode, time::Duration};

use bookshop_common::{
    cli::{Cli, Flag},
    serve,
    telemetry::TraceSettings,
};
use clap::Subcommand;
use marketplace::{Application, healthcheck, settings::Settings};

/// The allocator: mimalloc, as in Recommendations. A page makes and frees a few hundred small
/// allocations (headers, the gRPC call, the rendered HTML), and glibc's malloc spent about 20k
/// instructions of a page's 200k on them (docs/benchmarks.md, "Instructions per page").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Bookshop's Marketplace: recommended books from the Recommendations \
service, as a web page and as JSON.\n\nConfiguration layers, later wins: defaults, the --config \
file (or MARKETPLACE_CONFIG), RECOMMENDATIONS_HOST, MARKETPLACE__SECTION__KEY variables, then \
--port and --recommendations.";

/// The flags beyond `--config` and `--port`.
const FLAGS: &[Flag] = &[Flag {
    long: "recommendations",
    value_name: "HOST:PORT",
    help: "The Recommendations service (recommendations.host and recommendations.port)",
    keys: &["recommendations.host", "recommendations.port"],
}];

fn main() -> ExitCode {
    let cli = Cli::<Command>::parse_for("marketplace", ABOUT, FLAGS);
    let settings = cli.settings::<Settings>();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let traces = TraceSettings::from_env("marketplace");
            serve::run::<Application>("Marketplace", settings, traces)
        }
        Command::Healthcheck { url, timeout_ms } => {
            let port = settings.map_or(5001, |s| s.server.port);
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/readyz"));
            serve::once(healthcheck::run(url, Duration::from_millis(timeout_ms)))
        }
    }
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

//! The `recommendations` binary: the command line; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{
    cli::{Cli, Flag},
    net::HostPort,
    serve,
    telemetry::TraceSettings,
};
use clap::Subcommand;
use recommendations::{
    Application,
    catalog::{self, DEFAULT_MAX_BYTES},
    healthcheck,
    settings::Settings,
};

/// The allocator: mimalloc, because glibc's malloc does not give back the memory of a large
/// catalog once a small one replaces it. A reload parses on a Tokio blocking thread, whose
/// allocations come from a glibc arena of its own, and freed they stay there: measured with
/// `bench-tool reload-memory` (docs/benchmarks.md, "Reload memory"), 5 s after a 16 MiB
/// catalog went out of service RSS is still 54 MB above its level before it came, and it stays
/// 25 MB above it for good. mimalloc gives all of it back (to within 2 MB) once that thread
/// exits, which an idle blocking thread does after 1 s (`thread_keep_alive` in common's serve
/// path; Tokio's default is 10 s). Peaks are within 20% of glibc's; idle RSS is 1 MB more. tikv-jemallocator was not taken: it
/// needs `make` to build, which the images' rust image lacks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `--help` says.
const ABOUT: &str = "Bookshop's Recommendations service: the seed's gRPC API, served from a \
hot-reloaded catalog.toml.\n\nConfiguration layers, later wins: defaults, the --config file (or \
RECOMMENDATIONS_CONFIG), RECOMMENDATIONS__SECTION__KEY variables, then --catalog and --port.";

/// The flags beyond `--config` and `--port`.
const FLAGS: &[Flag] = &[Flag {
    long: "catalog",
    value_name: "PATH",
    help: "The catalog file (catalog.path)",
    keys: &["catalog.path"],
}];

fn main() -> ExitCode {
    let cli = Cli::<Command>::parse_for("recommendations", ABOUT, FLAGS);
    let settings = cli.settings::<Settings>();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let traces = TraceSettings::from_env("recommendations");
            serve::run::<Application>("Recommendations", settings, traces)
        }
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

//! The `recommendations` binary: command line only; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{logging, settings::Sources, shutdown};
use clap::{Parser, Subcommand};
use recommendations::{
    Application,
    catalog::{self, Catalog},
    healthcheck,
    settings::{ENV_PREFIX, Overrides, Settings},
};
use tonic_health::pb::health_check_response::ServingStatus;

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
    /// The catalog file (catalog.path)
    #[arg(long, value_name = "PATH")]
    catalog: Option<PathBuf>,
    /// The gRPC port (server.port)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
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
        /// host:port of the server [default: 127.0.0.1:<server.health_port or server.port>]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Give up after this many milliseconds
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        catalog: cli.catalog.clone(),
        port: cli.port,
    };
    let settings = Settings::load(
        Sources::from_process(ENV_PREFIX, cli.config.clone()),
        &overrides,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("recommendations: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Check { file } => {
            let max_bytes = settings.map_or(catalog::DEFAULT_MAX_BYTES, |s| s.catalog.max_bytes);
            check(&file, max_bytes)
        }
        Command::Healthcheck { addr, timeout_ms } => {
            let addr = match (addr, settings.as_ref().ok()) {
                (Some(addr), _) => addr,
                // The plaintext health listener, when there is one, works with TLS on.
                (None, Some(s)) if s.server.health_port.is_some() => {
                    format!("127.0.0.1:{}", s.server.health_port.unwrap_or_default())
                }
                (None, Some(s)) if s.tls.enabled() => {
                    eprintln!(
                        "recommendations healthcheck: TLS is on; set server.health_port \
                         (a plaintext health-only listener) and the check uses it"
                    );
                    return ExitCode::FAILURE;
                }
                (None, s) => format!("127.0.0.1:{}", s.map_or(50051, |s| s.server.port)),
            };
            runtime.block_on(health(&addr, Duration::from_millis(timeout_ms)))
        }
        Command::Serve => {
            let _logs = logging::init();
            let settings = match settings {
                Ok(settings) => settings,
                Err(error) => {
                    tracing::error!(%error, "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                ?settings,
                "starting Recommendations"
            );
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "Recommendations stopped with an error");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(settings: Settings) -> Result<(), recommendations::StartError> {
    Application::build(settings)
        .await?
        .run_until_stopped(shutdown::signal())
        .await
}

#[allow(clippy::print_stdout)]
fn check(file: &std::path::Path, max_bytes: u64) -> ExitCode {
    match Catalog::load(file, max_bytes) {
        Ok(catalog) => {
            println!(
                "{}: OK, {} books ({}), hash {}",
                file.display(),
                catalog.len(),
                catalog.summary(),
                catalog.short_hash()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
async fn health(addr: &str, timeout: Duration) -> ExitCode {
    match healthcheck::check(addr, timeout).await {
        Ok(ServingStatus::Serving) => {
            println!("{addr}: SERVING");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{addr}: {}", status.as_str_name());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{addr}: {error}");
            ExitCode::FAILURE
        }
    }
}

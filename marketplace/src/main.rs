//! The `marketplace` binary: command line only; everything else is in the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bookshop_common::{logging, settings::Sources, shutdown};
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
    /// The HTTP port (server.port)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The Recommendations service (recommendations.host and recommendations.port)
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    recommendations: Option<(String, u16)>,
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

/// `host:port`, `[v6]:port` or `v6-literal:port` split at the last colon.
fn parse_host_port(value: &str) -> Result<(String, u16), String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {value:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port in {value:?}"))?;
    if host.is_empty() {
        return Err(format!("expected HOST:PORT, got {value:?}"));
    }
    Ok((host.to_owned(), port))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        port: cli.port,
        recommendations: cli.recommendations.clone(),
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
            eprintln!("marketplace: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Healthcheck { url, timeout_ms } => {
            let url = url.unwrap_or_else(|| {
                let port = settings.map_or(5001, |s| s.server.port);
                healthcheck::default_url(port)
            });
            runtime.block_on(health(&url, Duration::from_millis(timeout_ms)))
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
                "starting Marketplace"
            );
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "Marketplace stopped with an error");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(settings: Settings) -> Result<(), marketplace::StartError> {
    Application::build(settings)
        .await?
        .run_until_stopped(shutdown::signal())
        .await
}

#[allow(clippy::print_stdout)]
async fn health(url: &str, timeout: Duration) -> ExitCode {
    match healthcheck::check(url, timeout).await {
        Ok(200) => {
            println!("{url}: 200 ready");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{url}: HTTP {status}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_host_port;

    #[test]
    fn recommendations_flag_takes_host_and_port() {
        assert_eq!(parse_host_port("recs:6000"), Ok(("recs".into(), 6000)));
        assert_eq!(parse_host_port("[::1]:50051"), Ok(("::1".into(), 50051)));
        assert!(parse_host_port("recs").is_err());
        assert!(parse_host_port(":50051").is_err());
        assert!(parse_host_port("recs:http").is_err());
    }
}

//! The HTTP floor: a minimal salvo handler answering `GET /` with a fixed HTML page and
//! `GET /api/recommendations` with a fixed JSON body, each read once at start-up from a file
//! (the harness saves a real answer of the Marketplace there, so the sizes are the same). No
//! hoops, no templates, no gRPC call: what salvo itself costs on this machine.
//!
//! `salvo-floor --port N --page FILE --json FILE` listens on 127.0.0.1 until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use salvo::{
    Response, Router, Server, conn::TcpListener, handler, prelude::Listener, writing::Text,
};

#[derive(Debug, Parser)]
struct Cli {
    /// Port on 127.0.0.1
    #[arg(long)]
    port: u16,
    /// The body of `GET /`
    #[arg(long)]
    page: PathBuf,
    /// The body of `GET /api/recommendations`
    #[arg(long)]
    json: PathBuf,
}

/// A body fixed for the life of the process.
#[derive(Debug, Clone, Copy)]
enum Fixed {
    Html(&'static str),
    Json(&'static str),
}

#[handler]
impl Fixed {
    async fn handle(&self, res: &mut Response) {
        match *self {
            Fixed::Html(body) => res.render(Text::Html(body)),
            Fixed::Json(body) => res.render(Text::Json(body)),
        }
    }
}

fn read_static(path: &PathBuf) -> anyhow::Result<&'static str> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Read once and kept for the life of the process, like a `&'static str` literal.
    Ok(Box::leak(text.into_boxed_str()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let router = Router::new()
        .get(Fixed::Html(read_static(&cli.page)?))
        .push(Router::with_path("api/recommendations").get(Fixed::Json(read_static(&cli.json)?)));
    let acceptor = TcpListener::new(("127.0.0.1", cli.port))
        .try_bind()
        .await
        .context("cannot bind")?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(async move {
        bookshop_common::shutdown::signal().await;
        handle.stop_graceful(None);
    });
    server.try_serve(router).await.context("the server failed")
}

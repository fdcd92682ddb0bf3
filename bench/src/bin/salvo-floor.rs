//! The HTTP floor: a minimal salvo handler answering `GET /` with a fixed HTML page and
//! `GET /api/recommendations` with a fixed JSON body, each read once at start-up from a file
//! (the harness saves a real answer of the Marketplace there, so the sizes are the same). No
//! hoops, no templates, no gRPC call: what salvo itself costs on this machine.
//!
//! With `--grpc ADDR` each answer first makes one `Recommend` call (the seed's request, through
//! one tonic channel cloned per request, the answer checked and then dropped) to the server at
//! `ADDR`, normally the tonic floor: what a page with one gRPC round trip costs in the two
//! frameworks before any code of ours.
//!
//! `salvo-floor --port N --page FILE --json FILE [--grpc ADDR]` listens on 127.0.0.1 until
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use bookshop_bench::grpc;
use bookshop_proto::recommendations_client::RecommendationsClient;
use clap::Parser;
use salvo::{
    Response, Router, Server, conn::TcpListener, handler, http::StatusCode, prelude::Listener,
    writing::Text,
};
use tonic::transport::Channel;

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
    /// Make one `Recommend` call to this `host:port` before each answer
    #[arg(long)]
    grpc: Option<String>,
}

/// A body fixed for the life of the process.
#[derive(Debug, Clone, Copy)]
enum Body {
    Html(&'static str),
    Json(&'static str),
}

/// The handler: the body, and the gRPC client to call first when there is one.
#[derive(Debug, Clone)]
struct Fixed {
    body: Body,
    client: Option<RecommendationsClient<Channel>>,
}

#[handler]
impl Fixed {
    async fn handle(&self, res: &mut Response) {
        if let Some(client) = &self.client {
            let mut client = client.clone();
            match grpc::recommend(&mut client, grpc::seed_request()).await {
                Ok(answer) if answer.recommendations.len() == 3 => {}
                _ => {
                    res.status_code(StatusCode::SERVICE_UNAVAILABLE);
                    return;
                }
            }
        }
        match self.body {
            Body::Html(body) => res.render(Text::Html(body)),
            Body::Json(body) => res.render(Text::Json(body)),
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
    let client = cli
        .grpc
        .as_deref()
        .map(grpc::connect_lazy)
        .transpose()
        .context("invalid --grpc address")?;
    let fixed = |body| Fixed {
        body,
        client: client.clone(),
    };
    let router = Router::new()
        .get(fixed(Body::Html(read_static(&cli.page)?)))
        .push(
            Router::with_path("api/recommendations")
                .get(fixed(Body::Json(read_static(&cli.json)?))),
        );
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

//! The gRPC floor: a minimal tonic server whose `Recommend` answers every call with one fixed
//! `RecommendationResponse` of the same size as the real service's usual answer (the three
//! mystery books of `catalog.toml`). Nothing else: no health, reflection, timeout or
//! concurrency layers. It shows how close the Recommendations service gets to what tonic can
//! do on this machine. It runs on the runtime Recommendations runs on, the current-thread
//! scheduler when `TOKIO_WORKER_THREADS=1` (`bookshop_common::runtime`), so the comparison is
//! of the code, not of the scheduler.
//!
//! `tonic-floor --port N` listens on 127.0.0.1 until SIGTERM or Ctrl-C.

use anyhow::Context;
use bookshop_common::runtime::{self, OneThread};
use bookshop_proto::{
    BookRecommendation, RecommendationRequest, RecommendationResponse,
    recommendations_server::{Recommendations, RecommendationsServer},
};
use clap::Parser;
use tokio::net::TcpListener;
use tonic::{
    Request, Response, Status,
    transport::{Server, server::TcpIncoming},
};

#[derive(Debug, Parser)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[derive(Debug)]
struct Fixed(RecommendationResponse);

#[tonic::async_trait]
impl Recommendations for Fixed {
    async fn recommend(
        &self,
        _request: Request<RecommendationRequest>,
    ) -> Result<Response<RecommendationResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

fn answer() -> RecommendationResponse {
    let book = |id, title: &str, author: &str| BookRecommendation {
        id,
        title: title.to_owned(),
        author: author.to_owned(),
    };
    RecommendationResponse {
        recommendations: vec![
            book(1, "Мальтийский сокол", "Дэшил Хэммет"),
            book(2, "Убийство в Восточном экспрессе", "Агата Кристи"),
            book(3, "Собака Баскервилей", "Артур Конан Дойл"),
        ],
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime::build(OneThread::CurrentThread)?.block_on(serve(cli.port))
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .context("cannot bind")?;
    // The same socket option as the real service, so the comparison is of the code, not of
    // Nagle's algorithm.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(RecommendationsServer::new(Fixed(answer())))
        .serve_with_incoming_shutdown(incoming, bookshop_common::shutdown::signal())
        .await
        .context("the server failed")
}

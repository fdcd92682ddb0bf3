//! The gRPC floor: a bare tonic server on 127.0.0.1 answering `Recommend` with the three mystery
//! books, on the runtime Recommendations runs on (docs/configuration.md, Scheduler).

use bookshop_proto::{
    BookRecommendation as Book, RecommendationRequest as Asked, RecommendationResponse as Answer,
    recommendations_server::{Recommendations, RecommendationsServer},
};
use clap::Parser;
use tokio::{net::TcpListener, runtime::Builder};
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
struct Fixed(Answer);

#[tonic::async_trait]
impl Recommendations for Fixed {
    async fn recommend(&self, _: Request<Asked>) -> Result<Response<Answer>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

fn main() -> anyhow::Result<()> {
    let port = Cli::parse().port;
    // The current-thread scheduler for one thread; the multi-threaded one reads the variable.
    let threads = std::env::var("TOKIO_WORKER_THREADS");
    let mut runtime = match threads.as_deref().map(str::trim) {
        Ok("1") => Builder::new_current_thread(),
        _ => Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(serve(port))
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let stop = bookshop_bench::stop_signal()?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let book = |id, title: &str, author: &str| {
        let (title, author) = (title.to_owned(), author.to_owned());
        Book { id, title, author }
    };
    let recommendations = vec![
        book(1, "Мальтийский сокол", "Дэшил Хэммет"),
        book(2, "Убийство в Восточном экспрессе", "Агата Кристи"),
        book(3, "Собака Баскервилей", "Артур Конан Дойл"),
    ];
    let service = RecommendationsServer::new(Fixed(Answer { recommendations }));
    // The real service's socket option, so the comparison is not of Nagle's algorithm.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder().add_service(service);
    Ok(server.serve_with_incoming_shutdown(incoming, stop).await?)
}

//! The HTTP floor: a bare salvo handler on 127.0.0.1 answering `/` and `/api/recommendations`
//! with fixed bodies; with `--grpc`, only after one `Recommend` call (the seed's, checked).

use std::path::Path;

use anyhow::Context as _;
use bookshop_bench::Client;
use bookshop_proto::BookCategory;
use clap::Parser;
use salvo::{
    Response, Router, Server, conn::TcpListener, handler, http::StatusCode, prelude::Listener,
    writing::Text,
};

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long)]
    port: u16,
    /// The body of `GET /`
    #[arg(long)]
    page: String,
    /// The body of `GET /api/recommendations`
    #[arg(long)]
    json: String,
    /// Make one `Recommend` call to this host:port before each answer
    #[arg(long)]
    grpc: Option<String>,
}

/// A body fixed for the life of the process, its type, and the gRPC client to call first.
#[derive(Debug, Clone)]
struct Fixed {
    body: &'static str,
    kind: fn(&'static str) -> Text<&'static str>,
    client: Option<Client>,
}

#[handler]
impl Fixed {
    async fn handle(&self, res: &mut Response) {
        if let Some(mut client) = self.client.clone() {
            let request = bookshop_bench::request(BookCategory::Mystery, 3);
            let answer = client.recommend(request).await;
            let answer = answer.map(tonic::Response::into_inner);
            if answer.map_or(true, |answer| answer.recommendations.len() != 3) {
                res.status_code(StatusCode::SERVICE_UNAVAILABLE);
                return;
            }
        }
        res.render((self.kind)(self.body));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let stop = bookshop_bench::stop_signal()?;
    let endpoint = cli.grpc.as_deref().map(bookshop_bench::endpoint);
    let client = endpoint.transpose()?.map(|e| Client::new(e.connect_lazy()));
    let fixed = |path: &str, kind| -> anyhow::Result<Fixed> {
        let text = std::fs::read_to_string(Path::new(path)).context(path.to_owned())?;
        // Read once and kept for the life of the process, like a literal.
        let body = Box::leak(text.into_boxed_str());
        Ok(Fixed { body, kind, client: client.clone() })
    };
    let api = Router::with_path("api/recommendations").get(fixed(&cli.json, Text::Json)?);
    let router = Router::new().get(fixed(&cli.page, Text::Html)?).push(api);
    let acceptor = TcpListener::new(("127.0.0.1", cli.port)).try_bind().await?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(async move {
        stop.await;
        handle.stop_graceful(None);
    });
    Ok(server.try_serve(router).await?)
}

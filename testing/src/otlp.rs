//! An OTLP/HTTP receiver, for the trace tests.

use std::sync::{Arc, Mutex, PoisonError};

/// What an [`otlp_http_receiver`] was sent: the path and body of each request, in order.
pub type Received = Arc<Mutex<Vec<(String, hyper::body::Bytes)>>>;

/// An OTLP/HTTP receiver (a collector's `POST /v1/traces`) on 127.0.0.1:0: its address, and
/// every request it is sent, each answered 200 with an empty body.
pub async fn otlp_http_receiver() -> (std::net::SocketAddr, Received) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};

    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a listener on 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    let received = Received::default();
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            let answer = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let kept = kept.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await?.to_bytes();
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    kept.push((path, body));
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), answer),
            );
        }
    });
    (addr, received)
}

//! HTTP and Server-Sent Events through reqwest, and what a page shows.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    async fn of(response: reqwest::Response) -> reqwest::Result<Reply> {
        let headers = response.headers().iter();
        let headers = headers
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Ok(Reply { status: response.status().as_u16(), headers, body: response.text().await? })
    }
}

/// One GET over a connection of its own.
pub async fn get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
    let reply = try_get(addr, path_and_query, headers).await;
    reply.unwrap_or_else(|error| panic!("GET {path_and_query}: {error}"))
}

pub async fn try_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    Reply::of(KeptAlive::open().send(addr, path_and_query, headers).await?).await
}

/// A client whose HTTP/1.1 connection is kept open across requests, as browsers keep them.
pub struct KeptAlive(reqwest::Client);

impl KeptAlive {
    pub fn open() -> KeptAlive {
        KeptAlive(
            reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).build().unwrap(),
        )
    }

    pub async fn get(&self, addr: SocketAddr, path_and_query: &str) -> reqwest::Result<Reply> {
        Reply::of(self.send(addr, path_and_query, &[]).await?).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let request = headers.iter().fold(
            self.0.get(format!("http://{addr}{path_and_query}")),
            |request, (name, value)| request.header(*name, *value),
        );
        request.send().await
    }
}

/// The book titles on a page, in order.
pub fn titles(html: &str) -> Vec<String> {
    let titles = html.split("<span class=\"book-title\">").skip(1);
    titles
        .filter_map(|rest| rest.split_once("</span>").map(|(title, _)| title.to_owned()))
        .collect()
}

/// The covers on a page, in order: each one's colour class (`cover-N`) and its initials.
pub fn covers(html: &str) -> Vec<(String, String)> {
    let cover = |rest: &str| {
        let (class, rest) = rest.split_once('"')?;
        let (initials, _) = rest.split_once('>')?.1.split_once("</span>")?;
        Some((class.to_owned(), initials.to_owned()))
    };
    html.split("<span class=\"cover ").skip(1).filter_map(cover).collect()
}

/// An open `GET /events` stream, read as a browser's EventSource reads it (comments and
/// `retry:` skipped).
pub struct EventStream {
    pub status: u16,
    pub content_type: String,
    events: std::pin::Pin<Box<dyn Stream<Item = eventsource_stream::Event> + Send>>,
}

impl EventStream {
    pub async fn open(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Self {
        let response =
            KeptAlive::open().send(addr, path_and_query, headers).await.expect("GET /events");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status().as_u16();
        let events = response
            .bytes_stream()
            .eventsource()
            .filter_map(|event| std::future::ready(event.ok()));
        let events = events.boxed();
        EventStream { status, content_type, events }
    }

    /// The next event, or `None` when the stream ended; panics after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<eventsource_stream::Event> {
        let next = tokio::time::timeout(limit, self.events.next()).await;
        next.unwrap_or_else(|_| panic!("no event within {limit:?}"))
    }

    /// Reads until the server ends the stream; false after `limit`.
    pub async fn ended(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async { while self.events.next().await.is_some() {} })
            .await
            .is_ok()
    }
}

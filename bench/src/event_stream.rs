//! A client of the Marketplace's `GET /events` (Server-Sent Events) over one plain HTTP/1.1
//! connection, and the parser of the `text/event-stream` format it reads
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>, "Parsing an event stream").

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{
    Request, Response,
    body::Incoming,
    header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What an event stream carries, item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event: its `id:` (the last one given, as the spec keeps it), its `event:` type
    /// (`message` when none), its `data:` lines joined by newlines.
    Event {
        id: Option<String>,
        event: String,
        data: String,
    },
    /// A comment line (`: …`), such as a heartbeat, without the colon.
    Comment(String),
    /// A `retry:` field: the reconnection time the server advises, in ms.
    Retry(u64),
}

/// Parses a `text/event-stream` fed in pieces of any size (a line, or a UTF-8 character, may
/// be split between two pieces).
#[derive(Debug, Default)]
pub struct Parser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last piece ended in `\r`: a `\n` that starts the next one ends no new line.
    after_cr: bool,
    last_id: Option<String>,
    event: String,
    data: Vec<String>,
}

impl Parser {
    /// Parses `bytes`; the items they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    let line = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    self.line_ended(&line, &mut items);
                }
                _ => self.line.push(byte),
            }
        }
        items
    }

    fn line_ended(&mut self, line: &str, items: &mut Vec<Item>) {
        if line.is_empty() {
            // A blank line dispatches the event, if it has data.
            let event = std::mem::take(&mut self.event);
            if !self.data.is_empty() {
                items.push(Item::Event {
                    id: self.last_id.clone(),
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => self.data.push(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    items.push(Item::Retry(ms));
                }
            }
            _ => {} // ignored, as the spec says
        }
    }
}

/// An open `GET /events` stream.
#[derive(Debug)]
pub struct EventStream {
    response: Response<Incoming>,
    parser: Parser,
}

impl EventStream {
    /// Connects to `addr` (`host:port`) and sends `GET path` with `Accept: text/event-stream`;
    /// the stream once its headers are in, within `timeout`. Anything but a 200
    /// `text/event-stream` answer is an error that says what came (a 503's `Retry-After` too).
    pub async fn open(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<EventStream> {
        let response = get(addr, path, "text/event-stream", timeout).await?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        if response.status() != 200 {
            let retry =
                header(RETRY_AFTER).map_or_else(String::new, |s| format!(" (Retry-After: {s})"));
            bail!("GET {path} on {addr} answered {}{retry}", response.status());
        }
        let content_type = header(CONTENT_TYPE).unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            bail!("GET {path} on {addr} answered 200 as {content_type:?}, not text/event-stream");
        }
        Ok(EventStream {
            response,
            parser: Parser::default(),
        })
    }

    /// The next items from the stream (perhaps none, when a piece completes none); `None` once
    /// the server has ended it.
    pub async fn next(&mut self) -> anyhow::Result<Option<Vec<Item>>> {
        match self.response.body_mut().frame().await {
            None => Ok(None),
            Some(frame) => {
                let frame = frame.context("the event stream broke")?;
                Ok(Some(
                    frame
                        .data_ref()
                        .map(|data| self.parser.feed(data))
                        .unwrap_or_default(),
                ))
            }
        }
    }
}

/// `GET path` on a new HTTP/1.1 connection to `addr` (`host:port`): its status and whole body
/// as text, within `timeout` (for `/metrics`).
pub async fn get_text(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let reading = async {
        let response = get(addr, path, "*/*", timeout).await?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("GET {path} on {addr}: the body broke"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| anyhow::anyhow!("GET {path} on {addr}: no whole answer within {timeout:?}"))?
}

/// Sends `GET path` on a new HTTP/1.1 connection to `addr`; the response once its headers are
/// in. The connection lives as long as the response's body.
async fn get(
    addr: &str,
    path: &str,
    accept: &str,
    timeout: Duration,
) -> anyhow::Result<Response<Incoming>> {
    let sending = async {
        let socket = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
            .await
            .with_context(|| format!("no HTTP/1.1 connection to {addr}"))?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, addr)
            .header(ACCEPT, accept)
            .body(Empty::<Bytes>::new())
            .with_context(|| format!("cannot make a request for {path:?}"))?;
        sender
            .send_request(request)
            .await
            .with_context(|| format!("GET {path} on {addr} failed"))
    };
    tokio::time::timeout(timeout, sending)
        .await
        .map_err(|_| anyhow::anyhow!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

/// Reads a gauge (or counter) without labels from Prometheus text: `name 12`.
pub fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, event: &str, data: &str) -> Item {
        Item::Event {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn the_marketplace_s_stream_is_read_item_by_item() {
        let mut parser = Parser::default();
        let text = "retry: 2000\n\n: heartbeat\n\nid: 00ff00ff00ff00ff\nevent: catalog\n\
            data: {\"version\":\"00ff00ff00ff00ff\"}\n\n";
        assert_eq!(
            parser.feed(text.as_bytes()),
            [
                Item::Retry(2000),
                Item::Comment("heartbeat".to_owned()),
                event(
                    Some("00ff00ff00ff00ff"),
                    "catalog",
                    r#"{"version":"00ff00ff00ff00ff"}"#
                ),
            ]
        );
    }

    #[test]
    fn pieces_may_split_lines_line_ends_and_characters() {
        let text = "event: catalog\r\ndata: «a»\r\ndata: b\r\n\r\ndata:c\r\rdata: d\n\n";
        let whole = Parser::default().feed(text.as_bytes());
        assert_eq!(
            whole,
            [
                event(None, "catalog", "«a»\nb"),
                event(None, "message", "c"),
                event(None, "message", "d"),
            ]
        );
        for split in 1..text.len() {
            let mut parser = Parser::default();
            let mut items = parser.feed(&text.as_bytes()[..split]);
            items.extend(parser.feed(&text.as_bytes()[split..]));
            assert_eq!(items, whole, "split at byte {split}");
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_ids_carry_over() {
        let mut parser = Parser::default();
        let items = parser.feed(b"id: 1\nevent: catalog\n\ndata: x\n\nretry: soon\nfoo: bar\n");
        assert_eq!(items, [event(Some("1"), "message", "x")]);
    }

    #[test]
    fn a_gauge_is_read_by_its_exact_name() {
        let metrics = "# TYPE bookshop_event_streams gauge\nbookshop_event_streams 1000\n\
            bookshop_event_streams_total 5\n";
        assert_eq!(gauge(metrics, "bookshop_event_streams"), Some(1000.0));
        assert_eq!(gauge(metrics, "bookshop_event"), None);
        assert_eq!(gauge("", "bookshop_event_streams"), None);
    }
}

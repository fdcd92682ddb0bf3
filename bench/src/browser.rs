//! A minimal client of the Chrome DevTools Protocol (CDP) for Debian's headless `chromium`:
//! just what scenario 9 needs to load a page, run a script in it and hear back from it.
//!
//! [`Browser::launch`] starts Chromium on a temporary profile with `--remote-debugging-port=0`,
//! reads the port it chose from `DevToolsActivePort` in that profile, and connects one WebSocket
//! to it. Over that socket every command carries an id and its answer the same id; everything
//! else is an event. One reader task routes both: answers to the command waiting for them,
//! events to the [`Page`] whose session they name. It also keeps every *page problem* it sees
//! (a console error, an uncaught exception, an error logged by the browser such as a CSP
//! violation or a failed load), so a measurement can fail when the page misbehaved.
//!
//! Dropping the [`Browser`] kills Chromium with all of its processes and removes the profile.

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message;

/// How long Chromium may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one command may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A message from Chromium: the answer to a command, or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to command `id`: its result, or the error Chromium gave.
    Answer {
        id: u64,
        outcome: Result<Value, String>,
    },
    /// An event.
    Event(Event),
}

/// A CDP event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `Domain.event`, e.g. `Runtime.bindingCalled`.
    pub method: String,
    /// The session (page) it comes from; `None` for the browser's own events.
    pub session: Option<String>,
    /// Its parameters.
    pub params: Value,
}

impl Incoming {
    /// Reads one message as Chromium sends it.
    pub fn parse(text: &str) -> anyhow::Result<Incoming> {
        let message: Value = serde_json::from_str(text)
            .with_context(|| format!("a DevTools message that is not JSON: {text:.200}"))?;
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let outcome = match message.get("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned)),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            return Ok(Incoming::Answer { id, outcome });
        }
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .with_context(|| {
                format!("a DevTools message with neither id nor method: {text:.200}")
            })?;
        Ok(Incoming::Event(Event {
            method: method.to_owned(),
            session: message
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            params: message.get("params").cloned().unwrap_or(Value::Null),
        }))
    }
}

/// A command as sent: `{"id", "method", "params", "sessionId"?}`.
fn command_text(id: u64, session: Option<&str>, method: &str, params: &Value) -> String {
    let mut command = json!({ "id": id, "method": method, "params": params });
    if let Some(session) = session {
        command["sessionId"] = json!(session);
    }
    command.to_string()
}

/// The page problem an event reports, if it reports one: `console.error(…)` and failed
/// `console.assert(…)`, an uncaught exception, or an entry the browser logged as an error
/// (a CSP violation, a resource that failed to load, …), each with where it happened.
pub fn problem(event: &Event) -> Option<String> {
    let params = &event.params;
    let place = |url: &str, line: Option<u64>| match (url, line) {
        ("", _) => String::new(),
        (url, Some(line)) => format!(" at {url}:{}", line + 1),
        (url, None) => format!(" at {url}"),
    };
    match event.method.as_str() {
        "Runtime.consoleAPICalled" => {
            let kind = text(params, "type");
            if !matches!(kind, "error" | "assert") {
                return None;
            }
            let args: Vec<String> = params
                .get("args")
                .and_then(Value::as_array)
                .map(|args| {
                    args.iter()
                        .map(|arg| match arg.get("value") {
                            Some(Value::String(s)) => s.clone(),
                            Some(value) => value.to_string(),
                            None => text(arg, "description").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let frame = params.pointer("/stackTrace/callFrames/0");
            let at = frame.map_or_else(String::new, |frame| {
                place(
                    text(frame, "url"),
                    frame.get("lineNumber").and_then(Value::as_u64),
                )
            });
            Some(format!("console.{kind}: {}{at}", args.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let details = params.get("exceptionDetails").unwrap_or(&Value::Null);
            let described = details
                .pointer("/exception/description")
                .and_then(Value::as_str)
                .and_then(|d| d.lines().next())
                .unwrap_or_else(|| text(details, "text"));
            let at = place(
                text(details, "url"),
                details.get("lineNumber").and_then(Value::as_u64),
            );
            Some(format!("uncaught exception: {described}{at}"))
        }
        "Log.entryAdded" => {
            let entry = params.get("entry").unwrap_or(&Value::Null);
            if text(entry, "level") != "error" {
                return None;
            }
            let at = place(
                text(entry, "url"),
                entry.get("lineNumber").and_then(Value::as_u64),
            );
            Some(format!(
                "{} error: {}{at}",
                text(entry, "source"),
                text(entry, "text")
            ))
        }
        _ => None,
    }
}

/// The string at `key` in `value`, or "".
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The port and browser path from a `DevToolsActivePort` file (`9222\n/devtools/browser/…`),
/// once Chromium has written both lines.
pub fn active_port(text: &str) -> Option<(u16, String)> {
    let mut lines = text.lines();
    let port = lines.next()?.trim().parse().ok()?;
    let path = lines.next()?.trim();
    path.starts_with('/').then(|| (port, path.to_owned()))
}

/// Commands waiting for their answer, by id.
type Pending = HashMap<u64, oneshot::Sender<Result<Value, String>>>;

/// What the caller side and the reader task share.
#[derive(Debug, Default)]
struct Shared {
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Where each attached page's events go, by session.
    pages: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    problems: Mutex<Vec<String>>,
    /// Why the connection ended, once it has.
    closed: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Routes one message: an answer to its command, an event to its page (and its problem,
    /// if any, to the list).
    fn route(&self, incoming: Incoming) {
        match incoming {
            Incoming::Answer { id, outcome } => {
                if let Some(waiting) = lock(&self.pending).remove(&id) {
                    let _ = waiting.send(outcome);
                }
            }
            Incoming::Event(event) => {
                if let Some(problem) = problem(&event) {
                    lock(&self.problems).push(problem);
                }
                let pages = lock(&self.pages);
                if let Some(page) = event.session.as_ref().and_then(|s| pages.get(s)) {
                    let _ = page.send(event);
                }
            }
        }
    }

    /// Ends the connection: every command still waiting fails with `why`.
    fn close(&self, why: String) {
        lock(&self.closed).get_or_insert(why.clone());
        for (_, waiting) in lock(&self.pending).drain() {
            let _ = waiting.send(Err(why.clone()));
        }
        lock(&self.pages).clear();
    }
}

/// The connection to Chromium: send commands, get their answers.
#[derive(Debug, Clone)]
struct Connection {
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<String>,
}

impl Connection {
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, answered) = oneshot::channel();
        if let Some(why) = lock(&self.shared.closed).clone() {
            bail!("cannot send {method}: {why}");
        }
        lock(&self.shared.pending).insert(id, answer);
        self.outgoing
            .send(command_text(id, session, method, &params))
            .ok()
            .with_context(|| format!("cannot send {method}: the connection to Chromium is gone"))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answered).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => bail!("Chromium refused {method}: {error}"),
            Ok(Err(_)) => bail!("no answer to {method}: the connection to Chromium is gone"),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                bail!("no answer to {method} within {COMMAND_TIMEOUT:?}")
            }
        }
    }
}

/// A headless Chromium on a temporary profile, with a DevTools connection.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    connection: Connection,
    tasks: Vec<JoinHandle<()>>,
    // Last: removed once Chromium, which writes to it, is gone.
    profile: TempDir,
}

impl Browser {
    /// Debian's Chromium for a test, or `None` (said on stderr) where it is not installed: the
    /// tests that need a real browser pass without one.
    #[cfg(test)]
    pub(crate) async fn for_test() -> Option<Browser> {
        match Browser::launch("chromium").await {
            Ok(browser) => Some(browser),
            Err(error) => {
                eprintln!("skipped, no Chromium: {error:#}");
                None
            }
        }
    }

    /// Starts `program` (Debian's `chromium`) headless and connects to it.
    pub async fn launch(program: &str) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("bench-chromium-")
            .tempdir()
            .context("cannot create a temporary Chromium profile")?;
        let log_path = profile.path().join("chromium.log");
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(program);
        command
            .arg("--headless=new")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args([
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                // Docker's /dev/shm is 64 MB, too small for Chromium's shared memory.
                "--disable-dev-shm-usage",
                // Nothing but the page under test talks to the network.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                // A headless page is never in the foreground; these keep its timers and
                // rendering at the pace of a visible tab, which is what a person sees.
                "--disable-background-timer-throttling",
                "--disable-backgrounding-occluded-windows",
                "--disable-renderer-backgrounding",
                "--mute-audio",
            ]);
        // Chromium's sandbox cannot run as root (CI and containers).
        if running_as_root() {
            command.arg("--no-sandbox");
        }
        command
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that all of its processes are killed together.
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {program} (is it installed?)"))?;
        let url = match wait_for_port(&mut child, profile.path(), &log_path).await {
            Ok(url) => url,
            Err(error) => {
                kill_group(&mut child);
                return Err(error);
            }
        };
        let (socket, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok(connected) => connected,
            Err(error) => {
                kill_group(&mut child);
                return Err(error).with_context(|| format!("cannot connect to {url}"));
            }
        };
        let (mut sink, mut stream) = socket.split();
        let shared = Arc::new(Shared::default());
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(text) = to_send.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(text))) => match Incoming::parse(&text) {
                        Ok(incoming) => reader_shared.route(incoming),
                        Err(error) => break format!("{error:#}"),
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        break "Chromium closed the DevTools connection".to_owned();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break format!("the DevTools connection broke: {error}"),
                }
            };
            reader_shared.close(why);
        });
        Ok(Browser {
            child,
            connection: Connection { shared, outgoing },
            tasks: vec![writer, reader],
            profile,
        })
    }

    /// Opens a new tab on `about:blank`, attached to this connection, its page problems
    /// reported (`Runtime` and `Log` enabled) and its load events sent (`Page` enabled).
    pub async fn new_page(&self) -> anyhow::Result<Page> {
        let connection = &self.connection;
        let created = connection
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target = created["targetId"]
            .as_str()
            .context("Target.createTarget gave no targetId")?;
        let attached = connection
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget gave no sessionId")?
            .to_owned();
        let (sender, events) = mpsc::unbounded_channel();
        lock(&connection.shared.pages).insert(session.clone(), sender);
        let page = Page {
            connection: connection.clone(),
            session,
            events,
            backlog: VecDeque::new(),
        };
        for domain in ["Runtime", "Log", "Page"] {
            page.call(&format!("{domain}.enable"), json!({})).await?;
        }
        Ok(page)
    }

    /// Every page problem seen so far (see [`problem`]), in order.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.connection.shared.problems).clone()
    }

    /// Where Chromium writes its own output (for a failure's explanation).
    pub fn log_path(&self) -> std::path::PathBuf {
        self.profile.path().join("chromium.log")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        kill_group(&mut self.child);
    }
}

/// A tab, attached to the browser's connection by its session.
#[derive(Debug)]
pub struct Page {
    connection: Connection,
    session: String,
    events: mpsc::UnboundedReceiver<Event>,
    /// Events that came while [`Page::goto`] waited for its own, for [`Page::next_event`].
    backlog: VecDeque<Event>,
}

impl Page {
    /// Sends `method` with `params` to this page; its result.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.connection
            .call(Some(&self.session), method, params)
            .await
    }

    /// The next event of this page, or `None` if none comes by `deadline`.
    pub async fn next_event(&mut self, deadline: Instant) -> anyhow::Result<Option<Event>> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(Some(event));
        }
        match tokio::time::timeout_at(deadline.into(), self.events.recv()).await {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) => {
                let why = lock(&self.connection.shared.closed).clone();
                bail!(why.unwrap_or_else(|| "the page's events stopped".to_owned()))
            }
            Err(_) => Ok(None),
        }
    }

    /// Loads `url` and waits for its `load` event; the events before it stay for
    /// [`Page::next_event`].
    pub async fn goto(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            bail!("cannot load {url}: {error}");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline.into(), self.events.recv()).await;
            match event {
                Ok(Some(event)) if event.method == "Page.loadEventFired" => return Ok(()),
                Ok(Some(event)) => self.backlog.push_back(event),
                Ok(None) => bail!("the page's events stopped while {url} loaded"),
                Err(_) => bail!("{url} did not finish loading within {timeout:?}"),
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting it if it is a promise); its value as JSON.
    pub async fn evaluate(&self, expression: &str) -> anyhow::Result<Value> {
        let evaluated = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = evaluated.get("exceptionDetails") {
            let described = details
                .pointer("/exception/description")
                .and_then(Value::as_str)
                .unwrap_or_else(|| details["text"].as_str().unwrap_or("an exception"));
            bail!("evaluating {expression:.80} threw {described}");
        }
        Ok(evaluated
            .pointer("/result/value")
            .cloned()
            .unwrap_or(Value::Null))
    }
}

/// Waits until Chromium has written its port to `DevToolsActivePort` in `profile`; the
/// browser's WebSocket URL. Fails, with the end of its log, if it exits or takes too long.
async fn wait_for_port(child: &mut Child, profile: &Path, log: &Path) -> anyhow::Result<String> {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        if let Some((port, path)) = std::fs::read_to_string(&file)
            .ok()
            .as_deref()
            .and_then(active_port)
        {
            return Ok(format!("ws://127.0.0.1:{port}{path}"));
        }
        let failure = if let Some(status) = child.try_wait()? {
            format!("Chromium exited ({status}) before it listened")
        } else if started.elapsed() > START_TIMEOUT {
            format!(
                "Chromium wrote no {} within {START_TIMEOUT:?}",
                file.display()
            )
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "{failure}; the end of its output:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
    }
}

/// Kills Chromium's process group (the browser and every process it started) and reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(uids.split_whitespace().next()? == "0")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(method: &str, params: Value) -> Event {
        Event {
            method: method.to_owned(),
            session: Some("S".to_owned()),
            params,
        }
    }

    #[test]
    fn answers_and_events_are_told_apart() {
        assert_eq!(
            Incoming::parse(r#"{"id":3,"result":{"targetId":"T"}}"#).unwrap(),
            Incoming::Answer {
                id: 3,
                outcome: Ok(json!({ "targetId": "T" }))
            }
        );
        assert_eq!(
            Incoming::parse(r#"{"id":4,"error":{"code":-32000,"message":"No target"}}"#).unwrap(),
            Incoming::Answer {
                id: 4,
                outcome: Err("No target".to_owned())
            }
        );
        assert_eq!(
            Incoming::parse(
                r#"{"method":"Runtime.bindingCalled","params":{"payload":"x"},"sessionId":"S"}"#
            )
            .unwrap(),
            Incoming::Event(event("Runtime.bindingCalled", json!({ "payload": "x" })))
        );
        assert!(Incoming::parse(r#"{"params":{}}"#).is_err());
        assert!(Incoming::parse("not json").is_err());
    }

    #[test]
    fn commands_name_their_session_only_when_they_have_one() {
        let browser: Value =
            serde_json::from_str(&command_text(1, None, "Target.createTarget", &json!({})))
                .unwrap();
        assert_eq!(browser.get("sessionId"), None);
        let page: Value =
            serde_json::from_str(&command_text(2, Some("S"), "Page.enable", &json!({}))).unwrap();
        assert_eq!(page["sessionId"], "S");
        assert_eq!(page["id"], 2);
    }

    #[tokio::test]
    async fn answers_reach_their_command_and_events_their_page() {
        let shared = Shared::default();
        let (answer, answered) = oneshot::channel();
        lock(&shared.pending).insert(7, answer);
        let (sender, mut events) = mpsc::unbounded_channel();
        lock(&shared.pages).insert("S".to_owned(), sender);

        shared.route(Incoming::parse(r#"{"id":7,"result":{"ok":true}}"#).unwrap());
        assert_eq!(answered.await.unwrap(), Ok(json!({ "ok": true })));
        shared
            .route(Incoming::parse(r#"{"method":"Page.loadEventFired","sessionId":"S"}"#).unwrap());
        // Another page's event and the browser's own go elsewhere.
        shared
            .route(Incoming::parse(r#"{"method":"Page.loadEventFired","sessionId":"X"}"#).unwrap());
        shared.route(Incoming::parse(r#"{"method":"Target.targetCreated"}"#).unwrap());
        assert_eq!(events.recv().await.unwrap().method, "Page.loadEventFired");
        assert!(events.try_recv().is_err());

        let (answer, answered) = oneshot::channel();
        lock(&shared.pending).insert(8, answer);
        shared.close("gone".to_owned());
        assert_eq!(answered.await.unwrap(), Err("gone".to_owned()));
    }

    #[test]
    fn console_errors_exceptions_and_logged_errors_are_problems() {
        let console = event(
            "Runtime.consoleAPICalled",
            json!({ "type": "error", "args": [{ "type": "string", "value": "boom" }, { "type": "number", "value": 2 }],
                    "stackTrace": { "callFrames": [{ "url": "http://x/static/live.js", "lineNumber": 9 }] } }),
        );
        assert_eq!(
            problem(&console).unwrap(),
            "console.error: boom 2 at http://x/static/live.js:10"
        );
        let log = event(
            "Runtime.consoleAPICalled",
            json!({ "type": "log", "args": [{ "value": "fine" }] }),
        );
        assert_eq!(problem(&log), None);
        let thrown = event(
            "Runtime.exceptionThrown",
            json!({ "exceptionDetails": { "text": "Uncaught", "url": "http://x/", "lineNumber": 0,
                    "exception": { "description": "TypeError: a is undefined\n    at f" } } }),
        );
        assert_eq!(
            problem(&thrown).unwrap(),
            "uncaught exception: TypeError: a is undefined at http://x/:1"
        );
        let csp = event(
            "Log.entryAdded",
            json!({ "entry": { "source": "security", "level": "error",
                    "text": "Refused to connect to 'http://y/' because it violates the Content Security Policy" } }),
        );
        assert!(
            problem(&csp)
                .unwrap()
                .starts_with("security error: Refused to connect"),
        );
        let verbose = event(
            "Log.entryAdded",
            json!({ "entry": { "source": "other", "level": "verbose", "text": "x" } }),
        );
        assert_eq!(problem(&verbose), None);
    }

    /// Loads a page in a real Chromium, reads it, and keeps its problems. Needs Chromium:
    /// without it, says so and passes.
    #[tokio::test]
    async fn a_page_is_loaded_read_and_its_problems_kept() {
        let Some(browser) = Browser::for_test().await else {
            return;
        };
        let mut page = browser.new_page().await.unwrap();
        let html = "<h1>Poetry</h1><script>console.error('boom'); undefinedFunction();</script>";
        page.goto(&format!("data:text/html,{html}"), Duration::from_secs(10))
            .await
            .unwrap();
        let h1 = page
            .evaluate("document.querySelector('h1').textContent")
            .await
            .unwrap();
        assert_eq!(h1, "Poetry");
        assert!(page.evaluate("nothing.here").await.is_err());
        let problems = browser.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("console.error: boom"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("undefinedFunction is not defined"),
            "{problems:?}"
        );
        let profile = browser.profile.path().to_owned();
        drop(browser);
        assert!(!profile.exists(), "the profile is removed");
    }

    #[test]
    fn the_port_file_is_read_once_complete() {
        assert_eq!(
            active_port("40123\n/devtools/browser/abc-def\n"),
            Some((40123, "/devtools/browser/abc-def".to_owned()))
        );
        assert_eq!(active_port("40123\n"), None, "written half-way");
        assert_eq!(active_port(""), None);
    }
}

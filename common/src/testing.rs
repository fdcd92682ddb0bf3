//! What the services' tests share (feature `testing`, dev-dependencies only): polling with a
//! deadline instead of sleeping, log lines captured for reading, certificates made on the fly
//! for the TLS tests, and an OTLP/HTTP receiver for the trace tests.

use std::{
    fmt::Debug,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::settings::{self, Layered, SettingsError, Sources};

use tokio::{sync::oneshot, task::JoinHandle};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Log lines, kept for a test to read: give a clone to the subscriber as its writer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLines(Arc<Mutex<Vec<u8>>>);

impl CapturedLines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls `check` every 20 ms until it returns true (then true) or `limit` has passed (then
/// false). Tests wait for what "should happen soon" with it, never with a fixed sleep.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loads settings `T` for a test from an optional file with `text`, the variables `vars`
/// (never the process's own) and the command-line overrides `flags` (dotted keys).
pub fn load_settings<T: Layered>(
    text: Option<&str>,
    vars: &[(&str, &str)],
    flags: &[(&str, &str)],
) -> Result<T, SettingsError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = text.map(|text| {
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, text).expect("the settings file");
        path
    });
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    };
    let sources = Sources {
        file,
        env: pairs(vars).into_iter().collect(),
        overrides: pairs(flags),
    };
    settings::load(&sources)
}

/// The error message of loading settings `T` as in [`load_settings`], which must fail.
pub fn settings_error<T: Layered + Debug>(text: Option<&str>, vars: &[(&str, &str)]) -> String {
    match load_settings::<T>(text, vars, &[]) {
        Ok(settings) => panic!("expected an error, loaded {settings:?}"),
        Err(error) => error.to_string(),
    }
}

/// Asserts that `message` mentions every one of `parts` (an error message naming what is wrong
/// and where).
#[track_caller]
pub fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

/// The stop signal handed to a spawned application's `run_until_stopped`.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An application running on a task of its own, as `main` would run it, with a stop signal the
/// test controls. Dropping it sends the signal.
#[derive(Debug)]
pub struct Spawned<E> {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), E>>>,
}

impl<E: Send + 'static> Spawned<E> {
    /// Spawns `run` with a stop signal (`|stop| app.run_until_stopped(stop)`).
    pub fn new<F>(run: impl FnOnce(StopSignal) -> F) -> Spawned<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let signal: StopSignal = Box::pin(async move {
            let _ = stopped.await;
        });
        Spawned {
            stop: Some(stop),
            task: Some(tokio::spawn(run(signal))),
        }
    }

    /// Sends the stop signal without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Sends the stop signal and returns how the application ended, or panics if it does not
    /// end within `limit`.
    pub async fn stop(mut self, limit: Duration) -> Result<(), E> {
        self.signal_stop();
        self.ended(limit).await
    }

    /// Waits for the application to end by itself (a start-up failure, or after
    /// [`Spawned::signal_stop`]); panics if it does not end within `limit`.
    pub async fn ended(mut self, limit: Duration) -> Result<(), E> {
        let task = self.task.take().expect("the task is only taken here");
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => panic!("the application panicked: {error}"),
            Err(_) => panic!("the application did not end within {limit:?}"),
        }
    }
}

impl<E> Drop for Spawned<E> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// A certificate authority that signs server and client certificates.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, to trust.
    pub cert: String,
}

/// What went wrong making a certificate.
pub type Error = rcgen::Error;

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<TestCa, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?.pem();
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            cert,
        })
    }

    /// A server certificate for these subjectAltNames (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Result<Pem, Error> {
        self.leaf(names, "server", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate named `name`.
    pub fn client(&self, name: &str) -> Result<Pem, Error> {
        self.leaf(&[name], name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate with a Common Name and **no** subjectAltName, as the tutorial's
    /// openssl scripts make: rustls rejects it.
    pub fn server_cn_only(&self, common_name: &str) -> Result<Pem, Error> {
        self.leaf(&[], common_name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn leaf(
        &self,
        names: &[&str],
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Pem, Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?.pem();
        Ok(Pem {
            cert,
            key: key.serialize_pem(),
        })
    }
}

/// What an [`otlp_http_receiver`] was sent: the path and body of each request, in order.
pub type Received = Arc<Mutex<Vec<(String, hyper::body::Bytes)>>>;

/// An OTLP/HTTP receiver (a collector's `POST /v1/traces`) on 127.0.0.1:0: its address, and
/// every request it is sent, each answered 200 with an empty body.
pub async fn otlp_http_receiver() -> (std::net::SocketAddr, Received) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener on 127.0.0.1:0");
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

/// A service's binary run as a child process, as a container runs it; killed if the test ends
/// before it exited.
#[derive(Debug)]
pub struct ChildService(std::process::Child);

impl ChildService {
    /// Starts `program` with `args` and the variables `vars`; its log is discarded.
    pub fn start(program: &str, args: &[&str], vars: &[(&str, &str)]) -> ChildService {
        let child = std::process::Command::new(program)
            .args(args)
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the service's binary starts");
        ChildService(child)
    }

    /// `127.0.0.1` and the first port the child listens on, as soon as it listens (read from
    /// `/proc`, polled every millisecond, so a test can act in the moment it starts listening);
    /// panics after `limit`.
    pub async fn listening(&self, limit: Duration) -> std::net::SocketAddr {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(port) = listening_ports(self.0.id()).first() {
                return std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service did not listen within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Sends SIGTERM, as `docker stop` and Kubernetes do.
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM failed: {sent}");
    }

    /// Waits for the child to exit, at most `limit` (then it is killed and the test panics).
    pub async fn exited(mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("the child's status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The TCP ports (IPv4 and IPv6) on which process `pid` listens, from `/proc`: its socket
/// descriptors, matched by inode against the listening sockets of its network namespace.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let sockets: Vec<String> = descriptors
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Field 3 is the state (0A: listening), field 9 the inode.
            if fields.len() > 9 && fields[3] == "0A" && sockets.iter().any(|s| s == fields[9]) {
                let port = fields[1].rsplit(':').next().unwrap_or_default();
                ports.extend(u16::from_str_radix(port, 16).ok());
            }
        }
    }
    ports
}

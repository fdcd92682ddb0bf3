//! A service's binary as a child process, for the tests of what only a process shows (signals).

use std::time::Duration;

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

    /// Sends SIGTERM the moment the child's port accepts a connection, and waits for it to exit.
    pub async fn stopped_as_soon_as_it_listens(self, limit: Duration) -> std::process::ExitStatus {
        let addr = self.listening(limit).await;
        tokio::net::TcpStream::connect(addr).await.expect("the port accepts");
        self.terminate();
        self.exited(limit).await
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

//! Real servers on loopback for the scheduler tests: moto's S3-protocol server, a small TCP
//! proxy in front of it that can fail, slow down or stop, and `abreport serve` as a child
//! process that can be sent SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{python, repo_root};

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// moto's S3 server with one bucket loaded from a folder (`tests/servers/s3_server.py`).
pub(crate) struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts the server with `bucket` holding every file under `dir` at `prefix/<path>`.
    pub(crate) fn start(bucket: &str, dir: &Path, prefix: &str) -> Self {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/servers/s3_server.py"))
            .args(["--bucket", bucket, "--upload", &format!("{bucket}/{prefix}={}", dir.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the S3 test server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(port) = line.strip_prefix("READY ") {
                        break port.trim().parse().expect("a port number");
                    }
                }
                _ => panic!("the S3 test server exited before it was ready"),
            }
        };
        Self { child, port }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does to the traffic.
#[derive(Default)]
struct ProxyState {
    /// Answer the next N connections with `503 SlowDown` (each closes after one answer).
    fail_next: AtomicU32,
    /// Delay before each chunk the server sends back.
    delay_ms: AtomicU64,
    /// Bytes sent by clients so far, all connections together.
    bytes_up: AtomicU64,
    /// Once `bytes_up` would pass this, the connection carrying it is cut and every later one
    /// is answered 503: a store that fails half-way through an upload (`u64::MAX`: never).
    fail_from_byte: AtomicU64,
    connections: AtomicU32,
    failed: AtomicU32,
    stopped: AtomicBool,
    /// Tasks of the accept loop and of every live connection, aborted by `stop`.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A TCP proxy on loopback in front of the S3 server. It passes bytes through unchanged (so
/// request signatures still verify) and can answer 503, delay answers, or stop listening and
/// cut every connection as a crashed server would.
pub(crate) struct Proxy {
    pub port: u16,
    upstream: SocketAddr,
    state: Arc<ProxyState>,
    runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:<upstream_port>`.
    pub(crate) fn start(upstream_port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("the proxy binds");
        let port = listener.local_addr().expect("bound").port();
        let proxy = Self {
            port,
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            state: Arc::new(ProxyState { fail_from_byte: AtomicU64::new(u64::MAX), ..ProxyState::default() }),
            runtime,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (state, upstream) = (self.state.clone(), self.upstream);
        let accept_state = state.clone();
        let handle = self.runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let connection = tokio::spawn(relay(client, upstream, accept_state.clone()));
                accept_state.tasks.lock().expect("lock").push(connection.abort_handle());
            }
        });
        state.tasks.lock().expect("lock").push(handle.abort_handle());
    }

    /// Answers the next `n` connections with 503.
    pub(crate) fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Lets clients send `bytes` more bytes, then cuts the connection that goes past them and
    /// answers every later connection with 503, as a store failing mid-upload would.
    pub(crate) fn fail_after_bytes(&self, bytes: u64) {
        let from = self.state.bytes_up.load(Ordering::SeqCst).saturating_add(bytes);
        self.state.fail_from_byte.store(from, Ordering::SeqCst);
    }

    /// Passes everything again after [`Proxy::fail_after_bytes`].
    pub(crate) fn stop_failing(&self) {
        self.state.fail_from_byte.store(u64::MAX, Ordering::SeqCst);
    }

    /// Bytes clients sent through the proxy so far.
    pub(crate) fn bytes_up(&self) -> u64 {
        self.state.bytes_up.load(Ordering::SeqCst)
    }

    /// Delays every chunk the server sends back by `delay`.
    pub(crate) fn delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u32 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// 503 answers given so far.
    pub(crate) fn failed(&self) -> u32 {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Stops listening and cuts every connection: new connections are refused.
    pub(crate) fn stop(&self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        for task in self.state.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub(crate) fn restart(&self) {
        self.state.stopped.store(false, Ordering::SeqCst);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = self.runtime.block_on(TcpListener::bind(addr)).expect("the proxy binds its port again");
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, state: Arc<ProxyState>) {
    let failing = state.bytes_up.load(Ordering::SeqCst) >= state.fail_from_byte.load(Ordering::SeqCst);
    if failing || state.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        // Read the request head so the client sees an answer rather than a reset.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes()).await;
        let _ = client.shutdown().await;
        state.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let to_server = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n as u64,
            };
            let before = state.bytes_up.fetch_add(n, Ordering::SeqCst);
            if before + n > state.fail_from_byte.load(Ordering::SeqCst) {
                // Cut mid-request: both halves are dropped when this future ends.
                break;
            }
            if server_write.write_all(&buf[..n as usize]).await.is_err() {
                break;
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
    }
}

/// `abreport serve` running as a child process, its log (JSON lines) in a file.
pub(crate) struct ServeProcess {
    child: Child,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts `abreport --log-format json serve <args>` in `dir` with `envs`.
    pub(crate) fn start(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Self {
        let log = unique(&dir.join("serve.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_abreport"))
            .args(["--log-format", "json", "serve"])
            .args(args)
            .current_dir(dir)
            .env_remove("ABREPORT_LOG")
            .env_remove("ABREPORT_LOG_FORMAT")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("abreport serve starts");
        Self { child, log }
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines whose message contains `text`.
    pub(crate) fn logged(&self, text: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| entry["fields"]["message"].as_str().is_some_and(|m| m.contains(text)))
            .collect()
    }

    /// Sends the signal `name` (`TERM`, `HUP`, …).
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIG{name} sent");
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        let mut status = None;
        assert!(
            wait_until(timeout, || {
                status = self.child.try_wait().expect("wait");
                status.is_some()
            }),
            "abreport serve did not exit within {timeout:?} of SIGTERM; log:\n{}",
            self.log()
        );
        status.expect("exited")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unique(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = path.with_extension(format!("{n}.log"));
    }
    candidate
}

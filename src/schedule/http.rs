//! `GET /healthz` and `GET /metrics` for the service: a tiny HTTP/1.1 responder on tokio's
//! `TcpListener`, one request per connection, no web framework.
//!
//! It reads nothing but the request line, answers and closes. It never blocks the scheduler:
//! each connection has its own task and a 5-second limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::Metrics;

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read; the responder needs only the first line.
const MAX_HEAD: usize = 8 * 1024;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the service stops taking new runs (SIGTERM/SIGINT): `/healthz` then answers 503.
    pub stopping: AtomicBool,
}

/// Binds `addr`; the returned listener is served by [`serve`]. Binding first lets the service
/// fail at start on a taken port, and lets tests bind port 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            if let Err(error) = tokio::time::timeout(READ_TIMEOUT, answer(stream, &metrics, &health)).await {
                tracing::debug!(%error, "metrics endpoint: client too slow");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, health: &Health) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let request_line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
    let (status, content_type, body) = route(&request_line, metrics, health);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let head_only = request_line.starts_with("HEAD ");
    let _ = stream.write_all(response.as_bytes()).await;
    if !head_only {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// The status line, content type and body for a request line.
fn route(request_line: &str, metrics: &Metrics, health: &Health) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n".into());
    }
    match path {
        "/healthz" if health.stopping.load(Ordering::Relaxed) => {
            ("503 Service Unavailable", "text/plain; charset=utf-8", "stopping\n".into())
        }
        "/healthz" => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
        "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        _ => ("404 Not Found", "text/plain; charset=utf-8", "not found; try /healthz or /metrics\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(request.as_bytes()).await.expect("sends");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    }

    #[tokio::test]
    async fn healthz_metrics_and_unknown_paths() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).await.expect("binds");
        let addr = listener.local_addr().expect("bound");
        let metrics = Arc::new(Metrics::default());
        metrics.set_jobs(3);
        let health = Arc::new(Health::default());
        let server = tokio::spawn(serve(listener, metrics, health.clone()));

        let ok = get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nok\n"), "{ok}");
        let scraped = get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(scraped.contains("Content-Type: text/plain; version=0.0.4"), "{scraped}");
        assert!(scraped.contains("\nabreport_jobs 3\n"), "{scraped}");
        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");

        health.stopping.store(true, Ordering::Relaxed);
        let stopping = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(stopping.starts_with("HTTP/1.1 503"), "{stopping}");
        server.abort();
    }
}

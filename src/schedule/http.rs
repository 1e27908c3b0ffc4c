//! `GET /healthz` and `GET /metrics` for the service, served by hyper's HTTP/1 server on
//! tokio's `TcpListener`, one request per connection.
//!
//! hyper rather than a hand-written responder: request parsing, `HEAD`, malformed requests
//! and slow clients are its well-tested job. hyper rather than axum: hyper 1 (and
//! `hyper-util`'s tokio glue) is already built for reqwest, its `server` and `http1` features
//! add little to a build on two cores, and two fixed paths need no router or tower stack.
//!
//! It never blocks the scheduler: each connection has its own task and a 5-second limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::{self, Metrics};

/// How long a client may take for its whole exchange (request and response).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Content-Type` of every answer but the metrics.
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

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
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = route(&request, &metrics, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            // Title-case header names, as the responder this replaced wrote them (clients do
            // not care; people reading a `curl -i` do).
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "metrics endpoint: connection failed"),
                Err(_) => tracing::debug!("metrics endpoint: client too slow"),
            }
        });
    }
}

/// The answer to a request (hyper leaves the body out for `HEAD`).
fn route<B>(request: &Request<B>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, PLAIN_TEXT, "only GET and HEAD\n".into());
    }
    match request.uri().path() {
        "/healthz" if health.stopping.load(Ordering::Relaxed) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, PLAIN_TEXT, "stopping\n".into())
        }
        "/healthz" => answer(StatusCode::OK, PLAIN_TEXT, "ok\n".into()),
        "/metrics" => answer(StatusCode::OK, metrics::CONTENT_TYPE, metrics.render()),
        _ => answer(StatusCode::NOT_FOUND, PLAIN_TEXT, "not found; try /healthz or /metrics\n".into()),
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
        let head = get(addr, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "no body: {head}");
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

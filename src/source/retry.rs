//! Retrying store requests inside the run's SLA budget.
//!
//! Transient failures (connection refused or reset, timeouts, HTTP 5xx, throttling) are retried
//! with exponential backoff and jitter; permanent ones (access denied, a missing bucket or
//! object, other 4xx answers, a TLS failure such as an untrusted certificate) fail at once. Every attempt gets a timeout derived from what is
//! left of the run's budget, and retrying stops a small reserve before the deadline, so a source
//! that stays down ends the run as `source_unavailable` with its cause instead of hanging or
//! turning into an SLA miss that says nothing about why.
//!
//! object_store's own retry loop is switched off for data reads (see `crate::store::Limits`), so this is
//! the one retry policy of a run. This module only decides and waits; it makes no request itself.

use std::error::Error as StdError;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::runlog::Deadline;

/// The longest one request may take, however much budget is left: a hung connection must not
/// eat a whole 60-second SLA.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The first backoff; each retry doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The shortest timeout an attempt gets, so a run close to its deadline still makes one real
/// attempt (the deadline itself then decides).
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// What kind of failure a store error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Worth retrying: the network, a timeout, an overloaded or restarting server.
    Transient,
    /// Credentials are missing, wrong or lack a permission.
    Denied,
    /// The bucket, container, prefix or object does not exist.
    Missing,
    /// Anything else the server or store refused (a 4xx such as a bad request, an invalid path).
    Permanent,
}

/// Why a request finally failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A permanent error: not retried.
    #[error("{cause}")]
    Permanent { kind: Kind, cause: String },
    /// Transient errors until the budget ran out.
    #[error("{cause} (gave up after {attempts} attempt(s) in {elapsed:.1?}, within the SLA budget)")]
    GaveUp { cause: String, attempts: u32, elapsed: Duration },
}

/// The retry policy of one run: shared by every request the run's source makes.
#[derive(Debug, Clone)]
pub struct Retry {
    deadline: Deadline,
    /// Retrying stops this long before the deadline (a tenth of the budget, 50 ms to 5 s).
    reserve: Duration,
    retries: Arc<AtomicU32>,
}

impl Retry {
    /// A policy bounded by `deadline`.
    pub fn new(deadline: Deadline) -> Self {
        Self::counting(deadline, Arc::default())
    }

    /// A policy bounded by `deadline` that counts its retries in `retries`, which the caller
    /// keeps: the count of a run that failed is known too.
    pub fn counting(deadline: Deadline, retries: Arc<AtomicU32>) -> Self {
        let reserve = (deadline.budget() / 10).clamp(Duration::from_millis(50), Duration::from_secs(5));
        Self { deadline, reserve, retries }
    }

    /// Time left for source requests: the deadline less the reserve.
    fn left(&self) -> Duration {
        self.deadline.remaining().saturating_sub(self.reserve)
    }

    /// The timeout of one request started now: at most [`REQUEST_TIMEOUT`], never past the
    /// budget.
    pub fn request_timeout(&self) -> Duration {
        self.left().clamp(MIN_ATTEMPT, REQUEST_TIMEOUT)
    }

    /// How many retries this policy has made so far (all requests together).
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `op` until it succeeds, fails permanently, or the budget is spent. `what` names the
    /// request in log lines (a path, never a signed URL).
    pub async fn run<T, Fut>(&self, what: &str, mut op: impl FnMut() -> Fut) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, object_store::Error>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let timeout = self.request_timeout();
            let cause = match tokio::time::timeout(timeout, op()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => match classify(&err) {
                    Kind::Transient => crate::store::describe_error(&err),
                    kind => {
                        return Err(Failure::Permanent { kind, cause: crate::store::describe_error(&err) });
                    }
                },
                Err(_) => format!("no answer within {timeout:.1?}"),
            };
            let delay = backoff(attempt);
            if delay >= self.left() {
                return Err(Failure::GaveUp { cause, attempts: attempt, elapsed: started.elapsed() });
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                request = what,
                attempt,
                delay_ms = delay.as_millis() as u64,
                cause,
                "transient error from the data source; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// Exponential backoff with "equal jitter": half the step is fixed, the other half random, so
/// concurrent readers that failed together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let step = FIRST_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(MAX_DELAY);
    let half = step / 2;
    half + half.mul_f64(random_unit())
}

/// A number in [0, 1) that differs between calls. The standard library's per-process hash keys
/// are random; hashing the time with them is enough for jitter and needs no extra crate.
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Decides whether a store error is worth retrying.
///
/// object_store maps 401/403/404 to typed variants but leaves other HTTP statuses, and every
/// transport error, inside `Generic`. Its status accessor is not public in 0.14, so the status
/// is read from the error text it formats ("… status code: 503 …"); transport errors are found
/// as `HttpError` in the source chain.
pub fn classify(err: &object_store::Error) -> Kind {
    use object_store::Error;
    if crate::store::is_instance_metadata_failure(err) {
        return Kind::Denied;
    }
    match err {
        Error::NotFound { .. } => Kind::Missing,
        Error::PermissionDenied { .. } | Error::Unauthenticated { .. } => Kind::Denied,
        Error::Generic { source, .. } => classify_chain(source.as_ref()),
        Error::JoinError { .. } => Kind::Transient,
        _ => Kind::Permanent,
    }
}

fn classify_chain(error: &(dyn StdError + 'static)) -> Kind {
    // A TLS failure hides behind a transport error of kind Connect, which alone would read as
    // weather: look for it first.
    if is_tls_failure(error) {
        return Kind::Permanent;
    }
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(http) = error.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind;
            return match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted
                | HttpErrorKind::Decode => Kind::Transient,
                // A request that could not even be built (a bad endpoint, https required):
                // configuration, not weather.
                _ => Kind::Permanent,
            };
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => Kind::Missing,
                std::io::ErrorKind::PermissionDenied => Kind::Denied,
                std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::Interrupted => Kind::Transient,
                _ => Kind::Permanent,
            };
        }
        if let Some(status) = http_status(&error.to_string()) {
            return match status {
                500.. | 429 | 408 => Kind::Transient,
                // List requests are not mapped to typed errors: a missing bucket is a 404 here.
                404 => Kind::Missing,
                401 | 403 => Kind::Denied,
                _ => Kind::Permanent,
            };
        }
        current = error.source();
    }
    Kind::Permanent
}

/// True when `error` or one of its causes is a TLS failure (an untrusted or expired
/// certificate, a name mismatch, a handshake the server refused, a peer that does not speak
/// TLS): configuration, which no retry mends. rustls errors travel inside `io::Error`s, whose
/// `source()` skips them, so each `io::Error` is opened with `get_ref`.
pub fn is_tls_failure(error: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
            && is_tls_failure(inner)
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// The HTTP status in object_store's "status code: 503 Service Unavailable" text.
fn http_status(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::is_instance_metadata_failure;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_string().into() }
    }

    #[test]
    fn statuses_in_generic_errors_are_classified() {
        let server = "Error performing GET http://127.0.0.1:9/b/k in 1ms - Server returned non-2xx status code: 503 Service Unavailable: <Error>SlowDown</Error>";
        assert_eq!(classify(&generic(server)), Kind::Transient);
        assert_eq!(classify(&generic("… status code: 429 Too Many Requests: ")), Kind::Transient);
        assert_eq!(classify(&generic("… status code: 500 Internal Server Error: ")), Kind::Transient);
        assert_eq!(classify(&generic("… status code: 400 Bad Request: bad region")), Kind::Permanent);
        assert_eq!(classify(&generic("… status code: 404 Not Found: <Code>NoSuchBucket</Code>")), Kind::Missing);
        assert_eq!(classify(&generic("… status code: 403 Forbidden: <Code>AccessDenied</Code>")), Kind::Denied);
        assert_eq!(classify(&generic("something without a status")), Kind::Permanent);
    }

    #[test]
    fn typed_errors_are_permanent_and_io_errors_by_kind() {
        let not_found = object_store::Error::NotFound { path: "b/k".into(), source: "404".into() };
        assert_eq!(classify(&not_found), Kind::Missing);
        let denied = object_store::Error::PermissionDenied { path: "b/k".into(), source: "403".into() };
        assert_eq!(classify(&denied), Kind::Denied);
        let refused = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(classify(&refused), Kind::Transient);
    }

    #[test]
    fn certificate_failures_are_permanent_though_they_come_as_connection_errors() {
        let certificate = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, certificate);
        let untrusted = object_store::Error::Generic { store: "S3", source: Box::new(io) };
        assert_eq!(classify(&untrusted), Kind::Permanent);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_tls_failure(&reset), "a reset mid-handshake is weather");
    }

    #[test]
    fn a_failed_request_for_instance_credentials_means_no_credentials() {
        let token = generic(
            "Error performing PUT http://169.254.169.254/latest/api/token in 1ms - HTTP error: error sending request",
        );
        assert_eq!(classify(&token), Kind::Denied, "not weather, though it is a connection error");
        let role = generic(
            "Error performing GET http://169.254.169.254/latest/meta-data/iam/security-credentials/ in 1ms - Server returned non-2xx status code: 404 Not Found: ",
        );
        assert_eq!(classify(&role), Kind::Denied, "not a missing bucket");
        assert!(!is_instance_metadata_failure(&generic("… status code: 503 Service Unavailable")));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..20 {
            let step = FIRST_DELAY.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_DELAY);
            let delay = backoff(attempt);
            assert!(
                delay >= step / 2 && delay <= step,
                "attempt {attempt}: {delay:?} within [{:?}, {step:?}]",
                step / 2
            );
        }
        let draws: std::collections::HashSet<u128> = (0..20).map(|_| backoff(8).as_nanos()).collect();
        assert!(draws.len() > 1, "jitter varies between calls");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let retry = Retry::new(Deadline::new(Instant::now(), Duration::from_secs(10)));
        let mut calls = 0;
        let value = retry
            .run("k", || {
                calls += 1;
                let outcome = if calls < 3 { Err(generic("status code: 503 Service Unavailable")) } else { Ok(7) };
                async move { outcome }
            })
            .await
            .expect("third attempt succeeds");
        assert_eq!((value, calls, retry.retries()), (7, 3, 2));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let retry = Retry::new(Deadline::new(Instant::now(), Duration::from_secs(10)));
        let mut calls = 0;
        let failure = retry
            .run("k", || {
                calls += 1;
                async { Err::<(), _>(object_store::Error::PermissionDenied { path: "k".into(), source: "403".into() }) }
            })
            .await
            .expect_err("denied");
        assert!(matches!(failure, Failure::Permanent { kind: Kind::Denied, .. }), "{failure:?}");
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_source_that_stays_down_gives_up_before_the_deadline() {
        let started = Instant::now();
        let retry = Retry::new(Deadline::new(started, Duration::from_millis(800)));
        let failure = retry
            .run("k", || async { Err::<(), _>(generic("status code: 503 Service Unavailable")) })
            .await
            .expect_err("never succeeds");
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(800), "gave up within the budget: {elapsed:?}");
        match failure {
            Failure::GaveUp { attempts, cause, .. } => {
                assert!(attempts >= 2, "retried: {attempts}");
                assert!(cause.contains("503"), "{cause}");
            }
            other => panic!("expected GaveUp, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hanging_request_times_out_within_the_budget() {
        let started = Instant::now();
        let retry = Retry::new(Deadline::new(started, Duration::from_millis(600)));
        let failure = retry
            .run("k", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), object_store::Error>(())
            })
            .await
            .expect_err("times out");
        assert!(started.elapsed() < Duration::from_millis(700), "{:?}", started.elapsed());
        assert!(failure.to_string().contains("no answer within"), "{failure}");
    }
}

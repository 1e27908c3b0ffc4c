//! Retries with exponential backoff and jitter for destinations that may recover within
//! seconds (a dropped connection, an SMTP 4xx reply, a timeout). Permanent refusals are not
//! retried: a rejected login or a missing bucket does not fix itself.

use std::future::Future;
use std::time::Duration;

/// Attempts per send, the first included.
pub(super) const ATTEMPTS: u32 = 3;

/// First wait between attempts when `ABREPORT_RETRY_DELAY_MS` is unset; each later wait is
/// four times the one before (0.2 s, then 0.8 s).
const DEFAULT_FIRST_DELAY: Duration = Duration::from_millis(200);

/// The first wait, from `ABREPORT_RETRY_DELAY_MS` or the default.
fn first_delay() -> Duration {
    std::env::var(crate::env::RETRY_DELAY_MS)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_FIRST_DELAY, Duration::from_millis)
}

/// The wait before attempt `attempt + 1` (attempt counts from 1), ±25% jitter so that many
/// jobs failing together do not knock again in step.
pub(super) fn delay(first: Duration, attempt: u32, jitter_seed: u32) -> Duration {
    let base = first.saturating_mul(4u32.saturating_pow(attempt.saturating_sub(1)));
    let jitter = 0.75 + f64::from(jitter_seed % 1000) / 2000.0;
    base.mul_f64(jitter)
}

/// A cheap varying number for jitter (no cryptographic quality needed).
fn jitter_seed() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

/// Runs `attempt` up to [`ATTEMPTS`] times while it fails with an error `is_transient` calls
/// transient. Returns the outcome and the number of attempts made.
pub(super) async fn retry<T, E, F, Fut>(mut attempt: F, is_transient: impl Fn(&E) -> bool) -> (Result<T, E>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let first = first_delay();
    let mut made = 0;
    loop {
        made += 1;
        match attempt().await {
            Ok(value) => return (Ok(value), made),
            Err(error) if made < ATTEMPTS && is_transient(&error) => {
                let wait = delay(first, made, jitter_seed());
                tracing::warn!(attempt = made, wait_ms = wait.as_millis() as u64, %error, "delivery attempt failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(error) => return (Err(error), made),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_fourfold_within_a_quarter_either_way() {
        let first = Duration::from_millis(200);
        assert_eq!(delay(first, 1, 500), Duration::from_millis(200));
        assert_eq!(delay(first, 2, 500), Duration::from_millis(800));
        assert_eq!(delay(first, 1, 0), Duration::from_millis(150));
        // 800 ms × (0.75 + 999 / 2000) = 999.6 ms, up to float rounding.
        let top = delay(first, 2, 999).as_secs_f64();
        assert!((top - 0.9996).abs() < 1e-9, "{top}");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_up_to_the_limit_and_permanent_ones_are_not() {
        let mut calls = 0;
        let (result, attempts) = retry(
            || {
                calls += 1;
                async { Err::<(), _>("connection refused") }
            },
            |_| true,
        )
        .await;
        assert_eq!((result, attempts, calls), (Err("connection refused"), ATTEMPTS, 3));

        let (result, attempts) = retry(|| async { Err::<(), _>("535 login rejected") }, |_| false).await;
        assert_eq!((result, attempts), (Err("535 login rejected"), 1));

        let mut calls = 0;
        let (result, attempts) = retry(
            || {
                calls += 1;
                let outcome = if calls < 2 { Err("421 try later") } else { Ok(7) };
                async move { outcome }
            },
            |_| true,
        )
        .await;
        assert_eq!((result, attempts), (Ok(7), 2));
    }
}

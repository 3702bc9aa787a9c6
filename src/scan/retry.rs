//! Retrying VirusTotal calls that failed for a passing reason.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::virustotal::VtError;

/// How many times one call is tried in all.
pub const MAX_ATTEMPTS: u32 = 5;

/// Runs `call` until it succeeds, fails for good, or `MAX_ATTEMPTS` is reached,
/// waiting `base * 2^n` (with jitter) between attempts.
pub async fn with_retry<T, F, Fut>(what: &str, base: Duration, mut call: F) -> Result<T, VtError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VtError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if error.is_retryable() && attempt < MAX_ATTEMPTS => {
                let delay = backoff(base, attempt);
                tracing::warn!(call = what, attempt, delay_ms = delay.as_millis() as u64, %error,
                    "VirusTotal call failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Exponential backoff with up to 50 % jitter, so instances do not retry in step.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    let jitter = rand::rng().random_range(0.0..0.5);
    exponential.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = with_retry("test", Duration::from_millis(1), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(VtError::Transient(String::new()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry("test", Duration::from_millis(1), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(VtError::WrongCredentials(String::new()))
        })
        .await;
        assert!(matches!(result, Err(VtError::WrongCredentials(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_within_jitter() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 1);
        let third = backoff(base, 3);
        assert!(first >= base && first <= base.mul_f64(1.5));
        assert!(third >= base * 4 && third <= (base * 4).mul_f64(1.5));
    }
}

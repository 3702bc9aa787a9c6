//! How long to wait before retrying a VirusTotal call that failed for a passing reason.

use std::time::Duration;

use rand::Rng;

/// How many times one call is tried in all.
pub const MAX_ATTEMPTS: u32 = 5;

/// Exponential backoff with up to 50 % jitter, so instances do not retry in step.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    let jitter = rand::rng().random_range(0.0..0.5);
    exponential.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 1);
        let third = backoff(base, 3);
        assert!(first >= base && first <= base.mul_f64(1.5));
        assert!(third >= base * 4 && third <= (base * 4).mul_f64(1.5));
    }
}

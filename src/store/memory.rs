//! Leases and the quota window held in this process, for the embedded store,
//! which only one process can open at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Named leases with expiry times.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl Leases {
    pub fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> bool {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match held.get(key) {
            Some((owner, expires)) if owner != holder && *expires > now => false,
            _ => {
                held.insert(key.to_owned(), (holder.to_owned(), now + ttl));
                true
            }
        }
    }

    pub fn release(&self, key: &str, holder: &str) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(key).is_some_and(|(owner, _)| owner == holder) {
            held.remove(key);
        }
    }
}

/// The times of recent calls, for a sliding-window limit.
#[derive(Default)]
pub struct QuotaWindow {
    calls: Mutex<VecDeque<Instant>>,
}

impl QuotaWindow {
    /// Counts a call that a shared window allowed, so that this window knows
    /// of it should it have to stand in for the shared one.
    pub fn record(&self, window: Duration) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        forget_older_than(&mut calls, now, window);
        calls.push_back(now);
    }

    /// Records one call if fewer than `limit` were recorded in the last
    /// `window`; otherwise records nothing and says how long to wait.
    pub fn take(&self, limit: u32, window: Duration) -> Option<Duration> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        forget_older_than(&mut calls, now, window);
        if calls.len() < limit as usize {
            calls.push_back(now);
            return None;
        }
        let oldest = calls.front().copied().unwrap_or(now);
        Some(
            window
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_millis(1)),
        )
    }
}

fn forget_older_than(calls: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        calls.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_exclusive_until_it_expires() {
        let leases = Leases::default();
        assert!(leases.acquire("scan", "a", Duration::from_millis(30)));
        assert!(!leases.acquire("scan", "b", Duration::from_millis(30)));
        assert!(
            leases.acquire("scan", "a", Duration::from_millis(30)),
            "renewal"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            leases.acquire("scan", "b", Duration::from_millis(30)),
            "expired"
        );
        leases.release("scan", "a");
        assert!(
            !leases.acquire("scan", "a", Duration::from_secs(1)),
            "a cannot release b's"
        );
    }

    #[test]
    fn recorded_calls_count_against_the_limit() {
        let window = QuotaWindow::default();
        let span = Duration::from_secs(60);
        window.record(span);
        assert!(window.take(2, span).is_none());
        assert!(window.take(2, span).is_some(), "the recorded call counts");
    }

    #[test]
    fn the_window_admits_limit_calls_then_says_how_long_to_wait() {
        let window = QuotaWindow::default();
        let span = Duration::from_millis(200);
        assert!(window.take(2, span).is_none());
        assert!(window.take(2, span).is_none());
        let wait = window.take(2, span).unwrap();
        assert!(wait <= span && wait > Duration::ZERO);
        std::thread::sleep(wait);
        assert!(window.take(2, span).is_none());
    }
}

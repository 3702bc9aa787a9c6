//! Integration tests: the real app on an ephemeral port against HTTP fakes of
//! the services it talks to.

// Test code: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod browser;
mod fake_vt_contract;
mod history_and_scaling;
mod journeys;
mod store_contract;
mod summaries;
mod summary_writers;

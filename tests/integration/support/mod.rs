//! Test harness: fakes of external services and helpers to start the app.

pub mod app;
pub mod chrome;
pub mod fake_llm;
pub mod fake_vt;
pub mod redis_server;

//! Integration tests: the real app on an ephemeral port against HTTP fakes of
//! the services it talks to.

mod support;

mod fake_vt_contract;

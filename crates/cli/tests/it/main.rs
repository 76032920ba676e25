//! The `cordon` binary, driven as a user drives it.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod adversary;
mod backup;
mod config;
mod demo;
mod export;
mod gateway;
mod helpdesk;
mod hsm;
mod incident;
mod log;
mod scripts;
mod shared;
mod sso;
mod support;
mod tls;

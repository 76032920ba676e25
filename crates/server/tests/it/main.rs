//! The HTTP API, driven in-process through `app()`.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod adversary;
mod console;
mod detection;
mod fail_closed;
mod faults;
mod incident;
mod policy_cases;
mod requests;
mod sessions;
mod shared;
mod support;

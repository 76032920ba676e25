#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod behaviours;
mod detection;
mod determinism;
mod eval;
mod hostile_input;
mod http;
mod incident;
mod support;

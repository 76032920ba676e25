//! Integration tests of the ledger through its public interface.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod bundle;
mod crash;
mod faults;
mod hostile_input;
mod notes;
mod recovery;
mod roundtrip;
mod support;
mod tamper;
mod vectors;

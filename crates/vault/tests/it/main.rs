//! The vault through its public interface: masking rules and their properties, envelope
//! encryption, blind indexes and value shapes.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod crypto;
mod masking;

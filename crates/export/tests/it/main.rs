//! Exports through their public interface.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod ocsf_mapping;
mod parquet_roundtrip;

//! The RocksDB-backed storage application of a partition.

pub mod app;
pub mod engine;
pub mod manual_compact;

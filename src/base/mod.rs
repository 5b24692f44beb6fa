//! Pegasus base facts shared by every role: CRCs, key and value layouts.

pub mod crc;
pub mod dup_common;
pub mod jemalloc;
pub mod key_schema;
pub mod table_printer;
pub mod throttling;
pub mod value_schema;

/// The most partitions a table may have, in every role. Upstream has no upper bound; this one
/// refuses a create or restore request (or a corrupt backup's app_metadata) that would make the
/// meta allocate and persist billions of partitions, and a remote cluster's answer claiming
/// such a table, while leaving room far beyond real tables (a few thousand at most).
pub const MAX_PARTITION_COUNT: i32 = 1 << 16;

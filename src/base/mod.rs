//! Pegasus base facts shared by every role: CRCs, key and value layouts.

pub mod crc;
pub mod dup_common;
pub mod jemalloc;
pub mod key_schema;
pub mod table_printer;
pub mod throttling;
pub mod value_schema;

//! dsn error names (they travel on the wire as strings) and RocksDB status codes used in the
//! `error` fields of RRDB responses.

use crate::idl::dsn::ErrorCode;

/// The C++ ordinal of an error name (RDSN reply headers carry it beside the name).
pub fn error_ordinal(name: &str) -> Option<u32> {
    ErrorCode::try_from_name(name).map(|c| c.code() as u32)
}

/// RocksDB status codes as carried in RRDB `error` fields.
pub mod rocksdb_status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const CORRUPTION: i32 = 2;
    pub const NOT_SUPPORTED: i32 = 3;
    pub const INVALID_ARGUMENT: i32 = 4;
    pub const IO_ERROR: i32 = 5;
    pub const INCOMPLETE: i32 = 7;
    pub const TIMED_OUT: i32 = 9;
    pub const BUSY: i32 = 11;
    pub const TRY_AGAIN: i32 = 13;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_match_upstream_table() {
        assert_eq!(error_ordinal("ERR_OK"), Some(0));
        assert_eq!(error_ordinal("ERR_OBJECT_NOT_FOUND"), Some(10));
        assert_eq!(error_ordinal("ERR_FILE_OPERATION_FAILED"), Some(20));
        assert_eq!(error_ordinal("ERR_APP_NOT_EXIST"), Some(46));
        assert_eq!(error_ordinal("ERR_NOT_MATCHED"), Some(87));
        assert_eq!(error_ordinal("ERR_NOPE"), None);
    }
}

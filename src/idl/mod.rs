// Thrift IDL bindings: the generated modules (tools/gen_idl.sh, from idl/*.thrift),
// the hand-written rDSN placeholder types (`dsn`) and the hardened binary
// protocol helpers (`protocol`).

// Helper APIs: not every item is used by every binary.
#[allow(dead_code)]
pub mod dsn;
#[allow(dead_code)]
pub mod protocol;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod backup;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod bulk_load;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod command;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod consensus;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod dsn_layer2;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod duplication;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod duplication_internal;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod fd;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod meta_admin;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod metadata;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod nfs;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod partition_split;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod replica_admin;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod request_meta;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod rrdb;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod security;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::nursery, dead_code, unused, non_camel_case_types, non_snake_case, deprecated, unreachable_patterns)]
pub mod utils;

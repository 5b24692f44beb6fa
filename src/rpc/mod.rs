//! RPC transport: framing (THFT, RDSN, HTTP detection), the listening server, the RDSN
//! client used between servers, error names and a bounded thrift reader.

pub mod client;
pub mod codec;
pub mod error;
pub mod frame;
pub mod server;

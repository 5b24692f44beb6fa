//! RPC transport: framing (THFT, RDSN, HTTP detection), the listening server, the RDSN
//! client used between servers, and error names.

pub mod client;
pub mod error;
pub mod frame;
pub mod host_port;
pub mod http;
pub mod server;

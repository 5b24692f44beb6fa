//! pegasus-rs: a wire-compatible reimplementation of the Apache Pegasus meta and replica
//! servers. The modules follow upstream's concepts so a Pegasus engineer finds their way.

pub mod base;
pub mod block_service;
pub mod config;
pub mod flags;
pub mod idl;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod remote_cmd;
pub mod replica;
pub mod rpc;
pub mod sim;
pub mod storage;

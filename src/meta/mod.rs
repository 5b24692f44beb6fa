//! The meta server: cluster state, its persistence, and its RPC surface.

pub mod guardian;
pub mod json;
pub mod server_state;
pub mod service;
pub mod state_store;

//! The meta server: cluster state, its persistence, and its RPC surface.

pub mod app_env_validator;
pub mod backup_policy;
pub mod balancer;
pub mod duplication;
pub mod election;
pub mod guardian;
pub mod json;
pub mod metrics;
pub mod remote_commands;
pub mod server_state;
pub mod service;
pub mod state_store;
pub mod zk_store;

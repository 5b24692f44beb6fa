//! The replica server: the stub hosting replicas, each replica's PacificA state machine and
//! its owner task, the mutation encoding and private log, the replica directory's small
//! files, and NFS file copy between replica servers.

pub mod fs_manager;
pub mod metrics;
pub mod mutation;
pub mod mutation_log;
pub mod nfs;
pub mod pacifica;
pub mod partition;
pub mod replica_files;
pub mod stub;

#[cfg(test)]
mod pacifica_tests;

//! The replica server: the stub hosting replicas, one replica's write owner, the
//! replica directory's small files, and the mutation encoding and private log.

pub mod mutation;
pub mod mutation_log;
pub mod partition;
pub mod replica_files;
pub mod stub;

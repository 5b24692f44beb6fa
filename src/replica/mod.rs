//! The replica server: the stub hosting replicas, one replica's write owner, and the
//! replica directory's small files, and NFS file copy between replica servers.

pub mod nfs;
pub mod partition;
pub mod replica_files;
pub mod stub;

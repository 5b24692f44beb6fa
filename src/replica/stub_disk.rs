//! The replica server's disk RPCs, as upstream answers them: RPC_QUERY_DISK_INFO (space and
//! the primaries/secondaries each disk holds), RPC_ADD_NEW_DISK, and RPC_REPLICA_DISK_MIGRATE
//! (a secondary's data copied to another disk from a checkpoint; the replica is then closed,
//! its old folder kept as `.disk.migrate.ori`, and it is reopened from the new disk when its
//! primary has it added again, learning what it missed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use crate::idl::dsn::{ErrorCode, Gpid};
use crate::idl::metadata::DiskStatus;
use crate::idl::replica_admin::{
    AddNewDiskRequest, AddNewDiskResponse, DiskInfo, DiskMigrationStatus, QueryDiskInfoRequest,
    QueryDiskInfoResponse, ReplicaDiskMigrateRequest, ReplicaDiskMigrateResponse,
};
use crate::rpc::frame::Request;
use crate::rpc::server::{arg, Reply};

use super::super::partition::{Input, Replica};
use super::super::replica_files::{self, InitInfo};
use super::ReplicaStub;

const STATUS_PRIMARY: u8 = 1;
const STATUS_SECONDARY: u8 = 2;

fn status_name(s: DiskStatus) -> &'static str {
    match s {
        DiskStatus::SPACE_INSUFFICIENT => "replication::disk_status::SPACE_INSUFFICIENT",
        DiskStatus::IO_ERROR => "replication::disk_status::IO_ERROR",
        _ => "replication::disk_status::NORMAL",
    }
}

fn migration_name(s: DiskMigrationStatus) -> &'static str {
    match s {
        DiskMigrationStatus::MOVING => "replication::disk_migration_status::MOVING",
        DiskMigrationStatus::MOVED => "replication::disk_migration_status::MOVED",
        DiskMigrationStatus::CLOSED => "replication::disk_migration_status::CLOSED",
        _ => "replication::disk_migration_status::IDLE",
    }
}

fn partition_status_name(code: u8) -> &'static str {
    match code {
        1 => "replication::partition_status::PS_PRIMARY",
        2 => "replication::partition_status::PS_SECONDARY",
        3 => "replication::partition_status::PS_POTENTIAL_SECONDARY",
        4 => "replication::partition_status::PS_ERROR",
        _ => "replication::partition_status::PS_INACTIVE",
    }
}

impl ReplicaStub {
    /// RPC_QUERY_DISK_INFO: every disk with its space and the serving primaries and
    /// secondaries on it (of one table when `app_name` is set; a table this server holds
    /// no replica of is ERR_OBJECT_NOT_FOUND).
    pub(super) fn on_query_disk_info(&self, req: &Request) -> Reply {
        let Some(r) = arg::<QueryDiskInfoRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let replicas: Vec<((i32, i32), Arc<Replica>)> = match self.replicas.read() {
            Ok(m) => m.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let name = r.app_name.unwrap_or_default();
        let mut app_filter = None;
        if !name.is_empty() {
            let found = replicas
                .iter()
                .find(|(_, r)| r.app_info().app_name.as_deref() == Some(name.as_str()));
            match found {
                Some(((app, _), _)) => app_filter = Some(*app),
                None => {
                    return Reply::of(&QueryDiskInfoResponse {
                        err: Some(ErrorCode::OBJECT_NOT_FOUND),
                        total_capacity_mb: None,
                        total_available_mb: None,
                        disk_infos: None,
                    })
                }
            }
        }
        self.fs.update_disk_stat();
        let mut infos = Vec::new();
        let (mut total_cap, mut total_avail) = (0, 0);
        for d in self.fs.dirs() {
            if d.status != DiskStatus::IO_ERROR {
                total_cap += d.capacity_mb;
                total_avail += d.available_mb;
            }
            let mut prim: BTreeMap<i32, BTreeSet<Gpid>> = BTreeMap::new();
            let mut sec: BTreeMap<i32, BTreeSet<Gpid>> = BTreeMap::new();
            for ((app, pidx), rep) in &replicas {
                if app_filter.is_some_and(|a| a != *app) || !rep.dir.starts_with(&d.dir) {
                    continue;
                }
                let set = match rep.status_code() {
                    STATUS_PRIMARY => &mut prim,
                    STATUS_SECONDARY => &mut sec,
                    _ => continue,
                };
                set.entry(*app).or_default().insert(Gpid::new(*app, *pidx));
            }
            infos.push(DiskInfo {
                tag: Some(d.tag.clone()),
                full_dir: Some(d.dir.display().to_string()),
                disk_capacity_mb: Some(d.capacity_mb),
                disk_available_mb: Some(d.available_mb),
                holding_primary_replicas: Some(prim),
                holding_secondary_replicas: Some(sec),
            });
        }
        Reply::of(&QueryDiskInfoResponse {
            err: Some(ErrorCode::OK),
            total_capacity_mb: Some(total_cap),
            total_available_mb: Some(total_avail),
            disk_infos: Some(infos),
        })
    }

    /// RPC_ADD_NEW_DISK: `tag:/path[,...]`, each becoming `<path>/replica/reps`.
    pub(super) fn on_add_new_disk(&self, req: &Request) -> Reply {
        let Some(r) = arg::<AddNewDiskRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let (err, hint) = match self.fs.add_disks(r.disk_str.as_deref().unwrap_or("")) {
            Ok(()) => (ErrorCode::OK, None),
            Err((e, h)) => {
                warn!("add disk {:?}: {e} {h}", r.disk_str);
                (e, Some(h))
            }
        };
        Reply::of(&AddNewDiskResponse {
            err: Some(err),
            err_hint: hint,
        })
    }

    /// RPC_REPLICA_DISK_MIGRATE: checks as upstream, then (answered OK, status MOVING) copies
    /// the secondary's data to the target disk in the background.
    pub(super) fn on_disk_migrate(self: &Arc<Self>, req: &Request) -> Reply {
        let Some(r) = arg::<ReplicaDiskMigrateRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let answer = |err: ErrorCode, hint: Option<String>| {
            Reply::of(&ReplicaDiskMigrateResponse {
                err: Some(err),
                hint,
            })
        };
        let pid = r.pid.unwrap_or_default();
        let key = (pid.app_id, pid.partition_index);
        let Some(rep) = self.replica(pid.app_id, pid.partition_index) else {
            return answer(ErrorCode::OBJECT_NOT_FOUND, None);
        };
        let origin = r.origin_disk.unwrap_or_default();
        let target = r.target_disk.unwrap_or_default();
        let Ok(mut migrations) = self.migrations.lock() else {
            return answer(ErrorCode::UNKNOWN, None);
        };
        let current = migrations
            .get(&key)
            .copied()
            .unwrap_or(DiskMigrationStatus::IDLE);
        if current != DiskMigrationStatus::IDLE {
            return answer(
                ErrorCode::BUSY,
                Some(format!(
                    "Existed migrate task({}) is running",
                    migration_name(current)
                )),
            );
        }
        if rep.status_code() != STATUS_SECONDARY {
            return answer(
                ErrorCode::INVALID_STATE,
                Some(format!(
                    "Invalid partition status({})",
                    partition_status_name(rep.status_code())
                )),
            );
        }
        if origin == target {
            return answer(
                ErrorCode::INVALID_PARAMETERS,
                Some(format!(
                    "Invalid disk tag(origin({origin}) equal target({target}))"
                )),
            );
        }
        let (Some(from), to) = (self.fs.dir_of(&origin), self.fs.dir_of(&target)) else {
            return answer(
                ErrorCode::OBJECT_NOT_FOUND,
                Some(format!("origin disk({origin}) doesn't exist")),
            );
        };
        let Some(to) = to else {
            return answer(
                ErrorCode::OBJECT_NOT_FOUND,
                Some(format!("target disk({target}) doesn't exist")),
            );
        };
        if !rep.dir.starts_with(&from.dir) {
            return answer(
                ErrorCode::OBJECT_NOT_FOUND,
                Some(format!(
                    "replica({pid}) doesn't exist on the origin disk({origin})"
                )),
            );
        }
        if from.status == DiskStatus::IO_ERROR {
            return answer(
                ErrorCode::DISK_IO_ERROR,
                Some(format!(
                    "replica({pid}) exists on an IO-Error origin disk({origin})"
                )),
            );
        }
        let name = rep
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let new_dir = to.dir.join(&name);
        if new_dir.exists() {
            return answer(
                ErrorCode::PATH_ALREADY_EXIST,
                Some(format!(
                    "replica({pid}) already exists on target disk({target})"
                )),
            );
        }
        if to.status != DiskStatus::NORMAL {
            let e = if to.status == DiskStatus::IO_ERROR {
                ErrorCode::DISK_IO_ERROR
            } else {
                ErrorCode::DISK_INSUFFICIENT
            };
            return answer(
                e,
                Some(format!(
                    "replica({pid}) target disk({origin}) is {}",
                    status_name(to.status)
                )),
            );
        }
        migrations.insert(key, DiskMigrationStatus::MOVING);
        drop(migrations);
        info!(
            "{pid}: migrating from disk {origin} to {target} ({})",
            new_dir.display()
        );
        let stub = self.clone();
        tokio::spawn(async move {
            let done = stub.migrate(key, rep, new_dir).await;
            if let Err(e) = &done {
                warn!("{}.{}: disk migration failed: {e}", key.0, key.1);
            }
            if let Ok(mut m) = stub.migrations.lock() {
                m.remove(&key);
            }
        });
        answer(ErrorCode::OK, None)
    }

    /// The migration itself: checkpoint → `<new>.disk.migrate.tmp`, then close the replica
    /// and swap the folders.
    async fn migrate(
        self: &Arc<Self>,
        key: (i32, i32),
        rep: Arc<Replica>,
        new_dir: PathBuf,
    ) -> Result<(), String> {
        let tmp = PathBuf::from(format!("{}.disk.migrate.tmp", new_dir.display()));
        let info = rep.app_info();
        let (ballot, _, _) = rep.progress();
        let app = rep.app().ok_or("the replica is closed")?;
        let src_data = rep.dir.join("data");
        let tmp2 = tmp.clone();
        let decree = tokio::task::spawn_blocking(move || -> Result<i64, String> {
            let _ = std::fs::remove_dir_all(&tmp2);
            let (decree, ckpt) = app.db.checkpoint(&src_data).map_err(|e| e.to_string())?;
            drop(app);
            let rdb = tmp2.join("data").join("rdb");
            copy_dir(&ckpt, &rdb).map_err(|e| format!("copy checkpoint: {e}"))?;
            replica_files::write_app_info(&tmp2, &info).map_err(|e| e.to_string())?;
            let init = InitInfo {
                init_ballot: ballot,
                init_durable_decree: decree,
                init_offset_in_shared_log: 0,
                init_offset_in_private_log: 0,
            };
            replica_files::write_init_info(&tmp2, &init).map_err(|e| e.to_string())?;
            Ok(decree)
        })
        .await
        .map_err(|e| e.to_string())?;
        let decree = match decree {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        if let Ok(mut m) = self.migrations.lock() {
            m.insert(key, DiskMigrationStatus::MOVED);
        }
        // Only a secondary is moved; one that changed role meanwhile stays where it is.
        if rep.status_code() != STATUS_SECONDARY {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err("the replica is no longer a secondary".into());
        }
        self.note_closed(key.0, key.1, &rep);
        if let Ok(mut m) = self.replicas.write() {
            if m.get(&key).is_some_and(|r| Arc::ptr_eq(r, &rep)) {
                m.remove(&key);
            }
        }
        let (done, closed) = tokio::sync::oneshot::channel();
        if rep.send(Input::Close(done)) {
            let _ = tokio::time::timeout(Duration::from_secs(30), closed).await;
        }
        let old = rep.dir.clone();
        drop(rep);
        let ori = PathBuf::from(format!("{}.disk.migrate.ori", old.display()));
        std::fs::rename(&old, &ori).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            format!("rename {} aside: {e}", old.display())
        })?;
        if let Err(e) = std::fs::rename(&tmp, &new_dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::rename(&ori, &old);
            return Err(format!("rename into {}: {e}", new_dir.display()));
        }
        if let Ok(mut m) = self.migrations.lock() {
            m.insert(key, DiskMigrationStatus::CLOSED);
        }
        info!(
            "{}.{}: moved to {} at decree {decree}; it reopens there when its primary adds it again",
            key.0,
            key.1,
            new_dir.display()
        );
        Ok(())
    }
}

/// Copies a directory tree (a checkpoint: regular files in one level, maybe subdirs).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

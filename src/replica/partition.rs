//! One partition replica hosted by this replica server: its storage app and the single
//! writer task that assigns decrees and applies writes in order. (PacificA replication
//! between three replicas builds on this owner-per-partition shape.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::base::value_schema;
use crate::idl::dsn_layer2::AppInfo;
use crate::storage::app::{PartitionApp, WriteRequest, WriteResponse};
use crate::storage::engine::{PegasusDb, TtlSettings};

use super::replica_files::{self, InitInfo};

type WriteJob = (WriteRequest, oneshot::Sender<WriteResponse>);

/// A hosted partition.
pub struct Replica {
    pub app: Arc<PartitionApp>,
    pub dir: PathBuf,
    info: Mutex<AppInfo>,
    ballot: AtomicI64,
    /// True while the meta lists this server as the partition's primary.
    serving: AtomicBool,
    writer: mpsc::Sender<WriteJob>,
}

/// The directory name of a replica: `<app_id>.<pidx>.<app_type>`.
pub fn dir_name(app_id: i32, pidx: i32, app_type: &str) -> String {
    format!("{app_id}.{pidx}.{app_type}")
}

/// Parses a replica directory name into (app_id, pidx, app_type).
pub fn parse_dir_name(name: &str) -> Option<(i32, i32, String)> {
    for suffix in [".err", ".gar", ".tmp", ".ori", ".bak"] {
        if name.ends_with(suffix) {
            return None;
        }
    }
    let mut parts = name.splitn(3, '.');
    let app_id = parts.next()?.parse::<u32>().ok()?;
    let pidx = parts.next()?.parse::<u32>().ok()?;
    let app_type = parts.next()?;
    if app_type.is_empty() || app_id > i32::MAX as u32 || pidx > i32::MAX as u32 {
        return None;
    }
    Some((app_id as i32, pidx as i32, app_type.to_string()))
}

fn env_u32(info: &AppInfo, key: &str) -> Option<u32> {
    info.envs.as_ref()?.get(key)?.parse::<u32>().ok()
}

impl Replica {
    /// Opens the replica in `dir`, creating it (with `.app-info`, `.init-info` and a fresh
    /// database) when it does not exist yet.
    pub fn open(
        dir: &Path,
        info: AppInfo,
        pidx: i32,
        server: String,
    ) -> Result<Arc<Replica>, String> {
        let app_id = info.app_id.unwrap_or(0);
        let fresh = !dir.join(".app-info").exists();
        if fresh {
            std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
            replica_files::write_app_info(dir, &info).map_err(|e| e.to_string())?;
            replica_files::write_init_info(dir, &InitInfo::default()).map_err(|e| e.to_string())?;
        }
        let init = match std::fs::read(dir.join(".init-info")) {
            Ok(b) => replica_files::parse_init_info(&b)?,
            Err(_) => InitInfo::default(),
        };
        let settings = Arc::new(TtlSettings::default());
        let pc = info.partition_count.unwrap_or(1);
        settings
            .partition_version
            .store((pc - 1) as i64, Ordering::Relaxed);
        settings
            .partition_index
            .store(pidx as i64, Ordering::Relaxed);
        let db =
            PegasusDb::open(&dir.join("data").join("rdb"), settings).map_err(|e| e.to_string())?;
        if db.last_committed_decree() < init.init_durable_decree {
            return Err(format!(
                "data is older ({}) than the durable decree {} recorded in .init-info",
                db.last_committed_decree(),
                init.init_durable_decree
            ));
        }
        let app = Arc::new(PartitionApp::new(db, app_id, pidx, server));
        let (tx, mut rx) = mpsc::channel::<WriteJob>(1024);
        let writer_app = app.clone();
        tokio::spawn(async move {
            // The one owner of the write order of this partition.
            while let Some((req, reply)) = rx.recv().await {
                let decree = writer_app.db.last_committed_decree() + 1;
                let resp = writer_app.apply_write(decree, &req, value_schema::now_us());
                let _ = reply.send(resp);
            }
        });
        let r = Arc::new(Replica {
            app,
            dir: dir.to_path_buf(),
            info: Mutex::new(info.clone()),
            ballot: AtomicI64::new(init.init_ballot),
            serving: AtomicBool::new(false),
            writer: tx,
        });
        r.apply_envs(&info);
        Ok(r)
    }

    fn apply_envs(&self, info: &AppInfo) {
        let s = &self.app.db.settings;
        if let Some(ttl) = env_u32(info, "default_ttl") {
            s.default_ttl.store(ttl, Ordering::Relaxed);
        }
        let validate = info
            .envs
            .as_ref()
            .and_then(|e| e.get("replica.split.validate_partition_hash"))
            .map(|v| v == "true")
            .unwrap_or(false);
        s.validate_partition_hash.store(validate, Ordering::Relaxed);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    pub fn ballot(&self) -> i64 {
        self.ballot.load(Ordering::SeqCst)
    }

    pub fn app_info(&self) -> AppInfo {
        self.info.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Makes this replica the serving primary at `ballot`, with the meta's app info.
    pub fn become_primary(&self, ballot: i64, info: &AppInfo) {
        self.apply_envs(info);
        let changed_info = {
            let mut cur = match self.info.lock() {
                Ok(c) => c,
                Err(_) => return,
            };
            let changed = cur.app_name != info.app_name
                || cur.partition_count != info.partition_count
                || cur.max_replica_count != info.max_replica_count;
            *cur = info.clone();
            changed
        };
        if changed_info {
            if let Err(e) = replica_files::write_app_info(&self.dir, info) {
                log::error!("{}: cannot rewrite .app-info: {e}", self.dir.display());
            }
        }
        if ballot > self.ballot() {
            self.ballot.store(ballot, Ordering::SeqCst);
            let init = InitInfo {
                init_ballot: ballot,
                init_durable_decree: 0,
                init_offset_in_shared_log: 0,
                init_offset_in_private_log: 0,
            };
            if let Err(e) = replica_files::write_init_info(&self.dir, &init) {
                log::error!("{}: cannot rewrite .init-info: {e}", self.dir.display());
            }
        }
        self.serving.store(true, Ordering::SeqCst);
    }

    pub fn stop_serving(&self) {
        self.serving.store(false, Ordering::SeqCst);
    }

    /// Queues a write behind every earlier one and waits for its response.
    pub async fn write(&self, req: WriteRequest) -> Option<WriteResponse> {
        let (tx, rx) = oneshot::channel();
        self.writer.send((req, tx)).await.ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        assert_eq!(dir_name(2, 7, "pegasus"), "2.7.pegasus");
        assert_eq!(
            parse_dir_name("2.7.pegasus"),
            Some((2, 7, "pegasus".into()))
        );
        assert_eq!(parse_dir_name("2.7.pegasus.123.gar"), None);
        assert_eq!(parse_dir_name("2.x.pegasus"), None);
        assert_eq!(parse_dir_name("2.7."), None);
        assert_eq!(parse_dir_name("-1.7.pegasus"), None);
    }
}

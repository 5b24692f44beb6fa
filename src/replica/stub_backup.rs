//! Cold backup and restore on the replica server, in upstream's layout on the block service:
//! RPC_COLD_BACKUP (the meta polls a partition's primary until it reports progress 1000): the
//! primary checkpoints its database into `<replica dir>/backup/backup.<policy>.<id>.<decree>.
//! <ts>`, uploads the files to `<root>/<backup id>/<app>_<app id>/<pidx>/chkpt_<host>_<port>/`
//! (skipping files already there with the same md5 and size), then writes `backup_metadata`
//! and, last, `current_checkpoint`. Restore: a fresh primary of a table carrying the
//! `restore.*` envs downloads the partition's checkpoint, verifies each file, reports its
//! progress with RPC_CM_REPORT_RESTORE_STATUS, and opens it as its database.
//! Deviation: secondaries make no local checkpoint of their own (upstream's are never used).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};

use super::ReplicaStub;
use crate::block_service::{self, combine, BlockService};
use crate::idl::backup::{
    BackupRequest, BackupResponse, ConfigurationReportRestoreStatusRequest,
    ConfigurationReportRestoreStatusResponse,
};
use crate::idl::dsn::{ErrorCode, Gpid};
use crate::replica::metrics::ReplicaMetrics;
use crate::rpc::frame::Request;
use crate::rpc::server::{arg, Reply};

/// Progress of a finished upload or download (upstream's PROGRESS_FINISHED).
pub const PROGRESS_FINISHED: i32 = 1000;

/// One partition's upload of one backup.
#[derive(Debug, Default)]
pub struct BackupJob {
    pub backup_id: i64,
    /// When this replica started the job (ms since the epoch).
    start_ms: i64,
    /// Bytes uploaded so far.
    uploaded: AtomicI64,
    progress: AtomicI32,
    total_size: AtomicI64,
    done: AtomicBool,
    failed: Mutex<Option<String>>,
    cancelled: AtomicBool,
}

/// The backup's `backup_metadata` document.
fn metadata_json(decree: i64, ts_ms: i64, files: &[(String, i64, String)]) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(n, s, m)| serde_json::json!({"name": n, "size": s, "md5": m}))
        .collect();
    let total: i64 = files.iter().filter_map(|f| f["size"].as_i64()).sum();
    format!(
        "{{\"checkpoint_decree\":{decree},\"checkpoint_timestamp\":{ts_ms},\"files\":{},\"checkpoint_total_size\":{total}}}",
        serde_json::Value::from(files)
    )
}

fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

/// The backup root of a request: `[backup_path/]<cold_backup_root>`.
pub fn backup_root(backup_path: Option<&str>, cold_backup_root: &str) -> String {
    combine(&[backup_path.unwrap_or(""), cold_backup_root])
}

/// `<root>/<backup_id>/<app_name>_<app_id>/<pidx>`.
pub fn partition_path(root: &str, backup_id: i64, app: &str, app_id: i32, pidx: i32) -> String {
    combine(&[
        root,
        &backup_id.to_string(),
        &format!("{app}_{app_id}"),
        &pidx.to_string(),
    ])
}

/// The files directly in `dir`: (name, size).
fn flat_files(dir: &Path) -> std::io::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type()?.is_file() {
            out.push((
                e.file_name().to_string_lossy().to_string(),
                e.metadata()?.len() as i64,
            ));
        }
    }
    out.sort();
    Ok(out)
}

impl BackupJob {
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failed.lock() {
            *f = Some(why);
        }
    }

    /// Uploads the partition: see the module comment. Runs on a blocking thread.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        fs: &dyn BlockService,
        m: &ReplicaMetrics,
        db: &crate::storage::engine::PegasusDb,
        replica_dir: &Path,
        remote: &str,
        chkpt_name: &str,
        policy: &str,
    ) -> Result<(), String> {
        // Already uploaded by an earlier primary?
        let current = combine(&[remote, "current_checkpoint"]);
        if let Ok(name) = fs.read(&current) {
            let name = String::from_utf8_lossy(&name).to_string();
            let listed = fs
                .list(remote)
                .map(|l| l.iter().any(|e| e.is_dir && e.name == name))
                .unwrap_or(false);
            if !name.is_empty() && listed {
                return Ok(());
            }
        }
        let ts = now_ms();
        let local = replica_dir
            .join("backup")
            .join(format!("backup_tmp.{policy}.{}.{ts}", self.backup_id));
        let _ = std::fs::remove_dir_all(&local);
        let decree = db
            .checkpoint_to(&local)
            .map_err(|e| format!("checkpoint failed: {e}"))?;
        let files = flat_files(&local).map_err(|e| format!("list checkpoint: {e}"))?;
        let total: i64 = files.iter().map(|(_, s)| s).sum::<i64>().max(1);
        self.total_size.store(total, Ordering::SeqCst);
        let dir = combine(&[remote, chkpt_name]);
        let mut uploaded = 0i64;
        let mut metas = Vec::new();
        // `max_concurrent_uploading_file_count` files at a time, each on a thread of its own.
        let width = crate::flags::i64_or("max_concurrent_uploading_file_count", 10).max(1) as usize;
        for batch in files.chunks(width) {
            if self.cancelled.load(Ordering::SeqCst) {
                let _ = std::fs::remove_dir_all(&local);
                return Err("cancelled".into());
            }
            let results: Vec<Result<(String, i64, String), String>> = std::thread::scope(|sc| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|(name, size)| {
                        let (path, target) = (local.join(name), combine(&[&dir, name]));
                        sc.spawn(move || upload_one(fs, m, &path, &target, name, *size))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("upload thread panicked".into()))
                    })
                    .collect()
            });
            for r in results {
                let (name, size, md5) = r?;
                uploaded += size;
                self.uploaded.store(uploaded, Ordering::SeqCst);
                metas.push((name, size, md5));
            }
            self.progress.store(
                ((uploaded as f64 / total as f64) * 999.0) as i32,
                Ordering::SeqCst,
            );
        }
        fs.write(
            &combine(&[&dir, "backup_metadata"]),
            metadata_json(decree, ts, &metas).as_bytes(),
        )
        .map_err(|e| format!("write backup_metadata: {}", e.name()))?;
        fs.write(&current, chkpt_name.as_bytes())
            .map_err(|e| format!("write current_checkpoint: {}", e.name()))?;
        let _ = std::fs::remove_dir_all(&local);
        Ok(())
    }
}

/// Uploads one checkpoint file unless the block service has it with the same md5 and size;
/// returns (name, size, md5).
fn upload_one(
    fs: &dyn BlockService,
    m: &ReplicaMetrics,
    path: &Path,
    target: &str,
    name: &str,
    size: i64,
) -> Result<(String, i64, String), String> {
    let md5 = block_service::md5_file(path).map_err(|e| format!("md5 of {name}: {e}"))?;
    let same = fs
        .meta(target)
        .ok()
        .flatten()
        .is_some_and(|m| m.size == size && m.md5 == md5);
    if !same {
        let stored = match fs.upload(path, target) {
            Ok(s) => s,
            Err(e) => {
                m.backup_file_upload_failed_count.inc();
                return Err(format!("upload {name}: {}", e.name()));
            }
        };
        if stored.size != size || stored.md5 != md5 {
            m.backup_file_upload_failed_count.inc();
            return Err(format!("upload {name}: the stored copy differs"));
        }
        m.backup_file_upload_successful_count.inc();
        m.backup_file_upload_total_bytes.add(size);
    }
    Ok((name.to_string(), size, md5))
}

/// What a restore reads from the table envs.
#[derive(Debug, Clone)]
pub struct RestoreSpec {
    pub provider: String,
    pub root: String,
    pub policy: String,
    pub old_app: String,
    pub old_app_id: i32,
    pub backup_id: i64,
    pub skip_bad_partition: bool,
}

impl RestoreSpec {
    /// The spec of a table created by a restore; `None` for other tables.
    pub fn of(envs: &BTreeMap<String, String>) -> Option<RestoreSpec> {
        let g = |k: &str| envs.get(k).cloned();
        let policy = g("restore.policy_name")?;
        let cluster = g("restore.cluster_name")?;
        let mut root = combine(&[g("restore.restore_path").as_deref().unwrap_or(""), &cluster]);
        if !policy.is_empty() {
            root = combine(&[&root, &policy]);
        }
        Some(RestoreSpec {
            provider: g("restore.block_service_provider")?,
            root,
            policy,
            old_app: g("restore.app_name")?,
            old_app_id: g("restore.app_id")?.parse().ok()?,
            backup_id: g("restore.backup_id")?.parse().ok()?,
            skip_bad_partition: envs.contains_key("restore.skip_bad_partition"),
        })
    }
}

impl ReplicaStub {
    /// RPC_COLD_BACKUP from the meta.
    pub(super) fn on_cold_backup(&self, req: &Request) -> Reply {
        let Some(r) = arg::<BackupRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let pid = r.pid.unwrap_or_default();
        let policy = r.policy.clone().unwrap_or_default();
        let policy_name = policy.policy_name.clone().unwrap_or_default();
        let backup_id = r.backup_id.unwrap_or(0);
        let mut resp = BackupResponse {
            err: Some(ErrorCode::OK),
            pid: Some(pid),
            progress: Some(0),
            policy_name: Some(policy_name.clone()),
            backup_id: Some(backup_id),
            checkpoint_total_size: Some(0),
        };
        let answer = |resp: &mut BackupResponse, e: ErrorCode| {
            resp.err = Some(e);
            Reply::of(&*resp)
        };
        let cold_root = crate::flags::flags()
            .string("cold_backup_root")
            .unwrap_or_default();
        if cold_root.is_empty() {
            return answer(&mut resp, ErrorCode::OPERATION_DISABLED);
        }
        let Some(rep) = self.replica(pid.app_id, pid.partition_index) else {
            return answer(&mut resp, ErrorCode::OBJECT_NOT_FOUND);
        };
        if !rep.is_primary() {
            return answer(&mut resp, ErrorCode::INVALID_STATE);
        }
        let provider = policy.backup_provider_type.clone().unwrap_or_default();
        let Some(fs) = block_service::get(&provider) else {
            return answer(&mut resp, ErrorCode::INVALID_PARAMETERS);
        };
        let key = (pid.app_id, pid.partition_index, policy_name.clone());
        let job = {
            let Ok(mut jobs) = self.backups.lock() else {
                return answer(&mut resp, ErrorCode::BUSY);
            };
            match jobs.get(&key) {
                Some(j) if j.backup_id > backup_id => {
                    return answer(&mut resp, ErrorCode::VERSION_OUTDATED)
                }
                Some(j) if j.backup_id == backup_id => j.clone(),
                old => {
                    if let Some(o) = old {
                        if !o.cancelled.swap(true, Ordering::SeqCst)
                            && !o.done.load(Ordering::SeqCst)
                        {
                            rep.metrics.backup_cancelled_count.inc();
                        }
                    }
                    let j = Arc::new(BackupJob {
                        backup_id,
                        start_ms: now_ms(),
                        ..Default::default()
                    });
                    rep.metrics.backup_started_count.inc();
                    jobs.insert(key.clone(), j.clone());
                    let root = backup_root(r.backup_path.as_deref(), &cold_root);
                    let remote = partition_path(
                        &root,
                        backup_id,
                        r.app_name.as_deref().unwrap_or(""),
                        pid.app_id,
                        pid.partition_index,
                    );
                    let hp = &self.net.me_hp;
                    let chkpt = format!("chkpt_{}_{}", hp.host, hp.port);
                    let (job, rep, policy) = (j.clone(), rep.clone(), policy_name.clone());
                    info!(
                        "backup{{{}.{}.{policy}.{backup_id}}}: started, to {remote}",
                        pid.app_id, pid.partition_index
                    );
                    tokio::task::spawn_blocking(move || {
                        let m = &rep.metrics;
                        let result = match rep.app() {
                            Some(app) => {
                                job.run(fs.as_ref(), m, &app.db, &rep.dir, &remote, &chkpt, &policy)
                            }
                            None => Err("no database".into()),
                        };
                        match result {
                            Ok(()) => {
                                m.backup_successful_count.inc();
                                job.progress.store(PROGRESS_FINISHED, Ordering::SeqCst);
                                job.done.store(true, Ordering::SeqCst);
                                info!(
                                    "backup{{{policy}.{}}} of {remote}: completed",
                                    job.backup_id
                                );
                            }
                            Err(e) => {
                                if !job.cancelled.load(Ordering::SeqCst) {
                                    m.backup_failed_count.inc();
                                }
                                warn!(
                                    "backup{{{policy}.{}}} of {remote}: failed: {e}",
                                    job.backup_id
                                );
                                job.fail(e);
                            }
                        }
                    });
                    j
                }
            }
        };
        self.collect_backup_info(pid.app_id, pid.partition_index);
        resp.progress = Some(job.progress.load(Ordering::SeqCst));
        resp.checkpoint_total_size = Some(job.total_size.load(Ordering::SeqCst));
        let failed = job.failed.lock().ok().and_then(|f| f.clone());
        if failed.is_some() {
            if let Ok(mut jobs) = self.backups.lock() {
                jobs.remove(&key);
            }
            return answer(&mut resp, ErrorCode::LOCAL_APP_FAILURE);
        }
        if job.done.load(Ordering::SeqCst) {
            return answer(&mut resp, ErrorCode::OK);
        }
        answer(&mut resp, ErrorCode::BUSY)
    }

    /// Sets partition (app, pidx)'s backup gauges from its jobs, as upstream's
    /// collect_backup_info: running jobs, and the longest duration and most bytes uploaded
    /// among those uploading. Called on every poll of the meta and when a job ends.
    pub(super) fn collect_backup_info(&self, app_id: i32, pidx: i32) {
        let Some(rep) = self.replica(app_id, pidx) else {
            return;
        };
        let now = now_ms();
        let (mut running, mut longest, mut most) = (0, 0, 0);
        if let Ok(jobs) = self.backups.lock() {
            for ((a, p, _), j) in jobs.iter() {
                let finished = j.done.load(Ordering::SeqCst)
                    || j.cancelled.load(Ordering::SeqCst)
                    || j.failed.lock().map(|f| f.is_some()).unwrap_or(true);
                if (*a, *p) != (app_id, pidx) || finished {
                    continue;
                }
                running += 1;
                longest = longest.max(now - j.start_ms);
                most = most.max(j.uploaded.load(Ordering::SeqCst));
            }
        }
        let m = &rep.metrics;
        m.backup_running_count.set(running);
        m.backup_max_duration_ms.set(longest);
        m.backup_file_upload_max_bytes.set(most);
    }

    /// Sends a restore report of partition `pid` to the meta (best effort).
    async fn report_restore(&self, pid: Gpid, status: ErrorCode, progress: i32, reason: &str) {
        let Some(meta) = self.net.meta() else { return };
        let req = ConfigurationReportRestoreStatusRequest {
            pid: Some(pid),
            restore_status: Some(status),
            progress: Some(progress),
            reason: (!reason.is_empty()).then(|| reason.to_string()),
        };
        let _: Option<ConfigurationReportRestoreStatusResponse> = meta
            .call_struct(
                "RPC_CM_REPORT_RESTORE_STATUS",
                0,
                0,
                &req,
                Duration::from_secs(5),
            )
            .await;
    }

    /// Restores partition `pidx` of the new table `app_id` into `replica_dir` (before it is
    /// opened): downloads and verifies the backed-up checkpoint into `data/rdb`. A bad
    /// partition starts empty with `restore.skip_bad_partition`; otherwise the new table is
    /// dropped, as upstream rolls a failed restore back.
    pub(super) async fn restore_partition(
        &self,
        spec: &RestoreSpec,
        new_app: &str,
        app_id: i32,
        pidx: i32,
        replica_dir: &Path,
    ) -> Result<(), String> {
        let pid = Gpid {
            app_id,
            partition_index: pidx,
        };
        let rdb = replica_dir.join("data").join("rdb");
        if rdb.exists() {
            return Ok(());
        }
        let Some(fs) = block_service::get(&spec.provider) else {
            self.report_restore(
                pid,
                ErrorCode::INVALID_PARAMETERS,
                0,
                "no such block service",
            )
            .await;
            return Err(format!("block service {} is not configured", spec.provider));
        };
        let staging = replica_dir.join(format!("restore.{}.{}", spec.policy, spec.backup_id));
        let remote = partition_path(
            &spec.root,
            spec.backup_id,
            &spec.old_app,
            spec.old_app_id,
            pidx,
        );
        let progress = Arc::new(AtomicI32::new(0));
        let (fs2, staging2, remote2, p2) = (
            fs.clone(),
            staging.clone(),
            remote.clone(),
            progress.clone(),
        );
        let mut job =
            tokio::task::spawn_blocking(move || download(fs2.as_ref(), &remote2, &staging2, &p2));
        let result = loop {
            tokio::select! {
                r = &mut job => break r.unwrap_or_else(|e| Err((ErrorCode::FILE_OPERATION_FAILED, e.to_string()))),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.report_restore(pid, ErrorCode::OK, progress.load(Ordering::SeqCst), "").await;
                }
            }
        };
        match result {
            Ok(()) => {
                std::fs::create_dir_all(replica_dir.join("data")).map_err(|e| e.to_string())?;
                std::fs::rename(&staging, &rdb).map_err(|e| e.to_string())?;
                info!("{app_id}.{pidx}: restored from {remote}");
                self.report_restore(pid, ErrorCode::OK, PROGRESS_FINISHED, "")
                    .await;
                Ok(())
            }
            Err((e, why)) if e == ErrorCode::OBJECT_NOT_FOUND || e == ErrorCode::CORRUPTION => {
                let _ = std::fs::remove_dir_all(&staging);
                if spec.skip_bad_partition {
                    warn!("{app_id}.{pidx}: bad backup data at {remote} ({why}); starting empty");
                    self.report_restore(pid, ErrorCode::IGNORE_BAD_DATA, PROGRESS_FINISHED, &why)
                        .await;
                    return Ok(());
                }
                warn!("{app_id}.{pidx}: bad backup data at {remote} ({why}); dropping {new_app}");
                self.report_restore(
                    pid,
                    ErrorCode::CORRUPTION,
                    progress.load(Ordering::SeqCst),
                    &why,
                )
                .await;
                self.drop_restored_app(new_app).await;
                Err(why)
            }
            Err((e, why)) => {
                let _ = std::fs::remove_dir_all(&staging);
                self.report_restore(pid, ErrorCode::OK, progress.load(Ordering::SeqCst), &why)
                    .await;
                Err(format!("{}: {why}", e.name()))
            }
        }
    }

    /// Asks the meta to drop a table whose restore found bad data.
    async fn drop_restored_app(&self, name: &str) {
        use crate::idl::meta_admin::{
            ConfigurationDropAppRequest, ConfigurationDropAppResponse, DropAppOptions,
        };
        let req = ConfigurationDropAppRequest {
            app_name: Some(name.to_string()),
            options: Some(DropAppOptions {
                success_if_not_exist: Some(true),
                reserve_seconds: Some(1),
            }),
        };
        for _ in 0..10 {
            if let Some(meta) = self.net.meta() {
                let r: Option<ConfigurationDropAppResponse> = meta
                    .call_struct("RPC_CM_DROP_APP", 0, 0, &req, Duration::from_secs(5))
                    .await;
                if r.is_some_and(|r| r.err.is_some_and(|e| e.is_ok())) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Downloads and verifies a partition's checkpoint into `staging`; `progress` in permille.
fn download(
    fs: &dyn BlockService,
    remote: &str,
    staging: &PathBuf,
    progress: &AtomicI32,
) -> Result<(), (ErrorCode, String)> {
    let corrupt = |why: String| (ErrorCode::CORRUPTION, why);
    let name = fs
        .read(&combine(&[remote, "current_checkpoint"]))
        .map_err(|e| (e, format!("read {remote}/current_checkpoint")))?;
    let dir = combine(&[remote, &String::from_utf8_lossy(&name)]);
    let meta = fs
        .read(&combine(&[&dir, "backup_metadata"]))
        .map_err(|e| (e, format!("read {dir}/backup_metadata")))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| corrupt(format!("backup_metadata: {e}")))?;
    let total = meta["checkpoint_total_size"].as_i64().unwrap_or(0).max(1);
    let files = meta["files"]
        .as_array()
        .ok_or_else(|| corrupt("backup_metadata has no files".into()))?;
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging)
        .map_err(|e| (ErrorCode::FILE_OPERATION_FAILED, e.to_string()))?;
    let mut done = 0i64;
    for f in files {
        let (Some(name), Some(size), Some(md5)) =
            (f["name"].as_str(), f["size"].as_i64(), f["md5"].as_str())
        else {
            return Err(corrupt(
                "a file entry of backup_metadata is incomplete".into(),
            ));
        };
        if name.contains('/') || name.starts_with('.') {
            return Err(corrupt(format!(
                "bad file name {name:?} in backup_metadata"
            )));
        }
        let got = fs
            .download(&combine(&[&dir, name]), &staging.join(name))
            .map_err(|e| {
                if e == ErrorCode::OBJECT_NOT_FOUND {
                    corrupt(format!("{name} is missing"))
                } else {
                    (e, format!("download {name}"))
                }
            })?;
        if got.size != size || got.md5 != md5 {
            return Err(corrupt(format!(
                "{name}: {} bytes, md5 {} (expected {size}, {md5})",
                got.size, got.md5
            )));
        }
        done += size;
        progress.store(
            ((done as f64 / total as f64) * 999.0) as i32,
            Ordering::SeqCst,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_follow_upstream() {
        assert_eq!(backup_root(None, "onebox"), "onebox");
        assert_eq!(backup_root(Some("a/b"), "onebox"), "a/b/onebox");
        assert_eq!(
            partition_path("onebox", 1700000000000, "temp", 2, 5),
            "onebox/1700000000000/temp_2/5"
        );
        let m = metadata_json(7, 9, &[("000001.sst".into(), 10, "ab".into())]);
        assert_eq!(
            m,
            r#"{"checkpoint_decree":7,"checkpoint_timestamp":9,"files":[{"md5":"ab","name":"000001.sst","size":10}],"checkpoint_total_size":10}"#
        );
        let mut envs = BTreeMap::new();
        for (k, v) in [
            ("restore.block_service_provider", "local_service"),
            ("restore.cluster_name", "onebox"),
            ("restore.policy_name", ""),
            ("restore.app_name", "temp"),
            ("restore.app_id", "2"),
            ("restore.backup_id", "17"),
        ] {
            envs.insert(k.to_string(), v.to_string());
        }
        let s = RestoreSpec::of(&envs).expect("spec");
        assert_eq!(s.root, "onebox");
        assert!(!s.skip_bad_partition);
        assert!(RestoreSpec::of(&BTreeMap::new()).is_none());
    }

    #[test]
    fn download_verifies_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::block_service::LocalService::new(dir.path().join("bs"));
        let remote = "onebox/1/t_2/0";
        fs.write(&format!("{remote}/chkpt_h_1/000001.sst"), b"hello")
            .unwrap();
        let md5 = block_service::md5_bytes(b"hello");
        let meta = metadata_json(3, 4, &[("000001.sst".into(), 5, md5)]);
        fs.write(
            &format!("{remote}/chkpt_h_1/backup_metadata"),
            meta.as_bytes(),
        )
        .unwrap();
        fs.write(&format!("{remote}/current_checkpoint"), b"chkpt_h_1")
            .unwrap();
        let staging = dir.path().join("restore");
        let p = AtomicI32::new(0);
        download(&fs, remote, &staging, &p).expect("restored");
        assert_eq!(std::fs::read(staging.join("000001.sst")).unwrap(), b"hello");
        // A file changed on the block service is refused.
        std::fs::write(
            dir.path()
                .join("bs")
                .join(remote)
                .join("chkpt_h_1/000001.sst"),
            b"HELLO",
        )
        .unwrap();
        let (e, _) = download(&fs, remote, &staging, &p).expect_err("corrupt");
        assert_eq!(e, ErrorCode::CORRUPTION);
        let (e, _) = download(&fs, "onebox/1/t_2/9", &staging, &p).expect_err("missing");
        assert_eq!(e, ErrorCode::OBJECT_NOT_FOUND);
    }
}

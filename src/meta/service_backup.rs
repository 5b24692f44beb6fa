//! Cold backup and restore on the meta server, as upstream's backup engine and restore code:
//! RPC_CM_START_BACKUP_APP writes the table's `meta/app_metadata` (envs cleared) to the block
//! service, then polls each partition's primary with RPC_COLD_BACKUP about once a second until
//! it reports progress 1000 (ERR_LOCAL_APP_FAILURE fails the whole backup), and finally
//! writes `backup_info`; RPC_CM_QUERY_BACKUP_STATUS lists them (kept in memory, as upstream's
//! one-off backups are). RPC_CM_START_RESTORE reads `app_metadata` from the backup and creates
//! the new table with the `restore.*` envs its first primaries restore from;
//! RPC_CM_REPORT_RESTORE_STATUS and RPC_CM_QUERY_RESTORE_STATUS carry the progress.
//! Deviation: a backup whose table or primary vanishes for good is failed after a bounded
//! number of tries instead of being retried forever.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use super::MetaService;
use crate::block_service::{self, combine};
use crate::idl::backup::*;
use crate::idl::dsn::{ErrorCode, Gpid, RpcAddress};
use crate::idl::dsn_layer2::AppStatus;
use crate::idl::meta_admin::{
    ConfigurationCreateAppRequest, ConfigurationCreateAppResponse, CreateAppOptions,
};

/// Progress of a finished upload (upstream's PROGRESS_FINISHED).
const PROGRESS_FINISHED: i32 = 1000;

/// One one-off backup.
#[derive(Debug)]
pub struct BackupEngine {
    pub backup_id: i64,
    /// The policy name sent to replicas (`fake_policy_<id>` for one-off backups).
    pub policy_name: String,
    pub app_id: i32,
    pub app_name: String,
    pub provider: String,
    pub backup_path: String,
    end_ms: AtomicI64,
    failed: AtomicBool,
}

impl BackupEngine {
    /// A backup of one table by a policy.
    pub fn for_policy(
        policy: &str,
        provider: &str,
        backup_id: i64,
        app_id: i32,
        app: &str,
    ) -> Self {
        BackupEngine {
            backup_id,
            policy_name: policy.to_string(),
            app_id,
            app_name: app.to_string(),
            provider: provider.to_string(),
            backup_path: String::new(),
            end_ms: AtomicI64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn in_progress(&self) -> bool {
        self.end_ms.load(Ordering::SeqCst) == 0 && !self.failed.load(Ordering::SeqCst)
    }

    fn item(&self) -> BackupItem {
        BackupItem {
            backup_id: Some(self.backup_id),
            app_name: Some(self.app_name.clone()),
            backup_provider_type: Some(self.provider.clone()),
            backup_path: Some(self.backup_path.clone()),
            start_time_ms: Some(self.backup_id),
            end_time_ms: Some(self.end_ms.load(Ordering::SeqCst)),
            is_backup_failed: Some(self.failed.load(Ordering::SeqCst)),
        }
    }
}

/// The meta's backups and restores.
#[derive(Debug, Default)]
pub struct Backups {
    engines: std::sync::Mutex<Vec<Arc<BackupEngine>>>,
    /// The backup policies (loaded from the state store when first needed).
    pub(super) policies: tokio::sync::Mutex<Option<BTreeMap<String, super::policy::PolicyState>>>,
    /// Per restored table: (status, progress) of each partition.
    restores: std::sync::Mutex<HashMap<i32, Vec<(ErrorCode, i32)>>>,
}

pub(super) fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

pub(super) fn enabled() -> bool {
    !crate::flags::flags()
        .bool("cold_backup_disabled")
        .unwrap_or(true)
}

pub(super) fn cold_backup_root() -> String {
    crate::flags::flags()
        .string("cold_backup_root")
        .unwrap_or_default()
}

impl MetaService {
    /// RPC_CM_START_BACKUP_APP.
    pub(super) async fn start_backup_app(
        self: &Arc<Self>,
        req: StartBackupAppRequest,
    ) -> Option<StartBackupAppResponse> {
        let resp = |err: ErrorCode, hint: String, id: Option<i64>| {
            if !hint.is_empty() && err != ErrorCode::OK {
                warn!("{hint}");
            }
            Some(StartBackupAppResponse {
                err: Some(err),
                hint_message: Some(hint),
                backup_id: id,
            })
        };
        let app_id = req.app_id.unwrap_or(0);
        let info = {
            let s = self.st().await?;
            s.apps.get(&app_id).map(|a| a.info.clone())
        };
        let Some(mut info) = info else {
            return resp(ErrorCode::APP_NOT_EXIST, String::new(), None);
        };
        if !enabled() {
            return resp(ErrorCode::SERVICE_NOT_ACTIVE, String::new(), None);
        }
        if info.status != Some(AppStatus::AS_AVAILABLE) {
            return resp(
                ErrorCode::INVALID_STATE,
                format!("Backup failed: invalid app id {app_id}."),
                None,
            );
        }
        let provider = req.backup_provider_type.clone().unwrap_or_default();
        let Some(fs) = block_service::get(&provider) else {
            return resp(
                ErrorCode::INVALID_PARAMETERS,
                format!("Backup failed: invalid backup_provider_type {provider}."),
                None,
            );
        };
        let backup_path = req.backup_path.clone().unwrap_or_default();
        let backup_id = now_ms();
        let app_name = info.app_name.clone().unwrap_or_default();
        let engine = Arc::new(BackupEngine {
            backup_id,
            policy_name: format!("fake_policy_{backup_id}"),
            app_id,
            app_name: app_name.clone(),
            provider,
            backup_path: backup_path.clone(),
            end_ms: AtomicI64::new(0),
            failed: AtomicBool::new(false),
        });
        {
            let Ok(mut all) = self.backups.engines.lock() else {
                return resp(ErrorCode::INVALID_STATE, String::new(), None);
            };
            if all.iter().any(|e| e.app_id == app_id && e.in_progress()) {
                return resp(
                    ErrorCode::INVALID_STATE,
                    format!("Backup failed: app {app_id} is actively being backed up."),
                    None,
                );
            }
            all.push(engine.clone());
        }
        let root = combine(&[&backup_path, &cold_backup_root()]);
        info.envs = Some(BTreeMap::new());
        let meta_file = combine(&[
            &root,
            &backup_id.to_string(),
            &format!("{app_name}_{app_id}"),
            "meta",
            "app_metadata",
        ]);
        if let Err(e) = fs.write(
            &meta_file,
            super::super::json::app_info_to_json(&info).as_bytes(),
        ) {
            engine.failed.store(true, Ordering::SeqCst);
            return resp(
                e,
                format!("Backup failed: could not backup metadata for app {app_id}."),
                None,
            );
        }
        let me = self.clone();
        let pc = info.partition_count.unwrap_or(0);
        tokio::spawn(async move { me.run_backup(engine, fs, root, pc).await });
        resp(
            ErrorCode::OK,
            format!(
                "Backup succeed: metadata of app {app_id} has been successfully backed up and backup request has been sent to replica servers."
            ),
            Some(backup_id),
        )
    }

    /// The primary of a partition, `Err` when the table is gone or unavailable.
    async fn primary_of(&self, app_id: i32, pidx: i32) -> Result<Option<RpcAddress>, ()> {
        let Some(s) = self.st().await else {
            return Ok(None);
        };
        let Some(app) = s.apps.get(&app_id) else {
            return Err(());
        };
        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
            return Err(());
        }
        Ok(app
            .partitions
            .get(pidx as usize)
            .and_then(|p| p.primary)
            .filter(|a| a.0 != 0))
    }

    /// Drives one backup: every partition to progress 1000, then `backup_info`.
    async fn run_backup(
        self: Arc<Self>,
        engine: Arc<BackupEngine>,
        fs: Arc<dyn block_service::BlockService>,
        root: String,
        partitions: i32,
    ) {
        let mut tasks = Vec::new();
        for pidx in 0..partitions {
            let (me, e) = (self.clone(), engine.clone());
            tasks.push(tokio::spawn(
                async move { me.backup_partition(&e, pidx).await },
            ));
        }
        for t in tasks {
            let _ = t.await;
        }
        if engine.failed.load(Ordering::SeqCst) {
            warn!(
                "backup {} of app {} failed",
                engine.backup_id, engine.app_id
            );
            return;
        }
        let info = serde_json::json!({
            "backup_id": engine.backup_id,
            "start_time_ms": engine.backup_id,
            "end_time_ms": 0,
            "app_id": engine.app_id,
            "app_name": engine.app_name,
        });
        let file = combine(&[&root, &engine.backup_id.to_string(), "backup_info"]);
        let text = format!(
            "{{\"backup_id\":{},\"start_time_ms\":{},\"end_time_ms\":{},\"app_id\":{},\"app_name\":{}}}",
            info["backup_id"], info["start_time_ms"], info["end_time_ms"], info["app_id"], info["app_name"]
        );
        for _ in 0..30 {
            match fs.write(&file, text.as_bytes()) {
                Ok(()) => {
                    engine.end_ms.store(now_ms(), Ordering::SeqCst);
                    info!(
                        "backup {} of app {} ({}) completed",
                        engine.backup_id, engine.app_id, engine.app_name
                    );
                    return;
                }
                Err(e) if e == ErrorCode::FS_INTERNAL => break,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        engine.failed.store(true, Ordering::SeqCst);
    }

    /// Polls partition `pidx`'s primary until its upload is complete (or the backup fails).
    pub(super) async fn backup_partition(&self, e: &BackupEngine, pidx: i32) {
        let req = BackupRequest {
            pid: Some(Gpid {
                app_id: e.app_id,
                partition_index: pidx,
            }),
            policy: Some(PolicyInfo {
                policy_name: Some(e.policy_name.clone()),
                backup_provider_type: Some(e.provider.clone()),
            }),
            app_name: Some(e.app_name.clone()),
            backup_id: Some(e.backup_id),
            backup_path: (!e.backup_path.is_empty()).then(|| e.backup_path.clone()),
        };
        // About an hour of one-second polls without a primary or with a replica that refuses.
        let mut strikes = 0;
        while !e.failed.load(Ordering::SeqCst) {
            if strikes > 3600 {
                warn!("backup {} of {}.{pidx}: giving up", e.backup_id, e.app_id);
                e.failed.store(true, Ordering::SeqCst);
                return;
            }
            let primary = match self.primary_of(e.app_id, pidx).await {
                Err(()) => {
                    e.failed.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(p) => p,
            };
            let Some(primary) = primary else {
                strikes += 10;
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            };
            let Some(client) = self.peer(primary) else {
                strikes += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let r: Option<BackupResponse> = client
                .call_struct(
                    "RPC_COLD_BACKUP",
                    e.app_id,
                    pidx,
                    &req,
                    Duration::from_secs(10),
                )
                .await;
            match r {
                Some(r) if r.err == Some(ErrorCode::LOCAL_APP_FAILURE) => {
                    warn!(
                        "backup {} of {}.{pidx} failed on {primary}",
                        e.backup_id, e.app_id
                    );
                    e.failed.store(true, Ordering::SeqCst);
                    return;
                }
                Some(r)
                    if r.err == Some(ErrorCode::OK) && r.progress == Some(PROGRESS_FINISHED) =>
                {
                    return
                }
                Some(r) if r.err == Some(ErrorCode::OK) || r.err == Some(ErrorCode::BUSY) => {
                    // Progressing: not a strike.
                }
                _ => strikes += 1,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// RPC_CM_QUERY_BACKUP_STATUS.
    pub(super) async fn query_backup_status(
        &self,
        req: QueryBackupStatusRequest,
    ) -> Option<QueryBackupStatusResponse> {
        let app_id = req.app_id.unwrap_or(0);
        let exists = self.st().await?.apps.contains_key(&app_id);
        let resp = |err, hint: String, items| {
            Some(QueryBackupStatusResponse {
                err: Some(err),
                hint_message: Some(hint),
                backup_items: items,
            })
        };
        if !exists {
            return resp(ErrorCode::APP_NOT_EXIST, String::new(), None);
        }
        if !enabled() {
            return resp(ErrorCode::SERVICE_NOT_ACTIVE, String::new(), None);
        }
        let items: Vec<BackupItem> = self
            .backups
            .engines
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|e| e.app_id == app_id)
                    .filter(|e| req.backup_id.is_none_or(|id| id == e.backup_id))
                    .map(|e| e.item())
                    .collect()
            })
            .unwrap_or_default();
        if items.is_empty() {
            return resp(
                ErrorCode::INVALID_PARAMETERS,
                "Backup not found, please check app_id or backup_id.".into(),
                None,
            );
        }
        let n = items.len();
        resp(
            ErrorCode::OK,
            format!("There are {n} available backups for app {app_id}."),
            Some(items),
        )
    }

    /// RPC_CM_START_RESTORE: creates the new table from the backup's app_metadata.
    pub(super) async fn start_restore(
        self: &Arc<Self>,
        req: ConfigurationRestoreRequest,
    ) -> Option<ConfigurationCreateAppResponse> {
        let fail = |e: ErrorCode| {
            Some(ConfigurationCreateAppResponse {
                err: Some(e),
                appid: Some(-1),
            })
        };
        let provider = req.backup_provider_name.clone().unwrap_or_default();
        let Some(fs) = block_service::get(&provider) else {
            return fail(ErrorCode::INVALID_PARAMETERS);
        };
        let cluster = req.cluster_name.clone().unwrap_or_default();
        let policy = req.policy_name.clone().unwrap_or_default();
        let mut root = combine(&[req.restore_path.as_deref().unwrap_or(""), &cluster]);
        if !policy.is_empty() {
            root = combine(&[&root, &policy]);
        }
        let old_name = req.app_name.clone().unwrap_or_default();
        let old_id = req.app_id.unwrap_or(0);
        let backup_id = req.time_stamp.unwrap_or(0);
        let file = combine(&[
            &root,
            &backup_id.to_string(),
            &format!("{old_name}_{old_id}"),
            "meta",
            "app_metadata",
        ]);
        let bytes = match fs.read(&file) {
            Ok(b) => b,
            Err(e) => {
                warn!("restore: cannot read {file}: {}", e.name());
                return fail(e);
            }
        };
        let Ok(info) = super::super::json::app_info_from_json(&bytes) else {
            return fail(ErrorCode::CORRUPTION);
        };
        if info.app_id != Some(old_id) || info.app_name.as_deref() != Some(old_name.as_str()) {
            // Upstream aborts the meta here; a clear refusal is kinder.
            return fail(ErrorCode::INVALID_PARAMETERS);
        }
        let new_name = req
            .new_app_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| old_name.clone());
        let mut envs = BTreeMap::new();
        envs.insert("restore.block_service_provider".into(), provider);
        envs.insert("restore.cluster_name".into(), cluster);
        envs.insert("restore.policy_name".into(), policy);
        envs.insert("restore.app_name".into(), old_name);
        envs.insert("restore.app_id".into(), old_id.to_string());
        envs.insert("restore.backup_id".into(), backup_id.to_string());
        if req.skip_bad_partition == Some(true) {
            envs.insert("restore.skip_bad_partition".into(), "true".into());
        }
        if let Some(p) = &req.restore_path {
            envs.insert("restore.restore_path".into(), p.clone());
        }
        let pc = info.partition_count.unwrap_or(0);
        let create = ConfigurationCreateAppRequest {
            app_name: Some(new_name.clone()),
            options: Some(CreateAppOptions {
                partition_count: Some(pc),
                replica_count: info.max_replica_count,
                success_if_exist: Some(false),
                app_type: info.app_type.clone(),
                is_stateful: info.is_stateful,
                envs: Some(envs),
                ..Default::default()
            }),
        };
        let resp = self.create_app(create).await?;
        let resp = ConfigurationCreateAppResponse {
            // An existing table of that name is a bad parameter, as upstream answers.
            err: match resp.err {
                Some(e) if e == ErrorCode::APP_EXIST => Some(ErrorCode::INVALID_PARAMETERS),
                e => e,
            },
            appid: resp.appid,
        };
        if resp.err == Some(ErrorCode::OK) {
            let id = resp.appid.unwrap_or(0);
            info!("restore of backup {backup_id} into {new_name} (app {id}) started");
            if let Ok(mut r) = self.backups.restores.lock() {
                r.insert(id, vec![(ErrorCode::OK, 0); pc.max(0) as usize]);
            }
        }
        Some(resp)
    }

    /// RPC_CM_REPORT_RESTORE_STATUS from a restoring primary.
    pub(super) fn report_restore(
        &self,
        req: ConfigurationReportRestoreStatusRequest,
    ) -> ConfigurationReportRestoreStatusResponse {
        let pid = req.pid.unwrap_or_default();
        let Ok(mut all) = self.backups.restores.lock() else {
            return ConfigurationReportRestoreStatusResponse {
                err: Some(ErrorCode::OBJECT_NOT_FOUND),
            };
        };
        let Some(parts) = all.get_mut(&pid.app_id) else {
            return ConfigurationReportRestoreStatusResponse {
                err: Some(ErrorCode::OBJECT_NOT_FOUND),
            };
        };
        if let Some(p) = parts.get_mut(pid.partition_index as usize) {
            p.0 = req.restore_status.unwrap_or(ErrorCode::OK);
            p.1 = p.1.max(req.progress.unwrap_or(0));
        }
        ConfigurationReportRestoreStatusResponse {
            err: Some(ErrorCode::OK),
        }
    }

    /// RPC_CM_QUERY_RESTORE_STATUS.
    pub(super) async fn query_restore(
        &self,
        req: ConfigurationQueryRestoreRequest,
    ) -> Option<ConfigurationQueryRestoreResponse> {
        let id = req.restore_app_id.unwrap_or(0);
        let s = self.st().await?;
        let resp = |err, st, pr| {
            Some(ConfigurationQueryRestoreResponse {
                err: Some(err),
                restore_status: st,
                restore_progress: pr,
            })
        };
        let Some(app) = s.apps.get(&id) else {
            return resp(ErrorCode::APP_NOT_EXIST, None, None);
        };
        if matches!(
            app.info.status,
            Some(AppStatus::AS_DROPPED) | Some(AppStatus::AS_DROPPING)
        ) {
            return resp(ErrorCode::APP_DROPPED, None, None);
        }
        let reported = self
            .backups
            .restores
            .lock()
            .ok()
            .and_then(|r| r.get(&id).cloned())
            .unwrap_or_default();
        let mut status = Vec::new();
        let mut progress = Vec::new();
        for (i, p) in app.partitions.iter().enumerate() {
            let served = p.primary.is_some_and(|a| a.0 != 0)
                || p.secondaries.as_ref().is_some_and(|v| !v.is_empty());
            let (st, pr) = reported.get(i).copied().unwrap_or((ErrorCode::OK, 1000));
            if served {
                status.push(if st == ErrorCode::IGNORE_BAD_DATA {
                    st
                } else {
                    ErrorCode::OK
                });
                progress.push(1000);
            } else {
                status.push(st);
                progress.push(pr.min(1000));
            }
        }
        resp(ErrorCode::OK, Some(status), Some(progress))
    }
}

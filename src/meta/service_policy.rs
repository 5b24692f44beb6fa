//! Backup policies on the meta server, as upstream's backup service runs them:
//! RPC_CM_ADD_BACKUP_POLICY / QUERY / MODIFY; the policy and its backups kept in the state
//! store (`<cluster_root>/backup/<policy>[/<backup_id>]`, upstream's JSON); a scheduler that
//! starts a backup of the policy's tables when it is due (each table's `app_metadata`, its
//! partitions through RPC_COLD_BACKUP, `app_backup_status`, then `backup_info`); and the GC
//! that removes the oldest backups, on the block service and in the store, past the policy's
//! history count. Deviation: the one-day floor of the backup interval is the flag
//! `[meta_server] backup_policy_min_interval_seconds` (default 86400), so tests can shorten it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};

use super::backup::{cold_backup_root, enabled, now_ms, BackupEngine};
use super::MetaService;
use crate::block_service::{self, combine};
use crate::idl::backup::*;
use crate::idl::dsn::ErrorCode;
use crate::idl::dsn_layer2::AppStatus;
use crate::meta::backup_policy::{check_name, parse_start, start_text, BackupInfo, Policy};

/// A policy and its backups.
#[derive(Debug, Clone)]
pub struct PolicyState {
    pub policy: Policy,
    /// Finished backups, oldest first.
    pub history: Vec<BackupInfo>,
    pub running: Option<BackupInfo>,
    /// Whether this meta drives `running` (a backup found unfinished in the store after a
    /// restart or failover is resumed).
    pub active: bool,
}

fn min_interval() -> i64 {
    crate::flags::i64_or("backup_policy_min_interval_seconds", 86400).max(1)
}

fn local_hour(ms: i64) -> i32 {
    use chrono::{TimeZone, Timelike};
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or(24, |t| t.hour() as i32)
}

impl MetaService {
    /// The policies, loaded from the state store on first use.
    async fn with_policies<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, PolicyState>) -> T,
    ) -> Option<T> {
        let mut guard = self.backups.policies.lock().await;
        if guard.is_none() {
            let mut s = self.st().await?;
            let root = s.backup_root();
            let store = s.store_mut();
            let _ = store.ensure_path(&root);
            let mut all = BTreeMap::new();
            for name in store.get_children(&root).unwrap_or_default() {
                let path = format!("{root}/{name}");
                let Some(policy) = store
                    .get_data(&path)
                    .ok()
                    .and_then(|b| Policy::from_json(&b))
                else {
                    continue;
                };
                let mut history = Vec::new();
                let mut running = None;
                for id in store.get_children(&path).unwrap_or_default() {
                    if let Some(b) = store
                        .get_data(&format!("{path}/{id}"))
                        .ok()
                        .and_then(|b| BackupInfo::from_json(&b))
                    {
                        if b.end_ms > 0 {
                            history.push(b);
                        } else {
                            running = Some(b);
                        }
                    }
                }
                history.sort_by_key(|b| b.backup_id);
                all.insert(
                    name,
                    PolicyState {
                        policy,
                        history,
                        running,
                        active: false,
                    },
                );
            }
            *guard = Some(all);
        }
        guard.as_mut().map(f)
    }

    /// Writes a document to the state store (creating or replacing it).
    async fn store_put(&self, path: &str, value: &[u8]) -> bool {
        let Some(mut s) = self.st().await else {
            return false;
        };
        let store = s.store_mut();
        if store.exists(path) {
            store.set_data(path, value).is_ok()
        } else {
            store.create_node(path, value).is_ok()
        }
    }

    async fn store_delete(&self, path: &str) -> bool {
        match self.st().await {
            Some(mut s) => {
                let store = s.store_mut();
                !store.exists(path) || store.delete_node(path, true).is_ok()
            }
            None => false,
        }
    }

    /// RPC_CM_ADD_BACKUP_POLICY.
    pub(super) async fn add_backup_policy(
        &self,
        req: ConfigurationAddBackupPolicyRequest,
    ) -> Option<ConfigurationAddBackupPolicyResponse> {
        let resp = |err: ErrorCode, hint: String| {
            Some(ConfigurationAddBackupPolicyResponse {
                err: Some(err),
                hint_message: Some(hint),
            })
        };
        if !enabled() {
            return resp(ErrorCode::SERVICE_NOT_ACTIVE, String::new());
        }
        let bad = |hint: String| resp(ErrorCode::INVALID_PARAMETERS, hint);
        let interval = req.backup_interval_seconds.unwrap_or(0);
        let reserve = crate::flags::i64_or("cold_backup_checkpoint_reserve_minutes", 10);
        if interval <= reserve * 60 {
            return bad(format!(
                "backup interval must be larger than cold_backup_checkpoint_reserve_minutes={reserve}"
            ));
        }
        let floor = min_interval();
        if interval < floor {
            return bad(if floor == 86400 {
                "backup interval must be >= 86400 (1 day)".into()
            } else {
                format!("backup interval must be >= {floor}")
            });
        }
        let mut app_names = BTreeMap::new();
        {
            let s = self.st().await?;
            for id in req.app_ids.iter().flatten() {
                match s.apps.get(id) {
                    Some(a) if a.info.status == Some(AppStatus::AS_AVAILABLE) => {
                        app_names.insert(*id, a.info.app_name.clone().unwrap_or_default());
                    }
                    _ => return bad(format!("invalid app {id}")),
                }
            }
        }
        let name = req.policy_name.clone().unwrap_or_default();
        if let Err(h) = check_name(&name) {
            return bad(h);
        }
        let provider = req.backup_provider_type.clone().unwrap_or_default();
        let policy = Policy {
            name: name.clone(),
            provider: provider.clone(),
            app_ids: app_names.keys().copied().collect(),
            app_names,
            interval_seconds: interval,
            history_count: req.backup_history_count_to_keep.unwrap_or(6),
            disabled: false,
            start: parse_start(req.start_time.as_deref().unwrap_or("")),
        };
        let exists = self.with_policies(|p| p.contains_key(&name)).await?;
        if exists {
            return bad(format!(
                "invalid policy name: '{name}', policy name is already exist"
            ));
        }
        if block_service::get(&provider).is_none() {
            return bad(format!("invalid backup_provider_type: {provider}"));
        }
        let root = self.st().await?.backup_root();
        let _ = self.store_put(&root, b"").await;
        if !self
            .store_put(&format!("{root}/{name}"), policy.to_json().as_bytes())
            .await
        {
            return resp(ErrorCode::INVALID_STATE, "cannot store the policy".into());
        }
        self.with_policies(|p| {
            p.insert(
                name.clone(),
                PolicyState {
                    policy,
                    history: Vec::new(),
                    running: None,
                    active: false,
                },
            )
        })
        .await;
        info!("backup policy {name} added");
        resp(ErrorCode::OK, String::new())
    }

    /// RPC_CM_QUERY_BACKUP_POLICY.
    pub(super) async fn query_backup_policy(
        &self,
        req: ConfigurationQueryBackupPolicyRequest,
    ) -> Option<ConfigurationQueryBackupPolicyResponse> {
        if !enabled() {
            return Some(ConfigurationQueryBackupPolicyResponse {
                err: Some(ErrorCode::SERVICE_NOT_ACTIVE),
                policys: Some(Vec::new()),
                backup_infos: Some(Vec::new()),
                hint_msg: None,
            });
        }
        let names = req.policy_names.clone().unwrap_or_default();
        let count = req.backup_info_count.unwrap_or(0).max(0) as usize;
        let all = self.with_policies(|p| p.clone()).await?;
        let mut hints = Vec::new();
        let mut policys = Vec::new();
        let mut infos = Vec::new();
        let chosen: Vec<&PolicyState> = if names.is_empty() {
            all.values().collect()
        } else {
            names
                .iter()
                .filter_map(|n| {
                    let got = all.get(n);
                    if got.is_none() {
                        hints.push(format!("invalid policy_name {n}"));
                    }
                    got
                })
                .collect()
        };
        for st in &chosen {
            let p = &st.policy;
            policys.push(PolicyEntry {
                policy_name: Some(p.name.clone()),
                backup_provider_type: Some(p.provider.clone()),
                backup_interval_seconds: Some(p.interval_seconds.to_string()),
                app_ids: Some(p.app_ids.iter().copied().collect()),
                backup_history_count_to_keep: Some(p.history_count),
                start_time: Some(start_text(p.start)),
                is_disable: Some(p.disabled),
            });
            let mut list: Vec<BackupEntry> = Vec::new();
            for b in st.running.iter().chain(st.history.iter().rev()) {
                if list.len() >= count {
                    break;
                }
                list.push(BackupEntry {
                    backup_id: Some(b.backup_id),
                    start_time_ms: Some(b.start_ms),
                    end_time_ms: Some(b.end_ms),
                    app_ids: Some(b.app_ids.iter().copied().collect()),
                });
            }
            infos.push(list);
        }
        let err = if chosen.is_empty() && !names.is_empty() {
            ErrorCode::INVALID_PARAMETERS
        } else {
            ErrorCode::OK
        };
        Some(ConfigurationQueryBackupPolicyResponse {
            err: Some(err),
            policys: Some(policys),
            backup_infos: Some(infos),
            hint_msg: (!hints.is_empty()).then(|| hints.join("\n\t")),
        })
    }

    /// RPC_CM_MODIFY_BACKUP_POLICY.
    pub(super) async fn modify_backup_policy(
        &self,
        req: ConfigurationModifyBackupPolicyRequest,
    ) -> Option<ConfigurationModifyBackupPolicyResponse> {
        let resp = |err: ErrorCode, hint: String| {
            Some(ConfigurationModifyBackupPolicyResponse {
                err: Some(err),
                hint_message: Some(hint),
            })
        };
        if !enabled() {
            return resp(ErrorCode::SERVICE_NOT_ACTIVE, String::new());
        }
        let name = req.policy_name.clone().unwrap_or_default();
        let Some(mut st) = self.with_policies(|p| p.get(&name).cloned()).await? else {
            return resp(ErrorCode::INVALID_PARAMETERS, String::new());
        };
        let mut err = ErrorCode::OK;
        let mut hint = String::new();
        let p = &mut st.policy;
        let mut changed = false;
        if let Some(d) = req.is_disable {
            if d && !p.disabled && st.running.is_some() && req.force_disable != Some(true) {
                err = ErrorCode::BUSY;
                hint = "policy is under backup".into();
            } else if !d && !p.disabled {
                hint = "policy is already enabled".into();
            } else if d != p.disabled {
                p.disabled = d;
                changed = true;
            }
        }
        {
            let s = self.st().await?;
            for id in req.add_appids.iter().flatten() {
                match s.apps.get(id) {
                    Some(a) if a.info.status == Some(AppStatus::AS_AVAILABLE) => {
                        p.app_ids.insert(*id);
                        p.app_names
                            .insert(*id, a.info.app_name.clone().unwrap_or_default());
                        changed = true;
                    }
                    _ => warn!("modify backup policy {name}: skipping invalid app {id}"),
                }
            }
        }
        for id in req.removal_appids.iter().flatten() {
            changed |= p.app_ids.remove(id);
            p.app_names.remove(id);
        }
        if let Some(i) = req.new_backup_interval_sec {
            if i >= min_interval() && i > 0 {
                p.interval_seconds = i;
                changed = true;
            } else {
                warn!("modify backup policy {name}: ignoring invalid interval {i}");
            }
        }
        if let Some(c) = req.backup_history_count_to_keep.filter(|c| *c > 0) {
            p.history_count = c;
            changed = true;
        }
        if let Some(t) = &req.start_time {
            let s = parse_start(t);
            if s != (24, 0) || t.trim() == "24:00" {
                p.start = s;
                changed = true;
            }
        }
        if changed {
            let root = self.st().await?.backup_root();
            let json = st.policy.to_json();
            self.store_put(&format!("{root}/{name}"), json.as_bytes())
                .await;
            let policy = st.policy.clone();
            self.with_policies(|all| {
                if let Some(e) = all.get_mut(&name) {
                    e.policy = policy;
                }
            })
            .await;
        }
        resp(err, hint)
    }

    /// Starts the policy scheduler (every second: due backups, and the GC).
    pub fn start_policy_scheduler(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if me.election.view().is_leader && enabled() {
                    me.policy_round().await;
                }
            }
        });
    }

    async fn policy_round(self: &Arc<Self>) {
        let now = now_ms();
        let hour = local_hour(now);
        let Some(due) = self
            .with_policies(|all| {
                let mut due = Vec::new();
                for st in all.values_mut() {
                    if let (Some(b), false) = (&st.running, st.active) {
                        // Unfinished when this meta took over: carry it on.
                        st.active = true;
                        due.push((st.policy.clone(), b.clone()));
                        continue;
                    }
                    if st.policy.disabled || st.running.is_some() {
                        continue;
                    }
                    let last = st.history.last().map(|b| b.start_ms);
                    if st.policy.due(now, hour, last) {
                        let b = BackupInfo {
                            backup_id: now,
                            start_ms: now,
                            end_ms: 0,
                            app_ids: st.policy.app_ids.clone(),
                            app_names: st.policy.app_names.clone(),
                            status: 1,
                        };
                        st.running = Some(b.clone());
                        st.active = true;
                        due.push((st.policy.clone(), b));
                    }
                }
                due
            })
            .await
        else {
            return;
        };
        for (policy, info) in due {
            let me = self.clone();
            tokio::spawn(async move { me.run_policy_backup(policy, info).await });
        }
    }

    /// One scheduled backup of a policy, then its GC.
    async fn run_policy_backup(self: Arc<Self>, policy: Policy, mut info: BackupInfo) {
        let Some(root) = self.st().await.map(|s| s.backup_root()) else {
            return;
        };
        let node = format!("{root}/{}/{}", policy.name, info.backup_id);
        self.store_put(&node, info.to_json().as_bytes()).await;
        let Some(fs) = block_service::get(&policy.provider) else {
            warn!(
                "backup policy {}: no block service {}",
                policy.name, policy.provider
            );
            // Tried again at the next round.
            self.with_policies(|all| {
                if let Some(st) = all.get_mut(&policy.name) {
                    st.active = false;
                }
            })
            .await;
            return;
        };
        let cold_root = cold_backup_root();
        info!(
            "backup policy {}: backup {} starts",
            policy.name, info.backup_id
        );
        for (&app_id, app_name) in &info.app_names {
            let app = self
                .st()
                .await
                .and_then(|s| s.apps.get(&app_id).map(|a| a.info.clone()));
            let Some(mut app) = app.filter(|a| a.status == Some(AppStatus::AS_AVAILABLE)) else {
                warn!(
                    "backup policy {}: table {app_id} is gone; skipped",
                    policy.name
                );
                continue;
            };
            app.envs = Some(BTreeMap::new());
            let dir = combine(&[
                &cold_root,
                &info.backup_id.to_string(),
                &format!("{app_name}_{app_id}"),
            ]);
            let meta = crate::meta::json::app_info_to_json(&app);
            if fs
                .write(&combine(&[&dir, "meta", "app_metadata"]), meta.as_bytes())
                .is_err()
            {
                warn!(
                    "backup policy {}: cannot write app_metadata of {app_id}",
                    policy.name
                );
                continue;
            }
            let e = Arc::new(BackupEngine::for_policy(
                &policy.name,
                &policy.provider,
                info.backup_id,
                app_id,
                app_name,
            ));
            let mut tasks = Vec::new();
            for pidx in 0..app.partition_count.unwrap_or(0) {
                let (me, e) = (self.clone(), e.clone());
                tasks.push(tokio::spawn(
                    async move { me.backup_partition(&e, pidx).await },
                ));
            }
            for t in tasks {
                let _ = t.await;
            }
            if !e.has_failed() {
                let _ = fs.write(
                    &combine(&[&dir, "meta", "app_backup_status"]),
                    br#"{"total_checkpoint_size":0}"#,
                );
            }
        }
        info.end_ms = now_ms();
        let doc = format!(
            "{{\"backup_id\":{},\"start_time_ms\":{},\"end_time_ms\":{},\"app_ids\":{},\"app_names\":{}}}",
            info.backup_id,
            info.start_ms,
            info.end_ms,
            serde_json::Value::from(info.app_ids.iter().copied().collect::<Vec<_>>()),
            serde_json::to_string(&info.app_names).unwrap_or_else(|_| "{}".into())
        );
        let _ = fs.write(
            &combine(&[&cold_root, &info.backup_id.to_string(), "backup_info"]),
            doc.as_bytes(),
        );
        self.store_put(&node, info.to_json().as_bytes()).await;
        info!(
            "backup policy {}: backup {} done",
            policy.name, info.backup_id
        );
        let expired = self
            .with_policies(|all| {
                let Some(st) = all.get_mut(&policy.name) else {
                    return Vec::new();
                };
                st.running = None;
                st.active = false;
                st.history.push(info.clone());
                let keep = st.policy.history_count.max(1) as usize;
                let n = st.history.len().saturating_sub(keep);
                st.history.drain(..n).collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        for mut old in expired {
            let node = format!("{root}/{}/{}", policy.name, old.backup_id);
            old.status = 2;
            self.store_put(&node, old.to_json().as_bytes()).await;
            match fs.remove(&combine(&[&cold_root, &old.backup_id.to_string()]), true) {
                r if r.is_ok() || r == Err(ErrorCode::OBJECT_NOT_FOUND) => {
                    self.store_delete(&node).await;
                    info!(
                        "backup policy {}: backup {} removed",
                        policy.name, old.backup_id
                    );
                }
                Ok(()) => {}
                Err(e) => warn!(
                    "backup policy {}: cannot remove backup {}: {}",
                    policy.name,
                    old.backup_id,
                    e.name()
                ),
            }
        }
    }
}

//! The duplication RPCs of the meta server, as upstream's meta_duplication_service:
//! RPC_CM_ADD_DUPLICATION (upstream's checks and hints, dupid from the clock),
//! RPC_CM_MODIFY_DUPLICATION (status and fail mode through `duplication.rs`'s state machine;
//! DS_REMOVED deletes the duplication), RPC_CM_QUERY_DUPLICATION, RPC_CM_LIST_DUPLICATION, and
//! RPC_CM_DUPLICATION_SYNC (replica servers report what their primaries shipped and learn the
//! duplications of the tables they lead). Everything is kept in the state store under the
//! table's node. A duplication that copies the checkpoint first moves from DS_PREPARE to
//! DS_APP to DS_LOG as the follower table is created on the remote cluster (`follow_up`).

use std::collections::BTreeMap;
use std::sync::Arc;

use log::{info, warn};

use super::MetaService;
use crate::base::dup_common;
use crate::idl::dsn::ErrorCode;
use crate::idl::dsn_layer2::AppStatus;
use crate::idl::duplication::*;
use crate::idl::meta_admin::{
    ConfigurationCreateAppRequest, ConfigurationCreateAppResponse, CreateAppOptions,
};
use crate::idl::utils::PatternMatchType;
use crate::meta::duplication::{status_invalid, status_name, DupInfo};

fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

fn app_status_name(s: Option<AppStatus>) -> String {
    let n = match s {
        Some(AppStatus::AS_INVALID) => "AS_INVALID",
        Some(AppStatus::AS_AVAILABLE) => "AS_AVAILABLE",
        Some(AppStatus::AS_CREATING) => "AS_CREATING",
        Some(AppStatus::AS_CREATE_FAILED) => "AS_CREATE_FAILED",
        Some(AppStatus::AS_DROPPING) => "AS_DROPPING",
        Some(AppStatus::AS_DROP_FAILED) => "AS_DROP_FAILED",
        Some(AppStatus::AS_DROPPED) => "AS_DROPPED",
        Some(AppStatus::AS_RECALLING) => "AS_RECALLING",
        _ => "AS_INVALID",
    };
    format!("app_status::{n}")
}

/// Whether `name` matches `pattern` as upstream's pattern_match; `Err` for unsupported types.
fn pattern_match(name: &str, pattern: &str, t: PatternMatchType) -> Result<bool, String> {
    Ok(match t {
        PatternMatchType::PMT_MATCH_ALL => true,
        PatternMatchType::PMT_MATCH_EXACT => name == pattern,
        PatternMatchType::PMT_MATCH_ANYWHERE => name.contains(pattern),
        PatternMatchType::PMT_MATCH_PREFIX => name.starts_with(pattern),
        PatternMatchType::PMT_MATCH_POSTFIX => name.ends_with(pattern),
        other => {
            let s = match other {
                PatternMatchType::PMT_MATCH_REGEX => "regex",
                _ => "invalid",
            };
            return Err(format!(
                "match_type is not supported: val={}, str={s}",
                other.0
            ));
        }
    })
}

impl MetaService {
    fn dup_min_update_ms() -> i64 {
        crate::flags::i64_or("dup_progress_min_update_period_ms", 5000).max(0)
    }

    /// RPC_CM_ADD_DUPLICATION.
    pub(super) async fn add_duplication(
        &self,
        req: DuplicationAddRequest,
    ) -> Option<DuplicationAddResponse> {
        let cfg = dup_common::get();
        let mut resp = DuplicationAddResponse {
            err: Some(ErrorCode::OK),
            appid: Some(0),
            dupid: Some(0),
            hint: None,
            remote_app_name: None,
            remote_replica_count: None,
        };
        let fail = |mut r: DuplicationAddResponse, e: ErrorCode, hint: String| {
            r.err = Some(e);
            r.hint = Some(hint);
            Some(r)
        };
        if !cfg.enabled {
            resp.err = Some(ErrorCode::SERVICE_NOT_ACTIVE);
            return Some(resp);
        }
        let app_name = req.app_name.clone().unwrap_or_default();
        let remote = req.remote_cluster_name.clone().unwrap_or_default();
        let remote_app = req
            .remote_app_name
            .clone()
            .unwrap_or_else(|| app_name.clone());
        let mut remote_count = req.remote_replica_count.unwrap_or(0);
        let checkpoint = req.is_duplicating_checkpoint.unwrap_or(true);
        if remote == cfg.current_name() {
            return fail(
                resp,
                ErrorCode::INVALID_PARAMETERS,
                "illegal operation: adding duplication to itself".into(),
            );
        }
        if !cfg.ignore_other_cluster_ids {
            if let Err((e, m)) = cfg.cluster_id(&remote) {
                return fail(
                    resp,
                    ErrorCode::INVALID_PARAMETERS,
                    format!(
                        "get_duplication_cluster_id({remote}) failed, error: {}: {m}",
                        e.name()
                    ),
                );
            }
        }
        if !cfg.clusters.contains_key(&remote) {
            return fail(
                resp,
                ErrorCode::INVALID_PARAMETERS,
                format!("failed to find cluster[{remote}] address in config [pegasus.clusters]"),
            );
        }
        if remote_count < 0 {
            return fail(
                resp,
                ErrorCode::INVALID_PARAMETERS,
                format!(
                    "invalid remote_replica_count({remote_count}) which should never be negative"
                ),
            );
        }
        let mut s = self.st().await?;
        let Some(app) = s.app_by_name(&app_name) else {
            return fail(
                resp,
                ErrorCode::APP_NOT_EXIST,
                format!("app {app_name} was not found"),
            );
        };
        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
            return fail(
                resp,
                ErrorCode::APP_NOT_EXIST,
                format!(
                    "app status was not AS_AVAILABLE: name={app_name}, status={}",
                    app_status_name(app.info.status)
                ),
            );
        }
        let app_id = app.info.app_id.unwrap_or(0);
        let partition_count = app.info.partition_count.unwrap_or(0);
        if remote_count == 0 {
            remote_count = app.info.max_replica_count.unwrap_or(3);
        }
        let existing = s
            .dups
            .get(&app_id)
            .and_then(|m| m.values().find(|d| d.remote_cluster == remote).cloned());
        let mut resp_err = ErrorCode::OK;
        let dup = match existing {
            Some(d) => {
                resp_err = ErrorCode::DUP_EXIST;
                d
            }
            None => {
                for (other_id, m) in &s.dups {
                    if *other_id == app_id {
                        continue;
                    }
                    if let Some(d) = m
                        .values()
                        .find(|d| d.remote_cluster == remote && d.remote_app_name == remote_app)
                    {
                        return fail(
                            resp,
                            ErrorCode::INVALID_PARAMETERS,
                            format!(
                                "illegal operation: another app({}) is also duplicated to the same remote app(cluster={remote}, app={remote_app})",
                                d.app_name
                            ),
                        );
                    }
                }
                let mut id = (now_ms() / 1000) as i32;
                while s.dups.get(&app_id).is_some_and(|m| m.contains_key(&id)) {
                    id += 1;
                }
                DupInfo::new(
                    id,
                    app_id,
                    &app_name,
                    partition_count,
                    &remote,
                    &remote_app,
                    remote_count,
                    now_ms(),
                )
            }
        };
        let to = if checkpoint {
            DuplicationStatus::DS_PREPARE
        } else {
            DuplicationStatus::DS_LOG
        };
        let changed = match dup.check_alter(to, DuplicationFailMode::FAIL_SLOW) {
            Ok(c) => c,
            Err(e) => {
                let hint = format!(
                    "start dup[{app_name}({})] failed: err = {}",
                    dup.id,
                    e.name()
                );
                warn!("{hint}");
                return fail(resp, e, hint);
            }
        };
        let path = format!("{}/duplication/{}", s.app_path(app_id), dup.id);
        let mut dup = dup;
        if resp_err == ErrorCode::OK || changed {
            let doc = dup.to_json_with(to, DuplicationFailMode::FAIL_SLOW);
            let store = s.store_mut();
            let written = if store.exists(&path) {
                store.set_data(&path, doc.as_bytes())
            } else {
                store
                    .ensure_path(&path[..path.rfind('/').unwrap_or(0)])
                    .and_then(|_| store.create_node(&path, doc.as_bytes()))
            };
            if let Err(e) = written {
                warn!("add duplication: cannot write {path}: {e}");
                resp.err = Some(ErrorCode::FS_INTERNAL);
                return Some(resp);
            }
            dup.commit(to, DuplicationFailMode::FAIL_SLOW);
        }
        info!(
            "duplication {} of app {app_name}({app_id}) to {remote}.{} is {}",
            dup.id,
            dup.remote_app_name,
            status_name(dup.status)
        );
        resp.err = Some(resp_err);
        resp.appid = Some(app_id);
        resp.dupid = Some(dup.id);
        resp.remote_app_name = Some(dup.remote_app_name.clone());
        resp.remote_replica_count = Some(dup.remote_replica_count);
        s.dups.entry(app_id).or_default().insert(dup.id, dup);
        if let Some(a) = s.apps.get_mut(&app_id) {
            a.info.duplicating = Some(true);
        }
        Some(resp)
    }

    /// RPC_CM_MODIFY_DUPLICATION.
    pub(super) async fn modify_duplication(
        &self,
        req: DuplicationModifyRequest,
    ) -> Option<DuplicationModifyResponse> {
        let mut resp = DuplicationModifyResponse {
            err: Some(ErrorCode::OK),
            appid: Some(0),
        };
        if !dup_common::get().enabled {
            resp.err = Some(ErrorCode::SERVICE_NOT_ACTIVE);
            return Some(resp);
        }
        let mut s = self.st().await?;
        let name = req.app_name.clone().unwrap_or_default();
        let app_id = match s.app_by_name(&name) {
            Some(a) if a.info.status == Some(AppStatus::AS_AVAILABLE) => a.info.app_id.unwrap_or(0),
            _ => {
                resp.err = Some(ErrorCode::APP_NOT_EXIST);
                return Some(resp);
            }
        };
        let dupid = req.dupid.unwrap_or(0);
        let Some(dup) = s.dups.get(&app_id).and_then(|m| m.get(&dupid)).cloned() else {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Some(resp);
        };
        let to = req.status.unwrap_or(dup.status);
        let mode = req.fail_mode.unwrap_or(dup.fail_mode);
        match dup.check_alter(to, mode) {
            Err(e) => {
                resp.err = Some(e);
                return Some(resp);
            }
            Ok(false) => return Some(resp),
            Ok(true) => {}
        }
        let path = format!("{}/duplication/{dupid}", s.app_path(app_id));
        let store = s.store_mut();
        let written = if to == DuplicationStatus::DS_REMOVED {
            if store.exists(&path) {
                store.delete_node(&path, true)
            } else {
                Ok(())
            }
        } else {
            store.set_data(&path, dup.to_json_with(to, mode).as_bytes())
        };
        if let Err(e) = written {
            warn!("modify duplication: cannot write {path}: {e}");
            resp.err = Some(ErrorCode::FS_INTERNAL);
            return Some(resp);
        }
        if to == DuplicationStatus::DS_REMOVED {
            if let Some(m) = s.dups.get_mut(&app_id) {
                m.remove(&dupid);
                if m.is_empty() {
                    s.dups.remove(&app_id);
                }
            }
            let still = s.dups.contains_key(&app_id);
            if let Some(a) = s.apps.get_mut(&app_id) {
                a.info.duplicating = Some(still);
            }
        } else if let Some(d) = s.dups.get_mut(&app_id).and_then(|m| m.get_mut(&dupid)) {
            d.commit(to, mode);
        }
        info!(
            "duplication {dupid} of app {name}({app_id}) is now {}",
            status_name(to)
        );
        resp.appid = Some(app_id);
        Some(resp)
    }

    /// RPC_CM_QUERY_DUPLICATION.
    pub(super) async fn query_duplication(
        &self,
        req: DuplicationQueryRequest,
    ) -> Option<DuplicationQueryResponse> {
        let mut resp = DuplicationQueryResponse {
            err: Some(ErrorCode::OK),
            appid: Some(0),
            entry_list: Some(Vec::new()),
        };
        if !dup_common::get().enabled {
            resp.err = Some(ErrorCode::SERVICE_NOT_ACTIVE);
            return Some(resp);
        }
        let s = self.st().await?;
        let name = req.app_name.unwrap_or_default();
        match s.app_by_name(&name) {
            Some(a) if a.info.status == Some(AppStatus::AS_AVAILABLE) => {
                let id = a.info.app_id.unwrap_or(0);
                resp.appid = Some(id);
                resp.entry_list = Some(
                    s.dups
                        .get(&id)
                        .map(|m| m.values().map(DupInfo::list_entry).collect())
                        .unwrap_or_default(),
                );
            }
            _ => resp.err = Some(ErrorCode::APP_NOT_EXIST),
        }
        Some(resp)
    }

    /// RPC_CM_LIST_DUPLICATION.
    pub(super) async fn list_duplication(
        &self,
        req: DuplicationListRequest,
    ) -> Option<DuplicationListResponse> {
        let mut resp = DuplicationListResponse {
            err: Some(ErrorCode::OK),
            hint_message: Some(String::new()),
            app_states: Some(BTreeMap::new()),
        };
        if !dup_common::get().enabled {
            resp.err = Some(ErrorCode::SERVICE_NOT_ACTIVE);
            return Some(resp);
        }
        let s = self.st().await?;
        let pattern = req.app_name_pattern.unwrap_or_default();
        let t = req.match_type.unwrap_or(PatternMatchType::PMT_INVALID);
        let mut apps: Vec<_> = s
            .apps
            .values()
            .filter(|a| a.info.status == Some(AppStatus::AS_AVAILABLE))
            .collect();
        apps.sort_by(|a, b| a.info.app_name.cmp(&b.info.app_name));
        let mut states = BTreeMap::new();
        for a in apps {
            let name = a.info.app_name.clone().unwrap_or_default();
            match pattern_match(&name, &pattern, t) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(m) => {
                    resp.err = Some(ErrorCode::NOT_IMPLEMENTED);
                    resp.hint_message = Some(m);
                    return Some(resp);
                }
            }
            let id = a.info.app_id.unwrap_or(0);
            states.insert(
                name.clone(),
                DuplicationAppState {
                    appid: Some(id),
                    duplications: Some(
                        s.dups
                            .get(&id)
                            .map(|m| m.iter().map(|(k, d)| (*k, d.list_entry())).collect())
                            .unwrap_or_default(),
                    ),
                    app_name: Some(name),
                    partition_count: a.info.partition_count,
                },
            );
        }
        resp.app_states = Some(states);
        Some(resp)
    }

    /// RPC_CM_DUPLICATION_SYNC.
    pub(super) async fn duplication_sync(
        self: &Arc<Self>,
        req: DuplicationSyncRequest,
    ) -> Option<DuplicationSyncResponse> {
        let mut resp = DuplicationSyncResponse {
            err: Some(ErrorCode::OK),
            dup_map: Some(BTreeMap::new()),
        };
        if !dup_common::get().enabled {
            resp.err = Some(ErrorCode::SERVICE_NOT_ACTIVE);
            return Some(resp);
        }
        let mut s = self.st().await?;
        let node = req.node.map(|a| a.0).unwrap_or(0);
        if node == 0 || !s.nodes.contains_key(&node) {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Some(resp);
        }
        // The duplicating tables this node leads a partition of.
        let led: Vec<i32> = s
            .apps
            .iter()
            .filter(|(id, a)| {
                a.info.status == Some(AppStatus::AS_AVAILABLE)
                    && s.dups.get(id).is_some_and(|m| !m.is_empty())
                    && a.partitions
                        .iter()
                        .any(|p| p.primary.is_some_and(|x| x.0 == node))
            })
            .map(|(id, _)| *id)
            .collect();
        // Progress first, so the reply carries what was just persisted.
        let now = now_ms();
        let min_update = Self::dup_min_update_ms();
        for (gpid, entries) in req.confirm_list.unwrap_or_default() {
            if !led.contains(&gpid.app_id) {
                continue;
            }
            let app_path = s.app_path(gpid.app_id);
            for e in entries {
                let dupid = e.dupid.unwrap_or(0);
                let due = match s.dups.get_mut(&gpid.app_id).and_then(|m| m.get_mut(&dupid)) {
                    Some(d) if !status_invalid(d.status) => {
                        d.alter_progress(gpid.partition_index, &e, now, min_update)
                    }
                    _ => None,
                };
                let Some(decree) = due else { continue };
                let path = format!("{app_path}/duplication/{dupid}/{}", gpid.partition_index);
                let store = s.store_mut();
                let ok = if store.exists(&path) {
                    store.set_data(&path, decree.to_string().as_bytes())
                } else {
                    store.create_node(&path, decree.to_string().as_bytes())
                };
                match ok {
                    Ok(()) => {
                        if let Some(d) =
                            s.dups.get_mut(&gpid.app_id).and_then(|m| m.get_mut(&dupid))
                        {
                            d.persisted(gpid.partition_index, decree);
                        }
                    }
                    Err(e) => warn!("duplication sync: cannot write {path}: {e}"),
                }
            }
        }
        let mut map = BTreeMap::new();
        let mut follow = Vec::new();
        for id in led {
            let Some(m) = s.dups.get(&id) else { continue };
            let mut entries = BTreeMap::new();
            for d in m.values().filter(|d| !status_invalid(d.status)) {
                if matches!(
                    d.status,
                    DuplicationStatus::DS_PREPARE | DuplicationStatus::DS_APP
                ) && d.all_checkpoints_prepared()
                {
                    follow.push(d.clone());
                }
                entries.insert(d.id, d.sync_entry());
            }
            map.insert(id, entries);
        }
        resp.dup_map = Some(map);
        let master = self.follower_request_parts(&s);
        drop(s);
        for d in follow {
            let key = (d.app_id, d.id);
            let fresh = self
                .dup_follow
                .lock()
                .map(|mut f| f.insert(key))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let me = self.clone();
            let master = master.clone();
            tokio::spawn(async move {
                me.follow_up(d, master).await;
                if let Ok(mut f) = me.dup_follow.lock() {
                    f.remove(&key);
                }
            });
        }
        Some(resp)
    }

    /// What a follower table's creation request carries of this cluster: (its duplication
    /// name, its metas joined with ',', the source tables' infos by id).
    fn follower_request_parts(&self, s: &super::ServerState) -> MasterParts {
        let cfg = dup_common::get();
        MasterParts {
            cluster: cfg.current_name().to_string(),
            metas: s.opts.server_list.join(","),
            infos: s.apps.iter().map(|(id, a)| (*id, a.info.clone())).collect(),
        }
    }

    /// Moves a checkpoint-first duplication on once every primary has its checkpoint ready:
    /// DS_PREPARE asks the remote cluster to create the follower table (RPC_CM_CREATE_APP
    /// with the `duplication.*` envs, status `creating`) and goes to DS_APP; DS_APP marks
    /// the follower `created`, waits until every follower partition has a primary (and a
    /// secondary when it has more than one replica), and goes to DS_LOG. A failed step is
    /// tried again at a later sync.
    async fn follow_up(&self, d: DupInfo, master: MasterParts) {
        let Some(info) = master.infos.get(&d.app_id) else {
            return;
        };
        let status = if d.status == DuplicationStatus::DS_PREPARE {
            dup_common::FOLLOWER_CREATING
        } else {
            dup_common::FOLLOWER_CREATED
        };
        let mut envs = info.envs.clone().unwrap_or_default();
        let mut put = |k: &str, v: String| {
            envs.entry(k.to_string()).or_insert(v);
        };
        put(dup_common::ENV_MASTER_CLUSTER, master.cluster.clone());
        put(dup_common::ENV_MASTER_METAS, master.metas.clone());
        put(dup_common::ENV_MASTER_APP_NAME, d.app_name.clone());
        put(dup_common::ENV_FOLLOWER_APP_STATUS, status.to_string());
        let req = ConfigurationCreateAppRequest {
            app_name: Some(d.remote_app_name.clone()),
            options: Some(CreateAppOptions {
                partition_count: info.partition_count,
                replica_count: Some(d.remote_replica_count),
                success_if_exist: Some(false),
                app_type: info.app_type.clone(),
                is_stateful: info.is_stateful,
                envs: Some(envs),
                atomic_idempotent: None,
            }),
        };
        let created: Option<ConfigurationCreateAppResponse> = remote_meta_call(
            &d.remote_cluster,
            "RPC_CM_CREATE_APP",
            &req,
            |r: &ConfigurationCreateAppResponse| r.err,
        )
        .await;
        let err = created.and_then(|r| r.err).unwrap_or(ErrorCode::TIMEOUT);
        if err != ErrorCode::OK {
            warn!(
                "duplication {} of {}: creating the follower table {}.{} ({status}): {}",
                d.id,
                d.app_name,
                d.remote_cluster,
                d.remote_app_name,
                err.name()
            );
            return;
        }
        let next = if d.status == DuplicationStatus::DS_PREPARE {
            DuplicationStatus::DS_APP
        } else {
            if let Err(e) = follower_ready(&d).await {
                info!(
                    "duplication {} of {}: the follower table is not served yet: {e}",
                    d.id, d.app_name
                );
                return;
            }
            DuplicationStatus::DS_LOG
        };
        let Some(mut s) = self.st().await else { return };
        let path = format!("{}/duplication/{}", s.app_path(d.app_id), d.id);
        let Some(cur) = s.dups.get(&d.app_id).and_then(|m| m.get(&d.id)).cloned() else {
            return;
        };
        if cur.status != d.status
            || cur.check_alter(next, DuplicationFailMode::FAIL_SLOW) != Ok(true)
        {
            return;
        }
        let doc = cur.to_json_with(next, DuplicationFailMode::FAIL_SLOW);
        if let Err(e) = s.store_mut().set_data(&path, doc.as_bytes()) {
            warn!("duplication {}: cannot write {path}: {e}", d.id);
            return;
        }
        if let Some(x) = s.dups.get_mut(&d.app_id).and_then(|m| m.get_mut(&d.id)) {
            x.commit(next, DuplicationFailMode::FAIL_SLOW);
        }
        info!(
            "duplication {} of {}: {} -> {}",
            d.id,
            d.app_name,
            status_name(d.status),
            status_name(next)
        );
    }
}

/// What the master cluster tells a follower table about itself.
#[derive(Clone)]
struct MasterParts {
    cluster: String,
    metas: String,
    infos: BTreeMap<i32, crate::idl::dsn_layer2::AppInfo>,
}

/// Calls a meta RPC on the metas of cluster `cluster` ([pegasus.clusters]).
async fn remote_meta_call<Req, Resp>(
    cluster: &str,
    rpc: &str,
    req: &Req,
    err_of: impl Fn(&Resp) -> Option<ErrorCode>,
) -> Option<Resp>
where
    Req: thrift::protocol::TSerializable,
    Resp: thrift::protocol::TSerializable,
{
    let cfg = dup_common::get();
    let metas = cfg.clusters.get(cluster)?;
    crate::rpc::client::call_metas(metas, rpc, req, std::time::Duration::from_secs(10), err_of)
        .await
}

/// Whether the follower table is served: every partition has a primary, and a secondary
/// when it has more than one replica (upstream's check).
async fn follower_ready(d: &DupInfo) -> Result<(), String> {
    use crate::idl::dsn_layer2::{QueryCfgRequest, QueryCfgResponse};
    let req = QueryCfgRequest {
        app_name: Some(d.remote_app_name.clone()),
        partition_indices: Some(Vec::new()),
    };
    let r: QueryCfgResponse = remote_meta_call(
        &d.remote_cluster,
        "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
        &req,
        |r: &QueryCfgResponse| r.err,
    )
    .await
    .ok_or("no meta answered")?;
    if r.err != Some(ErrorCode::OK) {
        return Err(r.err.map_or("nothing", |e| e.name()).to_string());
    }
    let parts = r.partitions.unwrap_or_default();
    if parts.len() != d.partition_count.max(0) as usize {
        return Err(ErrorCode::INCONSISTENT_STATE.name().into());
    }
    for p in parts {
        if p.primary.is_none_or(|a| a.is_invalid()) {
            return Err(ErrorCode::INACTIVE_STATE.name().into());
        }
        let secondaries = p.secondaries.unwrap_or_default();
        if 1 + (secondaries.len() as i32) < p.max_replica_count.unwrap_or(0)
            && secondaries.is_empty()
        {
            return Err(ErrorCode::NOT_ENOUGH_MEMBER.name().into());
        }
        if secondaries.iter().any(|a| a.is_invalid()) {
            return Err(ErrorCode::INACTIVE_STATE.name().into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_upstream() {
        assert_eq!(
            pattern_match("temp", "te", PatternMatchType::PMT_MATCH_PREFIX),
            Ok(true)
        );
        assert_eq!(
            pattern_match("temp", "mp", PatternMatchType::PMT_MATCH_POSTFIX),
            Ok(true)
        );
        assert_eq!(
            pattern_match("temp", "x", PatternMatchType::PMT_MATCH_ANYWHERE),
            Ok(false)
        );
        assert_eq!(
            pattern_match("temp", ".*", PatternMatchType::PMT_MATCH_REGEX),
            Err("match_type is not supported: val=6, str=regex".into())
        );
        assert_eq!(
            app_status_name(Some(AppStatus::AS_DROPPED)),
            "app_status::AS_DROPPED"
        );
    }
}

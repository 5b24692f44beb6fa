//! The meta server's RPC surface: table DDL and listing, partition queries, failure-detector
//! beacons and config sync, all serialised on one state lock; plus the periodic checker.
//! Only the elected leader holds the state; other metas point callers at the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::idl::dsn::{ErrorCode, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, QueryCfgRequest, QueryCfgResponse};
use crate::idl::fd::{BeaconAck, BeaconMsg};
use crate::idl::meta_admin::*;
use crate::rpc::client::RpcClient;
use crate::rpc::frame::{Protocol, ReplyValue, Request};
use crate::rpc::host_port::book;
use crate::rpc::server::{arg, BoxFuture, Handler, HttpReply, Reply};

use super::election::{Election, LeaderView};
use super::remote_commands::LbSettings;
use super::server_state::{Outgoing, ServerState, PARTITION_FLAG_DROPPED};
use crate::base::dup_common;

pub struct MetaService {
    /// Loaded when this meta becomes the leader; `None` before.
    state: Mutex<Option<ServerState>>,
    self_addr: RpcAddress,
    check_interval: Duration,
    peers: std::sync::Mutex<std::collections::HashMap<u64, Arc<RpcClient>>>,
    election: Election,
    /// `[zookeeper] hosts_list` (empty on the local store), for RPC_CM_CLUSTER_INFO.
    zk_hosts: String,
    /// The balancer and guardian switches of the `meta.lb.*` commands (kept by every meta,
    /// applied to the state whenever it is used).
    lb: std::sync::Mutex<LbSettings>,
    /// Bumped whenever a `meta.lb.*` command ran (see `st`).
    lb_version: std::sync::atomic::AtomicU64,
    /// The metric entities, refreshed by each checker round.
    metrics: super::metrics::MetaMetrics,
    /// Cold backups and restores.
    backups: backup::Backups,
    /// Duplications whose follower table is being created or checked (app id, dupid).
    dup_follow: std::sync::Mutex<std::collections::BTreeSet<(i32, i32)>>,
}

/// Upstream's answer to a master re-creating its follower table `existing` with `envs`:
/// (error, whether to mark the table `created`).
fn follower_create_again(
    existing: &AppInfo,
    envs: &std::collections::BTreeMap<String, String>,
) -> (ErrorCode, bool) {
    let have = existing.envs.clone().unwrap_or_default();
    if have.get(dup_common::ENV_MASTER_CLUSTER) != envs.get(dup_common::ENV_MASTER_CLUSTER) {
        return (ErrorCode::APP_EXIST, false);
    }
    let Some(want) = envs.get(dup_common::ENV_FOLLOWER_APP_STATUS) else {
        return (ErrorCode::APP_EXIST, false);
    };
    let Some(now) = have.get(dup_common::ENV_FOLLOWER_APP_STATUS) else {
        return (ErrorCode::INVALID_STATE, false);
    };
    use dup_common::{FOLLOWER_CREATED as CREATED, FOLLOWER_CREATING as CREATING};
    match (now.as_str(), want.as_str()) {
        (CREATING, CREATING) | (CREATED, CREATED) => (ErrorCode::OK, false),
        (CREATING, CREATED) => (ErrorCode::OK, true),
        (CREATED, CREATING) => (ErrorCode::APP_EXIST, false),
        _ => (ErrorCode::INVALID_PARAMETERS, false),
    }
}

/// Resolves a leader's `host:port` (IPv4 literals need no lookup).
pub fn resolve_leader(s: &str) -> Option<RpcAddress> {
    use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
    let a = match s.parse::<SocketAddrV4>() {
        Ok(a) => a,
        Err(_) => match s.to_socket_addrs().ok()?.find(|a| a.is_ipv4())? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return None,
        },
    };
    Some(RpcAddress::from_ipv4(*a.ip(), a.port()))
}

/// Whether a reply to a client may carry the hp_* fields of partition configurations and
/// node infos. Upstream always sends them. Its C++ tools and servers read them when present
/// and fall back to the address fields otherwise; clients generated before the fields existed
/// cannot skip them (a host_port is not a Thrift struct on the wire: the generic skip
/// desynchronises): the operator tools as shipped (admin-cli and pegic, built with a 2022 Go
/// client) and the Python client on PyPI fail on every such reply, and they cannot be told
/// apart from current clients by their requests. So requests in the THFT framing (the Go,
/// Java and Python clients) get the replies without hp_* (the same addresses, which every
/// client reads), and requests in rDSN's framing (C++ clients and servers) get upstream's.
pub fn wants_host_ports(req: &Request) -> bool {
    req.protocol != Protocol::Thft
}

/// Upstream's hint for deleted envs: `deleted keys:` and one indented key per line.
fn deleted_keys_hint(keys: &[String]) -> String {
    let mut h = String::from("deleted keys:");
    for k in keys {
        h.push_str("\n    ");
        h.push_str(k);
    }
    h
}

fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

fn level_name(l: MetaFunctionLevel) -> &'static str {
    match l.0 {
        100 => "stopped",
        200 => "blind",
        300 => "freezed",
        400 => "steady",
        500 => "lively",
        _ => "invalid",
    }
}

#[path = "service_backup.rs"]
mod backup;
#[path = "service_dup.rs"]
mod dup;
#[path = "service_http.rs"]
mod http_pages;
#[path = "service_policy.rs"]
mod policy;

impl MetaService {
    pub fn new(
        self_addr: RpcAddress,
        check_interval: Duration,
        election: Election,
        zk_hosts: String,
        lb: LbSettings,
    ) -> Arc<MetaService> {
        Arc::new(MetaService {
            state: Mutex::new(None),
            self_addr,
            check_interval,
            peers: std::sync::Mutex::new(std::collections::HashMap::new()),
            election,
            zk_hosts,
            lb: std::sync::Mutex::new(lb),
            lb_version: std::sync::atomic::AtomicU64::new(0),
            metrics: super::metrics::MetaMetrics::register(),
            backups: backup::Backups::default(),
            dup_follow: Default::default(),
        })
    }

    /// Waits to win the election, then loads the state with `load` and starts the periodic
    /// checker (node expiry, the partition guardian), which only runs while leader. A state
    /// that cannot be loaded ends the process.
    pub fn start<F>(self: &Arc<Self>, load: F)
    where
        F: FnOnce() -> Result<ServerState, String> + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let mut rx = me.election.subscribe();
            if rx.wait_for(|v| v.is_leader).await.is_err() {
                return;
            }
            log::info!("meta {} is the leader; loading the state", me.self_addr);
            let state = {
                let mut guard = me.state.lock().await;
                match load() {
                    Ok(s) => *guard = Some(s),
                    Err(e) => {
                        log::error!("cannot load the meta state: {e}; exiting");
                        eprintln!("pegasus_server: cannot load the meta state: {e}");
                        std::process::exit(1);
                    }
                }
                guard.is_some()
            };
            log::info!(
                "meta {} serves as leader (state loaded: {state})",
                me.self_addr
            );
            me.start_policy_scheduler();
            loop {
                tokio::time::sleep(me.check_interval).await;
                if me.election.view().is_leader {
                    me.run_check().await;
                }
            }
        });
    }

    /// The state, when this meta has loaded it.
    async fn st(&self) -> Option<MappedMutexGuard<'_, ServerState>> {
        let mut s = MutexGuard::try_map(self.state.lock().await, |s| s.as_mut()).ok()?;
        // The switches and flags reach the state only when one of them changed.
        let versions = (
            self.lb_version.load(std::sync::atomic::Ordering::SeqCst),
            crate::flags::version(),
        );
        if s.settings_applied != Some(versions) {
            self.apply_settings(&mut s);
            s.settings_applied = Some(versions);
        }
        Some(s)
    }

    /// Applies the `meta.lb.*` switches, then the config flags changed through
    /// `/updateConfig` (where the server loaded them), to the state.
    fn apply_settings(&self, s: &mut ServerState) {
        if let Ok(lb) = self.lb.lock() {
            s.opts.balancer = lb.balancer.clone();
            s.opts.add_secondary_flow_control = lb.add_secondary_enable_flow_control;
            s.opts.add_secondary_max_count_for_one_node = lb.add_secondary_max_count_for_one_node;
            s.opts.node_live_percentage_threshold_for_update = lb.live_percentage.max(0) as u64;
            s.guardian.replica_assign_delay_ms_for_dropouts = lb.assign_delay_ms;
            s.guardian.assign_secondary_black_list = lb.black_list_nodes.clone();
        }
        if !crate::flags::loaded() {
            return;
        }
        let f = crate::flags::flags();
        if let Some(v) = f.bool("balance_cluster") {
            s.opts.balancer.balance_cluster = v;
        }
        if let Some(v) = f.u64("balance_op_count_per_round") {
            s.opts.balancer.balance_op_count_per_round = v as usize;
        }
        if let Some(v) = f.i64("min_allowed_replica_count") {
            s.opts.min_allowed_replica_count = v as i32;
        }
        if let Some(v) = f.i64("max_allowed_replica_count") {
            s.opts.max_allowed_replica_count = v as i32;
        }
        if let Some(v) = f.u64("max_reserved_dropped_replicas") {
            s.guardian.max_reserved_dropped_replicas = v as u32;
        }
        if let Some(v) = f.u64("min_live_node_count_for_unfreeze") {
            s.opts.min_live_node_count_for_unfreeze = v as usize;
        }
    }

    /// `meta.dump <file>`: writes every table's info and partitions as JSON lines.
    async fn dump(&self, args: &[String]) -> String {
        let [path] = args else {
            return "ERR_INVALID_PARAMETERS".into();
        };
        let Some(s) = self.st().await else {
            return "ERR_INVALID_STATE".into();
        };
        let mut text = String::new();
        for app in s.apps.values() {
            text.push_str(&super::json::app_info_to_json(&app.info));
            text.push('\n');
            for p in &app.partitions {
                text.push_str(&super::json::partition_to_json(p));
                text.push('\n');
            }
        }
        drop(s);
        match std::fs::write(path, text) {
            Ok(()) => "ERR_OK".into(),
            Err(_) => "ERR_FILE_OPERATION_FAILED".into(),
        }
    }

    /// RPC_CLI_CLI_CALL: the meta's own commands, then the ones every role answers.
    async fn remote_command(&self, req: &Request) -> Reply {
        let Some(c) = arg::<crate::idl::command::Command>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let cmd = c.cmd.unwrap_or_default();
        let args = c.arguments.unwrap_or_default();
        let counts = match self.st().await {
            Some(s) => s.lb_counts,
            None => [0; 4],
        };
        let out = match self.lb.lock() {
            Ok(mut lb) => {
                let out =
                    super::remote_commands::run(&cmd, &args, &mut lb, counts, &resolve_leader);
                if out.is_some() {
                    // A meta command may have changed a switch.
                    self.lb_version
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                out
            }
            Err(_) => None,
        };
        match out {
            Some(text) => Reply::string(&text),
            None if matches!(cmd.as_str(), "help" | "h" | "H" | "Help") => Reply::string(
                &crate::remote_cmd::help(super::remote_commands::COMMANDS, &args),
            ),
            None if cmd == "fd.allow_list" => Reply::string(
                // This meta keeps no allow list: every replica server may beacon.
                &serde_json::to_string_pretty(&serde_json::json!({
                    "allow_list": "",
                    "enabled": false,
                }))
                .unwrap_or_default(),
            ),
            None if cmd == "meta.dump" => Reply::string(&self.dump(&args).await),
            None => Reply::string(&crate::remote_cmd::run(&cmd, &args, "meta")),
        }
    }

    async fn run_check(&self) {
        let Some(mut s) = self.st().await else { return };
        let out = s.check(Instant::now(), now_ms());
        self.metrics.update(&s);
        drop(s);
        self.send_proposals(out);
    }

    /// The connection to a replica server.
    fn peer(&self, target: RpcAddress) -> Option<Arc<RpcClient>> {
        let addr = target.to_socket_addr()?;
        let mut m = self.peers.lock().ok()?;
        Some(
            m.entry(target.0)
                .or_insert_with(|| {
                    Arc::new(RpcClient::new(
                        std::net::SocketAddr::V4(addr),
                        self.self_addr.0,
                    ))
                })
                .clone(),
        )
    }

    /// Sends RPC_CONFIG_PROPOSAL (one-way) to each target.
    fn send_proposals(&self, out: Vec<Outgoing>) {
        for o in out {
            let Some(client) = self.peer(o.target) else {
                continue;
            };
            let pid = o
                .request
                .config
                .as_ref()
                .and_then(|c| c.pid)
                .unwrap_or_default();
            let mut request = o.request;
            if let Some(c) = request.config.as_mut() {
                book().fill_pc(c);
            }
            request.hp_node = Some(book().hp_of(request.node.unwrap_or(RpcAddress::INVALID)));
            let arg = ReplyValue {
                ttype: 12,
                bytes: crate::idl::protocol::encode_struct(&request),
            };
            tokio::spawn(async move {
                if let Err(e) = client
                    .send_oneway("RPC_CONFIG_PROPOSAL", pid.app_id, pid.partition_index, &arg)
                    .await
                {
                    log::warn!("proposal for {pid} to {} failed: {e}", client.addr());
                }
            });
        }
    }

    async fn update_configuration(
        &self,
        req: ConfigurationUpdateRequest,
    ) -> Option<ConfigurationUpdateResponse> {
        // What the replica names itself and its peers is what the reply must carry back
        // (upstream replicas check the reply's hp_* against their request's).
        book().learn(req.node, req.hp_node.as_ref());
        if let Some(c) = req.config.as_ref() {
            book().learn_pc(c);
        }
        let (resp, out) = {
            let Some(mut s) = self.st().await else {
                return Some(ConfigurationUpdateResponse {
                    err: Some(ErrorCode::SERVICE_NOT_ACTIVE),
                    config: req.config,
                });
            };
            let (err, config) = s.update_configuration(req, now_ms())?;
            // Cure right away so the next step (e.g. adding secondaries) starts now.
            let out = if err == ErrorCode::OK {
                s.check(Instant::now(), now_ms())
            } else {
                Vec::new()
            };
            (
                ConfigurationUpdateResponse {
                    err: Some(err),
                    config: Some(book().filled(&config)),
                },
                out,
            )
        };
        self.send_proposals(out);
        Some(resp)
    }

    /// `host_ports`: whether the configurations carry their hp_* fields (see
    /// [`wants_host_ports`]).
    async fn query_cfg(&self, req: QueryCfgRequest, host_ports: bool) -> Option<QueryCfgResponse> {
        let s = self.st().await?;
        let name = req.app_name.unwrap_or_default();
        let mut resp = QueryCfgResponse {
            err: Some(ErrorCode::OK),
            app_id: Some(0),
            partition_count: Some(0),
            is_stateful: Some(false),
            partitions: Some(Vec::new()),
        };
        let Some(app) = s.app_by_name(&name) else {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Some(resp);
        };
        match app.info.status {
            Some(AppStatus::AS_AVAILABLE) => {}
            Some(AppStatus::AS_CREATING) | Some(AppStatus::AS_RECALLING) => {
                resp.err = Some(ErrorCode::BUSY_CREATING);
                return Some(resp);
            }
            Some(AppStatus::AS_DROPPING) => {
                resp.err = Some(ErrorCode::BUSY_DROPPING);
                return Some(resp);
            }
            _ => {
                resp.err = Some(ErrorCode::UNKNOWN);
                return Some(resp);
            }
        }
        let count = app.partitions.len() as i32;
        resp.app_id = app.info.app_id;
        resp.partition_count = Some(count);
        resp.is_stateful = Some(true);
        let wanted: Vec<i32> = req
            .partition_indices
            .unwrap_or_default()
            .into_iter()
            .filter(|i| *i >= 0 && *i < count)
            .collect();
        let mut parts: Vec<_> = if wanted.is_empty() {
            app.partitions.clone()
        } else {
            wanted
                .iter()
                .map(|i| app.partitions[*i as usize].clone())
                .collect()
        };
        // Names are filled outside the state lock (a first reverse lookup may be slow).
        drop(s);
        for p in &mut parts {
            if host_ports {
                book().fill_pc(p);
            } else {
                crate::rpc::host_port::clear_pc(p);
            }
        }
        resp.partitions = Some(parts);
        Some(resp)
    }

    async fn create_app(
        &self,
        req: ConfigurationCreateAppRequest,
    ) -> Option<ConfigurationCreateAppResponse> {
        let mut s = self.st().await?;
        let mut resp = ConfigurationCreateAppResponse {
            err: Some(ErrorCode::OK),
            appid: Some(0),
        };
        let name = req.app_name.unwrap_or_default();
        let o = req.options.unwrap_or_default();
        let pc = o.partition_count.unwrap_or(0);
        let rc = o.replica_count.unwrap_or(0);
        let envs = o.envs.clone().unwrap_or_default();
        let app_type = o.app_type.clone().unwrap_or_else(|| "pegasus".into());
        let stateful = o.is_stateful.unwrap_or(true);
        if s.effective_level().0 <= MetaFunctionLevel::FL_FREEZED.0 {
            resp.err = Some(ErrorCode::STATE_FREEZED);
            return Some(resp);
        }
        if name.is_empty()
            || pc <= 0
            || rc < s.opts.min_allowed_replica_count
            || rc > s.opts.max_allowed_replica_count
            || rc as usize > s.alive_nodes().len()
        {
            resp.err = Some(ErrorCode::INVALID_PARAMETERS);
            return Some(resp);
        }
        if let Some(existing) = s.app_by_name(&name) {
            let i = existing.info.clone();
            if i.status == Some(AppStatus::AS_AVAILABLE)
                && !o.success_if_exist.unwrap_or(false)
                && envs.contains_key(dup_common::ENV_MASTER_CLUSTER)
            {
                // A master cluster creating its duplication's follower table again.
                let (err, mark_created) = follower_create_again(&i, &envs);
                if mark_created {
                    let mut info = i.clone();
                    let mut e = info.envs.take().unwrap_or_default();
                    e.insert(
                        dup_common::ENV_FOLLOWER_APP_STATUS.into(),
                        dup_common::FOLLOWER_CREATED.into(),
                    );
                    info.envs = Some(e);
                    if let Err(e) = s.update_app_info(i.app_id.unwrap_or(0), info) {
                        resp.err = Some(e);
                        return Some(resp);
                    }
                }
                resp.err = Some(err);
                if err == ErrorCode::OK {
                    resp.appid = i.app_id;
                }
                return Some(resp);
            }
            resp.err = Some(match i.status {
                Some(AppStatus::AS_AVAILABLE) if o.success_if_exist.unwrap_or(false) => {
                    let same = i.partition_count == Some(pc)
                        && i.app_type.as_deref() == Some(app_type.as_str())
                        && i.envs.clone().unwrap_or_default() == envs
                        && i.is_stateful == Some(stateful)
                        && i.max_replica_count == Some(rc);
                    if same {
                        resp.appid = i.app_id;
                        ErrorCode::OK
                    } else {
                        ErrorCode::INVALID_PARAMETERS
                    }
                }
                Some(AppStatus::AS_AVAILABLE) => ErrorCode::APP_EXIST,
                Some(AppStatus::AS_CREATING) | Some(AppStatus::AS_RECALLING) => {
                    ErrorCode::BUSY_CREATING
                }
                Some(AppStatus::AS_DROPPING) => ErrorCode::BUSY_DROPPING,
                _ => ErrorCode::APP_EXIST,
            });
            return Some(resp);
        }
        match s.create_app(&name, &app_type, pc, rc, stateful, envs, pc) {
            Ok(id) => resp.appid = Some(id),
            Err(e) => resp.err = Some(e),
        }
        Some(resp)
    }

    async fn drop_app(
        &self,
        req: ConfigurationDropAppRequest,
    ) -> Option<ConfigurationDropAppResponse> {
        let mut s = self.st().await?;
        let name = req.app_name.unwrap_or_default();
        let o = req.options.unwrap_or_default();
        let err = match s
            .app_by_name(&name)
            .map(|a| (a.info.app_id.unwrap_or(0), a.info.status))
        {
            None => {
                if o.success_if_not_exist.unwrap_or(false) {
                    ErrorCode::OK
                } else {
                    ErrorCode::APP_NOT_EXIST
                }
            }
            Some((id, Some(AppStatus::AS_AVAILABLE))) => match s.drop_app(id, o.reserve_seconds) {
                Ok(()) => ErrorCode::OK,
                Err(e) => e,
            },
            Some((_, Some(AppStatus::AS_DROPPING))) => ErrorCode::BUSY_DROPPING,
            Some(_) => ErrorCode::BUSY_CREATING,
        };
        Some(ConfigurationDropAppResponse { err: Some(err) })
    }

    async fn recall_app(
        &self,
        req: ConfigurationRecallAppRequest,
    ) -> Option<ConfigurationRecallAppResponse> {
        let mut s = self.st().await?;
        let app_id = req.app_id.unwrap_or(0);
        let name = req.new_app_name.unwrap_or_default();
        Some(match s.recall_app(app_id, &name) {
            Ok(info) => ConfigurationRecallAppResponse {
                err: Some(ErrorCode::OK),
                info: Some(info),
            },
            Err(e) => ConfigurationRecallAppResponse {
                err: Some(e),
                info: Some(AppInfo::default()),
            },
        })
    }

    async fn rename_app(
        &self,
        req: ConfigurationRenameAppRequest,
    ) -> Option<ConfigurationRenameAppResponse> {
        let mut s = self.st().await?;
        let old = req.old_app_name.unwrap_or_default();
        let new = req.new_app_name.unwrap_or_default();
        let (err, hint) = if new.is_empty() {
            (
                ErrorCode::INVALID_PARAMETERS,
                "the new name is empty".to_string(),
            )
        } else {
            s.rename_app(&old, &new)
        };
        Some(ConfigurationRenameAppResponse {
            err: Some(err),
            hint_message: Some(hint),
        })
    }

    async fn list_apps(
        &self,
        req: ConfigurationListAppsRequest,
    ) -> Option<ConfigurationListAppsResponse> {
        let s = self.st().await?;
        let want = req.status.unwrap_or(AppStatus::AS_INVALID);
        let infos = s
            .apps
            .values()
            .filter(|a| want == AppStatus::AS_INVALID || a.info.status == Some(want))
            .filter(|a| match (&req.app_name_pattern, req.match_type) {
                (Some(p), Some(t)) => {
                    let n = a.info.app_name.as_deref().unwrap_or("");
                    match t.0 {
                        1 => true,
                        2 => n == p,
                        3 => n.contains(p.as_str()),
                        4 => n.starts_with(p.as_str()),
                        5 => n.ends_with(p.as_str()),
                        _ => true,
                    }
                }
                _ => true,
            })
            .map(|a| a.info.clone())
            .collect();
        Some(ConfigurationListAppsResponse {
            err: Some(ErrorCode::OK),
            infos: Some(infos),
            hint_message: None,
        })
    }

    /// `host_ports`: whether the node infos carry hp_node (see [`wants_host_ports`]).
    async fn list_nodes(
        &self,
        req: ConfigurationListNodesRequest,
        host_ports: bool,
    ) -> Option<ConfigurationListNodesResponse> {
        let s = self.st().await?;
        let want = req.status.unwrap_or(NodeStatus::NS_INVALID);
        let mut alive: Vec<NodeInfo> = Vec::new();
        let mut dead: Vec<NodeInfo> = Vec::new();
        for (addr, n) in &s.nodes {
            let info = NodeInfo {
                status: Some(if n.alive {
                    NodeStatus::NS_ALIVE
                } else {
                    NodeStatus::NS_UNALIVE
                }),
                node: Some(RpcAddress(*addr)),
                hp_node: host_ports.then(|| book().hp_of(RpcAddress(*addr))),
            };
            if n.alive {
                alive.push(info);
            } else {
                dead.push(info);
            }
        }
        let infos = match want {
            NodeStatus::NS_ALIVE => alive,
            NodeStatus::NS_UNALIVE => dead,
            _ => alive.into_iter().chain(dead).collect(),
        };
        Some(ConfigurationListNodesResponse {
            err: Some(ErrorCode::OK),
            infos: Some(infos),
        })
    }

    async fn cluster_info(&self) -> Option<ConfigurationClusterInfoResponse> {
        let s = self.st().await?;
        let stddevs = s.replica_count_stddev();
        let keys = [
            "meta_servers",
            "primary_meta_server",
            "zookeeper_hosts",
            "zookeeper_root",
            "meta_function_level",
            "balance_operation_count",
            "primary_replica_count_stddev",
            "total_replica_count_stddev",
            "cluster_name",
        ];
        let values = vec![
            s.opts.server_list.join(","),
            book().hp_of(self.self_addr).to_string(),
            self.zk_hosts.clone(),
            s.opts.cluster_root.clone(),
            level_name(s.effective_level()).to_string(),
            {
                let [mv, cp, cs, total] = s.lb_counts;
                serde_json::to_string_pretty(&serde_json::json!({
                    "copy_pri": cp, "copy_sec": cs, "move_pri": mv, "total": total
                }))
                .unwrap_or_default()
            },
            format!("{:.2}", stddevs.0),
            format!("{:.2}", stddevs.1),
            s.opts.cluster_name.clone(),
        ];
        Some(ConfigurationClusterInfoResponse {
            err: Some(ErrorCode::OK),
            keys: Some(keys.iter().map(|k| k.to_string()).collect()),
            values: Some(values),
        })
    }

    async fn control_meta(
        &self,
        req: ConfigurationMetaControlRequest,
    ) -> Option<ConfigurationMetaControlResponse> {
        let mut s = self.st().await?;
        let old = s.level;
        if let Some(l) = req.level {
            if l != MetaFunctionLevel::FL_INVALID && [100, 200, 300, 400, 500].contains(&l.0) {
                if l.0 <= MetaFunctionLevel::FL_STEADY.0 {
                    s.clear_proposals();
                }
                log::info!(
                    "meta function level {} -> {}",
                    level_name(old),
                    level_name(l)
                );
                s.level = l;
            }
        }
        Some(ConfigurationMetaControlResponse {
            err: Some(ErrorCode::OK),
            old_level: Some(old),
        })
    }

    /// RPC_CM_UPDATE_APP_ENV as upstream: SET validates every pair first (unknown keys and bad
    /// values are refused with the validator's hint, nothing written), DEL and CLEAR name
    /// what they deleted in the hint.
    async fn update_app_env(
        &self,
        req: ConfigurationUpdateAppEnvRequest,
    ) -> Option<ConfigurationUpdateAppEnvResponse> {
        let resp = |err: ErrorCode, hint: String| {
            Some(ConfigurationUpdateAppEnvResponse {
                err: Some(err),
                hint_message: Some(hint),
            })
        };
        let op = req.op.map(|o| o.0).unwrap_or(0);
        if op == 1 {
            let (Some(keys), Some(values)) = (req.keys.as_ref(), req.values.as_ref()) else {
                return resp(ErrorCode::INVALID_PARAMETERS, String::new());
            };
            if keys.is_empty() || keys.len() != values.len() {
                return resp(ErrorCode::INVALID_PARAMETERS, String::new());
            }
            for (k, v) in keys.iter().zip(values) {
                if let Err(hint) = super::app_env_validator::validate(k, v) {
                    return resp(ErrorCode::INVALID_PARAMETERS, hint);
                }
            }
        } else if !(2..=3).contains(&op) {
            return resp(
                ErrorCode::INVALID_PARAMETERS,
                "recv a invalid update_app_env request with op = APP_ENV_OP_INVALID".into(),
            );
        }
        let mut s = self.st().await?;
        let name = req.app_name.unwrap_or_default();
        let Some(app) = s.app_by_name(&name) else {
            return resp(ErrorCode::APP_NOT_EXIST, "app cannot be found".into());
        };
        if app.info.status == Some(AppStatus::AS_DROPPING) {
            return resp(ErrorCode::BUSY_DROPPING, "app is being dropped".into());
        }
        let app_id = app.info.app_id.unwrap_or(0);
        let mut info = app.info.clone();
        let mut envs = info.envs.take().unwrap_or_default();
        let mut hint = String::new();
        match op {
            1 => {
                let keys = req.keys.unwrap_or_default();
                let values = req.values.unwrap_or_default();
                for (k, v) in keys.into_iter().zip(values) {
                    envs.insert(k, v);
                }
            }
            2 => {
                let keys = req.keys.unwrap_or_default();
                if keys.is_empty() {
                    return resp(ErrorCode::INVALID_PARAMETERS, String::new());
                }
                let deleted: Vec<String> = keys
                    .into_iter()
                    .filter(|k| envs.remove(k).is_some())
                    .collect();
                if deleted.is_empty() {
                    return resp(ErrorCode::OK, "no key needs to be deleted".into());
                }
                hint = deleted_keys_hint(&deleted);
            }
            _ => {
                let Some(prefix) = req.clear_prefix else {
                    return resp(ErrorCode::INVALID_PARAMETERS, String::new());
                };
                let doomed: Vec<String> = envs
                    .keys()
                    .filter(|k| {
                        prefix.is_empty()
                            || (k.starts_with(prefix.as_str())
                                && k.as_bytes().get(prefix.len()) == Some(&b'.')
                                && k.len() > prefix.len() + 1)
                    })
                    .cloned()
                    .collect();
                if doomed.is_empty() {
                    return resp(ErrorCode::OK, "no key needs to be deleted".into());
                }
                for k in &doomed {
                    envs.remove(k);
                }
                hint = deleted_keys_hint(&doomed);
            }
        }
        info.envs = Some(envs);
        if let Err(e) = s.update_app_info(app_id, info) {
            return resp(e, String::new());
        }
        resp(ErrorCode::OK, hint)
    }

    /// Beacons: the leader records the sender; any other meta names the leader it knows.
    async fn beacon(&self, req: BeaconMsg, view: &LeaderView) -> BeaconAck {
        // The ack names this meta as the beacon named it (upstream replicas find the meta
        // by that name), and the leader by the leader's own name.
        let this_hp = req
            .hp_to_node
            .clone()
            .filter(|h| !h.is_invalid())
            .unwrap_or_else(|| book().hp_of(self.self_addr));
        book().learn(req.from_node, req.hp_from_node.as_ref());
        let mut ack = BeaconAck {
            time: req.time,
            this_node: req.to_node.or(Some(self.self_addr)),
            primary_node: Some(self.self_addr),
            is_master: Some(true),
            allowed: Some(true),
            hp_this_node: Some(this_hp.clone()),
            hp_primary_node: Some(this_hp),
        };
        if !view.is_leader {
            let leader = self.leader_address(view).unwrap_or(RpcAddress::INVALID);
            ack.is_master = Some(false);
            ack.primary_node = Some(leader);
            ack.hp_primary_node = Some(book().hp_of(leader));
            return ack;
        }
        // Before the state is loaded the beacon is answered but not recorded; the loaded
        // configurations give every known node a grace period anyway.
        if let Some(mut s) = self.st().await {
            if let Some(from) = req.from_node.filter(|a| !a.is_invalid()) {
                if s.on_beacon(from.0, Instant::now()) {
                    log::info!("replica server {from} connected");
                }
            }
        }
        ack
    }

    /// The leader's RPC address, if known.
    fn leader_address(&self, view: &LeaderView) -> Option<RpcAddress> {
        if view.is_leader {
            return Some(self.self_addr);
        }
        view.leader.as_deref().and_then(resolve_leader)
    }

    /// The reply of a meta that cannot serve the call itself: `err` (ERR_FORWARD_TO_OTHERS on
    /// a non-leader, ERR_SERVICE_NOT_ACTIVE on a leader still loading) in the RPC's own
    /// response struct; the partition query also names the leader as upstream does.
    fn unserved(&self, req: &Request, err: ErrorCode, view: &LeaderView) -> Reply {
        let host_ports = wants_host_ports(req);
        let e = Some(err);
        match req.name.as_str() {
            "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX" => {
                let mut parts = Vec::new();
                if err == ErrorCode::FORWARD_TO_OTHERS {
                    if let Some(leader) = self.leader_address(view) {
                        parts.push(crate::idl::dsn_layer2::PartitionConfiguration {
                            pid: Some(crate::idl::dsn::Gpid::new(0, 0)),
                            ballot: Some(0),
                            max_replica_count: Some(0),
                            primary: Some(leader),
                            secondaries: Some(Vec::new()),
                            last_drops: Some(Vec::new()),
                            last_committed_decree: Some(0),
                            partition_flags: Some(0),
                            // Upstream names the leader in primary and hp_primary only.
                            hp_primary: host_ports.then(|| book().hp_of(leader)),
                            hp_secondaries: None,
                            hp_last_drops: None,
                        });
                    }
                }
                Reply::of(&QueryCfgResponse {
                    err: e,
                    app_id: Some(0),
                    partition_count: Some(0),
                    is_stateful: Some(false),
                    partitions: Some(parts),
                })
            }
            "RPC_CM_CREATE_APP" => Reply::of(&ConfigurationCreateAppResponse {
                err: e,
                appid: Some(0),
            }),
            "RPC_CM_DROP_APP" => Reply::of(&ConfigurationDropAppResponse { err: e }),
            "RPC_CM_ADD_BACKUP_POLICY" => {
                Reply::of(&crate::idl::backup::ConfigurationAddBackupPolicyResponse {
                    err: e,
                    hint_message: Some(String::new()),
                })
            }
            "RPC_CM_MODIFY_BACKUP_POLICY" => Reply::of(
                &crate::idl::backup::ConfigurationModifyBackupPolicyResponse {
                    err: e,
                    hint_message: Some(String::new()),
                },
            ),
            "RPC_CM_QUERY_BACKUP_POLICY" => Reply::of(
                &crate::idl::backup::ConfigurationQueryBackupPolicyResponse {
                    err: e,
                    policys: Some(Vec::new()),
                    backup_infos: Some(Vec::new()),
                    hint_msg: None,
                },
            ),
            "RPC_CM_START_BACKUP_APP" => Reply::of(&crate::idl::backup::StartBackupAppResponse {
                err: e,
                hint_message: Some(String::new()),
                backup_id: None,
            }),
            "RPC_CM_QUERY_BACKUP_STATUS" => {
                Reply::of(&crate::idl::backup::QueryBackupStatusResponse {
                    err: e,
                    hint_message: Some(String::new()),
                    backup_items: None,
                })
            }
            "RPC_CM_START_RESTORE" => Reply::of(&ConfigurationCreateAppResponse {
                err: e,
                appid: Some(0),
            }),
            "RPC_CM_QUERY_RESTORE_STATUS" => {
                Reply::of(&crate::idl::backup::ConfigurationQueryRestoreResponse {
                    err: e,
                    restore_status: None,
                    restore_progress: None,
                })
            }
            "RPC_CM_REPORT_RESTORE_STATUS" => {
                Reply::of(&crate::idl::backup::ConfigurationReportRestoreStatusResponse { err: e })
            }
            "RPC_CM_START_MANUAL_COMPACT" => Reply::of(&StartAppManualCompactResponse {
                err: e,
                hint_msg: Some(String::new()),
            }),
            "RPC_CM_ADD_DUPLICATION" => {
                Reply::of(&crate::idl::duplication::DuplicationAddResponse {
                    err: e,
                    appid: Some(0),
                    dupid: Some(0),
                    hint: None,
                    remote_app_name: None,
                    remote_replica_count: None,
                })
            }
            "RPC_CM_MODIFY_DUPLICATION" => {
                Reply::of(&crate::idl::duplication::DuplicationModifyResponse {
                    err: e,
                    appid: Some(0),
                })
            }
            "RPC_CM_QUERY_DUPLICATION" => {
                Reply::of(&crate::idl::duplication::DuplicationQueryResponse {
                    err: e,
                    appid: Some(0),
                    entry_list: Some(Vec::new()),
                })
            }
            "RPC_CM_LIST_DUPLICATION" => {
                Reply::of(&crate::idl::duplication::DuplicationListResponse {
                    err: e,
                    hint_message: Some(String::new()),
                    app_states: Some(Default::default()),
                })
            }
            "RPC_CM_DUPLICATION_SYNC" => {
                Reply::of(&crate::idl::duplication::DuplicationSyncResponse {
                    err: e,
                    dup_map: Some(Default::default()),
                })
            }
            "RPC_CM_QUERY_MANUAL_COMPACT_STATUS" => Reply::of(&QueryAppManualCompactResponse {
                err: e,
                hint_msg: Some(String::new()),
                progress: None,
            }),
            "RPC_CM_RECALL_APP" => Reply::of(&ConfigurationRecallAppResponse {
                err: e,
                info: Some(AppInfo::default()),
            }),
            "RPC_CM_PROPOSE_BALANCER" => Reply::of(&ConfigurationBalancerResponse { err: e }),
            "RPC_CM_GET_MAX_REPLICA_COUNT" => Reply::of(&ConfigurationGetMaxReplicaCountResponse {
                err: e,
                max_replica_count: Some(0),
                hint_message: Some(String::new()),
            }),
            "RPC_CM_SET_MAX_REPLICA_COUNT" => Reply::of(&ConfigurationSetMaxReplicaCountResponse {
                err: e,
                old_max_replica_count: Some(0),
                hint_message: Some(String::new()),
            }),
            "RPC_CM_RENAME_APP" => Reply::of(&ConfigurationRenameAppResponse {
                err: e,
                hint_message: Some(String::new()),
            }),
            "RPC_CM_LIST_APPS" => Reply::of(&ConfigurationListAppsResponse {
                err: e,
                infos: Some(Vec::new()),
                hint_message: None,
            }),
            "RPC_CM_LIST_NODES" => Reply::of(&ConfigurationListNodesResponse {
                err: e,
                infos: Some(Vec::new()),
            }),
            "RPC_CM_CLUSTER_INFO" => Reply::of(&ConfigurationClusterInfoResponse {
                err: e,
                keys: Some(Vec::new()),
                values: Some(Vec::new()),
            }),
            "RPC_CM_CONTROL_META" => Reply::of(&ConfigurationMetaControlResponse {
                err: e,
                old_level: Some(MetaFunctionLevel::FL_INVALID),
            }),
            "RPC_CM_UPDATE_APP_ENV" => Reply::of(&ConfigurationUpdateAppEnvResponse {
                err: e,
                hint_message: Some(String::new()),
            }),
            "RPC_CM_UPDATE_PARTITION_CONFIGURATION" => {
                let config = arg::<ConfigurationUpdateRequest>(req).and_then(|r| r.config);
                Reply::of(&ConfigurationUpdateResponse { err: e, config })
            }
            "RPC_CM_CONFIG_SYNC" => Reply::of(&ConfigurationQueryByNodeResponse {
                err: e,
                partitions: Some(Vec::new()),
                gc_replicas: None,
            }),
            _ => Reply::err("ERR_HANDLER_NOT_FOUND"),
        }
    }

    async fn config_sync(
        &self,
        req: ConfigurationQueryByNodeRequest,
    ) -> Option<ConfigurationQueryByNodeResponse> {
        let mut s = self.st().await?;
        let node = req.node.unwrap_or_default();
        book().learn(req.node, req.hp_node.as_ref());
        if s.nodes.contains_key(&node.0) {
            // What the node holds, for choosing among a partition's last members.
            s.collect_replicas(
                node,
                req.stored_replicas.as_deref().unwrap_or(&[]),
                now_ms(),
            );
        }
        let mut resp = ConfigurationQueryByNodeResponse {
            err: Some(ErrorCode::OK),
            partitions: Some(Vec::new()),
            gc_replicas: None,
        };
        if !s.nodes.contains_key(&node.0) {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Some(resp);
        }
        let mut out = Vec::new();
        for app in s.apps.values() {
            if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            for p in &app.partitions {
                let member =
                    p.primary == Some(node) || p.secondaries.iter().flatten().any(|a| *a == node);
                if !member || p.partition_flags.unwrap_or(0) & PARTITION_FLAG_DROPPED != 0 {
                    continue;
                }
                out.push(ConfigurationUpdateRequest {
                    info: Some(app.info.clone()),
                    config: Some(book().filled(p)),
                    type_: Some(ConfigType::CT_INVALID),
                    node: Some(node),
                    host_node: Some(node),
                    meta_split_status: None,
                    hp_node: None,
                });
            }
        }
        resp.partitions = Some(out);
        Some(resp)
    }
}

impl Handler for MetaService {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>> {
        Box::pin(async move {
            let bad = || Some(Reply::err("ERR_INVALID_DATA"));
            let view = self.election.view();
            let name = req.name.as_str();
            let any_meta = matches!(
                name,
                "RPC_NEGOTIATION" | "RPC_CLI_CLI_CALL" | "RPC_FD_FAILURE_DETECTOR_PING"
            );
            if !view.is_leader && !any_meta {
                return Some(self.unserved(&req, ErrorCode::FORWARD_TO_OTHERS, &view));
            }
            let not_active = || Some(self.unserved(&req, ErrorCode::SERVICE_NOT_ACTIVE, &view));
            let reply = |r: Option<Reply>| r.or_else(not_active);
            match name {
                "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX" => match arg(&req) {
                    Some(r) => reply(
                        self.query_cfg(r, wants_host_ports(&req))
                            .await
                            .map(|x| Reply::of(&x)),
                    ),
                    None => bad(),
                },
                "RPC_CM_CREATE_APP" => match arg(&req) {
                    Some(r) => reply(self.create_app(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_RENAME_APP" => match arg(&req) {
                    Some(r) => reply(self.rename_app(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_RECALL_APP" => match arg(&req) {
                    Some(r) => reply(self.recall_app(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_ADD_BACKUP_POLICY" => match arg(&req) {
                    Some(r) => reply(self.add_backup_policy(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_QUERY_BACKUP_POLICY" => match arg(&req) {
                    Some(r) => reply(self.query_backup_policy(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_MODIFY_BACKUP_POLICY" => match arg(&req) {
                    Some(r) => reply(self.modify_backup_policy(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_START_BACKUP_APP" => match arg(&req) {
                    Some(r) => reply(self.start_backup_app(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_QUERY_BACKUP_STATUS" => match arg(&req) {
                    Some(r) => reply(self.query_backup_status(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_START_RESTORE" => match arg(&req) {
                    Some(r) => reply(self.start_restore(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_QUERY_RESTORE_STATUS" => match arg(&req) {
                    Some(r) => reply(self.query_restore(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_REPORT_RESTORE_STATUS" => match arg(&req) {
                    Some(r) => Some(Reply::of(&self.report_restore(r))),
                    None => bad(),
                },
                "RPC_CM_START_MANUAL_COMPACT" => match arg::<StartAppManualCompactRequest>(&req) {
                    Some(r) => reply(self.st().await.map(|mut s| {
                        let (err, hint) = s.start_manual_compact(&r);
                        Reply::of(&StartAppManualCompactResponse {
                            err: Some(err),
                            hint_msg: Some(hint),
                        })
                    })),
                    None => bad(),
                },
                "RPC_CM_QUERY_MANUAL_COMPACT_STATUS" => {
                    match arg::<QueryAppManualCompactRequest>(&req) {
                        Some(r) => reply(self.st().await.map(|s| {
                            let name = r.app_name.unwrap_or_default();
                            let (err, hint, progress) = s.manual_compact_progress(&name);
                            Reply::of(&QueryAppManualCompactResponse {
                                err: Some(err),
                                hint_msg: Some(hint),
                                progress,
                            })
                        })),
                        None => bad(),
                    }
                }
                "RPC_CM_ADD_DUPLICATION" => match arg(&req) {
                    Some(r) => reply(self.add_duplication(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_MODIFY_DUPLICATION" => match arg(&req) {
                    Some(r) => reply(self.modify_duplication(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_QUERY_DUPLICATION" => match arg(&req) {
                    Some(r) => reply(self.query_duplication(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_LIST_DUPLICATION" => match arg(&req) {
                    Some(r) => reply(self.list_duplication(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_DUPLICATION_SYNC" => match arg(&req) {
                    Some(r) => reply(self.duplication_sync(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_DROP_APP" => match arg(&req) {
                    Some(r) => reply(self.drop_app(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_LIST_APPS" => match arg(&req) {
                    Some(r) => reply(self.list_apps(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_LIST_NODES" => match arg(&req) {
                    Some(r) => reply(
                        self.list_nodes(r, wants_host_ports(&req))
                            .await
                            .map(|x| Reply::of(&x)),
                    ),
                    None => bad(),
                },
                "RPC_CM_CLUSTER_INFO" => reply(self.cluster_info().await.map(|x| Reply::of(&x))),
                "RPC_CM_CONTROL_META" => match arg(&req) {
                    Some(r) => reply(self.control_meta(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_CM_UPDATE_APP_ENV" => match arg(&req) {
                    Some(r) => reply(self.update_app_env(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_FD_FAILURE_DETECTOR_PING" => match arg(&req) {
                    Some(r) => Some(Reply::of(&self.beacon(r, &view).await)),
                    None => bad(),
                },
                "RPC_CM_UPDATE_PARTITION_CONFIGURATION" => match arg(&req) {
                    Some(r) => self
                        .update_configuration(r)
                        .await
                        .map(|resp| Reply::of(&resp)),
                    None => bad(),
                },
                "RPC_CM_CONFIG_SYNC" => match arg(&req) {
                    Some(r) => reply(self.config_sync(r).await.map(|x| Reply::of(&x))),
                    None => bad(),
                },
                "RPC_NEGOTIATION" => Some(Reply::negotiation()),
                "RPC_CLI_CLI_CALL" => Some(self.remote_command(&req).await),
                "RPC_CM_GET_MAX_REPLICA_COUNT" => {
                    match arg::<ConfigurationGetMaxReplicaCountRequest>(&req) {
                        Some(r) => reply(self.st().await.map(|s| {
                            let name = r.app_name.unwrap_or_default();
                            let (err, n, hint) = s.get_max_replica_count(&name);
                            Reply::of(&ConfigurationGetMaxReplicaCountResponse {
                                err: Some(err),
                                max_replica_count: Some(n),
                                hint_message: Some(hint),
                            })
                        })),
                        None => bad(),
                    }
                }
                "RPC_CM_SET_MAX_REPLICA_COUNT" => {
                    match arg::<ConfigurationSetMaxReplicaCountRequest>(&req) {
                        Some(r) => {
                            let res = self.st().await.map(|mut s| {
                                let name = r.app_name.unwrap_or_default();
                                let n = r.max_replica_count.unwrap_or(0);
                                let res = s.set_max_replica_count(&name, n);
                                // Start adding or removing secondaries now.
                                let out = s.check(Instant::now(), now_ms());
                                (res, out)
                            });
                            reply(res.map(|((err, old, hint), out)| {
                                self.send_proposals(out);
                                Reply::of(&ConfigurationSetMaxReplicaCountResponse {
                                    err: Some(err),
                                    old_max_replica_count: Some(old),
                                    hint_message: Some(hint),
                                })
                            }))
                        }
                        None => bad(),
                    }
                }
                "RPC_CM_PROPOSE_BALANCER" => match arg::<ConfigurationBalancerRequest>(&req) {
                    Some(r) => {
                        let res = self.st().await.map(|mut s| s.propose_balancer(&r));
                        reply(res.map(|(err, out)| {
                            self.send_proposals(out);
                            Reply::of(&ConfigurationBalancerResponse { err: Some(err) })
                        }))
                    }
                    None => bad(),
                },
                _ => Some(Reply::err("ERR_HANDLER_NOT_FOUND")),
            }
        })
    }

    fn http(self: Arc<Self>, req: crate::rpc::http::HttpRequest) -> BoxFuture<HttpReply> {
        Box::pin(async move { self.http_page(&req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_table_is_created_again_as_upstream_answers() {
        use dup_common::{ENV_FOLLOWER_APP_STATUS as ST, ENV_MASTER_CLUSTER as MC};
        let envs = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let table = |pairs: &[(&str, &str)]| AppInfo {
            envs: Some(envs(pairs)),
            ..Default::default()
        };
        let creating = table(&[(MC, "a"), (ST, "creating")]);
        let created = table(&[(MC, "a"), (ST, "created")]);
        let req = |s: &str| envs(&[(MC, "a"), (ST, s)]);
        assert_eq!(
            follower_create_again(&creating, &req("creating")),
            (ErrorCode::OK, false)
        );
        assert_eq!(
            follower_create_again(&creating, &req("created")),
            (ErrorCode::OK, true)
        );
        assert_eq!(
            follower_create_again(&created, &req("creating")),
            (ErrorCode::APP_EXIST, false)
        );
        assert_eq!(
            follower_create_again(&created, &req("created")),
            (ErrorCode::OK, false)
        );
        assert_eq!(
            follower_create_again(&table(&[(MC, "other"), (ST, "created")]), &req("created")),
            (ErrorCode::APP_EXIST, false)
        );
        assert_eq!(
            follower_create_again(&table(&[(MC, "a")]), &req("created")),
            (ErrorCode::INVALID_STATE, false)
        );
        assert_eq!(
            follower_create_again(&creating, &envs(&[(MC, "a")])),
            (ErrorCode::APP_EXIST, false)
        );
    }
}

//! The meta server's view of the cluster (upstream's `server_state`): tables, partition
//! configurations and replica-server liveness. Every change is written to the state store
//! first and applied to memory only when the write succeeded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::idl::dsn::{ErrorCode, Gpid, HostPort, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, PartitionConfiguration};
use crate::idl::meta_admin::{ConfigType, ConfigurationUpdateRequest, MetaFunctionLevel};
use crate::idl::metadata::{ManualCompactionStatus, ReplicaInfo};

use super::balancer::{self, BalancerOptions, MigrationList};
use super::guardian::{self, DropHistory, GuardianOptions, NodeView, Proposal, UpdateOutcome};
use super::json;
use super::state_store::{StateStore, StoreError};

/// The table env that marks a replica-count change in progress ("updating;<n>").
pub const MAX_REPLICA_COUNT_ENV: &str = "max_replica_count.update";

/// Partition flag set on the partitions of a dropped table.
pub const PARTITION_FLAG_DROPPED: i32 = 1;

use crate::base::MAX_PARTITION_COUNT;

/// Meta server settings, from `[meta_server]` and `[replication]`.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    pub cluster_root: String,
    pub cluster_name: String,
    pub server_list: Vec<String>,
    pub grace: Duration,
    pub min_live_node_count_for_unfreeze: usize,
    pub min_allowed_replica_count: i32,
    pub max_allowed_replica_count: i32,
    pub hold_seconds_for_dropped_app: i64,
    pub start_level: MetaFunctionLevel,
    pub guardian: GuardianOptions,
    /// `[replication] lb_interval_ms`: how often the balancer runs.
    pub lb_interval: Duration,
    /// `[meta_server] balancer_in_turn`, `only_primary_balancer`, `only_move_primary`.
    pub balancer: BalancerOptions,
    /// `[meta_server] node_live_percentage_threshold_for_update`.
    pub node_live_percentage_threshold_for_update: u64,
    /// `[meta_server] add_secondary_enable_flow_control` and
    /// `add_secondary_max_count_for_one_node`: at most that many add-secondary proposals per
    /// receiving node and checker round.
    pub add_secondary_flow_control: bool,
    pub add_secondary_max_count_for_one_node: i64,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            cluster_root: "/".into(),
            cluster_name: "onebox".into(),
            server_list: Vec::new(),
            grace: Duration::from_secs(22),
            min_live_node_count_for_unfreeze: 3,
            min_allowed_replica_count: 1,
            max_allowed_replica_count: 5,
            hold_seconds_for_dropped_app: 604_800,
            start_level: MetaFunctionLevel::FL_STEADY,
            guardian: GuardianOptions::default(),
            lb_interval: Duration::from_secs(10),
            balancer: BalancerOptions::default(),
            node_live_percentage_threshold_for_update: 65,
            add_secondary_flow_control: false,
            add_secondary_max_count_for_one_node: 10,
        }
    }
}

/// A table and its partitions.
#[derive(Debug, Clone)]
pub struct AppState {
    pub info: AppInfo,
    pub partitions: Vec<PartitionConfiguration>,
}

/// A replica server as seen by the failure detector.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub alive: bool,
    pub last_beacon: Instant,
}

/// A default table from a `[meta_server.apps.*]` section.
#[derive(Debug, Clone)]
pub struct DefaultApp {
    pub name: String,
    pub app_type: String,
    pub partition_count: i32,
    pub max_replica_count: i32,
    pub stateful: bool,
    pub envs: BTreeMap<String, String>,
}

pub struct ServerState {
    store: Box<dyn StateStore>,
    pub opts: MetaOptions,
    pub guardian: GuardianOptions,
    pub apps: BTreeMap<i32, AppState>,
    pub nodes: BTreeMap<u64, NodeState>,
    pub level: MetaFunctionLevel,
    histories: BTreeMap<(i32, i32), DropHistory>,
    collected: BTreeSet<u64>,
    /// When each node last reported its stored replicas (ms).
    collected_at: BTreeMap<u64, i64>,
    /// The last proposal sent per partition: (ballot, kind, node, when).
    sent: BTreeMap<(i32, i32), (i64, i32, u64, Instant)>,
    /// The wall clock in seconds (creation and drop times); the simulator supplies its own.
    wall_seconds: WallClock,
    /// Names nodes in the stored configurations' hp_* fields; the simulator uses IP literals.
    host_ports: HostPorts,
    /// The last reason logged per partition that the guardian cannot cure.
    dead_reasons: BTreeMap<(i32, i32), String>,
    /// Manual-compaction status per (app, partition, member node), from config sync.
    compact_status: BTreeMap<(i32, i32, u64), ManualCompactionStatus>,
    /// The disk tag each member reported for its replica in config sync.
    disk_tags: BTreeMap<(i32, i32, u64), String>,
    /// Queued balancer or operator proposals per partition, sent front first; each accepted
    /// configuration change pops the front (upstream's `lb_actions`).
    lb_actions: BTreeMap<(i32, i32), VecDeque<balancer::Action>>,
    /// Duplications per table: app id → dupid → duplication (see `duplication.rs`).
    pub dups: BTreeMap<i32, BTreeMap<i32, super::duplication::DupInfo>>,
    /// The operations the last balancer round found: move_pri, copy_pri, copy_sec, total
    /// (-1 while some replica's disk is not reported yet).
    pub lb_counts: [i64; 4],
    last_balance: Option<Instant>,
    /// The versions of the service's switches and of the config flags last applied here.
    pub settings_applied: Option<(u64, u64)>,
}

/// Reads the wall clock in Unix seconds.
pub type WallClock = Box<dyn Fn() -> i64 + Send>;

/// The host:port of a node's address.
pub type HostPorts = Box<dyn Fn(RpcAddress) -> HostPort + Send>;

fn store_err(e: StoreError) -> ErrorCode {
    warn!("meta state store: {e}");
    ErrorCode::ZOOKEEPER_OPERATION
}

pub fn now_seconds() -> i64 {
    (crate::base::value_schema::now_us() / 1_000_000) as i64
}

fn new_partition(app_id: i32, pidx: i32, max_replica_count: i32) -> PartitionConfiguration {
    PartitionConfiguration {
        pid: Some(Gpid::new(app_id, pidx)),
        ballot: Some(0),
        max_replica_count: Some(max_replica_count),
        primary: Some(RpcAddress::INVALID),
        secondaries: Some(Vec::new()),
        last_drops: Some(Vec::new()),
        last_committed_decree: Some(0),
        partition_flags: Some(0),
        hp_primary: None,
        hp_secondaries: None,
        hp_last_drops: None,
    }
}

impl ServerState {
    /// Loads the state from the store, creating the default tables on an empty store.
    pub fn load(
        store: Box<dyn StateStore>,
        opts: MetaOptions,
        defaults: &[DefaultApp],
    ) -> Result<ServerState, String> {
        let book = crate::rpc::host_port::book();
        Self::load_named(
            store,
            opts,
            defaults,
            Instant::now(),
            Box::new(now_seconds),
            Box::new(|a| book.hp_of(a)),
            &|p| book.learn_pc(p),
        )
    }

    /// [`ServerState::load`] with the time given: `now` starts the grace period of the nodes
    /// named by the configurations, `wall_seconds` is read for creation and drop times.
    pub fn load_at(
        store: Box<dyn StateStore>,
        opts: MetaOptions,
        defaults: &[DefaultApp],
        now: Instant,
        wall_seconds: WallClock,
    ) -> Result<ServerState, String> {
        Self::load_named(
            store,
            opts,
            defaults,
            now,
            wall_seconds,
            Box::new(crate::rpc::host_port::literal),
            &|_| {},
        )
    }

    /// The loader: `host_ports` names nodes in what is stored; `stored_names` sees each loaded
    /// configuration with the hp_* fields it was stored with (the in-memory copies keep only
    /// addresses; hp_* are filled where configurations leave the meta).
    fn load_named(
        store: Box<dyn StateStore>,
        opts: MetaOptions,
        defaults: &[DefaultApp],
        now: Instant,
        wall_seconds: WallClock,
        host_ports: HostPorts,
        stored_names: &dyn Fn(&PartitionConfiguration),
    ) -> Result<ServerState, String> {
        let mut s = ServerState {
            store,
            level: opts.start_level,
            guardian: opts.guardian.clone(),
            opts,
            apps: BTreeMap::new(),
            nodes: BTreeMap::new(),
            histories: BTreeMap::new(),
            collected: BTreeSet::new(),
            collected_at: BTreeMap::new(),
            sent: BTreeMap::new(),
            wall_seconds,
            host_ports,
            dead_reasons: BTreeMap::new(),
            compact_status: BTreeMap::new(),
            disk_tags: BTreeMap::new(),
            lb_actions: BTreeMap::new(),
            dups: BTreeMap::new(),
            lb_counts: [0; 4],
            last_balance: None,
            settings_applied: None,
        };
        let apps_root = s.apps_root();
        s.store.ensure_path(&apps_root).map_err(|e| e.to_string())?;
        for child in s
            .store
            .get_children(&apps_root)
            .map_err(|e| e.to_string())?
        {
            let Ok(app_id) = child.parse::<i32>() else {
                continue;
            };
            let path = format!("{apps_root}/{app_id}");
            let data = s.store.get_data(&path).map_err(|e| e.to_string())?;
            let info = json::app_info_from_json(&data).map_err(|e| format!("{path}: {e}"))?;
            let count = info.partition_count.unwrap_or(0);
            let mut partitions = Vec::with_capacity(count.max(0) as usize);
            for pidx in 0..count {
                let ppath = format!("{path}/{pidx}");
                let p = match s.store.get_data(&ppath) {
                    Ok(d) => {
                        let mut p =
                            json::partition_from_json(&d).map_err(|e| format!("{ppath}: {e}"))?;
                        stored_names(&p);
                        crate::rpc::host_port::clear_pc(&mut p);
                        p
                    }
                    Err(_) => {
                        // An interrupted create: write the missing partition now.
                        let p = new_partition(app_id, pidx, info.max_replica_count.unwrap_or(3));
                        s.store
                            .create_node(
                                &ppath,
                                json::partition_to_json(&json::with_host_ports(&p, &*s.host_ports))
                                    .as_bytes(),
                            )
                            .map_err(|e| e.to_string())?;
                        p
                    }
                };
                partitions.push(p);
            }
            s.apps.insert(app_id, AppState { info, partitions });
        }
        s.load_dups();
        // Nodes named by the configurations get a grace period to beacon in.
        let mut known = Vec::new();
        for app in s.apps.values() {
            for p in &app.partitions {
                known.extend(p.primary.iter().filter(|a| !a.is_invalid()).map(|a| a.0));
                known.extend(p.secondaries.iter().flatten().map(|a| a.0));
            }
        }
        for n in known {
            s.nodes.insert(
                n,
                NodeState {
                    alive: true,
                    last_beacon: now,
                },
            );
        }
        if s.apps.is_empty() {
            for d in defaults {
                let e = s.create_app(
                    &d.name,
                    &d.app_type,
                    d.partition_count,
                    d.max_replica_count,
                    d.stateful,
                    d.envs.clone(),
                    -1,
                );
                if let Err(e) = e {
                    return Err(format!("cannot create default table {}: {e}", d.name));
                }
            }
        }
        // A replica-count change interrupted by a restart is finished now.
        let pending: Vec<(i32, i32)> = s
            .apps
            .iter()
            .filter(|(_, a)| a.info.status == Some(AppStatus::AS_AVAILABLE))
            .filter_map(|(id, a)| {
                let v = a.info.envs.as_ref()?.get(MAX_REPLICA_COUNT_ENV)?;
                let n = v.strip_prefix("updating;")?.parse::<i32>().ok()?;
                (n > 0).then_some((*id, n))
            })
            .collect();
        for (id, n) in pending {
            s.finish_replica_count_update(id, n).map_err(|e| {
                format!("cannot finish the replica count change of table {id}: {e}")
            })?;
            info!("table {id}: finished its change of max_replica_count to {n}");
        }
        info!("meta state loaded: {} tables", s.apps.len());
        s.store.loaded();
        Ok(s)
    }

    /// `<cluster_root>/apps/<app_id>`.
    pub fn app_path(&self, app_id: i32) -> String {
        format!("{}/{app_id}", self.apps_root())
    }

    /// Loads the duplications of the available tables (`<app>/duplication/<dupid>`, progress
    /// in `<dupid>/<pidx>`); unreadable ones are skipped with an error logged, as upstream's.
    fn load_dups(&mut self) {
        use super::duplication::{status_invalid, DupInfo};
        let ids: Vec<i32> = self
            .apps
            .iter()
            .filter(|(_, a)| a.info.status == Some(AppStatus::AS_AVAILABLE))
            .map(|(id, _)| *id)
            .collect();
        for app_id in ids {
            let root = format!("{}/duplication", self.app_path(app_id));
            let Ok(children) = self.store.get_children(&root) else {
                continue;
            };
            let Some(app) = self.apps.get(&app_id) else {
                continue;
            };
            let name = app.info.app_name.clone().unwrap_or_default();
            let count = app.info.partition_count.unwrap_or(0);
            let replicas = app.info.max_replica_count.unwrap_or(3);
            let mut map = BTreeMap::new();
            for child in children {
                let Ok(dupid) = child.parse::<i32>() else {
                    log::error!("{root}/{child}: not a duplication id");
                    break;
                };
                let path = format!("{root}/{dupid}");
                let Some(mut d) =
                    self.store.get_data(&path).ok().and_then(|b| {
                        DupInfo::from_json(dupid, app_id, &name, count, replicas, &b)
                    })
                else {
                    log::error!("{path}: failed to decode the duplication");
                    continue;
                };
                if status_invalid(d.status) {
                    continue;
                }
                for pidx in 0..count {
                    let v = self.store.get_data(&format!("{path}/{pidx}")).ok();
                    d.init_progress(pidx, v.as_deref());
                }
                map.insert(dupid, d);
            }
            if !map.is_empty() {
                if let Some(a) = self.apps.get_mut(&app_id) {
                    a.info.duplicating = Some(true);
                }
                self.dups.insert(app_id, map);
            }
        }
    }

    fn apps_root(&self) -> String {
        let r = self.opts.cluster_root.trim_end_matches('/');
        format!("{r}/apps")
    }

    /// Where backup policies live: `<cluster_root>/backup`.
    pub fn backup_root(&self) -> String {
        let r = self.opts.cluster_root.trim_end_matches('/');
        format!("{r}/backup")
    }

    /// The state store, for the documents the backup service keeps beside the tables.
    pub fn store_mut(&mut self) -> &mut dyn super::state_store::StateStore {
        self.store.as_mut()
    }

    pub fn app_by_name(&self, name: &str) -> Option<&AppState> {
        self.apps.values().find(|a| {
            a.info.app_name.as_deref() == Some(name) && a.info.status != Some(AppStatus::AS_DROPPED)
        })
    }

    pub fn alive_nodes(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.alive)
            .map(|(a, _)| *a)
            .collect()
    }

    /// Creates a table and persists it with all its partitions; returns its id. A partition
    /// count outside 1..=MAX_PARTITION_COUNT is refused before anything is allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn create_app(
        &mut self,
        name: &str,
        app_type: &str,
        partition_count: i32,
        replica_count: i32,
        stateful: bool,
        envs: BTreeMap<String, String>,
        init_partition_count: i32,
    ) -> Result<i32, ErrorCode> {
        if !(1..=MAX_PARTITION_COUNT).contains(&partition_count) {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        let app_id = self.apps.keys().max().copied().unwrap_or(0) + 1;
        let info = AppInfo {
            status: Some(AppStatus::AS_AVAILABLE),
            app_type: Some(app_type.to_string()),
            app_name: Some(name.to_string()),
            app_id: Some(app_id),
            partition_count: Some(partition_count),
            envs: Some(envs),
            is_stateful: Some(stateful),
            max_replica_count: Some(replica_count),
            expire_second: Some(0),
            create_second: Some((self.wall_seconds)()),
            drop_second: Some(0),
            duplicating: Some(false),
            init_partition_count: Some(init_partition_count),
            is_bulk_loading: Some(false),
            atomic_idempotent: Some(false),
        };
        let path = format!("{}/{app_id}", self.apps_root());
        self.store
            .create_node(&path, json::app_info_to_json(&info).as_bytes())
            .map_err(store_err)?;
        let mut partitions = Vec::new();
        for pidx in 0..partition_count {
            let p = new_partition(app_id, pidx, replica_count);
            self.store
                .create_node(
                    &format!("{path}/{pidx}"),
                    json::partition_to_json(&json::with_host_ports(&p, &*self.host_ports))
                        .as_bytes(),
                )
                .map_err(store_err)?;
            partitions.push(p);
        }
        info!("created table {name} (id {app_id}, {partition_count} partitions)");
        self.apps.insert(app_id, AppState { info, partitions });
        Ok(app_id)
    }

    /// Rewrites a table's app_info.
    pub fn update_app_info(&mut self, app_id: i32, info: AppInfo) -> Result<(), ErrorCode> {
        let path = format!("{}/{app_id}", self.apps_root());
        self.store
            .set_data(&path, json::app_info_to_json(&info).as_bytes())
            .map_err(store_err)?;
        if let Some(a) = self.apps.get_mut(&app_id) {
            a.info = info;
        }
        Ok(())
    }

    /// Persists a new configuration of one partition, then applies it.
    pub fn update_partition(&mut self, p: PartitionConfiguration) -> Result<(), ErrorCode> {
        let pid = p.pid.unwrap_or_default();
        let path = format!(
            "{}/{}/{}",
            self.apps_root(),
            pid.app_id,
            pid.partition_index
        );
        self.store
            .set_data(
                &path,
                json::partition_to_json(&json::with_host_ports(&p, &*self.host_ports)).as_bytes(),
            )
            .map_err(store_err)?;
        if let Some(slot) = self
            .apps
            .get_mut(&pid.app_id)
            .and_then(|a| a.partitions.get_mut(pid.partition_index as usize))
        {
            *slot = p;
        }
        Ok(())
    }

    /// The table of `name` and its max_replica_count, checked as upstream does for the get
    /// and set RPCs (every partition must agree with the table).
    fn replica_count_of(&self, name: &str) -> Result<(i32, i32), (ErrorCode, String)> {
        let Some(app) = self.app_by_name(name) else {
            return Err((
                ErrorCode::APP_NOT_EXIST,
                format!("app({name}) does not exist"),
            ));
        };
        let id = app.info.app_id.unwrap_or(0);
        let count = app.info.max_replica_count.unwrap_or(0);
        for (i, pc) in app.partitions.iter().enumerate() {
            let p = pc.max_replica_count.unwrap_or(0);
            if p != count {
                return Err((
                    ErrorCode::INCONSISTENT_STATE,
                    format!(
                        "partition_max_replica_count({p}) != app_max_replica_count({count}) \
                         for partition {id}.{i}"
                    ),
                ));
            }
        }
        Ok((id, count))
    }

    /// RPC_CM_GET_MAX_REPLICA_COUNT: (error, count, hint).
    pub fn get_max_replica_count(&self, name: &str) -> (ErrorCode, i32, String) {
        match self.replica_count_of(name) {
            Ok((_, n)) => (ErrorCode::OK, n, String::new()),
            Err((e, hint)) => (e, 0, hint),
        }
    }

    /// RPC_CM_SET_MAX_REPLICA_COUNT as upstream, in three persisted steps: the table's
    /// `max_replica_count.update` env says "updating;<n>", every partition gets the new count
    /// with its ballot raised (so the replicas adopt it), then the table's count is written and
    /// the env removed. The guardian then adds or removes secondaries. (error, old, hint).
    pub fn set_max_replica_count(&mut self, name: &str, n: i32) -> (ErrorCode, i32, String) {
        let (app_id, old) = match self.replica_count_of(name) {
            Ok(x) => x,
            Err((e, hint)) => return (e, 0, hint),
        };
        let info = self.app_info(app_id);
        if info.status != Some(AppStatus::AS_AVAILABLE) {
            return (
                ErrorCode::INVALID_STATE,
                old,
                format!("app({name}) is not in available status"),
            );
        }
        if self.effective_level().0 <= MetaFunctionLevel::FL_FREEZED.0 {
            return (
                ErrorCode::STATE_FREEZED,
                old,
                "current meta function level is freezed, since there are too few alive nodes"
                    .into(),
            );
        }
        let (min, max) = (
            self.opts.min_allowed_replica_count,
            self.opts.max_allowed_replica_count,
        );
        if n > max || n < min {
            return (
                ErrorCode::INVALID_PARAMETERS,
                old,
                format!("requested replica count({n}) must be within the range of [min={min}, max={max}]"),
            );
        }
        let alive = self.alive_nodes().len();
        if n as usize > alive {
            return (
                ErrorCode::INVALID_PARAMETERS,
                old,
                format!(
                    "there are not enough alive replica servers({alive}) for the requested \
                     replica count({n})"
                ),
            );
        }
        if n == old {
            return (
                ErrorCode::OK,
                old,
                "no need to update max_replica_count since it's not changed".into(),
            );
        }
        let updating = info
            .envs
            .as_ref()
            .and_then(|e| e.get(MAX_REPLICA_COUNT_ENV))
            .is_some_and(|v| v.split(';').next() == Some("updating"));
        if updating {
            return (
                ErrorCode::OPERATION_DISABLED,
                old,
                format!(
                    "max_replica_count of app({name}) is being updated, thus this request \
                     would be rejected"
                ),
            );
        }
        let mut marked = info;
        marked
            .envs
            .get_or_insert_with(Default::default)
            .insert(MAX_REPLICA_COUNT_ENV.into(), format!("updating;{n}"));
        if let Err(e) = self.update_app_info(app_id, marked) {
            return (e, old, String::new());
        }
        match self.finish_replica_count_update(app_id, n) {
            Ok(()) => {
                info!("table {name}: max_replica_count {old} -> {n}");
                (ErrorCode::OK, old, String::new())
            }
            Err(e) => (e, old, String::new()),
        }
    }

    /// Steps two and three of a replica-count change (also how a restarted meta finishes one).
    fn finish_replica_count_update(&mut self, app_id: i32, n: i32) -> Result<(), ErrorCode> {
        let partitions = self
            .apps
            .get(&app_id)
            .map(|a| a.partitions.clone())
            .unwrap_or_default();
        for mut pc in partitions {
            if pc.max_replica_count == Some(n) {
                continue;
            }
            pc.max_replica_count = Some(n);
            pc.ballot = Some(pc.ballot.unwrap_or(0) + 1);
            let pid = pc.pid.unwrap_or_default();
            self.update_partition(pc)?;
            self.sent.remove(&(pid.app_id, pid.partition_index));
        }
        let mut info = self.app_info(app_id);
        info.max_replica_count = Some(n);
        if let Some(e) = info.envs.as_mut() {
            e.remove(MAX_REPLICA_COUNT_ENV);
        }
        self.update_app_info(app_id, info)
    }

    /// Drops a table: marks it dropped, then flags and empties every partition.
    pub fn drop_app(&mut self, app_id: i32, reserve_seconds: Option<i64>) -> Result<(), ErrorCode> {
        let Some(app) = self.apps.get(&app_id) else {
            return Err(ErrorCode::APP_NOT_EXIST);
        };
        let mut info = app.info.clone();
        let now = (self.wall_seconds)();
        let hold = match reserve_seconds {
            Some(r) if r > 0 => r,
            _ => self.opts.hold_seconds_for_dropped_app,
        };
        info.status = Some(AppStatus::AS_DROPPED);
        info.drop_second = Some(now);
        info.expire_second = Some(now + hold);
        let partitions = app.partitions.clone();
        self.update_app_info(app_id, info)?;
        for mut p in partitions {
            let mut drops = p.last_drops.take().unwrap_or_default();
            if let Some(prim) = p.primary.filter(|a| !a.is_invalid()) {
                drops.push(prim);
            }
            drops.extend(p.secondaries.take().unwrap_or_default());
            let keep = drops.len().saturating_sub(3);
            p.last_drops = Some(drops.split_off(keep));
            p.primary = Some(RpcAddress::INVALID);
            p.secondaries = Some(Vec::new());
            p.ballot = Some(p.ballot.unwrap_or(0) + 1);
            p.partition_flags = Some(p.partition_flags.unwrap_or(0) | PARTITION_FLAG_DROPPED);
            self.update_partition(p)?;
        }
        // What the replicas reported of the table and its queued proposals are void now (the
        // drop history stays: a recall reassigns the partitions from it).
        self.lb_actions.retain(|(a, _), _| *a != app_id);
        self.disk_tags.retain(|(a, _, _), _| *a != app_id);
        self.compact_status.retain(|(a, _, _), _| *a != app_id);
        self.dead_reasons.retain(|(a, _), _| *a != app_id);
        Ok(())
    }

    /// Brings a dropped table back within its hold period (RPC_CM_RECALL_APP), under
    /// `new_name` when given: the table is available again and every partition loses its
    /// dropped flag, so the guardian reassigns it from its last members (whose replica
    /// servers still hold the data). Returns the table's info.
    pub fn recall_app(&mut self, app_id: i32, new_name: &str) -> Result<AppInfo, ErrorCode> {
        let Some(app) = self.apps.get(&app_id) else {
            return Err(ErrorCode::APP_NOT_EXIST);
        };
        match app.info.status {
            Some(AppStatus::AS_DROPPED) => {}
            Some(AppStatus::AS_CREATING) | Some(AppStatus::AS_RECALLING) => {
                return Err(ErrorCode::BUSY_CREATING)
            }
            Some(AppStatus::AS_DROPPING) => return Err(ErrorCode::BUSY_DROPPING),
            _ => return Err(ErrorCode::APP_EXIST),
        }
        if app.info.expire_second.unwrap_or(0) <= (self.wall_seconds)() {
            return Err(ErrorCode::APP_NOT_EXIST);
        }
        let mut info = app.info.clone();
        if !new_name.is_empty() {
            info.app_name = Some(new_name.to_string());
        }
        if self
            .app_by_name(info.app_name.as_deref().unwrap_or(""))
            .is_some()
        {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        info.status = Some(AppStatus::AS_AVAILABLE);
        let partitions = app.partitions.clone();
        self.update_app_info(app_id, info.clone())?;
        for mut p in partitions {
            p.partition_flags = Some(0);
            self.update_partition(p)?;
        }
        info!(
            "recalled table {} (id {app_id})",
            info.app_name.as_deref().unwrap_or("")
        );
        Ok(info)
    }

    /// RPC_CM_START_MANUAL_COMPACT: sets the table's one-off manual-compaction envs as
    /// upstream does (trigger time = `trigger_time` or now, target level, bottommost
    /// force/skip, the running limit when positive); the replicas start on their next config
    /// sync. Returns (error, hint).
    pub fn start_manual_compact(
        &mut self,
        req: &crate::idl::meta_admin::StartAppManualCompactRequest,
    ) -> (ErrorCode, String) {
        use crate::storage::manual_compact as mc;
        let name = req.app_name.clone().unwrap_or_default();
        let (app_id, mut info) = match self.compact_target(&name) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let envs = info.envs.get_or_insert_with(BTreeMap::new);
        if envs.get(mc::ENV_DISABLED).is_some_and(|v| v == "true") {
            return (
                ErrorCode::OPERATION_DISABLED,
                format!("app {name} disable manual compaction"),
            );
        }
        let target_level = req.target_level.unwrap_or(-1);
        if target_level < -1 {
            return (
                ErrorCode::INVALID_PARAMETERS,
                format!(
                    "invalid target_level({target_level}), should in range of [-1, num_levels]"
                ),
            );
        }
        let max_running = req.max_running_count.unwrap_or(0);
        if max_running < 0 {
            return (
                ErrorCode::INVALID_PARAMETERS,
                format!("invalid max_running_count({max_running}), should be greater than 0"),
            );
        }
        envs.insert(mc::ENV_ONCE_TARGET_LEVEL.into(), target_level.to_string());
        if max_running > 0 {
            envs.insert(mc::ENV_MAX_RUNNING.into(), max_running.to_string());
        }
        let bottommost = if req.bottommost == Some(true) {
            mc::BOTTOMMOST_FORCE
        } else {
            mc::BOTTOMMOST_SKIP
        };
        envs.insert(mc::ENV_ONCE_BOTTOMMOST.into(), bottommost.into());
        let trigger = req.trigger_time.unwrap_or_else(|| (self.wall_seconds)());
        envs.insert(mc::ENV_ONCE_TRIGGER_TIME.into(), trigger.to_string());
        if let Err(e) = self.update_app_info(app_id, info) {
            return (e, "cannot persist the table envs".into());
        }
        // Whatever the members reported so far is from before this start.
        self.compact_status.retain(|(a, _, _), _| *a != app_id);
        info!("manual compaction of {name} (id {app_id}) requested: trigger time {trigger}, target level {target_level}, bottommost {bottommost}");
        (ErrorCode::OK, "succeed".into())
    }

    /// RPC_CM_QUERY_MANUAL_COMPACT_STATUS: the percentage of the table's replicas (partition
    /// count x max replica count) whose compaction finished; ERR_INVALID_STATE when every
    /// member is idle (none was started). Returns (error, hint, progress).
    pub fn manual_compact_progress(&self, name: &str) -> (ErrorCode, String, Option<i32>) {
        let (app_id, info) = match self.compact_target(name) {
            Ok(a) => a,
            Err((e, hint)) => return (e, hint, None),
        };
        let Some(app) = self.apps.get(&app_id) else {
            return (ErrorCode::APP_NOT_EXIST, String::new(), None);
        };
        let total = i64::from(info.partition_count.unwrap_or(0))
            * i64::from(info.max_replica_count.unwrap_or(0));
        let (mut idle, mut finished) = (0i64, 0i64);
        for (pidx, pc) in app.partitions.iter().enumerate() {
            let members = pc.primary.iter().chain(pc.secondaries.iter().flatten());
            for m in members.filter(|a| !a.is_invalid()) {
                match self
                    .compact_status
                    .get(&(app_id, pidx as i32, m.0))
                    .copied()
                    .unwrap_or(ManualCompactionStatus::IDLE)
                {
                    ManualCompactionStatus::FINISHED => finished += 1,
                    ManualCompactionStatus::IDLE => idle += 1,
                    _ => {}
                }
            }
        }
        // Missing members count as idle, as upstream's per-partition slots do.
        let members: i64 = app
            .partitions
            .iter()
            .map(|pc| guardian::replica_count(pc) as i64)
            .sum();
        idle += (total - members).max(0);
        if total <= 0 || idle == total {
            return (
                ErrorCode::INVALID_STATE,
                format!("app {name} is not manual compaction"),
                None,
            );
        }
        (
            ErrorCode::OK,
            "succeed".into(),
            Some((finished * 100 / total) as i32),
        )
    }

    /// The available table a manual-compaction request names: (id, info), or upstream's
    /// (error, hint).
    fn compact_target(&self, name: &str) -> Result<(i32, AppInfo), (ErrorCode, String)> {
        let app = self.app_by_name(name).ok_or_else(|| {
            (
                ErrorCode::APP_NOT_EXIST,
                format!("app {name} is not existed"),
            )
        })?;
        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
            return Err((
                ErrorCode::APP_DROPPED,
                format!("app {name} is not available"),
            ));
        }
        Ok((app.info.app_id.unwrap_or(0), app.info.clone()))
    }

    /// Renames an available table (RPC_CM_RENAME_APP): (error, hint).
    pub fn rename_app(&mut self, old: &str, new: &str) -> (ErrorCode, String) {
        let Some(app) = self
            .apps
            .values()
            .find(|a| a.info.app_name.as_deref() == Some(old))
        else {
            return (
                ErrorCode::APP_NOT_EXIST,
                format!("app({old}) does not exist"),
            );
        };
        match app.info.status {
            Some(AppStatus::AS_AVAILABLE) => {}
            Some(AppStatus::AS_CREATING) | Some(AppStatus::AS_RECALLING) => {
                return (ErrorCode::BUSY_CREATING, String::new())
            }
            Some(AppStatus::AS_DROPPING) => return (ErrorCode::BUSY_DROPPING, String::new()),
            _ => {
                return (
                    ErrorCode::APP_DROPPED,
                    format!("app({old}) has been dropped"),
                )
            }
        }
        if self.app_by_name(new).is_some() {
            return (
                ErrorCode::INVALID_PARAMETERS,
                format!("app({new}) already exists"),
            );
        }
        let app_id = app.info.app_id.unwrap_or(0);
        let mut info = app.info.clone();
        info.app_name = Some(new.to_string());
        match self.update_app_info(app_id, info) {
            Ok(()) => (ErrorCode::OK, String::new()),
            Err(e) => (e, String::new()),
        }
    }

    /// Records a beacon; returns true when the node was not alive before.
    pub fn on_beacon(&mut self, node: u64, now: Instant) -> bool {
        let e = self.nodes.entry(node).or_insert(NodeState {
            alive: false,
            last_beacon: now,
        });
        e.last_beacon = now;
        let was_dead = !e.alive;
        e.alive = true;
        was_dead
    }

    /// The effective function level: frozen while too few nodes are alive.
    pub fn effective_level(&self) -> MetaFunctionLevel {
        let alive = self.alive_nodes().len();
        let total = self.nodes.len() as u64;
        let too_few = alive < self.opts.min_live_node_count_for_unfreeze
            || (alive as u64) * 100 < self.opts.node_live_percentage_threshold_for_update * total;
        if too_few && self.level.0 > MetaFunctionLevel::FL_FREEZED.0 {
            MetaFunctionLevel::FL_FREEZED
        } else {
            self.level
        }
    }

    fn history(&mut self, app_id: i32, pidx: i32, now_ms: i64) -> &mut DropHistory {
        let opts = self.guardian.clone();
        let pc = self
            .apps
            .get(&app_id)
            .and_then(|a| a.partitions.get(pidx as usize))
            .cloned()
            .unwrap_or_default();
        self.histories
            .entry((app_id, pidx))
            .or_insert_with(|| DropHistory::from_last_drops(&pc, now_ms, &opts))
    }

    fn app_info(&self, app_id: i32) -> AppInfo {
        self.apps
            .get(&app_id)
            .map(|a| a.info.clone())
            .unwrap_or_default()
    }

    /// Persists a configuration the meta decided itself and feeds the drop history.
    fn rewrite(
        &mut self,
        config: PartitionConfiguration,
        kind: ConfigType,
        node: RpcAddress,
        now_ms: i64,
    ) {
        let pid = config.pid.unwrap_or_default();
        let opts = self.guardian.clone();
        match self.update_partition(config.clone()) {
            Ok(()) => {
                info!(
                    "partition {pid}: {kind:?} of {node} written (ballot {})",
                    config.ballot.unwrap_or(0)
                );
                self.history(pid.app_id, pid.partition_index, now_ms)
                    .on_config_update(kind, node, &config, now_ms, &opts);
                self.pop_lb_action(pid.app_id, pid.partition_index);
            }
            Err(e) => warn!("cannot persist configuration of {pid}: {e}"),
        }
    }

    /// Queues a proposal unless the same one was sent for this ballot a moment ago.
    fn propose(
        &mut self,
        pc: &PartitionConfiguration,
        target: RpcAddress,
        node: RpcAddress,
        kind: ConfigType,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let pid = pc.pid.unwrap_or_default();
        let key = (pid.app_id, pid.partition_index);
        let ballot = pc.ballot.unwrap_or(0);
        // One proposal per partition and ballot at a time: the replica answers by changing the
        // configuration (which clears this), or it is sent again after a while.
        if let Some((b, _, _, at)) = self.sent.get(&key) {
            if *b == ballot && now.duration_since(*at) < PROPOSAL_RESEND {
                return;
            }
        }
        self.sent.insert(key, (ballot, kind.0, node.0, now));
        let info = self.app_info(pid.app_id);
        info!("partition {pid}: proposing {kind:?} of {node} to {target}");
        out.push(Outgoing {
            target,
            request: guardian::proposal_request(&info, pc, node, kind),
        });
    }

    /// One round of the periodic checker: expire dead nodes (taking them out of their
    /// partitions), then let the guardian cure every partition. Returns the proposals to send.
    pub fn check(&mut self, now: Instant, now_ms: i64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let grace = self.opts.grace;
        let mut newly_dead = Vec::new();
        for (addr, n) in self.nodes.iter_mut() {
            if n.alive && now.duration_since(n.last_beacon) > grace {
                n.alive = false;
                newly_dead.push(RpcAddress(*addr));
            }
        }
        for d in &newly_dead {
            info!("replica server {d} is dead");
            self.collected.remove(&d.0);
            self.collected_at.remove(&d.0);
        }
        // Downgrades on node death happen down to the freezed level, as upstream. Every
        // round takes every dead member out again, not only the newly dead: a downgrade the
        // state store could not persist is retried (upstream retries the write itself).
        if self.level.0 > MetaFunctionLevel::FL_BLIND.0 {
            let dead: BTreeSet<u64> = self
                .nodes
                .iter()
                .filter(|(_, n)| !n.alive)
                .map(|(a, _)| *a)
                .collect();
            let pcs: Vec<PartitionConfiguration> = self
                .apps
                .values()
                .filter(|a| a.info.status == Some(AppStatus::AS_AVAILABLE))
                .flat_map(|a| a.partitions.iter())
                .filter(|pc| {
                    guardian::primary_of(pc)
                        .into_iter()
                        .chain(guardian::secondaries_of(pc))
                        .any(|m| dead.contains(&m.0))
                })
                .cloned()
                .collect();
            for pc in pcs {
                let members = guardian::primary_of(&pc)
                    .into_iter()
                    .chain(guardian::secondaries_of(&pc));
                for m in members.filter(|m| dead.contains(&m.0)) {
                    match guardian::on_node_dead(&pc, m) {
                        Some(Proposal::Rewrite { config, kind, node }) => {
                            // The configuration changed: the rest waits for the next round.
                            self.rewrite(config, kind, node, now_ms);
                            break;
                        }
                        Some(Proposal::Send { target, node, kind }) => {
                            self.propose(&pc, target, node, kind, now, &mut out);
                            break;
                        }
                        None => {}
                    }
                }
            }
        }
        if self.effective_level().0 <= MetaFunctionLevel::FL_FREEZED.0 {
            return out;
        }
        let alive: BTreeSet<u64> = self.alive_nodes().into_iter().collect();
        let all: Vec<PartitionConfiguration> = self
            .apps
            .values()
            .filter(|a| a.info.status == Some(AppStatus::AS_AVAILABLE))
            .flat_map(|a| a.partitions.iter().cloned())
            .collect();
        let mut view = NodeView::from_partitions(alive, self.collected.clone(), all.iter());
        view.collected_at = self.collected_at.clone();
        let opts = self.guardian.clone();
        let mut unhealthy = 0usize;
        let mut add_secondaries = Vec::new();
        for pc in all {
            let pid = pc.pid.unwrap_or_default();
            let key = (pid.app_id, pid.partition_index);
            // A queued balancer or operator proposal goes first while it stays valid.
            if let Some(a) = self.lb_actions.get(&key).and_then(|q| q.front().copied()) {
                match guardian::validate_proposal(&pc, &view, a.target, a.node, a.kind) {
                    Ok(()) => {
                        unhealthy += 1;
                        if is_add_secondary(a.kind) {
                            add_secondaries.push((pc, a.target, a.node, a.kind));
                        } else {
                            self.propose(&pc, a.target, a.node, a.kind, now, &mut out);
                        }
                        continue;
                    }
                    Err(why) => {
                        warn!(
                            "proposal {:?} of {} to {} for {pid} is invalid ({why}); \
                             dropping the partition's queued proposals",
                            a.kind, a.node, a.target
                        );
                        self.lb_actions.remove(&key);
                    }
                }
            }
            let mut history = self
                .history(pid.app_id, pid.partition_index, now_ms)
                .clone();
            let decision = guardian::cure(&pc, &mut view, &mut history, now_ms, &opts);
            self.histories
                .insert((pid.app_id, pid.partition_index), history);
            if !matches!(decision, guardian::Cure::Healthy) {
                unhealthy += 1;
            }
            // A partition that cannot be cured is reported once per reason.
            if let guardian::Cure::Dead(reason) = &decision {
                if self.dead_reasons.get(&key) != Some(reason) {
                    warn!("partition {pid} has no usable replica: {reason}");
                    self.dead_reasons.insert(key, reason.clone());
                }
            } else {
                self.dead_reasons.remove(&key);
            }
            match decision.into_proposal() {
                Some(Proposal::Send { target, node, kind }) if is_add_secondary(kind) => {
                    add_secondaries.push((pc, target, node, kind))
                }
                Some(Proposal::Send { target, node, kind }) => {
                    self.propose(&pc, target, node, kind, now, &mut out)
                }
                Some(Proposal::Rewrite { config, kind, node }) => {
                    self.rewrite(config, kind, node, now_ms)
                }
                None => {}
            }
        }
        // New secondaries: partitions with none first; with flow control, at most N per
        // receiving node and round.
        add_secondaries.sort_by_key(|(pc, ..)| !guardian::secondaries_of(pc).is_empty());
        let mut per_node: BTreeMap<u64, i64> = BTreeMap::new();
        for (pc, target, node, kind) in add_secondaries {
            let n = per_node.entry(node.0).or_insert(0);
            if self.opts.add_secondary_flow_control
                && *n >= self.opts.add_secondary_max_count_for_one_node
            {
                continue;
            }
            *n += 1;
            self.propose(&pc, target, node, kind, now, &mut out);
        }
        let due = self
            .last_balance
            .is_none_or(|t| now.duration_since(t) >= self.opts.lb_interval);
        if due && unhealthy == 0 && self.can_run_balancer() {
            self.last_balance = Some(now);
            self.run_balancer(now, &mut out);
        }
        out
    }

    /// Upstream's precondition of a balancer round: no dead node still holds replicas (dead
    /// nodes holding none are forgotten here), and no table is being created, dropped or
    /// recalled.
    fn can_run_balancer(&mut self) -> bool {
        let mut holding: BTreeSet<u64> = BTreeSet::new();
        for a in self.apps.values() {
            if a.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            for pc in &a.partitions {
                holding.extend(guardian::primary_of(pc).map(|n| n.0));
                holding.extend(guardian::secondaries_of(pc).iter().map(|n| n.0));
            }
        }
        for (n, st) in &self.nodes {
            if !st.alive && holding.contains(n) {
                return false;
            }
        }
        let before = self.nodes.len();
        self.nodes.retain(|_, st| st.alive);
        if self.nodes.len() != before {
            info!(
                "forgot {} dead replica servers that hold no replica",
                before - self.nodes.len()
            );
        }
        !self.apps.values().any(|a| {
            matches!(
                a.info.status,
                Some(AppStatus::AS_CREATING)
                    | Some(AppStatus::AS_DROPPING)
                    | Some(AppStatus::AS_RECALLING)
            )
        })
    }

    /// The balancer's round: at the steady level it only counts the operations still needed;
    /// at lively it queues them and sends each partition's first action.
    fn run_balancer(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        let level = self.effective_level();
        if level.0 < MetaFunctionLevel::FL_STEADY.0 {
            return;
        }
        let lively = level.0 >= MetaFunctionLevel::FL_LIVELY.0;
        let nodes: Vec<RpcAddress> = self.alive_nodes().into_iter().map(RpcAddress).collect();
        let (list, collected) = {
            let tags = &self.disk_tags;
            let lookup = |app: i32, pidx: i32, n: RpcAddress| tags.get(&(app, pidx, n.0)).cloned();
            let view = balancer::View {
                apps: &self.apps,
                nodes,
                disk_tag: &lookup,
            };
            let mut list = MigrationList::new();
            if lively {
                list = balancer::balance(&view, &self.opts.balancer, false);
            }
            if list.is_empty() {
                list = balancer::balance(&view, &self.opts.balancer, true);
                (list, balancer::all_infos_collected(&view))
            } else {
                (list, true)
            }
        };
        let (mv, cp, cs) = balancer::count_ops(&list);
        let total = if collected { list.len() as i64 } else { -1 };
        self.lb_counts = [mv, cp, cs, total];
        if !lively || list.is_empty() {
            return;
        }
        info!(
            "balancer: {} operations (move_pri {mv}, copy_pri {cp}, copy_sec {cs})",
            list.len()
        );
        for ((app, pidx), op) in list {
            let Some(pc) = self
                .apps
                .get(&app)
                .and_then(|a| a.partitions.get(pidx as usize))
                .cloned()
            else {
                continue;
            };
            let a = op.actions.first().copied();
            info!("balancer: {app}.{pidx} {}", balancer::describe(&op));
            self.lb_actions.insert((app, pidx), op.actions.into());
            if let Some(a) = a {
                self.propose(&pc, a.target, a.node, a.kind, now, out);
            }
        }
    }

    /// Upstream's balance score: the standard deviations of primaries and of replicas per
    /// alive node holding any (the sample form when dead nodes still hold some), truncated to
    /// two decimals.
    pub fn replica_count_stddev(&self) -> (f64, f64) {
        let mut load: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for a in self.apps.values() {
            if a.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            for pc in &a.partitions {
                if let Some(p) = guardian::primary_of(pc) {
                    let e = load.entry(p.0).or_default();
                    e.0 += 1.0;
                    e.1 += 1.0;
                }
                for s in guardian::secondaries_of(pc) {
                    load.entry(s.0).or_default().1 += 1.0;
                }
            }
        }
        let (mut prims, mut reps) = (Vec::new(), Vec::new());
        let (mut partial_p, mut partial_r) = (false, false);
        for (n, (p, r)) in &load {
            if self.nodes.get(n).is_some_and(|st| st.alive) {
                prims.push(*p);
                reps.push(*r);
            } else {
                partial_p |= *p > 0.0;
                partial_r |= *r > 0.0;
            }
        }
        if prims.len() <= 1 || reps.len() <= 1 {
            return (0.0, 0.0);
        }
        let sd = |v: &[f64], partial: bool| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sq = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
            let x = (sq / if partial { n - 1.0 } else { n }).sqrt();
            ((x + 0.005) * 100.0).floor() / 100.0
        };
        (sd(&prims, partial_p), sd(&reps, partial_r))
    }

    /// An accepted configuration change of a partition completes its queued front action.
    fn pop_lb_action(&mut self, app_id: i32, pidx: i32) {
        if let Some(q) = self.lb_actions.get_mut(&(app_id, pidx)) {
            q.pop_front();
            if q.is_empty() {
                self.lb_actions.remove(&(app_id, pidx));
            }
        }
    }

    /// Drops every queued proposal (the level went down to steady or below).
    pub fn clear_proposals(&mut self) {
        self.lb_actions.clear();
    }

    /// RPC_CM_PROPOSE_BALANCER: `force` sends the actions at once, unchecked; otherwise they
    /// are queued on the partition (actions without a target go to its primary) and sent one
    /// by one as the configuration changes. Returns the error and what to send now.
    pub fn propose_balancer(
        &mut self,
        req: &crate::idl::meta_admin::ConfigurationBalancerRequest,
    ) -> (ErrorCode, Vec<Outgoing>) {
        let pid = req.gpid.unwrap_or_default();
        let Some(app) = self.apps.get(&pid.app_id) else {
            return (ErrorCode::APP_NOT_EXIST, Vec::new());
        };
        let Some(pc) = app
            .partitions
            .get(usize::try_from(pid.partition_index).unwrap_or(usize::MAX))
            .filter(|_| app.info.status == Some(AppStatus::AS_AVAILABLE))
            .cloned()
        else {
            return (ErrorCode::INVALID_PARAMETERS, Vec::new());
        };
        let resolve = |a: Option<RpcAddress>, hp: Option<&HostPort>| -> RpcAddress {
            match a.filter(|a| !a.is_invalid()) {
                Some(a) => a,
                None => hp
                    .filter(|h| !h.is_invalid())
                    .and_then(|h| super::service::resolve_leader(&format!("{}:{}", h.host, h.port)))
                    .unwrap_or(RpcAddress::INVALID),
            }
        };
        let mut actions = Vec::new();
        for act in req.action_list.iter().flatten() {
            actions.push(balancer::Action {
                target: resolve(act.target, act.hp_target.as_ref()),
                node: resolve(act.node, act.hp_node.as_ref()),
                kind: act.type_.unwrap_or(ConfigType::CT_INVALID),
            });
        }
        let key = (pid.app_id, pid.partition_index);
        if req.force == Some(true) {
            let info = app.info.clone();
            let out = actions
                .iter()
                .map(|a| Outgoing {
                    target: a.target,
                    request: guardian::proposal_request(&info, &pc, a.node, a.kind),
                })
                .collect();
            return (ErrorCode::OK, out);
        }
        if self.lb_actions.contains_key(&key) {
            return (ErrorCode::INVALID_PARAMETERS, Vec::new());
        }
        for a in actions.iter_mut() {
            if a.target.is_invalid() {
                match guardian::primary_of(&pc) {
                    Some(p) => a.target = p,
                    None => return (ErrorCode::INVALID_PARAMETERS, Vec::new()),
                }
            }
        }
        info!(
            "partition {pid}: queued proposals {}",
            balancer::describe_actions(&actions)
        );
        if !actions.is_empty() {
            self.lb_actions.insert(key, actions.into());
        }
        (ErrorCode::OK, Vec::new())
    }

    /// RPC_CM_UPDATE_PARTITION_CONFIGURATION from a replica: (error, configuration to reply).
    /// `None` means no reply (the request is malformed).
    pub fn update_configuration(
        &mut self,
        mut req: ConfigurationUpdateRequest,
        now_ms: i64,
    ) -> Option<(ErrorCode, PartitionConfiguration)> {
        let pid = req.config.as_ref()?.pid?;
        let current = self
            .apps
            .get(&pid.app_id)?
            .partitions
            .get(pid.partition_index as usize)?
            .clone();
        if self.effective_level().0 <= MetaFunctionLevel::FL_FREEZED.0 {
            return Some((ErrorCode::STATE_FREEZED, current));
        }
        // Replicas do not track the drop list; the meta's own is the one to maintain.
        // Configurations are kept by address; hp_* are filled where they leave the meta.
        if let Some(c) = req.config.as_mut() {
            c.last_drops = current.last_drops.clone();
            crate::rpc::host_port::clear_pc(c);
        }
        req.hp_node = None;
        match guardian::check_update(&current, &req) {
            UpdateOutcome::Apply(next) => {
                let kind = req.type_.unwrap_or(ConfigType::CT_INVALID);
                let node = req.node.unwrap_or(RpcAddress::INVALID);
                let opts = self.guardian.clone();
                if let Err(e) = self.update_partition(next.clone()) {
                    return Some((e, current));
                }
                info!(
                    "partition {pid}: {kind:?} of {node} accepted (ballot {})",
                    next.ballot.unwrap_or(0)
                );
                self.history(pid.app_id, pid.partition_index, now_ms)
                    .on_config_update(kind, node, &next, now_ms, &opts);
                self.sent.remove(&(pid.app_id, pid.partition_index));
                self.pop_lb_action(pid.app_id, pid.partition_index);
                Some((ErrorCode::OK, next))
            }
            UpdateOutcome::Duplicate(c) => Some((ErrorCode::OK, c)),
            UpdateOutcome::InvalidVersion(c) => Some((ErrorCode::INVALID_VERSION, c)),
            UpdateOutcome::Malformed(_) => None,
        }
    }

    /// Records the replicas a node reported in config sync (for the drop history).
    pub fn collect_replicas(&mut self, node: RpcAddress, stored: &[ReplicaInfo], now_ms: i64) {
        self.collected.insert(node.0);
        self.collected_at.insert(node.0, now_ms);
        let opts = self.guardian.clone();
        for r in stored {
            let Some(pid) = r.pid else { continue };
            let Some(pc) = self
                .apps
                .get(&pid.app_id)
                .and_then(|a| a.partitions.get(pid.partition_index as usize))
                .cloned()
            else {
                continue;
            };
            if guardian::is_member(&pc, node) {
                let st = r
                    .manual_compact_status
                    .unwrap_or(ManualCompactionStatus::IDLE);
                self.compact_status
                    .insert((pid.app_id, pid.partition_index, node.0), st);
                let tag = r.disk_tag.clone().unwrap_or_default();
                self.disk_tags
                    .insert((pid.app_id, pid.partition_index, node.0), tag);
                continue;
            }
            let (b, c, p) = (
                r.ballot.unwrap_or(0),
                r.last_committed_decree.unwrap_or(0),
                r.last_prepared_decree.unwrap_or(0),
            );
            self.history(pid.app_id, pid.partition_index, now_ms)
                .collect(&pc, node, b, c, p, &opts);
        }
    }
}

fn is_add_secondary(kind: ConfigType) -> bool {
    kind == ConfigType::CT_ADD_SECONDARY || kind == ConfigType::CT_ADD_SECONDARY_FOR_LB
}

/// A proposal to send to a replica server.
pub struct Outgoing {
    pub target: RpcAddress,
    pub request: ConfigurationUpdateRequest,
}

/// The same proposal is not re-sent to the same ballot more often than this.
const PROPOSAL_RESEND: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idl::meta_admin::{
        BalancerRequestType, ConfigurationBalancerRequest, ConfigurationProposalAction,
    };
    use crate::meta::state_store::LocalStore;

    fn opts() -> MetaOptions {
        MetaOptions {
            min_live_node_count_for_unfreeze: 1,
            grace: Duration::from_secs(10),
            ..MetaOptions::default()
        }
    }

    fn temp_default() -> DefaultApp {
        DefaultApp {
            name: "temp".into(),
            app_type: "pegasus".into(),
            partition_count: 4,
            max_replica_count: 3,
            stateful: true,
            envs: BTreeMap::new(),
        }
    }

    #[test]
    fn checker_proposes_primaries_then_secondaries_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let n: Vec<u64> = (1..=3)
            .map(|i| RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34800 + i).0)
            .collect();
        let t0 = Instant::now();
        {
            let store = Box::new(LocalStore::open(dir.path()).unwrap());
            let mut s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
            for x in &n {
                s.on_beacon(*x, t0);
            }
            let out = s.check(t0, 0);
            // Every brand-new partition gets an assign-primary proposal, spread over nodes.
            assert_eq!(out.len(), 4);
            assert!(out
                .iter()
                .all(|o| o.request.type_ == Some(ConfigType::CT_ASSIGN_PRIMARY)));
            let targets: BTreeSet<u64> = out.iter().map(|o| o.target.0).collect();
            assert_eq!(targets.len(), 3);
            // Not re-sent right away.
            assert!(s.check(t0, 0).is_empty());
            // The chosen node accepts: the replica proposes ballot 1 with itself as primary.
            let req = &out[0].request;
            let mut cfg = req.config.clone().unwrap();
            cfg.ballot = Some(1);
            cfg.primary = Some(out[0].target);
            let upd = ConfigurationUpdateRequest {
                config: Some(cfg.clone()),
                type_: Some(ConfigType::CT_ASSIGN_PRIMARY),
                node: Some(out[0].target),
                ..req.clone()
            };
            let (err, got) = s.update_configuration(upd.clone(), 0).unwrap();
            assert_eq!(err, ErrorCode::OK);
            assert_eq!(got.ballot, Some(1));
            // A duplicate is answered OK; a stale ballot gets ERR_INVALID_VERSION.
            assert_eq!(
                s.update_configuration(upd.clone(), 0).unwrap().0,
                ErrorCode::OK
            );
            let mut stale = upd.clone();
            stale.config.as_mut().unwrap().ballot = Some(5);
            assert_eq!(
                s.update_configuration(stale, 0).unwrap().0,
                ErrorCode::INVALID_VERSION
            );
            // Now that partition misses secondaries: the primary is asked to add one.
            let out = s.check(t0, 0);
            let pid = cfg.pid.unwrap();
            let add: Vec<_> = out
                .iter()
                .filter(|o| o.request.config.as_ref().unwrap().pid == Some(pid))
                .collect();
            assert_eq!(add.len(), 1);
            assert_eq!(add[0].request.type_, Some(ConfigType::CT_ADD_SECONDARY));
            assert_eq!(add[0].target, out_target(&cfg));
            // The primary dies: the meta clears it itself (ballot 2, last_drops = [it]).
            for x in &n {
                if Some(RpcAddress(*x)) != cfg.primary {
                    s.on_beacon(*x, t0 + Duration::from_secs(11));
                }
            }
            s.check(t0 + Duration::from_secs(11), 11_000);
            let app = s.app_by_name("temp").unwrap();
            let p = &app.partitions[pid.partition_index as usize];
            assert_eq!(p.ballot, Some(2));
            assert_eq!(p.primary, Some(RpcAddress::INVALID));
            assert_eq!(p.last_drops, Some(vec![cfg.primary.unwrap()]));
        }
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
        assert_eq!(s.apps.len(), 1);
        assert!(s
            .app_by_name("temp")
            .unwrap()
            .partitions
            .iter()
            .any(|p| p.ballot == Some(2)));
    }

    /// A loaded state with three alive nodes and `temp`'s 4 partitions led by node 0 with
    /// secondaries on 1 and 2, replica info (disk tags) reported.
    fn healthy_state(dir: &std::path::Path, t0: Instant) -> (ServerState, Vec<RpcAddress>) {
        let n: Vec<RpcAddress> = (1..=3)
            .map(|i| RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34800 + i))
            .collect();
        let store = Box::new(LocalStore::open(dir).unwrap());
        let mut s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
        for x in &n {
            s.on_beacon(x.0, t0);
        }
        let app = s.app_by_name("temp").unwrap().clone();
        for mut pc in app.partitions {
            pc.ballot = Some(3);
            pc.primary = Some(n[0]);
            pc.secondaries = Some(vec![n[1], n[2]]);
            s.update_partition(pc).unwrap();
        }
        (s, n)
    }

    fn action(target: RpcAddress, node: RpcAddress, t: ConfigType) -> ConfigurationProposalAction {
        ConfigurationProposalAction {
            target: Some(target),
            node: Some(node),
            type_: Some(t),
            hp_target: None,
            hp_node: None,
        }
    }

    #[test]
    fn queued_proposals_go_front_first_and_pop_on_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let (mut s, n) = healthy_state(dir.path(), t0);
        let app_id = s.app_by_name("temp").unwrap().info.app_id.unwrap();
        let mv = ConfigurationBalancerRequest {
            gpid: Some(Gpid::new(app_id, 0)),
            action_list: Some(vec![
                action(n[0], n[0], ConfigType::CT_DOWNGRADE_TO_SECONDARY),
                action(n[1], n[1], ConfigType::CT_UPGRADE_TO_PRIMARY),
            ]),
            force: Some(false),
            balance_type: Some(BalancerRequestType::MOVE_PRIMARY),
        };
        assert_eq!(s.propose_balancer(&mv).0, ErrorCode::OK);
        // One queue per partition.
        assert_eq!(s.propose_balancer(&mv).0, ErrorCode::INVALID_PARAMETERS);
        let mut bad = mv.clone();
        bad.gpid = Some(Gpid::new(app_id, 9));
        assert_eq!(s.propose_balancer(&bad).0, ErrorCode::INVALID_PARAMETERS);
        bad.gpid = Some(Gpid::new(77, 0));
        assert_eq!(s.propose_balancer(&bad).0, ErrorCode::APP_NOT_EXIST);
        let out = s.check(t0, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target, n[0]);
        assert_eq!(
            out[0].request.type_,
            Some(ConfigType::CT_DOWNGRADE_TO_SECONDARY)
        );
        // The primary steps down: the change is accepted and the next action is sent.
        let mut cfg = out[0].request.config.clone().unwrap();
        cfg.ballot = Some(4);
        cfg.primary = Some(RpcAddress::INVALID);
        cfg.secondaries = Some(vec![n[1], n[2], n[0]]);
        let upd = ConfigurationUpdateRequest {
            config: Some(cfg),
            type_: Some(ConfigType::CT_DOWNGRADE_TO_SECONDARY),
            node: Some(n[0]),
            ..out[0].request.clone()
        };
        assert_eq!(s.update_configuration(upd, 0).unwrap().0, ErrorCode::OK);
        let out = s.check(t0, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target, n[1]);
        assert_eq!(
            out[0].request.type_,
            Some(ConfigType::CT_UPGRADE_TO_PRIMARY)
        );
        // A copy without a target goes to the primary; an action naming a dead node drops
        // the whole queue, and the guardian takes over again.
        let cs = ConfigurationBalancerRequest {
            gpid: Some(Gpid::new(app_id, 1)),
            action_list: Some(vec![
                action(
                    RpcAddress::INVALID,
                    n[2],
                    ConfigType::CT_DOWNGRADE_TO_INACTIVE,
                ),
                action(RpcAddress::INVALID, n[1], ConfigType::CT_REMOVE),
            ]),
            force: None,
            balance_type: Some(BalancerRequestType::COPY_SECONDARY),
        };
        assert_eq!(s.propose_balancer(&cs).0, ErrorCode::OK);
        let q = s.lb_actions.get(&(app_id, 1)).unwrap();
        assert!(q.iter().all(|a| a.target == n[0]));
        let dead = RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34809);
        let cs2 = ConfigurationBalancerRequest {
            gpid: Some(Gpid::new(app_id, 2)),
            action_list: Some(vec![action(
                n[0],
                dead,
                ConfigType::CT_ADD_SECONDARY_FOR_LB,
            )]),
            ..cs.clone()
        };
        assert_eq!(s.propose_balancer(&cs2).0, ErrorCode::OK);
        s.check(t0, 0);
        assert!(!s.lb_actions.contains_key(&(app_id, 2)));
        // Going down to steady clears every queue; forced actions are sent at once.
        s.clear_proposals();
        assert!(s.lb_actions.is_empty());
        let mut forced = cs2.clone();
        forced.force = Some(true);
        let (err, out) = s.propose_balancer(&forced);
        assert_eq!(err, ErrorCode::OK);
        assert_eq!(out.len(), 1);
        assert!(s.lb_actions.is_empty());
    }

    #[test]
    fn replica_count_changes_in_three_steps_and_resume_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let (mut s, _n) = healthy_state(dir.path(), t0);
        assert_eq!(
            s.get_max_replica_count("temp"),
            (ErrorCode::OK, 3, String::new())
        );
        assert_eq!(s.get_max_replica_count("nope").0, ErrorCode::APP_NOT_EXIST);
        let (e, _, hint) = s.set_max_replica_count("temp", 4);
        assert_eq!(e, ErrorCode::INVALID_PARAMETERS);
        assert!(
            hint.contains("not enough alive replica servers(3)"),
            "{hint}"
        );
        let (e, _, hint) = s.set_max_replica_count("temp", 6);
        assert_eq!(e, ErrorCode::INVALID_PARAMETERS);
        assert!(hint.contains("[min=1, max=5]"), "{hint}");
        assert_eq!(
            s.set_max_replica_count("temp", 2),
            (ErrorCode::OK, 3, String::new())
        );
        let app = s.app_by_name("temp").unwrap().clone();
        assert_eq!(app.info.max_replica_count, Some(2));
        assert!(!app
            .info
            .envs
            .as_ref()
            .unwrap()
            .contains_key(MAX_REPLICA_COUNT_ENV));
        assert!(app
            .partitions
            .iter()
            .all(|p| p.max_replica_count == Some(2) && p.ballot == Some(4)));
        // The guardian now removes one secondary of each partition.
        let out = s.check(t0, 0);
        assert_eq!(out.len(), 4);
        assert!(out
            .iter()
            .all(|o| o.request.type_ == Some(ConfigType::CT_REMOVE)));
        // An interrupted change (env written, partitions not) is finished on load.
        let id = app.info.app_id.unwrap();
        let mut info = app.info.clone();
        info.envs
            .get_or_insert_with(Default::default)
            .insert(MAX_REPLICA_COUNT_ENV.into(), "updating;3".into());
        s.update_app_info(id, info).unwrap();
        assert_eq!(
            s.set_max_replica_count("temp", 3).0,
            ErrorCode::OPERATION_DISABLED
        );
        drop(s);
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
        let app = s.app_by_name("temp").unwrap();
        assert_eq!(app.info.max_replica_count, Some(3));
        assert!(app
            .partitions
            .iter()
            .all(|p| p.max_replica_count == Some(3) && p.ballot == Some(5)));
        assert!(!app
            .info
            .envs
            .as_ref()
            .unwrap()
            .contains_key(MAX_REPLICA_COUNT_ENV));
    }

    fn out_target(cfg: &PartitionConfiguration) -> RpcAddress {
        cfg.primary.unwrap()
    }

    #[test]
    fn a_partition_count_out_of_range_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let mut s = ServerState::load(store, opts(), &[]).unwrap();
        for pc in [0, -1, MAX_PARTITION_COUNT + 1, i32::MAX] {
            let r = s.create_app("t", "pegasus", pc, 1, true, BTreeMap::new(), pc);
            assert_eq!(r, Err(ErrorCode::INVALID_PARAMETERS), "{pc}");
        }
        assert!(s.apps.is_empty());
        let id = s
            .create_app("t", "pegasus", 4, 1, true, BTreeMap::new(), 4)
            .unwrap();
        assert_eq!(s.apps[&id].partitions.len(), 4);
    }

    #[test]
    fn drop_frees_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let mut s = ServerState::load(store, opts(), &[]).unwrap();
        let id = s
            .create_app("t", "pegasus", 2, 1, true, BTreeMap::new(), 2)
            .unwrap();
        s.lb_actions.insert((id, 0), VecDeque::new());
        s.disk_tags.insert((id, 1, 7), "ssd".into());
        s.drop_app(id, None).unwrap();
        assert!(s.app_by_name("t").is_none());
        assert!(s.lb_actions.is_empty() && s.disk_tags.is_empty());
        let id2 = s
            .create_app("t", "pegasus", 2, 1, true, BTreeMap::new(), 2)
            .unwrap();
        assert_eq!(id2, id + 1);
        let dropped = &s.apps[&id];
        assert!(dropped
            .partitions
            .iter()
            .all(|p| p.partition_flags == Some(1)));
    }

    #[test]
    fn recall_within_the_hold_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let now = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1000));
        let clock = now.clone();
        let mut s = ServerState::load_at(
            store,
            opts(),
            &[],
            Instant::now(),
            Box::new(move || clock.load(std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap();
        let id = s
            .create_app("t", "pegasus", 2, 1, true, BTreeMap::new(), 2)
            .unwrap();
        assert_eq!(s.recall_app(id, ""), Err(ErrorCode::APP_EXIST));
        assert_eq!(s.recall_app(id + 7, ""), Err(ErrorCode::APP_NOT_EXIST));
        s.drop_app(id, Some(100)).unwrap();
        // another table took the name meanwhile: recall it under a new one
        let other = s
            .create_app("t", "pegasus", 2, 1, true, BTreeMap::new(), 2)
            .unwrap();
        assert_eq!(s.recall_app(id, ""), Err(ErrorCode::INVALID_PARAMETERS));
        let info = s.recall_app(id, "t2").unwrap();
        assert_eq!(info.app_name.as_deref(), Some("t2"));
        assert_eq!(info.status, Some(AppStatus::AS_AVAILABLE));
        assert_eq!(s.app_by_name("t2").and_then(|a| a.info.app_id), Some(id));
        assert!(s.apps[&id]
            .partitions
            .iter()
            .all(|p| p.partition_flags == Some(0)));
        // past the hold period a dropped table is gone for good
        s.drop_app(other, Some(10)).unwrap();
        now.store(1011, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(s.recall_app(other, ""), Err(ErrorCode::APP_NOT_EXIST));
    }

    #[test]
    fn manual_compaction_envs_and_progress() {
        use crate::idl::meta_admin::StartAppManualCompactRequest;
        use crate::storage::manual_compact as mc;
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let mut s =
            ServerState::load_at(store, opts(), &[], Instant::now(), Box::new(|| 5000)).unwrap();
        let id = s
            .create_app("t", "pegasus", 2, 2, true, BTreeMap::new(), 2)
            .unwrap();
        let n: Vec<RpcAddress> = (1..=2)
            .map(|i| RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34800 + i))
            .collect();
        for p in s.apps.get_mut(&id).unwrap().partitions.iter_mut() {
            p.primary = Some(n[0]);
            p.secondaries = Some(vec![n[1]]);
        }
        let req = |level: i32, running: i32| StartAppManualCompactRequest {
            app_name: Some("t".into()),
            trigger_time: None,
            target_level: Some(level),
            bottommost: Some(true),
            max_running_count: Some(running),
        };
        assert_eq!(
            s.start_manual_compact(&req(-2, 0)).0,
            ErrorCode::INVALID_PARAMETERS
        );
        assert_eq!(
            s.start_manual_compact(&req(-1, -1)).0,
            ErrorCode::INVALID_PARAMETERS
        );
        let mut missing = req(-1, 0);
        missing.app_name = Some("nope".into());
        assert_eq!(s.start_manual_compact(&missing).0, ErrorCode::APP_NOT_EXIST);
        // never started: not in manual compaction
        assert_eq!(s.manual_compact_progress("t").0, ErrorCode::INVALID_STATE);
        assert_eq!(
            s.start_manual_compact(&req(2, 3)),
            (ErrorCode::OK, "succeed".into())
        );
        let envs = s.apps[&id].info.envs.clone().unwrap();
        assert_eq!(envs[mc::ENV_ONCE_TRIGGER_TIME], "5000");
        assert_eq!(envs[mc::ENV_ONCE_TARGET_LEVEL], "2");
        assert_eq!(envs[mc::ENV_ONCE_BOTTOMMOST], "force");
        assert_eq!(envs[mc::ENV_MAX_RUNNING], "3");
        // members report: partition 0 finished on both, partition 1 running on one
        let info = |pidx: i32, st: ManualCompactionStatus| ReplicaInfo {
            pid: Some(Gpid::new(id, pidx)),
            ballot: Some(1),
            status: Some(crate::idl::metadata::PartitionStatus::PS_SECONDARY),
            last_committed_decree: Some(0),
            last_prepared_decree: Some(0),
            last_durable_decree: Some(0),
            app_type: Some("pegasus".into()),
            disk_tag: Some("default".into()),
            manual_compact_status: Some(st),
        };
        s.collect_replicas(
            n[0],
            &[
                info(0, ManualCompactionStatus::FINISHED),
                info(1, ManualCompactionStatus::RUNNING),
            ],
            0,
        );
        s.collect_replicas(n[1], &[info(0, ManualCompactionStatus::FINISHED)], 0);
        assert_eq!(
            s.manual_compact_progress("t"),
            (ErrorCode::OK, "succeed".into(), Some(50))
        );
        s.collect_replicas(
            n[1],
            &[
                info(0, ManualCompactionStatus::FINISHED),
                info(1, ManualCompactionStatus::FINISHED),
            ],
            0,
        );
        s.collect_replicas(
            n[0],
            &[
                info(0, ManualCompactionStatus::FINISHED),
                info(1, ManualCompactionStatus::FINISHED),
            ],
            0,
        );
        assert_eq!(s.manual_compact_progress("t").2, Some(100));
        // disabled by env
        let mut i = s.apps[&id].info.clone();
        i.envs
            .as_mut()
            .unwrap()
            .insert(mc::ENV_DISABLED.into(), "true".into());
        s.update_app_info(id, i).unwrap();
        assert_eq!(
            s.start_manual_compact(&req(-1, 0)).0,
            ErrorCode::OPERATION_DISABLED
        );
    }
}

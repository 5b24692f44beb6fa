//! The meta server's view of the cluster (upstream's `server_state`): tables, partition
//! configurations and replica-server liveness. Every change is written to the state store
//! first and applied to memory only when the write succeeded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::idl::dsn::{ErrorCode, Gpid, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, PartitionConfiguration};
use crate::idl::meta_admin::MetaFunctionLevel;

use super::json;
use super::state_store::{StateStore, StoreError};

/// Partition flag set on the partitions of a dropped table.
pub const PARTITION_FLAG_DROPPED: i32 = 1;

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
    pub apps: BTreeMap<i32, AppState>,
    pub nodes: BTreeMap<u64, NodeState>,
    pub level: MetaFunctionLevel,
}

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
        let mut s = ServerState {
            store,
            level: opts.start_level,
            opts,
            apps: BTreeMap::new(),
            nodes: BTreeMap::new(),
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
                    Ok(d) => json::partition_from_json(&d).map_err(|e| format!("{ppath}: {e}"))?,
                    Err(_) => {
                        // An interrupted create: write the missing partition now.
                        let p = new_partition(app_id, pidx, info.max_replica_count.unwrap_or(3));
                        s.store
                            .create_node(
                                &ppath,
                                json::partition_to_json(&json::with_host_ports(&p)).as_bytes(),
                            )
                            .map_err(|e| e.to_string())?;
                        p
                    }
                };
                partitions.push(p);
            }
            s.apps.insert(app_id, AppState { info, partitions });
        }
        // Nodes named by the configurations get a grace period to beacon in.
        let now = Instant::now();
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
        info!("meta state loaded: {} tables", s.apps.len());
        Ok(s)
    }

    fn apps_root(&self) -> String {
        let r = self.opts.cluster_root.trim_end_matches('/');
        format!("{r}/apps")
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

    /// Creates a table and persists it with all its partitions; returns its id.
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
            create_second: Some(now_seconds()),
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
                    json::partition_to_json(&json::with_host_ports(&p)).as_bytes(),
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
                json::partition_to_json(&json::with_host_ports(&p)).as_bytes(),
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

    /// Drops a table: marks it dropped, then flags and empties every partition.
    pub fn drop_app(&mut self, app_id: i32, reserve_seconds: Option<i64>) -> Result<(), ErrorCode> {
        let Some(app) = self.apps.get(&app_id) else {
            return Err(ErrorCode::APP_NOT_EXIST);
        };
        let mut info = app.info.clone();
        let now = now_seconds();
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
        Ok(())
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
        if alive < self.opts.min_live_node_count_for_unfreeze
            && self.level.0 > MetaFunctionLevel::FL_FREEZED.0
        {
            MetaFunctionLevel::FL_FREEZED
        } else {
            self.level
        }
    }

    /// One round of the periodic checker: expire dead nodes, take dead primaries out of
    /// their partitions, and assign a primary to every partition that has none.
    pub fn check(&mut self, now: Instant) {
        let grace = self.opts.grace;
        let mut newly_dead = Vec::new();
        for (addr, n) in self.nodes.iter_mut() {
            if n.alive && now.duration_since(n.last_beacon) > grace {
                n.alive = false;
                newly_dead.push(*addr);
            }
        }
        for d in &newly_dead {
            info!("replica server {} is dead", RpcAddress(*d));
        }
        let mut updates = Vec::new();
        for app in self.apps.values() {
            if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            for p in &app.partitions {
                if let Some(prim) = p.primary.filter(|a| !a.is_invalid()) {
                    if self.nodes.get(&prim.0).map(|n| !n.alive).unwrap_or(true) {
                        let mut q = p.clone();
                        let mut drops = q.last_drops.take().unwrap_or_default();
                        drops.retain(|a| *a != prim);
                        drops.push(prim);
                        let keep = drops.len().saturating_sub(3);
                        q.last_drops = Some(drops.split_off(keep));
                        q.primary = Some(RpcAddress::INVALID);
                        q.ballot = Some(q.ballot.unwrap_or(0) + 1);
                        updates.push(q);
                    }
                }
            }
        }
        // Downgrades on node death happen down to the freezed level, as upstream.
        if self.level.0 > MetaFunctionLevel::FL_BLIND.0 {
            for q in updates {
                if let Err(e) = self.update_partition(q) {
                    warn!("cannot persist downgrade: {e}");
                }
            }
        }
        if self.effective_level().0 <= MetaFunctionLevel::FL_FREEZED.0 {
            return;
        }
        self.assign_primaries();
    }

    /// Gives every primary-less partition of an available table a primary: a brand-new
    /// partition goes to the live node with the fewest primaries; a partition that had data
    /// waits for its last primary to come back (a single replica has no other copy).
    pub fn assign_primaries(&mut self) {
        let alive = self.alive_nodes();
        if alive.is_empty() {
            return;
        }
        let mut load: BTreeMap<u64, usize> = alive.iter().map(|a| (*a, 0)).collect();
        for app in self.apps.values() {
            for p in &app.partitions {
                if let Some(prim) = p.primary {
                    if let Some(c) = load.get_mut(&prim.0) {
                        *c += 1;
                    }
                }
            }
        }
        let mut updates = Vec::new();
        for app in self.apps.values() {
            if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            for p in &app.partitions {
                if p.primary.map(|a| !a.is_invalid()).unwrap_or(false) {
                    continue;
                }
                let target = if p.ballot.unwrap_or(0) == 0 {
                    load.iter().min_by_key(|(a, c)| (**c, **a)).map(|(a, _)| *a)
                } else {
                    p.last_drops
                        .as_ref()
                        .and_then(|d| d.last())
                        .map(|a| a.0)
                        .filter(|a| load.contains_key(a))
                };
                let Some(t) = target else { continue };
                if let Some(c) = load.get_mut(&t) {
                    *c += 1;
                }
                let mut q = p.clone();
                q.primary = Some(RpcAddress(t));
                if let Some(d) = q.last_drops.as_mut() {
                    d.retain(|a| a.0 != t);
                }
                q.ballot = Some(q.ballot.unwrap_or(0) + 1);
                updates.push(q);
            }
        }
        for q in updates {
            let pid = q.pid.unwrap_or_default();
            let node = q.primary.unwrap_or_default();
            match self.update_partition(q) {
                Ok(()) => info!("assigned primary of {pid} to {node}"),
                Err(e) => warn!("cannot persist assignment of {pid}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            max_replica_count: 1,
            stateful: true,
            envs: BTreeMap::new(),
        }
    }

    #[test]
    fn default_apps_assignment_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34801).0;
        let n2 = RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34802).0;
        let t0 = Instant::now();
        {
            let store = Box::new(LocalStore::open(dir.path()).unwrap());
            let mut s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
            assert_eq!(s.apps.len(), 1);
            assert!(s.app_by_name("temp").is_some());
            s.on_beacon(n1, t0);
            s.on_beacon(n2, t0);
            s.check(t0);
            let app = s.app_by_name("temp").unwrap();
            let per_node = |n: u64| {
                app.partitions
                    .iter()
                    .filter(|p| p.primary == Some(RpcAddress(n)))
                    .count()
            };
            assert_eq!((per_node(n1), per_node(n2)), (2, 2));
            assert!(app.partitions.iter().all(|p| p.ballot == Some(1)));
            // n2 stops beaconing: its partitions lose their primary and wait for it.
            s.on_beacon(n1, t0 + Duration::from_secs(11));
            s.check(t0 + Duration::from_secs(11));
            let app = s.app_by_name("temp").unwrap();
            let orphans: Vec<_> = app
                .partitions
                .iter()
                .filter(|p| p.primary == Some(RpcAddress::INVALID))
                .collect();
            assert_eq!(orphans.len(), 2);
            assert!(orphans
                .iter()
                .all(|p| p.ballot == Some(2) && p.last_drops == Some(vec![RpcAddress(n2)])));
            // n2 comes back and gets its partitions again.
            s.on_beacon(n2, t0 + Duration::from_secs(12));
            s.check(t0 + Duration::from_secs(12));
            let app = s.app_by_name("temp").unwrap();
            assert_eq!(
                app.partitions
                    .iter()
                    .filter(|p| p.primary == Some(RpcAddress(n2)))
                    .count(),
                2
            );
        }
        // Reload: same tables, same configurations, no new default table.
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let s = ServerState::load(store, opts(), &[temp_default()]).unwrap();
        assert_eq!(s.apps.len(), 1);
        let app = s.app_by_name("temp").unwrap();
        assert!(app
            .partitions
            .iter()
            .all(|p| p.ballot == Some(1) || p.ballot == Some(3)));
        assert_eq!(s.nodes.len(), 2);
    }

    #[test]
    fn drop_frees_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(LocalStore::open(dir.path()).unwrap());
        let mut s = ServerState::load(store, opts(), &[]).unwrap();
        let id = s
            .create_app("t", "pegasus", 2, 1, true, BTreeMap::new(), 2)
            .unwrap();
        s.drop_app(id, None).unwrap();
        assert!(s.app_by_name("t").is_none());
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
}

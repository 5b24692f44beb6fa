//! The meta server's load balancer (upstream's greedy load balancer with its per-table policy):
//! a pure function from the tables' partition configurations, the alive replica servers and the
//! disk tag each replica reported, to a migration list of per-partition action sequences.
//!
//! Per table, primaries are balanced first: a flow graph source → nodes → sink whose node → node
//! capacities count the primaries a node could hand to another by a role switch; the widest
//! augmenting path becomes move-primary operations, and when there is none, primaries are
//! copied to the nodes with the fewest. Only when no primary moved anywhere are replica counts
//! balanced by copying secondaries. Within a node, the replica to move is taken from its most
//! loaded disk. No I/O: the meta applies the list through its proposal queues.

use std::collections::{BTreeMap, BTreeSet};

use crate::idl::dsn::RpcAddress;
use crate::idl::dsn_layer2::{AppStatus, PartitionConfiguration};
use crate::idl::meta_admin::{BalancerRequestType, ConfigType};

use super::guardian::{primary_of, secondaries_of};
use super::server_state::AppState;

/// One step of a balance operation, sent as RPC_CONFIG_PROPOSAL to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub target: RpcAddress,
    pub node: RpcAddress,
    pub kind: ConfigType,
}

/// A balance operation for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceOp {
    pub balance_type: BalancerRequestType,
    pub actions: Vec<Action>,
}

/// Partition (app id, index) → its operation; at most one per partition and round.
pub type MigrationList = BTreeMap<(i32, i32), BalanceOp>;

/// Runtime switches (`[meta_server]` keys, changed by the `meta.lb.*` remote commands).
#[derive(Debug, Clone)]
pub struct BalancerOptions {
    /// Stop after the first table that produced operations.
    pub balancer_in_turn: bool,
    /// Never copy secondaries.
    pub only_primary_balancer: bool,
    /// Never copy primaries: only role switches.
    pub only_move_primary: bool,
    /// Tables the balancer leaves alone (`meta.lb.ignored_app_list`).
    pub ignored_apps: BTreeSet<i32>,
    /// `balance_cluster`: balance replica counts across the whole cluster instead of per
    /// table (after per-table primary moves).
    pub balance_cluster: bool,
    /// `balance_op_count_per_round`: the cluster-wide balancer's operations per round.
    pub balance_op_count_per_round: usize,
}

impl Default for BalancerOptions {
    fn default() -> Self {
        BalancerOptions {
            balancer_in_turn: false,
            only_primary_balancer: false,
            only_move_primary: false,
            ignored_apps: BTreeSet::new(),
            balance_cluster: false,
            balance_op_count_per_round: 10,
        }
    }
}

/// The action sequence upstream uses for each operation type. `from`/`to` are the replica
/// servers the primary or secondary moves between; `primary` is the partition's primary.
pub fn actions_for(
    kind: BalancerRequestType,
    primary: RpcAddress,
    from: RpcAddress,
    to: RpcAddress,
) -> Vec<Action> {
    let a = |target, node, kind| Action { target, node, kind };
    match kind {
        BalancerRequestType::MOVE_PRIMARY => vec![
            a(from, from, ConfigType::CT_DOWNGRADE_TO_SECONDARY),
            a(to, to, ConfigType::CT_UPGRADE_TO_PRIMARY),
        ],
        BalancerRequestType::COPY_PRIMARY => vec![
            a(from, to, ConfigType::CT_ADD_SECONDARY_FOR_LB),
            a(from, from, ConfigType::CT_DOWNGRADE_TO_SECONDARY),
            a(to, to, ConfigType::CT_UPGRADE_TO_PRIMARY),
            a(to, from, ConfigType::CT_REMOVE),
        ],
        _ => vec![
            a(primary, to, ConfigType::CT_ADD_SECONDARY_FOR_LB),
            a(primary, from, ConfigType::CT_REMOVE),
        ],
    }
}

/// What the balancer sees: tables, alive nodes (in a fixed order) and disk tags.
pub struct View<'a> {
    pub apps: &'a BTreeMap<i32, AppState>,
    /// Alive replica servers, in the order that numbers them (ties go to the earlier one).
    pub nodes: Vec<RpcAddress>,
    /// The disk tag a node reported for a replica in config sync; `None` if not reported yet.
    pub disk_tag: &'a dyn Fn(i32, i32, RpcAddress) -> Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Secondary,
    None,
}

fn role_of(pc: &PartitionConfiguration, node: RpcAddress) -> Role {
    if primary_of(pc) == Some(node) {
        Role::Primary
    } else if secondaries_of(pc).contains(&node) {
        Role::Secondary
    } else {
        Role::None
    }
}

/// True when every replica on every node has its disk tag reported (upstream refuses to
/// balance otherwise, and reports the operation count as -1).
pub fn all_infos_collected(view: &View) -> bool {
    let alive: BTreeSet<RpcAddress> = view.nodes.iter().copied().collect();
    for app in view.apps.values() {
        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
            continue;
        }
        for (i, pc) in app.partitions.iter().enumerate() {
            let members = primary_of(pc).into_iter().chain(secondaries_of(pc));
            for m in members {
                if alive.contains(&m) && (view.disk_tag)(app_id(app), i as i32, m).is_none() {
                    return false;
                }
            }
        }
    }
    true
}

fn app_id(app: &AppState) -> i32 {
    app.info.app_id.unwrap_or(0)
}

/// One balancing round. With `checker` nothing stops early, so the list counts every
/// operation still needed (the steady level only counts). Returns the migration list.
pub fn balance(view: &View, opts: &BalancerOptions, checker: bool) -> MigrationList {
    let mut list = MigrationList::new();
    if view.nodes.is_empty() || !all_infos_collected(view) {
        return list;
    }
    if opts.balance_cluster {
        // As upstream, the cluster-wide policy only acts (its counting run finds nothing).
        if !checker {
            cluster_balance(view, opts, &mut list);
        }
        return list;
    }
    let run = |list: &mut MigrationList, op: &dyn Fn(&AppState, &mut MigrationList) -> bool| {
        for (id, app) in view.apps {
            if opts.ignored_apps.contains(id) {
                continue;
            }
            if app.info.status != Some(AppStatus::AS_AVAILABLE)
                || app.info.is_bulk_loading == Some(true)
            {
                continue;
            }
            if !op(app, list) {
                return false;
            }
            if !checker && !list.is_empty() && opts.balancer_in_turn {
                return false;
            }
        }
        true
    };
    let primaries = |app: &AppState, list: &mut MigrationList| {
        primary_balance(view, app, opts.only_move_primary, list)
    };
    if !run(&mut list, &primaries) {
        return list;
    }
    if !checker && !list.is_empty() {
        return list;
    }
    if opts.only_primary_balancer {
        return list;
    }
    let secondaries = |app: &AppState, list: &mut MigrationList| copy_secondary(view, app, list);
    run(&mut list, &secondaries);
    list
}

/// Per-node counts of one table: (primaries, all replicas) by node index.
fn counts(view: &View, app: &AppState) -> (Vec<i64>, Vec<i64>) {
    let n = view.nodes.len();
    let mut p = vec![0i64; n];
    let mut r = vec![0i64; n];
    let idx = |a: RpcAddress| view.nodes.iter().position(|x| *x == a);
    for pc in &app.partitions {
        if let Some(i) = primary_of(pc).and_then(idx) {
            p[i] += 1;
            r[i] += 1;
        }
        for s in secondaries_of(pc) {
            if let Some(i) = idx(s) {
                r[i] += 1;
            }
        }
    }
    (p, r)
}

/// Replicas (or only primaries) of `app` per disk tag of `node`; `None` if a tag is unknown.
fn disk_load(
    view: &View,
    app: &AppState,
    node: RpcAddress,
    only_primary: bool,
) -> Option<BTreeMap<String, i64>> {
    let mut load = BTreeMap::new();
    for (i, pc) in app.partitions.iter().enumerate() {
        let role = role_of(pc, node);
        if role == Role::Primary || (!only_primary && role == Role::Secondary) {
            let tag = (view.disk_tag)(app_id(app), i as i32, node)?;
            *load.entry(tag).or_insert(0) += 1;
        }
    }
    Some(load)
}

fn tag_of(view: &View, app: &AppState, pidx: usize, node: RpcAddress) -> String {
    (view.disk_tag)(app_id(app), pidx as i32, node).unwrap_or_default()
}

/// Upstream's primary balance of one table. Returns false when information is missing.
fn primary_balance(
    view: &View,
    app: &AppState,
    only_move_primary: bool,
    list: &mut MigrationList,
) -> bool {
    let n = view.nodes.len();
    let (primaries, _) = counts(view, app);
    let total = app.partitions.len() as i64;
    let low = total / n as i64;
    let high = (total + n as i64 - 1) / n as i64;
    let higher = primaries.iter().filter(|p| **p > high).count();
    let lower = primaries.iter().filter(|p| **p < low).count();
    if higher == 0 && lower == 0 {
        return true;
    }
    // Vertex 0 is the source, 1..=n the nodes, n+1 the sink.
    let sink = n + 1;
    let mut cap = vec![vec![0i64; n + 2]; n + 2];
    for (i, p) in primaries.iter().enumerate() {
        if *p > low {
            cap[0][i + 1] = p - low;
        } else {
            cap[i + 1][sink] = low - p;
        }
    }
    let idx = |a: RpcAddress| view.nodes.iter().position(|x| *x == a);
    for pc in &app.partitions {
        let Some(pi) = primary_of(pc).and_then(idx) else {
            continue;
        };
        for s in secondaries_of(pc) {
            if let Some(si) = idx(s) {
                cap[pi + 1][si + 1] += 1;
            }
        }
    }
    if higher > 0 && lower == 0 {
        // Nobody is below the floor but someone is above the ceiling: every node above the
        // floor gives one unit less, every other node may take one more (upstream walks the
        // source and sink too, where the two changes cancel).
        #[allow(clippy::needless_range_loop)]
        for i in 1..=n {
            if cap[0][i] > 0 {
                cap[0][i] -= 1;
            } else {
                cap[i][sink] += 1;
            }
        }
    }
    match widest_path(&cap, sink) {
        Some((flow, prev)) => move_primary(view, app, &flow, &prev, sink, list),
        None if !only_move_primary => copy_replicas(view, app, true, lower != 0, list),
        None => true,
    }
}

/// The widest (maximum-bottleneck) path from vertex 0 to `sink` over `cap`, as upstream
/// searches it: (best flow per vertex, predecessor per vertex).
fn widest_path(cap: &[Vec<i64>], sink: usize) -> Option<(Vec<i64>, Vec<usize>)> {
    let v = cap.len();
    let mut visit = vec![false; v];
    let mut flow = vec![0i64; v];
    let mut prev = vec![usize::MAX; v];
    flow[0] = i64::from(i32::MAX);
    while !visit[sink] {
        let mut pos = None;
        let mut best = 0;
        for i in 0..v {
            if !visit[i] && flow[i] > best {
                best = flow[i];
                pos = Some(i);
            }
        }
        let Some(pos) = pos else { break };
        visit[pos] = true;
        for i in 0..v {
            if !visit[i] {
                let c = flow[pos].min(cap[pos][i]);
                if c > flow[i] {
                    flow[i] = c;
                    prev[i] = pos;
                }
            }
        }
    }
    (visit[sink] && flow[sink] != 0).then_some((flow, prev))
}

/// Turns the augmenting path into move-primary operations, edge by edge from the sink back.
fn move_primary(
    view: &View,
    app: &AppState,
    flow: &[i64],
    prev: &[usize],
    sink: usize,
    list: &mut MigrationList,
) -> bool {
    let plan = flow[sink];
    let mut cur = prev[sink];
    let node = |v: usize| view.nodes[v - 1];
    if cur == 0 || cur == usize::MAX {
        return true;
    }
    let Some(mut cur_load) = disk_load(view, app, node(cur), true) else {
        return false;
    };
    while prev[cur] != 0 && prev[cur] != usize::MAX {
        let (from, to) = (node(prev[cur]), node(cur));
        let Some(mut prev_load) = disk_load(view, app, from, true) else {
            return false;
        };
        let mut candidates: Vec<usize> = app
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, pc)| primary_of(pc) == Some(from) && secondaries_of(pc).contains(&to))
            .map(|(i, _)| i)
            .collect();
        for _ in 0..plan {
            let mut best: Option<(usize, i64)> = None;
            for (k, &i) in candidates.iter().enumerate() {
                let score = prev_load
                    .get(&tag_of(view, app, i, from))
                    .copied()
                    .unwrap_or(0)
                    - cur_load
                        .get(&tag_of(view, app, i, to))
                        .copied()
                        .unwrap_or(0);
                if best.map(|(_, s)| score > s).unwrap_or(true) {
                    best = Some((k, score));
                }
            }
            let Some((k, _)) = best else { break };
            let i = candidates.remove(k);
            let key = (app_id(app), i as i32);
            list.entry(key).or_insert_with(|| BalanceOp {
                balance_type: BalancerRequestType::MOVE_PRIMARY,
                actions: actions_for(BalancerRequestType::MOVE_PRIMARY, from, from, to),
            });
            *prev_load.entry(tag_of(view, app, i, from)).or_insert(0) -= 1;
            *cur_load.entry(tag_of(view, app, i, to)).or_insert(0) += 1;
        }
        cur = prev[cur];
        cur_load = prev_load;
    }
    true
}

/// Upstream's copy operation: repeatedly copy from the node with the most primaries
/// (`primaries`) or replicas of the table to the one with the fewest.
fn copy_replicas(
    view: &View,
    app: &AppState,
    primaries: bool,
    have_lower: bool,
    list: &mut MigrationList,
) -> bool {
    let n = view.nodes.len();
    let (p, r) = counts(view, app);
    let mut count = if primaries { p } else { r };
    let low = app.partitions.len() as i64 / n as i64;
    let mut loads = Vec::with_capacity(n);
    for node in &view.nodes {
        match disk_load(view, app, *node, primaries) {
            Some(l) => loads.push(l),
            None => return false,
        }
    }
    let mut order: BTreeSet<(i64, usize)> = (0..n).map(|i| (count[i], i)).collect();
    let kind = if primaries {
        BalancerRequestType::COPY_PRIMARY
    } else {
        BalancerRequestType::COPY_SECONDARY
    };
    while let (Some(&(cmin, min)), Some(&(cmax, max))) = (order.first(), order.last()) {
        if min == max {
            break;
        }
        let go_on = if primaries && have_lower {
            cmin < low
        } else if primaries {
            cmax - cmin > 1
        } else {
            cmax > low && cmax - cmin > 1
        };
        if !go_on {
            break;
        }
        let (from, to) = (view.nodes[max], view.nodes[min]);
        let mut best: Option<(usize, i64)> = None;
        for (i, pc) in app.partitions.iter().enumerate() {
            let role = role_of(pc, from);
            let eligible = if primaries {
                role == Role::Primary
            } else {
                role == Role::Secondary
            };
            // The receiving node must not hold the partition already (upstream leaves that to
            // the proposal check, which would then drop the whole operation).
            if !eligible
                || list.contains_key(&(app_id(app), i as i32))
                || role_of(pc, to) != Role::None
            {
                continue;
            }
            let l = loads[max]
                .get(&tag_of(view, app, i, from))
                .copied()
                .unwrap_or(0);
            if best.map(|(_, b)| l > b).unwrap_or(true) {
                best = Some((i, l));
            }
        }
        match best {
            Some((i, _)) => {
                let pc = &app.partitions[i];
                let primary = primary_of(pc).unwrap_or(RpcAddress::INVALID);
                list.insert(
                    (app_id(app), i as i32),
                    BalanceOp {
                        balance_type: kind,
                        actions: actions_for(kind, primary, from, to),
                    },
                );
                order.remove(&(cmax, max));
                order.remove(&(cmin, min));
                count[max] -= 1;
                count[min] += 1;
                order.insert((count[max], max));
                order.insert((count[min], min));
            }
            None => {
                order.remove(&(cmax, max));
            }
        }
    }
    true
}

/// Replica-count balance of one table by copying secondaries.
fn copy_secondary(view: &View, app: &AppState, list: &mut MigrationList) -> bool {
    copy_replicas(view, app, false, false, list)
}

/// An action list for the log: `ADD_SECONDARY_FOR_LB(node@target), ...`.
pub fn describe_actions(actions: &[Action]) -> String {
    let names = [
        "INVALID",
        "ASSIGN_PRIMARY",
        "UPGRADE_TO_PRIMARY",
        "ADD_SECONDARY",
        "UPGRADE_TO_SECONDARY",
        "DOWNGRADE_TO_SECONDARY",
        "DOWNGRADE_TO_INACTIVE",
        "REMOVE",
        "ADD_SECONDARY_FOR_LB",
    ];
    actions
        .iter()
        .map(|a| {
            let k = usize::try_from(a.kind.0)
                .ok()
                .and_then(|i| names.get(i))
                .copied()
                .unwrap_or("OTHER");
            format!("{k}({}@{})", a.node, a.target)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An operation for the log: its type and actions.
pub fn describe(op: &BalanceOp) -> String {
    let t = match op.balance_type {
        BalancerRequestType::MOVE_PRIMARY => "move_primary",
        BalancerRequestType::COPY_PRIMARY => "copy_primary",
        _ => "copy_secondary",
    };
    format!("{t}: {}", describe_actions(&op.actions))
}

// ---------------------------------------------------------------------------------------------
// The cluster-wide policy (`balance_cluster = true`)

fn usable_apps<'a>(view: &'a View, opts: &BalancerOptions) -> Vec<(i32, &'a AppState)> {
    view.apps
        .iter()
        .filter(|(id, a)| {
            !opts.ignored_apps.contains(id)
                && a.info.status == Some(AppStatus::AS_AVAILABLE)
                && a.info.is_bulk_loading != Some(true)
        })
        .map(|(id, a)| (*id, a))
        .collect()
}

/// Upstream's cluster policy: per-table primary role switches (stopping after the first
/// table with any), then cluster-wide secondary copies, then primary copies, each driven by
/// the most skewed table on the most and least loaded nodes, at most
/// `balance_op_count_per_round` operations.
fn cluster_balance(view: &View, opts: &BalancerOptions, list: &mut MigrationList) {
    for (_, app) in usable_apps(view, opts) {
        if !primary_balance(view, app, true, list) {
            return;
        }
        if !list.is_empty() {
            return;
        }
    }
    for kind in [
        BalancerRequestType::COPY_SECONDARY,
        BalancerRequestType::COPY_PRIMARY,
    ] {
        if !cluster_replica_balance(view, opts, kind, list) || !list.is_empty() {
            return;
        }
    }
}

/// One table in the cluster-wide view: the role of each node index per partition, the
/// count of the balanced kind per node index, and the skew of those counts.
struct AppCounts {
    roles: Vec<Vec<Role>>,
    counts: Vec<i64>,
    skew: i64,
}

/// A partition of a table, (app id, index).
type Pid = (i32, i32);

/// Counts of one kind of replica per node index: the table's and the cluster's.
struct Migration {
    kind: BalancerRequestType,
    /// Per table: (role per partition and node index, count per node index, skew).
    apps: BTreeMap<i32, AppCounts>,
    /// Per node index: disk tag → partitions of the candidate tables on it.
    disks: Vec<BTreeMap<String, BTreeSet<(i32, i32)>>>,
    /// Per node index: replicas of this kind in all tables.
    cluster: Vec<i64>,
}

fn skew(counts: &[i64]) -> i64 {
    match (counts.iter().max(), counts.iter().min()) {
        (Some(max), Some(min)) => max - min,
        _ => 0,
    }
}

fn counted(kind: BalancerRequestType, role: Role) -> bool {
    match kind {
        BalancerRequestType::COPY_PRIMARY => role == Role::Primary,
        _ => role == Role::Secondary,
    }
}

fn migration_info(
    view: &View,
    opts: &BalancerOptions,
    kind: BalancerRequestType,
) -> Option<Migration> {
    let n = view.nodes.len();
    if n < 3 {
        return None;
    }
    let mut m = Migration {
        kind,
        apps: BTreeMap::new(),
        disks: vec![BTreeMap::new(); n],
        cluster: vec![0; n],
    };
    for (id, app) in usable_apps(view, opts) {
        let mut roles = Vec::with_capacity(app.partitions.len());
        let mut counts = vec![0i64; n];
        for (pidx, pc) in app.partitions.iter().enumerate() {
            // Only healthy tables are balanced cluster-wide.
            if primary_of(pc).is_none()
                || secondaries_of(pc).len() as i32 != pc.max_replica_count.unwrap_or(0) - 1
            {
                return None;
            }
            let r: Vec<Role> = view.nodes.iter().map(|node| role_of(pc, *node)).collect();
            for (i, role) in r.iter().enumerate() {
                if counted(kind, *role) {
                    counts[i] += 1;
                }
                if *role != Role::None {
                    let tag = (view.disk_tag)(id, pidx as i32, view.nodes[i])?;
                    m.disks[i].entry(tag).or_default().insert((id, pidx as i32));
                }
            }
            roles.push(r);
        }
        let skew = skew(&counts);
        m.apps.insert(
            id,
            AppCounts {
                roles,
                counts,
                skew,
            },
        );
    }
    // The cluster counts take every table, balanced or not.
    for app in view.apps.values() {
        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
            continue;
        }
        for pc in &app.partitions {
            for (i, node) in view.nodes.iter().enumerate() {
                if counted(kind, role_of(pc, *node)) {
                    m.cluster[i] += 1;
                }
            }
        }
    }
    Some(m)
}

/// (partition, from node index, to node index) of the next cluster-wide copy.
fn next_move(m: &Migration, selected: &BTreeSet<(i32, i32)>) -> Option<((i32, i32), usize, usize)> {
    let max_app_skew = m.apps.values().map(|a| a.skew).max()?;
    if max_app_skew == 0 {
        return None;
    }
    if max_app_skew <= 1 && skew(&m.cluster) <= 1 {
        return None;
    }
    let extreme = |v: &[i64], max: bool| -> BTreeSet<usize> {
        let target = if max { v.iter().max() } else { v.iter().min() };
        let Some(t) = target.copied() else {
            return BTreeSet::new();
        };
        (0..v.len()).filter(|i| v[*i] == t).collect()
    };
    let (cmin, cmax) = (extreme(&m.cluster, false), extreme(&m.cluster, true));
    for (id, a) in &m.apps {
        let (roles, counts) = (&a.roles, &a.counts);
        if a.skew != max_app_skew {
            continue;
        }
        let (amin, amax) = (extreme(counts, false), extreme(counts, true));
        let imin: BTreeSet<usize> = amin.intersection(&cmin).copied().collect();
        let imax: BTreeSet<usize> = amax.intersection(&cmax).copied().collect();
        if skew(counts) <= 1 && (imin.is_empty() || imax.is_empty()) {
            continue;
        }
        let max_nodes = if imax.is_empty() { &amax } else { &imax };
        let min_nodes = if imin.is_empty() { &amin } else { &imin };
        // The most loaded disk (by this table's replicas of the kind) of the max nodes.
        let mut best: Option<(usize, usize, Vec<Pid>)> = None;
        for &node in max_nodes {
            for pids in m.disks[node].values() {
                let movable: Vec<(i32, i32)> = pids
                    .iter()
                    .filter(|(a, p)| {
                        *a == *id
                            && roles
                                .get(*p as usize)
                                .is_some_and(|r| counted(m.kind, r[node]))
                    })
                    .copied()
                    .collect();
                if !movable.is_empty() && best.as_ref().is_none_or(|b| movable.len() > b.1) {
                    best = Some((node, movable.len(), movable));
                }
            }
        }
        let Some((from, _, pids)) = best else {
            continue;
        };
        for &to in min_nodes {
            let pick = pids.iter().find(|(a, p)| {
                !selected.contains(&(*a, *p))
                    && roles.get(*p as usize).is_some_and(|r| r[to] == Role::None)
            });
            if let Some(pid) = pick {
                return Some((*pid, from, to));
            }
        }
    }
    None
}

fn cluster_replica_balance(
    view: &View,
    opts: &BalancerOptions,
    kind: BalancerRequestType,
    list: &mut MigrationList,
) -> bool {
    let Some(mut m) = migration_info(view, opts, kind) else {
        return false;
    };
    let mut selected = BTreeSet::new();
    while let Some(((app, pidx), from, to)) = next_move(&m, &selected) {
        let Some(pc) = view
            .apps
            .get(&app)
            .and_then(|a| a.partitions.get(pidx as usize))
        else {
            break;
        };
        let primary = primary_of(pc).unwrap_or(RpcAddress::INVALID);
        list.insert(
            (app, pidx),
            BalanceOp {
                balance_type: kind,
                actions: actions_for(kind, primary, view.nodes[from], view.nodes[to]),
            },
        );
        selected.insert((app, pidx));
        if let Some(a) = m.apps.get_mut(&app) {
            if let Some(r) = a.roles.get_mut(pidx as usize) {
                r[to] = r[from];
                r[from] = Role::None;
            }
            a.counts[from] -= 1;
            a.counts[to] += 1;
            a.skew = skew(&a.counts);
        }
        for set in m.disks[from].values_mut() {
            set.remove(&(app, pidx));
        }
        m.cluster[from] -= 1;
        m.cluster[to] += 1;
        if list.len() >= opts.balance_op_count_per_round.max(1) {
            break;
        }
    }
    true
}

/// Operation counts of a migration list: (move_pri, copy_pri, copy_sec).
pub fn count_ops(list: &MigrationList) -> (i64, i64, i64) {
    let mut c = (0, 0, 0);
    for op in list.values() {
        match op.balance_type {
            BalancerRequestType::MOVE_PRIMARY => c.0 += 1,
            BalancerRequestType::COPY_PRIMARY => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    c
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;

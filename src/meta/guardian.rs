//! PacificA membership decisions of the meta server (upstream's partition guardian and the
//! configuration-update rules), as pure functions over partition configurations, a view of
//! the replica servers and each partition's drop history. No I/O, no clocks: callers pass
//! `now_ms` and apply the returned decisions themselves.

use std::collections::{BTreeMap, BTreeSet};

use crate::idl::dsn::{HostPort, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, PartitionConfiguration};
use crate::idl::meta_admin::{ConfigType, ConfigurationUpdateRequest};

/// Ballot of a dropped replica whose state was never reported.
pub const INVALID_BALLOT: i64 = -1;
/// Decree of a dropped replica whose state was never reported.
pub const INVALID_DECREE: i64 = -1;
/// Drop time of a dropped replica only known from a replica server's report.
pub const UNKNOWN_DROP_TIME: i64 = 0;
/// The persisted `last_drops` keeps at most this many nodes (oldest first).
pub const MAX_LAST_DROPS: usize = 3;

/// Guardian settings (`[meta_server]` / `[replication]`).
#[derive(Debug, Clone)]
pub struct GuardianOptions {
    /// `replica_assign_delay_ms_for_dropouts`: how long a dropped secondary may take to come
    /// back before a new node is chosen.
    pub replica_assign_delay_ms_for_dropouts: i64,
    /// `mutation_2pc_min_replica_count`; a value ≤ 0 derives it from max_replica_count.
    pub mutation_2pc_min_replica_count: i32,
    /// `max_reserved_dropped_replicas`: dropped replicas kept beyond max_replica_count.
    pub max_reserved_dropped_replicas: u32,
    /// `meta.lb.assign_secondary_black_list`: nodes never chosen as new secondaries.
    pub assign_secondary_black_list: BTreeSet<u64>,
}

impl Default for GuardianOptions {
    fn default() -> Self {
        GuardianOptions {
            replica_assign_delay_ms_for_dropouts: 600_000,
            mutation_2pc_min_replica_count: 2,
            max_reserved_dropped_replicas: 1,
            assign_secondary_black_list: BTreeSet::new(),
        }
    }
}

impl GuardianOptions {
    /// The effective minimum replica count for 2PC of a table with `max_replica_count`.
    pub fn min_2pc(&self, max_replica_count: i32) -> i32 {
        if self.mutation_2pc_min_replica_count > 0 {
            self.mutation_2pc_min_replica_count
        } else if max_replica_count <= 2 {
            1
        } else {
            max_replica_count / 2 + 1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration accessors (generated fields are optional; the invalid address means "none").

fn valid(a: Option<RpcAddress>) -> Option<RpcAddress> {
    a.filter(|a| !a.is_invalid())
}

/// The primary of `pc`, if any.
pub fn primary_of(pc: &PartitionConfiguration) -> Option<RpcAddress> {
    valid(pc.primary)
}

/// The valid secondaries of `pc`.
pub fn secondaries_of(pc: &PartitionConfiguration) -> Vec<RpcAddress> {
    pc.secondaries
        .iter()
        .flatten()
        .copied()
        .filter(|a| !a.is_invalid())
        .collect()
}

/// The valid `last_drops` of `pc`, oldest first.
pub fn last_drops_of(pc: &PartitionConfiguration) -> Vec<RpcAddress> {
    pc.last_drops
        .iter()
        .flatten()
        .copied()
        .filter(|a| !a.is_invalid())
        .collect()
}

pub fn is_primary(pc: &PartitionConfiguration, node: RpcAddress) -> bool {
    !node.is_invalid() && primary_of(pc) == Some(node)
}

pub fn is_secondary(pc: &PartitionConfiguration, node: RpcAddress) -> bool {
    !node.is_invalid() && pc.secondaries.iter().flatten().any(|s| *s == node)
}

pub fn is_member(pc: &PartitionConfiguration, node: RpcAddress) -> bool {
    is_primary(pc, node) || is_secondary(pc, node)
}

/// Primary (if any) plus secondaries.
pub fn replica_count(pc: &PartitionConfiguration) -> usize {
    usize::from(primary_of(pc).is_some()) + secondaries_of(pc).len()
}

fn app_id_of(pc: &PartitionConfiguration) -> i32 {
    pc.pid.map(|p| p.app_id).unwrap_or(0)
}

/// Adding types (the node joins) → `Some(true)`; removing types → `Some(false)`; others `None`.
pub fn adds_or_removes(kind: ConfigType) -> Option<bool> {
    match kind {
        ConfigType::CT_ASSIGN_PRIMARY
        | ConfigType::CT_UPGRADE_TO_PRIMARY
        | ConfigType::CT_UPGRADE_TO_SECONDARY => Some(true),
        ConfigType::CT_DOWNGRADE_TO_INACTIVE
        | ConfigType::CT_REMOVE
        | ConfigType::CT_DROP_PARTITION => Some(false),
        _ => None,
    }
}

/// Maintains a `last_drops` list for a change of `kind` concerning `node`: adding types
/// remove the node, removing types append it (once) and keep the 3 most recent.
pub fn maintain_drops<T: PartialEq + Clone>(drops: &mut Vec<T>, node: &T, kind: ConfigType) {
    match adds_or_removes(kind) {
        Some(true) => drops.retain(|d| d != node),
        Some(false) => {
            // Upstream asserts the node is absent; we tolerate it by moving it to the end.
            drops.retain(|d| d != node);
            drops.push(node.clone());
            let excess = drops.len().saturating_sub(MAX_LAST_DROPS);
            drops.drain(..excess);
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Node view

/// Replica counts of one node, overall and per app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub primaries: u32,
    pub replicas: u32,
    pub app_primaries: BTreeMap<i32, u32>,
    pub app_replicas: BTreeMap<i32, u32>,
}

impl NodeLoad {
    pub fn app_primaries(&self, app_id: i32) -> u32 {
        self.app_primaries.get(&app_id).copied().unwrap_or(0)
    }
    pub fn app_replicas(&self, app_id: i32) -> u32 {
        self.app_replicas.get(&app_id).copied().unwrap_or(0)
    }
    fn add_primary(&mut self, app_id: i32) {
        self.primaries = self.primaries.saturating_add(1);
        let e = self.app_primaries.entry(app_id).or_insert(0);
        *e = e.saturating_add(1);
    }
    fn add_replica(&mut self, app_id: i32) {
        self.replicas = self.replicas.saturating_add(1);
        let e = self.app_replicas.entry(app_id).or_insert(0);
        *e = e.saturating_add(1);
    }
    /// Upstream's "fewer primaries" order: app primaries, app replicas, primaries, replicas.
    fn primary_key(&self, app_id: i32) -> (u32, u32, u32, u32) {
        (
            self.app_primaries(app_id),
            self.app_replicas(app_id),
            self.primaries,
            self.replicas,
        )
    }
    /// Upstream's "fewer partitions" order: app replicas, then replicas.
    fn replica_key(&self, app_id: i32) -> (u32, u32) {
        (self.app_replicas(app_id), self.replicas)
    }
}

/// The replica servers as the guardian sees them. Nodes are keyed by rpc address bits.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    /// Nodes the failure detector considers alive.
    pub alive: BTreeSet<u64>,
    /// Alive nodes whose stored replicas were reported by config sync ("has collected").
    pub collected: BTreeSet<u64>,
    /// When each node's stored replicas were last reported (ms, the checker's clock); a
    /// node's report only says it holds no replica of a partition if it came after the drop.
    pub collected_at: BTreeMap<u64, i64>,
    /// Replica counts (a primary counts as a replica too), including the primaries and
    /// replicas promised by proposals issued through [`cure`] on this view.
    pub load: BTreeMap<u64, NodeLoad>,
}

static EMPTY_LOAD: NodeLoad = NodeLoad {
    primaries: 0,
    replicas: 0,
    app_primaries: BTreeMap::new(),
    app_replicas: BTreeMap::new(),
};

impl NodeView {
    /// Builds the view; loads are counted from every partition of every table.
    pub fn from_partitions<'a, I>(alive: BTreeSet<u64>, collected: BTreeSet<u64>, pcs: I) -> Self
    where
        I: IntoIterator<Item = &'a PartitionConfiguration>,
    {
        let mut v = NodeView {
            alive,
            collected,
            collected_at: BTreeMap::new(),
            load: BTreeMap::new(),
        };
        for pc in pcs {
            let app = app_id_of(pc);
            if let Some(p) = primary_of(pc) {
                let l = v.load.entry(p.0).or_default();
                l.add_primary(app);
                l.add_replica(app);
            }
            for s in secondaries_of(pc) {
                v.load.entry(s.0).or_default().add_replica(app);
            }
        }
        v
    }

    pub fn is_alive(&self, node: RpcAddress) -> bool {
        !node.is_invalid() && self.alive.contains(&node.0)
    }

    pub fn has_collected(&self, node: RpcAddress) -> bool {
        self.collected.contains(&node.0)
    }

    /// Whether the node reported its replicas after `time_ms` (without report times, whether
    /// it reported at all).
    pub fn collected_after(&self, node: RpcAddress, time_ms: i64) -> bool {
        match self.collected_at.get(&node.0) {
            Some(at) => self.has_collected(node) && *at > time_ms,
            None => self.has_collected(node),
        }
    }

    pub fn load_of(&self, node: RpcAddress) -> &NodeLoad {
        self.load.get(&node.0).unwrap_or(&EMPTY_LOAD)
    }

    /// Counts what a proposal promises (upstream's "newly partitions"), so that later
    /// decisions of the same round spread the load.
    pub fn account(&mut self, app_id: i32, proposal: &Proposal) {
        let Proposal::Send { node, kind, .. } = proposal else {
            return;
        };
        let l = self.load.entry(node.0).or_default();
        match *kind {
            ConfigType::CT_ASSIGN_PRIMARY => {
                l.add_primary(app_id);
                l.add_replica(app_id);
            }
            ConfigType::CT_UPGRADE_TO_PRIMARY => l.add_primary(app_id),
            ConfigType::CT_ADD_SECONDARY | ConfigType::CT_ADD_SECONDARY_FOR_LB => {
                l.add_replica(app_id)
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drop history

/// A replica that left a partition: recorded when a configuration update removed it (drop
/// time known) or reported by its server through config sync (ballot and decrees known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedReplica {
    pub node: RpcAddress,
    pub time_ms: i64,
    pub ballot: i64,
    pub last_committed_decree: i64,
    pub last_prepared_decree: i64,
}

impl DroppedReplica {
    fn key(&self) -> (i64, i64, i64, i64) {
        (
            self.time_ms,
            self.ballot,
            self.last_committed_decree,
            self.last_prepared_decree,
        )
    }
}

/// Per-partition, in-memory drop history, ordered by (drop time, ballot, committed decree,
/// prepared decree): the last entry is the most recent / most up to date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropHistory {
    entries: Vec<DroppedReplica>,
    /// Cursor for emergency secondary selection: walks back through older drops when the
    /// newer ones are dead.
    preferred: isize,
}

/// What [`DropHistory::collect`] did with a reported replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// The node was already in the history; its entry was updated.
    Updated,
    /// The node was added.
    Added,
    /// The entry was trimmed right away (too stale to keep).
    Discarded,
}

impl DropHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A history holding `entries` as given (they should be in order).
    pub fn from_entries(entries: Vec<DroppedReplica>) -> Self {
        let preferred = entries.len() as isize - 1;
        DropHistory { entries, preferred }
    }

    /// The history rebuilt when a partition is loaded: each `last_drops` node, dropped `now`.
    pub fn from_last_drops(
        pc: &PartitionConfiguration,
        now_ms: i64,
        opts: &GuardianOptions,
    ) -> Self {
        let mut h = DropHistory::new();
        for n in last_drops_of(pc) {
            h.record_drop(pc, n, now_ms, opts);
        }
        h
    }

    pub fn entries(&self) -> &[DroppedReplica] {
        &self.entries
    }

    pub fn find(&self, node: RpcAddress) -> Option<&DroppedReplica> {
        self.entries.iter().find(|e| e.node == node)
    }

    fn reset_cursor(&mut self) {
        self.preferred = self.entries.len() as isize - 1;
    }

    /// Removes the oldest entries while replicas + history exceed
    /// `max_replica_count + max_reserved_dropped_replicas`.
    pub fn trim(&mut self, pc: &PartitionConfiguration, opts: &GuardianOptions) {
        let max = i64::from(pc.max_replica_count.unwrap_or(0).max(0))
            + i64::from(opts.max_reserved_dropped_replicas);
        let rc = replica_count(pc) as i64;
        while !self.entries.is_empty() && rc + self.entries.len() as i64 > max {
            self.entries.remove(0);
            self.reset_cursor();
        }
    }

    /// Records that `node` was dropped at `now_ms` (no-op returning false when present).
    pub fn record_drop(
        &mut self,
        pc: &PartitionConfiguration,
        node: RpcAddress,
        now_ms: i64,
        opts: &GuardianOptions,
    ) -> bool {
        if node.is_invalid() || self.find(node).is_some() {
            return false;
        }
        self.entries.push(DroppedReplica {
            node,
            time_ms: now_ms,
            ballot: INVALID_BALLOT,
            last_committed_decree: INVALID_DECREE,
            last_prepared_decree: INVALID_DECREE,
        });
        self.reset_cursor();
        self.trim(pc, opts);
        true
    }

    pub fn remove(&mut self, node: RpcAddress) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.node != node);
        let removed = self.entries.len() != before;
        if removed {
            self.reset_cursor();
        }
        removed
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.reset_cursor();
    }

    /// Merges a non-member replica reported by `node` through config sync: keeps its drop
    /// time if known, takes the reported ballot/decrees and re-sorts it into place.
    pub fn collect(
        &mut self,
        pc: &PartitionConfiguration,
        node: RpcAddress,
        ballot: i64,
        last_committed_decree: i64,
        last_prepared_decree: i64,
        opts: &GuardianOptions,
    ) -> Collected {
        let mut time_ms = UNKNOWN_DROP_TIME;
        let existed = match self.entries.iter().position(|e| e.node == node) {
            Some(i) => {
                time_ms = self.entries.remove(i).time_ms;
                true
            }
            None => false,
        };
        let cur = DroppedReplica {
            node,
            time_ms,
            ballot,
            last_committed_decree,
            last_prepared_decree,
        };
        let at = self.entries.partition_point(|e| e.key() < cur.key());
        self.entries.insert(at, cur);
        self.reset_cursor();
        self.trim(pc, opts);
        match (self.find(node).is_some(), existed) {
            (false, _) => Collected::Discarded,
            (true, true) => Collected::Updated,
            (true, false) => Collected::Added,
        }
    }

    /// Follows an applied configuration change (`new_pc` is the configuration after it).
    pub fn on_config_update(
        &mut self,
        kind: ConfigType,
        node: RpcAddress,
        new_pc: &PartitionConfiguration,
        now_ms: i64,
        opts: &GuardianOptions,
    ) {
        if kind == ConfigType::CT_DROP_PARTITION {
            self.clear();
            for n in last_drops_of(new_pc) {
                self.record_drop(new_pc, n, now_ms, opts);
            }
            return;
        }
        match adds_or_removes(kind) {
            Some(true) => {
                self.remove(node);
                self.trim(new_pc, opts);
            }
            Some(false) => {
                self.record_drop(new_pc, node, now_ms, opts);
            }
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// A membership change decided by the meta.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// Send RPC_CONFIG_PROPOSAL of `kind` about `node` to `target`.
    Send {
        target: RpcAddress,
        node: RpcAddress,
        kind: ConfigType,
    },
    /// The meta itself writes `config`; `kind`/`node` describe the change (for the drop
    /// history and node tables, as if it were a configuration update request).
    Rewrite {
        config: PartitionConfiguration,
        kind: ConfigType,
        node: RpcAddress,
    },
}

/// The outcome of one guardian pass over a partition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cure {
    /// Nothing to do.
    Healthy,
    /// Send this proposal.
    Propose(Proposal),
    /// Something is missing but the guardian waits (e.g. for a dropped secondary).
    Wait(String),
    /// No usable replica: the partition waits for its replicas or an operator (DDD).
    Dead(String),
}

impl Cure {
    pub fn into_proposal(self) -> Option<Proposal> {
        match self {
            Cure::Propose(p) => Some(p),
            _ => None,
        }
    }
}

fn send(target: RpcAddress, node: RpcAddress, kind: ConfigType) -> Proposal {
    Proposal::Send { target, node, kind }
}

/// One guardian decision for `pc`. A proposal's promised primaries/replicas are added to
/// `nodes` and the emergency cursor of `history` may move, as upstream.
pub fn cure(
    pc: &PartitionConfiguration,
    nodes: &mut NodeView,
    history: &mut DropHistory,
    now_ms: i64,
    opts: &GuardianOptions,
) -> Cure {
    if pc.ballot.unwrap_or(0) < 0 {
        return Cure::Wait("partition is being split".into());
    }
    let max = pc.max_replica_count.unwrap_or(0);
    let secondaries = secondaries_of(pc).len() as i64;
    let decision = if primary_of(pc).is_none() {
        on_missing_primary(pc, nodes, history)
    } else if secondaries + 1 < i64::from(max) {
        on_missing_secondary(pc, nodes, history, now_ms, opts)
    } else if secondaries >= i64::from(max) {
        on_redundant_secondary(pc, nodes)
    } else {
        Cure::Healthy
    };
    if let Cure::Propose(p) = &decision {
        nodes.account(app_id_of(pc), p);
    }
    decision
}

fn on_missing_primary(
    pc: &PartitionConfiguration,
    nodes: &NodeView,
    history: &DropHistory,
) -> Cure {
    let app = app_id_of(pc);
    let secondaries = secondaries_of(pc);
    if !secondaries.is_empty() {
        let best = secondaries
            .iter()
            .copied()
            .filter(|s| nodes.is_alive(*s))
            .min_by_key(|s| nodes.load_of(*s).primary_key(app));
        return match best {
            Some(n) => Cure::Propose(send(n, n, ConfigType::CT_UPGRADE_TO_PRIMARY)),
            None => Cure::Dead("all secondaries are dead".into()),
        };
    }
    let drops = last_drops_of(pc);
    if drops.is_empty() {
        // Brand-new partition: the alive node with the fewest primaries.
        let best = nodes
            .alive
            .iter()
            .map(|a| RpcAddress(*a))
            .filter(|a| !a.is_invalid())
            .min_by_key(|a| nodes.load_of(*a).primary_key(app));
        return match best {
            Some(n) => Cure::Propose(send(n, n, ConfigType::CT_ASSIGN_PRIMARY)),
            None => Cure::Wait("no alive node".into()),
        };
    }
    match choose_ddd_primary(pc, &drops, nodes, history) {
        Ok(n) => Cure::Propose(send(n, n, ConfigType::CT_ASSIGN_PRIMARY)),
        Err(reason) => Cure::Dead(reason),
    }
}

/// All replicas are gone: pick the only last drop, or decide between the two most recent
/// drops from their reported state; `Err(reason)` when it is not safe to choose.
fn choose_ddd_primary(
    pc: &PartitionConfiguration,
    drops: &[RpcAddress],
    nodes: &NodeView,
    history: &DropHistory,
) -> Result<RpcAddress, String> {
    if let [only] = drops {
        return if nodes.is_alive(*only) {
            Ok(*only)
        } else {
            Err(format!("the only dropped node {only} has not come back"))
        };
    }
    let (prev_node, recent_node) = match drops {
        [.., a, b] => (*a, *b),
        _ => return Err("no last drops".into()),
    };
    let mut info = Vec::with_capacity(2);
    for n in [prev_node, recent_node] {
        if !nodes.is_alive(n) {
            return Err(format!("the last dropped node {n} has not come back yet"));
        }
        match history.find(n) {
            Some(d) if d.ballot != INVALID_BALLOT => info.push(*d),
            found => {
                // "No replica there" needs a report made after the node was dropped: an
                // earlier one (e.g. while it was still a member) says nothing about what it
                // held when it left.
                let fresh = match found {
                    Some(d) if d.time_ms != UNKNOWN_DROP_TIME => {
                        nodes.collected_after(n, d.time_ms)
                    }
                    _ => nodes.has_collected(n),
                };
                if !fresh {
                    return Err(if found.is_none() {
                        format!("the last dropped node {n} is not in the drop history")
                    } else {
                        format!("replica info of the last dropped node {n} is not collected")
                    });
                }
                // The node reported no replica of this partition.
                info.push(DroppedReplica {
                    node: n,
                    time_ms: UNKNOWN_DROP_TIME,
                    ballot: INVALID_BALLOT,
                    last_committed_decree: INVALID_DECREE,
                    last_prepared_decree: INVALID_DECREE,
                });
            }
        }
    }
    let (prev, recent) = match info.as_slice() {
        [p, r] => (*p, *r),
        _ => return Err("incomplete drop info".into()),
    };
    if prev.ballot == INVALID_BALLOT && recent.ballot == INVALID_BALLOT {
        return Err("no replica info collected from the last two drops".into());
    }
    let gap_ballot = prev.ballot.saturating_sub(recent.ballot);
    let gap_committed = prev
        .last_committed_decree
        .saturating_sub(recent.last_committed_decree);
    if gap_ballot.signum() * gap_committed.signum() < 0 {
        return Err(
            "of the last two drops, the one with the larger ballot has the smaller committed decree"
                .into(),
        );
    }
    let larger_cd = prev.last_committed_decree.max(recent.last_committed_decree);
    let larger_pd = prev.last_prepared_decree.max(recent.last_prepared_decree);
    let meta_cd = pc.last_committed_decree.unwrap_or(0);
    if larger_pd < meta_cd || larger_pd < larger_cd {
        return Err(format!(
            "of the last two drops, the larger prepared decree {larger_pd} is below the \
             meta's committed decree {meta_cd} or the larger committed decree {larger_cd}"
        ));
    }
    let chosen = if gap_ballot != 0 {
        if gap_ballot < 0 {
            recent.node
        } else {
            prev.node
        }
    } else if gap_committed != 0 {
        if gap_committed < 0 {
            recent.node
        } else {
            prev.node
        }
    } else if prev.last_prepared_decree > recent.last_prepared_decree {
        prev.node
    } else {
        recent.node
    };
    Ok(chosen)
}

fn on_missing_secondary(
    pc: &PartitionConfiguration,
    nodes: &NodeView,
    history: &mut DropHistory,
    now_ms: i64,
    opts: &GuardianOptions,
) -> Cure {
    let Some(primary) = primary_of(pc) else {
        return Cure::Wait("no primary".into());
    };
    let app = app_id_of(pc);
    let max = pc.max_replica_count.unwrap_or(0);
    let min2pc = opts.min_2pc(max.max(1));
    let black = |n: RpcAddress| opts.assign_secondary_black_list.contains(&n.0);
    let last = history.entries.last().copied();
    let emergency = (max > min2pc && (replica_count(pc) as i64) < i64::from(min2pc))
        || match last {
            None => true,
            Some(d) => {
                d.time_ms
                    .saturating_add(opts.replica_assign_delay_ms_for_dropouts)
                    < now_ms
                    || black(d.node)
            }
        };

    let mut chosen = None;
    if emergency {
        if history.preferred < 0 || history.preferred >= history.entries.len() as isize {
            history.reset_cursor();
        }
        while history.preferred >= 0 {
            let d = usize::try_from(history.preferred)
                .ok()
                .and_then(|i| history.entries.get(i))
                .copied();
            history.preferred -= 1;
            // Members are skipped (upstream assumes the history holds none).
            if let Some(d) = d.filter(|d| nodes.is_alive(d.node) && !is_member(pc, d.node)) {
                chosen = Some(d.node);
                break;
            }
        }
        if chosen.map(black).unwrap_or(true) {
            chosen = nodes
                .alive
                .iter()
                .map(|a| RpcAddress(*a))
                .filter(|a| !a.is_invalid() && !is_member(pc, *a) && !black(*a))
                .min_by_key(|a| nodes.load_of(*a).replica_key(app));
        }
    } else if let Some(d) = last {
        if nodes.is_alive(d.node) && !is_member(pc, d.node) {
            chosen = Some(d.node);
        }
    }
    match chosen {
        Some(n) => Cure::Propose(send(primary, n, ConfigType::CT_ADD_SECONDARY)),
        None if emergency => Cure::Wait("no node to add as a secondary".into()),
        None => Cure::Wait("waiting for the last dropped node to come back".into()),
    }
}

fn on_redundant_secondary(pc: &PartitionConfiguration, nodes: &NodeView) -> Cure {
    let Some(primary) = primary_of(pc) else {
        return Cure::Wait("no primary".into());
    };
    let mut victim: Option<(RpcAddress, u32)> = None;
    for s in secondaries_of(pc) {
        let l = nodes.load_of(s).replicas;
        if victim.map(|(_, best)| l > best).unwrap_or(true) {
            victim = Some((s, l));
        }
    }
    match victim {
        Some((n, _)) => Cure::Propose(send(primary, n, ConfigType::CT_REMOVE)),
        None => Cure::Healthy,
    }
}

/// Validates a queued (balancer or manual) proposal before it is (re)sent; on error the
/// whole queue of the partition is dropped.
pub fn validate_proposal(
    pc: &PartitionConfiguration,
    nodes: &NodeView,
    target: RpcAddress,
    node: RpcAddress,
    kind: ConfigType,
) -> Result<(), &'static str> {
    if target.is_invalid() {
        return Err("action target is invalid");
    }
    if !nodes.is_alive(target) {
        return Err("action target is not alive");
    }
    if node.is_invalid() {
        return Err("action node is invalid");
    }
    if !nodes.is_alive(node) {
        return Err("action node is not alive");
    }
    let ok = match kind {
        ConfigType::CT_ASSIGN_PRIMARY => {
            node == target && primary_of(pc).is_none() && !is_secondary(pc, node)
        }
        ConfigType::CT_UPGRADE_TO_PRIMARY => {
            node == target && primary_of(pc).is_none() && is_secondary(pc, node)
        }
        ConfigType::CT_ADD_SECONDARY | ConfigType::CT_ADD_SECONDARY_FOR_LB => {
            is_primary(pc, target) && !is_secondary(pc, node)
        }
        ConfigType::CT_DOWNGRADE_TO_INACTIVE | ConfigType::CT_REMOVE => {
            is_primary(pc, target) && is_member(pc, node)
        }
        ConfigType::CT_DOWNGRADE_TO_SECONDARY => target == node && is_primary(pc, target),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("action is invalid")
    }
}

/// What the meta does for one partition served by `node` when `node` dies.
pub fn on_node_dead(pc: &PartitionConfiguration, node: RpcAddress) -> Option<Proposal> {
    if is_primary(pc, node) {
        let kind = ConfigType::CT_DOWNGRADE_TO_INACTIVE;
        let mut config = pc.clone();
        config.ballot = Some(pc.ballot.unwrap_or(0).saturating_add(1));
        config.primary = Some(RpcAddress::INVALID);
        let mut drops = pc.last_drops.clone().unwrap_or_default();
        maintain_drops(&mut drops, &node, kind);
        config.last_drops = Some(drops);
        if let Some(hp) = pc.hp_primary.clone().filter(|h| !h.is_invalid()) {
            config.hp_primary = Some(HostPort::invalid());
            if let Some(hd) = config.hp_last_drops.as_mut() {
                maintain_drops(hd, &hp, kind);
            }
        }
        return Some(Proposal::Rewrite { config, kind, node });
    }
    if is_secondary(pc, node) {
        if let Some(primary) = primary_of(pc) {
            return Some(send(primary, node, ConfigType::CT_DOWNGRADE_TO_INACTIVE));
        }
    }
    None
}

/// The meta's answer to a replica's RPC_CM_UPDATE_PARTITION_CONFIGURATION (the level and
/// in-flight-write checks are the caller's).
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// Persist this configuration, then reply ERR_OK with it.
    Apply(PartitionConfiguration),
    /// Already applied: reply ERR_OK with the current configuration.
    Duplicate(PartitionConfiguration),
    /// Reply ERR_INVALID_VERSION with the current configuration.
    InvalidVersion(PartitionConfiguration),
    /// The request is malformed (no config, or another partition's): drop it.
    Malformed(&'static str),
}

fn same_secondaries(a: &PartitionConfiguration, b: &PartitionConfiguration) -> bool {
    let sa = a.secondaries.clone().unwrap_or_default();
    let sb = b.secondaries.clone().unwrap_or_default();
    sa.len() == sb.len() && sa.iter().all(|s| sb.contains(s))
}

/// Upstream's equality for duplicate detection: pid, ballot, max_replica_count, primary,
/// secondaries as a set and last_committed_decree; `last_drops` (and the host_port mirrors,
/// which our stored configurations may lack) are ignored.
pub fn same_configuration(a: &PartitionConfiguration, b: &PartitionConfiguration) -> bool {
    a.pid == b.pid
        && a.ballot.unwrap_or(0) == b.ballot.unwrap_or(0)
        && a.max_replica_count.unwrap_or(0) == b.max_replica_count.unwrap_or(0)
        && primary_of(a) == primary_of(b)
        && same_secondaries(a, b)
        && a.last_committed_decree.unwrap_or(0) == b.last_committed_decree.unwrap_or(0)
}

/// Validates a configuration update request against `current` and builds the configuration
/// to persist, with `last_drops` maintained by the request's type.
pub fn check_update(
    current: &PartitionConfiguration,
    req: &ConfigurationUpdateRequest,
) -> UpdateOutcome {
    let Some(proposed) = req.config.as_ref() else {
        return UpdateOutcome::Malformed("request without a configuration");
    };
    if proposed.pid != current.pid {
        return UpdateOutcome::Malformed("request for another partition");
    }
    if same_configuration(current, proposed) {
        return UpdateOutcome::Duplicate(current.clone());
    }
    let cur_ballot = current.ballot.unwrap_or(0);
    if cur_ballot.checked_add(1) != Some(proposed.ballot.unwrap_or(0)) {
        return UpdateOutcome::InvalidVersion(current.clone());
    }
    let kind = req.type_.unwrap_or(ConfigType::CT_INVALID);
    let mut next = proposed.clone();
    if let Some(node) = valid(req.node) {
        let mut drops = next.last_drops.take().unwrap_or_default();
        maintain_drops(&mut drops, &node, kind);
        next.last_drops = Some(drops);
    } else if next.last_drops.is_none() {
        next.last_drops = Some(Vec::new());
    }
    if let (Some(hp), Some(hd)) = (
        req.hp_node.as_ref().filter(|h| !h.is_invalid()),
        next.hp_last_drops.as_mut(),
    ) {
        maintain_drops(hd, hp, kind);
    }
    UpdateOutcome::Apply(next)
}

/// The RPC_CONFIG_PROPOSAL body for a [`Proposal::Send`]: app info, the current
/// configuration, the type and the node (sent to the proposal's target).
pub fn proposal_request(
    app: &AppInfo,
    pc: &PartitionConfiguration,
    node: RpcAddress,
    kind: ConfigType,
) -> ConfigurationUpdateRequest {
    ConfigurationUpdateRequest {
        info: Some(app.clone()),
        config: Some(pc.clone()),
        type_: Some(kind),
        node: Some(node),
        host_node: None,
        meta_split_status: None,
        hp_node: None,
    }
}

#[cfg(test)]
mod tests;

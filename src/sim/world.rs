//! The simulated cluster: a meta server (the real `ServerState` and guardian over an
//! in-memory store), replica servers hosting the real PacificA `Core`s with a simulated
//! mutation log and storage app, clients, and a network, all driven by one seeded event
//! queue in virtual time. The glue mirrors what `replica::stub` and `replica::partition`
//! do in production (beacons and lease, config sync, RPC timeouts, learning by checkpoint).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checker::{self, Checker, Fnv};
use super::lin::OpKind;
use super::rng::Rng;
use super::{Bug, SimOptions};
use crate::idl::dsn::{ErrorCode, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, PartitionConfiguration};
use crate::idl::meta_admin::{ConfigType, ConfigurationUpdateRequest, MetaFunctionLevel};
use crate::idl::metadata::{PartitionStatus, ReplicaInfo};
use crate::meta::guardian::GuardianOptions;
use crate::meta::server_state::{DefaultApp, MetaOptions, ServerState};
use crate::meta::state_store::MemStore;
use crate::replica::mutation::{Mutation, MutationUpdate};
use crate::replica::pacifica::{
    self, AckError, Action, ConfigKind, Core, Inject, LearnPlan, Status, Token,
};
use crate::replica::stub::{membership_of, partition_config};

pub type NodeId = u64;

const APP_ID: i32 = 1;
const APP_NAME: &str = "temp";
const META_PORT: u16 = 34601;
const REPLICA_PORT: u16 = 34801;
const CLIENT_PORT: u16 = 40001;
/// Decrees a flush keeps in the simulated log below the flushed one (the reserve window).
const LOG_RESERVE_DECREES: i64 = 20;
/// Wall-clock epoch of the simulated world (ms); clocks are this plus virtual time and skew.
const EPOCH_MS: i64 = 1_700_000_000_000;
const TICK_MS: i64 = 100;
const CLIENT_TIMEOUT_MS: i64 = 5000;
const MAX_SKEW_MS: i64 = 600;

pub fn addr(port: u16) -> NodeId {
    RpcAddress::from_ipv4(std::net::Ipv4Addr::new(127, 0, 0, 1), port).0
}

/// A short name for reports: meta, r1.., c1...
pub fn name(n: NodeId) -> String {
    let port = ((n >> 16) & 0xffff) as u16;
    if port == META_PORT {
        "meta".into()
    } else if port >= CLIENT_PORT {
        format!("c{}", port - CLIENT_PORT + 1)
    } else if port >= REPLICA_PORT {
        format!("r{}", port - REPLICA_PORT + 1)
    } else {
        format!("{n:#x}")
    }
}

/// A PUT's data in the simulated app: key byte then the value (u64 LE).
pub fn encode_put(key: u8, value: u64) -> Vec<u8> {
    let mut d = vec![key];
    d.extend_from_slice(&value.to_le_bytes());
    d
}

pub fn decode_put(d: &[u8]) -> Option<(u8, u64)> {
    if d.len() != 9 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[1..]);
    Some((d[0], u64::from_le_bytes(b)))
}

const PUT: &str = "RPC_RRDB_RRDB_PUT";

/// Failure-detector and sync timing (a profile of `config.ini` values).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub beacon_ms: i64,
    pub check_ms: i64,
    pub lease_ms: i64,
    pub grace_ms: i64,
    pub sync_ms: i64,
}

/// The storage app's state: applied decree, chain hash of the applied prefix, data.
#[derive(Debug, Clone)]
struct AppData {
    decree: i64,
    chain: u64,
    kv: BTreeMap<u8, u64>,
}

impl AppData {
    fn new() -> AppData {
        AppData {
            decree: 0,
            chain: checker::CHAIN_START,
            kv: BTreeMap::new(),
        }
    }
}

/// What survives a crash: `.app-info`, `.init-info`'s ballot, the private log, and the
/// storage as of its last flush.
#[derive(Debug, Clone)]
struct Disk {
    info: AppInfo,
    log: Vec<Mutation>,
    flushed: AppData,
    init_ballot: i64,
}

struct Rep {
    core: Core,
    app: AppData,
    next_token: Token,
    client_waiters: BTreeMap<Token, (NodeId, u64)>,
    prepare_waiters: BTreeMap<Token, (NodeId, u64)>,
    /// Learn requests being answered: (learner, call, the learner's first wanted decree).
    learn_waiters: BTreeMap<Token, (NodeId, u64, i64)>,
    group_check_waiters: BTreeMap<Token, (NodeId, u64)>,
}

impl Rep {
    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }
}

#[derive(Debug, Clone)]
enum Call {
    Prepare {
        pidx: i32,
        to: NodeId,
        ballot: i64,
        decree: i64,
    },
    Propose {
        pidx: i32,
    },
    Learn {
        pidx: i32,
        sig: i64,
    },
    Beacon {
        time: i64,
    },
    Sync {
        now: i64,
    },
    GroupCheck {
        pidx: i32,
        to: NodeId,
    },
}

/// One-shot disk failures armed on a server.
#[derive(Debug, Default, Clone, Copy)]
struct DiskFaults {
    append: u32,
    flush: u32,
    init_info: u32,
    copy: u32,
}

struct Server {
    id: NodeId,
    up: bool,
    inc: u64,
    skew: i64,
    meta_connected: bool,
    last_ack_ms: i64,
    last_sync_ms: i64,
    reps: BTreeMap<i32, Rep>,
    disks: BTreeMap<i32, Disk>,
    calls: BTreeMap<u64, Call>,
    faults: DiskFaults,
}

struct Meta {
    up: bool,
    inc: u64,
    skew: i64,
    state: Option<ServerState>,
    store: MemStore,
}

#[derive(Debug, Clone)]
enum ClientOp {
    Write { key: u8, value: u64, idx: usize },
    Read { key: u8, idx: usize, floor: i64 },
}

struct Client {
    id: NodeId,
    n: u32,
    primaries: BTreeMap<i32, NodeId>,
    /// Re-resolve the configuration before the next operation (after a failure); when the
    /// meta cannot be reached the cached primaries stay in use, as real clients do.
    refresh: bool,
    /// The call in flight: a config query (None op) or an operation.
    call: Option<(u64, Option<ClientOp>)>,
    counter: u64,
}

#[derive(Debug, Clone)]
enum Answer {
    Error(&'static str),
    Cache {
        mutations: Vec<Mutation>,
        prepare_start: i64,
    },
    App(AppData),
    /// LT_LOG: the primary's logged mutations from the learner's start on.
    Log {
        mutations: Vec<Mutation>,
        to_decree: i64,
    },
}

#[derive(Debug, Clone)]
enum Msg {
    Prepare {
        call: u64,
        pidx: i32,
        from: NodeId,
        status: Status,
        sig: i64,
        m: Mutation,
    },
    PrepareReply {
        call: u64,
        err: AckError,
    },
    AddLearner {
        pidx: i32,
        from: NodeId,
        ballot: i64,
        sig: i64,
        info: Box<AppInfo>,
    },
    Learn {
        call: u64,
        pidx: i32,
        learner: NodeId,
        sig: i64,
        committed: i64,
    },
    LearnReply {
        call: u64,
        answer: Answer,
    },
    LearnCompletion {
        pidx: i32,
        learner: NodeId,
        sig: i64,
    },
    RemoveReplica {
        pidx: i32,
        ballot: i64,
    },
    GroupCheck {
        call: u64,
        pidx: i32,
        from: NodeId,
        ballot: i64,
        status: Status,
        sig: i64,
        committed: i64,
        info: Box<AppInfo>,
    },
    GroupCheckReply {
        call: u64,
        ok: bool,
        succeeded: bool,
        sig: i64,
    },
    Propose {
        call: u64,
        req: Box<ConfigurationUpdateRequest>,
    },
    ProposeReply {
        call: u64,
        err: ErrorCode,
        config: Box<PartitionConfiguration>,
    },
    ConfigProposal {
        req: Box<ConfigurationUpdateRequest>,
    },
    Beacon {
        call: u64,
        from: NodeId,
    },
    BeaconAck {
        call: u64,
    },
    ConfigSync {
        call: u64,
        node: NodeId,
        /// What the server holds, as replica servers report it (disk tags included).
        stored: Vec<ReplicaInfo>,
    },
    ConfigSyncReply {
        call: u64,
        ok: bool,
        parts: Vec<(AppInfo, PartitionConfiguration)>,
    },
    QueryCfg {
        call: u64,
    },
    QueryCfgReply {
        call: u64,
        parts: Vec<PartitionConfiguration>,
    },
    Write {
        call: u64,
        pidx: i32,
        key: u8,
        value: u64,
    },
    WriteReply {
        call: u64,
        err: Option<&'static str>,
    },
    Read {
        call: u64,
        pidx: i32,
        key: u8,
    },
    ReadReply {
        call: u64,
        result: Result<Option<u64>, &'static str>,
    },
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: NodeId,
        inc: u64,
        from: NodeId,
        msg: Msg,
    },
    Timeout {
        node: NodeId,
        inc: u64,
        call: u64,
    },
    Tick {
        node: NodeId,
        inc: u64,
    },
    MetaLoop {
        node: NodeId,
        inc: u64,
    },
    Flush {
        node: NodeId,
        inc: u64,
    },
    MetaCheck {
        inc: u64,
    },
    ClientStep {
        client: usize,
    },
    /// The end of a replica's round of client writes taken together (see `Core::hold_queue`).
    ReleaseQueue {
        node: NodeId,
        inc: u64,
        pidx: i32,
    },
    Fault,
    Restart {
        node: NodeId,
    },
    MetaRestart,
    Heal,
    NetCalm,
    StoreHeal,
    EndFaults,
}

/// Network fault levels (per mille).
#[derive(Debug, Clone, Copy)]
struct NetFaults {
    drop: u32,
    dup: u32,
    slow: u32,
}

const CALM: NetFaults = NetFaults {
    drop: 5,
    dup: 5,
    slow: 20,
};

pub struct World {
    opts: SimOptions,
    rng: Rng,
    now: i64,
    seq: u64,
    step: u64,
    queue: BinaryHeap<Reverse<(i64, u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    next_call: u64,
    base: Instant,
    timing: Timing,
    meta_id: NodeId,
    meta: Meta,
    meta_opts: MetaOptions,
    wall_s: Arc<AtomicI64>,
    servers: BTreeMap<NodeId, Server>,
    clients: Vec<Client>,
    partitions: i32,
    keys: u8,
    pacifica: pacifica::Options,
    /// One side of a network partition (None: fully connected).
    split: Option<BTreeSet<NodeId>>,
    net: NetFaults,
    faults_on: bool,
    max_down: usize,
    pub checker: Checker,
    trace: Fnv,
    pub log: Option<Vec<String>>,
    /// Verbose mode: the last (status, ballot, committed, prepared) noted per replica.
    seen_status: BTreeMap<(NodeId, i32), (String, i64, i64, i64)>,
    /// Since when the meta has named as primary a replica in Error on a running server.
    error_primary_since: BTreeMap<i32, i64>,
    /// Client writes committed in mutations of more than one write.
    batched_writes: u64,
}

impl World {
    pub fn new(opts: SimOptions) -> World {
        let mut rng = Rng::new(opts.seed);
        let n_servers = rng.range(3, 5) as usize;
        let partitions = rng.range(1, 4) as i32;
        let n_clients = rng.range(3, 8) as usize;
        let keys = rng.range(2, 4) as u8;
        let timing = if rng.chance(500) {
            // The onebox profile.
            Timing {
                beacon_ms: 1000,
                check_ms: 1000,
                lease_ms: 9000,
                grace_ms: 10_000,
                sync_ms: 1000,
            }
        } else {
            // Upstream defaults with a faster config sync.
            Timing {
                beacon_ms: 3000,
                check_ms: 2000,
                lease_ms: 20_000,
                grace_ms: 22_000,
                sync_ms: 5000,
            }
        };
        let inject = match opts.bug {
            Some(Bug::AckBeforePrepare) => Inject::AckBeforePrepare,
            Some(Bug::SkipReconciliation) => Inject::SkipReconciliation,
            Some(Bug::AckBatchEarly) => Inject::AckBatchEarly,
            Some(Bug::SilentLocalFailure) => Inject::SilentLocalFailure,
            _ => Inject::None,
        };
        let pacifica = pacifica::Options {
            mutation_2pc_min_replica_count: 2,
            cache_max_mutations: rng.range(3, 60) as usize,
            // Few mutations in 2PC at once, so client writes wait in the write queue and
            // are batched (with upstream's 20 and a handful of clients they never would).
            staleness_for_commit: rng.range(1, 3),
            group_check_interval_ms: rng.range(2000, 20_000),
            inject,
            ..pacifica::Options::default()
        };
        let guardian = GuardianOptions {
            replica_assign_delay_ms_for_dropouts: rng.range(3000, 60_000),
            ..GuardianOptions::default()
        };
        // Some runs balance (the lively level), so role switches and replica copies happen
        // under the faults too.
        let lively = rng.chance(400);
        let meta_opts = MetaOptions {
            grace: Duration::from_millis(timing.grace_ms as u64),
            min_live_node_count_for_unfreeze: rng.range(1, 3) as usize,
            guardian,
            start_level: if lively {
                MetaFunctionLevel::FL_LIVELY
            } else {
                MetaFunctionLevel::FL_STEADY
            },
            lb_interval: Duration::from_millis(rng.range(1000, 5000) as u64),
            node_live_percentage_threshold_for_update: 0,
            ..MetaOptions::default()
        };
        let mut servers = BTreeMap::new();
        for i in 0..n_servers {
            let id = addr(REPLICA_PORT + i as u16);
            servers.insert(
                id,
                Server {
                    id,
                    up: true,
                    inc: 1,
                    skew: 0,
                    meta_connected: false,
                    last_ack_ms: 0,
                    last_sync_ms: 0,
                    reps: BTreeMap::new(),
                    disks: BTreeMap::new(),
                    calls: BTreeMap::new(),
                    faults: DiskFaults::default(),
                },
            );
        }
        let clients = (0..n_clients)
            .map(|i| Client {
                id: addr(CLIENT_PORT + i as u16),
                n: i as u32 + 1,
                primaries: BTreeMap::new(),
                refresh: false,
                call: None,
                counter: 0,
            })
            .collect();
        let mut w = World {
            opts,
            rng,
            now: 0,
            seq: 0,
            step: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_call: 0,
            // Only differences of instants are ever used: the base is arbitrary.
            base: Instant::now(),
            timing,
            meta_id: addr(META_PORT),
            meta: Meta {
                up: false,
                inc: 0,
                skew: 0,
                state: None,
                store: MemStore::default(),
            },
            meta_opts,
            wall_s: Arc::new(AtomicI64::new(EPOCH_MS / 1000)),
            servers,
            clients,
            partitions,
            keys,
            pacifica,
            split: None,
            net: CALM,
            faults_on: true,
            max_down: n_servers.saturating_sub(2).max(1),
            checker: Checker::default(),
            trace: Fnv::default(),
            log: None,
            seen_status: BTreeMap::new(),
            error_primary_since: BTreeMap::new(),
            batched_writes: 0,
        };
        if w.opts.verbose {
            w.log = Some(Vec::new());
        }
        w.note(format!(
            "config: {n_servers} replica servers, {partitions} partitions, {n_clients} clients, \
             {keys} keys, {:?}, cache {} mutations, min_live {}, level {}",
            w.timing,
            w.pacifica.cache_max_mutations,
            w.meta_opts.min_live_node_count_for_unfreeze,
            if lively { "lively" } else { "steady" }
        ));
        w
    }

    fn note(&mut self, s: String) {
        if let Some(l) = self.log.as_mut() {
            l.push(format!("[{:>6} #{}] {s}", self.now, self.step));
        }
    }

    fn at(&mut self, delay: i64, ev: Ev) {
        self.seq += 1;
        // Events due at the same time run in a seeded random order.
        let tie = self.rng.next_u64();
        self.queue
            .push(Reverse((self.now + delay.max(0), tie, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn call_id(&mut self) -> u64 {
        self.next_call += 1;
        self.next_call
    }

    fn wall_ms(&self, skew: i64) -> i64 {
        EPOCH_MS + self.now + skew
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now as u64)
    }

    fn server_ids(&self) -> Vec<NodeId> {
        self.servers.keys().copied().collect()
    }

    // ---- the run --------------------------------------------------------------------

    /// Runs to the end; returns the trace digest.
    pub fn run(&mut self) -> u64 {
        self.meta_start();
        for id in self.server_ids() {
            self.server_start(id);
        }
        for c in 0..self.clients.len() {
            let d = self.rng.range(500, 3000);
            self.at(d, Ev::ClientStep { client: c });
        }
        let first = self.rng.range(3000, 8000);
        self.at(first, Ev::Fault);
        self.at(self.opts.fault_ms, Ev::EndFaults);
        while let Some(Reverse((t, _, seq))) = self.queue.pop() {
            if t > self.opts.end_ms {
                break;
            }
            self.now = t;
            self.step += 1;
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            let _ = write!(self.trace, "{t}|{ev:?};");
            if self.opts.trace_events {
                let mut line = format!("{ev:?}");
                line.truncate(1600);
                self.note(line);
            }
            self.handle(ev);
            self.check_step();
            if self.checker.violation.is_some() {
                break;
            }
        }
        if self.checker.violation.is_none() {
            if let Some(w) = self.checker.check_linearizable(20_000_000) {
                self.note(w);
            }
        }
        let _ = write!(self.trace, "end|{}", self.step);
        self.trace.0
    }

    fn check_step(&mut self) {
        let mut seen = Vec::new();
        let mut changes = Vec::new();
        for s in self.servers.values() {
            if !s.up {
                continue;
            }
            for (pidx, r) in &s.reps {
                if self.log.is_some() {
                    let now = (
                        format!("{:?}", r.core.status),
                        r.core.ballot(),
                        r.core.last_committed,
                        r.core.max_prepared(),
                    );
                    if self.seen_status.get(&(s.id, *pidx)) != Some(&now) {
                        changes.push(((s.id, *pidx), now));
                    }
                }
                if r.core.status == Status::Primary {
                    seen.push((s.id, *pidx, r.core.ballot(), r.core.is_serving_writes()));
                }
            }
        }
        let current: BTreeMap<i32, (i64, NodeId)> = match self.meta.state.as_ref() {
            Some(st) => st
                .apps
                .get(&APP_ID)
                .map(|a| {
                    a.partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            (
                                i as i32,
                                (p.ballot.unwrap_or(0), p.primary.map(|a| a.0).unwrap_or(0)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        // A failed primary must leave the configuration within the failure-detection time:
        // it reports itself at once, and config sync repeats the report.
        let limit = self.timing.grace_ms + 3 * self.timing.sync_ms + 5_000;
        self.error_primary_since
            .retain(|p, _| current.contains_key(p));
        for (pidx, (_, primary)) in &current {
            let failed = self.servers.get(primary).is_some_and(|s| {
                s.up && s
                    .reps
                    .get(pidx)
                    .is_some_and(|r| r.core.status == Status::Error)
            });
            // Only time in which the meta runs, can persist a change, accepts replica reports
            // (it refuses them while frozen, as upstream) and reaches that server counts.
            let reachable = self.meta.up
                && !self.meta.store.fail_writes.load(Ordering::SeqCst)
                && self
                    .meta
                    .state
                    .as_ref()
                    .is_some_and(|st| st.effective_level().0 > MetaFunctionLevel::FL_FREEZED.0)
                && self.connected(self.meta_id, *primary)
                && self.connected(*primary, self.meta_id);
            if !failed || !reachable {
                self.error_primary_since.remove(pidx);
                continue;
            }
            let since = *self.error_primary_since.entry(*pidx).or_insert(self.now);
            if self.now - since > limit {
                self.checker.fail(format!(
                    "partition {pidx}: the meta has named {} primary for {} ms while its replica is in Error",
                    name(*primary),
                    self.now - since
                ));
            }
        }
        for ((node, pidx), st) in changes {
            self.note(format!(
                "{} {pidx}: {} ballot {} committed {} prepared {}",
                name(node),
                st.0,
                st.1,
                st.2,
                st.3
            ));
            self.seen_status.insert((node, pidx), st);
        }
        for (node, pidx, ballot, serving) in seen {
            self.checker.on_primary(node, pidx, ballot);
            if serving && current.get(&pidx) == Some(&(ballot, node)) {
                let mp = self.servers[&node].reps[&pidx].core.max_prepared();
                self.checker.on_current_primary(node, pidx, mp);
            }
        }
        if let Some(st) = self.meta.state.as_ref() {
            let cfgs: Vec<(i32, i64, u64, Vec<u64>)> = st
                .apps
                .get(&APP_ID)
                .map(|a| {
                    a.partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let m = membership_of(p);
                            (i as i32, m.ballot, m.primary, m.secondaries)
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (pidx, b, p, s) in cfgs {
                self.checker.on_meta_config(pidx, b, p, s);
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, inc, from, msg } => {
                if !self.connected(from, to) {
                    return;
                }
                if to == self.meta_id {
                    if self.meta.up && self.meta.inc == inc {
                        self.meta_receive(from, msg);
                    }
                } else if let Some(s) = self.servers.get(&to) {
                    if s.up && s.inc == inc {
                        self.server_receive(to, from, msg);
                    }
                } else if let Some(c) = self.clients.iter().position(|c| c.id == to) {
                    self.client_receive(c, msg);
                }
            }
            Ev::Timeout { node, inc, call } => {
                if let Some(c) = self.clients.iter().position(|c| c.id == node) {
                    self.client_timeout(c, call);
                } else if self
                    .servers
                    .get(&node)
                    .is_some_and(|s| s.up && s.inc == inc)
                {
                    self.server_timeout(node, call);
                }
            }
            Ev::Tick { node, inc } => {
                if self.alive(node, inc) {
                    self.server_tick(node);
                    self.at(TICK_MS, Ev::Tick { node, inc });
                }
            }
            Ev::MetaLoop { node, inc } => {
                if self.alive(node, inc) {
                    self.meta_loop_begin(node);
                }
            }
            Ev::Flush { node, inc } => {
                if self.alive(node, inc) {
                    self.server_flush(node);
                    let d = self.rng.range(300, 6000);
                    self.at(d, Ev::Flush { node, inc });
                }
            }
            Ev::MetaCheck { inc } => {
                if self.meta.up && self.meta.inc == inc {
                    self.meta_check();
                    self.at(self.timing.check_ms, Ev::MetaCheck { inc });
                }
            }
            Ev::ClientStep { client } => self.client_step(client),
            Ev::ReleaseQueue { node, inc, pidx } => {
                if self.alive(node, inc) {
                    if let Some(r) = self.rep(node, pidx) {
                        let mut out = Vec::new();
                        r.core.release_queue(&mut out);
                        self.perform(node, pidx, out);
                    }
                }
            }
            Ev::Fault => {
                if self.faults_on {
                    self.inject_fault();
                    let d = self.rng.range(300, 5000);
                    self.at(d, Ev::Fault);
                }
            }
            Ev::Restart { node } => {
                if !self.servers[&node].up {
                    self.server_start(node);
                }
            }
            Ev::MetaRestart => {
                if !self.meta.up {
                    self.meta_start();
                }
            }
            Ev::Heal => {
                self.note("network partition healed".into());
                self.split = None;
            }
            Ev::NetCalm => self.net = CALM,
            Ev::StoreHeal => self.meta.store.fail_writes.store(false, Ordering::SeqCst),
            Ev::EndFaults => {
                self.note("faults end; healing everything".into());
                self.faults_on = false;
                self.split = None;
                self.net = CALM;
                self.meta.store.fail_writes.store(false, Ordering::SeqCst);
                for s in self.servers.values_mut() {
                    s.faults = DiskFaults::default();
                }
                if !self.meta.up {
                    self.meta_start();
                }
                for id in self.server_ids() {
                    if !self.servers[&id].up {
                        self.server_start(id);
                    }
                }
            }
        }
    }

    fn alive(&self, node: NodeId, inc: u64) -> bool {
        self.servers
            .get(&node)
            .is_some_and(|s| s.up && s.inc == inc)
    }

    // ---- network ----------------------------------------------------------------------

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match &self.split {
            None => true,
            Some(side) => side.contains(&a) == side.contains(&b),
        }
    }

    fn inc_of(&self, n: NodeId) -> u64 {
        if n == self.meta_id {
            self.meta.inc
        } else {
            self.servers.get(&n).map(|s| s.inc).unwrap_or(0)
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        if !self.connected(from, to) || self.rng.chance(self.net.drop) {
            return;
        }
        // Duplicates only between servers: a duplicated client request is a client retry,
        // which Pegasus applies twice by design (no idempotence), not a server bug.
        let client = self.clients.iter().any(|c| c.id == from || c.id == to);
        let copies = if !client && self.rng.chance(self.net.dup) {
            2
        } else {
            1
        };
        let inc = self.inc_of(to);
        for _ in 0..copies {
            let mut delay = self.rng.range(1, 8);
            if self.rng.chance(self.net.slow) {
                delay += self.rng.range(20, 2500);
            }
            self.at(
                delay,
                Ev::Deliver {
                    to,
                    inc,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// Registers a call of `node` with a timeout.
    fn call(&mut self, node: NodeId, call: Call, timeout_ms: i64) -> u64 {
        let id = self.call_id();
        let s = self.servers.get_mut(&node).expect("server");
        s.calls.insert(id, call);
        let inc = s.inc;
        self.at(
            timeout_ms,
            Ev::Timeout {
                node,
                inc,
                call: id,
            },
        );
        id
    }

    // ---- faults -----------------------------------------------------------------------

    fn inject_fault(&mut self) {
        let ids = self.server_ids();
        let pick = ids[self.rng.below(ids.len() as u64) as usize];
        match self.rng.below(100) {
            0..=22 => {
                let down = self.servers.values().filter(|s| !s.up).count();
                if self.servers[&pick].up && down < self.max_down {
                    self.server_crash(pick);
                    let d = self.rng.range(300, 30_000);
                    self.at(d, Ev::Restart { node: pick });
                }
            }
            23..=29 if self.meta.up => {
                self.note("meta crashes".into());
                self.meta.up = false;
                self.meta.state = None;
                let d = self.rng.range(300, 12_000);
                self.at(d, Ev::MetaRestart);
            }
            30..=46 if self.split.is_none() => {
                let mut side = BTreeSet::new();
                let mut all = ids.clone();
                all.push(self.meta_id);
                all.extend(self.clients.iter().map(|c| c.id));
                for n in all {
                    if self.rng.chance(500) {
                        side.insert(n);
                    }
                }
                let names: Vec<String> = side.iter().map(|n| name(*n)).collect();
                self.note(format!("network partition: {names:?} | rest"));
                self.split = Some(side);
                let d = self.rng.range(500, 30_000);
                self.at(d, Ev::Heal);
            }
            47..=56 => {
                let j = self.rng.range(-400, 400);
                if self.rng.chance(200) {
                    self.meta.skew = (self.meta.skew + j).clamp(-MAX_SKEW_MS, MAX_SKEW_MS);
                    self.note(format!("meta clock jumps {j} ms"));
                } else {
                    let s = self.servers.get_mut(&pick).expect("server");
                    s.skew = (s.skew + j).clamp(-MAX_SKEW_MS, MAX_SKEW_MS);
                    self.note(format!("{} clock jumps {j} ms", name(pick)));
                }
            }
            57..=72 => {
                let kind = self.rng.below(4);
                let s = self.servers.get_mut(&pick).expect("server");
                match kind {
                    0 => s.faults.append += 1,
                    1 => s.faults.flush += 1,
                    2 => s.faults.init_info += 1,
                    _ => s.faults.copy += 1,
                }
                self.note(format!("{} disk fault armed ({kind})", name(pick)));
            }
            73..=84 => {
                self.net = NetFaults {
                    drop: self.rng.range(20, 250) as u32,
                    dup: self.rng.range(10, 100) as u32,
                    slow: self.rng.range(50, 300) as u32,
                };
                self.note(format!("network degraded: {:?}", self.net));
                let d = self.rng.range(500, 15_000);
                self.at(d, Ev::NetCalm);
            }
            85..=89 => {
                // Mostly brief; one in three as long as a ZooKeeper restart (up to 30 s),
                // during which beacons are still answered and no change can be persisted.
                let d = if self.rng.range(0, 3) == 0 {
                    self.rng.range(3000, 30_000)
                } else {
                    self.rng.range(100, 3000)
                };
                self.note(format!("meta state store fails writes for {d} ms"));
                self.meta.store.fail_writes.store(true, Ordering::SeqCst);
                self.at(d, Ev::StoreHeal);
            }
            _ => {}
        }
    }

    // ---- the meta server --------------------------------------------------------------

    fn meta_start(&mut self) {
        self.meta.inc += 1;
        self.wall_s
            .store(self.wall_ms(self.meta.skew) / 1000, Ordering::SeqCst);
        let clock = self.wall_s.clone();
        let defaults = [DefaultApp {
            name: APP_NAME.into(),
            app_type: "pegasus".into(),
            partition_count: self.partitions,
            max_replica_count: 3,
            stateful: true,
            envs: BTreeMap::new(),
        }];
        // A failed store write at creation: the meta does not start; retry later.
        match ServerState::load_at(
            Box::new(self.meta.store.clone()),
            self.meta_opts.clone(),
            &defaults,
            self.instant(),
            Box::new(move || clock.load(Ordering::SeqCst)),
        ) {
            Ok(s) => {
                self.note("meta starts".into());
                self.meta.state = Some(s);
                self.meta.up = true;
                let inc = self.meta.inc;
                self.at(self.timing.check_ms, Ev::MetaCheck { inc });
            }
            Err(e) => {
                self.note(format!("meta cannot start: {e}"));
                self.at(1000, Ev::MetaRestart);
            }
        }
    }

    fn meta_now(&self) -> (Instant, i64) {
        self.wall_s
            .store(self.wall_ms(self.meta.skew) / 1000, Ordering::SeqCst);
        (self.instant(), self.wall_ms(self.meta.skew))
    }

    fn meta_check(&mut self) {
        let (now, now_ms) = self.meta_now();
        let Some(st) = self.meta.state.as_mut() else {
            return;
        };
        let out = st.check(now, now_ms);
        for o in out {
            let me = self.meta_id;
            let kind = o.request.type_.unwrap_or(ConfigType::CT_INVALID);
            let node = o.request.node.map(|n| name(n.0)).unwrap_or_default();
            let what = if kind == ConfigType::CT_ADD_SECONDARY_FOR_LB
                || kind == ConfigType::CT_DOWNGRADE_TO_SECONDARY
            {
                "balances"
            } else {
                "proposes"
            };
            let ballot = o
                .request
                .config
                .as_ref()
                .and_then(|c| c.ballot)
                .unwrap_or(0);
            self.note(format!(
                "meta {what}: {kind:?} of {node} to {} (ballot {ballot})",
                name(o.target.0)
            ));
            self.send(
                me,
                o.target.0,
                Msg::ConfigProposal {
                    req: Box::new(o.request),
                },
            );
        }
    }

    fn meta_receive(&mut self, from: NodeId, msg: Msg) {
        let (now, now_ms) = self.meta_now();
        let me = self.meta_id;
        let Some(st) = self.meta.state.as_mut() else {
            return;
        };
        match msg {
            Msg::Beacon { call, from: node } => {
                st.on_beacon(node, now);
                self.send(me, from, Msg::BeaconAck { call });
            }
            Msg::ConfigSync { call, node, stored } => {
                let mut parts = Vec::new();
                let ok = st.nodes.contains_key(&node);
                if ok {
                    st.collect_replicas(RpcAddress(node), &stored, now_ms);
                    for app in st.apps.values() {
                        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                            continue;
                        }
                        for p in &app.partitions {
                            let member = p.primary.map(|a| a.0) == Some(node)
                                || p.secondaries.iter().flatten().any(|a| a.0 == node);
                            if member && p.partition_flags.unwrap_or(0) == 0 {
                                parts.push((app.info.clone(), p.clone()));
                            }
                        }
                    }
                }
                self.send(me, from, Msg::ConfigSyncReply { call, ok, parts });
            }
            Msg::Propose { call, req } => {
                let Some((err, config)) = st.update_configuration(*req, now_ms) else {
                    return;
                };
                let out = if err == ErrorCode::OK {
                    st.check(now, now_ms)
                } else {
                    Vec::new()
                };
                self.send(
                    me,
                    from,
                    Msg::ProposeReply {
                        call,
                        err,
                        config: Box::new(config),
                    },
                );
                for o in out {
                    self.send(
                        me,
                        o.target.0,
                        Msg::ConfigProposal {
                            req: Box::new(o.request),
                        },
                    );
                }
            }
            Msg::QueryCfg { call } => {
                let parts = st
                    .app_by_name(APP_NAME)
                    .map(|a| a.partitions.clone())
                    .unwrap_or_default();
                self.send(me, from, Msg::QueryCfgReply { call, parts });
            }
            _ => {}
        }
    }

    // ---- replica servers: lifecycle ---------------------------------------------------

    fn server_crash(&mut self, id: NodeId) {
        self.note(format!("{} crashes", name(id)));
        let s = self.servers.get_mut(&id).expect("server");
        s.up = false;
        s.reps.clear();
        s.calls.clear();
        s.meta_connected = false;
    }

    /// Starts (or restarts) a server: replicas are loaded from disk and their logs replayed.
    fn server_start(&mut self, id: NodeId) {
        let opts = self.pacifica.clone();
        let s = self.servers.get_mut(&id).expect("server");
        let restarted = s.inc > 1 || !s.disks.is_empty();
        s.inc += 1;
        s.up = true;
        s.meta_connected = false;
        s.last_ack_ms = 0;
        s.last_sync_ms = 0;
        let inc = s.inc;
        let mut replays = Vec::new();
        for (pidx, d) in &s.disks {
            let mut core = Core::new(
                APP_ID,
                *pidx,
                id,
                d.init_ballot,
                d.flushed.decree,
                opts.clone(),
            );
            let mut out = Vec::new();
            for m in d.log.iter().filter(|m| m.decree > d.flushed.decree) {
                core.replay(m.clone(), &mut out);
            }
            s.reps.insert(
                *pidx,
                Rep {
                    core,
                    app: d.flushed.clone(),
                    next_token: 0,
                    client_waiters: BTreeMap::new(),
                    prepare_waiters: BTreeMap::new(),
                    learn_waiters: BTreeMap::new(),
                    group_check_waiters: BTreeMap::new(),
                },
            );
            replays.push((*pidx, out));
        }
        if restarted {
            self.note(format!("{} starts", name(id)));
        }
        for (pidx, out) in replays {
            self.perform(id, pidx, out);
        }
        let d = self.rng.range(0, TICK_MS);
        self.at(d, Ev::Tick { node: id, inc });
        let d = self.rng.range(0, 300);
        self.at(d, Ev::MetaLoop { node: id, inc });
        let d = self.rng.range(300, 6000);
        self.at(d, Ev::Flush { node: id, inc });
    }

    /// The replica of `pidx` on `id`, created empty when absent (`ensure_replica`).
    fn ensure_replica(&mut self, id: NodeId, pidx: i32, info: &AppInfo) {
        let opts = self.pacifica.clone();
        let s = self.servers.get_mut(&id).expect("server");
        if s.reps.contains_key(&pidx) {
            return;
        }
        let mut stored = info.clone();
        stored.status = Some(AppStatus::AS_AVAILABLE);
        s.disks.insert(
            pidx,
            Disk {
                info: stored,
                log: Vec::new(),
                flushed: AppData::new(),
                init_ballot: 0,
            },
        );
        s.reps.insert(
            pidx,
            Rep {
                core: Core::new(APP_ID, pidx, id, 0, 0, opts).created_empty(),
                app: AppData::new(),
                next_token: 0,
                client_waiters: BTreeMap::new(),
                prepare_waiters: BTreeMap::new(),
                learn_waiters: BTreeMap::new(),
                group_check_waiters: BTreeMap::new(),
            },
        );
    }

    fn server_flush(&mut self, id: NodeId) {
        let s = self.servers.get_mut(&id).expect("server");
        if s.faults.flush > 0 {
            s.faults.flush -= 1;
            return;
        }
        for (pidx, r) in &s.reps {
            if let Some(d) = s.disks.get_mut(pidx) {
                d.flushed = r.app.clone();
                // Log gc (partition.rs `gc_log`), keeping a reserve of recent decrees as the
                // plog's reserve window does, so learners meet both LT_LOG cases and LT_APP.
                let keep_from = d.flushed.decree - LOG_RESERVE_DECREES;
                d.log.retain(|m| m.decree > keep_from);
            }
        }
    }

    fn server_tick(&mut self, id: NodeId) {
        let s = &self.servers[&id];
        let now = self.wall_ms(s.skew);
        let pidxs: Vec<i32> = s.reps.keys().copied().collect();
        for pidx in pidxs {
            let mut out = Vec::new();
            if let Some(r) = self.rep(id, pidx) {
                r.core.on_tick(now, &mut out);
            }
            self.perform(id, pidx, out);
        }
    }

    fn rep(&mut self, id: NodeId, pidx: i32) -> Option<&mut Rep> {
        self.servers.get_mut(&id)?.reps.get_mut(&pidx)
    }

    // ---- replica servers: the meta loop (beacons, lease, config sync) -------------------

    fn meta_loop_begin(&mut self, id: NodeId) {
        let time = self.wall_ms(self.servers[&id].skew);
        let timeout = (self.timing.beacon_ms * 2 / 3).max(500);
        let call = self.call(id, Call::Beacon { time }, timeout);
        let meta = self.meta_id;
        self.send(id, meta, Msg::Beacon { call, from: id });
    }

    fn meta_loop_after_beacon(&mut self, id: NodeId, acked: Option<i64>) {
        let lease = self.timing.lease_ms;
        let sync_every = self.timing.sync_ms;
        let s = self.servers.get_mut(&id).expect("server");
        if let Some(t) = acked {
            s.last_ack_ms = t;
            if !s.meta_connected {
                s.meta_connected = true;
                s.last_sync_ms = 0;
            }
        }
        let now = EPOCH_MS + self.now + s.skew;
        let mut disconnected = false;
        if s.meta_connected && now - s.last_ack_ms > lease {
            s.meta_connected = false;
            disconnected = true;
            for r in s.reps.values_mut() {
                r.core.on_meta_disconnected();
            }
        }
        if disconnected {
            self.note(format!("{} lease expired", name(id)));
        }
        let s = &self.servers[&id];
        if s.meta_connected && now - s.last_sync_ms >= sync_every {
            let stored = self.stored_replicas(id);
            let call = self.call(id, Call::Sync { now }, 5000);
            let meta = self.meta_id;
            self.send(
                id,
                meta,
                Msg::ConfigSync {
                    call,
                    node: id,
                    stored,
                },
            );
        } else {
            self.meta_loop_sleep(id);
        }
    }

    /// The replicas a server reports in config sync, with the disk tag of the one disk.
    fn stored_replicas(&self, id: NodeId) -> Vec<ReplicaInfo> {
        let Some(s) = self.servers.get(&id) else {
            return Vec::new();
        };
        s.reps
            .iter()
            .map(|(pidx, r)| ReplicaInfo {
                pid: Some(crate::idl::dsn::Gpid::new(APP_ID, *pidx)),
                ballot: Some(r.core.ballot()),
                status: Some(match Self::status_code(&r.core) {
                    1 => PartitionStatus::PS_PRIMARY,
                    2 => PartitionStatus::PS_SECONDARY,
                    _ => PartitionStatus::PS_INACTIVE,
                }),
                last_committed_decree: Some(r.core.last_committed),
                last_prepared_decree: Some(r.core.max_prepared()),
                last_durable_decree: Some(r.core.last_committed),
                app_type: Some("pegasus".into()),
                disk_tag: Some("default".into()),
                manual_compact_status: None,
            })
            .collect()
    }

    fn meta_loop_sleep(&mut self, id: NodeId) {
        let inc = self.servers[&id].inc;
        let d = self.timing.beacon_ms.min(self.timing.sync_ms);
        self.at(d, Ev::MetaLoop { node: id, inc });
    }

    fn status_code(core: &Core) -> u8 {
        match core.status {
            Status::Primary if core.is_serving_writes() => 1,
            Status::Secondary => 2,
            _ => 0,
        }
    }

    fn config_sync_done(&mut self, id: NodeId, parts: Vec<(AppInfo, PartitionConfiguration)>) {
        let mut listed = BTreeSet::new();
        for (info, cfg) in parts {
            let Some(pid) = cfg.pid else { continue };
            if info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            let pidx = pid.partition_index;
            listed.insert(pidx);
            let m = membership_of(&cfg);
            let exists = self.servers[&id].reps.contains_key(&pidx);
            if !exists {
                if m.primary == id && m.ballot <= 1 {
                    self.ensure_replica(id, pidx, &info);
                } else {
                    continue;
                }
            }
            self.update_info(id, pidx, &info);
            let mut out = Vec::new();
            if let Some(r) = self.rep(id, pidx) {
                r.core.on_config(m, &mut out);
            }
            self.perform(id, pidx, out);
        }
        let s = self.servers.get_mut(&id).expect("server");
        for (pidx, r) in s.reps.iter_mut() {
            if !listed.contains(pidx) && matches!(Self::status_code(&r.core), 1 | 2) {
                r.core.on_not_member();
            }
        }
    }

    fn update_info(&mut self, id: NodeId, pidx: i32, info: &AppInfo) {
        if let Some(d) = self
            .servers
            .get_mut(&id)
            .and_then(|s| s.disks.get_mut(&pidx))
        {
            d.info = info.clone();
        }
    }

    // ---- replica servers: messages ------------------------------------------------------

    fn server_receive(&mut self, id: NodeId, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare {
                call,
                pidx,
                from: primary,
                status,
                sig,
                m,
            } => {
                let Some(r) = self.rep(id, pidx) else {
                    self.send(
                        id,
                        from,
                        Msg::PrepareReply {
                            call,
                            err: AckError::Failed,
                        },
                    );
                    return;
                };
                let t = r.token();
                r.prepare_waiters.insert(t, (from, call));
                let mut out = Vec::new();
                r.core.on_prepare(primary, status, sig, m, t, &mut out);
                self.perform(id, pidx, out);
            }
            Msg::PrepareReply { call, err } => {
                let Some(Call::Prepare {
                    pidx,
                    to,
                    ballot,
                    decree,
                }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                self.prepare_acked(id, pidx, to, ballot, decree, err);
            }
            Msg::AddLearner {
                pidx,
                from: primary,
                ballot,
                sig,
                info,
            } => {
                if info.app_id != Some(APP_ID) {
                    return;
                }
                self.ensure_replica(id, pidx, &info);
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core.on_add_learner(primary, ballot, sig, &mut out);
                }
                self.perform(id, pidx, out);
            }
            Msg::Learn {
                call,
                pidx,
                learner,
                sig,
                committed,
            } => {
                let Some(r) = self.rep(id, pidx) else {
                    self.send(
                        id,
                        from,
                        Msg::LearnReply {
                            call,
                            answer: Answer::Error("ERR_OBJECT_NOT_FOUND"),
                        },
                    );
                    return;
                };
                let t = r.token();
                r.learn_waiters.insert(t, (from, call, committed + 1));
                let mut out = Vec::new();
                r.core
                    .on_learn_request(learner, sig, committed, t, &mut out);
                self.perform(id, pidx, out);
            }
            Msg::LearnReply { call, answer } => {
                let Some(Call::Learn { pidx, sig }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                self.learn_reply(id, pidx, sig, answer);
            }
            Msg::LearnCompletion { pidx, learner, sig } => {
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core.on_learn_completion(learner, sig, &mut out);
                }
                self.perform(id, pidx, out);
            }
            Msg::GroupCheck {
                call,
                pidx,
                from: primary,
                ballot,
                status,
                sig,
                committed,
                info,
            } => {
                // As the stub: only a server connected to the meta takes group checks; a
                // missing replica asked to learn is created.
                let connected = self.servers.get(&id).is_some_and(|s| s.meta_connected);
                if connected && status == Status::PotentialSecondary && info.app_id == Some(APP_ID)
                {
                    self.ensure_replica(id, pidx, &info);
                }
                let reply_fail = Msg::GroupCheckReply {
                    call,
                    ok: false,
                    succeeded: false,
                    sig,
                };
                if !connected {
                    self.send(id, from, reply_fail);
                    return;
                }
                let Some(r) = self.rep(id, pidx) else {
                    self.send(id, from, reply_fail);
                    return;
                };
                let t = r.token();
                r.group_check_waiters.insert(t, (from, call));
                let mut out = Vec::new();
                r.core
                    .on_group_check(primary, ballot, status, sig, committed, t, &mut out);
                self.perform(id, pidx, out);
            }
            Msg::GroupCheckReply {
                call,
                ok,
                succeeded,
                sig,
            } => {
                let Some(Call::GroupCheck { pidx, to }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core
                        .on_group_check_reply(to, ok, succeeded, sig, &mut out);
                }
                self.perform(id, pidx, out);
            }
            Msg::RemoveReplica { pidx, ballot } => {
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core.on_remove(ballot, &mut out);
                }
                self.perform(id, pidx, out);
            }
            Msg::ProposeReply { call, err, config } => {
                let Some(Call::Propose { pidx }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    if err == ErrorCode::OK || err == ErrorCode::INVALID_VERSION {
                        r.core.on_proposal_reply(
                            err == ErrorCode::OK,
                            membership_of(&config),
                            &mut out,
                        );
                    } else {
                        r.core.on_proposal_failed();
                    }
                }
                self.perform(id, pidx, out);
            }
            Msg::ConfigProposal { req } => {
                if !self.servers[&id].meta_connected {
                    return;
                }
                let req = *req;
                let (Some(info), Some(cfg)) = (req.info, req.config) else {
                    return;
                };
                let Some(pid) = cfg.pid else { return };
                let Some(kind) = req.type_.and_then(|t| ConfigKind::from_i32(t.0)) else {
                    return;
                };
                let node = req.node.map(|a| a.0).unwrap_or(0);
                let pidx = pid.partition_index;
                if !self.servers[&id].reps.contains_key(&pidx) {
                    if kind == ConfigKind::AssignPrimary {
                        self.ensure_replica(id, pidx, &info);
                    } else {
                        return;
                    }
                }
                self.update_info(id, pidx, &info);
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core
                        .on_meta_proposal(kind, node, membership_of(&cfg), &mut out);
                }
                self.perform(id, pidx, out);
            }
            Msg::BeaconAck { call } => {
                let Some(Call::Beacon { time }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                self.meta_loop_after_beacon(id, Some(time));
            }
            Msg::ConfigSyncReply { call, ok, parts } => {
                let Some(Call::Sync { now }) = self
                    .servers
                    .get_mut(&id)
                    .and_then(|s| s.calls.remove(&call))
                else {
                    return;
                };
                if ok {
                    self.servers.get_mut(&id).expect("server").last_sync_ms = now;
                    self.config_sync_done(id, parts);
                }
                self.meta_loop_sleep(id);
            }
            Msg::Write {
                call,
                pidx,
                key,
                value,
            } => {
                let now_us = self.wall_ms(self.servers[&id].skew) * 1000;
                // As the runtime's owner does with writes that arrive together: sometimes hold
                // the queue for a moment so the writes arriving meanwhile share a mutation.
                let hold = self.rng.chance(300);
                let Some(r) = self.rep(id, pidx) else {
                    self.send(
                        id,
                        from,
                        Msg::WriteReply {
                            call,
                            err: Some("ERR_OBJECT_NOT_FOUND"),
                        },
                    );
                    return;
                };
                let t = r.token();
                r.client_waiters.insert(t, (from, call));
                let update = MutationUpdate {
                    code: PUT.into(),
                    serialization_type: 1,
                    data: encode_put(key, value).into(),
                };
                let mut out = Vec::new();
                if hold {
                    r.core.hold_queue();
                }
                r.core.on_client_write(t, update, true, now_us, &mut out);
                self.perform(id, pidx, out);
                if hold {
                    let inc = self.servers[&id].inc;
                    let d = self.rng.range(1, 20);
                    self.at(
                        d,
                        Ev::ReleaseQueue {
                            node: id,
                            inc,
                            pidx,
                        },
                    );
                }
            }
            Msg::Read { call, pidx, key } => {
                let ignore_lease = self.opts.bug == Some(Bug::ReadWithoutLease);
                let early = self.opts.bug == Some(Bug::ReadBeforeReconcile);
                // The stub's lease check at read time (`ReplicaStub::lease_valid`).
                let s = &self.servers[&id];
                let lease_valid = s.meta_connected
                    && self.wall_ms(s.skew) - s.last_ack_ms <= self.timing.lease_ms;
                let result = match self.rep(id, pidx) {
                    None => Err("ERR_OBJECT_NOT_FOUND"),
                    Some(r) => {
                        let caught_up =
                            r.core.is_readable() || (early && r.core.is_serving_writes());
                        let readable = (caught_up && (lease_valid || ignore_lease))
                            || (ignore_lease
                                && r.core.status == (Status::Inactive { transient: true })
                                && r.core.membership.primary == id);
                        if readable {
                            Ok(r.app.kv.get(&key).copied())
                        } else {
                            Err("ERR_INVALID_STATE")
                        }
                    }
                };
                self.send(id, from, Msg::ReadReply { call, result });
            }
            _ => {}
        }
    }

    fn prepare_acked(
        &mut self,
        id: NodeId,
        pidx: i32,
        to: NodeId,
        ballot: i64,
        decree: i64,
        err: AckError,
    ) {
        let mut out = Vec::new();
        if let Some(r) = self.rep(id, pidx) {
            r.core.on_prepare_ack(to, ballot, decree, err, &mut out);
        }
        self.perform(id, pidx, out);
    }

    fn server_timeout(&mut self, id: NodeId, call: u64) {
        let Some(c) = self
            .servers
            .get_mut(&id)
            .and_then(|s| s.calls.remove(&call))
        else {
            return;
        };
        match c {
            Call::Prepare {
                pidx,
                to,
                ballot,
                decree,
            } => self.prepare_acked(id, pidx, to, ballot, decree, AckError::Failed),
            Call::Propose { pidx } => {
                if let Some(r) = self.rep(id, pidx) {
                    r.core.on_proposal_failed();
                }
            }
            Call::Learn { pidx, sig } => {
                self.learn_reply(id, pidx, sig, Answer::Error("ERR_NETWORK_FAILURE"))
            }
            Call::GroupCheck { pidx, to } => {
                let mut out = Vec::new();
                if let Some(r) = self.rep(id, pidx) {
                    r.core.on_group_check_reply(to, false, false, 0, &mut out);
                }
                self.perform(id, pidx, out);
            }
            Call::Beacon { .. } => self.meta_loop_after_beacon(id, None),
            Call::Sync { .. } => self.meta_loop_sleep(id),
        }
    }

    /// Learner: the primary's answer to RPC_LEARN (partition.rs `Input::LearnReply`).
    fn learn_reply(&mut self, id: NodeId, pidx: i32, sig: i64, answer: Answer) {
        let mut out = Vec::new();
        let Some(r) = self.rep(id, pidx) else { return };
        match answer {
            Answer::Error(e) => r.core.on_learn_reply(sig, Err(e), &mut out),
            Answer::Cache {
                mutations,
                prepare_start,
            } => r.core.on_learn_reply(
                sig,
                Ok(LearnPlan::Cache {
                    mutations,
                    prepare_start,
                }),
                &mut out,
            ),
            Answer::Log {
                mutations,
                to_decree,
            } => {
                let s = self.servers.get_mut(&id).expect("server");
                if s.faults.copy > 0 {
                    s.faults.copy -= 1;
                    if let Some(r) = s.reps.get_mut(&pidx) {
                        r.core.on_learn_failed();
                    }
                } else if let Some(r) = s.reps.get_mut(&pidx) {
                    r.core.on_learn_reply(
                        sig,
                        Ok(LearnPlan::Log {
                            mutations,
                            to_decree,
                        }),
                        &mut out,
                    );
                }
            }
            Answer::App(snapshot) => {
                r.core.on_learn_reply(sig, Ok(LearnPlan::App), &mut out);
                if out.iter().any(|a| matches!(a, Action::ResetForLearning)) {
                    out.retain(|a| !matches!(a, Action::ResetForLearning));
                    let s = self.servers.get_mut(&id).expect("server");
                    if s.faults.copy > 0 {
                        s.faults.copy -= 1;
                        if let Some(r) = s.reps.get_mut(&pidx) {
                            r.core.on_learn_failed();
                        }
                    } else {
                        let decree = snapshot.decree;
                        let chain = snapshot.chain;
                        let (Some(r), Some(d)) = (s.reps.get_mut(&pidx), s.disks.get_mut(&pidx))
                        else {
                            return;
                        };
                        r.app = snapshot.clone();
                        d.flushed = snapshot;
                        d.log.clear();
                        d.init_ballot = r.core.ballot();
                        r.core.on_checkpoint_installed(decree, &mut out);
                        self.checker.on_install(id, pidx, decree, chain);
                    }
                }
            }
        }
        self.perform(id, pidx, out);
    }

    // ---- performing the machine's actions (partition.rs `Owner::perform`) ---------------

    fn perform(&mut self, id: NodeId, pidx: i32, actions: Vec<Action>) {
        let mut q: VecDeque<Action> = actions.into();
        while let Some(a) = q.pop_front() {
            let s = self.servers.get_mut(&id).expect("server");
            let (Some(r), Some(disk)) = (s.reps.get_mut(&pidx), s.disks.get_mut(&pidx)) else {
                return;
            };
            match a {
                Action::AppendLog(m) => {
                    if s.faults.append > 0 {
                        s.faults.append -= 1;
                        // As partition.rs: the rest of the batch is dropped, the failure is
                        // reported (a primary asks the meta to remove it).
                        q.clear();
                        let mut more = Vec::new();
                        r.core.on_local_failure(&mut more);
                        q.extend(more);
                        self.note(format!("{} {pidx}: log append failed", name(id)));
                        continue;
                    }
                    let (d, b) = (m.decree, m.ballot);
                    disk.log.push(m);
                    let mut more = Vec::new();
                    r.core.on_log_appended(d, b, &mut more);
                    q.extend(more);
                }
                Action::Apply { mutation, tokens } => {
                    if mutation.decree != r.app.decree + 1 {
                        let msg = format!(
                            "{} partition {pidx} applied decree {} on top of {}",
                            name(id),
                            mutation.decree,
                            r.app.decree
                        );
                        self.checker.fail(msg);
                        return;
                    }
                    let h = checker::chain(r.app.chain, &mutation);
                    r.app.decree = mutation.decree;
                    r.app.chain = h;
                    for u in &mutation.updates {
                        if u.code == PUT {
                            if let Some((k, v)) = decode_put(&u.data) {
                                r.app.kv.insert(k, v);
                            }
                        }
                    }
                    let waiters: Vec<_> = tokens
                        .iter()
                        .filter_map(|t| r.client_waiters.remove(t))
                        .collect();
                    if tokens.len() > 1 {
                        self.batched_writes += tokens.len() as u64;
                    }
                    self.checker
                        .on_apply(id, pidx, mutation.decree, h, &mutation);
                    for (client, call) in waiters {
                        self.send(id, client, Msg::WriteReply { call, err: None });
                    }
                }
                Action::RejectClient { token, error } => {
                    if let Some((client, call)) = r.client_waiters.remove(&token) {
                        self.send(
                            id,
                            client,
                            Msg::WriteReply {
                                call,
                                err: Some(error),
                            },
                        );
                    }
                }
                Action::SendPrepare {
                    to,
                    ballot,
                    receiver_status,
                    signature,
                    mutation,
                } => {
                    let timeout = if receiver_status == Status::Secondary {
                        3000
                    } else {
                        5000
                    };
                    let decree = mutation.decree;
                    let call = self.call(
                        id,
                        Call::Prepare {
                            pidx,
                            to,
                            ballot,
                            decree,
                        },
                        timeout,
                    );
                    self.send(
                        id,
                        to,
                        Msg::Prepare {
                            call,
                            pidx,
                            from: id,
                            status: receiver_status,
                            sig: signature,
                            m: mutation,
                        },
                    );
                }
                Action::ReplyPrepare { token, error, .. } => {
                    if let Some((to, call)) = r.prepare_waiters.remove(&token) {
                        self.send(id, to, Msg::PrepareReply { call, err: error });
                    }
                }
                Action::ProposeToMeta { kind, node, new } => {
                    let req = ConfigurationUpdateRequest {
                        info: Some(disk.info.clone()),
                        config: Some(partition_config(
                            (APP_ID, pidx),
                            &new,
                            r.core.last_committed,
                        )),
                        type_: Some(ConfigType(kind as i32)),
                        node: Some(RpcAddress(node)),
                        host_node: Some(RpcAddress(node)),
                        meta_split_status: None,
                        hp_node: None,
                    };
                    let call = self.call(id, Call::Propose { pidx }, 5000);
                    let meta = self.meta_id;
                    self.send(
                        id,
                        meta,
                        Msg::Propose {
                            call,
                            req: Box::new(req),
                        },
                    );
                }
                Action::SendAddLearner {
                    to,
                    ballot,
                    signature,
                } => {
                    let info = Box::new(disk.info.clone());
                    self.send(
                        id,
                        to,
                        Msg::AddLearner {
                            pidx,
                            from: id,
                            ballot,
                            sig: signature,
                            info,
                        },
                    );
                }
                Action::SendLearn {
                    to,
                    signature,
                    committed,
                } => {
                    let call = self.call(
                        id,
                        Call::Learn {
                            pidx,
                            sig: signature,
                        },
                        30_000,
                    );
                    self.send(
                        id,
                        to,
                        Msg::Learn {
                            call,
                            pidx,
                            learner: id,
                            sig: signature,
                            committed,
                        },
                    );
                }
                Action::SendGroupCheck {
                    to,
                    ballot,
                    receiver_status,
                    signature,
                    committed,
                } => {
                    let info = Box::new(disk.info.clone());
                    let call = self.call(id, Call::GroupCheck { pidx, to }, 5000);
                    self.send(
                        id,
                        to,
                        Msg::GroupCheck {
                            call,
                            pidx,
                            from: id,
                            ballot,
                            status: receiver_status,
                            sig: signature,
                            committed,
                            info,
                        },
                    );
                }
                Action::ReplyGroupCheck {
                    token,
                    ok,
                    learner_succeeded,
                    signature,
                    ..
                } => {
                    if let Some((to, call)) = r.group_check_waiters.remove(&token) {
                        self.send(
                            id,
                            to,
                            Msg::GroupCheckReply {
                                call,
                                ok,
                                succeeded: learner_succeeded,
                                sig: signature,
                            },
                        );
                    }
                }
                Action::ReplyLearn { token, plan, .. } => {
                    let mut chose = None;
                    let answer = match plan {
                        Err(e) => Answer::Error(e),
                        Ok(LearnPlan::Cache {
                            mutations,
                            prepare_start,
                        }) => Answer::Cache {
                            mutations,
                            prepare_start,
                        },
                        Ok(LearnPlan::App) => {
                            // As partition.rs `durable_answer`: log files when they hold the
                            // learner's start, else a checkpoint.
                            let start = r.learn_waiters.get(&token).map_or(0, |w| w.2);
                            let min_logged = disk.log.iter().map(|m| m.decree).min();
                            let covers = min_logged.is_some_and(|d| d <= start);
                            let from_log = pacifica::learn_from_log(
                                start,
                                disk.flushed.decree,
                                covers,
                                min_logged.is_some(),
                            );
                            chose = Some((start, if from_log { "LT_LOG" } else { "LT_APP" }));
                            if from_log {
                                Answer::Log {
                                    mutations: disk
                                        .log
                                        .iter()
                                        .filter(|m| m.decree >= start)
                                        .cloned()
                                        .collect(),
                                    to_decree: r.core.last_committed,
                                }
                            } else {
                                Answer::App(r.app.clone())
                            }
                        }
                        Ok(LearnPlan::Log { .. }) => Answer::Error("ERR_INVALID_STATE"),
                    };
                    let waiter = r.learn_waiters.remove(&token);
                    if let Some((start, kind)) = chose {
                        self.note(format!(
                            "{} {pidx}: learner starts at {start}: {kind}",
                            name(id)
                        ));
                    }
                    if let Some((to, call, _)) = waiter {
                        self.send(id, to, Msg::LearnReply { call, answer });
                    }
                }
                Action::SendLearnCompletion { to, signature, .. } => self.send(
                    id,
                    to,
                    Msg::LearnCompletion {
                        pidx,
                        learner: id,
                        sig: signature,
                    },
                ),
                Action::SendRemoveReplica { to, ballot } => {
                    self.send(id, to, Msg::RemoveReplica { pidx, ballot })
                }
                Action::PersistBallot(b) => {
                    if s.faults.init_info > 0 {
                        s.faults.init_info -= 1;
                        self.note(format!("{} {pidx}: cannot write .init-info", name(id)));
                    } else {
                        disk.init_ballot = b;
                    }
                }
                Action::ResetForLearning => {}
            }
        }
    }

    // ---- clients ----------------------------------------------------------------------

    fn client_step(&mut self, c: usize) {
        if self.clients[c].call.is_some() {
            return;
        }
        let key = self.rng.below(self.keys as u64) as u8;
        let pidx = (key as i32) % self.partitions;
        let cid = self.clients[c].id;
        let cached = self.clients[c].primaries.get(&pidx).copied();
        let Some(primary) = cached.filter(|_| !self.clients[c].refresh) else {
            let call = self.call_id();
            self.clients[c].call = Some((call, None));
            let meta = self.meta_id;
            self.send(cid, meta, Msg::QueryCfg { call });
            self.at(
                3000,
                Ev::Timeout {
                    node: cid,
                    inc: 0,
                    call,
                },
            );
            return;
        };
        let call = self.call_id();
        let n = self.clients[c].n;
        let at = self.step;
        if self.rng.chance(500) {
            self.clients[c].counter += 1;
            let value = (u64::from(n) << 32) | self.clients[c].counter;
            let (idx, _) = self.checker.invoke(n, key, OpKind::Write(value), at);
            self.clients[c].call = Some((call, Some(ClientOp::Write { key, value, idx })));
            self.send(
                cid,
                primary,
                Msg::Write {
                    call,
                    pidx,
                    key,
                    value,
                },
            );
        } else {
            let (idx, floor) = self.checker.invoke(n, key, OpKind::Read(None), at);
            self.clients[c].call = Some((call, Some(ClientOp::Read { key, idx, floor })));
            self.send(cid, primary, Msg::Read { call, pidx, key });
        }
        self.at(
            CLIENT_TIMEOUT_MS,
            Ev::Timeout {
                node: cid,
                inc: 0,
                call,
            },
        );
    }

    fn client_next(&mut self, c: usize, failed: bool) {
        self.clients[c].call = None;
        if failed {
            self.clients[c].refresh = true;
        }
        let d = if failed {
            self.rng.range(50, 1000)
        } else {
            self.rng.range(0, 150)
        };
        self.at(d.max(1), Ev::ClientStep { client: c });
    }

    fn client_receive(&mut self, c: usize, msg: Msg) {
        let Some((cur, op)) = self.clients[c].call.clone() else {
            return;
        };
        let at = self.step;
        match msg {
            Msg::QueryCfgReply { call, parts } if call == cur && op.is_none() => {
                self.clients[c].refresh = false;
                let p = &mut self.clients[c].primaries;
                p.clear();
                for (i, pc) in parts.iter().enumerate() {
                    if let Some(a) = pc.primary.filter(|a| !a.is_invalid()) {
                        p.insert(i as i32, a.0);
                    }
                }
                let failed = p.is_empty();
                self.client_next(c, failed);
            }
            Msg::WriteReply { call, err } if call == cur => {
                if let Some(ClientOp::Write { key, value, idx }) = op {
                    match err {
                        None => self.checker.write_acked(key, idx, value, at),
                        Some(_) => self.checker.write_refused(key, idx),
                    }
                    self.client_next(c, err.is_some());
                }
            }
            Msg::ReadReply { call, result } if call == cur => {
                if let Some(ClientOp::Read { key, idx, floor }) = op {
                    match result {
                        Ok(v) => self.checker.read_done(key, idx, v, floor, at),
                        Err(_) => self.checker.read_failed(key, idx),
                    }
                    self.client_next(c, result.is_err());
                }
            }
            _ => {}
        }
    }

    fn client_timeout(&mut self, c: usize, call: u64) {
        let Some((cur, op)) = self.clients[c].call.clone() else {
            return;
        };
        if cur != call {
            return;
        }
        match op {
            // The write may still happen: it stays in the history without a response.
            Some(ClientOp::Write { .. }) => self.checker.write_unknown(),
            Some(ClientOp::Read { key, idx, .. }) => self.checker.read_failed(key, idx),
            None => {
                // The meta is unreachable: go on with what is cached.
                self.clients[c].refresh = false;
                self.client_next(c, false);
                return;
            }
        }
        self.client_next(c, true);
    }

    pub fn stats(&self) -> String {
        format!(
            "steps {} acked writes {} (batched {}) reads {} unknown writes {} failed ops {} \
             committed {:?}",
            self.step,
            self.checker.acked_writes,
            self.batched_writes,
            self.checker.ok_reads,
            self.checker.unknown_writes,
            self.checker.failed_ops,
            (0..self.partitions)
                .map(|p| self.checker.committed(p))
                .collect::<Vec<_>>()
        )
    }
}

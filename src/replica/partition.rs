//! One partition replica hosted by this replica server: the task that owns its PacificA
//! state machine, its mutation log and its storage app, performing the machine's actions
//! (log appends, applies, sends) and feeding completions back as events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::base::value_schema;
use crate::idl::dsn_layer2::AppInfo;
use crate::storage::app::{PartitionApp, WriteRequest, WriteResponse};
use crate::storage::engine::{PegasusDb, TtlSettings};

use super::mutation::{Mutation, MutationUpdate, WRITE_EMPTY};
use super::mutation_log::MutationLog;
use super::pacifica::{
    self, AckError, Action, ConfigKind, Core, LearnPlan, Membership, Node, Status,
};
use super::replica_files::{self, InitInfo};

/// What the replica server asks a replica to do.
pub enum Input {
    /// A client write, decoded once by the server (`request`) and carried raw (`update`)
    /// into the mutation; `allow_batch` as upstream's task code says (single put/remove).
    ClientWrite {
        update: MutationUpdate,
        request: WriteRequest,
        allow_batch: bool,
        reply: ClientReply,
    },
    Prepare {
        from: Node,
        receiver_status: Status,
        signature: i64,
        mutation: Mutation,
        reply: PrepareReply,
    },
    PrepareAck {
        from: Node,
        ballot: i64,
        decree: i64,
        error: AckError,
    },
    Config(Membership, Box<AppInfo>),
    Proposal {
        kind: ConfigKind,
        node: Node,
        config: Membership,
        info: Box<AppInfo>,
    },
    ProposalReply {
        accepted: bool,
        config: Membership,
    },
    ProposalFailed,
    AddLearner {
        from: Node,
        ballot: i64,
        signature: i64,
    },
    LearnRequest {
        learner: Node,
        signature: i64,
        committed: i64,
        reply: oneshot::Sender<LearnAnswer>,
    },
    LearnReply {
        signature: i64,
        answer: LearnAnswer,
    },
    LearnCompletion {
        learner: Node,
        signature: i64,
        reply: oneshot::Sender<bool>,
    },
    Remove {
        ballot: i64,
    },
    GroupCheck {
        from: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        committed: i64,
        /// The primary's duplication floor (upstream's confirmed_decree), when it sent one.
        confirmed: Option<i64>,
        reply: oneshot::Sender<GroupCheckOutcome>,
    },
    GroupCheckReply {
        from: Node,
        ok: bool,
        learner_succeeded: bool,
        signature: i64,
    },
    /// Learner: the log files of an LT_LOG answer were copied and replayed (or not).
    LearnedLog {
        signature: i64,
        dir: PathBuf,
        learnee: Node,
        files: usize,
        to_decree: i64,
        result: Result<Vec<Mutation>, String>,
    },
    /// Learner: the checkpoint of an LT_APP answer was copied into `dir` (or not).
    LearnedCheckpoint {
        signature: i64,
        learnee: Node,
        decree: i64,
        dir: PathBuf,
        result: Result<(), String>,
    },
    /// The meta no longer lists this server for the partition.
    NotMember,
    MetaDisconnected,
    Tick,
    /// Flush the database (graceful shutdown); answers when done.
    Flush(oneshot::Sender<()>),
    /// Close the replica: its task ends and its database is released (so the folder can be
    /// opened again, e.g. when the meta places the partition here anew); answers when done.
    Close(oneshot::Sender<()>),
}

/// The answer to a prepare: (error, our ballot, decree, our committed decree).
pub type PrepareOutcome = (AckError, i64, i64, i64);

/// Where a prepare's answer goes (called at most once; dropped unanswered when the replica
/// never answers the prepare).
pub type PrepareReply = Box<dyn FnOnce(PrepareOutcome) + Send>;

/// A member's answer to a group check: (ok, committed decree, learning succeeded, signature).
pub type GroupCheckOutcome = (bool, i64, bool, i64);

/// A primary's answer to RPC_LEARN as the runtimes exchange it.
#[derive(Debug, Clone)]
pub enum LearnAnswer {
    Error(&'static str),
    Cache {
        mutations: Vec<Mutation>,
        prepare_start: i64,
        committed: i64,
    },
    /// Copy `files` (relative to `dir` on `learnee`) holding a checkpoint at `decree`.
    App {
        learnee: Node,
        dir: String,
        files: Vec<String>,
        decree: i64,
    },
    /// LT_LOG: copy the log `files` (names in `dir` on `learnee`), replay them, and apply what
    /// they hold up to `to_decree`.
    Log {
        learnee: Node,
        dir: String,
        files: Vec<String>,
        to_decree: i64,
    },
}

/// How a replica reaches the rest of the cluster (implemented by the replica server).
pub trait Transport: Send + Sync + 'static {
    fn send_prepare(
        &self,
        gpid: (i32, i32),
        to: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        m: Mutation,
    );
    fn propose(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        kind: ConfigKind,
        node: Node,
        new: Membership,
        last_committed: i64,
    );
    fn add_learner(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        to: Node,
        ballot: i64,
        signature: i64,
        committed: i64,
    );
    fn learn(&self, gpid: (i32, i32), to: Node, signature: i64, committed: i64);
    fn learn_completion(&self, gpid: (i32, i32), to: Node, signature: i64, committed: i64);
    fn remove_replica(&self, gpid: (i32, i32), to: Node, ballot: i64);
    #[allow(clippy::too_many_arguments)]
    fn group_check(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        to: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        committed: i64,
        confirmed: i64,
    );
    /// Copies a learned checkpoint into `dst`; returns when done.
    fn copy_checkpoint(
        &self,
        from: Node,
        dir: String,
        files: Vec<String>,
        dst: PathBuf,
    ) -> tokio::task::JoinHandle<Result<(), String>>;
}

const STATUS_INACTIVE: u8 = 0;
const STATUS_PRIMARY: u8 = 1;
const STATUS_SECONDARY: u8 = 2;
const STATUS_LEARNER: u8 = 3;
const STATUS_ERROR: u8 = 4;

/// The handle the replica server keeps for a hosted partition.
pub struct Replica {
    pub dir: PathBuf,
    /// None only while a learned checkpoint replaces the database.
    app: RwLock<Option<Arc<PartitionApp>>>,
    status: AtomicU8,
    /// The ballot, committed and prepared decrees as of the last round (config sync reports
    /// them, so the meta can choose among the last members of a partition that lost all).
    ballot: AtomicI64,
    committed: AtomicI64,
    prepared: AtomicI64,
    /// Primary and caught up with what it re-proposed on taking over (serves reads).
    readable: AtomicBool,
    /// `replica.deny_client_request` of the table envs (DENY_* bits).
    deny: AtomicU8,
    /// The throttling envs of the table, per partition.
    throttles: std::sync::Mutex<Throttles>,
    /// Whether any throttling env is set: requests skip the lock when none is.
    throttled: AtomicBool,
    tx: mpsc::UnboundedSender<Input>,
    /// The read lane: client reads of this partition, run one after another in arrival
    /// order (upstream's partitioned read pool), beside the owner task.
    reads: mpsc::UnboundedSender<ReadJob>,
    info: RwLock<AppInfo>,
    /// This replica's metric entity (`replica@<app>.<pidx>`).
    pub metrics: Arc<super::metrics::ReplicaMetrics>,
    /// Whether old private-log files are removed (`replica.enable-plog-gc` /
    /// `replica.disable-plog-gc`).
    pub plog_gc: AtomicBool,
    /// The lowest decree the meta persisted for this partition's duplications (i64::MAX when
    /// none): log files holding later decrees are kept for the duplicators.
    pub dup_gc_floor: std::sync::atomic::AtomicI64,
    /// The `confirmed_decree` the primary last sent in a group check (-1: none), the floor a
    /// secondary keeps for duplication (see `stub_dup::plog_floor`).
    pub dup_primary_confirmed: std::sync::atomic::AtomicI64,
}

/// One client read, run on the partition's read lane.
pub type ReadJob = Box<dyn FnOnce() + Send>;

/// The directory name of a replica: `<app_id>.<pidx>.<app_type>`.
pub fn dir_name(app_id: i32, pidx: i32, app_type: &str) -> String {
    format!("{app_id}.{pidx}.{app_type}")
}

/// Parses a replica directory name into (app_id, pidx, app_type).
pub fn parse_dir_name(name: &str) -> Option<(i32, i32, String)> {
    for suffix in [".err", ".gar", ".tmp", ".ori", ".bak", ".discarded"] {
        if name.ends_with(suffix) {
            return None;
        }
    }
    let mut parts = name.splitn(3, '.');
    let app_id = parts.next()?.parse::<u32>().ok()?;
    let pidx = parts.next()?.parse::<u32>().ok()?;
    let app_type = parts.next()?;
    if app_type.is_empty() || app_id > i32::MAX as u32 || pidx > i32::MAX as u32 {
        return None;
    }
    Some((app_id as i32, pidx as i32, app_type.to_string()))
}

use crate::base::throttling::{Controller, Throttle};
use crate::storage::manual_compact::{local_today_at, CompactEnvs};

/// The throttling controllers of one partition, one per env.
#[derive(Debug, Default)]
pub struct Throttles {
    write_qps: Controller,
    write_size: Controller,
    read_qps: Controller,
    backup: Controller,
    read_size: crate::base::throttling::SizeBucket,
}

impl Throttles {
    fn from_info(info: &AppInfo) -> Throttles {
        let mut t = Throttles::default();
        t.update(info);
        t
    }

    fn any(&self) -> bool {
        self.write_qps.enabled()
            || self.write_size.enabled()
            || self.read_qps.enabled()
            || self.backup.enabled()
            || self.read_size.enabled()
    }

    fn update(&mut self, info: &AppInfo) {
        let env = |k: &str| {
            info.envs
                .as_ref()
                .and_then(|e| e.get(k))
                .map(String::as_str)
        };
        let pc = info.partition_count.unwrap_or(1);
        self.write_qps.update(env("replica.write_throttling"), pc);
        self.write_size
            .update(env("replica.write_throttling_by_size"), pc);
        self.read_qps.update(env("replica.read_throttling"), pc);
        self.backup
            .update(env("replica.backup_request_throttling"), pc);
        self.read_size
            .update(env("replica.read_throttling_by_size"), pc);
    }
}

fn now_s() -> i64 {
    (value_schema::now_us() / 1_000_000) as i64
}

/// `replica.deny_client_request` denies reads.
pub const DENY_READ: u8 = 1;
/// ... denies writes.
pub const DENY_WRITE: u8 = 2;
/// ... answers denied requests with ERR_INVALID_STATE (`reconfig*`: the client refreshes its
/// configuration) instead of leaving them unanswered (`timeout*`).
pub const DENY_RECONFIG: u8 = 4;

/// The DENY_* bits of `replica.deny_client_request` (`<timeout|reconfig>*<all|write|read>`).
pub fn deny_bits(info: &AppInfo) -> u8 {
    let Some(v) = info
        .envs
        .as_ref()
        .and_then(|e| e.get("replica.deny_client_request"))
    else {
        return 0;
    };
    let Some((mode, what)) = v.split_once('*') else {
        return 0;
    };
    let mut bits = match what {
        "all" => DENY_READ | DENY_WRITE,
        "read" => DENY_READ,
        "write" => DENY_WRITE,
        _ => 0,
    };
    if bits != 0 && mode == "reconfig" {
        bits |= DENY_RECONFIG;
    }
    bits
}

fn env_u32(info: &AppInfo, key: &str) -> Option<u32> {
    info.envs.as_ref()?.get(key)?.parse::<u32>().ok()
}

fn apply_envs(app: &PartitionApp, info: &AppInfo) {
    let s = &app.db.settings;
    // As upstream, removing default_ttl leaves the last value in force until a restart.
    if let Some(ttl) = env_u32(info, "default_ttl") {
        s.default_ttl.store(ttl, Ordering::Relaxed);
    }
    // Both checkpoint reserve envs, or the server's defaults when one is missing or invalid.
    let (count, secs) = match (
        env_u32(info, "rocksdb.checkpoint.reserve_min_count"),
        env_u32(info, "rocksdb.checkpoint.reserve_time_seconds"),
    ) {
        (Some(c), Some(t)) if c > 0 => (c, t),
        _ => (0, 0),
    };
    s.checkpoint_reserve_min_count
        .store(count, Ordering::Relaxed);
    s.checkpoint_reserve_time_seconds
        .store(secs, Ordering::Relaxed);
    // replica.slow_query_threshold in ms (absent or invalid: the default).
    let slow_ms = info
        .envs
        .as_ref()
        .and_then(|e| e.get("replica.slow_query_threshold"))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(0);
    s.slow_query_threshold_ns
        .store(slow_ms.saturating_mul(1_000_000), Ordering::Relaxed);
    // rocksdb.usage_scenario (absent: normal), switched at run time when it changes.
    let scenario = info
        .envs
        .as_ref()
        .and_then(|e| e.get("rocksdb.usage_scenario"))
        .map(String::as_str)
        .unwrap_or("normal");
    let current = app.db.usage_scenario();
    if matches!(scenario, "normal" | "prefer_write" | "bulk_load")
        && (!s.scenario_applied.load(Ordering::Relaxed) || current.as_deref() != Some(scenario))
    {
        let before = current.unwrap_or_default();
        match app.db.set_usage_scenario(scenario) {
            Ok(()) => {
                s.scenario_applied.store(true, Ordering::Relaxed);
                log::info!(
                    "{}: usage scenario set from {before:?} to {scenario:?}",
                    app.db.path().display()
                )
            }
            Err(e) => log::warn!(
                "{}: cannot set usage scenario {scenario:?}: {e}",
                app.db.path().display()
            ),
        }
    }
    let validate = info
        .envs
        .as_ref()
        .and_then(|e| e.get("replica.split.validate_partition_hash"))
        .is_some_and(|v| v == "true");
    s.validate_partition_hash.store(validate, Ordering::Relaxed);
}

/// Queues a manual compaction when the table envs call for one (see
/// `storage::manual_compact`); it runs on a blocking thread, beside the partition's work.
fn start_manual_compact_if_due(app: &Arc<PartitionApp>, info: &AppInfo) {
    let Some(envs) = info.envs.as_ref() else {
        return;
    };
    let e = CompactEnvs::parse(envs);
    let now = now_ms();
    let Some(opts) = e.due(app.compact.last_finish_ms(), now, &local_today_at) else {
        return;
    };
    if !app.compact.try_enqueue(now) {
        return;
    }
    let app = app.clone();
    let (app_id, pidx) = (app.app_id(), app.partition_index());
    log::info!("{app_id}.{pidx}: manual compaction queued ({opts:?})");
    tokio::task::spawn_blocking(move || {
        let r = app.compact.run(e.max_running, &now_ms, || {
            app.db
                .manual_compact(opts.target_level, opts.bottommost_force)
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(true) => log::info!(
                "{app_id}.{pidx}: manual compaction finished at {}",
                app.compact.last_finish_ms()
            ),
            Ok(false) => log::info!(
                "{app_id}.{pidx}: manual compaction skipped: {} already run on this server",
                e.max_running
            ),
            Err(err) => log::error!("{app_id}.{pidx}: manual compaction failed: {err}"),
        }
    });
}

fn open_app(dir: &Path, info: &AppInfo, pidx: i32, server: &str) -> Result<PartitionApp, String> {
    let settings = Arc::new(TtlSettings::default());
    let pc = info.partition_count.unwrap_or(1);
    settings
        .partition_version
        .store((pc - 1) as i64, Ordering::Relaxed);
    settings
        .partition_index
        .store(pidx as i64, Ordering::Relaxed);
    let db = PegasusDb::open(&dir.join("data").join("rdb"), settings).map_err(|e| e.to_string())?;
    let app = PartitionApp::new(db, info.app_id.unwrap_or(0), pidx, server.to_string());
    apply_envs(&app, info);
    Ok(app)
}

/// Decodes a logged update back into the write request it carries.
pub fn decode_update(u: &MutationUpdate) -> Option<WriteRequest> {
    decode_write(&u.code, &u.data)
}

/// Decodes the body of a write request with task code `code`.
pub fn decode_write(code: &str, d: &[u8]) -> Option<WriteRequest> {
    use crate::idl::protocol::{decode, read_arg};
    Some(match code {
        "RPC_RRDB_RRDB_PUT" => WriteRequest::Put(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_MULTI_PUT" => WriteRequest::MultiPut(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_REMOVE" => WriteRequest::Remove(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_MULTI_REMOVE" => WriteRequest::MultiRemove(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_INCR" => WriteRequest::Incr(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_CHECK_AND_SET" => WriteRequest::CheckAndSet(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_CHECK_AND_MUTATE" => WriteRequest::CheckAndMutate(decode(d, read_arg).ok()?),
        "RPC_RRDB_RRDB_DUPLICATE" => WriteRequest::Duplicate(decode(d, read_arg).ok()?),
        _ => return None,
    })
}

/// Settings of the replica runtime.
#[derive(Clone)]
pub struct ReplicaConfig {
    pub me: Node,
    pub server: String,
    pub pacifica: pacifica::Options,
    /// `checkpoint_interval_seconds`: how often committed data is flushed to disk, which
    /// bounds the log replayed at restart and lets old log files be collected.
    pub flush_interval_ms: i64,
    /// `log_private_file_size_mb`, in bytes: a new plog file starts past this size.
    pub log_file_size_bytes: u64,
    /// `log_private_reserve_max_size_mb` / `_time_seconds`: collectable plog files kept
    /// anyway while within both (0 keeps none), so lagging learners can learn from them.
    pub log_reserve_max_bytes: u64,
    pub log_reserve_max_secs: u64,
}

impl Replica {
    /// Opens (creating) the replica in `dir`: storage, `.init-info`, log replay; then starts
    /// its owner task.
    pub fn open(
        dir: &Path,
        info: AppInfo,
        pidx: i32,
        cfg: ReplicaConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Replica>, String> {
        let app_id = info.app_id.unwrap_or(0);
        let fresh = !dir.join(".app-info").exists();
        if fresh {
            std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
            replica_files::write_app_info(dir, &info).map_err(|e| e.to_string())?;
            replica_files::write_init_info(dir, &InitInfo::default()).map_err(|e| e.to_string())?;
        }
        let init = match std::fs::read(dir.join(".init-info")) {
            Ok(b) => replica_files::parse_init_info(&b)?,
            Err(_) => InitInfo::default(),
        };
        let app = open_app(dir, &info, pidx, &cfg.server)?;
        let committed = app.db.last_committed_decree();
        if committed < init.init_durable_decree {
            return Err(format!(
                "data is older ({committed}) than the durable decree {} recorded in .init-info",
                init.init_durable_decree
            ));
        }
        let (mut log, replay) = MutationLog::open(
            dir,
            app_id,
            pidx,
            init.init_offset_in_private_log,
            committed,
        )
        .map_err(|e| format!("mutation log: {e:?}"))?;
        // Files of a learning copy cut short by a crash or restart.
        let _ = std::fs::remove_dir_all(dir.join("learn"));
        log.set_file_size_limit(cfg.log_file_size_bytes);
        log.set_reserve(cfg.log_reserve_max_bytes, cfg.log_reserve_max_secs);
        if replay.torn_tail {
            log::warn!("{app_id}.{pidx}: ignored a torn tail at the end of the mutation log");
        }
        let mut core = Core::new(
            app_id,
            pidx,
            cfg.me,
            init.init_ballot,
            committed,
            cfg.pacifica.clone(),
        );
        if fresh {
            core = core.created_empty();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (reads, mut read_rx) = mpsc::unbounded_channel::<ReadJob>();
        tokio::spawn(async move {
            while let Some(job) = read_rx.recv().await {
                // A read that panics loses its own reply (the client times out), never the
                // lane: the partition's later reads are still served.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    log::error!("a client read panicked; its request gets no reply");
                }
            }
        });
        let throttles = Throttles::from_info(&info);
        let r = Arc::new(Replica {
            dir: dir.to_path_buf(),
            app: RwLock::new(Some(Arc::new(app))),
            status: AtomicU8::new(STATUS_INACTIVE),
            ballot: AtomicI64::new(0),
            committed: AtomicI64::new(0),
            prepared: AtomicI64::new(0),
            readable: AtomicBool::new(false),
            deny: AtomicU8::new(deny_bits(&info)),
            throttled: AtomicBool::new(throttles.any()),
            throttles: std::sync::Mutex::new(throttles),
            tx,
            reads,
            info: RwLock::new(info),
            metrics: super::metrics::register_replica(app_id, pidx),
            plog_gc: AtomicBool::new(true),
            dup_gc_floor: std::sync::atomic::AtomicI64::new(i64::MAX),
            dup_primary_confirmed: std::sync::atomic::AtomicI64::new(-1),
        });
        let mut owner = Owner {
            r: r.clone(),
            log,
            init,
            cfg,
            transport,
            client_waiters: HashMap::new(),
            prepare_waiters: HashMap::new(),
            learn_waiters: HashMap::new(),
            counted_learn: None,
            group_check_waiters: HashMap::new(),
            next_token: 1,
            last_flush_ms: now_ms(),
            copying: Vec::new(),
            copy_seq: 0,
            copy_round: None,
        };
        let mut out = Vec::new();
        let replayed = replay.mutations.len();
        for m in replay.mutations {
            core.replay(m, &mut out);
        }
        owner.perform(&mut core, out);
        log::info!(
            "{app_id}.{pidx}: opened at ballot {}, committed {}, {replayed} mutations replayed, {} prepared",
            core.ballot(),
            core.last_committed,
            core.max_prepared() - core.last_committed
        );
        r.publish_progress(&core);
        tokio::spawn(owner.run(core, rx));
        Ok(r)
    }

    pub fn app(&self) -> Option<Arc<PartitionApp>> {
        match self.app.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn app_info(&self) -> AppInfo {
        self.info.read().map(|i| i.clone()).unwrap_or_default()
    }

    /// Serving client reads and writes as primary.
    pub fn is_primary(&self) -> bool {
        self.status.load(Ordering::SeqCst) == STATUS_PRIMARY
    }

    /// Serving client reads as primary (see `Core::is_readable`).
    pub fn is_readable(&self) -> bool {
        self.readable.load(Ordering::SeqCst)
    }

    fn publish_progress(&self, core: &Core) {
        self.ballot.store(core.ballot(), Ordering::SeqCst);
        self.committed.store(core.last_committed, Ordering::SeqCst);
        let prepared = core.max_prepared().max(core.last_committed);
        self.prepared.store(prepared, Ordering::SeqCst);
        self.metrics
            .prepared_uncommitted_mutations
            .set(prepared - core.last_committed);
    }

    /// (ballot, last committed decree, last prepared decree) as of the last round.
    pub fn progress(&self) -> (i64, i64, i64) {
        (
            self.ballot.load(Ordering::SeqCst),
            self.committed.load(Ordering::SeqCst),
            self.prepared.load(Ordering::SeqCst),
        )
    }

    /// Counts a client write against the write throttling envs (QPS, then size).
    pub fn throttle_write(&self, body_len: usize, client_timeout_ms: i32) -> Throttle {
        if !self.throttled.load(Ordering::Relaxed) {
            return Throttle::Pass;
        }
        let Ok(mut t) = self.throttles.lock() else {
            return Throttle::Pass;
        };
        let now = now_s();
        let timeout = i64::from(client_timeout_ms);
        match t.write_qps.control(now, 1, timeout) {
            Throttle::Pass => t.write_size.control(now, body_len as u64, timeout),
            other => other,
        }
    }

    /// Counts a client read against the read (or backup-request) throttling env.
    pub fn throttle_read(&self, backup: bool, client_timeout_ms: i32) -> Throttle {
        if !self.throttled.load(Ordering::Relaxed) {
            return Throttle::Pass;
        }
        let Ok(mut t) = self.throttles.lock() else {
            return Throttle::Pass;
        };
        if !t.read_size.allow(value_schema::now_us()) {
            return Throttle::Reject(0);
        }
        let c = if backup {
            &mut t.backup
        } else {
            &mut t.read_qps
        };
        c.control(now_s(), 1, i64::from(client_timeout_ms))
    }

    /// A served read: its reply's bytes are taken from the read-size bucket.
    pub fn read_served(&self, bytes: usize) {
        if !self.throttled.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut t) = self.throttles.lock() {
            t.read_size.consume(value_schema::now_us(), bytes as u64);
        }
    }

    /// The client requests the table envs deny here (DENY_* bits; 0 when none).
    pub fn deny(&self) -> u8 {
        self.deny.load(Ordering::Relaxed)
    }

    pub fn status_code(&self) -> u8 {
        self.status.load(Ordering::SeqCst)
    }

    /// Its log or storage failed; it serves nothing until reopened from disk.
    pub fn is_error(&self) -> bool {
        self.status.load(Ordering::SeqCst) == STATUS_ERROR
    }

    pub fn is_secondary(&self) -> bool {
        self.status.load(Ordering::SeqCst) == STATUS_SECONDARY
    }

    pub fn send(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// Queues a client read on the partition's read lane.
    pub fn read(&self, job: ReadJob) {
        let _ = self.reads.send(job);
    }

    /// Submits a client write; `reply` gets its outcome once committed (or refused). Writes
    /// submitted one after another join the write queue in that order.
    pub fn write(
        &self,
        update: MutationUpdate,
        request: WriteRequest,
        allow_batch: bool,
        reply: ClientReply,
    ) {
        if let Err(mpsc::error::SendError(Input::ClientWrite { reply, .. })) =
            self.tx.send(Input::ClientWrite {
                update,
                request,
                allow_batch,
                reply,
            })
        {
            reply(Err("ERR_INVALID_STATE"));
        }
    }
}

/// Where a client write's outcome goes (called exactly once).
pub type ClientReply = Box<dyn FnOnce(Result<WriteResponse, &'static str>) + Send>;

/// The owner task's state besides the machine.
struct Owner {
    r: Arc<Replica>,
    log: MutationLog,
    init: InitInfo,
    cfg: ReplicaConfig,
    transport: Arc<dyn Transport>,
    /// Client writes waiting for their commit: the reply, the decoded request (applied as
    /// is, not decoded again) and when it arrived (ms).
    client_waiters: HashMap<u64, (ClientReply, WriteRequest, i64)>,
    /// Prepares to answer, with when they arrived (ms).
    prepare_waiters: HashMap<u64, (PrepareReply, i64)>,
    /// Learn requests being answered: the waiter and the learner's first wanted decree.
    learn_waiters: HashMap<u64, (oneshot::Sender<LearnAnswer>, i64)>,
    /// The learning round last counted in `learn_count`.
    counted_learn: Option<i64>,
    group_check_waiters: HashMap<u64, oneshot::Sender<GroupCheckOutcome>>,
    next_token: u64,
    last_flush_ms: i64,
    /// The learner's copies not yet reported back: their directory and tasks.
    copying: Vec<(PathBuf, Vec<tokio::task::AbortHandle>)>,
    copy_seq: u64,
    /// The learning round whose copy is under way: more answers for it (to repeated learn
    /// requests) are dropped, so a long copy is not restarted.
    copy_round: Option<i64>,
}

/// How long a checkpoint made for a learner is kept (upstream's default
/// `checkpoint_reserve_time_seconds`), so a slow copy of it is not cut short.
const CHECKPOINT_RESERVE: std::time::Duration = std::time::Duration::from_secs(1800);

/// Hot-path inputs handled together before their actions are performed.
const MAX_INPUTS_PER_ROUND: usize = 256;

/// Inputs whose actions may wait until the inputs queued after them are handled: they only
/// feed the machine (client writes, prepares, acks).
fn is_hot(i: &Input) -> bool {
    matches!(
        i,
        Input::ClientWrite { .. } | Input::Prepare { .. } | Input::PrepareAck { .. }
    )
}

/// Far longer than any client's write timeout.
const CLIENT_WAITER_TTL_MS: i64 = 60_000;

/// Longer than any prepare timeout of a primary (3 s for secondaries, 5 s for learners).
const PREPARE_WAITER_TTL_MS: i64 = 15_000;

fn now_ms() -> i64 {
    (value_schema::now_us() / 1000) as i64
}

impl Owner {
    fn gpid(&self, core: &Core) -> (i32, i32) {
        (core.app_id, core.pidx)
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    async fn run(mut self, mut core: Core, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut carry: Option<Input> = None;
        loop {
            let input = match carry.take() {
                Some(i) => i,
                None => tokio::select! {
                    i = rx.recv() => match i { Some(i) => i, None => break },
                    _ = tick.tick() => Input::Tick,
                },
            };
            let input = match input {
                Input::Close(done) => {
                    self.close(&core);
                    let _ = done.send(());
                    break;
                }
                i => i,
            };
            let mut out = Vec::new();
            let hot = is_hot(&input);
            if hot {
                core.hold_queue();
            }
            self.handle(&mut core, input, &mut out).await;
            // Client writes, prepares and acks already queued are taken together, so what
            // they cause is performed at once: one plog write for all their appends.
            if hot {
                for _ in 0..MAX_INPUTS_PER_ROUND {
                    match rx.try_recv() {
                        Ok(next) if is_hot(&next) => {
                            self.handle(&mut core, next, &mut out).await;
                        }
                        Ok(next) => {
                            carry = Some(next);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                core.release_queue(&mut out);
            }
            self.perform(&mut core, out);
            let code = match core.status {
                Status::Primary if core.is_serving_writes() => STATUS_PRIMARY,
                Status::Secondary => STATUS_SECONDARY,
                Status::PotentialSecondary => STATUS_LEARNER,
                Status::Error => STATUS_ERROR,
                _ => STATUS_INACTIVE,
            };
            self.r.status.store(code, Ordering::SeqCst);
            self.r.readable.store(core.is_readable(), Ordering::SeqCst);
            self.r.publish_progress(&core);
        }
    }

    async fn handle(&mut self, core: &mut Core, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::ClientWrite {
                update,
                request,
                allow_batch,
                reply,
            } => {
                let t = self.token();
                self.client_waiters.insert(t, (reply, request, now_ms()));
                core.on_client_write(t, update, allow_batch, value_schema::now_us() as i64, out);
            }
            Input::Prepare {
                from,
                receiver_status,
                signature,
                mutation,
                reply,
            } => {
                let t = self.token();
                self.prepare_waiters.insert(t, (reply, now_ms()));
                core.on_prepare(from, receiver_status, signature, mutation, t, out);
            }
            Input::PrepareAck {
                from,
                ballot,
                decree,
                error,
            } => core.on_prepare_ack(from, ballot, decree, error, out),
            Input::Config(m, info) => {
                self.update_info(&info);
                core.on_config(m, out);
            }
            Input::Proposal {
                kind,
                node,
                config,
                info,
            } => {
                self.update_info(&info);
                core.on_meta_proposal(kind, node, config, out);
            }
            Input::ProposalReply { accepted, config } => {
                core.on_proposal_reply(accepted, config, out)
            }
            Input::ProposalFailed => core.on_proposal_failed(),
            Input::AddLearner {
                from,
                ballot,
                signature,
            } => core.on_add_learner(from, ballot, signature, out),
            Input::LearnRequest {
                learner,
                signature,
                committed,
                reply,
            } => {
                let t = self.token();
                self.learn_waiters
                    .insert(t, (reply, committed.saturating_add(1)));
                core.on_learn_request(learner, signature, committed, t, out);
            }
            Input::LearnReply { signature, .. }
                if self.copy_round == Some(signature) && !self.copying.is_empty() =>
            {
                log::debug!(
                    "{}.{}: a learn answer while copying for the same round; dropped",
                    core.app_id,
                    core.pidx
                );
            }
            Input::LearnReply { signature, answer } => match answer {
                LearnAnswer::Error(e) => core.on_learn_reply(signature, Err(e), out),
                LearnAnswer::Cache {
                    mutations,
                    prepare_start,
                    ..
                } => core.on_learn_reply(
                    signature,
                    Ok(LearnPlan::Cache {
                        mutations,
                        prepare_start,
                    }),
                    out,
                ),
                LearnAnswer::Log {
                    learnee,
                    dir,
                    files,
                    to_decree,
                } => self.copy_log_files(core, signature, learnee, dir, files, to_decree),
                LearnAnswer::App {
                    learnee,
                    dir,
                    files,
                    decree,
                } => {
                    core.on_learn_reply(signature, Ok(LearnPlan::App), out);
                    if out.iter().any(|a| matches!(a, Action::ResetForLearning)) {
                        out.retain(|a| !matches!(a, Action::ResetForLearning));
                        self.copy_checkpoint(core, signature, learnee, dir, files, decree);
                    }
                }
            },
            Input::LearnedLog {
                signature,
                dir,
                learnee,
                files,
                to_decree,
                result,
            } => {
                self.copy_done(&dir);
                if self.copy_round == Some(signature) {
                    self.copy_round = None;
                }
                if core.learning_signature() != Some(signature) {
                    log::info!(
                        "{}.{}: dropping log files learned for an ended round",
                        core.app_id,
                        core.pidx
                    );
                    return;
                }
                match result {
                    Ok(mutations) => {
                        log::info!(
                            "{}.{}: learned {files} log file(s) from {} ({} mutations, up to \
                             decree {to_decree})",
                            core.app_id,
                            core.pidx,
                            crate::idl::dsn::RpcAddress(learnee),
                            mutations.len()
                        );
                        core.on_learn_reply(
                            signature,
                            Ok(LearnPlan::Log {
                                mutations,
                                to_decree,
                            }),
                            out,
                        )
                    }
                    Err(e) => {
                        log::warn!(
                            "{}.{}: learning log files failed: {e}",
                            core.app_id,
                            core.pidx
                        );
                        self.r.metrics.learn_failed_count.inc();
                        core.on_learn_failed();
                    }
                }
            }
            Input::LearnedCheckpoint {
                signature,
                learnee,
                decree,
                dir,
                result,
            } => {
                if self.copy_round == Some(signature) {
                    self.copy_round = None;
                }
                if core.learning_signature() != Some(signature) {
                    self.copy_done(&dir);
                    log::info!(
                        "{}.{}: dropping a checkpoint learned for an ended round",
                        core.app_id,
                        core.pidx
                    );
                    return;
                }
                let installed = match result {
                    Ok(()) => {
                        self.r
                            .metrics
                            .learn_copy_file_bytes
                            .add(crate::metrics::tree_bytes(&dir));
                        self.install_checkpoint(core, &dir, decree).await
                    }
                    Err(e) => Err(e),
                };
                self.copy_done(&dir);
                match installed {
                    Ok(()) => {
                        log::info!(
                            "{}.{}: learned checkpoint at decree {decree} from {}",
                            core.app_id,
                            core.pidx,
                            crate::idl::dsn::RpcAddress(learnee)
                        );
                        core.on_checkpoint_installed(decree, out)
                    }
                    Err(e) => {
                        log::warn!(
                            "{}.{}: learning a checkpoint failed: {e}",
                            core.app_id,
                            core.pidx
                        );
                        self.r.metrics.learn_failed_count.inc();
                        core.on_learn_failed();
                    }
                }
            }
            Input::LearnCompletion {
                learner,
                signature,
                reply,
            } => {
                let ok = core.on_learn_completion(learner, signature, out);
                let _ = reply.send(ok);
            }
            Input::Remove { ballot } => core.on_remove(ballot, out),
            Input::GroupCheck {
                from,
                ballot,
                receiver_status,
                signature,
                committed,
                confirmed,
                reply,
            } => {
                let t = self.token();
                self.group_check_waiters.insert(t, reply);
                core.on_group_check(from, ballot, receiver_status, signature, committed, t, out);
                if let (Some(c), Status::Secondary) = (confirmed, core.status) {
                    // One update: the duplication sync may reset it meanwhile.
                    let _ = self.r.dup_primary_confirmed.fetch_update(
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                        |cur| Some(super::stub::dup::learn_confirmed(cur, c)),
                    );
                }
            }
            Input::GroupCheckReply {
                from,
                ok,
                learner_succeeded,
                signature,
            } => core.on_group_check_reply(from, ok, learner_succeeded, signature, out),
            Input::NotMember => core.on_not_member(),
            Input::MetaDisconnected => core.on_meta_disconnected(),
            Input::Tick => {
                let now = now_ms();
                core.set_empty_write_disabled(
                    super::stub::EMPTY_WRITE_DISABLED.load(Ordering::Relaxed),
                );
                core.on_tick(now, out);
                // A prepare the machine will never answer (stale ballot, superseded by a
                // newer copy, dropped on a role change) is released once its sender has
                // surely given up, so neither the waiter nor the RPC task leaks.
                self.prepare_waiters
                    .retain(|_, (_, since)| now - *since < PREPARE_WAITER_TTL_MS);
                // Likewise a client write this replica will never answer (it lost the primary
                // role before the commit): the client gave up long ago; its outcome is unknown,
                // as after any timeout.
                let expired: Vec<u64> = self
                    .client_waiters
                    .iter()
                    .filter(|(_, (_, _, since))| now - *since >= CLIENT_WAITER_TTL_MS)
                    .map(|(t, _)| *t)
                    .collect();
                for t in expired {
                    if let Some((w, ..)) = self.client_waiters.remove(&t) {
                        w(Err("ERR_TIMEOUT"));
                    }
                }
                if now - self.last_flush_ms >= self.cfg.flush_interval_ms {
                    self.last_flush_ms = now;
                    self.flush_if_behind(core);
                }
                self.gc_log(core);
            }
            Input::Flush(done) => {
                if let Some(Err(e)) = self.r.app().map(|a| a.db.flush()) {
                    log::warn!("{}: flush failed: {e}", self.r.dir.display());
                }
                let _ = done.send(());
            }
            // Taken by the run loop before it gets here.
            Input::Close(done) => {
                self.close(core);
                let _ = done.send(());
            }
        }
    }

    /// Releases the database and forgets every waiter (their requests go unanswered and
    /// time out, as upstream's closed replica leaves them).
    fn close(&mut self, core: &Core) {
        log::info!("{}.{}: closing the replica", core.app_id, core.pidx);
        if let Ok(mut guard) = self.r.app.write() {
            *guard = None;
        }
        self.client_waiters.clear();
        self.prepare_waiters.clear();
        self.learn_waiters.clear();
        self.group_check_waiters.clear();
    }

    /// Flushes the database when it holds committed data not yet on disk.
    fn flush_if_behind(&self, core: &Core) {
        let Some(app) = self.r.app() else { return };
        match app.db.last_flushed_decree() {
            Ok(flushed) if flushed < core.last_committed => {
                if let Err(e) = app.db.flush() {
                    log::warn!("{}.{}: periodic flush failed: {e}", core.app_id, core.pidx);
                }
            }
            _ => {}
        }
    }

    fn update_info(&self, info: &AppInfo) {
        let changed = {
            let Ok(mut cur) = self.r.info.write() else {
                return;
            };
            let changed = cur.app_name != info.app_name
                || cur.partition_count != info.partition_count
                || cur.max_replica_count != info.max_replica_count;
            *cur = info.clone();
            changed
        };
        self.r.deny.store(deny_bits(info), Ordering::Relaxed);
        if let Ok(mut t) = self.r.throttles.lock() {
            t.update(info);
            self.r.throttled.store(t.any(), Ordering::Relaxed);
        }
        if let Some(app) = self.r.app() {
            apply_envs(&app, info);
            start_manual_compact_if_due(&app, info);
        }
        if changed {
            if let Err(e) = replica_files::write_app_info(&self.r.dir, info) {
                log::error!("{}: cannot rewrite .app-info: {e}", self.r.dir.display());
            }
        }
    }

    /// The decree up to which duplication lets the private log go (i64::MAX: all of it).
    fn dup_floor(&self, core: &Core) -> i64 {
        super::stub::dup::plog_floor(
            core.status == Status::Primary,
            self.r.dup_gc_floor.load(Ordering::SeqCst),
            self.r.dup_primary_confirmed.load(Ordering::SeqCst),
        )
    }

    /// Deletes log files that only hold decrees already flushed into the database.
    fn gc_log(&mut self, core: &Core) {
        if !self.r.plog_gc.load(Ordering::Relaxed) {
            return;
        }
        let Some(app) = self.r.app() else { return };
        if let Ok(flushed) = app.db.last_flushed_decree() {
            let floor = self.dup_floor(core);
            let _ = self.log.gc(flushed.min(core.last_committed).min(floor));
        }
    }

    /// Learner: a fresh directory for one copy, `learn/<n>`; copies still running for an
    /// earlier round are aborted first (a directory of their own keeps any late write of
    /// theirs out of the new copy).
    fn new_copy_dir(&mut self) -> Result<PathBuf, String> {
        // Copies still running are abandoned; finished ones have a report on its way, which
        // removes their directory when it is handled.
        self.copying.retain(|(dir, tasks)| {
            if tasks.iter().all(|t| t.is_finished()) {
                return true;
            }
            for t in tasks {
                t.abort();
            }
            let _ = std::fs::remove_dir_all(dir);
            false
        });
        self.copy_seq += 1;
        let dir = self.r.dir.join("learn").join(self.copy_seq.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// A copy reported back: forget it and remove its directory.
    fn copy_done(&mut self, dir: &Path) {
        self.copying.retain(|(d, _)| d != dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Learner: starts copying `files` of `dir` on `learnee` into a fresh directory for the
    /// round `signature`; None (the round failed) when there is no directory for it.
    fn begin_copy(
        &mut self,
        core: &mut Core,
        signature: i64,
        learnee: Node,
        dir: String,
        files: Vec<String>,
    ) -> Option<(PathBuf, tokio::task::JoinHandle<Result<(), String>>)> {
        let dst = match self.new_copy_dir() {
            Ok(d) => d,
            Err(e) => {
                log::warn!("{}.{}: cannot learn: {e}", core.app_id, core.pidx);
                self.r.metrics.learn_failed_count.inc();
                core.on_learn_failed();
                return None;
            }
        };
        let copy = self
            .transport
            .copy_checkpoint(learnee, dir, files, dst.clone());
        self.copy_round = Some(signature);
        Some((dst, copy))
    }

    /// Learner (LT_LOG): copies the primary's log files and replays them in the background;
    /// the owner gets `Input::LearnedLog`, so it keeps answering group checks meanwhile.
    fn copy_log_files(
        &mut self,
        core: &mut Core,
        signature: i64,
        learnee: Node,
        dir: String,
        files: Vec<String>,
        to_decree: i64,
    ) {
        let count = files.len();
        let names = files.clone();
        let Some((dst, copy)) = self.begin_copy(core, signature, learnee, dir, files) else {
            return;
        };
        let paths: Vec<PathBuf> = names.iter().map(|f| dst.join(f)).collect();
        let copy_task = copy.abort_handle();
        let r = self.r.clone();
        let task_dir = dst.clone();
        let task = tokio::spawn(async move {
            let copied = copy.await.unwrap_or_else(|e| Err(e.to_string()));
            let result = match copied {
                Ok(()) => tokio::task::spawn_blocking(move || {
                    MutationLog::replay_files(&paths)
                        .map(|r| r.mutations)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
                Err(e) => Err(e),
            };
            r.send(Input::LearnedLog {
                signature,
                dir: task_dir,
                learnee,
                files: count,
                to_decree,
                result,
            });
        });
        self.copying
            .push((dst, vec![copy_task, task.abort_handle()]));
    }

    /// Learner (LT_APP): copies the primary's checkpoint in the background; the owner gets
    /// `Input::LearnedCheckpoint` and then swaps it in.
    fn copy_checkpoint(
        &mut self,
        core: &mut Core,
        signature: i64,
        learnee: Node,
        dir: String,
        files: Vec<String>,
        decree: i64,
    ) {
        let Some((dst, copy)) = self.begin_copy(core, signature, learnee, dir, files) else {
            return;
        };
        let copy_task = copy.abort_handle();
        let r = self.r.clone();
        let task_dir = dst.clone();
        let task = tokio::spawn(async move {
            let result = copy.await.unwrap_or_else(|e| Err(e.to_string()));
            r.send(Input::LearnedCheckpoint {
                signature,
                learnee,
                decree,
                dir: task_dir,
                result,
            });
        });
        self.copying
            .push((dst, vec![copy_task, task.abort_handle()]));
    }

    /// Learner: swap the copied checkpoint in `learn_dir` in as the database and restart the
    /// log after it.
    async fn install_checkpoint(
        &mut self,
        core: &Core,
        learn_dir: &Path,
        decree: i64,
    ) -> Result<(), String> {
        let info = self.r.app_info();
        // Close the database: take it out and wait until short-lived readers let go.
        let old = self
            .r
            .app
            .write()
            .map_err(|_| "poisoned lock".to_string())?
            .take();
        if let Some(mut old) = old {
            let mut waited = 0;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(app) => {
                        drop(app);
                        break;
                    }
                    Err(still) if waited < 100 => {
                        old = still;
                        waited += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(_) => return Err("the database is still in use".into()),
                }
            }
        }
        let installed =
            crate::storage::engine::install_checkpoint(&self.r.dir.join("data"), learn_dir)
                .map_err(|e| e.to_string());
        // Reopen whatever is in data/rdb now: the learned checkpoint, or the old data.
        let app = open_app(&self.r.dir, &info, core.pidx, &self.cfg.server)?;
        if let Err(e) = installed {
            if let Ok(mut guard) = self.r.app.write() {
                *guard = Some(Arc::new(app));
            }
            return Err(e);
        }
        if app.db.last_committed_decree() != decree {
            log::warn!(
                "{}.{}: learned checkpoint is at {} (expected {decree})",
                core.app_id,
                core.pidx,
                app.db.last_committed_decree()
            );
        }
        if let Ok(mut guard) = self.r.app.write() {
            *guard = Some(Arc::new(app));
        }
        let offset = self.log.reset(decree).map_err(|e| format!("{e:?}"))?;
        self.init.init_offset_in_private_log = offset;
        self.init.init_durable_decree = decree;
        self.init.init_ballot = core.ballot();
        replica_files::write_init_info(&self.r.dir, &self.init).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn perform(&mut self, core: &mut Core, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let gpid = self.gpid(core);
        while let Some(a) = queue.pop_front() {
            match a {
                Action::AppendLog(m) => {
                    // One write for every mutation proposed together: later appends are
                    // taken along across the prepares sent between them.
                    let mut batch = vec![m];
                    while let Some(next) = queue.front() {
                        match next {
                            Action::AppendLog(_) => {
                                if let Some(Action::AppendLog(m)) = queue.pop_front() {
                                    batch.push(m);
                                }
                            }
                            Action::SendPrepare { .. } => {
                                if let Some(a) = queue.pop_front() {
                                    self.send_prepare(gpid, a);
                                }
                            }
                            _ => break,
                        }
                    }
                    match self.log.append_batch(&mut batch, false) {
                        Ok(()) => {
                            let mut more = Vec::new();
                            for m in &batch {
                                core.on_log_appended(m.decree, m.ballot, &mut more);
                            }
                            queue.extend(more);
                        }
                        Err(e) => {
                            log::error!(
                                "{}.{}: mutation log append failed: {e:?}; the replica goes to error",
                                gpid.0,
                                gpid.1
                            );
                            // Nothing after a failed append may take effect (later appends
                            // would leave a hole, applies would outrun the log); what the
                            // failure itself asks for (the report to the meta, refusals)
                            // goes out instead.
                            queue.clear();
                            let mut failed = Vec::new();
                            core.on_local_failure(&mut failed);
                            queue.extend(failed);
                        }
                    }
                }
                Action::Apply { mutation, tokens } => {
                    let waiters: Vec<Option<(ClientReply, WriteRequest, i64)>> = tokens
                        .iter()
                        .map(|t| self.client_waiters.remove(t))
                        .collect();
                    let decoded: Option<Vec<&WriteRequest>> = waiters
                        .iter()
                        .map(|w| w.as_ref().map(|(_, r, _)| r))
                        .collect();
                    let resps = self.apply(&mutation, decoded);
                    let storage_failed = resps.iter().flatten().any(|r| r.is_storage_failure());
                    let mut resps = resps.into_iter();
                    for w in waiters {
                        let resp = resps.next().flatten();
                        if let Some((w, ..)) = w {
                            w(resp.ok_or("ERR_INVALID_DATA"));
                        }
                    }
                    if storage_failed {
                        log::error!(
                            "{}.{}: storage failed applying decree {}; the replica goes to error",
                            gpid.0,
                            gpid.1,
                            mutation.decree
                        );
                        // Later applies would skip this decree. Their writes are committed
                        // on the members, so their clients get no answer here (they time
                        // out and read back, as with upstream).
                        queue.retain(|a| !matches!(a, Action::Apply { .. }));
                        let mut failed = Vec::new();
                        core.on_local_failure(&mut failed);
                        queue.extend(failed);
                    }
                }
                Action::RejectClient { token, error } => {
                    if let Some((w, ..)) = self.client_waiters.remove(&token) {
                        w(Err(error));
                    }
                }
                a @ Action::SendPrepare { .. } => self.send_prepare(gpid, a),
                Action::ReplyPrepare {
                    token,
                    error,
                    decree,
                } => {
                    if let Some((w, _)) = self.prepare_waiters.remove(&token) {
                        w((error, core.ballot(), decree, core.last_committed));
                    }
                }
                Action::ProposeToMeta { kind, node, new } => self.transport.propose(
                    gpid,
                    self.r.app_info(),
                    kind,
                    node,
                    new,
                    core.last_committed,
                ),
                Action::SendAddLearner {
                    to,
                    ballot,
                    signature,
                } => self.transport.add_learner(
                    gpid,
                    self.r.app_info(),
                    to,
                    ballot,
                    signature,
                    core.last_committed,
                ),
                Action::SendLearn { signature, .. }
                    if self.copy_round == Some(signature) && !self.copying.is_empty() =>
                {
                    // Asked again (a repeated add-learner) while copying what the last answer
                    // named: the copy goes on; a new request would only make the primary
                    // prepare the same state again.
                }
                Action::SendLearn {
                    to,
                    signature,
                    committed,
                } => {
                    if self.counted_learn != Some(signature) {
                        self.counted_learn = Some(signature);
                        self.r.metrics.learn_count.inc();
                    }
                    self.transport.learn(gpid, to, signature, committed)
                }
                Action::ReplyLearn {
                    token,
                    learner: _,
                    signature: _,
                    plan,
                } => {
                    let start = self
                        .learn_waiters
                        .get(&token)
                        .map(|(_, start)| *start)
                        .unwrap_or(0);
                    let answer = match plan {
                        Err(e) => LearnAnswer::Error(e),
                        Ok(LearnPlan::Cache {
                            mutations,
                            prepare_start,
                        }) => LearnAnswer::Cache {
                            mutations,
                            prepare_start,
                            committed: core.last_committed,
                        },
                        Ok(LearnPlan::App) => self.durable_answer(core, start),
                        // only a learner's plan
                        Ok(LearnPlan::Log { .. }) => LearnAnswer::Error("ERR_INVALID_STATE"),
                    };
                    if let Some((w, _)) = self.learn_waiters.remove(&token) {
                        let _ = w.send(answer);
                    }
                }
                Action::SendLearnCompletion {
                    to,
                    signature,
                    committed,
                } => {
                    self.r.metrics.learn_successful_count.inc();
                    self.transport
                        .learn_completion(gpid, to, signature, committed)
                }
                Action::SendRemoveReplica { to, ballot } => {
                    self.transport.remove_replica(gpid, to, ballot)
                }
                Action::PersistBallot(b) => {
                    self.init.init_ballot = b;
                    if let Some(Ok(d)) = self.r.app().map(|a| a.db.last_flushed_decree()) {
                        self.init.init_durable_decree = self
                            .init
                            .init_durable_decree
                            .max(d.min(core.last_committed));
                    }
                    if let Err(e) = replica_files::write_init_info(&self.r.dir, &self.init) {
                        log::error!("{}.{}: cannot write .init-info: {e}", gpid.0, gpid.1);
                    }
                }
                Action::SendGroupCheck {
                    to,
                    ballot,
                    receiver_status,
                    signature,
                    committed,
                } => self.transport.group_check(
                    gpid,
                    self.r.app_info(),
                    to,
                    ballot,
                    receiver_status,
                    signature,
                    committed,
                    super::stub::dup::confirmed_to_send(self.dup_floor(core)),
                ),
                Action::ReplyGroupCheck {
                    token,
                    ok,
                    committed,
                    learner_succeeded,
                    signature,
                } => {
                    if let Some(w) = self.group_check_waiters.remove(&token) {
                        let _ = w.send((ok, committed, learner_succeeded, signature));
                    }
                }
                Action::ResetForLearning => {}
            }
        }
    }

    /// Performs an `Action::SendPrepare` (any other action is ignored).
    fn send_prepare(&self, gpid: (i32, i32), a: Action) {
        if let Action::SendPrepare {
            to,
            ballot,
            receiver_status,
            signature,
            mutation,
        } = a
        {
            self.transport
                .send_prepare(gpid, to, ballot, receiver_status, signature, mutation);
        }
    }

    /// Primary: a learner the cache cannot serve gets the log files holding every decree from
    /// `start` (LT_LOG) when they exist, else a checkpoint (LT_APP).
    fn durable_answer(&mut self, core: &Core, start: i64) -> LearnAnswer {
        let durable = match self.r.app().map(|a| a.db.last_flushed_decree()) {
            Some(Ok(d)) => d,
            _ => return self.checkpoint_answer(core),
        };
        let (files, covers) = self.log.learn_files(start);
        if !pacifica::learn_from_log(start, durable, covers, !files.is_empty()) {
            return self.checkpoint_answer(core);
        }
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect();
        if names.len() != files.len() {
            return self.checkpoint_answer(core);
        }
        // New writes go to a new file, so a learner that comes back does not copy the same
        // growing file again (as upstream hints).
        self.log.hint_switch_file();
        log::info!(
            "{}.{}: learner starts at {start} (durable {durable}): learns {} log file(s)",
            core.app_id,
            core.pidx,
            names.len()
        );
        LearnAnswer::Log {
            learnee: core.me,
            dir: self.log.dir().to_string_lossy().to_string(),
            files: names,
            to_decree: core.last_committed,
        }
    }

    /// Primary: a checkpoint for a learner (LT_APP).
    fn checkpoint_answer(&self, core: &Core) -> LearnAnswer {
        let Some(app) = self.r.app() else {
            return LearnAnswer::Error("ERR_GET_LEARN_STATE_FAILED");
        };
        let data_dir = self.r.dir.join("data");
        match app.db.checkpoint(&data_dir) {
            Ok((decree, dir)) => {
                let st = &app.db.settings;
                let keep = match st.checkpoint_reserve_min_count.load(Ordering::Relaxed) {
                    0 => 2,
                    n => n as usize,
                };
                let reserve = match st.checkpoint_reserve_time_seconds.load(Ordering::Relaxed) {
                    0 => CHECKPOINT_RESERVE,
                    n => std::time::Duration::from_secs(u64::from(n)),
                };
                let _ = PegasusDb::gc_checkpoints(&data_dir, keep, reserve);
                match PegasusDb::list_files_recursive(&dir) {
                    Ok(files) => LearnAnswer::App {
                        learnee: core.me,
                        dir: dir.to_string_lossy().to_string(),
                        files,
                        decree,
                    },
                    Err(_) => LearnAnswer::Error("ERR_GET_LEARN_STATE_FAILED"),
                }
            }
            Err(e) => {
                log::warn!(
                    "{}.{}: checkpoint for learner failed: {e}",
                    core.app_id,
                    core.pidx
                );
                LearnAnswer::Error("ERR_GET_LEARN_STATE_FAILED")
            }
        }
    }

    /// Applies one committed mutation to storage; returns the response of each of its
    /// updates (None where an update could not be decoded). `decoded`: the requests as the
    /// primary decoded them on arrival, one per update.
    fn apply(
        &self,
        m: &Mutation,
        decoded: Option<Vec<&WriteRequest>>,
    ) -> Vec<Option<WriteResponse>> {
        let Some(app) = self.r.app() else {
            log::error!(
                "{}: no database to apply decree {} to",
                self.r.dir.display(),
                m.decree
            );
            return Vec::new();
        };
        let ts = m.timestamp.max(0) as u64;
        let started = std::time::Instant::now();
        if super::stub::VERBOSE_COMMIT_LOG.load(Ordering::Relaxed) {
            log::info!(
                "{}.{}: commit mutation {} ({} updates)",
                app.app_id(),
                app.partition_index(),
                m.decree,
                m.updates.len()
            );
        }
        if let Some(reqs) = decoded.filter(|r| !r.is_empty() && r.len() == m.updates.len()) {
            let out = app.apply_writes(m.decree, &reqs, ts);
            super::metrics::count_applied(&self.r.metrics, &reqs, started);
            return out.into_iter().map(Some).collect();
        }
        let reqs: Vec<Option<WriteRequest>> = m
            .updates
            .iter()
            .map(|u| {
                if u.code == WRITE_EMPTY {
                    return None;
                }
                let req = decode_update(u);
                if req.is_none() {
                    log::error!(
                        "{}.{}: undecodable {} at decree {}; skipped",
                        app.app_id(),
                        app.partition_index(),
                        u.code,
                        m.decree
                    );
                }
                req
            })
            .collect();
        let all: Option<Vec<&WriteRequest>> = reqs.iter().map(Option::as_ref).collect();
        if let Some(all) = all.filter(|a| !a.is_empty()) {
            let out = app.apply_writes(m.decree, &all, ts);
            super::metrics::count_applied(&self.r.metrics, &all, started);
            return out.into_iter().map(Some).collect();
        }
        // Empty writes, or updates that do not decode: apply what decodes one by one, and
        // keep the decree moving when nothing does.
        let mut out = Vec::with_capacity(reqs.len());
        let mut applied = false;
        for req in &reqs {
            out.push(req.as_ref().map(|r| app.apply_write(m.decree, r, ts)));
            applied |= req.is_some();
        }
        if !applied {
            if let Err(e) = app.db.apply(m.decree, &[], 0) {
                log::error!("empty write at {} failed: {e}", m.decree);
            }
        }
        out
    }
}

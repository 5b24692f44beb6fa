//! The replica server (upstream's `replica_stub`): hosts the replicas of this node, routes
//! client and replication RPCs to them, beacons the meta server, follows its configuration
//! through config sync and proposals, and carries the replicas' messages to their peers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use log::{error, info, warn};
use thrift::protocol::{TInputProtocol, TSerializable};

use crate::base::throttling::Throttle;
use crate::idl::consensus::{
    GroupCheckRequest, GroupCheckResponse, LearnNotifyResponse, LearnRequest, LearnResponse,
    LearnState, LearnType, LearnerStatus, PrepareAck,
};
use crate::idl::dsn::{Blob, ErrorCode, Gpid, HostPort, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, PartitionConfiguration};
use crate::idl::fd::{BeaconAck, BeaconMsg};
use crate::idl::meta_admin::{
    ConfigType, ConfigurationQueryByNodeRequest, ConfigurationQueryByNodeResponse,
    ConfigurationUpdateRequest, ConfigurationUpdateResponse,
};
use crate::idl::metadata::{PartitionStatus, ReplicaConfiguration, ReplicaInfo};
use crate::idl::nfs::{CopyRequest, GetFileSizeRequest};
use crate::idl::protocol;
use crate::idl::rrdb;
use crate::rpc::client::{decode_reply, RpcClient};
use crate::rpc::frame::{ReplyValue, Request};
use crate::rpc::host_port::book;
use crate::rpc::http::HttpRequest;
use crate::rpc::server::{arg, arg_i64, BoxFuture, Handler, HttpReply, Reply, ReplySink};
use crate::storage::app::WriteResponse;

use super::mutation::{self, Mutation, MutationUpdate};
use super::pacifica::{self, AckError, ConfigKind, Membership, Node, Status};
use super::partition::{self as replica, Input, LearnAnswer, Replica, ReplicaConfig, Transport};

/// Settings of a replica server, from `config.ini`.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The data directories: (tag, replicas' parent `<path>/replica/reps`).
    pub data_dirs: Vec<(String, PathBuf)>,
    /// `[replication] disk_min_available_space_ratio` (percent).
    pub disk_min_available_space_ratio: i64,
    pub self_addr: SocketAddr,
    pub meta_servers: Vec<SocketAddr>,
    pub beacon_interval: Duration,
    pub lease: Duration,
    pub config_sync_interval: Duration,
    pub max_allowed_write_size: usize,
    pub pacifica: pacifica::Options,
    pub nfs_copy_block_bytes: usize,
    pub nfs_max_copy_bytes_per_sec: u64,
    pub flush_interval: Duration,
    pub log_file_size_bytes: u64,
    pub log_reserve_max_bytes: u64,
    pub log_reserve_max_secs: u64,
}

/// The network side shared by the replicas: peer connections and the meta leader.
pub struct Net {
    me: RpcAddress,
    /// This server's host:port (upstream's primary host_port), sent next to `me`.
    me_hp: HostPort,
    metas: Vec<SocketAddr>,
    leader: AtomicUsize,
    peers: Mutex<HashMap<u64, Arc<RpcClient>>>,
    stub: Mutex<Weak<ReplicaStub>>,
    block_bytes: usize,
    copy_rate: u64,
}

fn struct_value<T: TSerializable>(v: &T) -> ReplyValue {
    ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(v),
    }
}

fn to_rpc_address(a: SocketAddr) -> RpcAddress {
    match a {
        SocketAddr::V4(v4) => RpcAddress::from_socket_addr(v4),
        SocketAddr::V6(_) => RpcAddress::INVALID,
    }
}

pub fn membership_of(pc: &PartitionConfiguration) -> Membership {
    book().learn_pc(pc);
    Membership {
        ballot: pc.ballot.unwrap_or(0),
        primary: pc.primary.map(|a| a.0).unwrap_or(0),
        secondaries: pc.secondaries.iter().flatten().map(|a| a.0).collect(),
        max_replica_count: pc.max_replica_count.unwrap_or(3),
    }
}

/// The configuration a replica proposes to the meta.
pub fn partition_config(
    gpid: (i32, i32),
    m: &Membership,
    last_committed: i64,
) -> PartitionConfiguration {
    PartitionConfiguration {
        pid: Some(Gpid::new(gpid.0, gpid.1)),
        ballot: Some(m.ballot),
        max_replica_count: Some(m.max_replica_count),
        primary: Some(RpcAddress(m.primary)),
        secondaries: Some(m.secondaries.iter().map(|n| RpcAddress(*n)).collect()),
        last_drops: Some(Vec::new()),
        last_committed_decree: Some(last_committed),
        partition_flags: Some(0),
        hp_primary: None,
        hp_secondaries: None,
        hp_last_drops: None,
    }
}

fn status_code(s: Status) -> PartitionStatus {
    match s {
        Status::Primary => PartitionStatus::PS_PRIMARY,
        Status::Secondary => PartitionStatus::PS_SECONDARY,
        Status::PotentialSecondary => PartitionStatus::PS_POTENTIAL_SECONDARY,
        Status::Error => PartitionStatus::PS_ERROR,
        Status::Inactive { .. } => PartitionStatus::PS_INACTIVE,
    }
}

impl Net {
    fn peer(&self, node: Node) -> Option<Arc<RpcClient>> {
        let addr = RpcAddress(node).to_socket_addr()?;
        let mut m = self.peers.lock().ok()?;
        Some(
            m.entry(node)
                .or_insert_with(|| Arc::new(RpcClient::new(SocketAddr::V4(addr), self.me.0)))
                .clone(),
        )
    }

    fn meta(&self) -> Option<Arc<RpcClient>> {
        let i = self.leader.load(Ordering::Relaxed) % self.metas.len().max(1);
        let a = *self.metas.get(i)?;
        self.peer(to_rpc_address(a).0)
    }

    fn replica(&self, gpid: (i32, i32)) -> Option<Arc<Replica>> {
        self.stub.lock().ok()?.upgrade()?.replica(gpid.0, gpid.1)
    }

    /// Sends `req` as `name` to `c` in the background and hands `answer(reply)` (None when
    /// the call failed) to the partition's owner.
    fn call_then<Req, Resp>(
        &self,
        c: Arc<RpcClient>,
        name: &'static str,
        gpid: (i32, i32),
        req: Req,
        timeout: Duration,
        answer: impl FnOnce(Option<Resp>) -> Input + Send + 'static,
    ) where
        Req: TSerializable + Send + Sync + 'static,
        Resp: TSerializable + Send + 'static,
    {
        let r = self.replica(gpid);
        tokio::spawn(async move {
            let resp: Option<Resp> = c.call_struct(name, gpid.0, gpid.1, &req, timeout).await;
            let input = answer(resp);
            if let Some(r) = r {
                r.send(input);
            }
        });
    }

    fn oneway<T: TSerializable + Send + 'static>(
        &self,
        to: Node,
        name: &'static str,
        gpid: (i32, i32),
        v: T,
    ) {
        let Some(c) = self.peer(to) else { return };
        tokio::spawn(async move {
            if let Err(e) = c.send_oneway(name, gpid.0, gpid.1, &struct_value(&v)).await {
                warn!("{name} to {} failed: {e}", RpcAddress(to));
            }
        });
    }
}

fn prepare_body(gpid: (i32, i32), cfg: &ReplicaConfiguration, m: &Mutation) -> Vec<u8> {
    let mut b = protocol::encode_wrapped(0, &Gpid::new(gpid.0, gpid.1));
    b.extend_from_slice(&protocol::encode_wrapped(0, cfg));
    m.encode(&mut b);
    b
}

/// Splits an RPC_PREPARE body: wrapped gpid, wrapped replica_configuration, raw mutation.
fn parse_prepare(body: &[u8]) -> Option<(Gpid, ReplicaConfiguration, Mutation)> {
    let mut p = protocol::SliceInputProtocol::new(body);
    let gpid = protocol::read_arg::<Gpid>(&mut p).ok()?;
    p.read_field_begin().ok()?;
    let cfg = protocol::read_arg::<ReplicaConfiguration>(&mut p).ok()?;
    p.read_field_begin().ok()?;
    let pos = p.position();
    let (m, _) = Mutation::decode(body.get(pos..)?).ok()?;
    Some((gpid, cfg, m))
}

impl Net {
    /// The group_check_request a primary sends to a member or learner (also the body of
    /// RPC_LEARN_ADD_LEARNER).
    #[allow(clippy::too_many_arguments)]
    fn group_check_request(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        to: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        committed: i64,
        confirmed: Option<i64>,
    ) -> GroupCheckRequest {
        GroupCheckRequest {
            app: Some(info),
            node: Some(RpcAddress(to)),
            config: Some(ReplicaConfiguration {
                pid: Some(Gpid::new(gpid.0, gpid.1)),
                ballot: Some(ballot),
                primary: Some(self.me),
                status: Some(status_code(receiver_status)),
                learner_signature: Some(signature),
                pop_all: None,
                split_sync_to_child: None,
                hp_primary: Some(self.me_hp.clone()),
            }),
            last_committed_decree: Some(committed),
            confirmed_decree: confirmed,
            child_gpid: None,
            meta_split_status: None,
            hp_node: Some(book().hp_of(RpcAddress(to))),
        }
    }
}

/// The lock held while one partition's replica is created.
type CreationLock = Arc<tokio::sync::Mutex<()>>;

/// One caller's hold on a partition's creation lock. When it goes (also when the creating
/// future is dropped midway), the lock leaves the map unless another caller holds or waits
/// for it, so the map keeps only partitions being created.
struct CreationSlot<'a> {
    map: &'a Mutex<HashMap<(i32, i32), CreationLock>>,
    key: (i32, i32),
    lock: CreationLock,
}

impl Drop for CreationSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            // Only the map's copy and this one: nobody else holds or waits for it, and a new
            // caller would have to take the map's mutex, held here, to get one.
            if Arc::strong_count(&self.lock) == 2 {
                m.remove(&self.key);
            }
        }
    }
}

impl Transport for Net {
    fn send_prepare(
        &self,
        gpid: (i32, i32),
        to: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        m: Mutation,
    ) {
        let Some(c) = self.peer(to) else { return };
        let cfg = ReplicaConfiguration {
            pid: Some(Gpid::new(gpid.0, gpid.1)),
            ballot: Some(ballot),
            primary: Some(self.me),
            status: Some(status_code(receiver_status)),
            learner_signature: Some(signature),
            pop_all: None,
            split_sync_to_child: None,
            hp_primary: Some(self.me_hp.clone()),
        };
        let decree = m.decree;
        let body = prepare_body(gpid, &cfg, &m);
        let r = self.replica(gpid);
        let timeout = Duration::from_millis(if receiver_status == Status::Secondary {
            3000
        } else {
            5000
        });
        tokio::spawn(async move {
            // The body is already a wrapped sequence, so it goes out as raw bytes.
            let reply = c
                .call_raw("RPC_PREPARE", gpid.0, gpid.1, body, timeout)
                .await;
            let error = match decode_reply::<PrepareAck>(reply).and_then(|a| a.err) {
                Some(e) if e.name() == "ERR_OK" => AckError::Ok,
                Some(e) if matches!(e.name(), "ERR_TRY_AGAIN" | "ERR_INACTIVE_STATE") => {
                    AckError::TryAgain
                }
                _ => AckError::Failed,
            };
            if let Some(r) = r {
                r.send(Input::PrepareAck {
                    from: to,
                    ballot,
                    decree,
                    error,
                });
            }
        });
    }

    fn propose(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        kind: ConfigKind,
        node: Node,
        new: Membership,
        last_committed: i64,
    ) {
        let Some(c) = self.meta() else { return };
        let req = ConfigurationUpdateRequest {
            info: Some(info),
            config: Some(book().filled(&partition_config(gpid, &new, last_committed))),
            type_: Some(ConfigType(kind as i32)),
            node: Some(RpcAddress(node)),
            host_node: Some(RpcAddress(node)),
            meta_split_status: None,
            hp_node: Some(book().hp_of(RpcAddress(node))),
        };
        let answer = move |resp: Option<ConfigurationUpdateResponse>| match resp {
            Some(resp) => {
                let err = resp.err.map(|e| e.name()).unwrap_or("ERR_UNKNOWN");
                match (err, resp.config) {
                    ("ERR_OK", Some(cfg)) | ("ERR_INVALID_VERSION", Some(cfg)) => {
                        Input::ProposalReply {
                            accepted: err == "ERR_OK",
                            config: membership_of(&cfg),
                        }
                    }
                    _ => {
                        warn!("{}.{}: meta refused {kind:?}: {err}", gpid.0, gpid.1);
                        Input::ProposalFailed
                    }
                }
            }
            None => Input::ProposalFailed,
        };
        self.call_then(
            c,
            "RPC_CM_UPDATE_PARTITION_CONFIGURATION",
            gpid,
            req,
            Duration::from_secs(5),
            answer,
        );
    }

    fn add_learner(
        &self,
        gpid: (i32, i32),
        info: AppInfo,
        to: Node,
        ballot: i64,
        signature: i64,
        committed: i64,
    ) {
        let req = self.group_check_request(
            gpid,
            info,
            to,
            ballot,
            Status::PotentialSecondary,
            signature,
            committed,
            None,
        );
        self.oneway(to, "RPC_LEARN_ADD_LEARNER", gpid, req);
    }

    fn learn(&self, gpid: (i32, i32), to: Node, signature: i64, committed: i64) {
        let Some(c) = self.peer(to) else { return };
        let req = LearnRequest {
            pid: Some(Gpid::new(gpid.0, gpid.1)),
            learner: Some(self.me),
            signature: Some(signature),
            last_committed_decree_in_app: Some(committed),
            last_committed_decree_in_prepare_list: Some(committed),
            app_specific_learn_request: Some(Blob(Vec::new())),
            max_gced_decree: None,
            hp_learner: Some(self.me_hp.clone()),
            checksum_type: None,
        };
        let answer = move |resp: Option<LearnResponse>| Input::LearnReply {
            signature,
            answer: resp
                .map(learn_answer)
                .unwrap_or(LearnAnswer::Error("ERR_NETWORK_FAILURE")),
        };
        self.call_then(c, "RPC_LEARN", gpid, req, Duration::from_secs(30), answer);
    }

    fn learn_completion(&self, gpid: (i32, i32), to: Node, signature: i64, committed: i64) {
        let Some(c) = self.peer(to) else { return };
        let req = GroupCheckResponse {
            pid: Some(Gpid::new(gpid.0, gpid.1)),
            err: Some(ErrorCode::OK),
            last_committed_decree_in_app: Some(committed),
            last_committed_decree_in_prepare_list: Some(committed),
            learner_status_: Some(LearnerStatus::LEARNING_SUCCEEDED),
            learner_signature: Some(signature),
            node: Some(self.me),
            is_split_stopped: None,
            disk_status: None,
            hp_node: Some(self.me_hp.clone()),
        };
        tokio::spawn(async move {
            if let Err(e) = c
                .call(
                    "RPC_LEARN_COMPLETION_NOTIFY",
                    gpid.0,
                    gpid.1,
                    &struct_value(&req),
                    Duration::from_secs(5),
                )
                .await
            {
                warn!("{}.{}: learn completion notify failed: {e}", gpid.0, gpid.1);
            }
        });
    }

    fn remove_replica(&self, gpid: (i32, i32), to: Node, ballot: i64) {
        let cfg = ReplicaConfiguration {
            pid: Some(Gpid::new(gpid.0, gpid.1)),
            ballot: Some(ballot),
            primary: Some(self.me),
            status: Some(PartitionStatus::PS_INACTIVE),
            learner_signature: Some(0),
            pop_all: None,
            split_sync_to_child: None,
            hp_primary: Some(self.me_hp.clone()),
        };
        self.oneway(to, "RPC_REMOVE_REPLICA", gpid, cfg);
    }

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
    ) {
        let Some(c) = self.peer(to) else { return };
        let req = self.group_check_request(
            gpid,
            info,
            to,
            ballot,
            receiver_status,
            signature,
            committed,
            Some(confirmed),
        );
        let answer = move |resp: Option<GroupCheckResponse>| {
            let (ok, learner_succeeded, signature) = match resp {
                Some(g) => (
                    g.err.map(|e| e.is_ok()).unwrap_or(false),
                    g.learner_status_ == Some(LearnerStatus::LEARNING_SUCCEEDED),
                    g.learner_signature.unwrap_or(0),
                ),
                None => (false, false, 0),
            };
            Input::GroupCheckReply {
                from: to,
                ok,
                learner_succeeded,
                signature,
            }
        };
        self.call_then(
            c,
            "RPC_GROUP_CHECK",
            gpid,
            req,
            Duration::from_secs(5),
            answer,
        );
    }

    fn copy_checkpoint(
        &self,
        from: Node,
        dir: String,
        files: Vec<String>,
        dst: PathBuf,
    ) -> tokio::task::JoinHandle<Result<(), String>> {
        let client = self.peer(from);
        let mb = crate::flags::i64_or("max_copy_rate_megabytes_per_disk", -1);
        let rate = if mb >= 0 {
            (mb as u64) << 20
        } else {
            self.copy_rate
        };
        let block = self.block_bytes;
        tokio::spawn(async move {
            let client = client.ok_or("learnee has no address")?;
            super::nfs::copy_remote_files(&client, &dir, &files, &dst, block, rate)
                .await
                .map(|_| ())
        })
    }
}

/// An RPC_LEARN answer naming files to copy (`files` of `dir` on `learnee`) that bring the
/// learner to `decree`: a checkpoint (LT_APP) or log files (LT_LOG, learned from `learn_start`).
fn answer_with_files(
    resp: &mut LearnResponse,
    type_: LearnType,
    learnee: u64,
    dir: String,
    files: Vec<String>,
    decree: i64,
    learn_start: Option<i64>,
) {
    resp.type_ = Some(type_);
    resp.last_committed_decree = Some(decree);
    resp.learnee = Some(RpcAddress(learnee));
    resp.base_local_dir = Some(dir);
    resp.state = Some(LearnState {
        from_decree_excluded: Some(0),
        to_decree_included: Some(decree),
        meta: Some(Blob(Vec::new())),
        files: Some(files),
        learn_start_decree: learn_start,
        file_sizes: None,
        file_checksums: None,
    });
}

fn learn_answer(resp: LearnResponse) -> LearnAnswer {
    let err = resp.err.map(|e| e.name()).unwrap_or("ERR_UNKNOWN");
    if err != "ERR_OK" {
        return LearnAnswer::Error(ErrorCode::from_name(err).name());
    }
    let state = resp.state.unwrap_or_default();
    match resp.type_ {
        Some(LearnType::LT_CACHE) => {
            let meta = state.meta.map(|b| b.0).unwrap_or_default();
            match mutation::decode_seq(&meta) {
                Ok(mutations) => LearnAnswer::Cache {
                    mutations,
                    prepare_start: resp.prepare_start_decree.unwrap_or(0),
                    committed: resp.last_committed_decree.unwrap_or(0),
                },
                Err(_) => LearnAnswer::Error("ERR_INVALID_DATA"),
            }
        }
        Some(LearnType::LT_APP) => LearnAnswer::App {
            learnee: resp.learnee.map(|a| a.0).unwrap_or(0),
            dir: resp.base_local_dir.unwrap_or_default(),
            files: state.files.unwrap_or_default(),
            decree: state.to_decree_included.unwrap_or(0),
        },
        Some(LearnType::LT_LOG) => LearnAnswer::Log {
            learnee: resp.learnee.map(|a| a.0).unwrap_or(0),
            dir: resp.base_local_dir.unwrap_or_default(),
            files: state.files.unwrap_or_default(),
            to_decree: state.to_decree_included.unwrap_or(0),
        },
        _ => LearnAnswer::Error("ERR_INVALID_DATA"),
    }
}

/// The replica server.
pub struct ReplicaStub {
    opts: ReplicaOptions,
    net: Arc<Net>,
    server_name: String,
    replicas: RwLock<HashMap<(i32, i32), Arc<Replica>>>,
    /// One lock per partition, so a partition is created and opened once while the others
    /// (a restore's download, a follower's checkpoint copy) go on in parallel.
    creating: Mutex<HashMap<(i32, i32), CreationLock>>,
    meta_connected: AtomicBool,
    /// Send time (ms) of the last beacon the meta acknowledged: the lease runs from it.
    lease_start_ms: AtomicI64,
    start_time_ms: i64,
    /// The data directories and their disks.
    pub fs: super::fs_manager::FsManager,
    /// Replicas closed since they were opened, as they were then (see `note_closed`).
    closed: Mutex<HashMap<(i32, i32), ReplicaInfo>>,
    /// Disk migrations under way, per partition.
    migrations: Mutex<HashMap<(i32, i32), crate::idl::replica_admin::DiskMigrationStatus>>,
    /// The metric sets of the server's own entities (they live as long as the stub).
    metric_sets: Mutex<Vec<Arc<crate::metrics::Computed>>>,
    /// Cold backups under way or done, per (app, partition, policy).
    backups: Mutex<HashMap<(i32, i32, String), Arc<backup::BackupJob>>>,
    /// Duplications of the partitions this server leads.
    dups: dup::Dups,
}

#[path = "stub_backup.rs"]
mod backup;
#[path = "stub_commands.rs"]
mod commands;
#[path = "stub_disk.rs"]
mod disk;
#[path = "stub_dup.rs"]
pub(crate) mod dup;
#[path = "stub_metrics.rs"]
mod metrics_timers;
pub use commands::{DENY_CLIENT, VERBOSE_CLIENT_LOG, VERBOSE_COMMIT_LOG};

/// The replica server's own HTTP pages: (path, help).
pub const REPLICA_PAGES: &[(&str, &str)] = &[
    (
        "/replica/data_version",
        "app_id=<app_id>. Query the data version of an app.",
    ),
    (
        "/replica/duplication",
        "appid=<appid>. Query the duplication status of an app.",
    ),
    (
        "/replica/manual_compaction",
        "app_id=<app_id>. Query the manual compaction status of an app.",
    ),
];

/// An int32 as upstream's buf2int32 reads it (decimal, or 0x-hex / 0-octal prefixes).
pub fn parse_int32(v: &str) -> Option<i32> {
    let (neg, t) = match v.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, v),
    };
    let n = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<i64>().ok()?
    };
    i32::try_from(if neg { -n } else { n }).ok()
}

/// `replica.disable-empty-write` (from `[replication] empty_write_disabled` at start).
pub static EMPTY_WRITE_DISABLED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

impl ReplicaStub {
    pub fn new(opts: ReplicaOptions) -> Arc<ReplicaStub> {
        let me = to_rpc_address(opts.self_addr);
        let me_hp = book().hp_of(me);
        info!("replica server {me} goes by {me_hp}");
        let net = Arc::new(Net {
            me,
            me_hp,
            metas: opts.meta_servers.clone(),
            leader: AtomicUsize::new(0),
            peers: Mutex::new(HashMap::new()),
            stub: Mutex::new(Weak::new()),
            block_bytes: opts.nfs_copy_block_bytes,
            copy_rate: opts.nfs_max_copy_bytes_per_sec,
        });
        let fs = super::fs_manager::FsManager::new(
            opts.data_dirs.clone(),
            opts.disk_min_available_space_ratio,
        );
        EMPTY_WRITE_DISABLED.store(opts.pacifica.empty_write_disabled, Ordering::Relaxed);
        let stub = Arc::new(ReplicaStub {
            fs,
            migrations: Mutex::new(HashMap::new()),
            metric_sets: Mutex::new(Vec::new()),
            backups: Mutex::new(HashMap::new()),
            dups: dup::Dups::default(),
            closed: Mutex::new(HashMap::new()),
            server_name: opts.self_addr.to_string(),
            net: net.clone(),
            opts,
            replicas: RwLock::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
            meta_connected: AtomicBool::new(false),
            lease_start_ms: AtomicI64::new(0),
            start_time_ms: now_ms(),
        });
        if let Ok(mut w) = net.stub.lock() {
            *w = Arc::downgrade(&stub);
        }
        stub
    }

    pub fn self_address(&self) -> RpcAddress {
        self.net.me
    }

    /// (replicas of `app_id`, all replicas) open in the data directory `dir`.
    fn held_in(&self, dir: &Path, app_id: i32) -> (usize, usize) {
        let Ok(m) = self.replicas.read() else {
            return (0, 0);
        };
        let mut app = 0;
        let mut all = 0;
        for ((a, _), r) in m.iter() {
            if r.dir.starts_with(dir) {
                all += 1;
                if *a == app_id {
                    app += 1;
                }
            }
        }
        (app, all)
    }

    /// The disk tag of a replica.
    fn disk_tag_of(&self, r: &Replica) -> String {
        self.fs.tag_of(&r.dir).unwrap_or_default()
    }

    fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig {
            me: self.net.me.0,
            server: self.server_name.clone(),
            pacifica: self.opts.pacifica.clone(),
            flush_interval_ms: self.opts.flush_interval.as_millis() as i64,
            log_file_size_bytes: self.opts.log_file_size_bytes,
            log_reserve_max_bytes: self.opts.log_reserve_max_bytes,
            log_reserve_max_secs: self.opts.log_reserve_max_secs,
        }
    }

    fn open_replica(&self, dir: &Path, info: AppInfo, pidx: i32) -> Result<Arc<Replica>, String> {
        Replica::open(dir, info, pidx, self.replica_config(), self.net.clone())
    }

    /// Opens every replica found on disk; a replica that fails to open is moved aside to
    /// `<dir>.<us>.err` as upstream does.
    pub async fn load_replicas(self: &Arc<Self>) -> std::io::Result<()> {
        self.fs.initialize().map_err(std::io::Error::other)?;
        // Replicas replay their logs independently: open them in parallel.
        let mut opening = Vec::new();
        let mut entries = Vec::new();
        for d in self.fs.dirs() {
            if d.status == crate::idl::metadata::DiskStatus::IO_ERROR {
                continue;
            }
            for entry in std::fs::read_dir(&d.dir)? {
                entries.push(entry);
            }
        }
        // At most `max_replicas_on_load_for_each_disk` replicas of one disk open at a time.
        let per_disk = crate::flags::i64_or("max_replicas_on_load_for_each_disk", 256).max(1);
        let mut slots: HashMap<String, Arc<tokio::sync::Semaphore>> = HashMap::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((app_id, pidx, app_type)) = replica::parse_dir_name(&name) else {
                continue;
            };
            let dir = entry.path();
            let stub = self.clone();
            let disk = self.fs.tag_of(&dir).unwrap_or_default();
            let slot = slots
                .entry(disk)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_disk as usize)))
                .clone();
            let Ok(permit) = slot.acquire_owned().await else {
                continue;
            };
            opening.push(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let loaded = std::fs::read(dir.join(".app-info"))
                    .map_err(|e| e.to_string())
                    .and_then(|b| super::replica_files::parse_app_info(&b))
                    .and_then(|info| {
                        if info.app_type.as_deref() != Some(app_type.as_str())
                            || info.app_id != Some(app_id)
                        {
                            return Err("directory name does not match .app-info".to_string());
                        }
                        if pidx >= info.partition_count.unwrap_or(0) {
                            return Err("partition index out of range (split leftover)".to_string());
                        }
                        stub.open_replica(&dir, info, pidx)
                    });
                match loaded {
                    Ok(r) => {
                        if let Ok(mut m) = stub.replicas.write() {
                            m.insert((app_id, pidx), r);
                        }
                    }
                    Err(e) => {
                        let bad = format!(
                            "{}.{}.err",
                            dir.display(),
                            crate::base::value_schema::now_us()
                        );
                        error!(
                            "cannot open replica {}: {e}; moving it to {bad}",
                            dir.display()
                        );
                        let _ = std::fs::rename(&dir, &bad);
                    }
                }
            }));
        }
        for t in opening {
            let _ = t.await;
        }
        Ok(())
    }

    fn replica(&self, app_id: i32, pidx: i32) -> Option<Arc<Replica>> {
        self.replicas.read().ok()?.get(&(app_id, pidx)).cloned()
    }

    /// The replica of `info`/`pidx`, created empty when this server has none.
    async fn ensure_replica(&self, info: &AppInfo, pidx: i32) -> Result<Arc<Replica>, String> {
        self.ensure_replica_as(info, pidx, false).await
    }

    /// As `ensure_replica`; `primary`: the meta assigns this server the partition's primary,
    /// so a table created by a restore gets its data from the backup first (upstream restores
    /// on the first primary only; secondaries learn from it).
    async fn ensure_replica_as(
        &self,
        info: &AppInfo,
        pidx: i32,
        primary: bool,
    ) -> Result<Arc<Replica>, String> {
        let app_id = info.app_id.unwrap_or(0);
        let slot = match self.creating.lock() {
            Ok(mut m) => CreationSlot {
                map: &self.creating,
                key: (app_id, pidx),
                lock: m.entry((app_id, pidx)).or_default().clone(),
            },
            Err(_) => return Err("replica creation locks poisoned".into()),
        };
        // Dropped before `slot` (declared after it), so the slot sees whether others wait.
        let _guard = slot.lock.clone().lock_owned().await;
        if let Some(r) = self.replica(app_id, pidx) {
            return Ok(r);
        }
        let app_type = info.app_type.clone().unwrap_or_else(|| "pegasus".into());
        let name = replica::dir_name(app_id, pidx, &app_type);
        // A folder left on some disk is reused; otherwise the emptiest disk takes it.
        let dir = match self.fs.find_existing(&name) {
            Some(d) => d,
            None => {
                let dir = self
                    .fs
                    .choose_dir(&|d: &Path| self.held_in(d, app_id))
                    .ok_or("no data dir can take a new replica")?
                    .join(&name);
                let envs = info.envs.clone().unwrap_or_default();
                let follower = envs.contains_key(crate::base::dup_common::ENV_MASTER_CLUSTER)
                    && envs.contains_key(crate::base::dup_common::ENV_MASTER_METAS);
                if primary && follower {
                    if let Err(e) = self.duplicate_checkpoint(info, pidx, &dir).await {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(format!("duplicating the master's checkpoint failed: {e}"));
                    }
                }
                let spec = info.envs.as_ref().and_then(backup::RestoreSpec::of);
                if let (true, Some(spec)) = (primary, spec) {
                    let app_name = info.app_name.clone().unwrap_or_default();
                    if let Err(e) = self
                        .restore_partition(&spec, &app_name, app_id, pidx, &dir)
                        .await
                    {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(format!("restore failed: {e}"));
                    }
                }
                dir
            }
        };
        let mut stored = info.clone();
        stored.status = Some(AppStatus::AS_AVAILABLE);
        let r = self.open_replica(&dir, stored, pidx)?;
        if let Ok(mut m) = self.replicas.write() {
            m.insert((app_id, pidx), r.clone());
        }
        if let Ok(mut c) = self.closed.lock() {
            c.remove(&(app_id, pidx));
        }
        info!("created replica {app_id}.{pidx} at {}", dir.display());
        Ok(r)
    }

    /// Flushes every hosted database (graceful shutdown).
    pub async fn flush_all(&self) {
        let all: Vec<Arc<Replica>> = match self.replicas.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return,
        };
        for r in all {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if r.send(Input::Flush(tx)) {
                let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
            }
        }
    }

    /// Starts the beacon and config-sync loop toward the meta servers.
    /// Every `disk_stat_interval_seconds`: disk space and status, and the cleanup of replica
    /// folders left aside (`.err`, `.gar`, `.tmp`, `.ori`) once their keep time is over.
    pub fn start_disk_tasks(self: &Arc<Self>) {
        let stub = self.clone();
        tokio::spawn(async move {
            loop {
                let secs = crate::flags::i64_or("disk_stat_interval_seconds", 600).max(1);
                tokio::time::sleep(Duration::from_secs(secs as u64)).await;
                let s = stub.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    s.fs.update_disk_stat();
                    s.fs.clean(std::time::SystemTime::now());
                })
                .await;
            }
        });
    }

    pub fn start_meta_tasks(self: &Arc<Self>) {
        let stub = self.clone();
        tokio::spawn(async move { stub.meta_loop().await });
    }

    async fn meta_loop(self: Arc<Self>) {
        let metas = self.opts.meta_servers.clone();
        if metas.is_empty() {
            error!("no meta server configured ([meta_server] server_list)");
            return;
        }
        let mut last_ack_ms = 0i64;
        let mut last_sync_ms = 0i64;
        loop {
            let Some(client) = self.net.meta() else {
                return;
            };
            let beacon = BeaconMsg {
                time: Some(now_ms()),
                from_node: Some(self.net.me),
                to_node: Some(to_rpc_address(client.addr())),
                start_time: Some(self.start_time_ms),
                hp_from_node: Some(self.net.me_hp.clone()),
                hp_to_node: Some(book().hp_of(to_rpc_address(client.addr()))),
            };
            let timeout = self
                .opts
                .beacon_interval
                .mul_f32(2.0 / 3.0)
                .max(Duration::from_millis(500));
            match client
                .call(
                    "RPC_FD_FAILURE_DETECTOR_PING",
                    0,
                    0,
                    &struct_value(&beacon),
                    timeout,
                )
                .await
            {
                Ok(reply) if reply.error == "ERR_OK" => {
                    match protocol::decode(&reply.body, protocol::read_arg::<BeaconAck>).ok() {
                        Some(a) if a.is_master == Some(true) => {
                            last_ack_ms = beacon.time.unwrap_or(0);
                            self.lease_start_ms.store(last_ack_ms, Ordering::SeqCst);
                            log::debug!("beacon acknowledged by meta server {}", client.addr());
                            if !self.meta_connected.swap(true, Ordering::SeqCst) {
                                info!("connected to meta server {}", client.addr());
                                last_sync_ms = 0;
                            }
                        }
                        Some(a) => {
                            let hint = a.primary_node.and_then(|p| p.to_socket_addr());
                            let next = hint
                                .and_then(|h| metas.iter().position(|m| *m == SocketAddr::V4(h)))
                                .unwrap_or(self.net.leader.load(Ordering::Relaxed) + 1);
                            self.net.leader.store(next, Ordering::Relaxed);
                        }
                        None => warn!("undecodable beacon ack from {}", client.addr()),
                    }
                }
                Ok(reply) => warn!("beacon to {} failed: {}", client.addr(), reply.error),
                Err(e) => {
                    warn!("beacon to {} failed: {e}", client.addr());
                    self.net.leader.fetch_add(1, Ordering::Relaxed);
                }
            }
            let now = now_ms();
            if self.meta_connected.load(Ordering::SeqCst)
                && now - last_ack_ms > self.opts.lease.as_millis() as i64
            {
                warn!("meta lease expired; replicas stop serving until the meta is back");
                self.meta_connected.store(false, Ordering::SeqCst);
                for r in self.all_replicas() {
                    r.send(Input::MetaDisconnected);
                }
            }
            let sync_every = Duration::from_millis(crate::flags::i64_or(
                "config_sync_interval_ms",
                self.opts.config_sync_interval.as_millis() as i64,
            ) as u64);
            if self.meta_connected.load(Ordering::SeqCst)
                && now - last_sync_ms >= sync_every.as_millis() as i64
                && self.config_sync(&client).await
            {
                last_sync_ms = now;
            }
            tokio::time::sleep(self.opts.beacon_interval.min(sync_every)).await;
        }
    }

    /// The meta lease holds right now. The meta loop only notices an expired lease between
    /// its (possibly long) calls, while the meta declares this server dead after its grace
    /// period: reads check the lease themselves so they stop on time.
    fn lease_valid(&self) -> bool {
        self.meta_connected.load(Ordering::SeqCst)
            && now_ms() - self.lease_start_ms.load(Ordering::SeqCst)
                <= self.opts.lease.as_millis() as i64
    }

    fn all_replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The `app_id` query argument of an HTTP path, or upstream's 400 reply.
    fn http_app_id(req: &HttpRequest, key: &str) -> Result<i32, HttpReply> {
        let bad = |body: String| HttpReply {
            status: 400,
            content_type: "text/plain",
            body,
            location: None,
        };
        match req.arg(key) {
            None | Some("") => Err(bad(format!("{key} should not be empty"))),
            Some(v) => match parse_int32(v) {
                Some(id) if id >= 0 => Ok(id),
                _ => Err(bad(format!("invalid {key}={v}"))),
            },
        }
    }

    /// The local replicas of a table, in partition order.
    fn replicas_of(&self, app_id: i32) -> Vec<(i32, Arc<Replica>)> {
        let mut v: Vec<(i32, Arc<Replica>)> = self
            .replicas
            .read()
            .map(|m| {
                m.iter()
                    .filter(|((a, _), _)| *a == app_id)
                    .map(|((_, p), r)| (*p, r.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|(p, _)| *p);
        v
    }

    /// `/replica/data_version?app_id=N`: `{"<pidx>": {"data_version": "<v>"}}` over the
    /// local replicas of the table, 404 when there is none.
    fn http_by_app(
        &self,
        req: &HttpRequest,
        f: impl Fn(&Replica) -> serde_json::Value,
    ) -> HttpReply {
        let app_id = match Self::http_app_id(req, "app_id") {
            Ok(id) => id,
            Err(r) => return r,
        };
        let reps = self.replicas_of(app_id);
        if reps.is_empty() {
            return HttpReply {
                status: 404,
                content_type: "text/plain",
                body: format!("app_id={app_id} not found"),
                location: None,
            };
        }
        let m: serde_json::Map<String, serde_json::Value> =
            reps.iter().map(|(p, r)| (p.to_string(), f(r))).collect();
        HttpReply {
            status: 200,
            content_type: "text/plain",
            body: serde_json::Value::Object(m).to_string(),
            location: None,
        }
    }

    /// `/replica/manual_compaction?app_id=N`: how many local replicas of the table are idle,
    /// running, queuing or finished.
    fn http_compaction(&self, req: &HttpRequest) -> HttpReply {
        use crate::idl::metadata::ManualCompactionStatus as S;
        let app_id = match Self::http_app_id(req, "app_id") {
            Ok(id) => id,
            Err(r) => return r,
        };
        let (mut idle, mut running, mut queuing, mut finished) = (0, 0, 0, 0);
        for (_, r) in self.replicas_of(app_id) {
            match r.app().map(|a| a.compact.status()).unwrap_or(S::IDLE) {
                S::RUNNING => running += 1,
                S::QUEUING => queuing += 1,
                S::FINISHED => finished += 1,
                _ => idle += 1,
            }
        }
        HttpReply {
            status: 200,
            content_type: "text/plain",
            body: serde_json::json!({"status": {"idle": idle, "running": running,
                "queuing": queuing, "finished": finished}})
            .to_string(),
            location: None,
        }
    }

    /// What config sync reports of one replica.
    fn replica_info(&self, app_id: i32, pidx: i32, r: &Replica) -> ReplicaInfo {
        let d = r.app().map(|a| a.db.last_committed_decree()).unwrap_or(0);
        let (ballot, committed, prepared) = r.progress();
        let status = match r.status_code() {
            1 => PartitionStatus::PS_PRIMARY,
            2 => PartitionStatus::PS_SECONDARY,
            3 => PartitionStatus::PS_POTENTIAL_SECONDARY,
            4 => PartitionStatus::PS_ERROR,
            _ => PartitionStatus::PS_INACTIVE,
        };
        ReplicaInfo {
            pid: Some(Gpid::new(app_id, pidx)),
            ballot: Some(ballot),
            status: Some(status),
            last_committed_decree: Some(committed.max(d)),
            last_prepared_decree: Some(prepared.max(d)),
            last_durable_decree: Some(d),
            app_type: Some("pegasus".into()),
            disk_tag: Some(self.disk_tag_of(r)),
            manual_compact_status: r.app().map(|a| a.compact.status()),
        }
    }

    /// Remembers a replica being closed (failed, or moved to another disk) as it is now, so
    /// config sync goes on reporting what this server holds on disk, as upstream's closed
    /// replicas are: the meta must not take the server for one without the data.
    fn note_closed(&self, app_id: i32, pidx: i32, r: &Replica) {
        let mut info = self.replica_info(app_id, pidx, r);
        info.status = Some(PartitionStatus::PS_INACTIVE);
        if let Ok(mut c) = self.closed.lock() {
            c.insert((app_id, pidx), info);
        }
    }

    /// The replicas config sync reports: open ones, then closed ones not reopened since.
    fn stored_replicas(&self) -> Vec<ReplicaInfo> {
        let mut out: Vec<ReplicaInfo> = match self.replicas.read() {
            Ok(m) => m
                .iter()
                .map(|((app_id, pidx), r)| self.replica_info(*app_id, *pidx, r))
                .collect(),
            Err(_) => return Vec::new(),
        };
        let open: std::collections::HashSet<(i32, i32)> = out
            .iter()
            .filter_map(|i| i.pid.map(|p| (p.app_id, p.partition_index)))
            .collect();
        if let Ok(c) = self.closed.lock() {
            out.extend(
                c.iter()
                    .filter(|(k, _)| !open.contains(k))
                    .map(|(_, v)| v.clone()),
            );
        }
        out
    }

    /// One config sync with the meta; returns whether it succeeded.
    async fn config_sync(&self, client: &RpcClient) -> bool {
        let stored = self.stored_replicas();
        // The ballot of each replica open when the query left: the meta's answer says
        // nothing of a replica created or reconfigured since (a partition assigned here
        // while the query was on its way is not in it yet).
        let asked: HashMap<(i32, i32), i64> = match self.replicas.read() {
            Ok(m) => m.iter().map(|(k, r)| (*k, r.progress().0)).collect(),
            Err(_) => HashMap::new(),
        };
        let req = ConfigurationQueryByNodeRequest {
            node: Some(self.net.me),
            stored_replicas: Some(stored),
            info: None,
            hp_node: Some(self.net.me_hp.clone()),
        };
        let reply = match client
            .call(
                "RPC_CM_CONFIG_SYNC",
                0,
                0,
                &struct_value(&req),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(r) if r.error == "ERR_OK" => r,
            Ok(r) => {
                warn!("config sync failed: {}", r.error);
                return false;
            }
            Err(e) => {
                warn!("config sync failed: {e}");
                return false;
            }
        };
        let resp: ConfigurationQueryByNodeResponse =
            match protocol::decode(&reply.body, protocol::read_arg) {
                Ok(r) => r,
                Err(e) => {
                    warn!("undecodable config sync reply: {e}");
                    return false;
                }
            };
        if !resp.err.map(|e| e.is_ok()).unwrap_or(false) {
            return false;
        }
        let mut listed = std::collections::HashSet::new();
        for upd in resp.partitions.unwrap_or_default() {
            let (Some(info), Some(cfg)) = (upd.info, upd.config) else {
                continue;
            };
            let Some(pid) = cfg.pid else { continue };
            if info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            listed.insert((pid.app_id, pid.partition_index));
            let m = membership_of(&cfg);
            match self.replica(pid.app_id, pid.partition_index) {
                Some(r) => {
                    r.send(Input::Config(m, Box::new(info)));
                }
                None if m.primary == self.net.me.0 && m.ballot <= 1 => {
                    // A brand-new partition assigned here before we saw the proposal.
                    if let Ok(r) = self
                        .ensure_replica_as(&info, pid.partition_index, true)
                        .await
                    {
                        r.send(Input::Config(m, Box::new(info)));
                    }
                }
                None if m.primary == self.net.me.0 => {
                    // The meta names us primary of data we do not have (lost, or moved aside as
                    // corrupt): step down so a secondary takes over, as upstream does.
                    warn!("meta lists this server as primary of {pid}, which it does not host; stepping down");
                    let mut new = m.clone();
                    new.primary = 0;
                    new.ballot += 1;
                    self.net.propose(
                        (pid.app_id, pid.partition_index),
                        info,
                        ConfigKind::DowngradeToInactive,
                        self.net.me.0,
                        new,
                        cfg.last_committed_decree.unwrap_or(0),
                    );
                }
                None => {}
            }
        }
        for ((app, pidx), r) in self.replicas.read().map(|m| m.clone()).unwrap_or_default() {
            if r.is_error() {
                // Upstream closes a failed replica at once; its folder stays where it is
                // (the data is reopened from disk at the next start, or when the meta places
                // the partition here again).
                warn!("replica {app}.{pidx} failed; closing it");
                self.note_closed(app, pidx, &r);
                if let Ok(mut m) = self.replicas.write() {
                    m.remove(&(app, pidx));
                }
                let (done, closed) = tokio::sync::oneshot::channel();
                if r.send(Input::Close(done)) {
                    let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
                }
                continue;
            }
            let unchanged = asked.get(&(app, pidx)) == Some(&r.progress().0);
            if !listed.contains(&(app, pidx)) && unchanged && matches!(r.status_code(), 1 | 2) {
                info!("replica {app}.{pidx} is no longer a member here; closing it");
                r.send(Input::NotMember);
            }
        }
        true
    }

    /// A client request of the RRDB service, taken in arrival order: writes join the
    /// partition's write queue, reads its read lane, so one connection's requests for one
    /// partition run in the order sent.
    fn dispatch_rrdb(self: &Arc<Self>, req: Request, sink: ReplySink) {
        let name = req.name.as_str();
        if DENY_CLIENT.load(Ordering::Relaxed) {
            // `replica.deny-client`: no answer; the client times out and retries.
            return;
        }
        let Some(r) = self.replica(req.app_id, req.partition_index) else {
            if name != "RPC_RRDB_RRDB_CLEAR_SCANNER" {
                sink.send(Reply::err("ERR_OBJECT_NOT_FOUND"));
            }
            return;
        };
        let deny = r.deny();
        if deny != 0 {
            let denied = (is_write(name) && deny & crate::replica::partition::DENY_WRITE != 0)
                || (is_read(name) && deny & crate::replica::partition::DENY_READ != 0);
            if denied {
                // `reconfig*`: ERR_INVALID_STATE sends the client back to the meta; `timeout*`:
                // no answer at all, as upstream.
                if deny & crate::replica::partition::DENY_RECONFIG != 0 {
                    sink.send(Reply::err("ERR_INVALID_STATE"));
                }
                return;
            }
        }
        if is_write(name) {
            match r.throttle_write(req.body.len(), req.client_timeout_ms) {
                Throttle::Pass => self.client_write(&r, req, sink),
                Throttle::Delay(ms) => {
                    r.metrics.throttling_delayed_write_requests.inc();
                    let stub = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        stub.client_write(&r, req, sink);
                    });
                }
                Throttle::Reject(ms) => {
                    r.metrics.throttling_rejected_write_requests.inc();
                    reject_busy(sink, ms)
                }
            }
        } else if is_read(name) {
            let backup = req.is_backup_request;
            match r.throttle_read(backup, req.client_timeout_ms) {
                Throttle::Pass => self.queue_read(r, req, sink),
                Throttle::Delay(ms) => {
                    if backup {
                        r.metrics.throttling_delayed_backup_requests.inc();
                    } else {
                        r.metrics.throttling_delayed_read_requests.inc();
                    }
                    let stub = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        stub.queue_read(r, req, sink);
                    });
                }
                // A throttled backup request gets no answer (the client reads the primary).
                Throttle::Reject(_) if backup => {
                    r.metrics.throttling_rejected_backup_requests.inc();
                }
                Throttle::Reject(ms) => {
                    r.metrics.throttling_rejected_read_requests.inc();
                    reject_busy(sink, ms)
                }
            }
        } else {
            sink.send(Reply::err("ERR_HANDLER_NOT_FOUND"));
        }
    }

    /// A client read onto the partition's read lane.
    fn queue_read(self: &Arc<Self>, r: Arc<Replica>, req: Request, sink: ReplySink) {
        let stub = self.clone();
        let lane = r.clone();
        r.read(Box::new(move || {
            if let Some(reply) = stub.serve_read(&lane, &req) {
                if reply.error != "ERR_OK" && VERBOSE_CLIENT_LOG.load(Ordering::Relaxed) {
                    log::error!(
                        "{}.{}: client {} answered with {}",
                        req.app_id,
                        req.partition_index,
                        req.name,
                        reply.error
                    );
                }
                lane.read_served(reply.value.as_ref().map(|v| v.bytes.len()).unwrap_or(0));
                sink.send(reply);
            }
        }));
    }

    /// A client write: decoded once here, then handed to the partition's write queue.
    fn client_write(&self, r: &Replica, req: Request, sink: ReplySink) {
        if req.body.len() > self.opts.max_allowed_write_size {
            return sink.send(Reply::err("ERR_INVALID_DATA"));
        }
        let Some(request) = replica::decode_write(&req.name, &req.body) else {
            return sink.send(Reply::err("ERR_INVALID_DATA"));
        };
        if let Some(why) = crate::storage::app::write_key_error(&request, req.partition_hash) {
            warn!(
                "{}.{}: {} refused: {why}",
                req.app_id, req.partition_index, req.name
            );
            return sink.send(Reply::err("ERR_INVALID_DATA"));
        }
        if !r.is_primary() {
            return sink.send(Reply::err("ERR_INVALID_STATE"));
        }
        // A duplicated table ships only idempotent writes: its atomic ones are refused, as
        // upstream's (unless the table makes them idempotent).
        if matches!(
            req.name.as_str(),
            "RPC_RRDB_RRDB_INCR" | "RPC_RRDB_RRDB_CHECK_AND_SET" | "RPC_RRDB_RRDB_CHECK_AND_MUTATE"
        ) {
            let info = r.app_info();
            if info.duplicating == Some(true) && !info.atomic_idempotent.unwrap_or(false) {
                r.metrics.dup_rejected_non_idempotent_write_requests.inc();
                return sink.send(Reply::err("ERR_OPERATION_DISABLED"));
            }
        }
        super::metrics::count_write_bytes(&r.metrics, &request);
        // Upstream's task codes: single puts and removes may share a mutation.
        let allow_batch = matches!(
            req.name.as_str(),
            "RPC_RRDB_RRDB_PUT" | "RPC_RRDB_RRDB_REMOVE"
        );
        let gpid = format!("{}.{}", req.app_id, req.partition_index);
        let update = MutationUpdate {
            code: mutation::code_name(&req.name),
            serialization_type: 1,
            data: bytes::Bytes::from(req.body),
        };
        r.write(
            update,
            request,
            allow_batch,
            Box::new(move |result| {
                sink.send(match result {
                    Ok(WriteResponse::Update(u)) => Reply::of(&u),
                    Ok(WriteResponse::MultiRemove(u)) => Reply::of(&u),
                    Ok(WriteResponse::Incr(u)) => Reply::of(&u),
                    Ok(WriteResponse::CheckAndSet(u)) => Reply::of(&u),
                    Ok(WriteResponse::CheckAndMutate(u)) => Reply::of(&u),
                    Ok(WriteResponse::Duplicate(u)) => Reply::of(&u),
                    Err(e) => {
                        if VERBOSE_CLIENT_LOG.load(Ordering::Relaxed) {
                            log::error!("{gpid}: client write answered with {e}");
                        }
                        Reply::err(e)
                    }
                })
            }),
        );
    }

    /// Serves a client read on the partition's read lane; `None` for CLEAR_SCANNER, which is
    /// never answered.
    fn serve_read(&self, r: &Replica, req: &Request) -> Option<Reply> {
        let name = req.name.as_str();
        let Some(app) = r.app() else {
            return (name != "RPC_RRDB_RRDB_CLEAR_SCANNER")
                .then(|| Reply::err("ERR_INVALID_STATE"));
        };
        if name == "RPC_RRDB_RRDB_CLEAR_SCANNER" {
            if let Some(id) = arg_i64(req) {
                app.on_clear_scanner(id);
            }
            return None;
        }
        let readable =
            (r.is_readable() && self.lease_valid()) || (req.is_backup_request && r.is_secondary());
        if !readable {
            return Some(Reply::err("ERR_INVALID_STATE"));
        }
        // Keys the key schema cannot hold are refused (upstream's server aborts on them).
        let raw_ok = |k: &Blob| crate::base::key_schema::decode(&k.0).is_some();
        let hash_key_ok = |k: &[u8]| k.len() <= crate::base::key_schema::MAX_HASH_KEY_LEN;
        let started = std::time::Instant::now();
        use super::metrics as m;
        let read = match name {
            "RPC_RRDB_RRDB_GET" => arg::<Blob>(req).filter(raw_ok).map(|k| {
                let resp = app.on_get(&k);
                (Reply::of(&resp), m::get_len(&k, &resp))
            }),
            "RPC_RRDB_RRDB_TTL" => arg::<Blob>(req)
                .filter(raw_ok)
                .map(|k| (Reply::of(&app.on_ttl(&k)), 0)),
            "RPC_RRDB_RRDB_SORTKEY_COUNT" => arg::<Blob>(req)
                .filter(|k| hash_key_ok(&k.0))
                .map(|k| (Reply::of(&app.on_sortkey_count(&k)), 0)),
            "RPC_RRDB_RRDB_MULTI_GET" => arg::<rrdb::MultiGetRequest>(req)
                .filter(|m| hash_key_ok(m.hash_key.as_ref().map_or(&[][..], |b| &b.0)))
                .map(|q| {
                    let resp = app.on_multi_get(&q);
                    (Reply::of(&resp), m::multi_get_len(&q.hash_key, &resp))
                }),
            "RPC_RRDB_RRDB_BATCH_GET" => arg::<rrdb::BatchGetRequest>(req).map(|q| {
                let resp = app.on_batch_get(&q);
                (Reply::of(&resp), m::batch_get_len(&resp))
            }),
            "RPC_RRDB_RRDB_GET_SCANNER" => arg::<rrdb::GetScannerRequest>(req).map(|q| {
                let resp = app.on_get_scanner(&q);
                (Reply::of(&resp), m::scan_len(&resp))
            }),
            "RPC_RRDB_RRDB_SCAN" => arg::<rrdb::ScanRequest>(req).map(|q| {
                let resp = app.on_scan(&q);
                (Reply::of(&resp), m::scan_len(&resp))
            }),
            _ => Some((Reply::err("ERR_HANDLER_NOT_FOUND"), 0)),
        };
        let read = read.map(|(reply, bytes)| {
            m::count_read(&r.metrics, name, bytes, started, req.is_backup_request);
            reply
        });
        Some(read.unwrap_or_else(|| Reply::err("ERR_INVALID_DATA")))
    }

    /// RPC_PREPARE, taken in arrival order; no reply (as upstream) when the replica never
    /// answers it.
    fn on_prepare(&self, req: &Request, sink: ReplySink) {
        let Some((gpid, cfg, m)) = parse_prepare(&req.body) else {
            return sink.send(Reply::err("ERR_INVALID_DATA"));
        };
        let ack = move |err: ErrorCode, ballot: i64, decree: i64, committed: i64| PrepareAck {
            pid: Some(gpid),
            err: Some(err),
            ballot: Some(ballot),
            decree: Some(decree),
            last_committed_decree_in_app: Some(committed),
            last_committed_decree_in_prepare_list: Some(committed),
            receive_timestamp: None,
            response_timestamp: None,
        };
        let Some(r) = self.replica(gpid.app_id, gpid.partition_index) else {
            return sink.send(Reply::of(&ack(ErrorCode::OBJECT_NOT_FOUND, 0, m.decree, 0)));
        };
        let status = if cfg.status == Some(PartitionStatus::PS_POTENTIAL_SECONDARY) {
            Status::PotentialSecondary
        } else {
            Status::Secondary
        };
        r.send(Input::Prepare {
            from: cfg.primary.map(|a| a.0).unwrap_or(0),
            receiver_status: status,
            signature: cfg.learner_signature.unwrap_or(0),
            mutation: m,
            reply: Box::new(move |(e, ballot, d, committed)| {
                let err = match e {
                    AckError::Ok => ErrorCode::OK,
                    AckError::TryAgain => ErrorCode::TRY_AGAIN,
                    AckError::Failed => ErrorCode::INVALID_STATE,
                };
                sink.send(Reply::of(&ack(err, ballot, d, committed)));
            }),
        });
    }

    async fn on_proposal(&self, req: &Request) {
        let Some(p) = arg::<ConfigurationUpdateRequest>(req) else {
            return;
        };
        if !self.meta_connected.load(Ordering::SeqCst) {
            return;
        }
        let (Some(info), Some(cfg)) = (p.info, p.config) else {
            return;
        };
        let Some(pid) = cfg.pid else { return };
        let Some(kind) = p.type_.and_then(|t| ConfigKind::from_i32(t.0)) else {
            return;
        };
        let node = p.node.map(|a| a.0).unwrap_or(0);
        let r = match self.replica(pid.app_id, pid.partition_index) {
            Some(r) => r,
            None if kind == ConfigKind::AssignPrimary => {
                match self
                    .ensure_replica_as(&info, pid.partition_index, true)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        error!("cannot create replica {pid}: {e}");
                        return;
                    }
                }
            }
            None => return,
        };
        r.send(Input::Proposal {
            kind,
            node,
            config: membership_of(&cfg),
            info: Box::new(info),
        });
    }

    async fn on_add_learner(&self, req: &Request) {
        let Some(g) = arg::<GroupCheckRequest>(req) else {
            return;
        };
        let (Some(info), Some(cfg)) = (g.app, g.config) else {
            return;
        };
        let Some(pid) = cfg.pid else { return };
        if info.app_id != Some(pid.app_id) {
            return;
        }
        let r = match self.ensure_replica(&info, pid.partition_index).await {
            Ok(r) => r,
            Err(e) => {
                error!("cannot create learner replica {pid}: {e}");
                return;
            }
        };
        r.send(Input::AddLearner {
            from: cfg.primary.map(|a| a.0).unwrap_or(0),
            ballot: cfg.ballot.unwrap_or(0),
            signature: cfg.learner_signature.unwrap_or(0),
        });
    }

    async fn on_group_check(&self, req: &Request) -> Reply {
        let Some(g) = arg::<GroupCheckRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let cfg = g.config.clone().unwrap_or_default();
        let pid = cfg.pid.unwrap_or_default();
        let mut resp = GroupCheckResponse {
            pid: Some(pid),
            err: Some(ErrorCode::OK),
            last_committed_decree_in_app: Some(0),
            last_committed_decree_in_prepare_list: Some(0),
            learner_status_: Some(LearnerStatus::LEARNING_INVALID),
            learner_signature: Some(cfg.learner_signature.unwrap_or(0)),
            node: Some(self.net.me),
            is_split_stopped: None,
            disk_status: None,
            hp_node: Some(self.net.me_hp.clone()),
        };
        if !self.meta_connected.load(Ordering::SeqCst) {
            resp.err = Some(ErrorCode::INVALID_STATE);
            return Reply::of(&resp);
        }
        let learner = cfg.status == Some(PartitionStatus::PS_POTENTIAL_SECONDARY);
        let r = match (
            self.replica(pid.app_id, pid.partition_index),
            learner,
            g.app,
        ) {
            (Some(r), _, _) => r,
            (None, true, Some(info)) if info.app_id == Some(pid.app_id) => {
                match self.ensure_replica(&info, pid.partition_index).await {
                    Ok(r) => r,
                    Err(_) => {
                        resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
                        return Reply::of(&resp);
                    }
                }
            }
            _ => {
                resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
                return Reply::of(&resp);
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        r.send(Input::GroupCheck {
            from: cfg.primary.map(|a| a.0).unwrap_or(0),
            ballot: cfg.ballot.unwrap_or(0),
            receiver_status: if learner {
                Status::PotentialSecondary
            } else {
                Status::Secondary
            },
            signature: cfg.learner_signature.unwrap_or(0),
            committed: g.last_committed_decree.unwrap_or(0),
            confirmed: g.confirmed_decree,
            reply: tx,
        });
        match rx.await {
            Ok((ok, committed, succeeded, _)) => {
                if !ok {
                    resp.err = Some(ErrorCode::INVALID_STATE);
                }
                resp.last_committed_decree_in_app = Some(committed);
                resp.last_committed_decree_in_prepare_list = Some(committed);
                if succeeded {
                    resp.learner_status_ = Some(LearnerStatus::LEARNING_SUCCEEDED);
                }
            }
            Err(_) => resp.err = Some(ErrorCode::INVALID_STATE),
        }
        Reply::of(&resp)
    }

    async fn on_learn(&self, req: &Request) -> Reply {
        let Some(l) = arg::<LearnRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let pid = l.pid.unwrap_or_default();
        let learn_start = l
            .last_committed_decree_in_app
            .unwrap_or(0)
            .saturating_add(1);
        let mut resp = LearnResponse {
            err: Some(ErrorCode::OK),
            config: None,
            last_committed_decree: Some(0),
            prepare_start_decree: Some(-1),
            type_: Some(LearnType::LT_INVALID),
            state: Some(LearnState::default()),
            learnee: Some(self.net.me),
            base_local_dir: Some(String::new()),
            replica_disk_tag: Some("default".into()),
            hp_learnee: None,
        };
        let Some(r) = self.replica(pid.app_id, pid.partition_index) else {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Reply::of(&resp);
        };
        resp.replica_disk_tag = Some(self.disk_tag_of(&r));
        let (tx, rx) = tokio::sync::oneshot::channel();
        r.send(Input::LearnRequest {
            learner: l.learner.map(|a| a.0).unwrap_or(0),
            signature: l.signature.unwrap_or(0),
            committed: l.last_committed_decree_in_app.unwrap_or(0),
            reply: tx,
        });
        match rx.await {
            Ok(LearnAnswer::Error(e)) => resp.err = Some(ErrorCode::from_name(e)),
            Ok(LearnAnswer::Cache {
                mutations,
                prepare_start,
                committed,
            }) => {
                let mut meta = Vec::new();
                for m in &mutations {
                    m.encode(&mut meta);
                }
                resp.type_ = Some(LearnType::LT_CACHE);
                resp.prepare_start_decree = Some(prepare_start);
                resp.last_committed_decree = Some(committed);
                resp.state = Some(LearnState {
                    from_decree_excluded: Some(
                        mutations.first().map(|m| m.decree - 1).unwrap_or(committed),
                    ),
                    to_decree_included: Some(committed),
                    meta: Some(Blob(meta)),
                    files: Some(Vec::new()),
                    learn_start_decree: Some(learn_start),
                    file_sizes: None,
                    file_checksums: None,
                });
            }
            Ok(LearnAnswer::App {
                learnee,
                dir,
                files,
                decree,
            }) => answer_with_files(
                &mut resp,
                LearnType::LT_APP,
                learnee,
                dir,
                files,
                decree,
                None,
            ),
            Ok(LearnAnswer::Log {
                learnee,
                dir,
                files,
                to_decree,
            }) => answer_with_files(
                &mut resp,
                LearnType::LT_LOG,
                learnee,
                dir,
                files,
                to_decree,
                Some(learn_start),
            ),
            Err(_) => resp.err = Some(ErrorCode::INVALID_STATE),
        }
        // Upstream learners copy files from `config.primary` and name the learnee by
        // `hp_learnee`. Ballot 0: a learner moves to a newer ballot only when it is above its
        // own, and the next group check brings the primary's ballot anyway.
        let learnee = resp.learnee.unwrap_or(self.net.me);
        resp.hp_learnee = Some(book().hp_of(learnee));
        resp.config = Some(ReplicaConfiguration {
            pid: Some(pid),
            ballot: Some(0),
            primary: Some(learnee),
            status: Some(PartitionStatus::PS_POTENTIAL_SECONDARY),
            learner_signature: l.signature,
            pop_all: None,
            split_sync_to_child: None,
            hp_primary: Some(book().hp_of(learnee)),
        });
        Reply::of(&resp)
    }

    async fn on_learn_completion(&self, req: &Request) -> Reply {
        let Some(g) = arg::<GroupCheckResponse>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let pid = g.pid.unwrap_or_default();
        let signature = g.learner_signature.unwrap_or(0);
        let mut resp = LearnNotifyResponse {
            pid: Some(pid),
            err: Some(ErrorCode::OK),
            signature: Some(signature),
        };
        let Some(r) = self.replica(pid.app_id, pid.partition_index) else {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Reply::of(&resp);
        };
        if g.learner_status_ != Some(LearnerStatus::LEARNING_SUCCEEDED) {
            resp.err = Some(ErrorCode::INVALID_STATE);
            return Reply::of(&resp);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        r.send(Input::LearnCompletion {
            learner: g.node.map(|a| a.0).unwrap_or(0),
            signature,
            reply: tx,
        });
        if !rx.await.unwrap_or(false) {
            resp.err = Some(ErrorCode::LEARNER_NOT_FOUND);
        }
        Reply::of(&resp)
    }

    fn on_remove_replica(&self, req: &Request) {
        let Some(c) = arg::<ReplicaConfiguration>(req) else {
            return;
        };
        let pid = c.pid.unwrap_or_default();
        if let Some(r) = self.replica(pid.app_id, pid.partition_index) {
            r.send(Input::Remove {
                ballot: c.ballot.unwrap_or(0),
            });
        }
    }

    /// NFS serving is limited to this server's replica directories.
    fn nfs_allowed(&self, dir: &str) -> bool {
        let p = Path::new(dir);
        p.is_absolute()
            && self.fs.contains(p)
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
    }
}

fn is_read(name: &str) -> bool {
    matches!(
        name,
        "RPC_RRDB_RRDB_GET"
            | "RPC_RRDB_RRDB_TTL"
            | "RPC_RRDB_RRDB_SORTKEY_COUNT"
            | "RPC_RRDB_RRDB_MULTI_GET"
            | "RPC_RRDB_RRDB_BATCH_GET"
            | "RPC_RRDB_RRDB_GET_SCANNER"
            | "RPC_RRDB_RRDB_SCAN"
            | "RPC_RRDB_RRDB_CLEAR_SCANNER"
    )
}

fn is_write(name: &str) -> bool {
    matches!(
        name,
        "RPC_RRDB_RRDB_PUT"
            | "RPC_RRDB_RRDB_MULTI_PUT"
            | "RPC_RRDB_RRDB_REMOVE"
            | "RPC_RRDB_RRDB_MULTI_REMOVE"
            | "RPC_RRDB_RRDB_INCR"
            | "RPC_RRDB_RRDB_CHECK_AND_SET"
            | "RPC_RRDB_RRDB_CHECK_AND_MUTATE"
            | "RPC_RRDB_RRDB_DUPLICATE"
    )
}

/// Refuses a throttled request with ERR_BUSY, after `ms` when the env asks for a delay.
fn reject_busy(sink: ReplySink, ms: u64) {
    if ms == 0 {
        sink.send(Reply::err("ERR_BUSY"));
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            sink.send(Reply::err("ERR_BUSY"));
        });
    }
}

impl Handler for ReplicaStub {
    fn dispatch(self: &Arc<Self>, req: Request, sink: ReplySink) {
        if req.name.starts_with("RPC_RRDB_RRDB_") {
            return self.dispatch_rrdb(req, sink);
        }
        if req.name == "RPC_PREPARE" {
            return self.on_prepare(&req, sink);
        }
        let h = self.clone();
        tokio::spawn(async move {
            if let Some(reply) = h.handle(req).await {
                sink.send(reply);
            }
        });
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>> {
        Box::pin(async move {
            // Client requests and RPC_PREPARE are taken by `dispatch`, in order.
            match req.name.as_str() {
                "RPC_CONFIG_PROPOSAL" => {
                    self.on_proposal(&req).await;
                    None
                }
                "RPC_LEARN_ADD_LEARNER" => {
                    self.on_add_learner(&req).await;
                    None
                }
                "RPC_LEARN" => Some(self.on_learn(&req).await),
                "RPC_GROUP_CHECK" => Some(self.on_group_check(&req).await),
                "RPC_LEARN_COMPLETION_NOTIFY" => Some(self.on_learn_completion(&req).await),
                "RPC_REMOVE_REPLICA" => {
                    self.on_remove_replica(&req);
                    None
                }
                "RPC_NFS_GET_FILE_SIZE" => Some(match arg::<GetFileSizeRequest>(&req) {
                    Some(r) if self.nfs_allowed(r.source_dir.as_deref().unwrap_or("")) => {
                        let resp =
                            tokio::task::spawn_blocking(move || super::nfs::on_get_file_size(&r))
                                .await;
                        match resp {
                            Ok(resp) => Reply::of(&resp),
                            Err(_) => Reply::err("ERR_UNKNOWN"),
                        }
                    }
                    Some(_) => Reply::err("ERR_INVALID_PARAMETERS"),
                    None => Reply::err("ERR_INVALID_DATA"),
                }),
                "RPC_NFS_COPY" => Some(match arg::<CopyRequest>(&req) {
                    Some(r) if self.nfs_allowed(r.source_dir.as_deref().unwrap_or("")) => {
                        let dir = std::path::Path::new(r.source_dir.as_deref().unwrap_or(""));
                        let disk = self.fs.tag_of(dir).unwrap_or_default();
                        super::nfs::pace_send(&disk, r.size.unwrap_or(0).max(0) as u64).await;
                        let resp =
                            tokio::task::spawn_blocking(move || super::nfs::on_copy(&r)).await;
                        match resp {
                            Ok(resp) => Reply::of(&resp),
                            Err(_) => Reply::err("ERR_UNKNOWN"),
                        }
                    }
                    Some(_) => Reply::err("ERR_INVALID_PARAMETERS"),
                    None => Reply::err("ERR_INVALID_DATA"),
                }),
                "RPC_QUERY_DISK_INFO" => Some(self.on_query_disk_info(&req)),
                "RPC_COLD_BACKUP" => Some(self.on_cold_backup(&req)),
                "RPC_QUERY_LAST_CHECKPOINT_INFO" => Some(self.on_query_last_checkpoint(&req)),
                "RPC_ADD_NEW_DISK" => Some(self.on_add_new_disk(&req)),
                "RPC_REPLICA_DISK_MIGRATE" => Some(self.on_disk_migrate(&req)),
                "RPC_NEGOTIATION" => Some(Reply::negotiation()),
                "RPC_CLI_CLI_CALL" => Some(self.remote_command(&req).await),
                _ => Some(Reply::err("ERR_HANDLER_NOT_FOUND")),
            }
        })
    }

    fn http(self: Arc<Self>, req: HttpRequest) -> BoxFuture<HttpReply> {
        Box::pin(async move {
            match req.path.as_str() {
                "/replica/data_version" => self.http_by_app(&req, |r| {
                    let v = r.app().map(|a| a.db.data_version()).unwrap_or(0);
                    serde_json::json!({ "data_version": v.to_string() })
                }),
                "/replica/manual_compaction" => self.http_compaction(&req),
                "/replica/duplication" => self.http_duplication(&req),
                _ => crate::remote_cmd::http(&req, REPLICA_PAGES),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(map: &Mutex<HashMap<(i32, i32), CreationLock>>, key: (i32, i32)) -> CreationSlot<'_> {
        let lock = map.lock().unwrap().entry(key).or_default().clone();
        CreationSlot { map, key, lock }
    }

    #[tokio::test]
    async fn a_creation_lock_leaves_the_map_with_its_last_holder() {
        let map = Mutex::new(HashMap::new());
        let first = slot(&map, (1, 0));
        let guard = first.lock.clone().lock_owned().await;
        // a second caller waits for the same lock
        let second = slot(&map, (1, 0));
        let other = slot(&map, (1, 1));
        assert!(Arc::ptr_eq(&first.lock, &second.lock));
        assert!(second.lock.try_lock().is_err(), "the first holds it");
        drop(guard);
        drop(first);
        assert!(
            map.lock().unwrap().contains_key(&(1, 0)),
            "the second still waits for it"
        );
        {
            let _g = second.lock.clone().lock_owned().await;
        }
        drop(second);
        assert!(!map.lock().unwrap().contains_key(&(1, 0)));
        assert!(map.lock().unwrap().contains_key(&(1, 1)));
        drop(other);
        assert!(map.lock().unwrap().is_empty());
    }
}

//! Duplication on the replica server, the master side of upstream's replica_duplicator: every
//! `duplication_sync_period_second` the server reports to the meta (RPC_CM_DUPLICATION_SYNC)
//! the decree each of its primaries has shipped per duplication, and learns back the
//! duplications of the tables it leads, with the decree the meta persisted. A duplicator per
//! primary and duplication in DS_LOG reads the committed mutations after its last shipped
//! decree from the private log, turns their puts and removes into `duplicate_entry`s (the
//! master's timestamp and cluster id; writes received by duplication, bulk loads and the
//! non-idempotent incr / check-and-set / check-and-mutate are not shipped, as upstream's) and
//! sends them in batches of `duplicate_log_batch_bytes` as RPC_RRDB_RRDB_DUPLICATE to the
//! primary of the same partition of the remote table, found through the remote cluster's
//! metas (`[pegasus.clusters]`). A failed batch is retried every second. A fresh duplication
//! starts after the decree the partition had applied when the duplicator began; nothing is
//! shipped until the meta persisted that start. Private-log files still to be shipped are not
//! collected, on the secondaries too: a primary sends its floor in every group check
//! (upstream's confirmed_decree), so a failover does not lose what was not shipped yet. The
//! old perf counters the admin-cli's table-migrator reads are fed from here.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};

use super::{Replica, ReplicaStub};
use crate::base::dup_common;
use crate::idl::dsn::{Blob, ErrorCode, Gpid, RpcAddress, TaskCode};
use crate::idl::dsn_layer2::{QueryCfgRequest, QueryCfgResponse};
use crate::idl::duplication::*;
use crate::idl::duplication_internal::{DuplicateEntry, DuplicateRequest, DuplicateResponse};
use crate::rpc::client::{call_metas, RpcClient};
use crate::storage::engine::PegasusDb;

/// How long a DUPLICATE request may take (upstream: 100 s).
const SHIP_TIMEOUT: Duration = Duration::from_secs(100);
/// The most decrees one read of the private log loads.
const LOAD_DECREES: i64 = 10_000;
/// Pause after a failed batch.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The private-log floor of duplication (upstream's min_confirmed_decree): the decree up to
/// which every duplication of the partition has shipped, i64::MAX when none holds the log.
/// A primary's own duplicators decide (`own`, i64::MAX without duplicators); what a primary
/// last told us in a group check (`learned`, -1 when none) covers a secondary, and a new
/// primary until its first duplication sync, so a failover does not collect what the old
/// primary had not shipped yet.
pub fn plog_floor(is_primary: bool, own: i64, learned: i64) -> i64 {
    let learned = if learned >= 0 { learned } else { i64::MAX };
    if is_primary {
        own.min(learned)
    } else {
        learned
    }
}

/// The group check's `confirmed_decree` for a floor: -1 (upstream's invalid_decree) when no
/// duplication holds the log.
pub fn confirmed_to_send(floor: i64) -> i64 {
    if floor == i64::MAX {
        -1
    } else {
        floor
    }
}

/// A secondary's learned floor after a group check carrying `confirmed`: a confirmed decree
/// never goes back; a negative one (no duplication, or not started) replaces it.
pub fn learn_confirmed(current: i64, confirmed: i64) -> i64 {
    if confirmed >= 0 {
        current.max(confirmed)
    } else {
        confirmed
    }
}

/// A table's configuration (the given partitions, or all) from another cluster's metas;
/// `who` names that cluster in errors.
async fn query_remote_config(
    metas: &[String],
    app: &str,
    partitions: Vec<i32>,
    who: &str,
) -> Result<QueryCfgResponse, String> {
    let req = QueryCfgRequest {
        app_name: Some(app.to_string()),
        partition_indices: Some(partitions),
    };
    let r: QueryCfgResponse = call_metas(
        metas,
        "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
        &req,
        Duration::from_secs(5),
        |r: &QueryCfgResponse| r.err,
    )
    .await
    .ok_or_else(|| format!("no meta of {who} answered"))?;
    if r.err != Some(ErrorCode::OK) {
        return Err(format!(
            "{who} answered {} for table {app}",
            r.err.map_or("nothing", |e| e.name())
        ));
    }
    Ok(r)
}

/// Update codes a duplicator ships.
fn shippable(code: &str) -> bool {
    matches!(
        code,
        "RPC_RRDB_RRDB_PUT"
            | "RPC_RRDB_RRDB_MULTI_PUT"
            | "RPC_RRDB_RRDB_REMOVE"
            | "RPC_RRDB_RRDB_MULTI_REMOVE"
    )
}

/// Every file under `dir`, named relative to `base`.
fn list_files(
    base: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            list_files(base, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.display().to_string());
        }
    }
    Ok(())
}

/// The hash that routes a shipped update (of its hash key), for a remote table of another
/// partition count.
fn update_hash(code: &str, body: &[u8]) -> Option<u64> {
    use crate::base::key_schema;
    use crate::storage::app::WriteRequest as W;
    let w = crate::replica::partition::decode_write(code, body)?;
    let blob = |b: &Option<Blob>| b.as_ref().map(|b| b.0.clone()).unwrap_or_default();
    match w {
        W::Put(u) => key_schema::hash_full_key(&blob(&u.key)),
        W::Remove(k) => key_schema::hash_full_key(&k.0),
        W::MultiPut(m) => Some(key_schema::hash(&blob(&m.hash_key), &[])),
        W::MultiRemove(m) => Some(key_schema::hash(&blob(&m.hash_key), &[])),
        _ => None,
    }
}

/// One primary partition's duplication.
#[derive(Debug)]
pub struct Duplicator {
    pub dupid: i32,
    pub gpid: (i32, i32),
    pub remote_cluster: String,
    pub remote_app: String,
    status: Mutex<DuplicationStatus>,
    fail_mode: Mutex<DuplicationFailMode>,
    /// The last decree the remote cluster acknowledged.
    pub last_decree: AtomicI64,
    /// The decree the meta persisted (-1: none yet).
    pub confirmed: AtomicI64,
    /// A duplication that copies the checkpoint first: the decree the follower's checkpoint
    /// must reach (what the partition had applied when the duplicator began).
    min_checkpoint: i64,
    /// Whether this replica has a checkpoint at `min_checkpoint` or later.
    prepared: AtomicBool,
    /// A checkpoint is being made.
    preparing: AtomicBool,
    stopped: AtomicBool,
    running: AtomicBool,
}

impl Duplicator {
    fn status(&self) -> DuplicationStatus {
        self.status
            .lock()
            .map(|s| *s)
            .unwrap_or(DuplicationStatus::DS_PAUSE)
    }

    fn fail_mode(&self) -> DuplicationFailMode {
        self.fail_mode
            .lock()
            .map(|f| *f)
            .unwrap_or(DuplicationFailMode::FAIL_SLOW)
    }

    fn set_status(&self, s: DuplicationStatus) {
        if let Ok(mut g) = self.status.lock() {
            *g = s;
        }
    }
}

/// Where the remote table is: its id, partition count and primaries.
#[derive(Debug, Default, Clone)]
struct RemoteTable {
    app_id: i32,
    partition_count: i32,
    primaries: Vec<Option<SocketAddr>>,
}

type PartitionDups = BTreeMap<i32, Arc<Duplicator>>;

/// The duplications of this server.
#[derive(Default)]
pub struct Dups {
    /// (app, pidx) → dupid → duplicator.
    map: Mutex<HashMap<(i32, i32), PartitionDups>>,
    /// Remote tables, by (cluster, app name).
    remotes: Mutex<HashMap<(String, String), RemoteTable>>,
    clients: Mutex<HashMap<SocketAddr, Arc<RpcClient>>>,
}

impl Dups {
    fn client(&self, a: SocketAddr) -> Option<Arc<RpcClient>> {
        let mut m = self.clients.lock().ok()?;
        Some(
            m.entry(a)
                .or_insert_with(|| Arc::new(RpcClient::new(a, 0)))
                .clone(),
        )
    }

    /// The duplicators of one partition.
    pub fn of(&self, gpid: (i32, i32)) -> Vec<Arc<Duplicator>> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(&gpid).map(|d| d.values().cloned().collect()))
            .unwrap_or_default()
    }
}

impl ReplicaStub {
    /// Starts the duplication sync loop (when `duplication_enabled`).
    pub fn start_dup_tasks(self: &Arc<Self>) {
        if !dup_common::get().enabled {
            return;
        }
        let stub = self.clone();
        tokio::spawn(async move {
            loop {
                let secs = crate::flags::i64_or("duplication_sync_period_second", 10).max(1);
                tokio::time::sleep(Duration::from_secs(secs as u64)).await;
                stub.dup_sync_once().await;
            }
        });
    }

    /// One round of RPC_CM_DUPLICATION_SYNC.
    async fn dup_sync_once(self: &Arc<Self>) {
        let mut confirm: BTreeMap<Gpid, Vec<DuplicationConfirmEntry>> = BTreeMap::new();
        let mut gpids = Vec::new();
        if let Ok(m) = self.replicas.read() {
            gpids.extend(m.iter().map(|(k, r)| (*k, r.clone())));
        }
        for ((app_id, pidx), rep) in &gpids {
            let dups = self.dups.of((*app_id, *pidx));
            if !rep.is_primary() || dups.is_empty() {
                continue;
            }
            let (_, committed, _) = rep.progress();
            let mut pending = 0;
            let mut list = Vec::new();
            for d in dups {
                let last = d.last_decree.load(Ordering::SeqCst);
                let conf = d.confirmed.load(Ordering::SeqCst);
                pending += (committed - last).max(0);
                let prepared = d.prepared.load(Ordering::SeqCst);
                let report_prepared = d.status() == DuplicationStatus::DS_PREPARE && prepared;
                if (last <= conf) && !report_prepared {
                    continue;
                }
                list.push(DuplicationConfirmEntry {
                    dupid: Some(d.dupid),
                    confirmed_decree: Some(last),
                    checkpoint_prepared: Some(prepared),
                    last_committed_decree: Some(committed),
                });
            }
            rep.metrics.dup_pending_mutations.set(pending);
            if !list.is_empty() {
                confirm.insert(
                    Gpid {
                        app_id: *app_id,
                        partition_index: *pidx,
                    },
                    list,
                );
            }
        }
        let Some(meta) = self.net.meta() else { return };
        let req = DuplicationSyncRequest {
            node: Some(self.net.me),
            confirm_list: Some(confirm),
            hp_node: Some(self.net.me_hp.clone()),
        };
        let resp: Option<DuplicationSyncResponse> = meta
            .call_struct(
                "RPC_CM_DUPLICATION_SYNC",
                0,
                0,
                &req,
                Duration::from_secs(3),
            )
            .await;
        let Some(resp) = resp else { return };
        if resp.err != Some(ErrorCode::OK) {
            if resp.err != Some(ErrorCode::SERVICE_NOT_ACTIVE) {
                warn!(
                    "duplication sync: the meta answered {}",
                    resp.err.map(|e| e.name()).unwrap_or("nothing")
                );
            }
            return;
        }
        let dup_map = resp.dup_map.unwrap_or_default();
        for ((app_id, pidx), rep) in gpids {
            let entries = if rep.is_primary() {
                dup_map.get(&app_id).cloned().unwrap_or_default()
            } else {
                BTreeMap::new()
            };
            self.update_duplicators((app_id, pidx), &rep, &entries);
        }
    }

    /// Brings a partition's duplicators in line with the meta's entries.
    fn update_duplicators(
        self: &Arc<Self>,
        gpid: (i32, i32),
        rep: &Arc<Replica>,
        entries: &BTreeMap<i32, DuplicationEntry>,
    ) {
        let mut start = Vec::new();
        let mut prepare = Vec::new();
        {
            let Ok(mut map) = self.dups.map.lock() else {
                return;
            };
            let local = map.entry(gpid).or_default();
            local.retain(|id, d| {
                let keep = entries
                    .get(id)
                    .is_some_and(|e| e.progress.as_ref().is_some_and(|p| p.contains_key(&gpid.1)));
                if !keep {
                    d.stopped.store(true, Ordering::SeqCst);
                    info!(
                        "duplication {id} of {}.{}: removed from this replica",
                        gpid.0, gpid.1
                    );
                }
                keep
            });
            for (id, e) in entries {
                let Some(progress) = e.progress.as_ref().and_then(|p| p.get(&gpid.1)).copied()
                else {
                    continue;
                };
                let status = e.status.unwrap_or(DuplicationStatus::DS_INIT);
                let d = match local.get(id) {
                    Some(d) => {
                        d.confirmed.fetch_max(progress, Ordering::SeqCst);
                        d.last_decree.fetch_max(progress, Ordering::SeqCst);
                        d.clone()
                    }
                    None => {
                        if crate::meta::duplication::status_invalid(status) {
                            continue;
                        }
                        let (_, committed, _) = rep.progress();
                        // Shipping starts right after what was applied (and, with the
                        // checkpoint, is in the checkpoint the follower copies). Upstream
                        // starts after max(applied, 1), which drops decree 1 when it holds a
                        // client write (a fresh table's first one), and never finds a
                        // checkpoint for a partition that has had no write.
                        let min_checkpoint = committed.max(0);
                        let last = if progress >= 0 {
                            progress
                        } else {
                            min_checkpoint
                        };
                        let d = Arc::new(Duplicator {
                            dupid: *id,
                            gpid,
                            remote_cluster: e.remote.clone().unwrap_or_default(),
                            remote_app: e
                                .remote_app_name
                                .clone()
                                .filter(|n| !n.is_empty())
                                .unwrap_or_else(|| rep.app_info().app_name.unwrap_or_default()),
                            status: Mutex::new(status),
                            fail_mode: Mutex::new(DuplicationFailMode::FAIL_SLOW),
                            last_decree: AtomicI64::new(last),
                            confirmed: AtomicI64::new(progress),
                            min_checkpoint,
                            prepared: AtomicBool::new(false),
                            preparing: AtomicBool::new(false),
                            stopped: AtomicBool::new(false),
                            running: AtomicBool::new(false),
                        });
                        info!(
                            "duplication {id} of {}.{} to {}.{}: starts after decree {last}",
                            gpid.0, gpid.1, d.remote_cluster, d.remote_app
                        );
                        local.insert(*id, d.clone());
                        d
                    }
                };
                d.set_status(status);
                if let (Some(f), Ok(mut g)) = (e.fail_mode, d.fail_mode.lock()) {
                    *g = f;
                }
                if status == DuplicationStatus::DS_LOG && !d.running.swap(true, Ordering::SeqCst) {
                    start.push(d);
                } else if status == DuplicationStatus::DS_PREPARE {
                    prepare.push(d);
                }
            }
            if local.is_empty() {
                map.remove(&gpid);
            }
        }
        // Log files holding decrees not yet confirmed stay.
        let floor = self
            .dups
            .of(gpid)
            .iter()
            .map(|d| d.confirmed.load(Ordering::SeqCst))
            .min()
            .unwrap_or(i64::MAX);
        rep.dup_gc_floor.store(floor, Ordering::SeqCst);
        if rep.is_primary() {
            // A primary's duplicators carry the meta's progress from now on.
            rep.dup_primary_confirmed.store(-1, Ordering::SeqCst);
        }
        for d in start {
            let stub = self.clone();
            let rep = rep.clone();
            tokio::spawn(async move {
                stub.ship_loop(&d, &rep).await;
                d.running.store(false, Ordering::SeqCst);
            });
        }
        for d in prepare {
            Self::prepare_checkpoint(&d, rep);
        }
    }

    /// DS_PREPARE: makes sure this replica has a checkpoint holding every decree up to the
    /// duplicator's start (one is made in the background when it has none).
    fn prepare_checkpoint(d: &Arc<Duplicator>, rep: &Arc<Replica>) {
        let data = rep.dir.join("data");
        let newest = PegasusDb::checkpoints(&data).last().map(|(dec, _)| *dec);
        if newest.is_some_and(|dec| dec >= d.min_checkpoint) {
            d.prepared.store(true, Ordering::SeqCst);
            return;
        }
        if d.preparing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(app) = rep.app() else {
            d.preparing.store(false, Ordering::SeqCst);
            return;
        };
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            match app.db.checkpoint(&data) {
                Ok((dec, _)) if dec >= d.min_checkpoint => d.prepared.store(true, Ordering::SeqCst),
                Ok((dec, _)) => info!(
                    "duplication {}: checkpoint {dec} is before {}; trying again",
                    d.dupid, d.min_checkpoint
                ),
                Err(e) => warn!("duplication {}: checkpoint failed: {e}", d.dupid),
            }
            d.preparing.store(false, Ordering::SeqCst);
        });
    }

    /// RPC_QUERY_LAST_CHECKPOINT_INFO from a follower: the newest checkpoint of the
    /// partition, its files named relative to its directory, as upstream's.
    pub(super) fn on_query_last_checkpoint(
        &self,
        req: &crate::rpc::frame::Request,
    ) -> crate::rpc::server::Reply {
        use crate::idl::consensus::{LearnRequest, LearnResponse, LearnState};
        use crate::rpc::server::{arg, Reply};
        let Some(r) = arg::<LearnRequest>(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        let mut resp = LearnResponse {
            err: Some(ErrorCode::OK),
            config: Some(Default::default()),
            last_committed_decree: Some(0),
            prepare_start_decree: Some(0),
            type_: Some(crate::idl::consensus::LearnType::LT_INVALID),
            state: Some(LearnState::default()),
            learnee: Some(self.net.me),
            base_local_dir: Some(String::new()),
            replica_disk_tag: None,
            hp_learnee: Some(self.net.me_hp.clone()),
        };
        let pid = r.pid.unwrap_or_default();
        let Some(rep) = self.replica(pid.app_id, pid.partition_index) else {
            resp.err = Some(ErrorCode::OBJECT_NOT_FOUND);
            return Reply::of(&resp);
        };
        let Some((decree, dir)) = PegasusDb::checkpoints(&rep.dir.join("data")).pop() else {
            resp.err = Some(ErrorCode::PATH_NOT_FOUND);
            return Reply::of(&resp);
        };
        let mut files = Vec::new();
        if list_files(&dir, &dir, &mut files).is_err() {
            resp.err = Some(ErrorCode::GET_LEARN_STATE_FAILED);
            return Reply::of(&resp);
        }
        files.sort();
        resp.last_committed_decree = Some(rep.progress().1);
        resp.base_local_dir = Some(dir.display().to_string());
        resp.state = Some(LearnState {
            from_decree_excluded: Some(0),
            to_decree_included: Some(decree),
            meta: Some(Blob(Vec::new())),
            files: Some(files),
            ..Default::default()
        });
        Reply::of(&resp)
    }

    /// A follower table's new primary: copies the master partition's newest checkpoint into
    /// `<replica dir>/duplication` (the master primary found through the master's metas, its
    /// checkpoint through RPC_QUERY_LAST_CHECKPOINT_INFO, the files by NFS) and makes it the
    /// replica's database, as upstream's replica_follower. On failure the replica is not
    /// created, and the meta's next assignment tries again.
    pub(super) async fn duplicate_checkpoint(
        &self,
        info: &crate::idl::dsn_layer2::AppInfo,
        pidx: i32,
        replica_dir: &std::path::Path,
    ) -> Result<(), String> {
        use crate::idl::consensus::{LearnRequest, LearnResponse};
        let envs = info.envs.clone().unwrap_or_default();
        let metas = dup_common::parse_metas(
            envs.get(dup_common::ENV_MASTER_METAS)
                .map(String::as_str)
                .unwrap_or(""),
        );
        let master_app = envs
            .get(dup_common::ENV_MASTER_APP_NAME)
            .cloned()
            .or_else(|| info.app_name.clone())
            .unwrap_or_default();
        if replica_dir.join("data").join("rdb").exists() {
            return Ok(());
        }
        // The master partition's primary.
        let r = query_remote_config(&metas, &master_app, vec![pidx], "the master cluster").await?;
        if r.partition_count != info.partition_count {
            return Err(format!(
                "{}: the master table has {} partitions, this one {}",
                ErrorCode::INCONSISTENT_STATE.name(),
                r.partition_count.unwrap_or(0),
                info.partition_count.unwrap_or(0)
            ));
        }
        let primary = r
            .partitions
            .unwrap_or_default()
            .into_iter()
            .find(|pc| pc.pid.is_some_and(|g| g.partition_index == pidx))
            .and_then(|pc| {
                let gpid = pc.pid?;
                let a = pc.primary.filter(|a| !a.is_invalid())?.to_socket_addr()?;
                Some((gpid, SocketAddr::V4(a)))
            });
        let why = "the master partition has no primary".to_string();
        let (master_gpid, primary) = primary.ok_or(why)?;
        let c = self
            .dups
            .client(primary)
            .ok_or_else(|| "no client".to_string())?;
        let lr = LearnRequest {
            pid: Some(master_gpid),
            learner: Some(RpcAddress::INVALID),
            signature: Some(0),
            last_committed_decree_in_app: Some(0),
            last_committed_decree_in_prepare_list: Some(0),
            app_specific_learn_request: Some(Blob(Vec::new())),
            max_gced_decree: None,
            hp_learner: None,
            checksum_type: Some(crate::idl::utils::ChecksumType::CST_NONE),
        };
        let resp: LearnResponse = c
            .call_struct(
                "RPC_QUERY_LAST_CHECKPOINT_INFO",
                master_gpid.app_id,
                master_gpid.partition_index,
                &lr,
                Duration::from_secs(5),
            )
            .await
            .ok_or_else(|| format!("no checkpoint info from {primary}"))?;
        if resp.err != Some(ErrorCode::OK) {
            return Err(format!(
                "checkpoint info: {}",
                resp.err.map_or("nothing", |e| e.name())
            ));
        }
        let state = resp.state.unwrap_or_default();
        let files = state.files.unwrap_or_default();
        let source = resp.base_local_dir.unwrap_or_default();
        let dest = replica_dir.join(dup_common::CHECKPOINT_ROOT_DIR);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
        let bytes =
            crate::replica::nfs::copy_remote_files(&c, &source, &files, &dest, 0, 0).await?;
        crate::storage::engine::install_checkpoint(&replica_dir.join("data"), &dest)
            .map_err(|e| format!("install the checkpoint: {e}"))?;
        info!(
            "follower {}.{pidx}: copied checkpoint {} of {master_app} ({} files, {bytes} bytes) from {primary}",
            info.app_id.unwrap_or(0),
            state.to_decree_included.unwrap_or(0),
            files.len()
        );
        Ok(())
    }

    /// Ships a duplicator's mutations while it is in DS_LOG on a primary.
    async fn ship_loop(&self, d: &Arc<Duplicator>, rep: &Arc<Replica>) {
        let m = rep.metrics.clone();
        let plog = rep.dir.join("plog");
        let own_id = dup_common::get().current_id_or_default() as i8;
        while !d.stopped.load(Ordering::SeqCst)
            && d.status() == DuplicationStatus::DS_LOG
            && rep.is_primary()
        {
            if d.confirmed.load(Ordering::SeqCst) < 0 {
                // Nothing ships before the meta persisted where this duplication starts.
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            let from = d.last_decree.load(Ordering::SeqCst) + 1;
            let (_, committed, _) = rep.progress();
            if from > committed {
                let ms = crate::flags::i64_or("dup_no_mutation_load_delay_ms", 100).max(1);
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                continue;
            }
            // Up to this many decrees per read: each read goes through whole log files, so
            // reading little at a time would read the same file again and again.
            let to = committed.min(from + LOAD_DECREES);
            let (dir, gpid) = (plog.clone(), d.gpid);
            let loaded = tokio::task::spawn_blocking(move || {
                crate::replica::mutation_log::read_decrees(&dir, gpid.0, gpid.1, from, to)
            })
            .await;
            let muts = match loaded {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    warn!(
                        "duplication {} of {}.{}: reading the log: {e}",
                        d.dupid, gpid.0, gpid.1
                    );
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    continue;
                }
                Err(_) => continue,
            };
            if muts.first().map(|x| x.decree) != Some(from) {
                warn!(
                    "duplication {} of {}.{}: decree {from} is not in the private log yet",
                    d.dupid, gpid.0, gpid.1
                );
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            // The decrees read without a gap.
            let mut last = from - 1;
            let mut entries = Vec::new();
            for mu in &muts {
                if mu.decree != last + 1 {
                    break;
                }
                last = mu.decree;
                m.dup_log_read_mutations.inc();
                for u in &mu.updates {
                    m.dup_log_read_bytes.add(u.data.len() as i64);
                    if !shippable(&u.code) {
                        continue;
                    }
                    entries.push((
                        update_hash(&u.code, &u.data),
                        DuplicateEntry {
                            timestamp: Some(mu.timestamp),
                            task_code: Some(TaskCode(u.code.to_string())),
                            raw_message: Some(Blob(u.data.to_vec())),
                            cluster_id: Some(own_id),
                            verify_timetag: None,
                        },
                    ));
                }
            }
            match self.ship(d, entries).await {
                Ok(()) => {
                    d.last_decree.fetch_max(last, Ordering::SeqCst);
                }
                Err(e) => {
                    m.dup_shipped_failed_requests.inc();
                    warn!(
                        "duplication {} of {}.{} to {}.{}: {e}; retrying",
                        d.dupid, gpid.0, gpid.1, d.remote_cluster, d.remote_app
                    );
                    if let Ok(mut r) = self.dups.remotes.lock() {
                        r.remove(&(d.remote_cluster.clone(), d.remote_app.clone()));
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Sends entries in batches to the remote table's primaries.
    async fn ship(
        &self,
        d: &Arc<Duplicator>,
        entries: Vec<(Option<u64>, DuplicateEntry)>,
    ) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let table = self.remote_table(&d.remote_cluster, &d.remote_app).await?;
        let m = self.replica(d.gpid.0, d.gpid.1).map(|r| r.metrics.clone());
        let batch_bytes = crate::flags::i64_or("duplicate_log_batch_bytes", 4096).max(1) as usize;
        let max_bytes = crate::flags::i64_or("dup_max_allowed_write_size", 1 << 20).max(0) as usize;
        let mut batch: Vec<DuplicateEntry> = Vec::new();
        let mut bytes = 0usize;
        let mut hash = None;
        let n = entries.len();
        for (i, (h, e)) in entries.into_iter().enumerate() {
            bytes += e.raw_message.as_ref().map_or(0, |b| b.0.len());
            hash = h.or(hash);
            batch.push(e);
            let last = i + 1 == n;
            if last || bytes >= batch_bytes || (max_bytes > 0 && bytes >= max_bytes) {
                let pidx = if table.partition_count == self.partition_count_of(d.gpid.0) {
                    d.gpid.1
                } else {
                    (hash.unwrap_or(0) % table.partition_count.max(1) as u64) as i32
                };
                let req = DuplicateRequest {
                    entries: Some(std::mem::take(&mut batch)),
                };
                let primary = table
                    .primaries
                    .get(pidx as usize)
                    .copied()
                    .flatten()
                    .ok_or_else(|| {
                        format!("partition {pidx} of the remote table has no primary")
                    })?;
                let c = self
                    .dups
                    .client(primary)
                    .ok_or_else(|| "no client".to_string())?;
                let body_len = bytes;
                let r: Option<DuplicateResponse> = c
                    .call_struct(
                        "RPC_RRDB_RRDB_DUPLICATE",
                        table.app_id,
                        pidx,
                        &req,
                        SHIP_TIMEOUT,
                    )
                    .await;
                match r {
                    Some(r) if r.error.unwrap_or(0) == 0 => {
                        if let Some(m) = &m {
                            m.dup_shipped_successful_requests.inc();
                            m.dup_shipped_bytes.add(body_len as i64);
                        }
                    }
                    Some(r) => {
                        return Err(format!(
                            "the remote answered error {}: {}",
                            r.error.unwrap_or(0),
                            r.error_hint.unwrap_or_default()
                        ))
                    }
                    None => return Err(format!("no answer from {primary}")),
                }
                bytes = 0;
                hash = None;
            }
        }
        Ok(())
    }

    fn partition_count_of(&self, app_id: i32) -> i32 {
        self.replicas
            .read()
            .ok()
            .and_then(|m| {
                m.iter()
                    .find(|((a, _), _)| *a == app_id)
                    .map(|(_, r)| r.app_info().partition_count.unwrap_or(0))
            })
            .unwrap_or(0)
    }

    /// The remote table's configuration, from the remote cluster's metas (cached until a
    /// batch fails).
    async fn remote_table(&self, cluster: &str, app: &str) -> Result<RemoteTable, String> {
        let key = (cluster.to_string(), app.to_string());
        if let Some(t) = self
            .dups
            .remotes
            .lock()
            .ok()
            .and_then(|r| r.get(&key).cloned())
        {
            return Ok(t);
        }
        let cfg = dup_common::get();
        let metas = cfg
            .clusters
            .get(cluster)
            .ok_or_else(|| format!("cluster {cluster} is not in [pegasus.clusters]"))?;
        let r = query_remote_config(metas, app, Vec::new(), cluster).await?;
        // A partition count from a peer sizes a vector: refuse absurd ones.
        let count = r.partition_count.unwrap_or(0);
        if !(1..=crate::base::MAX_PARTITION_COUNT).contains(&count) {
            return Err(format!("{cluster} says table {app} has {count} partitions"));
        }
        let mut primaries = vec![None; count as usize];
        for p in r.partitions.unwrap_or_default() {
            let i = p.pid.map(|g| g.partition_index).unwrap_or(-1);
            if i >= 0 && (i as usize) < primaries.len() {
                primaries[i as usize] = p
                    .primary
                    .filter(|a: &RpcAddress| !a.is_invalid())
                    .and_then(|a| a.to_socket_addr())
                    .map(SocketAddr::V4);
            }
        }
        let t = RemoteTable {
            app_id: r.app_id.unwrap_or(0),
            partition_count: count,
            primaries,
        };
        if let Ok(mut m) = self.dups.remotes.lock() {
            m.insert(key, t.clone());
        }
        Ok(t)
    }
}

impl ReplicaStub {
    /// `/replica/duplication?appid=`: each duplication of the table's primaries here, as
    /// upstream's page.
    pub(super) fn http_duplication(
        &self,
        req: &crate::rpc::http::HttpRequest,
    ) -> crate::rpc::server::HttpReply {
        use crate::rpc::server::HttpReply;
        let reply = |status: u16, body: String| HttpReply {
            status,
            content_type: "text/plain",
            body,
            location: None,
        };
        if !dup_common::get().enabled {
            return reply(
                404,
                "duplication is not enabled [FLAGS_duplication_enabled=false]".into(),
            );
        }
        let app_id = match Self::http_app_id(req, "appid") {
            Ok(id) => id,
            Err(r) => return r,
        };
        let primaries: Vec<_> = self
            .replicas_of(app_id)
            .into_iter()
            .filter(|(_, r)| r.is_primary())
            .collect();
        if primaries.is_empty() {
            return reply(404, format!("no primary for app [appid={app_id}]"));
        }
        let mut out: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
        for (pidx, r) in &primaries {
            let (_, committed, _) = r.progress();
            for d in self.dups.of((app_id, *pidx)) {
                let last = d.last_decree.load(Ordering::SeqCst);
                let conf = d.confirmed.load(Ordering::SeqCst);
                out.entry(d.dupid.to_string()).or_default().insert(
                    format!("{app_id}.{pidx}"),
                    serde_json::json!({
                        "duplicating": d.status() == DuplicationStatus::DS_LOG,
                        "not_confirmed_mutations_num": committed - conf,
                        "not_duplicated_mutations_num": committed - last,
                        "fail_mode": crate::meta::duplication::fail_mode_name(
                            d.fail_mode()
                        ),
                        "remote_app_name": d.remote_app,
                    }),
                );
            }
        }
        if out.is_empty() {
            return reply(
                404,
                format!("no duplication assigned for app [appid={app_id}]"),
            );
        }
        HttpReply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_string(&out).unwrap_or_default(),
            location: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_client_writes_are_shipped() {
        assert!(shippable("RPC_RRDB_RRDB_PUT") && shippable("RPC_RRDB_RRDB_MULTI_REMOVE"));
        assert!(!shippable("RPC_RRDB_RRDB_INCR"));
        assert!(!shippable("RPC_RRDB_RRDB_DUPLICATE"));
        assert!(!shippable("RPC_REPLICATION_WRITE_EMPTY"));
    }

    #[test]
    fn the_plog_floor_follows_the_primary_and_survives_a_failover() {
        // No duplication anywhere: nothing holds the log, and the group check says -1.
        assert_eq!(plog_floor(true, i64::MAX, -1), i64::MAX);
        assert_eq!(plog_floor(false, i64::MAX, -1), i64::MAX);
        assert_eq!(confirmed_to_send(plog_floor(true, i64::MAX, -1)), -1);
        // A primary shipping up to 40 tells its secondaries 40; they keep what follows.
        assert_eq!(confirmed_to_send(plog_floor(true, 40, -1)), 40);
        let learned = learn_confirmed(-1, 40);
        assert_eq!(plog_floor(false, i64::MAX, learned), 40);
        // A secondary's stale own floor (from an earlier term as primary) does not count.
        assert_eq!(plog_floor(false, 10, learned), 40);
        // Promoted before its first duplication sync, it still keeps what follows 40.
        assert_eq!(plog_floor(true, i64::MAX, learned), 40);
        // Its duplicators, once synced, may hold less (the meta's persisted progress).
        assert_eq!(plog_floor(true, 35, learned), 35);
        // A fresh duplication that has not started holds everything from decree 0.
        assert_eq!(plog_floor(true, -1, -1), -1);
        assert_eq!(confirmed_to_send(-1), -1);
    }

    #[test]
    fn a_learned_confirmed_decree_never_goes_back_until_duplication_ends() {
        assert_eq!(learn_confirmed(-1, 7), 7);
        assert_eq!(learn_confirmed(9, 7), 9);
        assert_eq!(learn_confirmed(9, 12), 12);
        assert_eq!(learn_confirmed(12, -1), -1);
    }
}

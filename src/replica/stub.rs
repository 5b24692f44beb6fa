//! The replica server (upstream's `replica_stub`): hosts the replicas of this node, routes
//! RRDB requests to them, beacons the meta server and follows its partition assignment
//! through config sync.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use log::{error, info, warn};

use crate::idl::dsn::{Blob, Gpid, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus};
use crate::idl::fd::{BeaconAck, BeaconMsg};
use crate::idl::meta_admin::{ConfigurationQueryByNodeRequest, ConfigurationQueryByNodeResponse};
use crate::idl::metadata::{PartitionStatus, ReplicaInfo};
use crate::idl::protocol;
use crate::idl::rrdb;
use crate::rpc::client::RpcClient;
use crate::rpc::frame::{ReplyValue, Request};
use crate::rpc::server::{arg, arg_i64, BoxFuture, Handler, HttpReply, Reply};
use crate::storage::app::{WriteRequest, WriteResponse};

use super::partition::{self as replica, Replica};

/// Settings of a replica server, from `config.ini`.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    pub data_dir: PathBuf,
    pub self_addr: SocketAddr,
    pub meta_servers: Vec<SocketAddr>,
    pub beacon_interval: Duration,
    pub lease: Duration,
    pub config_sync_interval: Duration,
    pub max_allowed_write_size: usize,
}

/// The replica server.
pub struct ReplicaStub {
    opts: ReplicaOptions,
    self_rpc: RpcAddress,
    server_name: String,
    replicas: RwLock<HashMap<(i32, i32), Arc<Replica>>>,
    meta_connected: AtomicBool,
    start_time_ms: i64,
}

fn now_ms() -> i64 {
    (crate::base::value_schema::now_us() / 1000) as i64
}

fn to_rpc_address(a: SocketAddr) -> RpcAddress {
    match a {
        SocketAddr::V4(v4) => RpcAddress::from_socket_addr(v4),
        SocketAddr::V6(_) => RpcAddress::INVALID,
    }
}

fn struct_value<T: thrift::protocol::TSerializable>(v: &T) -> ReplyValue {
    ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(v),
    }
}

impl ReplicaStub {
    pub fn new(opts: ReplicaOptions) -> Arc<ReplicaStub> {
        let self_rpc = to_rpc_address(opts.self_addr);
        Arc::new(ReplicaStub {
            server_name: opts.self_addr.to_string(),
            self_rpc,
            opts,
            replicas: RwLock::new(HashMap::new()),
            meta_connected: AtomicBool::new(false),
            start_time_ms: now_ms(),
        })
    }

    pub fn self_address(&self) -> RpcAddress {
        self.self_rpc
    }

    fn reps_dir(&self) -> PathBuf {
        self.opts.data_dir.join("reps")
    }

    /// Opens every replica found on disk; a replica that fails to open is moved aside to
    /// `<dir>.<us>.err` as upstream does.
    pub fn load_replicas(&self) -> std::io::Result<()> {
        let reps = self.reps_dir();
        std::fs::create_dir_all(&reps)?;
        for entry in std::fs::read_dir(&reps)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((app_id, pidx, app_type)) = replica::parse_dir_name(&name) else {
                continue;
            };
            let dir = entry.path();
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
                    Replica::open(&dir, info, pidx, self.server_name.clone())
                });
            match loaded {
                Ok(r) => {
                    info!("loaded replica {app_id}.{pidx} from {}", dir.display());
                    if let Ok(mut m) = self.replicas.write() {
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
        }
        Ok(())
    }

    fn replica(&self, app_id: i32, pidx: i32) -> Option<Arc<Replica>> {
        self.replicas.read().ok()?.get(&(app_id, pidx)).cloned()
    }

    /// Flushes every hosted database (used on graceful shutdown).
    pub fn flush_all(&self) {
        let all: Vec<Arc<Replica>> = match self.replicas.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return,
        };
        for r in all {
            if let Err(e) = r.app.db.flush() {
                warn!("flush of {} failed: {e}", r.dir.display());
            }
        }
    }

    /// Starts the beacon and config-sync loops toward the meta servers.
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
        let clients: Vec<Arc<RpcClient>> = metas
            .iter()
            .map(|a| Arc::new(RpcClient::new(*a, self.self_rpc.0)))
            .collect();
        let mut leader = 0usize;
        let mut last_ack_ms = 0i64;
        let mut last_sync_ms = 0i64;
        loop {
            let client = clients[leader % clients.len()].clone();
            let beacon = BeaconMsg {
                time: Some(now_ms()),
                from_node: Some(self.self_rpc),
                to_node: Some(to_rpc_address(client.addr())),
                start_time: Some(self.start_time_ms),
                hp_from_node: None,
                hp_to_node: None,
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
                    let ack: Option<BeaconAck> =
                        protocol::decode(&reply.body, protocol::read_arg::<BeaconAck>).ok();
                    match ack {
                        Some(a) if a.is_master == Some(true) => {
                            last_ack_ms = beacon.time.unwrap_or(0);
                            if !self.meta_connected.swap(true, Ordering::SeqCst) {
                                info!("connected to meta server {}", client.addr());
                                last_sync_ms = 0;
                            }
                        }
                        Some(a) => {
                            let hint = a.primary_node.and_then(|p| p.to_socket_addr());
                            leader = match hint
                                .and_then(|h| metas.iter().position(|m| *m == SocketAddr::V4(h)))
                            {
                                Some(i) => i,
                                None => leader + 1,
                            };
                        }
                        None => warn!("undecodable beacon ack from {}", client.addr()),
                    }
                }
                Ok(reply) => warn!("beacon to {} failed: {}", client.addr(), reply.error),
                Err(e) => {
                    warn!("beacon to {} failed: {e}", client.addr());
                    leader += 1;
                }
            }
            let now = now_ms();
            if self.meta_connected.load(Ordering::SeqCst)
                && now - last_ack_ms > self.opts.lease.as_millis() as i64
            {
                warn!("meta lease expired; replicas stop serving until the meta is back");
                self.meta_connected.store(false, Ordering::SeqCst);
                if let Ok(m) = self.replicas.read() {
                    for r in m.values() {
                        r.stop_serving();
                    }
                }
            }
            if self.meta_connected.load(Ordering::SeqCst)
                && now - last_sync_ms >= self.opts.config_sync_interval.as_millis() as i64
                && self.config_sync(&client).await
            {
                last_sync_ms = now;
            }
            tokio::time::sleep(
                self.opts
                    .beacon_interval
                    .min(self.opts.config_sync_interval),
            )
            .await;
        }
    }

    fn stored_replicas(&self) -> Vec<ReplicaInfo> {
        let m = match self.replicas.read() {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        m.iter()
            .map(|((app_id, pidx), r)| {
                let d = r.app.db.last_committed_decree();
                ReplicaInfo {
                    pid: Some(Gpid::new(*app_id, *pidx)),
                    ballot: Some(r.ballot()),
                    status: Some(if r.is_serving() {
                        PartitionStatus::PS_PRIMARY
                    } else {
                        PartitionStatus::PS_INACTIVE
                    }),
                    last_committed_decree: Some(d),
                    last_prepared_decree: Some(d),
                    last_durable_decree: Some(d),
                    app_type: Some("pegasus".into()),
                    disk_tag: Some("default".into()),
                    manual_compact_status: None,
                }
            })
            .collect()
    }

    /// One config sync with the meta; returns whether it succeeded.
    async fn config_sync(&self, client: &RpcClient) -> bool {
        let req = ConfigurationQueryByNodeRequest {
            node: Some(self.self_rpc),
            stored_replicas: Some(self.stored_replicas()),
            info: None,
            hp_node: None,
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
            if cfg.primary != Some(self.self_rpc) {
                continue;
            }
            if info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            listed.insert((pid.app_id, pid.partition_index));
            let ballot = cfg.ballot.unwrap_or(0);
            let r = match self.replica(pid.app_id, pid.partition_index) {
                Some(r) => r,
                None => match self.create_replica(&info, pid.partition_index) {
                    Ok(r) => r,
                    Err(e) => {
                        error!("cannot create replica {pid}: {e}");
                        continue;
                    }
                },
            };
            r.become_primary(ballot, &info);
        }
        if let Ok(m) = self.replicas.read() {
            for (k, r) in m.iter() {
                if !listed.contains(k) && r.is_serving() {
                    info!(
                        "replica {}.{} is no longer assigned here; closing it",
                        k.0, k.1
                    );
                    r.stop_serving();
                }
            }
        }
        true
    }

    fn create_replica(&self, info: &AppInfo, pidx: i32) -> Result<Arc<Replica>, String> {
        let app_id = info.app_id.unwrap_or(0);
        let app_type = info.app_type.clone().unwrap_or_else(|| "pegasus".into());
        let dir = self
            .reps_dir()
            .join(replica::dir_name(app_id, pidx, &app_type));
        let mut stored = info.clone();
        stored.status = Some(AppStatus::AS_AVAILABLE);
        let r = Replica::open(&dir, stored, pidx, self.server_name.clone())?;
        if let Ok(mut m) = self.replicas.write() {
            m.insert((app_id, pidx), r.clone());
        }
        info!("created replica {app_id}.{pidx} at {}", dir.display());
        Ok(r)
    }

    async fn handle_rrdb(self: Arc<Self>, req: Request) -> Option<Reply> {
        let name = req.name.as_str();
        let Some(r) = self.replica(req.app_id, req.partition_index) else {
            return (name != "RPC_RRDB_RRDB_CLEAR_SCANNER")
                .then(|| Reply::err("ERR_OBJECT_NOT_FOUND"));
        };
        if name == "RPC_RRDB_RRDB_CLEAR_SCANNER" {
            // Never answered, whatever happens.
            if let Some(id) = arg_i64(&req) {
                r.app.on_clear_scanner(id);
            }
            return None;
        }
        if !r.is_serving() {
            return Some(Reply::err("ERR_INVALID_STATE"));
        }
        let bad = || Some(Reply::err("ERR_INVALID_DATA"));
        let app = &r.app;
        let write = match name {
            "RPC_RRDB_RRDB_GET" => {
                return arg::<Blob>(&req)
                    .map(|k| Reply::of(&app.on_get(&k)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_TTL" => {
                return arg::<Blob>(&req)
                    .map(|k| Reply::of(&app.on_ttl(&k)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_SORTKEY_COUNT" => {
                return arg::<Blob>(&req)
                    .map(|k| Reply::of(&app.on_sortkey_count(&k)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_MULTI_GET" => {
                return arg::<rrdb::MultiGetRequest>(&req)
                    .map(|m| Reply::of(&app.on_multi_get(&m)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_BATCH_GET" => {
                return arg::<rrdb::BatchGetRequest>(&req)
                    .map(|m| Reply::of(&app.on_batch_get(&m)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_GET_SCANNER" => {
                return arg::<rrdb::GetScannerRequest>(&req)
                    .map(|m| Reply::of(&app.on_get_scanner(&m)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_SCAN" => {
                return arg::<rrdb::ScanRequest>(&req)
                    .map(|m| Reply::of(&app.on_scan(&m)))
                    .or_else(bad)
            }
            "RPC_RRDB_RRDB_PUT" => arg(&req).map(WriteRequest::Put),
            "RPC_RRDB_RRDB_MULTI_PUT" => arg(&req).map(WriteRequest::MultiPut),
            "RPC_RRDB_RRDB_REMOVE" => arg(&req).map(WriteRequest::Remove),
            "RPC_RRDB_RRDB_MULTI_REMOVE" => arg(&req).map(WriteRequest::MultiRemove),
            "RPC_RRDB_RRDB_INCR" => arg(&req).map(WriteRequest::Incr),
            "RPC_RRDB_RRDB_CHECK_AND_SET" => arg(&req).map(WriteRequest::CheckAndSet),
            "RPC_RRDB_RRDB_CHECK_AND_MUTATE" => arg(&req).map(WriteRequest::CheckAndMutate),
            _ => return Some(Reply::err("ERR_HANDLER_NOT_FOUND")),
        };
        if req.body.len() > self.opts.max_allowed_write_size {
            return Some(Reply::err("ERR_INVALID_DATA"));
        }
        let Some(write) = write else { return bad() };
        let resp = r.write(write).await?;
        Some(match resp {
            WriteResponse::Update(u) => Reply::of(&u),
            WriteResponse::MultiRemove(u) => Reply::of(&u),
            WriteResponse::Incr(u) => Reply::of(&u),
            WriteResponse::CheckAndSet(u) => Reply::of(&u),
            WriteResponse::CheckAndMutate(u) => Reply::of(&u),
        })
    }
}

impl Handler for ReplicaStub {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>> {
        Box::pin(async move {
            if req.name.starts_with("RPC_RRDB_RRDB_") {
                return self.handle_rrdb(req).await;
            }
            match req.name.as_str() {
                "RPC_NEGOTIATION" => Some(Reply::negotiation()),
                "RPC_CLI_CLI_CALL" => Some(crate::remote_cmd::handle(&req, "replica")),
                _ => Some(Reply::err("ERR_HANDLER_NOT_FOUND")),
            }
        })
    }

    fn http(self: Arc<Self>, path: String) -> BoxFuture<HttpReply> {
        Box::pin(async move { crate::remote_cmd::http(&path, "replica") })
    }
}

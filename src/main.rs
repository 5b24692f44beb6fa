//! `pegasus_server`: the one binary of pegasus-rs, started like upstream's
//! (`pegasus_server config.ini -app_list meta|replica`), plus script helpers: `probe` (is a
//! table fully served?), `leader` (which meta leads?) and `create_app`.

use pegasus_rs::{config, idl, logging, meta, replica, rpc};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use config::{Config, ConfigError};
use idl::dsn::RpcAddress;

// jemalloc, as TiKV uses: measured against the system allocator with tools/bench.sh (see
// the README's benchmark section).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "usage:\n  pegasus_server <config.ini> -app_list meta|replica [-cargs k1=v1;k2=v2]\n  pegasus_server probe <meta_addr[,meta_addr...]> <table>\n  pegasus_server leader <meta_addr[,meta_addr...]>\n  pegasus_server create_app <meta_addr[,meta_addr...]> <table> <partitions> <replicas>";

fn parse_addr_list(list: &str) -> Result<Vec<SocketAddr>, String> {
    list.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.find(|x| x.is_ipv4()))
                .ok_or_else(|| format!("cannot resolve meta server address {s:?}"))
        })
        .collect()
}

fn host_ip(cfg: &Config) -> Result<Ipv4Addr, ConfigError> {
    let explicit = cfg.string("network", "explicit_host_address", "");
    let _ = cfg.get("network", "primary_interface");
    if explicit.is_empty() {
        return Ok(Ipv4Addr::LOCALHOST);
    }
    explicit.parse::<Ipv4Addr>().map_err(|_| {
        ConfigError(format!(
            "[network] explicit_host_address = {explicit:?} is not an IPv4 address"
        ))
    })
}

fn port_of(cfg: &Config, role: &str) -> Result<u16, ConfigError> {
    let p = cfg.i64(
        &format!("apps.{role}"),
        "ports",
        if role == "meta" { 34601 } else { 34801 },
    )?;
    u16::try_from(p).map_err(|_| ConfigError(format!("[apps.{role}] ports = {p} is out of range")))
}

fn secs(cfg: &Config, key: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(cfg.u64("replication", key, default)?))
}

fn millis(cfg: &Config, section: &str, key: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(cfg.u64(section, key, default)?))
}

fn default_apps(cfg: &Config) -> Result<Vec<meta::server_state::DefaultApp>, ConfigError> {
    let mut out = Vec::new();
    let sections: Vec<String> = cfg
        .sections()
        .filter(|s| s.starts_with("meta_server.apps") || *s == "replication.app")
        .map(String::from)
        .collect();
    for s in sections {
        let name = cfg.string(&s, "app_name", "");
        if name.is_empty() {
            continue;
        }
        let app_type = cfg
            .get(&s, "app_type")
            .ok_or_else(|| ConfigError(format!("[{s}] app_type is required")))?
            .to_string();
        let partition_count = cfg.i64(&s, "partition_count", 1)?;
        if partition_count <= 0 || partition_count > i32::MAX as i64 {
            return Err(ConfigError(format!("[{s}] partition_count must be > 0")));
        }
        let mut envs = std::collections::BTreeMap::new();
        for kv in cfg
            .string(&s, "envs", "")
            .split(',')
            .filter(|x| !x.trim().is_empty())
        {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("[{s}] envs entry {kv:?} is not k=v")))?;
            envs.insert(k.trim().to_string(), v.trim().to_string());
        }
        out.push(meta::server_state::DefaultApp {
            name,
            app_type,
            partition_count: partition_count as i32,
            max_replica_count: cfg.i64(&s, "max_replica_count", 3)? as i32,
            stateful: cfg.bool(&s, "stateful", true)?,
            envs,
        });
    }
    Ok(out)
}

async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

async fn run_meta(cfg: Config) -> Result<(), String> {
    let ip = host_ip(&cfg).map_err(|e| e.to_string())?;
    let port = port_of(&cfg, "meta").map_err(|e| e.to_string())?;
    let data_dir = PathBuf::from(cfg.string("core", "data_dir", "./data")).join("meta");
    let store_type = cfg.string(
        "meta_server",
        "meta_state_service_type",
        "meta_state_service_simple",
    );
    let lock_type = cfg.string(
        "meta_server",
        "distributed_lock_service_type",
        "distributed_lock_service_simple",
    );
    let use_zk = match store_type.as_str() {
        "meta_state_service_simple" => false,
        "meta_state_service_zookeeper" => true,
        other => {
            return Err(format!(
                "[meta_server] meta_state_service_type = {other:?}: expected meta_state_service_simple or meta_state_service_zookeeper"
            ))
        }
    };
    let zk_lock = match lock_type.as_str() {
        "distributed_lock_service_simple" => false,
        "distributed_lock_service_zookeeper" => true,
        other => {
            return Err(format!(
                "[meta_server] distributed_lock_service_type = {other:?}: expected distributed_lock_service_simple or distributed_lock_service_zookeeper"
            ))
        }
    };
    if zk_lock && !use_zk {
        return Err("distributed_lock_service_zookeeper needs meta_state_service_zookeeper".into());
    }
    if use_zk && !zk_lock {
        log::warn!(
            "ZooKeeper state with distributed_lock_service_simple: run only ONE meta server on this cluster root"
        );
    }
    let params = cfg.string("meta_server", "meta_state_service_parameters", "");
    let store_dir = match params.split_whitespace().next() {
        Some(d) => PathBuf::from(d),
        None => data_dir.clone(),
    };
    let c = |e: ConfigError| e.to_string();
    let level = match cfg
        .string("meta_server", "meta_function_level_on_start", "steady")
        .as_str()
    {
        "stopped" => 100,
        "blind" => 200,
        "freezed" => 300,
        "steady" => 400,
        "lively" => 500,
        other => {
            return Err(format!(
                "[meta_server] meta_function_level_on_start = {other:?} is not a level"
            ))
        }
    };
    let opts = meta::server_state::MetaOptions {
        cluster_root: cfg.string("meta_server", "cluster_root", "/"),
        cluster_name: cfg.string("replication", "cluster_name", ""),
        server_list: cfg
            .string("meta_server", "server_list", "")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        grace: secs(&cfg, "fd_grace_seconds", 22).map_err(c)?,
        min_live_node_count_for_unfreeze: cfg
            .u64("meta_server", "min_live_node_count_for_unfreeze", 3)
            .map_err(c)? as usize,
        min_allowed_replica_count: cfg
            .i64("meta_server", "min_allowed_replica_count", 1)
            .map_err(c)? as i32,
        max_allowed_replica_count: cfg
            .i64("meta_server", "max_allowed_replica_count", 5)
            .map_err(c)? as i32,
        hold_seconds_for_dropped_app: cfg
            .i64("meta_server", "hold_seconds_for_dropped_app", 604_800)
            .map_err(c)?,
        start_level: idl::meta_admin::MetaFunctionLevel(level),
        guardian: meta::guardian::GuardianOptions {
            replica_assign_delay_ms_for_dropouts: cfg
                .i64(
                    "meta_server",
                    "replica_assign_delay_ms_for_dropouts",
                    600_000,
                )
                .map_err(c)?,
            mutation_2pc_min_replica_count: cfg
                .i64("replication", "mutation_2pc_min_replica_count", 2)
                .map_err(c)? as i32,
            max_reserved_dropped_replicas: cfg
                .u64("meta_server", "max_reserved_dropped_replicas", 1)
                .map_err(c)? as u32,
            ..Default::default()
        },
        lb_interval: millis(&cfg, "replication", "lb_interval_ms", 10_000).map_err(c)?,
        balancer: meta::balancer::BalancerOptions {
            balancer_in_turn: cfg
                .bool("meta_server", "balancer_in_turn", false)
                .map_err(c)?,
            only_primary_balancer: cfg
                .bool("meta_server", "only_primary_balancer", false)
                .map_err(c)?,
            only_move_primary: cfg
                .bool("meta_server", "only_move_primary", false)
                .map_err(c)?,
            ignored_apps: Default::default(),
            balance_cluster: cfg
                .bool("meta_server", "balance_cluster", false)
                .map_err(c)?,
            balance_op_count_per_round: cfg
                .u64("meta_server", "balance_op_count_per_round", 10)
                .map_err(c)? as usize,
        },
        node_live_percentage_threshold_for_update: cfg
            .u64(
                "meta_server",
                "node_live_percentage_threshold_for_update",
                65,
            )
            .map_err(c)?
            .min(100),
        add_secondary_flow_control: cfg
            .bool("meta_server", "add_secondary_enable_flow_control", false)
            .map_err(c)?,
        add_secondary_max_count_for_one_node: cfg
            .i64("meta_server", "add_secondary_max_count_for_one_node", 10)
            .map_err(c)?,
    };
    let lb_settings = meta::remote_commands::LbSettings::new(
        opts.balancer.clone(),
        opts.add_secondary_flow_control,
        opts.add_secondary_max_count_for_one_node,
        opts.guardian.replica_assign_delay_ms_for_dropouts,
        opts.node_live_percentage_threshold_for_update as i64,
    );
    let check_interval = secs(&cfg, "fd_check_interval_seconds", 2).map_err(c)?;
    let defaults = default_apps(&cfg).map_err(c)?;
    let self_addr = RpcAddress::from_ipv4(ip, port);
    let self_str = self_addr.to_string();
    let (election, zk_hosts, store): (_, _, Box<dyn meta::state_store::StateStore>) = if use_zk {
        let zk_opts = meta::zk_store::ZkOptions {
            hosts: cfg.string("zookeeper", "hosts_list", ""),
            session_timeout: millis(&cfg, "zookeeper", "timeout_ms", 30_000).map_err(c)?,
        };
        let _ = cfg.get("zookeeper", "logfile");
        let session = meta::zk_store::ZkSession::connect(&zk_opts, meta::election::fatal).await?;
        let election = if zk_lock {
            let lock_params = cfg.string("meta_server", "distributed_lock_service_parameters", "");
            let lock_root = lock_params.split_whitespace().next().unwrap_or("");
            meta::election::Election::zookeeper(session.clone(), lock_root, &self_str).await?
        } else {
            meta::election::Election::simple(&self_str)
        };
        let store = meta::zk_store::ZkStore::new(session);
        (election, zk_opts.hosts, Box::new(store))
    } else {
        // Read by the ZooKeeper services only.
        for (sec, key) in [
            ("meta_server", "distributed_lock_service_parameters"),
            ("zookeeper", "hosts_list"),
            ("zookeeper", "timeout_ms"),
            ("zookeeper", "logfile"),
        ] {
            let _ = cfg.get(sec, key);
        }
        let store = meta::state_store::LocalStore::open(&store_dir).map_err(|e| e.to_string())?;
        (
            meta::election::Election::simple(&self_str),
            String::new(),
            Box::new(store),
        )
    };
    warn_unused(&cfg, &["meta_server", "zookeeper"]);
    let service =
        meta::service::MetaService::new(self_addr, check_interval, election, zk_hosts, lb_settings);
    service.start(move || meta::server_state::ServerState::load(store, opts, &defaults));
    let listener = listen(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        port,
    )))
    .await?;
    log::info!("meta server listening on {ip}:{port}");
    pegasus_rs::metrics::set_identity(pegasus_rs::metrics::Identity {
        cluster: cfg.string("replication", "cluster_name", ""),
        role: "meta".into(),
        host: local_host_name(),
        port,
    });
    pegasus_rs::metrics::perf_counters::start();
    let opts = rpc::server::ServerOptions {
        self_address: self_addr.0,
        conn_threshold_per_ip: cfg.u64("network", "conn_threshold_per_ip", 0).map_err(c)? as usize,
        ..Default::default()
    };
    tokio::select! {
        _ = rpc::server::serve(listener, service, opts) => {}
        _ = shutdown_signal() => log::info!("meta server stopping"),
    }
    Ok(())
}

/// This machine's host name (upstream's `host` in `/metrics`).
fn local_host_name() -> String {
    dns_lookup::get_hostname().unwrap_or_default()
}

async fn run_replica(cfg: Config) -> Result<(), String> {
    let c = |e: ConfigError| e.to_string();
    let ip = host_ip(&cfg).map_err(c)?;
    let port = port_of(&cfg, "replica").map_err(c)?;
    // Each data dir holds its replicas in <path>/replica/reps; with none configured, one dir
    // tagged "default" under [core] data_dir.
    let mut data_dirs = replica::fs_manager::parse_data_dirs(
        &cfg.string("replication", "data_dirs", ""),
        "replica",
    )
    .map_err(|e| format!("[replication] data_dirs: {e}"))?;
    if data_dirs.is_empty() {
        let core = PathBuf::from(cfg.string("core", "data_dir", "./data"));
        data_dirs.push(("default".into(), core.join("replica").join("reps")));
    }
    for (_, dir) in data_dirs.iter_mut() {
        if dir.join(".kms-info").exists() {
            return Err(
                "this data directory is encrypted at rest, which pegasus-rs does not support"
                    .into(),
            );
        }
        *dir = std::path::absolute(&*dir).map_err(|e| format!("bad data dir: {e}"))?;
    }
    let meta_list = cfg.string("meta_server", "server_list", "");
    let metas = parse_addr_list(&meta_list)?;
    // A meta is named in beacons exactly as server_list names it (upstream's replica keys its
    // metas by those strings and checks the name the ack echoes).
    for (text, addr) in meta_list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .zip(&metas)
    {
        if let SocketAddr::V4(a) = addr {
            rpc::host_port::book().learn(
                Some(RpcAddress::from_socket_addr(*a)),
                rpc::host_port::from_text(text).as_ref(),
            );
        }
    }
    let min_2pc = cfg
        .i64("replication", "mutation_2pc_min_replica_count", 2)
        .map_err(c)?;
    let staleness_for_commit = cfg
        .i64("replication", "staleness_for_commit", 20)
        .map_err(c)?;
    // Upstream keeps committed mutations for learners in the prepare list, of this capacity.
    let prepare_list_max = cfg
        .i64("replication", "max_mutation_count_in_prepare_list", 110)
        .map_err(c)?;
    if prepare_list_max < staleness_for_commit {
        return Err(format!(
            "replication.max_mutation_count_in_prepare_list({prepare_list_max}) should be >= \
             replication.staleness_for_commit({staleness_for_commit})"
        ));
    }
    let pacifica = replica::pacifica::Options {
        // <= 0 means a majority of max_replica_count upstream; 2 covers the usual 3 replicas.
        mutation_2pc_min_replica_count: if min_2pc <= 0 { 2 } else { min_2pc as usize },
        staleness_for_commit,
        prepare_timeout_ms: cfg
            .i64("replication", "prepare_timeout_ms_for_secondaries", 3000)
            .map_err(c)?,
        learner_prepare_timeout_ms: cfg
            .i64(
                "replication",
                "prepare_timeout_ms_for_potential_secondaries",
                5000,
            )
            .map_err(c)?,
        cache_max_mutations: prepare_list_max.max(1) as usize,
        group_check_interval_ms: if cfg
            .bool("replication", "group_check_disabled", false)
            .map_err(c)?
        {
            0
        } else {
            cfg.i64("replication", "group_check_interval_ms", 100_000)
                .map_err(c)?
        },
        empty_write_disabled: cfg
            .bool("replication", "empty_write_disabled", false)
            .map_err(c)?,
        batch_write_disabled: cfg
            .bool("replication", "batch_write_disabled", false)
            .map_err(c)?,
        ..Default::default()
    };
    let opts = replica::stub::ReplicaOptions {
        data_dirs,
        disk_min_available_space_ratio: cfg
            .i64("replication", "disk_min_available_space_ratio", 10)
            .map_err(c)?,
        self_addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        meta_servers: metas,
        beacon_interval: secs(&cfg, "fd_beacon_interval_seconds", 3).map_err(c)?,
        lease: secs(&cfg, "fd_lease_seconds", 20).map_err(c)?,
        config_sync_interval: millis(&cfg, "replication", "config_sync_interval_ms", 30_000)
            .map_err(c)?,
        max_allowed_write_size: cfg
            .u64("replication", "max_allowed_write_size", 1 << 20)
            .map_err(c)? as usize,
        pacifica,
        flush_interval: secs(&cfg, "checkpoint_interval_seconds", 100).map_err(c)?,
        log_file_size_bytes: cfg
            .u64("replication", "log_private_file_size_mb", 32)
            .map_err(c)?
            .max(1)
            << 20,
        log_reserve_max_bytes: cfg
            .u64("replication", "log_private_reserve_max_size_mb", 1000)
            .map_err(c)?
            << 20,
        log_reserve_max_secs: cfg
            .u64("replication", "log_private_reserve_max_time_seconds", 36000)
            .map_err(c)?,
        nfs_copy_block_bytes: cfg.u64("nfs", "nfs_copy_block_bytes", 4 << 20).map_err(c)? as usize,
        nfs_max_copy_bytes_per_sec: cfg
            .u64("nfs", "max_copy_rate_megabytes_per_disk", 0)
            .map_err(c)?
            << 20,
    };
    // Keys of [replication] that only the meta server reads.
    for k in [
        "cluster_name",
        "fd_check_interval_seconds",
        "fd_grace_seconds",
        "lb_interval_ms",
    ] {
        let _ = cfg.get("replication", k);
    }
    warn_unused(&cfg, &["replication", "nfs"]);
    let stub = replica::stub::ReplicaStub::new(opts);
    stub.load_replicas()
        .await
        .map_err(|e| format!("cannot load replicas: {e}"))?;
    let listener = listen(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        port,
    )))
    .await?;
    log::info!("replica server listening on {ip}:{port}");
    pegasus_rs::metrics::set_identity(pegasus_rs::metrics::Identity {
        cluster: cfg.string("replication", "cluster_name", ""),
        role: "replica".into(),
        host: local_host_name(),
        port,
    });
    stub.start_meta_tasks();
    stub.start_disk_tasks();
    stub.start_dup_tasks();
    stub.start_metrics();
    let sopts = rpc::server::ServerOptions {
        self_address: stub.self_address().0,
        conn_threshold_per_ip: cfg.u64("network", "conn_threshold_per_ip", 0).map_err(c)? as usize,
        ..Default::default()
    };
    tokio::select! {
        _ = rpc::server::serve(listener, stub.clone(), sopts) => {}
        _ = shutdown_signal() => {
            log::info!("replica server stopping; flushing");
            stub.flush_all().await;
        }
    }
    Ok(())
}

/// Warns about keys of the role's own sections that this implementation does not read.
fn warn_unused(cfg: &Config, sections: &[&str]) {
    let unused = cfg.unused_keys(sections);
    if !unused.is_empty() {
        log::warn!("config keys not used by pegasus-rs: {}", unused.join(", "));
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `probe`: exit 0 when every partition of the table has a primary that answers and all its
/// secondaries (max_replica_count replicas in all); 1 when not yet; 2 on bad usage.
async fn probe(metas: &str, table: &str) -> ExitCode {
    let Ok(addrs) = parse_addr_list(metas) else {
        return ExitCode::from(2);
    };
    for a in addrs {
        let client = rpc::client::RpcClient::new(a, 0);
        let req = idl::dsn_layer2::QueryCfgRequest {
            app_name: Some(table.to_string()),
            partition_indices: Some(Vec::new()),
        };
        let resp: Option<idl::dsn_layer2::QueryCfgResponse> = client
            .call_struct(
                "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                0,
                0,
                &req,
                Duration::from_secs(3),
            )
            .await;
        let Some(resp) = resp else { continue };
        if !resp.err.map(|e| e.is_ok()).unwrap_or(false) {
            continue;
        }
        let parts = resp.partitions.unwrap_or_default();
        let served = !parts.is_empty()
            && parts.len() as i32 == resp.partition_count.unwrap_or(-1)
            && parts.iter().all(|p| {
                p.primary.map(|a| !a.is_invalid()).unwrap_or(false)
                    && p.secondaries.as_ref().map_or(0, |s| s.len()) + 1
                        >= p.max_replica_count.unwrap_or(1).max(1) as usize
            });
        if !served {
            return ExitCode::from(1);
        }
        // Every primary must answer an RRDB read for its partition.
        for p in parts {
            let (Some(pid), Some(Some(addr))) = (p.pid, p.primary.map(|a| a.to_socket_addr()))
            else {
                return ExitCode::from(1);
            };
            let c = rpc::client::RpcClient::new(SocketAddr::V4(addr), 0);
            let key = idl::dsn::Blob(b"\x00\x00".to_vec());
            let arg = rpc::frame::ReplyValue {
                ttype: 12,
                bytes: idl::protocol::encode_struct(&key),
            };
            match c
                .call(
                    "RPC_RRDB_RRDB_TTL",
                    pid.app_id,
                    pid.partition_index,
                    &arg,
                    Duration::from_secs(3),
                )
                .await
            {
                Ok(r) if r.error == "ERR_OK" => {}
                _ => return ExitCode::from(1),
            }
        }
        return ExitCode::SUCCESS;
    }
    ExitCode::from(1)
}

/// Calls one meta RPC on each meta in turn and returns the first decodable reply that does not
/// say ERR_FORWARD_TO_OTHERS / ERR_SERVICE_NOT_ACTIVE (as `is_served` judges).
async fn call_leader<Req, Resp>(
    metas: &str,
    rpc_name: &str,
    req: &Req,
    is_served: impl Fn(&Resp) -> bool,
) -> Option<(SocketAddr, Resp)>
where
    Req: thrift::protocol::TSerializable,
    Resp: thrift::protocol::TSerializable,
{
    let addrs = parse_addr_list(metas).ok()?;
    for a in addrs {
        let client = rpc::client::RpcClient::new(a, 0);
        let Some(resp) = client
            .call_struct::<Req, Resp>(rpc_name, 0, 0, req, Duration::from_secs(5))
            .await
        else {
            continue;
        };
        if is_served(&resp) {
            return Some((a, resp));
        }
    }
    None
}

fn served(err: &Option<idl::dsn::ErrorCode>) -> bool {
    !matches!(
        err,
        Some(e) if *e == idl::dsn::ErrorCode::FORWARD_TO_OTHERS
            || *e == idl::dsn::ErrorCode::SERVICE_NOT_ACTIVE
    )
}

/// `leader`: prints the meta leader's IP:port (the meta that serves RPC_CM_CLUSTER_INFO);
/// exit 1 if no meta answers as leader.
async fn leader(metas: &str) -> ExitCode {
    let req = idl::meta_admin::ConfigurationClusterInfoRequest {};
    let got = call_leader(
        metas,
        "RPC_CM_CLUSTER_INFO",
        &req,
        |r: &idl::meta_admin::ConfigurationClusterInfoResponse| served(&r.err),
    )
    .await;
    let Some((addr, _)) = got else {
        eprintln!("no meta server of {metas} answers as leader");
        return ExitCode::from(1);
    };
    // The address that answered as leader (cluster info names it by host name, as upstream).
    println!("{addr}");
    ExitCode::SUCCESS
}

/// `create_app`: creates a table through the leader; exit 0 when created (or it exists).
async fn create_app(metas: &str, name: &str, partitions: &str, replicas: &str) -> ExitCode {
    let (Ok(pc), Ok(rc)) = (partitions.parse::<i32>(), replicas.parse::<i32>()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let req = idl::meta_admin::ConfigurationCreateAppRequest {
        app_name: Some(name.to_string()),
        options: Some(idl::meta_admin::CreateAppOptions {
            partition_count: Some(pc),
            replica_count: Some(rc),
            success_if_exist: Some(true),
            app_type: Some("pegasus".into()),
            is_stateful: Some(true),
            envs: Some(Default::default()),
            atomic_idempotent: Some(false),
        }),
    };
    let got = call_leader(
        metas,
        "RPC_CM_CREATE_APP",
        &req,
        |r: &idl::meta_admin::ConfigurationCreateAppResponse| served(&r.err),
    )
    .await;
    match got {
        Some((addr, r)) if r.err.as_ref().is_some_and(|e| e.is_ok()) => {
            println!(
                "created table {name} (app id {}) via {addr}",
                r.appid.unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Some((addr, r)) => {
            eprintln!("create_app {name} via {addr} failed: {:?}", r.err);
            ExitCode::from(1)
        }
        None => {
            eprintln!("no meta server of {metas} answers as leader");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let server = args.get(2).map(|s| s.as_str()) == Some("-app_list");
    if !server {
        logging::init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.get(1).map(|s| s.as_str()) == Some("probe") {
        return match (args.get(2), args.get(3)) {
            (Some(m), Some(t)) => rt.block_on(probe(m, t)),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    if args.get(1).map(|s| s.as_str()) == Some("leader") {
        return match args.get(2) {
            Some(m) => rt.block_on(leader(m)),
            None => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    if args.get(1).map(|s| s.as_str()) == Some("create_app") {
        return match (args.get(2), args.get(3), args.get(4), args.get(5)) {
            (Some(m), Some(t), Some(p), Some(r)) => rt.block_on(create_app(m, t, p, r)),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let (Some(config_path), Some("-app_list"), Some(role)) =
        (args.get(1), args.get(2).map(|s| s.as_str()), args.get(3))
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut cfg = match Config::load(Path::new(config_path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some("-cargs"), Some(kvs)) = (args.get(4).map(|s| s.as_str()), args.get(5)) {
        // `-cargs k=v;k=v` sets [section] key pairs written as section.key=value.
        for kv in kvs.split(';').filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                if let Some((sec, key)) = k.rsplit_once('.') {
                    cfg.set(sec, key, v);
                }
            }
        }
    }
    pegasus_rs::flags::load(&cfg);
    pegasus_rs::block_service::configure(&cfg);
    pegasus_rs::base::dup_common::configure(&cfg);
    pegasus_rs::remote_cmd::set_process(std::fs::read_to_string(config_path).unwrap_or_default());
    let role = role.split('@').next().unwrap_or("").to_string();
    match logging::start_server(&cfg, &role) {
        Ok(dir) => eprintln!("pegasus_server: logging to {}/{role}.log", dir.display()),
        Err(e) => {
            logging::init();
            log::warn!("cannot log to files ({e}); logging to stderr");
        }
    }
    let result = match role.as_str() {
        "meta" => rt.block_on(run_meta(cfg)),
        "replica" => rt.block_on(run_replica(cfg)),
        other => Err(format!("unknown role {other:?}; expected meta or replica")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("pegasus_server: {e}");
            ExitCode::FAILURE
        }
    }
}

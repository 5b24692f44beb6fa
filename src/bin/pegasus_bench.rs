//! `pegasus_bench`: a load generator for a running cluster. N concurrent clients write then
//! read random keys of one table through the RDSN framing (as the C++ client does), routing by
//! the meta's partition configuration; reports throughput and latency percentiles.
//!
//! usage: pegasus_bench <meta_addr> <table> [--clients N] [--ops N] [--value-size B]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_rs::base::key_schema;
use pegasus_rs::idl::dsn::Blob;
use pegasus_rs::idl::dsn_layer2::{QueryCfgRequest, QueryCfgResponse};
use pegasus_rs::idl::{protocol, rrdb};
use pegasus_rs::rpc::client::RpcClient;
use pegasus_rs::rpc::frame::ReplyValue;

fn value<T: thrift::protocol::TSerializable>(v: &T) -> ReplyValue {
    ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(v),
    }
}

struct Route {
    app_id: i32,
    primaries: Vec<Arc<RpcClient>>,
}

async fn route(meta: SocketAddr, table: &str) -> Result<Route, String> {
    let c = RpcClient::new(meta, 0);
    let req = QueryCfgRequest {
        app_name: Some(table.into()),
        partition_indices: Some(vec![]),
    };
    let r = c
        .call(
            "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
            0,
            0,
            &value(&req),
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| e.to_string())?;
    let resp: QueryCfgResponse =
        protocol::decode(&r.body, protocol::read_arg).map_err(|e| e.to_string())?;
    let mut primaries = Vec::new();
    for p in resp.partitions.unwrap_or_default() {
        let a = p
            .primary
            .and_then(|a| a.to_socket_addr())
            .ok_or("partition without primary")?;
        primaries.push(Arc::new(RpcClient::new(SocketAddr::V4(a), 0)));
    }
    Ok(Route {
        app_id: resp.app_id.unwrap_or(0),
        primaries,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn phase(
    route: Arc<Route>,
    clients: usize,
    ops: usize,
    value_size: usize,
    write: bool,
) -> (f64, Vec<Duration>, usize) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ops / clients + 1);
            let mut errors = 0usize;
            let payload = vec![b'v'; value_size];
            for i in 0..ops / clients {
                let hk = format!("bench{c}-{}", i % 1000);
                let sk = format!("{i}");
                let key = key_schema::encode(hk.as_bytes(), sk.as_bytes()).unwrap_or_default();
                let pidx =
                    (key_schema::hash(hk.as_bytes(), b"") % route.primaries.len() as u64) as usize;
                let client = &route.primaries[pidx];
                let t = Instant::now();
                let r = if write {
                    let req = rrdb::UpdateRequest {
                        key: Some(Blob(key)),
                        value: Some(Blob(payload.clone())),
                        expire_ts_seconds: Some(0),
                        ..Default::default()
                    };
                    client
                        .call(
                            "RPC_RRDB_RRDB_PUT",
                            route.app_id,
                            pidx as i32,
                            &value(&req),
                            Duration::from_secs(5),
                        )
                        .await
                } else {
                    client
                        .call(
                            "RPC_RRDB_RRDB_GET",
                            route.app_id,
                            pidx as i32,
                            &value(&Blob(key)),
                            Duration::from_secs(5),
                        )
                        .await
                };
                match r {
                    Ok(rep) if rep.error == "ERR_OK" => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all, errors)
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(meta), Some(table)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: pegasus_bench <meta_addr> <table> [--clients N] [--ops N] [--value-size B]"
        );
        std::process::exit(2);
    };
    let Ok(meta) = meta.parse::<SocketAddr>() else {
        eprintln!("bad meta address {meta}");
        std::process::exit(2);
    };
    let clients = arg(&args, "--clients", 16).max(1);
    let ops = arg(&args, "--ops", 100_000);
    let value_size = arg(&args, "--value-size", 100);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let route = match route(meta, table).await {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("cannot route table {table}: {e}");
                std::process::exit(1);
            }
        };
        for (name, write) in [("write", true), ("read", false)] {
            let (qps, lat, errors) = phase(route.clone(), clients, ops, value_size, write).await;
            println!(
                "{name}: clients={clients} ops={} errors={errors} qps={qps:.0} p50={:.3}ms p99={:.3}ms p999={:.3}ms",
                lat.len(),
                percentile(&lat, 0.50),
                percentile(&lat, 0.99),
                percentile(&lat, 0.999),
            );
        }
    });
}

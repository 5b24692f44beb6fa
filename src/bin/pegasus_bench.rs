//! `pegasus_bench`: a load generator for a running cluster. N concurrent clients write then
//! read random keys of one table through the RDSN framing (as the C++ client does), routing by
//! the meta's partition configuration; reports throughput, latency percentiles, failed
//! requests by error, and (with `--pids`) the server CPU time per operation summed over the
//! given processes, and their RSS.
//!
//! usage: pegasus_bench <meta_addr> <table> [--clients N] [--ops N] [--value-size B]
//!        [--pids PID,PID,...]

use std::collections::BTreeMap;
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
) -> (f64, Vec<Duration>, BTreeMap<String, usize>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ops / clients + 1);
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
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
                    Ok(rep) => *errors.entry(rep.error).or_default() += 1,
                    Err(e) => *errors.entry(format!("client: {e}")).or_default() += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            for (k, n) in e {
                *errors.entry(k).or_default() += n;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all, errors)
}

/// CPU time (user + system) of a process so far, in microseconds.
fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks * 10_000)
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn total_cpu_us(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| cpu_us(*p)).sum()
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
    let pids: Vec<u32> = args
        .iter()
        .position(|a| a == "--pids")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
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
            let cpu0 = total_cpu_us(&pids);
            let (qps, lat, errors) = phase(route.clone(), clients, ops, value_size, write).await;
            let cpu = total_cpu_us(&pids).saturating_sub(cpu0);
            let failed: usize = errors.values().sum();
            let server = if pids.is_empty() || lat.is_empty() {
                String::new()
            } else {
                let rss: Vec<String> = pids
                    .iter()
                    .map(|p| format!("{:.0}", rss_mb(*p).unwrap_or(0.0)))
                    .collect();
                format!(
                    " server_cpu_us_per_op={:.1} server_rss_mb=[{}]",
                    cpu as f64 / lat.len() as f64,
                    rss.join(",")
                )
            };
            println!(
                "{name}: clients={clients} value_size={value_size} ok={} failed={failed} \
                 qps={qps:.0} p50={:.3}ms p99={:.3}ms p999={:.3}ms{server}",
                lat.len(),
                percentile(&lat, 0.50),
                percentile(&lat, 0.99),
                percentile(&lat, 0.999),
            );
            for (e, n) in &errors {
                println!("  {name} failed with {e}: {n}");
            }
        }
    });
}

//! The legacy perf counters (upstream 2.x names such as `replica*app.pegasus*get_qps@2.3`),
//! derived from the metric entities: the Go admin-cli's `node-stat`, `table-stat` and
//! `partition-stat`, and its disk and migration tools, read them with the
//! `perf-counters-by-substr` remote command. As upstream, commands read a snapshot taken every
//! `[pegasus.server] perf_counter_update_interval_seconds` (10): a RATE is the increase over
//! the last interval per second, a VOLATILE_NUMBER the increase over it, a PERCENTILE the p99
//! (with a `.p999` twin), a NUMBER the current value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{EntitySnap, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V1 {
    Number,
    Volatile,
    Rate,
    Percentile,
}

impl V1 {
    fn name(self) -> &'static str {
        match self {
            V1::Number => "NUMBER",
            V1::Volatile => "VOLATILE_NUMBER",
            V1::Rate => "RATE",
            V1::Percentile => "PERCENTILE",
        }
    }
}

/// Per-replica counters: (metric of the replica entity, section, legacy name, type).
const REPLICA: &[(&str, &str, &str, V1)] = &[
    ("get_requests", "app.pegasus", "get_qps", V1::Rate),
    (
        "multi_get_requests",
        "app.pegasus",
        "multi_get_qps",
        V1::Rate,
    ),
    (
        "batch_get_requests",
        "app.pegasus",
        "batch_get_qps",
        V1::Rate,
    ),
    ("scan_requests", "app.pegasus", "scan_qps", V1::Rate),
    ("put_requests", "app.pegasus", "put_qps", V1::Rate),
    (
        "multi_put_requests",
        "app.pegasus",
        "multi_put_qps",
        V1::Rate,
    ),
    ("remove_requests", "app.pegasus", "remove_qps", V1::Rate),
    (
        "multi_remove_requests",
        "app.pegasus",
        "multi_remove_qps",
        V1::Rate,
    ),
    ("incr_requests", "app.pegasus", "incr_qps", V1::Rate),
    (
        "check_and_set_requests",
        "app.pegasus",
        "check_and_set_qps",
        V1::Rate,
    ),
    (
        "check_and_mutate_requests",
        "app.pegasus",
        "check_and_mutate_qps",
        V1::Rate,
    ),
    (
        "get_latency_ns",
        "app.pegasus",
        "get_latency",
        V1::Percentile,
    ),
    (
        "multi_get_latency_ns",
        "app.pegasus",
        "multi_get_latency",
        V1::Percentile,
    ),
    (
        "batch_get_latency_ns",
        "app.pegasus",
        "batch_get_latency",
        V1::Percentile,
    ),
    (
        "scan_latency_ns",
        "app.pegasus",
        "scan_latency",
        V1::Percentile,
    ),
    (
        "put_latency_ns",
        "app.pegasus",
        "put_latency",
        V1::Percentile,
    ),
    (
        "multi_put_latency_ns",
        "app.pegasus",
        "multi_put_latency",
        V1::Percentile,
    ),
    (
        "remove_latency_ns",
        "app.pegasus",
        "remove_latency",
        V1::Percentile,
    ),
    (
        "multi_remove_latency_ns",
        "app.pegasus",
        "multi_remove_latency",
        V1::Percentile,
    ),
    (
        "incr_latency_ns",
        "app.pegasus",
        "incr_latency",
        V1::Percentile,
    ),
    (
        "check_and_set_latency_ns",
        "app.pegasus",
        "check_and_set_latency",
        V1::Percentile,
    ),
    (
        "check_and_mutate_latency_ns",
        "app.pegasus",
        "check_and_mutate_latency",
        V1::Percentile,
    ),
    ("get_bytes", "app.pegasus", "get_bytes", V1::Rate),
    (
        "multi_get_bytes",
        "app.pegasus",
        "multi_get_bytes",
        V1::Rate,
    ),
    (
        "batch_get_bytes",
        "app.pegasus",
        "batch_get_bytes",
        V1::Rate,
    ),
    ("scan_bytes", "app.pegasus", "scan_bytes", V1::Rate),
    ("put_bytes", "app.pegasus", "put_bytes", V1::Rate),
    (
        "multi_put_bytes",
        "app.pegasus",
        "multi_put_bytes",
        V1::Rate,
    ),
    (
        "check_and_set_bytes",
        "app.pegasus",
        "check_and_set_bytes",
        V1::Rate,
    ),
    (
        "check_and_mutate_bytes",
        "app.pegasus",
        "check_and_mutate_bytes",
        V1::Rate,
    ),
    (
        "backup_request_bytes",
        "app.pegasus",
        "backup_request_bytes",
        V1::Rate,
    ),
    (
        "read_capacity_units",
        "app.pegasus",
        "recent.read.cu",
        V1::Volatile,
    ),
    (
        "write_capacity_units",
        "app.pegasus",
        "recent.write.cu",
        V1::Volatile,
    ),
    (
        "rdb_total_sst_files",
        "app.pegasus",
        "disk.storage.sst.count",
        V1::Number,
    ),
    (
        "rdb_total_sst_size_mb",
        "app.pegasus",
        "disk.storage.sst(MB)",
        V1::Number,
    ),
    (
        "rdb_estimated_keys",
        "app.pegasus",
        "rdb.estimate_num_keys",
        V1::Number,
    ),
    (
        "rdb_index_and_filter_blocks_mem_usage_bytes",
        "app.pegasus",
        "rdb.index_and_filter_blocks.memory_usage",
        V1::Number,
    ),
    (
        "rdb_memtable_mem_usage_bytes",
        "app.pegasus",
        "rdb.memtable.memory_usage",
        V1::Number,
    ),
    (
        "dup_shipped_successful_requests",
        "app.pegasus",
        "dup_shipped_ops",
        V1::Rate,
    ),
    (
        "dup_shipped_failed_requests",
        "app.pegasus",
        "dup_failed_shipping_ops",
        V1::Rate,
    ),
    ("dup_requests", "app.pegasus", "duplicate_qps", V1::Rate),
    (
        "private_log_size_mb",
        "eon.replica",
        "private.log.size(MB)",
        V1::Number,
    ),
    (
        "throttling_delayed_write_requests",
        "eon.replica",
        "recent.write.throttling.delay.count",
        V1::Volatile,
    ),
    (
        "throttling_rejected_write_requests",
        "eon.replica",
        "recent.write.throttling.reject.count",
        V1::Volatile,
    ),
    (
        "throttling_delayed_read_requests",
        "eon.replica",
        "recent.read.throttling.delay.count",
        V1::Volatile,
    ),
    (
        "throttling_rejected_read_requests",
        "eon.replica",
        "recent.read.throttling.reject.count",
        V1::Volatile,
    ),
];

/// One counter as read: full name, type, value.
#[derive(Debug, Clone)]
pub struct Counter {
    pub name: String,
    pub ty: &'static str,
    pub value: f64,
}

/// The counters of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Unix seconds of the snapshot (0: none taken yet).
    pub timestamp: i64,
    pub counters: Vec<Counter>,
}

struct State {
    last: Arc<Snapshot>,
    prev: HashMap<(String, &'static str), i64>,
    prev_at: Option<Instant>,
}

fn state() -> &'static Mutex<State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(|| {
        Mutex::new(State {
            last: Arc::new(Snapshot::default()),
            prev: HashMap::new(),
            prev_at: None,
        })
    })
}

/// Derives the legacy counters of `entities` given the counter values of the previous
/// snapshot, `secs` ago; fills `now` with this snapshot's counter values.
fn derive(
    app: &str,
    entities: &[EntitySnap],
    prev: &HashMap<(String, &'static str), i64>,
    secs: f64,
    now: &mut HashMap<(String, &'static str), i64>,
) -> Vec<Counter> {
    let mut out = Vec::new();
    let mut push = |name: String, ty: V1, value: f64| {
        out.push(Counter {
            name,
            ty: ty.name(),
            value,
        })
    };
    let mut delta = |id: &str, metric: &'static str, v: i64| -> Option<i64> {
        now.insert((id.to_string(), metric), v);
        prev.get(&(id.to_string(), metric)).map(|p| (v - p).max(0))
    };
    let mut committed = 0i64;
    let mut dup_pending = 0i64;
    let mut block_cache = 0i64;
    let (mut total, mut avail, mut min_ratio, mut max_ratio) = (0i64, 0i64, None, None);
    for e in entities {
        match e.ty {
            "replica" => {
                let gpid = e.id.strip_prefix("replica@").unwrap_or(&e.id);
                for m in &e.metrics {
                    match m.proto.name {
                        "committed_requests" => committed += m.value.scalar(),
                        "dup_pending_mutations" => dup_pending += m.value.scalar(),
                        "rdb_block_cache_mem_usage_bytes" => block_cache += m.value.scalar(),
                        _ => {}
                    }
                    let Some(&(metric, section, name, ty)) =
                        REPLICA.iter().find(|(n, ..)| *n == m.proto.name)
                    else {
                        continue;
                    };
                    let full = format!("{app}*{section}*{name}@{gpid}");
                    match (ty, m.value) {
                        (V1::Percentile, Value::Pcts(p)) => {
                            push(format!("{full}.p999"), ty, p[4] as f64);
                            push(full, ty, p[3] as f64);
                        }
                        (V1::Number, v) => push(full, ty, v.scalar() as f64),
                        (V1::Rate, v) => {
                            let d = delta(&e.id, metric, v.scalar()).unwrap_or(0);
                            push(full, ty, if secs > 0.0 { d as f64 / secs } else { 0.0 });
                        }
                        (V1::Volatile, v) => {
                            let d = delta(&e.id, metric, v.scalar()).unwrap_or(0);
                            push(full, ty, d as f64);
                        }
                        _ => {}
                    }
                }
            }
            "disk" => {
                let get = |n: &str| {
                    e.metrics
                        .iter()
                        .find(|m| m.proto.name == n)
                        .map_or(0, |m| m.value.scalar())
                };
                let (t, a) = (get("disk_capacity_total_mb"), get("disk_capacity_avail_mb"));
                total += t;
                avail += a;
                let ratio = if t > 0 { (a * 100 + t / 2) / t } else { 0 };
                min_ratio = Some(min_ratio.map_or(ratio, |m: i64| m.min(ratio)));
                max_ratio = Some(max_ratio.map_or(ratio, |m: i64| m.max(ratio)));
            }
            "profiler" => {
                let code = e.id.strip_prefix("task@").unwrap_or(&e.id);
                for m in &e.metrics {
                    match (m.proto.name, m.value) {
                        ("profiler_executed_tasks", v) => {
                            let d =
                                delta(&e.id, "profiler_executed_tasks", v.scalar()).unwrap_or(0);
                            push(
                                format!("zion*profiler*{code}.qps"),
                                V1::Rate,
                                if secs > 0.0 { d as f64 / secs } else { 0.0 },
                            );
                        }
                        ("profiler_server_rpc_latency_ns", Value::Pcts(p)) => {
                            let full = format!("zion*profiler*{code}.latency.server");
                            push(format!("{full}.p999"), V1::Percentile, p[4] as f64);
                            push(full, V1::Percentile, p[3] as f64);
                        }
                        _ => {}
                    }
                }
            }
            "server" => {
                for m in &e.metrics {
                    let v = m.value.scalar() as f64;
                    let (name, ty) = match m.proto.name {
                        "resident_mem_usage_mb" => {
                            ("replica*server*memused.res(MB)".into(), V1::Number)
                        }
                        "virtual_mem_usage_mb" => {
                            ("replica*server*memused.virt(MB)".into(), V1::Number)
                        }
                        "total_replicas" => {
                            (format!("{app}*eon.replica_stub*replica(Count)"), V1::Number)
                        }
                        "opening_replicas" => (
                            format!("{app}*eon.replica_stub*opening.replica(Count)"),
                            V1::Number,
                        ),
                        "closing_replicas" => (
                            format!("{app}*eon.replica_stub*closing.replica(Count)"),
                            V1::Number,
                        ),
                        "learning_replicas" => (
                            format!("{app}*eon.replica_stub*replicas.learning.count"),
                            V1::Number,
                        ),
                        _ => continue,
                    };
                    push(name, ty, v);
                }
            }
            _ => {}
        }
    }
    if app == "replica" {
        // Upstream 2.x's server-wide sum of the mutations its duplications have yet to ship.
        push(
            format!("{app}*eon.replica_stub*dup.pending_mutations_count"),
            V1::Volatile,
            dup_pending as f64,
        );
        let d = delta("server", "committed_requests", committed).unwrap_or(0);
        push(
            format!("{app}*eon.replica_stub*replicas.commit.qps"),
            V1::Rate,
            if secs > 0.0 { d as f64 / secs } else { 0.0 },
        );
        push(
            format!("{app}*app.pegasus*rdb.block_cache.memory_usage"),
            V1::Number,
            block_cache as f64,
        );
        let stub = |n: &str| format!("{app}*eon.replica_stub*{n}");
        push(stub("disk.capacity.total(MB)"), V1::Number, total as f64);
        push(stub("disk.available.total(MB)"), V1::Number, avail as f64);
        let ratio = if total > 0 {
            (avail * 100 + total / 2) / total
        } else {
            0
        };
        push(stub("disk.available.total.ratio"), V1::Number, ratio as f64);
        push(
            stub("disk.available.min.ratio"),
            V1::Number,
            min_ratio.unwrap_or(0) as f64,
        );
        push(
            stub("disk.available.max.ratio"),
            V1::Number,
            max_ratio.unwrap_or(0) as f64,
        );
    }
    out
}

/// Takes a snapshot now (the ticker calls this every interval).
pub fn take() {
    let app = super::identity().role;
    let app = if app.is_empty() {
        "replica".to_string()
    } else {
        app
    };
    let entities = super::snapshot();
    let Ok(mut s) = state().lock() else {
        return;
    };
    let secs = s.prev_at.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let mut now = HashMap::new();
    let counters = derive(&app, &entities, &s.prev, secs, &mut now);
    s.prev = now;
    s.prev_at = Some(Instant::now());
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    s.last = Arc::new(Snapshot {
        timestamp,
        counters,
    });
}

/// The last snapshot.
pub fn last() -> Arc<Snapshot> {
    state().lock().map(|s| s.last.clone()).unwrap_or_default()
}

/// Starts the snapshot ticker (once per process).
pub fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        take();
        let secs = crate::flags::i64_or("perf_counter_update_interval_seconds", 10).max(1) as u64;
        let _ = std::thread::Builder::new()
            .name("perf-counters".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(secs));
                take();
            });
    });
}

/// How a perf-counters command selects counters.
#[derive(Debug, Clone, Copy)]
pub enum Select {
    Regex,
    Substr,
    Prefix,
    Postfix,
}

/// Runs `perf-counters*`: the selected counters of the last snapshot, as upstream's JSON.
pub fn command(sel: Select, args: &[String]) -> String {
    let snap = last();
    let mut regexes = Vec::new();
    if let Select::Regex = sel {
        for a in args {
            match regex::Regex::new(&format!("^(?:{a})$")) {
                Ok(r) => regexes.push(r),
                Err(_) => return reply(&format!("ERROR: invalid filter: {a}"), &snap, |_| false),
            }
        }
    }
    let pick = |name: &str| {
        args.is_empty()
            || match sel {
                Select::Regex => regexes.iter().any(|r| r.is_match(name)),
                Select::Substr => args.iter().any(|a| name.contains(a.as_str())),
                Select::Prefix => args.iter().any(|a| name.starts_with(a.as_str())),
                Select::Postfix => args.iter().any(|a| name.ends_with(a.as_str())),
            }
    };
    reply("OK", &snap, pick)
}

fn reply(result: &str, snap: &Snapshot, pick: impl Fn(&str) -> bool) -> String {
    let counters: Vec<serde_json::Value> = snap
        .counters
        .iter()
        .filter(|c| pick(&c.name))
        .map(|c| serde_json::json!({"name": c.name, "type": c.ty, "value": c.value}))
        .collect();
    let ts = crate::logging::local_time_str(snap.timestamp);
    format!(
        "{{\"result\":{},\"timestamp\":{},\"timestamp_str\":{},\"counters\":{}}}",
        serde_json::Value::from(result),
        snap.timestamp,
        serde_json::Value::from(ts),
        serde_json::Value::from(counters)
    )
}

/// `server-stat`: selected counters as `alias=value` (upstream's list and order).
pub fn server_stat() -> String {
    let snap = last();
    let app = super::identity().role;
    let list: Vec<(String, &str)> = vec![
        (
            format!("{app}*app.pegasus*manual.compact.enqueue.count"),
            "manual_compact_enqueue_count",
        ),
        (
            format!("{app}*app.pegasus*manual.compact.running.count"),
            "manual_compact_running_count",
        ),
        (
            format!("{app}*app.pegasus*rdb.block_cache.memory_usage"),
            "rdb_block_cache_memory_usage",
        ),
        (
            format!("{app}*eon.replica_stub*closing.replica(Count)"),
            "closing_replica_count",
        ),
        (
            format!("{app}*eon.replica_stub*disk.available.max.ratio"),
            "disk_available_max_ratio",
        ),
        (
            format!("{app}*eon.replica_stub*disk.available.min.ratio"),
            "disk_available_min_ratio",
        ),
        (
            format!("{app}*eon.replica_stub*disk.available.total.ratio"),
            "disk_available_total_ratio",
        ),
        (
            format!("{app}*eon.replica_stub*disk.capacity.total(MB)"),
            "disk_capacity_total(MB)",
        ),
        (
            format!("{app}*eon.replica_stub*opening.replica(Count)"),
            "opening_replica_count",
        ),
        (
            format!("{app}*eon.replica_stub*replica(Count)"),
            "serving_replica_count",
        ),
        (
            format!("{app}*eon.replica_stub*replicas.commit.qps"),
            "commit_throughput",
        ),
        (
            format!("{app}*eon.replica_stub*replicas.learning.count"),
            "learning_count",
        ),
        ("replica*server*memused.res(MB)".into(), "memused_res(MB)"),
        ("replica*server*memused.virt(MB)".into(), "memused_virt(MB)"),
        (
            "zion*profiler*RPC_RRDB_RRDB_BATCH_GET.latency.server".into(),
            "batch_get_p99(ns)",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_BATCH_GET.qps".into(),
            "batch_get_qps",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_GET.latency.server".into(),
            "get_p99(ns)",
        ),
        ("zion*profiler*RPC_RRDB_RRDB_GET.qps".into(), "get_qps"),
        (
            "zion*profiler*RPC_RRDB_RRDB_MULTI_GET.latency.server".into(),
            "multi_get_p99(ns)",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_MULTI_GET.qps".into(),
            "multi_get_qps",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_MULTI_PUT.latency.server".into(),
            "multi_put_p99(ns)",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_MULTI_PUT.qps".into(),
            "multi_put_qps",
        ),
        (
            "zion*profiler*RPC_RRDB_RRDB_PUT.latency.server".into(),
            "put_p99(ns)",
        ),
        ("zion*profiler*RPC_RRDB_RRDB_PUT.qps".into(), "put_qps"),
    ];
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (name, alias) in list {
        match snap.counters.iter().find(|c| c.name == name) {
            Some(c) => found.push(format!("{alias}={:.0}", c.value)),
            None => missing.push(format!("{name}=not_found")),
        }
    }
    found.extend(missing);
    found.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::{MetricSnap, Proto};
    use super::*;

    fn counter(name: &'static str, v: i64) -> MetricSnap {
        MetricSnap {
            proto: Proto {
                name,
                kind: super::super::Kind::Counter,
                unit: "Requests",
                desc: "",
            },
            value: Value::Int(v),
        }
    }

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let e = |v| EntitySnap {
            ty: "replica",
            id: "replica@2.3".into(),
            attrs: vec![],
            metrics: vec![
                counter("get_requests", v),
                counter("read_capacity_units", v),
            ],
        };
        let mut first = HashMap::new();
        let c = derive("replica", &[e(100)], &HashMap::new(), 0.0, &mut first);
        let get = |c: &[Counter], n: &str| c.iter().find(|c| c.name == n).map(|c| c.value);
        assert_eq!(get(&c, "replica*app.pegasus*get_qps@2.3"), Some(0.0));
        let mut second = HashMap::new();
        let c = derive("replica", &[e(600)], &first, 10.0, &mut second);
        assert_eq!(get(&c, "replica*app.pegasus*get_qps@2.3"), Some(50.0));
        assert_eq!(
            get(&c, "replica*app.pegasus*recent.read.cu@2.3"),
            Some(500.0)
        );
        let t = c
            .iter()
            .find(|c| c.name.ends_with("get_qps@2.3"))
            .map(|c| c.ty);
        assert_eq!(t, Some("RATE"));
    }

    #[test]
    fn commands_filter_by_substring_prefix_postfix_and_regex() {
        let snap = Snapshot {
            timestamp: 5,
            counters: vec![
                Counter {
                    name: "replica*app.pegasus*get_qps@2.3".into(),
                    ty: "RATE",
                    value: 1.5,
                },
                Counter {
                    name: "replica*server*memused.res(MB)".into(),
                    ty: "NUMBER",
                    value: 7.0,
                },
            ],
        };
        let out = reply("OK", &snap, |n| n.contains("get_qps"));
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["result"], "OK");
        assert_eq!(v["timestamp"], 5);
        assert_eq!(v["counters"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["counters"][0]["value"], 1.5);
    }
}

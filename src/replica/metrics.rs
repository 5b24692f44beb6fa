//! The metrics a replica server keeps: one `replica@<app>.<pidx>` entity per hosted replica
//! (requests, latencies, bytes, capacity units, throttling, RocksDB figures, log size), the
//! `profiler` entities of the client task codes (server-side latency, as upstream's
//! profiler), and what read and write requests add to them. Names, kinds and units are
//! upstream's.

use std::sync::Arc;
use std::time::Instant;

use crate::idl::rrdb;
use crate::metric_set;
use crate::storage::app::WriteRequest;

metric_set! {
    /// The metrics of one hosted replica.
    pub struct ReplicaMetrics {
        get_requests: Counter = ("Requests", "The number of GET requests"),
        multi_get_requests: Counter = ("Requests", "The number of MULTI_GET requests"),
        batch_get_requests: Counter = ("Requests", "The number of BATCH_GET requests"),
        scan_requests: Counter = ("Requests", "The number of SCAN requests"),
        get_latency_ns: Percentile = ("NanoSeconds", "The latency of GET requests"),
        multi_get_latency_ns: Percentile = ("NanoSeconds", "The latency of MULTI_GET requests"),
        batch_get_latency_ns: Percentile = ("NanoSeconds", "The latency of BATCH_GET requests"),
        scan_latency_ns: Percentile = ("NanoSeconds", "The latency of SCAN requests"),
        put_requests: Counter = ("Requests", "The number of PUT requests"),
        multi_put_requests: Counter = ("Requests", "The number of MULTI_PUT requests"),
        remove_requests: Counter = ("Requests", "The number of REMOVE requests"),
        multi_remove_requests: Counter = ("Requests", "The number of MULTI_REMOVE requests"),
        incr_requests: Counter = ("Requests", "The number of INCR requests"),
        check_and_set_requests: Counter = ("Requests", "The number of CHECK_AND_SET requests"),
        check_and_mutate_requests: Counter = ("Requests", "The number of CHECK_AND_MUTATE requests"),
        put_latency_ns: Percentile = ("NanoSeconds", "The duration that a PUT request is applied"),
        multi_put_latency_ns: Percentile = ("NanoSeconds", "The duration that a MULTI_PUT request is applied"),
        remove_latency_ns: Percentile = ("NanoSeconds", "The duration that a REMOVE request is applied"),
        multi_remove_latency_ns: Percentile = ("NanoSeconds", "The duration that a MULTI_REMOVE request is applied"),
        incr_latency_ns: Percentile = ("NanoSeconds", "The duration that an INCR request is applied"),
        check_and_set_latency_ns: Percentile = ("NanoSeconds", "The duration that a CHECK_AND_SET request is applied"),
        check_and_mutate_latency_ns: Percentile = ("NanoSeconds", "The duration that a CHECK_AND_MUTATE request is applied"),
        committed_requests: Counter = ("Requests", "The number of committed requests"),
        read_capacity_units: Counter = ("CapacityUnits", "The number of capacity units for read requests"),
        write_capacity_units: Counter = ("CapacityUnits", "The number of capacity units for write requests"),
        get_bytes: Counter = ("Bytes", "The number of bytes for GET requests"),
        multi_get_bytes: Counter = ("Bytes", "The number of bytes for MULTI_GET requests"),
        batch_get_bytes: Counter = ("Bytes", "The number of bytes for BATCH_GET requests"),
        scan_bytes: Counter = ("Bytes", "The number of bytes for SCAN requests"),
        put_bytes: Counter = ("Bytes", "The number of bytes for PUT requests"),
        multi_put_bytes: Counter = ("Bytes", "The number of bytes for MULTI_PUT requests"),
        check_and_set_bytes: Counter = ("Bytes", "The number of bytes for CHECK_AND_SET requests"),
        check_and_mutate_bytes: Counter = ("Bytes", "The number of bytes for CHECK_AND_MUTATE requests"),
        backup_requests: Counter = ("Requests", "The number of backup requests"),
        backup_request_bytes: Counter = ("Bytes", "The number of bytes for backup requests"),
        throttling_delayed_write_requests: Counter = ("Requests", "The number of delayed write requests by throttling"),
        throttling_rejected_write_requests: Counter = ("Requests", "The number of rejected write requests by throttling"),
        throttling_delayed_read_requests: Counter = ("Requests", "The number of delayed read requests by throttling"),
        throttling_rejected_read_requests: Counter = ("Requests", "The number of rejected read requests by throttling"),
        throttling_delayed_backup_requests: Counter = ("Requests", "The number of delayed backup requests by throttling"),
        throttling_rejected_backup_requests: Counter = ("Requests", "The number of rejected backup requests by throttling"),
        rdb_total_sst_files: Gauge = ("Files", "The total number of rocksdb sst files"),
        rdb_total_sst_size_mb: Gauge = ("MegaBytes", "The total size of rocksdb sst files"),
        rdb_estimated_keys: Gauge = ("Keys", "The estimated number of rocksdb keys"),
        rdb_index_and_filter_blocks_mem_usage_bytes: Gauge = ("Bytes", "The memory usage of rocksdb index and filter blocks"),
        rdb_memtable_mem_usage_bytes: Gauge = ("Bytes", "The memory usage of rocksdb memtables"),
        rdb_block_cache_mem_usage_bytes: Gauge = ("Bytes", "The memory usage of the rocksdb block cache"),
        rdb_running_compactions: Gauge = ("Compactions", "The number of rocksdb compactions running"),
        rdb_pending_compaction_bytes: Gauge = ("Bytes", "The bytes rocksdb estimates compactions have to rewrite"),
        rdb_running_flushes: Gauge = ("Flushes", "The number of rocksdb flushes running"),
        private_log_size_mb: Gauge = ("MegaBytes", "The size of private log in MB"),
        learn_count: Counter = ("Learns", "The number of learns launched by learner"),
        learn_successful_count: Counter = ("Learns", "The number of successful learns"),
        learn_failed_count: Counter = ("Learns", "The number of failed learns"),
        learn_copy_file_bytes: Counter = ("Bytes", "The size of the files copied from learnee"),
        prepared_uncommitted_mutations: Gauge = ("Mutations", "The number of mutations prepared but not committed yet (the 2PC queue)"),
        backup_started_count: Counter = ("Backups", "The number of started backups"),
        backup_failed_count: Counter = ("Backups", "The number of failed backups"),
        backup_successful_count: Counter = ("Backups", "The number of successful backups"),
        backup_cancelled_count: Counter = ("Backups", "The number of cancelled backups"),
        backup_file_upload_failed_count: Counter = ("FileUploads", "The number of failed file uploads for backups"),
        backup_file_upload_successful_count: Counter = ("FileUploads", "The number of successful file uploads for backups"),
        backup_file_upload_total_bytes: Counter = ("Bytes", "The total size of uploaded files for backups"),
        backup_running_count: Gauge = ("Backups", "The number of current running backups"),
        backup_max_duration_ms: Gauge = ("MilliSeconds", "The max backup duration among backups"),
        backup_file_upload_max_bytes: Gauge = ("Bytes", "The max size of uploaded files among backups"),
        dup_pending_mutations: Gauge = ("Mutations", "The number of pending mutations for dup"),
        dup_confirmed_mutations: Counter = ("Mutations", "The number of confirmed mutations for dup"),
        dup_shipped_bytes: Counter = ("Bytes", "The shipped size of private log for dup"),
        dup_log_read_bytes: Counter = ("Bytes", "The size of read private log for dup"),
        dup_log_read_mutations: Counter = ("Mutations", "The number of read mutations from private log for dup"),
        dup_shipped_successful_requests: Counter = ("Requests", "The number of successful DUPLICATE requests sent from client"),
        dup_shipped_failed_requests: Counter = ("Requests", "The number of failed DUPLICATE requests sent from client"),
        dup_rejected_non_idempotent_write_requests: Counter = ("Requests", "The number of rejected non-idempotent write requests for duplication"),
        dup_requests: Counter = ("Requests", "The number of DUPLICATE requests"),
        dup_time_lag_ms: Percentile = ("MilliSeconds", "The time lag (in ms) between master and slave in the duplication"),
        dup_lagging_writes: Counter = ("Requests", "The number of lagging writes (time lag larger than `dup_lagging_write_threshold_ms`)"),
        rdb_manual_compact_queued_tasks: Gauge = ("Tasks", "The number of current queued tasks of rocksdb manual compaction"),
        rdb_manual_compact_running_tasks: Gauge = ("Tasks", "The number of current running tasks of rocksdb manual compaction"),
    }
}

metric_set! {
    /// Server-side figures of one client task code (upstream's profiler entity).
    pub struct ProfilerMetrics {
        profiler_server_rpc_latency_ns: StripedPercentile = ("NanoSeconds", "The latency from enqueue point to reply point on the server side for RPC tasks"),
        profiler_executed_tasks: StripedCounter = ("Tasks", "The number of tasks that have been executed"),
    }
}

/// The task codes with a profiler entity.
pub const PROFILED: [&str; 13] = [
    "RPC_RRDB_RRDB_GET",
    "RPC_RRDB_RRDB_MULTI_GET",
    "RPC_RRDB_RRDB_BATCH_GET",
    "RPC_RRDB_RRDB_SCAN",
    "RPC_RRDB_RRDB_GET_SCANNER",
    "RPC_RRDB_RRDB_SORTKEY_COUNT",
    "RPC_RRDB_RRDB_TTL",
    "RPC_RRDB_RRDB_PUT",
    "RPC_RRDB_RRDB_MULTI_PUT",
    "RPC_RRDB_RRDB_REMOVE",
    "RPC_RRDB_RRDB_MULTI_REMOVE",
    "RPC_RRDB_RRDB_INCR",
    "RPC_RRDB_RRDB_CHECK_AND_SET",
];

/// The profiler entities of a replica server, one per profiled task code (check-and-mutate
/// included).
pub struct Profilers {
    sets: Vec<(&'static str, Arc<ProfilerMetrics>)>,
}

impl Profilers {
    pub fn register() -> Profilers {
        let sets = PROFILED
            .iter()
            .chain(["RPC_RRDB_RRDB_CHECK_AND_MUTATE"].iter())
            .map(|code| {
                let s = Arc::new(ProfilerMetrics::default());
                crate::metrics::register(
                    "profiler",
                    &format!("task@{code}"),
                    &[("task_name", code.to_string())],
                    &s,
                );
                (*code, s)
            })
            .collect();
        Profilers { sets }
    }

    pub fn get(&self, code: &str) -> Option<&ProfilerMetrics> {
        self.sets
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, s)| s.as_ref())
    }

    /// A request of `code` answered: its time since arrival.
    pub fn answered(&self, code: &str, arrived: Instant) {
        if let Some(p) = self.get(code) {
            p.profiler_executed_tasks.inc();
            p.profiler_server_rpc_latency_ns.since(arrived);
        }
    }
}

static PROFILERS: std::sync::OnceLock<Profilers> = std::sync::OnceLock::new();

fn on_reply(code: &str, arrived: Instant) {
    if !code.starts_with("RPC_RRDB_RRDB_") {
        return;
    }
    if let Some(p) = PROFILERS.get() {
        p.answered(code, arrived);
    }
}

/// Registers the profiler entities and has every reply recorded in them (once per process).
pub fn install_profilers() {
    PROFILERS.get_or_init(Profilers::register);
    crate::rpc::server::set_reply_hook(on_reply);
}

/// Registers a replica's entity and returns its metrics.
pub fn register_replica(app_id: i32, pidx: i32) -> Arc<ReplicaMetrics> {
    let m = Arc::new(ReplicaMetrics::default());
    crate::metrics::register(
        "replica",
        &format!("replica@{app_id}.{pidx}"),
        &[
            ("table_id", app_id.to_string()),
            ("partition_id", pidx.to_string()),
        ],
        &m,
    );
    m
}

fn len(b: &Option<crate::idl::dsn::Blob>) -> i64 {
    b.as_ref().map_or(0, |b| b.0.len() as i64)
}

/// Capacity units of `bytes` (at least 1), with upstream's unit size.
fn cu(bytes: i64, unit: i64) -> i64 {
    ((bytes + unit - 1) / unit).max(1)
}

/// `[pegasus.server] perf_counter_{read,write}_capacity_unit_size` (4096 unless set), read
/// once.
pub fn cu_sizes() -> (i64, i64) {
    static SIZES: std::sync::OnceLock<(i64, i64)> = std::sync::OnceLock::new();
    *SIZES.get_or_init(|| {
        (
            crate::flags::i64_or("perf_counter_read_capacity_unit_size", 4096).max(1),
            crate::flags::i64_or("perf_counter_write_capacity_unit_size", 4096).max(1),
        )
    })
}

/// What one served read adds: its request count, latency, bytes and capacity units, as
/// upstream counts them (`bytes`: the returned data, plus the request key for a get).
pub fn count_read(m: &ReplicaMetrics, code: &str, bytes: i64, started: Instant, backup: bool) {
    let (read_unit, _) = cu_sizes();
    let (c, p, b) = match code {
        "RPC_RRDB_RRDB_GET" => (&m.get_requests, &m.get_latency_ns, &m.get_bytes),
        "RPC_RRDB_RRDB_MULTI_GET" => (
            &m.multi_get_requests,
            &m.multi_get_latency_ns,
            &m.multi_get_bytes,
        ),
        "RPC_RRDB_RRDB_BATCH_GET" => (
            &m.batch_get_requests,
            &m.batch_get_latency_ns,
            &m.batch_get_bytes,
        ),
        "RPC_RRDB_RRDB_SCAN" | "RPC_RRDB_RRDB_GET_SCANNER" => {
            (&m.scan_requests, &m.scan_latency_ns, &m.scan_bytes)
        }
        _ => return,
    };
    c.inc();
    p.since(started);
    b.add(bytes);
    if backup {
        m.backup_requests.inc();
        m.backup_request_bytes.add(bytes);
    }
    m.read_capacity_units.add(cu(bytes, read_unit));
}

/// The bytes a get returned: the requested key and the value.
pub fn get_len(key: &crate::idl::dsn::Blob, r: &rrdb::ReadResponse) -> i64 {
    key.0.len() as i64 + len(&r.value)
}

/// The bytes a multi-get returned: the hash key and each sort key and value.
pub fn multi_get_len(hash_key: &Option<crate::idl::dsn::Blob>, r: &rrdb::MultiGetResponse) -> i64 {
    len(hash_key) + kvs_len(&r.kvs)
}

/// The bytes a batch-get returned.
pub fn batch_get_len(r: &rrdb::BatchGetResponse) -> i64 {
    r.data
        .iter()
        .flatten()
        .map(|d| len(&d.hash_key) + len(&d.sort_key) + len(&d.value))
        .sum()
}

/// The bytes a scan returned.
pub fn scan_len(r: &rrdb::ScanResponse) -> i64 {
    kvs_len(&r.kvs)
}

fn kvs_len(kvs: &Option<Vec<rrdb::KeyValue>>) -> i64 {
    kvs.iter()
        .flatten()
        .map(|kv| len(&kv.key) + len(&kv.value))
        .sum()
}

/// The request bytes of a write (upstream counts them on the primary only).
pub fn write_bytes(req: &WriteRequest) -> i64 {
    match req {
        WriteRequest::Duplicate(d) => d
            .entries
            .iter()
            .flatten()
            .map(|e| e.raw_message.as_ref().map_or(0, |b| b.0.len() as i64))
            .sum(),
        WriteRequest::Put(u) => len(&u.key) + len(&u.value),
        WriteRequest::MultiPut(m) => {
            len(&m.hash_key)
                + m.kvs
                    .iter()
                    .flatten()
                    .map(|kv| len(&kv.key) + len(&kv.value))
                    .sum::<i64>()
        }
        WriteRequest::CheckAndSet(c) => {
            len(&c.hash_key) + len(&c.check_sort_key) + len(&c.set_sort_key) + len(&c.set_value)
        }
        WriteRequest::CheckAndMutate(c) => {
            len(&c.hash_key)
                + len(&c.check_sort_key)
                + c.mutate_list
                    .iter()
                    .flatten()
                    .map(|mu| len(&mu.sort_key) + len(&mu.value))
                    .sum::<i64>()
        }
        WriteRequest::Remove(k) => k.0.len() as i64,
        WriteRequest::MultiRemove(m) => {
            len(&m.hash_key)
                + m.sort_keys
                    .iter()
                    .flatten()
                    .map(|k| k.0.len() as i64)
                    .sum::<i64>()
        }
        WriteRequest::Incr(i) => len(&i.key),
    }
}

/// A client write accepted by the primary: its bytes and capacity units.
pub fn count_write_bytes(m: &ReplicaMetrics, req: &WriteRequest) {
    let n = write_bytes(req);
    match req {
        WriteRequest::Put(_) => m.put_bytes.add(n),
        WriteRequest::MultiPut(_) => m.multi_put_bytes.add(n),
        WriteRequest::CheckAndSet(_) => m.check_and_set_bytes.add(n),
        WriteRequest::CheckAndMutate(_) => m.check_and_mutate_bytes.add(n),
        _ => {}
    }
    let (_, write_unit) = cu_sizes();
    m.write_capacity_units.add(cu(n, write_unit));
}

/// Entries a follower applied from a duplicate request: their count, and how long after the
/// master's write each arrived.
fn count_duplicated(m: &ReplicaMetrics, d: &crate::idl::duplication_internal::DuplicateRequest) {
    let now_us = crate::base::value_schema::now_us() as i64;
    let threshold = crate::flags::i64_or("dup_lagging_write_threshold_ms", 10000);
    for e in d.entries.iter().flatten() {
        m.dup_requests.inc();
        let lag_ms = (now_us - e.timestamp.unwrap_or(now_us)).max(0) / 1000;
        m.dup_time_lag_ms.record(lag_ms);
        if lag_ms > threshold {
            m.dup_lagging_writes.inc();
        }
    }
}

/// Writes applied to storage on any replica: their counts, and the time the apply took.
pub fn count_applied(m: &ReplicaMetrics, reqs: &[&WriteRequest], started: Instant) {
    let ns = started.elapsed().as_nanos().min(i64::MAX as u128) as i64;
    for r in reqs {
        let (c, p) = match r {
            WriteRequest::Duplicate(d) => {
                count_duplicated(m, d);
                continue;
            }
            WriteRequest::Put(_) => (&m.put_requests, &m.put_latency_ns),
            WriteRequest::MultiPut(_) => (&m.multi_put_requests, &m.multi_put_latency_ns),
            WriteRequest::Remove(_) => (&m.remove_requests, &m.remove_latency_ns),
            WriteRequest::MultiRemove(_) => (&m.multi_remove_requests, &m.multi_remove_latency_ns),
            WriteRequest::Incr(_) => (&m.incr_requests, &m.incr_latency_ns),
            WriteRequest::CheckAndSet(_) => {
                (&m.check_and_set_requests, &m.check_and_set_latency_ns)
            }
            WriteRequest::CheckAndMutate(_) => {
                (&m.check_and_mutate_requests, &m.check_and_mutate_latency_ns)
            }
        };
        c.inc();
        p.record(ns);
    }
    m.committed_requests.add(reqs.len() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_units_round_up_with_a_minimum_of_one() {
        assert_eq!(cu(0, 4096), 1);
        assert_eq!(cu(1, 4096), 1);
        assert_eq!(cu(4096, 4096), 1);
        assert_eq!(cu(4097, 4096), 2);
    }

    #[test]
    fn write_bytes_count_keys_and_values() {
        use crate::idl::dsn::Blob;
        let put = WriteRequest::Put(rrdb::UpdateRequest {
            key: Some(Blob(vec![0; 10])),
            value: Some(Blob(vec![0; 100])),
            ..Default::default()
        });
        assert_eq!(write_bytes(&put), 110);
        let m = ReplicaMetrics::default();
        count_write_bytes(&m, &put);
        count_applied(&m, &[&put], Instant::now());
        assert_eq!(m.put_bytes.get(), 110);
        assert_eq!(m.put_requests.get(), 1);
        assert_eq!(m.write_capacity_units.get(), 1);
        assert_eq!(m.committed_requests.get(), 1);
    }
}

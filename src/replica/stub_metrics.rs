//! The replica server's metric entities besides the replicas' own: `server` (replica counts
//! by status, memory), one `disk@<tag>` per data dir, the profilers of the client task
//! codes; the timer that reads each replica's RocksDB and log figures every
//! `[pegasus.server] update_rdb_stat_interval` seconds; and the legacy perf-counter
//! snapshots.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::ReplicaStub;
use crate::metrics::{self, Computed, Kind, Proto, Value};

const fn gauge(name: &'static str, unit: &'static str, desc: &'static str) -> Proto {
    Proto {
        name,
        kind: Kind::Gauge,
        unit,
        desc,
    }
}

/// The size in bytes of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> i64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len() as i64)
                .sum()
        })
        .unwrap_or(0)
}

impl ReplicaStub {
    /// Registers the server's entities and starts the metric timers.
    pub fn start_metrics(self: &Arc<Self>) {
        crate::replica::metrics::install_profilers();
        let weak: Weak<ReplicaStub> = Arc::downgrade(self);
        let server = Arc::new(Computed(Box::new(move |f| {
            let Some(stub) = weak.upgrade() else {
                return;
            };
            let mut by = [0i64; 5];
            let all = stub.all_replicas();
            for r in &all {
                if let Some(n) = by.get_mut(r.status_code() as usize) {
                    *n += 1;
                }
            }
            f(
                &gauge("total_replicas", "Replicas", "The total number of replicas"),
                Value::Int(all.len() as i64),
            );
            let names = [
                ("inactive_replicas", "The number of inactive replicas"),
                ("primary_replicas", "The number of primary replicas"),
                ("secondary_replicas", "The number of secondary replicas"),
                ("learning_replicas", "The number of learning replicas"),
                ("error_replicas", "The number of error replicas"),
            ];
            for ((name, desc), n) in names.iter().zip(by) {
                f(&gauge(name, "Replicas", desc), Value::Int(n));
            }
        })));
        metrics::register("server", "server", &[], &server);
        let process = metrics::register_process();
        let mut disks: Vec<Arc<Computed>> = Vec::new();
        for d in self.fs.dirs() {
            let weak: Weak<ReplicaStub> = Arc::downgrade(self);
            let tag = d.tag.clone();
            let set = Arc::new(Computed(Box::new(move |f| {
                let Some(stub) = weak.upgrade() else {
                    return;
                };
                let Some(d) = stub.fs.dir_of(&tag) else {
                    return;
                };
                f(
                    &gauge(
                        "disk_capacity_total_mb",
                        "MegaBytes",
                        "The total disk capacity",
                    ),
                    Value::Int(d.capacity_mb),
                );
                f(
                    &gauge(
                        "disk_capacity_avail_mb",
                        "MegaBytes",
                        "The available disk capacity",
                    ),
                    Value::Int(d.available_mb),
                );
            })));
            metrics::register(
                "disk",
                &format!("disk@{}", d.tag),
                &[
                    ("tag", d.tag.clone()),
                    ("data_dir", d.dir.display().to_string()),
                ],
                &set,
            );
            disks.push(set);
        }
        if let Ok(mut keep) = self.metric_sets.lock() {
            keep.push(server);
            keep.push(process);
            keep.extend(disks);
        }
        metrics::perf_counters::start();
        let stub = self.clone();
        tokio::spawn(async move {
            loop {
                let s = stub.clone();
                let _ = tokio::task::spawn_blocking(move || s.update_rdb_stats()).await;
                let secs = crate::flags::i64_or("update_rdb_stat_interval", 60).max(1);
                tokio::time::sleep(Duration::from_secs(secs as u64)).await;
            }
        });
    }

    /// Reads each replica's RocksDB and private-log figures into its gauges.
    fn update_rdb_stats(&self) {
        for r in self.all_replicas() {
            let m = &r.metrics;
            m.private_log_size_mb
                .set(dir_bytes(&r.dir.join("plog")) >> 20);
            let Some(app) = r.app() else {
                continue;
            };
            use crate::idl::metadata::ManualCompactionStatus as S;
            let st = app.compact.status();
            m.rdb_manual_compact_queued_tasks
                .set(i64::from(st == S::QUEUING));
            m.rdb_manual_compact_running_tasks
                .set(i64::from(st == S::RUNNING));
            let db = &app.db;
            let (files, bytes) = db.sst_files();
            m.rdb_total_sst_files.set(files);
            m.rdb_total_sst_size_mb.set(bytes >> 20);
            let p = |n: &str| db.int_property(n).unwrap_or(0) as i64;
            m.rdb_estimated_keys.set(p("rocksdb.estimate-num-keys"));
            m.rdb_index_and_filter_blocks_mem_usage_bytes
                .set(p("rocksdb.estimate-table-readers-mem"));
            m.rdb_memtable_mem_usage_bytes
                .set(p("rocksdb.cur-size-all-mem-tables"));
            m.rdb_block_cache_mem_usage_bytes
                .set(p("rocksdb.block-cache-usage"));
            m.rdb_running_compactions
                .set(p("rocksdb.num-running-compactions"));
            m.rdb_pending_compaction_bytes
                .set(p("rocksdb.estimate-pending-compaction-bytes"));
            m.rdb_running_flushes.set(p("rocksdb.num-running-flushes"));
        }
    }
}

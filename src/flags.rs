//! Configuration flags as upstream serves them over HTTP: `/configs` (every flag), `/config?name=`
//! (one) and `/updateConfig?<name>=<value>` (change a mutable one at run time), with upstream's
//! JSON shapes (values as strings, `FV_*` types, the `flag_tag::FT_MUTABLE` tag) and error texts.
//! Values come from config.ini at start; the flags marked mutable here are the ones this server
//! reads again where it uses them, so a change takes effect.

use std::collections::BTreeMap;
use std::sync::{OnceLock, RwLock};

use serde_json::{Map, Value};

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    Bool,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Str,
}

impl FlagType {
    fn name(self) -> &'static str {
        match self {
            FlagType::Bool => "FV_BOOL",
            FlagType::Int32 => "FV_INT32",
            FlagType::UInt32 => "FV_UINT32",
            FlagType::Int64 => "FV_INT64",
            FlagType::UInt64 => "FV_UINT64",
            FlagType::Str => "FV_STRING",
        }
    }

    /// The canonical text of `v` for this type, or `None` when it does not parse.
    fn normalize(self, v: &str) -> Option<String> {
        let v = v.trim();
        Some(match self {
            FlagType::Bool => match v.to_ascii_lowercase().as_str() {
                "true" => "true".into(),
                "false" => "false".into(),
                _ => return None,
            },
            FlagType::Int32 => v.parse::<i32>().ok()?.to_string(),
            FlagType::UInt32 => v.parse::<u32>().ok()?.to_string(),
            FlagType::Int64 => v.parse::<i64>().ok()?.to_string(),
            FlagType::UInt64 => v.parse::<u64>().ok()?.to_string(),
            FlagType::Str => v.to_string(),
        })
    }
}

struct Flag {
    section: &'static str,
    ty: FlagType,
    mutable: bool,
    description: &'static str,
    validator: fn(i64) -> bool,
    value: RwLock<String>,
}

fn any(_: i64) -> bool {
    true
}
fn positive(v: i64) -> bool {
    v > 0
}
fn percent(v: i64) -> bool {
    (0..=100).contains(&v)
}

type Def = (
    &'static str,
    &'static str,
    FlagType,
    &'static str,
    bool,
    fn(i64) -> bool,
    &'static str,
);

use FlagType::*;

/// (section, name, type, default, mutable at run time, validator, description).
const DEFS: &[Def] = &[
    (
        "meta_server",
        "add_secondary_enable_flow_control",
        Bool,
        "false",
        false,
        any,
        "limit the add-secondary proposals per node and round",
    ),
    (
        "meta_server",
        "add_secondary_max_count_for_one_node",
        Int32,
        "10",
        false,
        any,
        "add-secondary proposals per node and round under flow control",
    ),
    (
        "meta_server",
        "balance_cluster",
        Bool,
        "false",
        true,
        any,
        "balance replica counts across the cluster instead of per table",
    ),
    (
        "meta_server",
        "balance_op_count_per_round",
        UInt32,
        "10",
        true,
        any,
        "operations per round of the cluster-wide balancer",
    ),
    (
        "meta_server",
        "balancer_in_turn",
        Bool,
        "false",
        false,
        any,
        "balance one table per round",
    ),
    (
        "meta_server",
        "cluster_root",
        Str,
        "/",
        false,
        any,
        "root of the cluster's meta state",
    ),
    (
        "meta_server",
        "hold_seconds_for_dropped_app",
        Int32,
        "604800",
        false,
        any,
        "seconds a dropped table can be recalled",
    ),
    (
        "meta_server",
        "max_allowed_replica_count",
        Int32,
        "5",
        true,
        positive,
        "largest replica count a table may have",
    ),
    (
        "meta_server",
        "max_reserved_dropped_replicas",
        UInt32,
        "1",
        true,
        any,
        "dropped replicas remembered beyond the replica count",
    ),
    (
        "meta_server",
        "meta_function_level_on_start",
        Str,
        "steady",
        false,
        any,
        "function level a meta server starts at",
    ),
    (
        "meta_server",
        "min_allowed_replica_count",
        Int32,
        "1",
        true,
        positive,
        "smallest replica count a table may have",
    ),
    (
        "meta_server",
        "min_live_node_count_for_unfreeze",
        UInt64,
        "3",
        true,
        positive,
        "below this many alive replica servers the meta freezes",
    ),
    (
        "meta_server",
        "node_live_percentage_threshold_for_update",
        Int32,
        "65",
        false,
        percent,
        "below this percentage of alive replica servers the meta freezes",
    ),
    (
        "meta_server",
        "only_move_primary",
        Bool,
        "false",
        false,
        any,
        "balance primaries by role switches only",
    ),
    (
        "meta_server",
        "only_primary_balancer",
        Bool,
        "false",
        false,
        any,
        "balance primaries only",
    ),
    (
        "meta_server",
        "replica_assign_delay_ms_for_dropouts",
        Int64,
        "600000",
        false,
        any,
        "how long a dropped secondary may take to come back",
    ),
    (
        "meta_server",
        "server_list",
        Str,
        "",
        false,
        any,
        "the meta servers of the cluster",
    ),
    (
        "network",
        "conn_threshold_per_ip",
        UInt32,
        "0",
        false,
        any,
        "connections allowed per client IP (0: no limit)",
    ),
    (
        "nfs",
        "max_send_rate_megabytes_per_disk",
        Int64,
        "0",
        true,
        any,
        "file send rate limit per disk in MiB/s (0: none)",
    ),
    (
        "nfs",
        "max_copy_rate_megabytes_per_disk",
        Int64,
        "0",
        true,
        any,
        "file copy rate limit per disk in MiB/s (0: none)",
    ),
    (
        "nfs",
        "nfs_copy_block_bytes",
        UInt32,
        "4194304",
        false,
        any,
        "bytes per file copy request",
    ),
    (
        "replication",
        "batch_write_disabled",
        Bool,
        "false",
        false,
        any,
        "do not batch replicated writes",
    ),
    (
        "replication",
        "checkpoint_interval_seconds",
        Int32,
        "100",
        false,
        any,
        "seconds between checkpoint attempts",
    ),
    (
        "replication",
        "cluster_name",
        Str,
        "",
        false,
        any,
        "the name of this cluster",
    ),
    (
        "replication",
        "config_sync_interval_ms",
        UInt32,
        "30000",
        true,
        positive,
        "milliseconds between a replica server's config syncs",
    ),
    (
        "pegasus.server",
        "perf_counter_update_interval_seconds",
        Int32,
        "10",
        false,
        positive,
        "seconds between the snapshots the perf-counters remote commands read",
    ),
    (
        "pegasus.server",
        "update_rdb_stat_interval",
        UInt32,
        "60",
        false,
        positive,
        "seconds between reads of each replica's rocksdb figures into its metrics",
    ),
    (
        "pegasus.server",
        "perf_counter_read_capacity_unit_size",
        Int64,
        "4096",
        false,
        positive,
        "bytes per read capacity unit",
    ),
    (
        "pegasus.server",
        "perf_counter_write_capacity_unit_size",
        Int64,
        "4096",
        false,
        positive,
        "bytes per write capacity unit",
    ),
    (
        "replication",
        "max_replicas_on_load_for_each_disk",
        UInt64,
        "256",
        false,
        positive,
        "replicas of one disk opened at the same time when a replica server starts",
    ),
    (
        "replication",
        "load_replica_max_wait_time_ms",
        UInt64,
        "10",
        false,
        positive,
        "milliseconds a replica server waits for a loading slot before checking again",
    ),
    (
        "replication",
        "max_concurrent_bulk_load_downloading_count",
        Int32,
        "5",
        false,
        any,
        "replicas downloading bulk-load files at the same time (bulk load is not implemented)",
    ),
    (
        "replication",
        "cold_backup_root",
        Str,
        "",
        false,
        any,
        "the prefix of cold backup data on the block service (empty: backups are refused)",
    ),
    (
        "replication",
        "cold_backup_checkpoint_reserve_minutes",
        UInt32,
        "10",
        false,
        any,
        "minutes a replica keeps the local checkpoint of a finished backup",
    ),
    (
        "replication",
        "max_concurrent_uploading_file_count",
        UInt64,
        "10",
        false,
        positive,
        "files of one partition uploaded to the block service at the same time",
    ),
    (
        "replication",
        "hdfs_read_batch_size_bytes",
        UInt64,
        "67108864",
        true,
        positive,
        "bytes read from HDFS in one request",
    ),
    (
        "replication",
        "hdfs_read_limit_rate_mb_per_sec",
        UInt32,
        "200",
        true,
        positive,
        "MB/s read from HDFS by one server",
    ),
    (
        "replication",
        "hdfs_write_batch_size_bytes",
        UInt64,
        "67108864",
        true,
        positive,
        "bytes written to HDFS in one request",
    ),
    (
        "replication",
        "hdfs_write_limit_rate_mb_per_sec",
        UInt32,
        "200",
        true,
        positive,
        "MB/s written to HDFS by one server",
    ),
    (
        "replication",
        "duplication_enabled",
        Bool,
        "true",
        false,
        any,
        "whether tables may be duplicated to other clusters",
    ),
    (
        "replication",
        "duplication_sync_period_second",
        UInt64,
        "10",
        false,
        positive,
        "how often a replica server reports its duplications' progress to the meta",
    ),
    (
        "replication",
        "dup_progress_min_update_period_ms",
        UInt64,
        "5000",
        true,
        any,
        "the shortest time between two stored progress updates of one partition",
    ),
    (
        "replication",
        "duplicate_log_batch_bytes",
        UInt32,
        "4096",
        true,
        any,
        "bytes of log a duplicator loads, and ships in one request, at least",
    ),
    (
        "replication",
        "dup_max_allowed_write_size",
        UInt64,
        "1048576",
        true,
        any,
        "bytes of one duplicate request at most (0: no limit)",
    ),
    (
        "meta_server",
        "backup_policy_min_interval_seconds",
        Int64,
        "86400",
        false,
        positive,
        "the shortest backup interval a policy may have (upstream: one day)",
    ),
    (
        "meta_server",
        "cold_backup_disabled",
        Bool,
        "true",
        false,
        any,
        "whether the meta refuses cold backup requests",
    ),
    (
        "replication",
        "data_dirs",
        Str,
        "",
        false,
        any,
        "tagged data directories (tag:path,...)",
    ),
    (
        "replication",
        "disk_min_available_space_ratio",
        Int32,
        "10",
        true,
        percent,
        "below this free percentage a disk takes no new replica",
    ),
    (
        "replication",
        "disk_stat_interval_seconds",
        Int32,
        "600",
        false,
        positive,
        "seconds between disk space checks and cleanups",
    ),
    (
        "replication",
        "empty_write_disabled",
        Bool,
        "false",
        false,
        any,
        "primaries send no empty writes",
    ),
    (
        "replication",
        "fd_beacon_interval_seconds",
        Int32,
        "3",
        false,
        any,
        "seconds between beacons to the meta",
    ),
    (
        "replication",
        "fd_check_interval_seconds",
        Int32,
        "2",
        false,
        any,
        "seconds between the meta's liveness checks",
    ),
    (
        "replication",
        "fd_grace_seconds",
        Int32,
        "22",
        false,
        any,
        "seconds without beacons before a replica server is dead",
    ),
    (
        "replication",
        "fd_lease_seconds",
        Int32,
        "20",
        false,
        any,
        "seconds a beacon acknowledgement keeps a replica server serving",
    ),
    (
        "replication",
        "gc_disk_error_replica_interval_seconds",
        UInt64,
        "604800",
        true,
        any,
        "seconds a .err replica folder is kept",
    ),
    (
        "replication",
        "gc_disk_garbage_replica_interval_seconds",
        UInt64,
        "86400",
        true,
        any,
        "seconds a .gar replica folder is kept",
    ),
    (
        "replication",
        "gc_disk_migration_origin_replica_interval_seconds",
        UInt64,
        "604800",
        true,
        any,
        "seconds a .ori folder left by a disk migration is kept",
    ),
    (
        "replication",
        "gc_disk_migration_tmp_replica_interval_seconds",
        UInt64,
        "86400",
        true,
        any,
        "seconds a .tmp folder left by a disk migration is kept",
    ),
    (
        "replication",
        "group_check_interval_ms",
        Int32,
        "100000",
        false,
        any,
        "milliseconds between a primary's group checks",
    ),
    (
        "replication",
        "lb_interval_ms",
        Int32,
        "10000",
        false,
        any,
        "milliseconds between balancer rounds",
    ),
    (
        "replication",
        "log_private_file_size_mb",
        Int32,
        "32",
        false,
        any,
        "size of a private log file",
    ),
    (
        "replication",
        "log_private_reserve_max_size_mb",
        Int32,
        "1000",
        false,
        any,
        "private log kept beyond what is durable, in MiB",
    ),
    (
        "replication",
        "log_private_reserve_max_time_seconds",
        Int32,
        "36000",
        false,
        any,
        "private log kept beyond what is durable, in seconds",
    ),
    (
        "replication",
        "max_allowed_write_size",
        UInt64,
        "1048576",
        false,
        any,
        "largest write request accepted (0: no limit)",
    ),
    (
        "replication",
        "max_mutation_count_in_prepare_list",
        Int32,
        "110",
        false,
        any,
        "mutations a prepare list holds",
    ),
    (
        "replication",
        "mutation_2pc_min_replica_count",
        Int32,
        "2",
        false,
        any,
        "alive replicas a write needs",
    ),
    (
        "replication",
        "prepare_timeout_ms_for_potential_secondaries",
        Int32,
        "5000",
        false,
        any,
        "prepare timeout towards learners",
    ),
    (
        "replication",
        "prepare_timeout_ms_for_secondaries",
        Int32,
        "3000",
        false,
        any,
        "prepare timeout towards secondaries",
    ),
    (
        "replication",
        "staleness_for_commit",
        Int32,
        "20",
        false,
        any,
        "two-phase commits in flight",
    ),
];

/// The process's flags.
pub struct Flags {
    map: BTreeMap<&'static str, Flag>,
}

/// The registry, with upstream's defaults until [`load`] sets the configured values.
pub fn flags() -> &'static Flags {
    static FLAGS: OnceLock<Flags> = OnceLock::new();
    FLAGS.get_or_init(|| Flags {
        map: DEFS
            .iter()
            .map(
                |(section, name, ty, default, mutable, validator, description)| {
                    (
                        *name,
                        Flag {
                            section,
                            ty: *ty,
                            mutable: *mutable,
                            description,
                            validator: *validator,
                            value: RwLock::new(default.to_string()),
                        },
                    )
                },
            )
            .collect(),
    })
}

static LOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bumped by every load and update, so users re-read the flags only after a change.
pub fn version() -> u64 {
    VERSION.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether a server loaded its configuration into the flags (code run inside tests, with
/// settings of its own, keeps those).
pub fn loaded() -> bool {
    LOADED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A flag's value where a server loaded them, else `fallback`.
pub fn i64_or(name: &str, fallback: i64) -> i64 {
    if loaded() {
        flags().i64(name).unwrap_or(fallback)
    } else {
        fallback
    }
}

/// Takes every flag's value from the configuration (unparsable values keep the default).
pub fn load(cfg: &Config) {
    LOADED.store(true, std::sync::atomic::Ordering::SeqCst);
    for (name, f) in &flags().map {
        if let Some(v) = cfg.get(f.section, name) {
            if let Some(v) = f.ty.normalize(v) {
                if let Ok(mut cur) = f.value.write() {
                    *cur = v;
                }
            }
        }
    }
    VERSION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

impl Flags {
    fn value(&self, name: &str) -> Option<String> {
        self.map.get(name)?.value.read().ok().map(|v| v.clone())
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.value(name)?.parse().ok()
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        self.value(name)?.parse().ok()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.value(name).map(|v| v == "true")
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.value(name)
    }

    fn json_of(name: &str, f: &Flag) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("section".into(), f.section.into());
        m.insert("type".into(), f.ty.name().into());
        let tags = if f.mutable {
            "flag_tag::FT_MUTABLE"
        } else {
            ""
        };
        m.insert("tags".into(), tags.into());
        m.insert("description".into(), f.description.into());
        let v = f.value.read().map(|v| v.clone()).unwrap_or_default();
        m.insert("value".into(), v.into());
        Value::Object(m)
    }

    /// `/configs`: every flag by name.
    pub fn list_json(&self) -> String {
        let mut all = Map::new();
        for (name, f) in &self.map {
            all.insert(name.to_string(), Self::json_of(name, f));
        }
        Value::Object(all).to_string()
    }

    /// `/config?name=`: one flag, or upstream's not-found text.
    pub fn get_json(&self, name: &str) -> Result<String, String> {
        match self.map.get(name) {
            Some(f) => Ok(Self::json_of(name, f).to_string()),
            None => Err(format!("ERR_OBJECT_NOT_FOUND: '{name}' is not found")),
        }
    }

    /// Sets a flag whatever its mutability (the remote commands that own it).
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let f = self
            .map
            .get(name)
            .ok_or_else(|| format!("{name} is not found"))?;
        let v =
            f.ty.normalize(value)
                .ok_or_else(|| format!("{value} is invalid"))?;
        if let Ok(mut cur) = f.value.write() {
            *cur = v;
        }
        VERSION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// `/updateConfig`: sets a mutable flag; the error is upstream's description text.
    pub fn update(&self, name: &str, value: &str) -> Result<(), String> {
        let Some(f) = self.map.get(name) else {
            return Err(format!("ERR_OBJECT_NOT_FOUND: {name} is not found"));
        };
        if !f.mutable {
            return Err(format!("ERR_INVALID_PARAMETERS: {name} is not mutable"));
        }
        if f.ty == FlagType::Str {
            return Err("ERR_INVALID_PARAMETERS: string modifications are not supported".into());
        }
        let Some(v) = f.ty.normalize(value) else {
            return Err(format!("ERR_INVALID_PARAMETERS: {value} is invalid"));
        };
        if f.ty != FlagType::Bool {
            let n = v.parse::<i64>().unwrap_or(i64::MAX);
            if !(f.validator)(n) {
                return Err("ERR_INVALID_PARAMETERS: value validation failed".into());
            }
        }
        // The replica-count bounds must stay ordered.
        let (min, max) = match name {
            "min_allowed_replica_count" => (
                v.parse::<i64>().unwrap_or(0),
                self.i64("max_allowed_replica_count").unwrap_or(5),
            ),
            "max_allowed_replica_count" => (
                self.i64("min_allowed_replica_count").unwrap_or(1),
                v.parse::<i64>().unwrap_or(0),
            ),
            _ => (0, 0),
        };
        if min > max {
            return Err(format!(
                "ERR_INVALID_PARAMETERS: meta_server.min_allowed_replica_count({min}) should be \
                 <= meta_server.max_allowed_replica_count({max})"
            ));
        }
        if let Ok(mut cur) = f.value.write() {
            log::info!("config [{}] {name} = {v} (was {cur})", f.section);
            *cur = v;
        }
        VERSION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Parses a query string (`a=b&c=d`) into pairs, percent-decoded.
pub fn query_args(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(c) => {
                        out.push(c);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_rules_and_json_as_upstream() {
        let f = flags();
        assert!(f
            .get_json("nope")
            .unwrap_err()
            .contains("'nope' is not found"));
        let one: Value = serde_json::from_str(&f.get_json("balance_cluster").unwrap()).unwrap();
        assert_eq!(one["section"], "meta_server");
        assert_eq!(one["type"], "FV_BOOL");
        assert_eq!(one["tags"], "flag_tag::FT_MUTABLE");
        assert!(one["value"].is_string());
        let all: Value = serde_json::from_str(&f.list_json()).unwrap();
        assert_eq!(all["lb_interval_ms"]["tags"], "");
        assert_eq!(
            f.update("nope", "1").unwrap_err(),
            "ERR_OBJECT_NOT_FOUND: nope is not found"
        );
        assert_eq!(
            f.update("lb_interval_ms", "1").unwrap_err(),
            "ERR_INVALID_PARAMETERS: lb_interval_ms is not mutable"
        );
        assert_eq!(
            f.update("gc_disk_garbage_replica_interval_seconds", "x")
                .unwrap_err(),
            "ERR_INVALID_PARAMETERS: x is invalid"
        );
        assert_eq!(
            f.update("disk_min_available_space_ratio", "101")
                .unwrap_err(),
            "ERR_INVALID_PARAMETERS: value validation failed"
        );
        assert!(f
            .update("min_allowed_replica_count", "9")
            .unwrap_err()
            .contains("should be <="));
        f.update("gc_disk_garbage_replica_interval_seconds", "10")
            .unwrap();
        assert_eq!(f.u64("gc_disk_garbage_replica_interval_seconds"), Some(10));
        f.update("balance_cluster", "TRUE").unwrap();
        assert_eq!(f.bool("balance_cluster"), Some(true));
        f.update("balance_cluster", "false").unwrap();
        assert_eq!(
            query_args("name=a%2Eb&x=1+2"),
            vec![("name".into(), "a.b".into()), ("x".into(), "1 2".into())]
        );
    }
}

//! The replica server's own remote commands, with upstream's names, argument syntax and
//! replies: `replica.kill_partition`, the per-replica commands taking `[id1,id2,...]`
//! (`replica.trigger-checkpoint`, `replica.query-compact`, `replica.query-app-envs`,
//! `replica.*-plog-gc*`, `replica.query-progress`), the switches `replica.deny-client`,
//! `replica.verbose-client-log`, `replica.verbose-commit-log`, `replica.disable-empty-write`
//! and the `nfs.*` copy rates. The rest go to the commands every role answers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Input, Replica, ReplicaStub};
use crate::rpc::frame::Request;
use crate::rpc::server::Reply;

/// `replica.deny-client`: client reads and writes get no answer while set.
pub static DENY_CLIENT: AtomicBool = AtomicBool::new(false);
/// `replica.verbose-client-log`: client requests answered with an error are logged.
pub static VERBOSE_CLIENT_LOG: AtomicBool = AtomicBool::new(false);
/// `replica.verbose-commit-log`: every committed mutation is logged.
pub static VERBOSE_COMMIT_LOG: AtomicBool = AtomicBool::new(false);

/// The replica server's own commands: (name, help, argument syntax).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "nfs.max_copy_rate_megabytes_per_disk",
        "The maximum bandwidth (MB/s) of writing data per local disk when copying from remote node, 0 means no limit",
        "[num | DEFAULT]",
    ),
    (
        "nfs.max_send_rate_megabytes_per_disk",
        "The maximum bandwidth (MB/s) of reading data per local disk when transferring data to remote node, 0 means no limit",
        "[num | DEFAULT]",
    ),
    (
        "replica.dump-jemalloc-stats",
        "Dump stats of jemalloc",
        "<SUMMARY_STATS | CONFIGS | BRIEF_ARENA_STATS | DETAILED_STATS> [buffer size]",
    ),
    (
        "replica.load-replica-max-wait-time-ms",
        "The max waiting time for replica loading to complete.",
        "[num | DEFAULT]",
    ),
    (
        "replica.max-concurrent-bulk-load-downloading-count",
        "The maximum concurrent bulk load downloading replica count.",
        "[num | DEFAULT]",
    ),
    (
        "replica.max-replicas-on-load-for-each-disk",
        "The max number of replicas that are allowed to be loaded simultaneously for each disk dir.",
        "[num | DEFAULT]",
    ),
    (
        "replica.deny-client",
        "control if deny client read & write request",
        "<true|false>",
    ),
    (
        "replica.disable-empty-write",
        "whether to disable empty writes",
        "<true|false>",
    ),
    (
        "replica.disable-plog-gc",
        "Disable plog garbage collection",
        "[id1,id2,...]",
    ),
    (
        "replica.enable-plog-gc",
        "Enable plog garbage collection",
        "[id1,id2,...]",
    ),
    (
        "replica.kill_partition",
        "Kill partitions by (all, one app, one partition)",
        "[app_id [partition_index]]",
    ),
    (
        "replica.query-app-envs",
        "Query app envs on the underlying storage engine",
        "[id1,id2,...]",
    ),
    (
        "replica.query-compact",
        "Query full compaction status on the underlying storage engine",
        "[id1,id2,...]",
    ),
    (
        "replica.query-plog-gc-enabled-status",
        "Query if plog garbage collection is enabled or disabled",
        "[id1,id2,...]",
    ),
    (
        "replica.query-progress",
        "Query the progress of decrees, including both local writes and duplications for replicas specified by comma-separated list of 'app_id' or 'app_id.partition_id', or all replicas for empty",
        "[id1,id2,...]",
    ),
    (
        "replica.trigger-checkpoint",
        "Trigger replicas to do checkpoint by app_id or app_id.partition_id",
        "[id1,id2,...]",
    ),
    (
        "replica.verbose-client-log",
        "control if print verbose error log when reply read & write request",
        "<true|false>",
    ),
    (
        "replica.verbose-commit-log",
        "control if print verbose log when commit mutation",
        "<true|false>",
    ),
];

/// The replicas `[id1,id2,...]` select: app ids, and (app, pidx) pairs.
type Ids = (BTreeSet<i32>, BTreeSet<(i32, i32)>);

/// Parses `[id1,id2,...]` arguments; `None` when one is bad.
fn parse_ids(args: &[String]) -> Option<Ids> {
    let mut apps = BTreeSet::new();
    let mut gpids = BTreeSet::new();
    for a in args {
        let items: Vec<&str> = a.split(',').filter(|s| !s.is_empty()).collect();
        if items.is_empty() {
            return None;
        }
        for i in items {
            match i.split_once('.') {
                Some((x, y)) => {
                    let (x, y) = (x.parse::<i32>().ok()?, y.parse::<i32>().ok()?);
                    if x < 0 || y < 0 {
                        return None;
                    }
                    gpids.insert((x, y));
                }
                None => {
                    let x = i.parse::<i32>().ok()?;
                    if x < 0 {
                        return None;
                    }
                    apps.insert(x);
                }
            }
        }
    }
    Some((apps, gpids))
}

/// `replica.dump-jemalloc-stats <type> [buffer size]`: jemalloc's own statistics text.
fn jemalloc_stats(args: &[String]) -> String {
    let Some(kind) = args.first() else {
        return "invalid arguments".into();
    };
    let opts = match kind.as_str() {
        "SUMMARY_STATS" => "gmdablxe",
        "CONFIGS" => "mdablxe",
        "BRIEF_ARENA_STATS" => "gblxe",
        "DETAILED_STATS" => "",
        _ => return "invalid stats type".into(),
    };
    let limit = match args.get(1) {
        None => usize::MAX,
        Some(n) => match n.parse::<usize>() {
            Ok(v) if v > 0 => v,
            _ => return "invalid buffer size".into(),
        },
    };
    match crate::base::jemalloc::stats(opts) {
        Some(mut text) => {
            if text.len() > limit {
                let mut cut = limit;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            format!("\n{text}")
        }
        None => "jemalloc is not the allocator of this build".into(),
    }
}

fn ms_to_date(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    crate::logging::local_time_str(ms / 1000)
}

impl ReplicaStub {
    /// Runs `f` on the primary and secondary replicas the ids select (all with no ids), in
    /// upstream's reply framing.
    fn on_replicas(&self, args: &[String], f: &dyn Fn(&Replica) -> String) -> String {
        let Some((apps, gpids)) = parse_ids(args) else {
            return "invalid arguments".into();
        };
        let all = args.is_empty();
        let me = self.net.me_hp.clone();
        let mut hosted: Vec<((i32, i32), Arc<Replica>)> = self
            .replicas
            .read()
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        hosted.sort_by_key(|(k, _)| *k);
        let mut lines = Vec::new();
        let mut found = BTreeSet::new();
        for ((app, pidx), r) in &hosted {
            if !(all || apps.contains(app) || gpids.contains(&(*app, *pidx))) {
                continue;
            }
            found.insert((*app, *pidx));
            let role = match r.status_code() {
                1 => "P",
                2 => "S",
                _ => continue,
            };
            lines.push(format!("\n    {app}.{pidx}@{me}@{role} : {}", f(r)));
        }
        let mut missing = 0;
        for (app, pidx) in &gpids {
            if !found.contains(&(*app, *pidx)) {
                missing += 1;
                lines.push(format!("\n    {app}.{pidx}@{me} : not found"));
            }
        }
        format!(
            "{} processed, {missing} not found{}",
            lines.len() - missing,
            lines.concat()
        )
    }

    /// `replica.kill_partition [app_id [partition_index]]`: closes the replicas named (all
    /// with no argument); the meta then places them again.
    async fn kill_partitions(&self, args: &[String]) -> String {
        let (app, pidx) = match args {
            [] => (None, None),
            [a] => (Some(a.parse::<i32>().unwrap_or(0)), None),
            [a, p] => (
                Some(a.parse::<i32>().unwrap_or(0)),
                Some(p.parse::<i32>().unwrap_or(0)),
            ),
            _ => return "ERR_INVALID_PARAMETERS".into(),
        };
        let victims: Vec<((i32, i32), Arc<Replica>)> = self
            .replicas
            .read()
            .map(|m| {
                m.iter()
                    .filter(|((a, p), _)| {
                        app.is_none_or(|x| x == *a) && pidx.is_none_or(|x| x == *p)
                    })
                    .map(|(k, v)| (*k, v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if victims.is_empty() {
            return "ERR_OBJECT_NOT_FOUND".into();
        }
        for ((a, p), r) in victims {
            log::warn!("replica {a}.{p} killed by remote command");
            self.note_closed(a, p, &r);
            if let Ok(mut m) = self.replicas.write() {
                m.remove(&(a, p));
            }
            let (done, closed) = tokio::sync::oneshot::channel();
            if r.send(Input::Close(done)) {
                let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
            }
        }
        "ERR_OK".into()
    }

    /// RPC_CLI_CLI_CALL on a replica server.
    pub(super) async fn remote_command(&self, req: &Request) -> Reply {
        let Some((cmd, args)) = crate::remote_cmd::decode(req) else {
            return Reply::err("ERR_INVALID_DATA");
        };
        Reply::string(&self.run_command(&cmd, &args).await)
    }

    async fn run_command(&self, cmd: &str, args: &[String]) -> String {
        use crate::meta::remote_commands::{bool_command, int_command};
        let flag_int = |name: &str, flag: &str, default: i64, args: &[String]| {
            let mut v = crate::flags::flags().i64(flag).unwrap_or(default);
            let out = int_command(name, &mut v, default, args, |x| x >= 0);
            let _ = crate::flags::flags().set(flag, &v.to_string());
            out
        };
        let atomic_bool = |name: &str, b: &AtomicBool, args: &[String]| {
            let mut v = b.load(Ordering::SeqCst);
            let out = bool_command(name, &mut v, args);
            b.store(v, Ordering::SeqCst);
            out
        };
        match cmd {
            "help" | "h" | "H" | "Help" => crate::remote_cmd::help(COMMANDS, args),
            "replica.kill_partition" => self.kill_partitions(args).await,
            "replica.deny-client" => atomic_bool(cmd, &DENY_CLIENT, args),
            "replica.verbose-client-log" => atomic_bool(cmd, &VERBOSE_CLIENT_LOG, args),
            "replica.verbose-commit-log" => atomic_bool(cmd, &VERBOSE_COMMIT_LOG, args),
            "replica.disable-empty-write" => atomic_bool(cmd, &super::EMPTY_WRITE_DISABLED, args),
            "nfs.max_copy_rate_megabytes_per_disk" => {
                flag_int(cmd, "max_copy_rate_megabytes_per_disk", 0, args)
            }
            "replica.max-replicas-on-load-for-each-disk" => {
                flag_int(cmd, "max_replicas_on_load_for_each_disk", 256, args)
            }
            "replica.load-replica-max-wait-time-ms" => {
                flag_int(cmd, "load_replica_max_wait_time_ms", 10, args)
            }
            "replica.max-concurrent-bulk-load-downloading-count" => {
                flag_int(cmd, "max_concurrent_bulk_load_downloading_count", 5, args)
            }
            "replica.dump-jemalloc-stats" => jemalloc_stats(args),
            "nfs.max_send_rate_megabytes_per_disk" => {
                flag_int(cmd, "max_send_rate_megabytes_per_disk", 0, args)
            }
            "replica.trigger-checkpoint" => self.on_replicas(args, &|r| match r.app() {
                Some(app) => match app.db.flush() {
                    Ok(()) => "triggered".into(),
                    Err(e) => format!("failed: {e}"),
                },
                None => "failed: no database".into(),
            }),
            "replica.query-compact" => self.on_replicas(args, &|r| {
                let Some(app) = r.app() else {
                    return "{}".into();
                };
                let (enq, start, used) = app.compact.times_ms();
                let last = app.compact.last_finish_ms();
                serde_json::json!({
                    "last_finish": ms_to_date(last),
                    "last_used_ms": if used > 0 { used.to_string() } else { "-".into() },
                    "recent_enqueue_at": ms_to_date(enq),
                    "recent_start_at": ms_to_date(start),
                })
                .to_string()
            }),
            "replica.query-app-envs" => self.on_replicas(args, &|r| {
                r.app_info()
                    .envs
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            "replica.enable-plog-gc" => self.on_replicas(args, &|r| {
                r.plog_gc.store(true, Ordering::SeqCst);
                "enabled".into()
            }),
            "replica.disable-plog-gc" => self.on_replicas(args, &|r| {
                r.plog_gc.store(false, Ordering::SeqCst);
                "disabled".into()
            }),
            "replica.query-plog-gc-enabled-status" => self.on_replicas(args, &|r| {
                if r.plog_gc.load(Ordering::SeqCst) {
                    "enabled".into()
                } else {
                    "disabled".into()
                }
            }),
            "replica.query-progress" => self.on_replicas(args, &|r| {
                let (_, committed, prepared) = r.progress();
                let flushed = r
                    .app()
                    .and_then(|a| a.db.last_flushed_decree().ok())
                    .unwrap_or(0);
                let applied = r.app().map_or(0, |a| a.db.last_committed_decree());
                serde_json::to_string_pretty(&serde_json::json!({
                    "max_prepared_decree": prepared,
                    "last_committed_decree": committed,
                    "last_applied_decree": applied,
                    "last_flushed_decree": flushed,
                    "last_durable_decree": flushed,
                }))
                .unwrap_or_default()
            }),
            _ => {
                let any = |c: &str, a: &[String]| crate::remote_cmd::run(c, a, "replica");
                crate::remote_cmd::run_common(cmd, args, "replica", &any)
                    .unwrap_or_else(|| format!("unknown command '{cmd}'"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_app_ids_or_gpids() {
        let (apps, gpids) = parse_ids(&["1,2.3".into(), "4".into()]).expect("ids");
        assert_eq!(apps.into_iter().collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(gpids.into_iter().collect::<Vec<_>>(), vec![(2, 3)]);
        assert!(parse_ids(&["x".into()]).is_none());
        assert!(parse_ids(&[",".into()]).is_none());
        assert!(parse_ids(&[]).is_some());
    }
}

//! Remote commands (RPC_CLI_CLI_CALL) every role answers, with upstream's names, argument
//! syntax and replies (`help`, `repeat`, `server-info`, `server-stat`, `perf-counters*`,
//! `config-dump`, `flush-log`, `reset-log-start-level`, `engine`, `system.queue`,
//! `task-code`, `task.queue_max_length`), plus the HTTP pages shared by all roles. The meta
//! and replica servers add their own commands in front of these.

use std::sync::OnceLock;
use std::time::Duration;

use crate::idl::command::Command;
use crate::metrics::perf_counters::{self, Select};
use crate::rpc::frame::Request;
use crate::rpc::http::HttpRequest;
use crate::rpc::server::{arg, HttpReply, Reply};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commands of every role: (names, help, argument syntax).
pub const COMMON: &[(&str, &str, &str)] = &[
    ("help|h|H|Help", "Display help information", "[command]"),
    (
        "repeat|r|R|Repeat",
        "Execute a command periodically in every interval seconds for the max count time (0 for infinite)",
        "<interval_seconds> <max_count> <command>",
    ),
    (
        "engine",
        "Get engine internal information, including threadpools and threads and queues in each threadpool",
        "[app-id]",
    ),
    (
        "system.queue",
        "Get queue internal information, including the threadpool each queue belongs to, and the queue name and size",
        "",
    ),
    (
        "config-dump",
        "Dump all configurations to a server local path or to stdout",
        "[target_file]",
    ),
    ("task-code", "Query task code containing any given keywords", "[keyword1] [keyword2] ..."),
    (
        "task.queue_max_length",
        "Get the current or set a new max task queue length of a specific thread_pool. It can be set it to INT_MAX which means a big enough value, but it can't be cancelled the delay/reject policy dynamically",
        "<pool_code> [new_max_queue_length]",
    ),
    ("flush-log", "Flush log to stderr or file", ""),
    (
        "reset-log-start-level",
        "Reset the log start level",
        "[DEBUG | INFO | WARNING | ERROR | FATAL]",
    ),
    ("server-info", "Query server information", ""),
    ("server-stat", "Query selected perf counters", ""),
    (
        "perf-counters",
        "Query perf counters, filtered by OR of POSIX basic regular expressions",
        "[regexp]...",
    ),
    (
        "perf-counters-by-substr",
        "Query perf counters, filtered by OR of substrs",
        "[substr]...",
    ),
    (
        "perf-counters-by-prefix",
        "Query perf counters, filtered by OR of prefix strings",
        "[prefix]...",
    ),
    (
        "perf-counters-by-postfix",
        "Query perf counters, filtered by OR of postfix strings",
        "[postfix]...",
    ),
];

/// The task codes this implementation serves or sends.
pub const TASK_CODES: &[&str] = &[
    "RPC_ADD_NEW_DISK",
    "RPC_CLI_CLI_CALL",
    "RPC_CM_CLUSTER_INFO",
    "RPC_CM_CONFIG_SYNC",
    "RPC_CM_CONTROL_META",
    "RPC_CM_CREATE_APP",
    "RPC_CM_DROP_APP",
    "RPC_CM_DUPLICATION_SYNC",
    "RPC_CM_GET_MAX_REPLICA_COUNT",
    "RPC_CM_LIST_APPS",
    "RPC_CM_LIST_NODES",
    "RPC_CM_PROPOSE_BALANCER",
    "RPC_CM_QUERY_MANUAL_COMPACT_STATUS",
    "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
    "RPC_CM_RECALL_APP",
    "RPC_CM_RENAME_APP",
    "RPC_CM_SET_MAX_REPLICA_COUNT",
    "RPC_CM_START_MANUAL_COMPACT",
    "RPC_CM_UPDATE_APP_ENV",
    "RPC_CM_UPDATE_PARTITION_CONFIGURATION",
    "RPC_CONFIG_PROPOSAL",
    "RPC_FD_FAILURE_DETECTOR_PING",
    "RPC_GROUP_CHECK",
    "RPC_LEARN",
    "RPC_LEARN_ADD_LEARNER",
    "RPC_LEARN_COMPLETION_NOTIFY",
    "RPC_NEGOTIATION",
    "RPC_NFS_COPY",
    "RPC_NFS_GET_FILE_SIZE",
    "RPC_PREPARE",
    "RPC_QUERY_DISK_INFO",
    "RPC_REMOVE_REPLICA",
    "RPC_REPLICATION_WRITE_EMPTY",
    "RPC_REPLICA_DISK_MIGRATE",
    "RPC_RRDB_RRDB_BATCH_GET",
    "RPC_RRDB_RRDB_CHECK_AND_MUTATE",
    "RPC_RRDB_RRDB_CHECK_AND_SET",
    "RPC_RRDB_RRDB_CLEAR_SCANNER",
    "RPC_RRDB_RRDB_GET",
    "RPC_RRDB_RRDB_GET_SCANNER",
    "RPC_RRDB_RRDB_INCR",
    "RPC_RRDB_RRDB_MULTI_GET",
    "RPC_RRDB_RRDB_MULTI_PUT",
    "RPC_RRDB_RRDB_MULTI_REMOVE",
    "RPC_RRDB_RRDB_PUT",
    "RPC_RRDB_RRDB_REMOVE",
    "RPC_RRDB_RRDB_SCAN",
    "RPC_RRDB_RRDB_SORTKEY_COUNT",
    "RPC_RRDB_RRDB_TTL",
];

/// What the process keeps for the commands: its config text and start time.
struct Process {
    config_text: String,
    start_secs: i64,
}

static PROCESS: OnceLock<Process> = OnceLock::new();

/// Records the configuration text and start time (once, at start).
pub fn set_process(config_text: String) {
    let start_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let _ = PROCESS.set(Process {
        config_text,
        start_secs,
    });
}

fn start_time() -> String {
    crate::logging::local_time_str(PROCESS.get().map_or(0, |p| p.start_secs))
}

/// `server-info`: compact JSON, keys sorted, as upstream.
pub fn server_info() -> String {
    serde_json::json!({
        "build_type": if cfg!(debug_assertions) { "debug" } else { "release" },
        "git_SHA": option_env!("PEGASUS_GIT_SHA").unwrap_or("unknown"),
        "start_time": start_time(),
        "version": VERSION,
    })
    .to_string()
}

fn pretty(v: serde_json::Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The help text: one `names - help` line per command, sorted by first name.
pub fn help(extra: &[(&str, &str, &str)], args: &[String]) -> String {
    let mut all: Vec<&(&str, &str, &str)> = COMMON.iter().chain(extra.iter()).collect();
    all.sort_by_key(|c| c.0);
    match args.first() {
        None => all.iter().map(|(n, h, _)| format!("{n} - {h}\n")).collect(),
        Some(want) => match all.iter().find(|(n, ..)| n.split('|').any(|x| x == want)) {
            Some((n, h, a)) => format!("{n} - {h}\n{n} {a}\n"),
            None => format!("cannot find command '{want}'"),
        },
    }
}

/// Runs one of the common commands; `None` when `cmd` is not one. `run_any` runs any
/// command of the role (for `repeat`).
pub fn run_common(
    cmd: &str,
    args: &[String],
    role: &str,
    run_any: &dyn Fn(&str, &[String]) -> String,
) -> Option<String> {
    Some(match cmd {
        "server-info" => server_info(),
        "server-stat" => perf_counters::server_stat(),
        "perf-counters" => perf_counters::command(Select::Regex, args),
        "perf-counters-by-substr" => perf_counters::command(Select::Substr, args),
        "perf-counters-by-prefix" => perf_counters::command(Select::Prefix, args),
        "perf-counters-by-postfix" => perf_counters::command(Select::Postfix, args),
        "flush-log" => {
            crate::logging::flush();
            "Flush done.".into()
        }
        "reset-log-start-level" => {
            let level = match args.first().map(String::as_str) {
                None => crate::logging::configured_level(),
                Some("DEBUG") => log::LevelFilter::Debug,
                Some("INFO") => log::LevelFilter::Info,
                Some("WARNING") => log::LevelFilter::Warn,
                Some("ERROR") | Some("FATAL") => log::LevelFilter::Error,
                Some(other) => return Some(format!("ERROR: invalid level '{other}'")),
            };
            crate::logging::set_level(level);
            let name = match level {
                log::LevelFilter::Debug | log::LevelFilter::Trace => "DEBUG",
                log::LevelFilter::Info => "INFO",
                log::LevelFilter::Warn => "WARNING",
                _ => "ERROR",
            };
            format!("OK, current level is LOG_LEVEL_{name}")
        }
        "config-dump" => {
            let text = PROCESS
                .get()
                .map(|p| p.config_text.clone())
                .unwrap_or_default();
            match args.first() {
                None => text,
                Some(path) => match std::fs::write(path, text) {
                    Ok(()) => format!("config dump to file {path}\n"),
                    Err(e) => format!("ERR: cannot write {path}: {e}\n"),
                },
            }
        }
        "task-code" => {
            let mut out = String::new();
            for code in TASK_CODES {
                if args.is_empty() {
                    out.push_str(&format!("    {code}\n"));
                }
                for k in args {
                    if code.contains(k.as_str()) {
                        out.push_str(&format!("    {code}\n"));
                    }
                }
            }
            out
        }
        "task.queue_max_length" => match args.len() {
            0 => "ERR: invalid arguments, task.queue_max_length <pool_code> [queue_max_length]"
                .into(),
            // Requests run as tasks of one async runtime: there are no thread pools whose
            // queue length could be limited.
            _ => "ERR: thread_pool not found".into(),
        },
        "engine" => {
            let m = tokio::runtime::Handle::try_current().map(|h| h.metrics());
            let workers = m.as_ref().map_or(0, |m| m.num_workers());
            let node = format!("1.{role}");
            match args.first() {
                None => pretty(serde_json::json!({ "available_nodes": [node] })),
                Some(a) => match a.parse::<i64>() {
                    Err(_) => pretty(serde_json::json!({
                        "error": "invalid argument, only one integer argument is acceptable"
                    })),
                    Ok(1) => {
                        let threads: Vec<serde_json::Value> = (0..workers)
                            .map(|i| serde_json::json!({"index": i, "queue_name": "runtime"}))
                            .collect();
                        let queued = m.as_ref().map_or(0, |m| m.global_queue_depth());
                        pretty(serde_json::json!({ role: { "THREAD_POOL_DEFAULT": {
                            "queues": [{"name": "runtime", "pending_task_count": queued}],
                            "threads": threads,
                        }}}))
                    }
                    Ok(id) => pretty(serde_json::json!({
                        "error": format!("cannot find node with given app id({id})")
                    })),
                },
            }
        }
        "system.queue" => {
            let queued = tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().global_queue_depth())
                .unwrap_or(0);
            pretty(serde_json::json!([{
                "app_name": role,
                "thread_pool": [{"name": "THREAD_POOL_DEFAULT", "queue": [
                    {"name": "runtime", "pending_task_count": queued}
                ]}]
            }]))
        }
        "repeat" | "r" | "R" | "Repeat" => {
            if args.len() < 3 {
                return Some("insufficient arguments".into());
            }
            let interval = args[0].parse::<i64>().unwrap_or(0);
            if interval <= 0 {
                return Some("invalid interval argument".into());
            }
            let Ok(count) = args[1].parse::<u32>() else {
                return Some("invalid max count".into());
            };
            let count = if count == 0 { u32::MAX } else { count };
            let (inner, inner_args) = (args[2].clone(), args[3..].to_vec());
            let body = || {
                for i in 0..count {
                    if run_any(&inner, &inner_args).starts_with("unknown command") {
                        break;
                    }
                    if i + 1 < count {
                        std::thread::sleep(Duration::from_secs(interval as u64));
                    }
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(body),
                Err(_) => body(),
            }
            "repeat command completed".into()
        }
        _ => return None,
    })
}

/// Runs a command of the common set, or answers upstream's unknown-command text.
pub fn run(cmd: &str, args: &[String], role: &str) -> String {
    if matches!(cmd, "help" | "h" | "H" | "Help") {
        return help(&[], args);
    }
    let any = |c: &str, a: &[String]| run(c, a, role);
    run_common(cmd, args, role, &any).unwrap_or_else(|| format!("unknown command '{cmd}'"))
}

/// Decodes RPC_CLI_CLI_CALL into (command, arguments).
pub fn decode(req: &Request) -> Option<(String, Vec<String>)> {
    arg::<Command>(req).map(|c| (c.cmd.unwrap_or_default(), c.arguments.unwrap_or_default()))
}

/// Handles RPC_CLI_CLI_CALL with the common commands only.
pub fn handle(req: &Request, role: &str) -> Reply {
    match decode(req) {
        Some((cmd, args)) => Reply::string(&run(&cmd, &args, role)),
        None => Reply::err("ERR_INVALID_DATA"),
    }
}

/// The pages every role serves: (path, help).
pub const COMMON_PAGES: &[(&str, &str)] = &[
    ("/", "List all supported calls."),
    (
        "/config",
        "name=<config_name>. Gets the details of a specified config. Only the configs which are registered by DSN_DEFINE_xxx macro can be queried.",
    ),
    (
        "/configs",
        "List all configs. Only the configs which are registered by DSN_DEFINE_xxx macro can be queried.",
    ),
    (
        "/metrics",
        "[with_metric_fields=field1,field2,...][&types=type1,type2,...][&ids=id1,id2,...][&attributes=attr1,value1,attr2,value2,...][&metrics=metric1,metric2,...][&detail=true|false]Query the node metrics.",
    ),
    ("/recentStartTime", "Get the server start time."),
    (
        "/updateConfig",
        "<key>=<new_value>. Update the config to the new value.",
    ),
    ("/version", "Get the server version."),
];

fn text(status: u16, body: String) -> HttpReply {
    reply(status, "text/plain", body)
}

/// Answers the pages every role serves; `role_pages` are the role's own, for `/`.
pub fn http(req: &HttpRequest, role_pages: &[(&str, &str)]) -> HttpReply {
    match req.path.as_str() {
        "/" => {
            let mut all: Vec<&(&str, &str)> = COMMON_PAGES.iter().chain(role_pages).collect();
            all.sort_by_key(|p| p.0);
            let mut o = crate::base::table_printer::Object::new();
            for (p, h) in all {
                o.str(p, h);
            }
            text(200, o.finish_line())
        }
        "/version" => text(
            200,
            format!(
                "{}\n",
                serde_json::json!({
                    "Version": VERSION,
                    "GitCommit": option_env!("PEGASUS_GIT_SHA").unwrap_or(""),
                })
            ),
        ),
        "/recentStartTime" => text(
            200,
            format!(
                "{}\n",
                serde_json::json!({ "RecentStartTime": start_time() })
            ),
        ),
        "/configs" => {
            if !req.args.is_empty() {
                return text(400, String::new());
            }
            text(200, crate::flags::flags().list_json())
        }
        "/config" => {
            let mut name = String::new();
            for (k, v) in &req.args {
                if k != "name" {
                    return text(400, String::new());
                }
                name = v.clone();
            }
            if name.is_empty() {
                return text(400, "name shouldn't be empty".into());
            }
            match crate::flags::flags().get_json(&name) {
                Ok(j) => text(200, j),
                Err(e) => text(200, e),
            }
        }
        "/updateConfig" => {
            let status = match req.args.as_slice() {
                [(k, v)] => match crate::flags::flags().update(k, v) {
                    Ok(()) => "ERR_OK".to_string(),
                    Err(e) => e,
                },
                _ => {
                    "ERR_INVALID_PARAMETERS: there should be exactly one config to be updated once"
                        .to_string()
                }
            };
            text(
                200,
                format!("{}\n", serde_json::json!({ "update_status": status })),
            )
        }
        "/metrics" => {
            let page = crate::metrics::http::page(&req.method, &req.args, req.accept.as_deref());
            reply(page.status, page.content_type, page.body)
        }
        p => crate::rpc::http::not_found(p),
    }
}

fn reply(status: u16, content_type: &'static str, body: String) -> HttpReply {
    HttpReply {
        status,
        location: None,
        content_type,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_commands_and_explains_one() {
        let h = run("help", &[], "replica");
        assert!(h.contains("server-info - Query server information\n"));
        let one = run("help", &["perf-counters-by-substr".into()], "replica");
        assert!(
            one.ends_with("perf-counters-by-substr [substr]...\n"),
            "{one}"
        );
        assert_eq!(
            run("help", &["nope".into()], "replica"),
            "cannot find command 'nope'"
        );
        assert_eq!(run("nope", &[], "replica"), "unknown command 'nope'");
    }

    #[test]
    fn server_info_is_compact_json() {
        let v: serde_json::Value = serde_json::from_str(&server_info()).expect("json");
        assert_eq!(v["version"], VERSION);
        assert!(v["start_time"].is_string());
    }

    #[test]
    fn repeat_and_log_level_validate_their_arguments() {
        assert_eq!(
            run("repeat", &["1".into()], "meta"),
            "insufficient arguments"
        );
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            run("repeat", &a(&["0", "1", "flush-log"]), "meta"),
            "invalid interval argument"
        );
        assert_eq!(
            run("repeat", &a(&["1", "1", "flush-log"]), "meta"),
            "repeat command completed"
        );
        assert_eq!(
            run("reset-log-start-level", &a(&["LOUD"]), "meta"),
            "ERROR: invalid level 'LOUD'"
        );
        assert!(run("task-code", &a(&["RRDB_PUT"]), "meta").contains("    RPC_RRDB_RRDB_PUT\n"));
    }
}

//! `pegasus_admin`: the meta commands of upstream's C++ shell that the Go admin-cli lacks,
//! under the shell's names, for operators and tests:
//!
//!   pegasus_admin -m <meta,meta,...> get_replica_count <table>
//!   pegasus_admin -m <meta,meta,...> set_replica_count <table> <count>
//!   pegasus_admin -m <meta,...> add_backup_policy -p <name> -b <provider> -a <id,id,...>
//!                 -i <interval seconds> -s <hour:minute> -c <history count>
//!   pegasus_admin -m <meta,...> ls_backup_policy
//!   pegasus_admin -m <meta,...> query_backup_policy -p <name,name,...> [-b <backup count>]
//!   pegasus_admin -m <meta,...> modify_backup_policy -p <name> [-a <ids>] [-r <ids>]
//!                 [-i <seconds>] [-c <count>] [-s <hour:minute>]
//!   pegasus_admin -m <meta,...> disable_backup_policy -p <name> [-f]
//!   pegasus_admin -m <meta,...> enable_backup_policy -p <name>
//!   pegasus_admin -m <meta,...> query_restore_status <restore app id> [-d]
//!
//! Each request goes to the metas in turn until one answers as leader.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use pegasus_rs::idl::backup::{
    ConfigurationAddBackupPolicyRequest, ConfigurationAddBackupPolicyResponse,
    ConfigurationModifyBackupPolicyRequest, ConfigurationModifyBackupPolicyResponse,
    ConfigurationQueryBackupPolicyRequest, ConfigurationQueryBackupPolicyResponse,
    ConfigurationQueryRestoreRequest, ConfigurationQueryRestoreResponse,
};
use pegasus_rs::idl::dsn::ErrorCode;
use pegasus_rs::idl::meta_admin::{
    ConfigurationGetMaxReplicaCountRequest, ConfigurationGetMaxReplicaCountResponse,
    ConfigurationSetMaxReplicaCountRequest, ConfigurationSetMaxReplicaCountResponse,
};
use pegasus_rs::rpc::client::RpcClient;
use thrift::protocol::TSerializable;

const USAGE: &str = "usage: pegasus_admin -m <meta,...> get_replica_count <table>\n       \
                     pegasus_admin -m <meta,...> set_replica_count <table> <count>\n       \
                     pegasus_admin -m <meta,...> add_backup_policy -p <name> -b <provider> -a <ids> -i <seconds> -s <hh:mm> -c <count>\n       \
                     pegasus_admin -m <meta,...> ls_backup_policy\n       \
                     pegasus_admin -m <meta,...> query_backup_policy -p <names> [-b <count>]\n       \
                     pegasus_admin -m <meta,...> modify_backup_policy -p <name> [-a <ids>] [-r <ids>] [-i <seconds>] [-c <count>] [-s <hh:mm>]\n       \
                     pegasus_admin -m <meta,...> disable_backup_policy -p <name> [-f]\n       \
                     pegasus_admin -m <meta,...> enable_backup_policy -p <name>\n       \
                     pegasus_admin -m <meta,...> query_restore_status <restore app id> [-d]";

/// `-x value` options of a command (`-f` alone counts as "true").
fn options(args: &[&str]) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let k = args[i].trim_start_matches('-').to_string();
        match args.get(i + 1) {
            Some(v) if !v.starts_with('-') => {
                m.insert(k, v.to_string());
                i += 2;
            }
            _ => {
                m.insert(k, "true".into());
                i += 1;
            }
        }
    }
    m
}

fn ids(s: Option<&String>) -> Result<Option<Vec<i32>>, String> {
    match s {
        None => Ok(None),
        Some(s) => s
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<i32>().map_err(|_| format!("invalid app id {x}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

/// Prints policies and their backups as the C++ shell's `query_backup_policy` does.
fn print_policies(r: &ConfigurationQueryBackupPolicyResponse) {
    let infos = r.backup_infos.clone().unwrap_or_default();
    for (i, p) in r.policys.iter().flatten().enumerate() {
        let name = p.policy_name.clone().unwrap_or_default();
        let ids: Vec<String> = p.app_ids.iter().flatten().map(|x| x.to_string()).collect();
        println!("[{name}]");
        println!(
            "  backup_provider_type : {}",
            p.backup_provider_type.clone().unwrap_or_default()
        );
        println!(
            "  backup_interval      : {}s",
            p.backup_interval_seconds.clone().unwrap_or_default()
        );
        println!("  app_ids              : {{{}}}", ids.join(", "));
        println!(
            "  start_time           : {}",
            p.start_time.clone().unwrap_or_default()
        );
        println!(
            "  status               : {}",
            if p.is_disable == Some(true) {
                "disabled"
            } else {
                "enabled"
            }
        );
        println!(
            "  backup_history_count : {}",
            p.backup_history_count_to_keep.unwrap_or(0)
        );
        if let Some(list) = infos.get(i).filter(|l| !l.is_empty()) {
            println!("[{name}_backup_info]");
            println!(
                "  {:<16}{:<16}{:<16}app_ids",
                "id", "start_time", "end_time"
            );
            for b in list {
                let ids: Vec<String> = b.app_ids.iter().flatten().map(|x| x.to_string()).collect();
                let end = b.end_time_ms.unwrap_or(0);
                println!(
                    "  {:<16}{:<16}{:<16}{{{}}}",
                    b.backup_id.unwrap_or(0),
                    b.start_time_ms.unwrap_or(0),
                    if end == 0 {
                        "-".to_string()
                    } else {
                        end.to_string()
                    },
                    ids.join(", ")
                );
            }
        }
    }
}

/// Prints a restore's progress as the C++ shell's `query_restore_status` does.
fn print_restore(
    id: i32,
    r: &ConfigurationQueryRestoreResponse,
    detailed: bool,
) -> Result<(), String> {
    match r.err {
        Some(ErrorCode::OK) => {}
        Some(ErrorCode::APP_NOT_EXIST) => {
            println!("invalid restore_app_id({id})");
            return Ok(());
        }
        Some(ErrorCode::APP_DROPPED) => {
            println!(
                "restore failed, because some partition's data is damaged on cold backup media"
            );
            return Ok(());
        }
        e => return Err(format!("query restore status failed: {}", err_text(e))),
    }
    let progress = r.restore_progress.clone().unwrap_or_default();
    let status = r.restore_status.clone().unwrap_or_default();
    let overall =
        progress.iter().map(|p| *p as i64).sum::<i64>() / progress.len().max(1) as i64 / 10;
    if detailed {
        let w = "restore_status".len();
        println!("{:<w$}{:<w$}{:<w$}", "pid", "progress(%)", "restore_status");
        for (i, st) in status.iter().enumerate() {
            let pr = progress.get(i).copied().unwrap_or(0);
            let text = match *st {
                ErrorCode::OK if pr == 1000 => "ok",
                ErrorCode::OK => "ongoing",
                ErrorCode::IGNORE_BAD_DATA => "skip",
                _ => "unknown",
            };
            println!("{:<w$}{:<w$}{:<w$}", i, pr / 10, text);
        }
        println!("\nthe overall progress of restore is {overall}%");
        println!("\nannotations:");
        println!("    ok : mean restore complete");
        println!("    ongoing : mean restore is under going");
        println!("    skip : data on cold backup media is damaged, but skip the damaged partition");
        println!("    unknown : invalid, should login server and check it");
    } else {
        println!("the overall progress of restore is {overall}%");
    }
    Ok(())
}

/// Calls `rpc` on each meta until one answers with an error other than "ask another meta".
async fn call_meta<Req, Resp>(
    metas: &[SocketAddr],
    rpc: &str,
    req: &Req,
    err_of: impl Fn(&Resp) -> Option<ErrorCode>,
) -> Result<Resp, String>
where
    Req: TSerializable,
    Resp: TSerializable,
{
    for round in 0..3 {
        for m in metas {
            let c = RpcClient::new(*m, 0);
            let timeout = Duration::from_secs(60);
            if let Some(r) = c.call_struct::<Req, Resp>(rpc, 0, 0, req, timeout).await {
                let e = err_of(&r);
                if e != Some(ErrorCode::FORWARD_TO_OTHERS)
                    && e != Some(ErrorCode::SERVICE_NOT_ACTIVE)
                {
                    return Ok(r);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * (round + 1))).await;
    }
    Err(format!("no meta server answered {rpc}"))
}

fn err_text(e: Option<ErrorCode>) -> String {
    e.map(|e| e.to_string())
        .unwrap_or_else(|| "ERR_UNKNOWN".into())
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let mut metas = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "-m" {
            let list = it.next().ok_or(USAGE)?;
            for m in list.split(',').filter(|s| !s.is_empty()) {
                let addr = m
                    .to_socket_addrs()
                    .map_err(|e| format!("bad meta address {m}: {e}"))?
                    .find(|a| a.is_ipv4())
                    .ok_or(format!("bad meta address {m}"))?;
                metas.push(addr);
            }
        } else {
            rest.push(a);
        }
    }
    if metas.is_empty() {
        return Err(USAGE.into());
    }
    match rest
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["get_replica_count", table] => {
            let req = ConfigurationGetMaxReplicaCountRequest {
                app_name: Some(table.to_string()),
            };
            let r: ConfigurationGetMaxReplicaCountResponse = call_meta(
                &metas,
                "RPC_CM_GET_MAX_REPLICA_COUNT",
                &req,
                |r: &ConfigurationGetMaxReplicaCountResponse| r.err,
            )
            .await?;
            if r.err != Some(ErrorCode::OK) {
                return Err(format!(
                    "get replica count of app({table}) failed: {} {}",
                    err_text(r.err),
                    r.hint_message.unwrap_or_default()
                ));
            }
            println!(
                "the replica count of app({table}) is {}",
                r.max_replica_count.unwrap_or(0)
            );
            Ok(())
        }
        ["set_replica_count", table, count] => {
            let n: i32 = count
                .parse()
                .map_err(|_| format!("{count} is not a replica count"))?;
            let req = ConfigurationSetMaxReplicaCountRequest {
                app_name: Some(table.to_string()),
                max_replica_count: Some(n),
            };
            let r: ConfigurationSetMaxReplicaCountResponse = call_meta(
                &metas,
                "RPC_CM_SET_MAX_REPLICA_COUNT",
                &req,
                |r: &ConfigurationSetMaxReplicaCountResponse| r.err,
            )
            .await?;
            let hint = r.hint_message.unwrap_or_default();
            if r.err != Some(ErrorCode::OK) {
                return Err(format!(
                    "set replica count of app({table}) to {n} failed: {} {hint}",
                    err_text(r.err)
                ));
            }
            println!(
                "set replica count of app({table}) from {} to {n} succeed{}",
                r.old_max_replica_count.unwrap_or(0),
                if hint.is_empty() {
                    String::new()
                } else {
                    format!(" ({hint})")
                }
            );
            Ok(())
        }
        ["query_restore_status", id, rest @ ..] => {
            let id: i32 = id.parse().unwrap_or(0);
            if id <= 0 {
                return Err(format!("invalid restore_app_id({id})"));
            }
            let req = ConfigurationQueryRestoreRequest {
                restore_app_id: Some(id),
            };
            let r: ConfigurationQueryRestoreResponse = call_meta(
                &metas,
                "RPC_CM_QUERY_RESTORE_STATUS",
                &req,
                |r: &ConfigurationQueryRestoreResponse| r.err,
            )
            .await?;
            print_restore(id, &r, rest.contains(&"-d") || rest.contains(&"--detailed"))
        }
        [cmd, opts @ ..] if cmd.ends_with("_backup_policy") => {
            let o = options(opts);
            let name = o.get("p").cloned().unwrap_or_default();
            match *cmd {
                "add_backup_policy" => {
                    let req = ConfigurationAddBackupPolicyRequest {
                        backup_provider_type: o.get("b").cloned(),
                        policy_name: Some(name.clone()),
                        app_ids: Some(ids(o.get("a"))?.unwrap_or_default()),
                        backup_interval_seconds: o.get("i").and_then(|x| x.parse().ok()),
                        backup_history_count_to_keep: o.get("c").and_then(|x| x.parse().ok()),
                        start_time: o.get("s").cloned(),
                    };
                    let r: ConfigurationAddBackupPolicyResponse = call_meta(
                        &metas,
                        "RPC_CM_ADD_BACKUP_POLICY",
                        &req,
                        |r: &ConfigurationAddBackupPolicyResponse| r.err,
                    )
                    .await?;
                    if r.err != Some(ErrorCode::OK) {
                        return Err(format!(
                            "add backup policy failed: {} {}",
                            err_text(r.err),
                            r.hint_message.unwrap_or_default()
                        ));
                    }
                    println!("add backup policy succeed, policy_name = {name}");
                    Ok(())
                }
                "ls_backup_policy" | "query_backup_policy" => {
                    let names: Vec<String> = name
                        .split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect();
                    let count = if *cmd == "ls_backup_policy" {
                        0
                    } else {
                        o.get("b").and_then(|x| x.parse().ok()).unwrap_or(3)
                    };
                    let req = ConfigurationQueryBackupPolicyRequest {
                        policy_names: Some(names),
                        backup_info_count: Some(count),
                    };
                    let r: ConfigurationQueryBackupPolicyResponse = call_meta(
                        &metas,
                        "RPC_CM_QUERY_BACKUP_POLICY",
                        &req,
                        |r: &ConfigurationQueryBackupPolicyResponse| r.err,
                    )
                    .await?;
                    if r.err != Some(ErrorCode::OK) {
                        return Err(format!(
                            "query backup policy failed: {} {}",
                            err_text(r.err),
                            r.hint_msg.unwrap_or_default()
                        ));
                    }
                    print_policies(&r);
                    Ok(())
                }
                "modify_backup_policy" | "disable_backup_policy" | "enable_backup_policy" => {
                    let req = ConfigurationModifyBackupPolicyRequest {
                        policy_name: Some(name.clone()),
                        add_appids: ids(o.get("a"))?,
                        removal_appids: ids(o.get("r"))?,
                        new_backup_interval_sec: o.get("i").and_then(|x| x.parse().ok()),
                        backup_history_count_to_keep: o.get("c").and_then(|x| x.parse().ok()),
                        is_disable: match *cmd {
                            "disable_backup_policy" => Some(true),
                            "enable_backup_policy" => Some(false),
                            _ => None,
                        },
                        start_time: o.get("s").cloned(),
                        force_disable: o.contains_key("f").then_some(true),
                    };
                    let r: ConfigurationModifyBackupPolicyResponse = call_meta(
                        &metas,
                        "RPC_CM_MODIFY_BACKUP_POLICY",
                        &req,
                        |r: &ConfigurationModifyBackupPolicyResponse| r.err,
                    )
                    .await?;
                    let hint = r.hint_message.unwrap_or_default();
                    if r.err != Some(ErrorCode::OK) {
                        return Err(format!("{cmd} failed: {} {hint}", err_text(r.err)));
                    }
                    println!(
                        "{cmd} succeed{}",
                        if hint.is_empty() {
                            String::new()
                        } else {
                            format!(": {hint}")
                        }
                    );
                    Ok(())
                }
                _ => Err(USAGE.into()),
            }
        }
        _ => Err(USAGE.into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

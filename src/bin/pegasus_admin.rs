//! `pegasus_admin`: the meta commands of upstream's C++ shell that the Go admin-cli lacks,
//! under the shell's names, for operators and tests:
//!
//!   pegasus_admin -m <meta,meta,...> get_replica_count <table>
//!   pegasus_admin -m <meta,meta,...> set_replica_count <table> <count>
//!
//! Each request goes to the metas in turn until one answers as leader.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use pegasus_rs::idl::dsn::ErrorCode;
use pegasus_rs::idl::meta_admin::{
    ConfigurationGetMaxReplicaCountRequest, ConfigurationGetMaxReplicaCountResponse,
    ConfigurationSetMaxReplicaCountRequest, ConfigurationSetMaxReplicaCountResponse,
};
use pegasus_rs::rpc::client::RpcClient;
use thrift::protocol::TSerializable;

const USAGE: &str = "usage: pegasus_admin -m <meta,...> get_replica_count <table>\n       \
                     pegasus_admin -m <meta,...> set_replica_count <table> <count>";

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

//! Remote commands (RPC_CLI_CLI_CALL) and the HTTP pages every role answers on its RPC port.

use crate::idl::command::Command;
use crate::rpc::frame::Request;
use crate::rpc::server::{arg, HttpReply, Reply};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn server_info(role: &str) -> String {
    format!("Pegasus Server {VERSION} (pegasus-rs), role {role}")
}

/// Runs one remote command and returns its text output.
pub fn run(cmd: &str, args: &[String], role: &str) -> String {
    match cmd {
        "help" => "help\nserver-info\nserver-stat\nversion\n".to_string(),
        "server-info" | "version" => server_info(role),
        "server-stat" => format!("{role} is serving"),
        _ => format!("unknown command '{cmd}' (args: {})", args.join(" ")),
    }
}

/// Handles RPC_CLI_CLI_CALL.
pub fn handle(req: &Request, role: &str) -> Reply {
    match arg::<Command>(req) {
        Some(c) => {
            let cmd = c.cmd.unwrap_or_default();
            let args = c.arguments.unwrap_or_default();
            Reply::string(&run(&cmd, &args, role))
        }
        None => Reply::err("ERR_INVALID_DATA"),
    }
}

/// Answers the HTTP pages shared by all roles.
pub fn http(path: &str, role: &str) -> HttpReply {
    let p = path.split('?').next().unwrap_or("/");
    match p {
        "/version" => HttpReply {
            status: 200,
            location: None,
            content_type: "application/json",
            body: format!("{{\"Version\":\"{VERSION}\",\"GitCommit\":\"\",\"Role\":\"{role}\"}}\n"),
        },
        "/configs" => {
            if path.contains('?') && !path.ends_with('?') {
                return reply(400, "text/plain", String::new());
            }
            reply(200, "application/json", crate::flags::flags().list_json())
        }
        "/config" => {
            let args = query(path);
            let mut name = String::new();
            for (k, v) in args {
                if k != "name" {
                    return reply(400, "text/plain", String::new());
                }
                name = v;
            }
            if name.is_empty() {
                return reply(400, "text/plain", "name shouldn't be empty".into());
            }
            match crate::flags::flags().get_json(&name) {
                Ok(j) => reply(200, "application/json", j),
                Err(e) => reply(200, "text/plain", e),
            }
        }
        "/updateConfig" => {
            let args = query(path);
            let status = match args.as_slice() {
                [(k, v)] => match crate::flags::flags().update(k, v) {
                    Ok(()) => "ERR_OK".to_string(),
                    Err(e) => e,
                },
                _ => {
                    "ERR_INVALID_PARAMETERS: there should be exactly one config to be updated once"
                        .to_string()
                }
            };
            reply(
                200,
                "application/json",
                serde_json::json!({ "update_status": status }).to_string(),
            )
        }
        _ => HttpReply {
            status: 404,
            location: None,
            content_type: "text/plain",
            body: format!("no such page: {p}\n"),
        },
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

fn query(path: &str) -> Vec<(String, String)> {
    match path.split_once('?') {
        Some((_, q)) => crate::flags::query_args(q),
        None => Vec::new(),
    }
}

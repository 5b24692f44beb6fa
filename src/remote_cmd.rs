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
        _ => HttpReply {
            status: 404,
            location: None,
            content_type: "text/plain",
            body: format!("no such page: {p}\n"),
        },
    }
}

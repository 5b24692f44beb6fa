//! The meta server's own remote commands (`meta.lb.*`, `meta.live_percentage`) with upstream's
//! argument syntax and JSON replies (2-space indent, keys sorted), over the balancer and
//! guardian switches they change. Pure: the service applies the switches to its state.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::balancer::BalancerOptions;
use crate::idl::dsn::RpcAddress;

/// Runtime switches of the balancer and the guardian, shared by every meta (upstream keeps
/// them per process, followers included).
#[derive(Debug, Clone)]
pub struct LbSettings {
    pub balancer: BalancerOptions,
    pub add_secondary_enable_flow_control: bool,
    pub add_secondary_max_count_for_one_node: i64,
    pub assign_delay_ms: i64,
    /// `meta.lb.assign_secondary_black_list`, as given (host:port texts) and resolved.
    pub black_list: Vec<String>,
    pub black_list_nodes: BTreeSet<u64>,
    pub live_percentage: i64,
    /// The configured values `DEFAULT` restores.
    pub defaults: (i64, i64, i64),
}

impl LbSettings {
    pub fn new(
        balancer: BalancerOptions,
        flow_control: bool,
        max_count_for_one_node: i64,
        assign_delay_ms: i64,
        live_percentage: i64,
    ) -> LbSettings {
        LbSettings {
            balancer,
            add_secondary_enable_flow_control: flow_control,
            add_secondary_max_count_for_one_node: max_count_for_one_node,
            assign_delay_ms,
            black_list: Vec::new(),
            black_list_nodes: BTreeSet::new(),
            live_percentage,
            defaults: (max_count_for_one_node, assign_delay_ms, live_percentage),
        }
    }
}

fn pretty(v: Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn error(msg: &str) -> String {
    pretty(json!({ "error": msg }))
}

/// `{"error": "ok", "<name>": value}`.
fn ok_with(name: &str, value: Value) -> String {
    let mut m = Map::new();
    m.insert("error".into(), "ok".into());
    m.insert(name.into(), value);
    pretty(Value::Object(m))
}

pub fn bool_command(name: &str, var: &mut bool, args: &[String]) -> String {
    match args {
        [] => ok_with(name, var.to_string().into()),
        [a] => match a.to_ascii_lowercase().as_str() {
            "true" => {
                *var = true;
                error("ok")
            }
            "false" => {
                *var = false;
                error("ok")
            }
            _ => error(&format!("ERR: invalid arguments, '{a}' is not a boolean")),
        },
        _ => error("ERR: invalid arguments, only one boolean argument is acceptable"),
    }
}

pub fn int_command(
    name: &str,
    var: &mut i64,
    default: i64,
    args: &[String],
    valid: impl Fn(i64) -> bool,
) -> String {
    match args {
        [] => ok_with(name, var.to_string().into()),
        [a] if a.eq_ignore_ascii_case("DEFAULT") => {
            *var = default;
            ok_with(name, default.into())
        }
        [a] => match a.parse::<i64>() {
            Ok(v) if valid(v) => {
                *var = v;
                error("ok")
            }
            _ => error(&format!(
                "ERR: invalid argument '{a}', the value is not acceptable"
            )),
        },
        _ => error(&format!(
            "ERR: invalid arguments '{}', only one argument is acceptable",
            args.join(" ")
        )),
    }
}

/// Runs a meta command; `None` when `cmd` is not one of the meta's own. `counts` is the last
/// balancer report (move_pri, copy_pri, copy_sec, total); `resolve` turns host:port into an
/// address.
pub fn run(
    cmd: &str,
    args: &[String],
    s: &mut LbSettings,
    counts: [i64; 4],
    resolve: &dyn Fn(&str) -> Option<RpcAddress>,
) -> Option<String> {
    let out = match cmd {
        "meta.lb.balancer_in_turn" => bool_command(cmd, &mut s.balancer.balancer_in_turn, args),
        "meta.lb.only_primary_balancer" => {
            bool_command(cmd, &mut s.balancer.only_primary_balancer, args)
        }
        "meta.lb.only_move_primary" => bool_command(cmd, &mut s.balancer.only_move_primary, args),
        "meta.lb.add_secondary_enable_flow_control" => {
            bool_command(cmd, &mut s.add_secondary_enable_flow_control, args)
        }
        "meta.lb.add_secondary_max_count_for_one_node" => int_command(
            cmd,
            &mut s.add_secondary_max_count_for_one_node,
            s.defaults.0,
            args,
            |v| v >= 0,
        ),
        "meta.lb.assign_delay_ms" => {
            int_command(cmd, &mut s.assign_delay_ms, s.defaults.1, args, |v| v >= 0)
        }
        "meta.live_percentage" => {
            int_command(cmd, &mut s.live_percentage, s.defaults.2, args, |v| {
                (0..=100).contains(&v)
            })
        }
        "meta.lb.get_balance_operation_count" => {
            let [mv, cp, cs, total] = counts;
            match args {
                [] => pretty(json!({ "total": total })),
                [a] => match a.as_str() {
                    "total" => pretty(json!({ "total": total })),
                    "move_pri" => pretty(json!({ "move_pri": mv })),
                    "copy_pri" => pretty(json!({ "copy_pri": cp })),
                    "copy_sec" => pretty(json!({ "copy_sec": cs })),
                    "detail" => pretty(
                        json!({ "copy_pri": cp, "copy_sec": cs, "move_pri": mv, "total": total }),
                    ),
                    _ => error("invalid arguments"),
                },
                _ => error("invalid arguments"),
            }
        }
        "meta.lb.ignored_app_list" => match args.first().map(String::as_str) {
            Some("get") => {
                let ids: Vec<String> = s
                    .balancer
                    .ignored_apps
                    .iter()
                    .map(|i| i.to_string())
                    .collect();
                pretty(json!({ "ignored_app_id_list": ids.join(",") }))
            }
            Some("clear") => {
                s.balancer.ignored_apps.clear();
                error("ok")
            }
            Some("set") => {
                let parsed: Option<BTreeSet<i32>> = match args {
                    [_, csv] => {
                        let items: Vec<&str> = csv.split(',').filter(|x| !x.is_empty()).collect();
                        if items.is_empty() {
                            None
                        } else {
                            items.iter().map(|x| x.trim().parse::<i32>().ok()).collect()
                        }
                    }
                    _ => None,
                };
                match parsed {
                    Some(ids) => {
                        s.balancer.ignored_apps = ids;
                        error("ok")
                    }
                    None => error("invalid argument"),
                }
            }
            _ => error("invalid arguments"),
        },
        "meta.lb.assign_secondary_black_list" => match args {
            [] => pretty(json!({
                "assign_secondary_black_list": s.black_list.join(","),
                "error": "ok"
            })),
            [a] if a == "clear" => {
                s.black_list.clear();
                s.black_list_nodes.clear();
                error("ok")
            }
            [a] => {
                let items: Vec<&str> = a
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect();
                if items.is_empty() {
                    return Some(error(
                        "invalid argument, the argument should be in form of \
                         '<host:port,host:port,host:port>'",
                    ));
                }
                let mut nodes = BTreeSet::new();
                for i in &items {
                    match resolve(i) {
                        Some(n) => {
                            nodes.insert(n.0);
                        }
                        None => {
                            return Some(error(&format!("invalid argument, bad host:port '{i}'")))
                        }
                    }
                }
                s.black_list = items.iter().map(|x| x.to_string()).collect();
                s.black_list_nodes = nodes;
                error("ok")
            }
            _ => error("invalid argument, 0 or 1 argument is acceptable"),
        },
        _ => return None,
    };
    Some(out)
}

/// The meta's commands, for `help`.
/// The meta's own commands: (name, help, argument syntax), upstream's texts.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "fd.allow_list",
        "Show the allow list of failure detector",
        "",
    ),
    (
        "meta.dump",
        "Dump app_states of meta server to a local file",
        "<target_file>",
    ),
    (
        "meta.lb.add_secondary_enable_flow_control",
        "control whether enable add secondary flow control",
        "<true|false>",
    ),
    (
        "meta.lb.add_secondary_max_count_for_one_node",
        "control the max count to add secondary for one node",
        "[num | DEFAULT]",
    ),
    (
        "meta.lb.assign_delay_ms",
        "control the replica_assign_delay_ms_for_dropouts config",
        "[num | DEFAULT]",
    ),
    (
        "meta.lb.assign_secondary_black_list",
        "Control the assign secondary black list",
        "[host1:port,host2:port,...|clear]",
    ),
    (
        "meta.lb.balancer_in_turn",
        "control whether do app balancer in turn",
        "<true|false>",
    ),
    (
        "meta.lb.get_balance_operation_count",
        "Get balance operation count",
        "[total | move_pri | copy_pri | copy_sec | detail]",
    ),
    (
        "meta.lb.ignored_app_list",
        "Get, set or clear balancer ignored_app_list",
        "<get|set|clear> [set_app_id1,set_app_id2,...]",
    ),
    (
        "meta.lb.only_move_primary",
        "control whether only move primary in balancer",
        "<true|false>",
    ),
    (
        "meta.lb.only_primary_balancer",
        "control whether do only primary balancer",
        "<true|false>",
    ),
    (
        "meta.live_percentage",
        "node live percentage threshold for update",
        "[num | DEFAULT]",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> LbSettings {
        LbSettings::new(BalancerOptions::default(), false, 10, 600_000, 65)
    }

    fn run1(st: &mut LbSettings, cmd: &str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let resolve = |t: &str| super::super::service::resolve_leader(t);
        run(cmd, &args, st, [1, 2, 3, 6], &resolve).expect("a meta command")
    }

    #[test]
    fn bool_and_int_commands_as_upstream() {
        let mut st = s();
        let name = "meta.lb.only_move_primary";
        assert_eq!(
            run1(&mut st, name, &[]),
            "{\n  \"error\": \"ok\",\n  \"meta.lb.only_move_primary\": \"false\"\n}"
        );
        assert_eq!(run1(&mut st, name, &["true"]), "{\n  \"error\": \"ok\"\n}");
        assert!(st.balancer.only_move_primary);
        assert!(run1(&mut st, name, &["yes"]).contains("is not a boolean"));
        assert!(run1(&mut st, name, &["true", "false"]).contains("only one boolean"));
        let d = "meta.lb.assign_delay_ms";
        assert_eq!(run1(&mut st, d, &["5"]), "{\n  \"error\": \"ok\"\n}");
        assert_eq!(st.assign_delay_ms, 5);
        assert!(run1(&mut st, d, &["-1"]).contains("not acceptable"));
        assert!(run1(&mut st, d, &["DEFAULT"]).contains("\"meta.lb.assign_delay_ms\": 600000"));
        assert_eq!(st.assign_delay_ms, 600_000);
        assert!(run1(&mut st, "meta.live_percentage", &["101"]).contains("not acceptable"));
    }

    #[test]
    fn counts_ignored_apps_and_black_list() {
        let mut st = s();
        let c = "meta.lb.get_balance_operation_count";
        assert_eq!(run1(&mut st, c, &[]), "{\n  \"total\": 6\n}");
        assert_eq!(
            run1(&mut st, c, &["detail"]),
            "{\n  \"copy_pri\": 2,\n  \"copy_sec\": 3,\n  \"move_pri\": 1,\n  \"total\": 6\n}"
        );
        assert!(run1(&mut st, c, &["x"]).contains("invalid arguments"));
        let i = "meta.lb.ignored_app_list";
        assert!(run1(&mut st, i, &["set", "3,1"]).contains("ok"));
        assert!(run1(&mut st, i, &["get"]).contains("\"ignored_app_id_list\": \"1,3\""));
        assert!(run1(&mut st, i, &["set", "a"]).contains("invalid argument"));
        assert!(run1(&mut st, i, &["clear"]).contains("ok"));
        assert!(st.balancer.ignored_apps.is_empty());
        let b = "meta.lb.assign_secondary_black_list";
        assert!(run1(&mut st, b, &["127.0.0.1:34801,127.0.0.1:34802"]).contains("ok"));
        assert_eq!(st.black_list_nodes.len(), 2);
        assert!(run1(&mut st, b, &[]).contains("127.0.0.1:34801,127.0.0.1:34802"));
        assert!(run1(&mut st, b, &["nohost"]).contains("bad host:port"));
        assert!(run1(&mut st, b, &["clear"]).contains("ok"));
        assert!(st.black_list.is_empty());
        let args: Vec<String> = Vec::new();
        assert!(run("server-info", &args, &mut st, [0; 4], &|_| None).is_none());
    }
}

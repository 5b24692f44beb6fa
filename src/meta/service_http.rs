//! The meta server's HTTP pages, as upstream serves them: `/meta/app`, `/meta/apps`,
//! `/meta/nodes`, `/meta/cluster`, `/meta/app_envs`, the POST pages that set compaction and
//! usage-scenario envs, `/envs/list`, and upstream's answers for the features this server
//! does not have (duplication, backup policies, bulk load). A follower redirects them to the
//! leader with 307, in upstream's order of checks.

use std::collections::BTreeMap;

use super::{level_name, MetaService};
use crate::base::table_printer::{double, Object};
use crate::idl::dsn::{ErrorCode, RpcAddress};
use crate::idl::dsn_layer2::AppStatus;
use crate::idl::meta_admin::{AppEnvOperation, ConfigurationUpdateAppEnvRequest};
use crate::rpc::host_port::book;
use crate::rpc::http::HttpRequest;
use crate::rpc::server::HttpReply;

/// The meta's own pages: (path, help).
pub const META_PAGES: &[(&str, &str)] = &[
    ("/envs/list", "List all available table environments."),
    ("/meta/app", "name=<app_name>[&detail]. Query app info."),
    (
        "/meta/app/duplication",
        "name=<app_name>. Query app duplication info.",
    ),
    (
        "/meta/app/query_bulk_load",
        "name=<app_name>. Query app bulk load info.",
    ),
    (
        "/meta/app/start_bulk_load",
        "A JSON format of start_bulk_load_request structure. Start bulk load on an app.",
    ),
    (
        "/meta/app/start_compaction",
        "A JSON format of manual_compaction_info structure. Start compaction for an app.",
    ),
    (
        "/meta/app/usage_scenario",
        "A JSON format of usage_scenario_info structure. Update usage scenario of an app.",
    ),
    ("/meta/app_envs", "name=<app_name>. Query app environments."),
    ("/meta/apps", "[detail]. List all apps in the cluster."),
    (
        "/meta/backup_policy",
        "name=<app_name1>&name=<app_name2>. Query backup policy by policy names.",
    ),
    ("/meta/cluster", "Query the cluster info."),
    ("/meta/nodes", "[detail]. Query the replica servers info."),
];

fn text(status: u16, body: impl Into<String>) -> HttpReply {
    HttpReply {
        status,
        content_type: "text/plain",
        body: body.into(),
        location: None,
    }
}

/// The body of `/meta/app/duplication`, as upstream's (nlohmann JSON, keys sorted): entries
/// under "1", "2", ... and "appid"; `null` for a table without duplications.
fn dup_page(r: &crate::idl::duplication::DuplicationQueryResponse) -> String {
    use crate::meta::duplication::{fail_mode_name, status_name};
    use serde_json::{json, Value};
    use std::collections::BTreeMap;
    let entries = r.entry_list.clone().unwrap_or_default();
    if entries.is_empty() {
        return "null".into();
    }
    let mut top: BTreeMap<String, Value> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let mut o: BTreeMap<&str, Value> = BTreeMap::new();
        let ts = e.create_ts.unwrap_or(0);
        let local = chrono::DateTime::from_timestamp_millis(ts)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        o.insert("create_ts", json!(local));
        o.insert("dupid", json!(e.dupid.unwrap_or(0)));
        if let Some(f) = e.fail_mode {
            o.insert("fail_mode", json!(fail_mode_name(f)));
        }
        if let Some(ps) = &e.partition_states {
            let m: BTreeMap<String, Value> = ps
                .iter()
                .map(|(p, s)| {
                    (
                        p.to_string(),
                        json!({"confirmed_decree": s.confirmed_decree.unwrap_or(-1),
                               "last_committed_decree": s.last_committed_decree.unwrap_or(-1)}),
                    )
                })
                .collect();
            o.insert("partition_states", json!(m));
        }
        o.insert("remote", json!(e.remote.clone().unwrap_or_default()));
        if let Some(n) = &e.remote_app_name {
            o.insert("remote_app_name", json!(n));
        }
        if let Some(c) = e.remote_replica_count {
            o.insert("remote_replica_count", json!(c));
        }
        if let Some(s) = e.status {
            o.insert("status", json!(status_name(s)));
        }
        top.insert((i + 1).to_string(), json!(o));
        top.insert("appid".into(), json!(r.appid.unwrap_or(0)));
    }
    serde_json::to_string(&top).unwrap_or_default()
}

fn node_name(a: &RpcAddress) -> String {
    book().hp_of(*a).to_string()
}

/// A partition's health as upstream's pages judge it: (fully healthy, write unhealthy, read
/// unhealthy).
fn health(p: &crate::idl::dsn_layer2::PartitionConfiguration) -> (bool, bool, bool) {
    let primary = p.primary.as_ref().is_some_and(|a| a.0 != 0);
    let n = i32::from(primary) + p.secondaries.as_ref().map_or(0, |v| v.len() as i32);
    let max = p.max_replica_count.unwrap_or(3);
    if !primary {
        return (false, true, true);
    }
    (n >= max, n < 2, false)
}

/// Local `YYYY-MM-DD hh:mm:ss.SSS` of Unix ms.
fn local_ms(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

impl MetaService {
    /// Answers an HTTP request on the meta server.
    pub(super) async fn http_page(&self, req: &HttpRequest) -> HttpReply {
        let p = req.path.as_str();
        if !p.starts_with("/meta/") {
            return match p {
                "/envs/list" => text(200, crate::meta::app_env_validator::envs_list_json()),
                _ => crate::remote_cmd::http(req, META_PAGES),
            };
        }
        // These three refuse unknown arguments before redirecting, as upstream.
        let allowed: &[&str] = match p {
            "/meta/app" => &["name", "detail"],
            "/meta/apps" | "/meta/nodes" => &["detail"],
            _ => &[],
        };
        if !allowed.is_empty() && req.args.iter().any(|(k, _)| !allowed.contains(&k.as_str())) {
            return text(400, "");
        }
        let known = META_PAGES.iter().any(|(path, _)| *path == p);
        if !known {
            return crate::rpc::http::not_found(p);
        }
        let view = self.election.view();
        if !view.is_leader {
            let leader = view
                .leader
                .clone()
                .unwrap_or_else(|| "invalid host_port".into());
            let q = req.query_string();
            let location = if q.is_empty() {
                format!("http://{leader}{p}")
            } else {
                format!("http://{leader}{p}?{q}")
            };
            return HttpReply {
                status: 307,
                content_type: "text/plain",
                body: String::new(),
                location: Some(location),
            };
        }
        match p {
            "/meta/app/duplication" => {
                if !crate::base::dup_common::get().enabled {
                    return text(
                        404,
                        "duplication is not enabled [FLAGS_duplication_enabled=false]",
                    );
                }
                let name = match req.arg("name") {
                    Some(n) if !n.is_empty() => n.to_string(),
                    _ => return text(400, "name should not be empty"),
                };
                let q = crate::idl::duplication::DuplicationQueryRequest {
                    app_name: Some(name),
                };
                let Some(r) = self.query_duplication(q).await else {
                    return text(500, "ERR_SERVICE_NOT_ACTIVE");
                };
                return match r.err {
                    Some(ErrorCode::OK) => text(200, dup_page(&r)),
                    Some(e) if e == ErrorCode::APP_NOT_EXIST => text(404, e.name()),
                    e => text(500, e.map_or("ERR_UNKNOWN", |e| e.name())),
                };
            }
            "/meta/backup_policy" => {
                let enabled = !crate::flags::flags()
                    .bool("cold_backup_disabled")
                    .unwrap_or(true);
                if !enabled {
                    return text(404, "cold_backup_disabled");
                }
                if req.args.iter().any(|(k, _)| k != "name") {
                    return text(400, "Invalid parameter");
                }
                let want = req.arg("name").map(str::to_string);
                let all = self
                    .backups
                    .policies
                    .lock()
                    .await
                    .clone()
                    .unwrap_or_default();
                let mut out = Object::new();
                for (name, st) in &all {
                    if want.as_ref().is_some_and(|w| w != name) {
                        continue;
                    }
                    let p = &st.policy;
                    let ids: Vec<i32> = p.app_ids.iter().copied().collect();
                    out.row(
                        "name",
                        name,
                        &[
                            ("backup_provider_type", p.provider.clone()),
                            ("backup_interval", p.interval_seconds.to_string()),
                            ("app_ids", serde_json::Value::from(ids).to_string()),
                            (
                                "start_time",
                                crate::meta::backup_policy::start_text(p.start),
                            ),
                            (
                                "status",
                                if p.disabled { "disabled" } else { "enabled" }.into(),
                            ),
                            ("backup_history_count", p.history_count.to_string()),
                        ],
                    );
                }
                return text(200, out.finish_line());
            }
            "/meta/app/start_bulk_load" | "/meta/app/query_bulk_load" => {
                return text(404, "bulk load is not enabled")
            }
            "/meta/app/start_compaction" => return self.start_compaction(&req.body).await,
            "/meta/app/usage_scenario" => return self.usage_scenario(&req.body).await,
            _ => {}
        }
        let Some(s) = self.st().await else {
            return text(500, "ERR_SERVICE_NOT_ACTIVE");
        };
        let detail = req.arg("detail").is_some();
        match p {
            "/meta/app" => {
                let name = req.arg("name").unwrap_or("");
                if name.is_empty() {
                    return text(400, "app name shouldn't be empty");
                }
                let Some(app) = s.apps.values().find(|a| {
                    a.info.app_name.as_deref() == Some(name)
                        && a.info.status == Some(AppStatus::AS_AVAILABLE)
                }) else {
                    return text(404, format!("table not found: \"{name}\""));
                };
                let mut out = Object::new();
                let mut g = Object::new();
                g.str("app_name", name)
                    .str("app_id", &app.info.app_id.unwrap_or(0).to_string())
                    .str(
                        "partition_count",
                        &app.info.partition_count.unwrap_or(0).to_string(),
                    )
                    .str(
                        "max_replica_count",
                        &app.partitions
                            .first()
                            .and_then(|p| p.max_replica_count)
                            .unwrap_or(0)
                            .to_string(),
                    );
                out.obj("general", &g);
                if detail {
                    let mut reps = Object::new();
                    let mut nodes: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                    let (mut full, mut wu, mut ru) = (0, 0, 0);
                    for (i, part) in app.partitions.iter().enumerate() {
                        let primary = part.primary.filter(|a| a.0 != 0);
                        let secs: Vec<String> =
                            part.secondaries.iter().flatten().map(node_name).collect();
                        let n = i32::from(primary.is_some()) + secs.len() as i32;
                        reps.row(
                            "pidx",
                            &i.to_string(),
                            &[
                                ("ballot", part.ballot.unwrap_or(0).to_string()),
                                (
                                    "replica_count",
                                    format!("{n}/{}", part.max_replica_count.unwrap_or(0)),
                                ),
                                ("primary", primary.map_or("-".into(), |a| node_name(&a))),
                                ("secondaries", format!("[{}]", secs.join(","))),
                            ],
                        );
                        if let Some(a) = primary {
                            nodes.entry(node_name(&a)).or_default().0 += 1;
                        }
                        for s in secs {
                            nodes.entry(s).or_default().1 += 1;
                        }
                        let (f, w, r) = health(part);
                        full += i64::from(f);
                        wu += i64::from(w);
                        ru += i64::from(r);
                    }
                    out.obj("replicas", &reps);
                    let mut ns = Object::new();
                    let (mut tp, mut ts) = (0, 0);
                    for (n, (pc, sc)) in &nodes {
                        tp += pc;
                        ts += sc;
                        ns.row(
                            "node",
                            n,
                            &[
                                ("primary", pc.to_string()),
                                ("secondary", sc.to_string()),
                                ("total", (pc + sc).to_string()),
                            ],
                        );
                    }
                    ns.row(
                        "node",
                        "total",
                        &[
                            ("primary", tp.to_string()),
                            ("secondary", ts.to_string()),
                            ("total", (tp + ts).to_string()),
                        ],
                    );
                    out.obj("nodes", &ns);
                    let pc = app.partitions.len() as i64;
                    let mut h = Object::new();
                    h.str("fully_healthy_partition_count", &full.to_string())
                        .str("unhealthy_partition_count", &(pc - full).to_string())
                        .str("write_unhealthy_partition_count", &wu.to_string())
                        .str("read_unhealthy_partition_count", &ru.to_string());
                    out.obj("healthy", &h);
                }
                text(200, out.finish_line())
            }
            "/meta/apps" => {
                let mut general = Object::new();
                let mut healthy = Object::new();
                let (mut n, mut full_apps, mut wu_apps, mut ru_apps) = (0, 0, 0, 0);
                for app in s.apps.values() {
                    if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                        continue;
                    }
                    n += 1;
                    let i = &app.info;
                    let id = i.app_id.unwrap_or(0).to_string();
                    let created = i.create_second.unwrap_or(0);
                    general.row(
                        "app_id",
                        &id,
                        &[
                            ("status", "AVAILABLE".into()),
                            ("app_name", i.app_name.clone().unwrap_or_default()),
                            ("app_type", i.app_type.clone().unwrap_or_default()),
                            (
                                "partition_count",
                                i.partition_count.unwrap_or(0).to_string(),
                            ),
                            (
                                "replica_count",
                                i.max_replica_count.unwrap_or(0).to_string(),
                            ),
                            ("is_stateful", i.is_stateful.unwrap_or(true).to_string()),
                            (
                                "create_time",
                                if created > 0 {
                                    local_ms(created * 1000)
                                } else {
                                    "-".into()
                                },
                            ),
                            ("drop_time", "-".into()),
                            ("drop_expire", "-".into()),
                            (
                                "envs_count",
                                i.envs.as_ref().map_or(0, |e| e.len()).to_string(),
                            ),
                        ],
                    );
                    let (mut full, mut wu, mut ru) = (0i64, 0i64, 0i64);
                    for part in &app.partitions {
                        let (f, w, r) = health(part);
                        full += i64::from(f);
                        wu += i64::from(w);
                        ru += i64::from(r);
                    }
                    let pc = app.partitions.len() as i64;
                    full_apps += i64::from(full == pc);
                    wu_apps += i64::from(wu > 0);
                    ru_apps += i64::from(ru > 0);
                    healthy.row(
                        "app_id",
                        &id,
                        &[
                            ("app_name", i.app_name.clone().unwrap_or_default()),
                            ("partition_count", pc.to_string()),
                            ("fully_healthy", full.to_string()),
                            ("unhealthy", (pc - full).to_string()),
                            ("write_unhealthy", wu.to_string()),
                            ("read_unhealthy", ru.to_string()),
                        ],
                    );
                }
                let mut out = Object::new();
                out.obj("general_info", &general);
                if detail && n > 0 {
                    out.obj("healthy_info", &healthy);
                }
                let mut sum = Object::new();
                sum.str("total_app_count", &n.to_string());
                if detail && n > 0 {
                    sum.str("fully_healthy_app_count", &full_apps.to_string())
                        .str("unhealthy_app_count", &(n - full_apps).to_string())
                        .str("write_unhealthy_app_count", &wu_apps.to_string())
                        .str("read_unhealthy_app_count", &ru_apps.to_string());
                }
                out.obj("summary", &sum);
                text(200, out.finish_line())
            }
            "/meta/nodes" => {
                let mut counts: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
                if detail {
                    for app in s.apps.values() {
                        if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                            continue;
                        }
                        for part in &app.partitions {
                            if let Some(a) = part.primary.filter(|a| a.0 != 0) {
                                counts.entry(a.0).or_default().0 += 1;
                            }
                            for a in part.secondaries.iter().flatten() {
                                counts.entry(a.0).or_default().1 += 1;
                            }
                        }
                    }
                }
                let mut rows: Vec<(bool, String, u64)> = s
                    .nodes
                    .iter()
                    .map(|(a, n)| (!n.alive, node_name(&RpcAddress(*a)), *a))
                    .collect();
                rows.sort();
                let mut details = Object::new();
                let alive = rows.iter().filter(|r| !r.0).count();
                for (dead, name, a) in &rows {
                    let mut cols = vec![(
                        "status",
                        if *dead { "UNALIVE" } else { "ALIVE" }.to_string(),
                    )];
                    if detail {
                        let (p, sc) = counts.get(a).copied().unwrap_or_default();
                        cols.push(("replica_count", (p + sc).to_string()));
                        cols.push(("primary_count", p.to_string()));
                        cols.push(("secondary_count", sc.to_string()));
                    }
                    details.row("address", name, &cols);
                }
                let mut sum = Object::new();
                sum.str("total_node_count", &rows.len().to_string())
                    .str("alive_node_count", &alive.to_string())
                    .str("unalive_node_count", &(rows.len() - alive).to_string());
                let mut out = Object::new();
                out.obj("details", &details).obj("summary", &sum);
                text(200, out.finish_line())
            }
            "/meta/cluster" => {
                let stddevs = s.replica_count_stddev();
                let [mv, cp, cs, total] = s.lb_counts;
                let counts = serde_json::to_string_pretty(&serde_json::json!({
                    "copy_pri": cp, "copy_sec": cs, "move_pri": mv, "total": total
                }))
                .unwrap_or_default();
                let mut out = Object::new();
                out.str("meta_servers", &s.opts.server_list.join(","))
                    .str(
                        "primary_meta_server",
                        &book().hp_of(self.self_addr).to_string(),
                    )
                    .str("zookeeper_hosts", &self.zk_hosts)
                    .str("zookeeper_root", &s.opts.cluster_root)
                    .str("meta_function_level", level_name(s.effective_level()))
                    .str("balance_operation_count", &counts)
                    .str("primary_replica_count_stddev", &double(stddevs.0))
                    .str("total_replica_count_stddev", &double(stddevs.1));
                text(200, out.finish_line())
            }
            "/meta/app_envs" => {
                let name = req.arg("name").unwrap_or("");
                if name.is_empty() {
                    return text(400, "app name shouldn't be empty");
                }
                let mut out = Object::new();
                if let Some(app) = s.apps.values().find(|a| {
                    a.info.app_name.as_deref() == Some(name)
                        && a.info.status == Some(AppStatus::AS_AVAILABLE)
                }) {
                    for (k, v) in app.info.envs.iter().flatten() {
                        out.str(k, v);
                    }
                }
                text(200, out.finish_line())
            }
            _ => crate::rpc::http::not_found(p),
        }
    }

    /// Sets envs of a table as RPC_CM_UPDATE_APP_ENV does; (error name, hint).
    async fn set_envs(&self, app: &str, kvs: Vec<(String, String)>) -> (String, String) {
        let req = ConfigurationUpdateAppEnvRequest {
            app_name: Some(app.to_string()),
            op: Some(AppEnvOperation::APP_ENV_OP_SET),
            keys: Some(kvs.iter().map(|(k, _)| k.clone()).collect()),
            values: Some(kvs.into_iter().map(|(_, v)| v).collect()),
            clear_prefix: None,
        };
        match self.update_app_env(req).await {
            Some(r) => (
                r.err.unwrap_or(ErrorCode::OK).name().to_string(),
                r.hint_message.unwrap_or_default(),
            ),
            None => ("ERR_SERVICE_NOT_ACTIVE".into(), String::new()),
        }
    }

    /// POST `/meta/app/start_compaction` (a JSON `manual_compaction_info`).
    async fn start_compaction(&self, body: &[u8]) -> HttpReply {
        let invalid = || text(400, "invalid request structure");
        let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body)
        else {
            return invalid();
        };
        let known = [
            "app_name",
            "type",
            "target_level",
            "bottommost_level_compaction",
            "max_concurrent_running_count",
            "trigger_time",
        ];
        if m.keys().any(|k| !known.contains(&k.as_str())) {
            return invalid();
        }
        let s = |k: &str| m.get(k).map(|v| v.as_str().map(str::to_string));
        let i = |k: &str| m.get(k).map(serde_json::Value::as_i64);
        let (Some(Some(app)), Some(Some(ty)), Some(Some(level)), Some(Some(bottom))) = (
            s("app_name"),
            s("type"),
            i("target_level"),
            s("bottommost_level_compaction"),
        ) else {
            return invalid();
        };
        let max_running = match i("max_concurrent_running_count") {
            None => 0,
            Some(Some(v)) => v,
            Some(None) => return invalid(),
        };
        let trigger = match s("trigger_time") {
            None => String::new(),
            Some(Some(v)) => v,
            Some(None) => return invalid(),
        };
        if app.is_empty() {
            return text(400, "app_name should not be empty");
        }
        if ty != "once" && ty != "periodic" {
            return text(400, "type should ony be 'once' or 'periodic'");
        }
        if level < -1 {
            return text(400, "target_level should be >= -1");
        }
        if bottom != "skip" && bottom != "force" {
            return text(
                400,
                "bottommost_level_compaction should ony be 'skip' or 'force'",
            );
        }
        if max_running < 0 {
            return text(400, "max_running_count should be >= 0");
        }
        if ty == "periodic" && trigger.is_empty() {
            return text(
                400,
                "trigger_time should not be empty when type is periodic",
            );
        }
        let p = format!("manual_compact.{ty}.");
        let trigger = if ty == "once" {
            (crate::base::value_schema::now_us() / 1_000_000).to_string()
        } else {
            trigger
        };
        let mut kvs = vec![
            (format!("{p}target_level"), level.to_string()),
            (format!("{p}bottommost_level_compaction"), bottom),
            (format!("{p}trigger_time"), trigger),
        ];
        if max_running > 0 {
            kvs.push((
                "manual_compact.max_concurrent_running_count".into(),
                max_running.to_string(),
            ));
        }
        let (err, hint) = self.set_envs(&app, kvs).await;
        text(
            200,
            format!(
                "{}\n",
                serde_json::json!({ "error": err, "hint_message": hint })
            ),
        )
    }

    /// POST `/meta/app/usage_scenario` (`{"app_name": .., "scenario": ..}`).
    async fn usage_scenario(&self, body: &[u8]) -> HttpReply {
        let invalid = || text(400, "invalid request structure");
        let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body)
        else {
            return invalid();
        };
        if m.keys().any(|k| k != "app_name" && k != "scenario") {
            return invalid();
        }
        let (Some(app), Some(sc)) = (
            m.get("app_name").and_then(|v| v.as_str()),
            m.get("scenario").and_then(|v| v.as_str()),
        ) else {
            return invalid();
        };
        if app.is_empty() {
            return text(400, "app_name should not be empty");
        }
        if sc != "normal" && sc != "bulk_load" {
            return text(400, "scenario should ony be 'normal' or 'bulk_load'");
        }
        let (err, hint) = self
            .set_envs(app, vec![("rocksdb.usage_scenario".into(), sc.into())])
            .await;
        text(
            200,
            format!(
                "{}\n",
                serde_json::json!({ "error": err, "hint_message": hint })
            ),
        )
    }
}

//! Upstream's JSON encodings of app_info and partition_configuration as persisted in the meta
//! state store: declared key order, booleans as 0/1, enums by scoped name, addresses as text.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::idl::dsn::{Gpid, HostPort, RpcAddress};
use crate::idl::dsn_layer2::{AppInfo, AppStatus, PartitionConfiguration};
use crate::rpc::host_port::from_text;
#[cfg(test)]
use crate::rpc::host_port::literal;

const APP_STATUS_NAMES: [&str; 8] = [
    "AS_INVALID",
    "AS_AVAILABLE",
    "AS_CREATING",
    "AS_CREATE_FAILED",
    "AS_DROPPING",
    "AS_DROP_FAILED",
    "AS_DROPPED",
    "AS_RECALLING",
];

fn s(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into())
}

fn b(v: Option<bool>) -> u8 {
    v.unwrap_or(false) as u8
}

fn addr_text(a: &Option<RpcAddress>) -> String {
    match a {
        Some(a) if !a.is_invalid() => a.to_string(),
        _ => "invalid address".to_string(),
    }
}

fn hp_text(h: &Option<HostPort>) -> String {
    match h {
        Some(h) if !h.is_invalid() => format!("{}:{}", h.host, h.port),
        _ => "invalid host_port".to_string(),
    }
}

pub fn app_info_to_json(a: &AppInfo) -> String {
    let status = a.status.map(|s| s.0).unwrap_or(0);
    let status_name = APP_STATUS_NAMES
        .get(status as usize)
        .copied()
        .unwrap_or("AS_INVALID");
    let envs: Vec<String> = a
        .envs
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{}:{}", s(k), s(v)))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{{\"status\":\"app_status::{}\",\"app_type\":{},\"app_name\":{},\"app_id\":{},\"partition_count\":{},\"envs\":{{{}}},\"is_stateful\":{},\"max_replica_count\":{},\"expire_second\":{},\"create_second\":{},\"drop_second\":{},\"duplicating\":{},\"init_partition_count\":{},\"is_bulk_loading\":{},\"atomic_idempotent\":{}}}",
        status_name,
        s(a.app_type.as_deref().unwrap_or("pegasus")),
        s(a.app_name.as_deref().unwrap_or("")),
        a.app_id.unwrap_or(0),
        a.partition_count.unwrap_or(0),
        envs.join(","),
        b(a.is_stateful.or(Some(true))),
        a.max_replica_count.unwrap_or(0),
        a.expire_second.unwrap_or(0),
        a.create_second.unwrap_or(0),
        a.drop_second.unwrap_or(0),
        b(a.duplicating),
        a.init_partition_count.unwrap_or(-1),
        b(a.is_bulk_loading),
        b(a.atomic_idempotent),
    )
}

fn get_i64(v: &Value, k: &str) -> Option<i64> {
    match v.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn get_bool(v: &Value, k: &str) -> Option<bool> {
    get_i64(v, k).map(|x| x != 0)
}

pub fn app_info_from_json(bytes: &[u8]) -> Result<AppInfo, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("bad app JSON: {e}"))?;
    let status_text = v.get("status").and_then(|x| x.as_str()).unwrap_or("");
    let bare = status_text.rsplit("::").next().unwrap_or("");
    let status = APP_STATUS_NAMES
        .iter()
        .position(|n| *n == bare)
        .ok_or_else(|| format!("unknown app status {status_text:?}"))?;
    let mut envs = BTreeMap::new();
    if let Some(m) = v.get("envs").and_then(|x| x.as_object()) {
        for (k, x) in m {
            envs.insert(k.clone(), x.as_str().unwrap_or_default().to_string());
        }
    }
    Ok(AppInfo {
        status: Some(AppStatus(status as i32)),
        app_type: v.get("app_type").and_then(|x| x.as_str()).map(String::from),
        app_name: v.get("app_name").and_then(|x| x.as_str()).map(String::from),
        app_id: Some(get_i64(&v, "app_id").ok_or("app_id missing")? as i32),
        partition_count: Some(
            get_i64(&v, "partition_count").ok_or("partition_count missing")? as i32,
        ),
        envs: Some(envs),
        is_stateful: Some(get_bool(&v, "is_stateful").unwrap_or(true)),
        max_replica_count: Some(get_i64(&v, "max_replica_count").unwrap_or(3) as i32),
        expire_second: Some(get_i64(&v, "expire_second").unwrap_or(0)),
        create_second: Some(get_i64(&v, "create_second").unwrap_or(0)),
        drop_second: Some(get_i64(&v, "drop_second").unwrap_or(0)),
        duplicating: Some(get_bool(&v, "duplicating").unwrap_or(false)),
        init_partition_count: Some(get_i64(&v, "init_partition_count").unwrap_or(-1) as i32),
        is_bulk_loading: Some(get_bool(&v, "is_bulk_loading").unwrap_or(false)),
        atomic_idempotent: Some(get_bool(&v, "atomic_idempotent").unwrap_or(false)),
    })
}

fn list_text<T>(items: &Option<Vec<T>>, f: impl Fn(&T) -> String) -> String {
    let parts: Vec<String> = items
        .as_ref()
        .map(|v| v.iter().map(|x| s(&f(x))).collect())
        .unwrap_or_default();
    format!("[{}]", parts.join(","))
}

pub fn partition_to_json(p: &PartitionConfiguration) -> String {
    let pid = p.pid.unwrap_or_default();
    format!(
        "{{\"pid\":\"{}.{}\",\"ballot\":{},\"max_replica_count\":{},\"primary\":{},\"secondaries\":{},\"last_drops\":{},\"last_committed_decree\":{},\"partition_flags\":{},\"hp_primary\":{},\"hp_secondaries\":{},\"hp_last_drops\":{}}}",
        pid.app_id,
        pid.partition_index,
        p.ballot.unwrap_or(0),
        p.max_replica_count.unwrap_or(0),
        s(&addr_text(&p.primary)),
        list_text(&p.secondaries, |a| addr_text(&Some(*a))),
        list_text(&p.last_drops, |a| addr_text(&Some(*a))),
        p.last_committed_decree.unwrap_or(0),
        p.partition_flags.unwrap_or(0),
        s(&hp_text(&p.hp_primary)),
        list_text(&p.hp_secondaries, |h| hp_text(&Some(h.clone()))),
        list_text(&p.hp_last_drops, |h| hp_text(&Some(h.clone()))),
    )
}

fn parse_addr(text: &str) -> RpcAddress {
    let Some((host, port)) = text.rsplit_once(':') else {
        return RpcAddress::INVALID;
    };
    match (host.parse::<Ipv4Addr>(), port.parse::<u16>()) {
        (Ok(ip), Ok(port)) => RpcAddress::from_ipv4(ip, port),
        _ => RpcAddress::INVALID,
    }
}

fn addr_list(v: &Value, k: &str) -> Vec<RpcAddress> {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(parse_addr)
                .filter(|a| !a.is_invalid())
                .collect()
        })
        .unwrap_or_default()
}

pub fn partition_from_json(bytes: &[u8]) -> Result<PartitionConfiguration, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("bad partition JSON: {e}"))?;
    let pid_text = v.get("pid").and_then(|x| x.as_str()).ok_or("pid missing")?;
    let (a, p) = pid_text.split_once('.').ok_or("bad pid")?;
    let pid = Gpid::new(
        a.parse().map_err(|_| "bad pid")?,
        p.parse().map_err(|_| "bad pid")?,
    );
    // The rpc_address fields are authoritative (upstream writes both, and its host names
    // need a lookup); the hp_* twins are kept when they match the addresses one for one.
    let primary = parse_addr(v.get("primary").and_then(|x| x.as_str()).unwrap_or(""));
    let hp = |k: &str| v.get(k).and_then(|x| x.as_str()).and_then(from_text);
    let hp_list = |k: &str| -> Option<Vec<HostPort>> {
        v.get(k)?
            .as_array()?
            .iter()
            .map(|x| x.as_str().and_then(from_text))
            .collect()
    };
    let secondaries = addr_list(&v, "secondaries");
    let last_drops = addr_list(&v, "last_drops");
    let hp_secondaries = hp_list("hp_secondaries").filter(|h| h.len() == secondaries.len());
    let hp_last_drops = hp_list("hp_last_drops").filter(|h| h.len() == last_drops.len());
    Ok(PartitionConfiguration {
        pid: Some(pid),
        ballot: Some(get_i64(&v, "ballot").unwrap_or(0)),
        max_replica_count: Some(get_i64(&v, "max_replica_count").unwrap_or(3) as i32),
        primary: Some(primary),
        secondaries: Some(secondaries),
        last_drops: Some(last_drops),
        last_committed_decree: Some(get_i64(&v, "last_committed_decree").unwrap_or(0)),
        partition_flags: Some(get_i64(&v, "partition_flags").unwrap_or(0) as i32),
        hp_primary: hp("hp_primary"),
        hp_secondaries,
        hp_last_drops,
    })
}

/// Fills the hp_* twins of the address fields (for persistence) with `hp_of`.
pub fn with_host_ports(
    p: &PartitionConfiguration,
    hp_of: &dyn Fn(RpcAddress) -> HostPort,
) -> PartitionConfiguration {
    let mut out = p.clone();
    out.hp_primary = Some(hp_of(p.primary.unwrap_or(RpcAddress::INVALID)));
    out.hp_secondaries = Some(p.secondaries.iter().flatten().map(|a| hp_of(*a)).collect());
    out.hp_last_drops = Some(p.last_drops.iter().flatten().map(|a| hp_of(*a)).collect());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_json_matches_upstream_example() {
        let mut envs = BTreeMap::new();
        envs.insert("default_ttl".to_string(), "86400".to_string());
        let a = AppInfo {
            status: Some(AppStatus::AS_AVAILABLE),
            app_type: Some("pegasus".into()),
            app_name: Some("temp".into()),
            app_id: Some(2),
            partition_count: Some(8),
            envs: Some(envs),
            is_stateful: Some(true),
            max_replica_count: Some(3),
            expire_second: Some(0),
            create_second: Some(1_717_000_000),
            drop_second: Some(0),
            duplicating: Some(false),
            init_partition_count: Some(8),
            is_bulk_loading: Some(false),
            atomic_idempotent: Some(false),
        };
        let want = r#"{"status":"app_status::AS_AVAILABLE","app_type":"pegasus","app_name":"temp","app_id":2,"partition_count":8,"envs":{"default_ttl":"86400"},"is_stateful":1,"max_replica_count":3,"expire_second":0,"create_second":1717000000,"drop_second":0,"duplicating":0,"init_partition_count":8,"is_bulk_loading":0,"atomic_idempotent":0}"#;
        assert_eq!(app_info_to_json(&a), want);
        assert_eq!(app_info_from_json(want.as_bytes()).unwrap(), a);
    }

    #[test]
    fn partition_json_matches_upstream_example() {
        let want = r#"{"pid":"2.1","ballot":0,"max_replica_count":3,"primary":"invalid address","secondaries":[],"last_drops":[],"last_committed_decree":0,"partition_flags":0,"hp_primary":"invalid host_port","hp_secondaries":[],"hp_last_drops":[]}"#;
        let p = partition_from_json(want.as_bytes()).unwrap();
        assert_eq!(partition_to_json(&with_host_ports(&p, &literal)), want);
        let a = RpcAddress::from_ipv4(Ipv4Addr::new(10, 0, 0, 1), 34801);
        let mut q = p.clone();
        q.primary = Some(a);
        q.last_drops = Some(vec![a]);
        let text = partition_to_json(&with_host_ports(&q, &literal));
        assert!(text.contains(r#""primary":"10.0.0.1:34801""#));
        assert!(text.contains(r#""hp_last_drops":["10.0.0.1:34801"]"#));
        let back = partition_from_json(text.as_bytes()).unwrap();
        assert_eq!(back.primary, Some(a));
        assert_eq!(back.last_drops, Some(vec![a]));
    }

    #[test]
    fn upstream_host_names_load_with_their_addresses() {
        let text = r#"{"pid":"1.3","ballot":7,"max_replica_count":3,"primary":"127.0.0.1:34801","secondaries":["127.0.0.1:34802","127.0.0.1:34803"],"last_drops":[],"last_committed_decree":12,"partition_flags":0,"hp_primary":"localhost:34801","hp_secondaries":["localhost:34802","localhost:34803"],"hp_last_drops":[]}"#;
        let p = partition_from_json(text.as_bytes()).unwrap();
        assert_eq!(
            p.primary,
            Some(RpcAddress::from_ipv4(Ipv4Addr::LOCALHOST, 34801))
        );
        assert_eq!(p.secondaries.as_ref().map(|s| s.len()), Some(2));
        assert_eq!(p.hp_primary, Some(HostPort::new("localhost", 34801)));
        assert_eq!(
            p.hp_secondaries,
            Some(vec![
                HostPort::new("localhost", 34802),
                HostPort::new("localhost", 34803)
            ])
        );
        let named = |a: RpcAddress| HostPort::new("localhost", a.port());
        assert_eq!(partition_to_json(&with_host_ports(&p, &named)), text);
    }
}

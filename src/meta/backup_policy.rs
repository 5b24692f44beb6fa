//! Backup policies as upstream keeps them (pure: no I/O): the policy and backup-info documents
//! stored under `<cluster_root>/backup/<policy>[/<backup_id>]` (upstream's JSON keys), the
//! `HH:MM` start time, the schedule (the hour of the start time, then every interval), the
//! history count the GC keeps, and the validation hints of RPC_CM_ADD_BACKUP_POLICY.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// A policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub provider: String,
    pub app_ids: BTreeSet<i32>,
    pub app_names: BTreeMap<i32, String>,
    pub interval_seconds: i64,
    pub history_count: i32,
    pub disabled: bool,
    /// (hour, minute); hour 24 means "any time".
    pub start: (i32, i32),
}

/// One backup of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub backup_id: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub app_ids: BTreeSet<i32>,
    pub app_names: BTreeMap<i32, String>,
    /// 1: alive, 2: being deleted (upstream's info_status).
    pub status: i32,
}

/// Parses `HH:MM` as upstream: anything invalid means 24:00 (no start-time limit).
pub fn parse_start(s: &str) -> (i32, i32) {
    let mut it = s.trim().splitn(2, ':');
    let h = it.next().and_then(|x| x.trim().parse::<i32>().ok());
    let m = it.next().and_then(|x| x.trim().parse::<i32>().ok());
    match (h, m) {
        (Some(h), Some(m)) if (0..24).contains(&h) && (0..60).contains(&m) => (h, m),
        _ => (24, 0),
    }
}

pub fn start_text(s: (i32, i32)) -> String {
    format!("{:02}:{:02}", s.0, s.1)
}

fn names_json(m: &BTreeMap<i32, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.clone())))
            .collect(),
    )
}

fn names_from(v: &Value) -> BTreeMap<i32, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn ids_from(v: &Value) -> BTreeSet<i32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_i64())
                .map(|x| x as i32)
                .collect()
        })
        .unwrap_or_default()
}

impl Policy {
    pub fn to_json(&self) -> String {
        json!({
            "policy_name": self.name,
            "backup_provider_type": self.provider,
            "app_ids": self.app_ids.iter().collect::<Vec<_>>(),
            "app_names": names_json(&self.app_names),
            "backup_interval_seconds": self.interval_seconds,
            "backup_history_count_to_keep": self.history_count,
            "is_disable": self.disabled,
            "start_time": {"hour": self.start.0, "minute": self.start.1},
        })
        .to_string()
    }

    pub fn from_json(b: &[u8]) -> Option<Policy> {
        let v: Value = serde_json::from_slice(b).ok()?;
        Some(Policy {
            name: v["policy_name"].as_str()?.to_string(),
            provider: v["backup_provider_type"].as_str()?.to_string(),
            app_ids: ids_from(&v["app_ids"]),
            app_names: names_from(&v["app_names"]),
            interval_seconds: v["backup_interval_seconds"].as_i64()?,
            history_count: v["backup_history_count_to_keep"].as_i64().unwrap_or(6) as i32,
            disabled: v["is_disable"].as_bool().unwrap_or(false),
            start: (
                v["start_time"]["hour"].as_i64().unwrap_or(24) as i32,
                v["start_time"]["minute"].as_i64().unwrap_or(0) as i32,
            ),
        })
    }

    /// Whether a backup is due at `now_ms` (local hour `hour`), given the last one started.
    pub fn due(&self, now_ms: i64, hour: i32, last_start_ms: Option<i64>) -> bool {
        let hour_ok = self.start.0 == 24 || self.start.0 == hour;
        match last_start_ms {
            None => hour_ok,
            Some(last) => last + self.interval_seconds * 1000 <= now_ms && hour_ok,
        }
    }
}

impl BackupInfo {
    pub fn to_json(&self) -> String {
        json!({
            "backup_id": self.backup_id,
            "start_time_ms": self.start_ms,
            "end_time_ms": self.end_ms,
            "app_ids": self.app_ids.iter().collect::<Vec<_>>(),
            "app_names": names_json(&self.app_names),
            "info_status": self.status,
        })
        .to_string()
    }

    pub fn from_json(b: &[u8]) -> Option<BackupInfo> {
        let v: Value = serde_json::from_slice(b).ok()?;
        Some(BackupInfo {
            backup_id: v["backup_id"].as_i64()?,
            start_ms: v["start_time_ms"].as_i64().unwrap_or(0),
            end_ms: v["end_time_ms"].as_i64().unwrap_or(0),
            app_ids: ids_from(&v["app_ids"]),
            app_names: names_from(&v["app_names"]),
            status: v["info_status"].as_i64().unwrap_or(1) as i32,
        })
    }
}

/// Upstream's policy-name rules; `Err(hint)` when refused.
pub fn check_name(name: &str) -> Result<(), String> {
    let hint = |h: &str| Err(format!("invalid policy name: '{name}', {h}"));
    if name.contains("backup_info") {
        return hint("policy name is reserved");
    }
    let first_ok =
        |c: char, colon: bool| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    let rest_ok =
        |c: char, colon: bool| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    let metric = name.chars().next().is_some_and(|c| first_ok(c, true))
        && name.chars().all(|c| rest_ok(c, true));
    if !metric {
        return hint("policy name should match regex '[a-zA-Z_:][a-zA-Z0-9_:]*' when act as a metric name in prometheus");
    }
    let label = name.chars().next().is_some_and(|c| first_ok(c, false))
        && name.chars().all(|c| rest_ok(c, false));
    if !label {
        return hint("policy name should match regex '[a-zA-Z_][a-zA-Z0-9_]*' when act as a metric label in prometheus");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_parse_as_upstream() {
        assert_eq!(parse_start("12:30"), (12, 30));
        assert_eq!(parse_start("24:00"), (24, 0));
        assert_eq!(parse_start("25:00"), (24, 0));
        assert_eq!(parse_start("bad"), (24, 0));
        assert_eq!(start_text((3, 5)), "03:05");
    }

    #[test]
    fn documents_round_trip() {
        let p = Policy {
            name: "daily".into(),
            provider: "local_service".into(),
            app_ids: [2, 3].into_iter().collect(),
            app_names: [(2, "a".to_string())].into_iter().collect(),
            interval_seconds: 86400,
            history_count: 3,
            disabled: false,
            start: (1, 30),
        };
        assert_eq!(Policy::from_json(p.to_json().as_bytes()), Some(p.clone()));
        let v: Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["start_time"]["hour"], 1);
        let b = BackupInfo {
            backup_id: 5,
            start_ms: 5,
            end_ms: 9,
            app_ids: [2].into_iter().collect(),
            app_names: BTreeMap::new(),
            status: 1,
        };
        assert_eq!(BackupInfo::from_json(b.to_json().as_bytes()), Some(b));
    }

    #[test]
    fn schedule_waits_for_the_interval_and_the_hour() {
        let mut p = Policy::from_json(
            br#"{"policy_name":"p","backup_provider_type":"x","app_ids":[],"app_names":{},"backup_interval_seconds":60,"backup_history_count_to_keep":1,"is_disable":false,"start_time":{"hour":24,"minute":0}}"#,
        )
        .unwrap();
        assert!(p.due(1_000, 5, None));
        assert!(!p.due(50_000, 5, Some(0)));
        assert!(p.due(60_000, 5, Some(0)));
        p.start = (7, 0);
        assert!(!p.due(60_000, 5, Some(0)));
        assert!(p.due(60_000, 7, Some(0)));
    }

    #[test]
    fn names_follow_the_prometheus_rules() {
        assert!(check_name("daily_1").is_ok());
        assert!(check_name("a:b").unwrap_err().contains("metric label"));
        assert!(check_name("1abc").unwrap_err().contains("metric name"));
        assert!(check_name("my_backup_info")
            .unwrap_err()
            .contains("reserved"));
    }
}

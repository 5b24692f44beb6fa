//! The small files of a replica directory: `.app-info` (an 8-byte thrift-binary magic then
//! the app_info struct in thrift's JSON protocol) and `.init-info` (compact JSON), both
//! written to `<name>.tmp`, synced, then renamed over the old file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::Value;

/// The magic that opens `.app-info`: i32 0xDEADBEEF as field 0 of a binary-protocol struct.
pub const APP_INFO_MAGIC: [u8; 8] = [0x08, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, 0x00];

use crate::idl::dsn_layer2::{AppInfo, AppStatus};

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Renders app_info in thrift's JSON protocol, wrapped as field 0 of a struct.
pub fn app_info_tjson(a: &AppInfo) -> String {
    // Only `rocksdb.allow_ingest_behind` is kept in the file; the meta owns the other envs.
    let empty = BTreeMap::new();
    let envs: Vec<(&String, &String)> = a
        .envs
        .as_ref()
        .unwrap_or(&empty)
        .iter()
        .filter(|(k, _)| k.as_str() == "rocksdb.allow_ingest_behind")
        .collect();
    let mut m = String::new();
    for (i, (k, v)) in envs.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        m.push_str(&format!("{}:{}", json_str(k), json_str(v)));
    }
    let b = |x: bool| if x { 1 } else { 0 };
    format!(
        "{{\"0\":{{\"rec\":{{\"1\":{{\"i32\":{}}},\"2\":{{\"str\":{}}},\"3\":{{\"str\":{}}},\
         \"4\":{{\"i32\":{}}},\"5\":{{\"i32\":{}}},\"6\":{{\"map\":[\"str\",\"str\",{},{{{}}}]}},\
         \"7\":{{\"tf\":{}}},\"8\":{{\"i32\":{}}},\"9\":{{\"i64\":{}}},\"10\":{{\"i64\":{}}},\
         \"11\":{{\"i64\":{}}},\"12\":{{\"tf\":{}}},\"13\":{{\"i32\":{}}},\"14\":{{\"tf\":{}}},\
         \"15\":{{\"tf\":{}}}}}}}}}",
        a.status.map(|s| s.0).unwrap_or(0),
        json_str(a.app_type.as_deref().unwrap_or("")),
        json_str(a.app_name.as_deref().unwrap_or("")),
        a.app_id.unwrap_or(0),
        a.partition_count.unwrap_or(0),
        envs.len(),
        m,
        b(a.is_stateful.unwrap_or(true)),
        a.max_replica_count.unwrap_or(0),
        a.expire_second.unwrap_or(0),
        a.create_second.unwrap_or(0),
        a.drop_second.unwrap_or(0),
        b(a.duplicating.unwrap_or(false)),
        a.init_partition_count.unwrap_or(-1),
        b(a.is_bulk_loading.unwrap_or(false)),
        b(a.atomic_idempotent.unwrap_or(false)),
    )
}

fn field<'a>(rec: &'a Value, id: &str, ty: &str) -> Option<&'a Value> {
    rec.get(id).and_then(|f| f.get(ty))
}

/// Parses a `.app-info` file's bytes.
pub fn parse_app_info(bytes: &[u8]) -> Result<AppInfo, String> {
    if bytes.len() < 8 || bytes[..8] != APP_INFO_MAGIC {
        return Err("bad .app-info magic".into());
    }
    let v: Value =
        serde_json::from_slice(&bytes[8..]).map_err(|e| format!("bad .app-info JSON: {e}"))?;
    let rec = v
        .get("0")
        .and_then(|f| f.get("rec"))
        .ok_or("no app_info record")?;
    let i = |id: &str, ty: &str| field(rec, id, ty).and_then(|x| x.as_i64());
    let s = |id: &str| {
        field(rec, id, "str")
            .and_then(|x| x.as_str())
            .map(|x| x.to_string())
    };
    let mut envs = BTreeMap::new();
    if let Some(m) = field(rec, "6", "map").and_then(|m| m.as_array()) {
        if let Some(obj) = m.get(3).and_then(|o| o.as_object()) {
            for (k, v) in obj {
                envs.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
    }
    let app_id = i("4", "i32").ok_or("app_id missing")? as i32;
    let partition_count = i("5", "i32").ok_or("partition_count missing")? as i32;
    Ok(AppInfo {
        status: Some(AppStatus(i("1", "i32").unwrap_or(0) as i32)),
        app_type: Some(s("2").ok_or("app_type missing")?),
        app_name: Some(s("3").unwrap_or_default()),
        app_id: Some(app_id),
        partition_count: Some(partition_count),
        envs: Some(envs),
        is_stateful: Some(i("7", "tf").unwrap_or(1) != 0),
        max_replica_count: Some(i("8", "i32").unwrap_or(3) as i32),
        expire_second: Some(i("9", "i64").unwrap_or(0)),
        create_second: Some(i("10", "i64").unwrap_or(0)),
        drop_second: Some(i("11", "i64").unwrap_or(0)),
        duplicating: Some(i("12", "tf").unwrap_or(0) != 0),
        init_partition_count: Some(i("13", "i32").unwrap_or(-1) as i32),
        is_bulk_loading: Some(i("14", "tf").unwrap_or(0) != 0),
        atomic_idempotent: Some(i("15", "tf").unwrap_or(0) != 0),
    })
}

/// The replica init state kept in `.init-info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitInfo {
    pub init_ballot: i64,
    pub init_durable_decree: i64,
    pub init_offset_in_shared_log: i64,
    pub init_offset_in_private_log: i64,
}

pub fn init_info_json(i: &InitInfo) -> String {
    format!(
        "{{\"init_ballot\":{},\"init_durable_decree\":{},\"init_offset_in_shared_log\":{},\"init_offset_in_private_log\":{}}}",
        i.init_ballot, i.init_durable_decree, i.init_offset_in_shared_log, i.init_offset_in_private_log
    )
}

pub fn parse_init_info(bytes: &[u8]) -> Result<InitInfo, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("bad .init-info: {e}"))?;
    let obj = v.as_object().ok_or(".init-info is not an object")?;
    let get = |k: &str| -> Result<i64, String> {
        match obj.get(k) {
            None => Ok(0),
            Some(x) => x
                .as_i64()
                .ok_or(format!(".init-info {k} is not an integer")),
        }
    };
    Ok(InitInfo {
        init_ballot: get("init_ballot")?,
        init_durable_decree: get("init_durable_decree")?,
        init_offset_in_shared_log: get("init_offset_in_shared_log")?,
        init_offset_in_private_log: get("init_offset_in_private_log")?,
    })
}

/// Writes a file atomically: `<path>.tmp`, fsync, rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn write_app_info(dir: &Path, a: &AppInfo) -> std::io::Result<()> {
    let mut b = APP_INFO_MAGIC.to_vec();
    b.extend_from_slice(app_info_tjson(a).as_bytes());
    write_atomic(&dir.join(".app-info"), &b)
}

pub fn write_init_info(dir: &Path, i: &InitInfo) -> std::io::Result<()> {
    write_atomic(&dir.join(".init-info"), init_info_json(i).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> AppInfo {
        AppInfo {
            status: Some(AppStatus::AS_AVAILABLE),
            app_type: Some("pegasus".into()),
            app_name: Some("temp".into()),
            app_id: Some(2),
            partition_count: Some(8),
            envs: Some(BTreeMap::new()),
            is_stateful: Some(true),
            max_replica_count: Some(3),
            expire_second: Some(0),
            create_second: Some(1_700_000_000),
            drop_second: Some(0),
            duplicating: Some(false),
            init_partition_count: Some(8),
            is_bulk_loading: Some(false),
            atomic_idempotent: Some(false),
        }
    }

    #[test]
    fn app_info_matches_upstream_rendering() {
        let want = r#"{"0":{"rec":{"1":{"i32":1},"2":{"str":"pegasus"},"3":{"str":"temp"},"4":{"i32":2},"5":{"i32":8},"6":{"map":["str","str",0,{}]},"7":{"tf":1},"8":{"i32":3},"9":{"i64":0},"10":{"i64":1700000000},"11":{"i64":0},"12":{"tf":0},"13":{"i32":8},"14":{"tf":0},"15":{"tf":0}}}}"#;
        assert_eq!(app_info_tjson(&temp()), want);
        let mut bytes = APP_INFO_MAGIC.to_vec();
        bytes.extend_from_slice(want.as_bytes());
        assert_eq!(parse_app_info(&bytes).unwrap(), temp());
        assert!(parse_app_info(&bytes[1..]).is_err());
    }

    #[test]
    fn envs_are_filtered_on_store() {
        let mut a = temp();
        let envs = a.envs.get_or_insert_with(BTreeMap::new);
        envs.insert("default_ttl".into(), "10".into());
        envs.insert("rocksdb.allow_ingest_behind".into(), "true".into());
        let s = app_info_tjson(&a);
        assert!(s.contains(r#""6":{"map":["str","str",1,{"rocksdb.allow_ingest_behind":"true"}]}"#));
    }

    #[test]
    fn init_info_round_trip() {
        let i = InitInfo {
            init_ballot: 3,
            init_durable_decree: 10,
            init_offset_in_shared_log: 0,
            init_offset_in_private_log: 123,
        };
        let s = init_info_json(&i);
        assert_eq!(
            s,
            r#"{"init_ballot":3,"init_durable_decree":10,"init_offset_in_shared_log":0,"init_offset_in_private_log":123}"#
        );
        assert_eq!(parse_init_info(s.as_bytes()).unwrap(), i);
        assert!(parse_init_info(br#"{"init_ballot":"x"}"#).is_err());
    }
}

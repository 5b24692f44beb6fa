//! The table-env validator of RPC_CM_UPDATE_APP_ENV (upstream's `app_env_validator`): the keys
//! upstream accepts, each with its value rule, and upstream's hint texts for what is refused.

use crate::base::throttling::{parse_throttling, parse_units};

/// The rule of one key's value.
enum Rule {
    Bool,
    /// A 32-bit integer with a lower and an upper bound.
    I32(i64, i64, &'static str),
    /// A 64-bit integer with a lower and an upper bound.
    I64(i64, i64, &'static str),
    /// Any string.
    Free,
    /// One of the listed strings (the hint lists them).
    OneOf(&'static [&'static str], &'static str),
    /// `<units>*<delay|reject>*<ms>[,...]`.
    Throttling,
    /// A size rate, or the throttling grammar with a reject item.
    TokenBucket,
    /// `<timeout|reconfig>*<all|write|read>`.
    DenyClient,
    /// -1 or at least 1.
    TargetLevel,
}

fn rule(key: &str) -> Option<Rule> {
    use Rule::*;
    Some(match key {
        "replica.slow_query_threshold" => I64(20, i64::MAX, ">= 20"),
        "replica.write_throttling"
        | "replica.write_throttling_by_size"
        | "replica.read_throttling"
        | "replica.backup_request_throttling" => Throttling,
        "replica.read_throttling_by_size" => TokenBucket,
        "replica.rocksdb_iteration_threshold_time_ms" => I64(0, i64::MAX, ">= 0"),
        "replica.rocksdb_block_cache_enabled"
        | "replica.split.validate_partition_hash"
        | "rocksdb.allow_ingest_behind"
        | "manual_compact.disabled" => Bool,
        "user_specified_compaction"
        | "business.info"
        | "manual_compact.periodic.trigger_time"
        | "replica_access_controller.allowed_users"
        | "replica_access_controller.ranger_policies"
        | "duplication.master_cluster"
        | "duplication.master_metas"
        | "duplication.master_app_name"
        | "duplication.follower_app_status" => Free,
        "replica.deny_client_request" => DenyClient,
        "rocksdb.write_buffer_size" => I64(16777216, 536870912, "In range [16777216, 536870912]"),
        "rocksdb.num_levels" => I64(1, 10, "In range [1, 10]"),
        "default_ttl" => I32(0, i64::from(i32::MAX), ">= 0"),
        "rocksdb.usage_scenario" => OneOf(
            &["bulk_load", "normal", "prefer_write"],
            "bulk_load | normal | prefer_write",
        ),
        "rocksdb.checkpoint.reserve_min_count" => I32(1, i64::from(i32::MAX), "> 0"),
        "rocksdb.checkpoint.reserve_time_seconds" => I32(0, i64::from(i32::MAX), ">= 0"),
        "manual_compact.max_concurrent_running_count" => I32(0, i64::from(i32::MAX), ">= 0"),
        "manual_compact.once.trigger_time" => I64(0, i64::MAX, "> 0"),
        "manual_compact.once.target_level" | "manual_compact.periodic.target_level" => TargetLevel,
        "manual_compact.once.bottommost_level_compaction"
        | "manual_compact.periodic.bottommost_level_compaction" => {
            OneOf(&["force", "skip"], "force | skip")
        }
        _ => return None,
    })
}

/// What `/envs/list` lists for each key: (key, type, limitation, sample), upstream's texts.
const ENV_DOCS: &[(&str, &str, &str, &str)] = &[
    (
        "business.info",
        "string",
        "",
        "",
    ),
    (
        "default_ttl",
        "unsigned int32",
        ">= 0",
        "86400",
    ),
    (
        "duplication.follower_app_status",
        "string",
        "",
        "",
    ),
    (
        "duplication.master_app_name",
        "string",
        "",
        "",
    ),
    (
        "duplication.master_cluster",
        "string",
        "",
        "",
    ),
    (
        "duplication.master_metas",
        "string",
        "",
        "",
    ),
    (
        "manual_compact.disabled",
        "bool",
        "true | false",
        "true",
    ),
    (
        "manual_compact.max_concurrent_running_count",
        "unsigned int32",
        ">= 0",
        "8",
    ),
    (
        "manual_compact.once.bottommost_level_compaction",
        "string",
        "force | skip",
        "skip",
    ),
    (
        "manual_compact.once.target_level",
        "unsigned int64",
        "-1 or >= 1",
        "6",
    ),
    (
        "manual_compact.once.trigger_time",
        "unsigned int64",
        "> 0, timestamp (in seconds) to trigger the once manual compaction",
        "1700000000",
    ),
    (
        "manual_compact.periodic.bottommost_level_compaction",
        "string",
        "force | skip",
        "skip",
    ),
    (
        "manual_compact.periodic.target_level",
        "unsigned int64",
        "-1 or >= 1",
        "6",
    ),
    (
        "manual_compact.periodic.trigger_time",
        "string",
        "",
        "",
    ),
    (
        "replica.backup_request_throttling",
        "string",
        "<size[K|M]>*<delay|reject>*<milliseconds>",
        "10000*delay*100,20000*reject*100",
    ),
    (
        "replica.deny_client_request",
        "string",
        "timeout*all | timeout*write | timeout*read | reconfig*all | reconfig*write | reconfig*read",
        "timeout*all",
    ),
    (
        "replica.read_throttling",
        "string",
        "<size[K|M]>*<delay|reject>*<milliseconds>",
        "10000*delay*100,20000*reject*100",
    ),
    (
        "replica.read_throttling_by_size",
        "string",
        "",
        "20000*delay*100,20000*reject*100",
    ),
    (
        "replica.rocksdb_block_cache_enabled",
        "bool",
        "true | false",
        "true",
    ),
    (
        "replica.rocksdb_iteration_threshold_time_ms",
        "unsigned int64",
        ">= 0",
        "1000",
    ),
    (
        "replica.slow_query_threshold",
        "unsigned int64",
        ">= 20",
        "1000",
    ),
    (
        "replica.split.validate_partition_hash",
        "bool",
        "true | false",
        "true",
    ),
    (
        "replica.write_throttling",
        "string",
        "<size[K|M]>*<delay|reject>*<milliseconds>",
        "10000*delay*100,20000*reject*100",
    ),
    (
        "replica.write_throttling_by_size",
        "string",
        "<size[K|M]>*<delay|reject>*<milliseconds>",
        "10000*delay*100,20000*reject*100",
    ),
    (
        "replica_access_controller.allowed_users",
        "string",
        "",
        "",
    ),
    (
        "replica_access_controller.ranger_policies",
        "string",
        "",
        "",
    ),
    (
        "rocksdb.allow_ingest_behind",
        "bool",
        "true | false",
        "true",
    ),
    (
        "rocksdb.checkpoint.reserve_min_count",
        "unsigned int32",
        "> 0",
        "2",
    ),
    (
        "rocksdb.checkpoint.reserve_time_seconds",
        "unsigned int32",
        ">= 0",
        "3600",
    ),
    (
        "rocksdb.num_levels",
        "unsigned int64",
        "In range [1, 10]",
        "6",
    ),
    (
        "rocksdb.usage_scenario",
        "string",
        "bulk_load | normal | prefer_write",
        "normal",
    ),
    (
        "rocksdb.write_buffer_size",
        "unsigned int64",
        "In range [16777216, 536870912]",
        "16777216",
    ),
    (
        "user_specified_compaction",
        "string",
        "",
        "",
    ),
];

/// The body of `/envs/list`: every key with its type, limitation and sample (pretty JSON,
/// keys sorted, as upstream).
pub fn envs_list_json() -> String {
    let mut m = serde_json::Map::new();
    for (k, t, l, s) in ENV_DOCS {
        m.insert(
            k.to_string(),
            serde_json::json!({ "limitation": l, "sample": s, "type": t }),
        );
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(m)).unwrap_or_default()
}

/// Parses an integer as C's `strtoll` with base 0 does (leading spaces, a sign, `0x` hex,
/// leading-zero octal), requiring the whole string to be consumed.
fn parse_c_integer(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// Checks one key and value: `Err(hint)` with upstream's hint when refused.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let Some(r) = rule(key) else {
        return Err(format!("app_env '{key}' is not supported"));
    };
    let int = |bits: u32, lo: i64, hi: i64, desc: &str| -> Result<(), String> {
        let v = parse_c_integer(value)
            .filter(|v| bits == 64 || i32::try_from(*v).is_ok())
            .ok_or_else(|| format!("invalid value '{value}', should be an {bits} bits integer"))?;
        if v < lo || v > hi {
            return Err(format!("invalid value '{value}', should be '{desc}'"));
        }
        Ok(())
    };
    match r {
        Rule::Bool => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(format!("invalid value '{value}', should be a boolean"))
            }
        }
        Rule::I32(lo, hi, d) => int(32, lo, hi, d),
        Rule::I64(lo, hi, d) => int(64, lo, hi, d),
        Rule::TargetLevel => {
            let v = parse_c_integer(value)
                .ok_or_else(|| format!("invalid value '{value}', should be an 64 bits integer"))?;
            if v == -1 || v >= 1 {
                Ok(())
            } else {
                Err(format!("invalid value '{value}', should be '-1 or >= 1'"))
            }
        }
        Rule::Free => Ok(()),
        Rule::OneOf(allowed, hint) => {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(hint.to_string())
            }
        }
        Rule::Throttling => parse_throttling(value).map(|_| ()),
        Rule::TokenBucket => {
            if parse_units(value).is_ok_and(|n| n > 0) {
                return Ok(());
            }
            let items = parse_throttling(value)?;
            if items.len() == 1 && !items[0].1 {
                // A lone delay item is accepted (and turns the throttling off).
                return Ok(());
            }
            match items.iter().find(|i| i.1) {
                Some((units, _, _)) if *units > 0 => Ok(()),
                _ => Err("reject value should be greater than 0".into()),
            }
        }
        Rule::DenyClient => {
            let f: Vec<&str> = value.split('*').collect();
            let ok = f.len() == 2
                && matches!(f[0], "timeout" | "reconfig")
                && matches!(f[1], "all" | "write" | "read");
            if ok {
                Ok(())
            } else {
                Err(
                    "Invalid deny client args, valid include: timeout*all, timeout*write, \
                     timeout*read; reconfig*all, reconfig*write, reconfig*read"
                        .into(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_list_covers_the_validated_keys_and_its_samples_pass() {
        for (k, _, _, sample) in super::ENV_DOCS {
            assert!(super::rule(k).is_some(), "{k} listed but not validated");
            if !sample.is_empty() {
                assert!(super::validate(k, sample).is_ok(), "{k}={sample}");
            }
        }
        let v: serde_json::Value = serde_json::from_str(&super::envs_list_json()).unwrap();
        assert_eq!(v["replica.slow_query_threshold"]["limitation"], ">= 20");
    }

    use super::*;

    #[test]
    fn keys_and_values_as_upstream() {
        assert_eq!(
            validate("no.such.key", "1"),
            Err("app_env 'no.such.key' is not supported".into())
        );
        assert!(validate("default_ttl", "86400").is_ok());
        assert!(validate("default_ttl", "0x10").is_ok());
        assert_eq!(
            validate("default_ttl", "-1"),
            Err("invalid value '-1', should be '>= 0'".into())
        );
        assert_eq!(
            validate("default_ttl", "99999999999"),
            Err("invalid value '99999999999', should be an 32 bits integer".into())
        );
        assert_eq!(
            validate("default_ttl", "1d"),
            Err("invalid value '1d', should be an 32 bits integer".into())
        );
        assert!(validate("manual_compact.disabled", "TRUE").is_ok());
        assert_eq!(
            validate("manual_compact.disabled", "yes"),
            Err("invalid value 'yes', should be a boolean".into())
        );
        assert!(validate("rocksdb.usage_scenario", "prefer_write").is_ok());
        assert_eq!(
            validate("rocksdb.usage_scenario", "fast"),
            Err("bulk_load | normal | prefer_write".into())
        );
        assert!(validate("replica.deny_client_request", "reconfig*write").is_ok());
        assert!(validate("replica.deny_client_request", "timeout*all").is_ok());
        assert!(validate("replica.deny_client_request", "timeout").is_err());
        assert!(validate("replica.slow_query_threshold", "19").is_err());
        assert!(validate("manual_compact.once.target_level", "-1").is_ok());
        assert!(validate("manual_compact.once.target_level", "0").is_err());
        assert!(validate("business.info", "").is_ok());
        assert!(validate("rocksdb.write_buffer_size", "1000").is_err());
    }

    #[test]
    fn token_bucket_values() {
        assert!(validate("replica.read_throttling_by_size", "10M").is_ok());
        assert!(validate("replica.read_throttling_by_size", "1*delay*1").is_ok());
        assert_eq!(
            validate("replica.read_throttling_by_size", "1*delay*1,0*reject*1"),
            Err("reject value should be greater than 0".into())
        );
    }
}

//! What meta and replica servers share about cross-cluster duplication, as upstream's
//! duplication_common: the clusters a duplication may ship to (`[pegasus.clusters]`: name →
//! meta list), their ids (`[duplication-group]`: name → 1..127, stamped into every value's
//! timetag), this cluster's duplication name (`[replication] dup_cluster_name`, else
//! `cluster_name`), the `duplication_enabled` and `dup_ignore_other_cluster_ids` switches, and
//! the table envs a follower table carries.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::config::Config;
use crate::idl::dsn::ErrorCode;

pub const ENV_MASTER_CLUSTER: &str = "duplication.master_cluster";
pub const ENV_MASTER_METAS: &str = "duplication.master_metas";
pub const ENV_MASTER_APP_NAME: &str = "duplication.master_app_name";
pub const ENV_FOLLOWER_APP_STATUS: &str = "duplication.follower_app_status";
pub const FOLLOWER_CREATING: &str = "creating";
pub const FOLLOWER_CREATED: &str = "created";
/// Where a follower replica puts the master's checkpoint before it opens it.
pub const CHECKPOINT_ROOT_DIR: &str = "duplication";

/// The duplication settings of this server.
#[derive(Debug, Clone, Default)]
pub struct DupConfig {
    pub enabled: bool,
    pub cluster_name: String,
    pub dup_cluster_name: String,
    pub ignore_other_cluster_ids: bool,
    /// `[pegasus.clusters]`: cluster → meta servers.
    pub clusters: BTreeMap<String, Vec<String>>,
    /// `[duplication-group]`: cluster → id.
    pub group: BTreeMap<String, u8>,
}

static CONFIG: OnceLock<RwLock<Arc<DupConfig>>> = OnceLock::new();

/// Reads the settings from the configuration. Entries of `[duplication-group]` that are not
/// ids in 1..=127 are left out with an error logged (upstream refuses to start).
pub fn configure(cfg: &Config) {
    let mut c = DupConfig {
        enabled: cfg
            .bool("replication", "duplication_enabled", true)
            .unwrap_or(true),
        cluster_name: cfg.string("replication", "cluster_name", ""),
        dup_cluster_name: cfg.string("replication", "dup_cluster_name", ""),
        ignore_other_cluster_ids: cfg
            .bool("replication", "dup_ignore_other_cluster_ids", false)
            .unwrap_or(false),
        ..Default::default()
    };
    for (name, metas) in cfg.section_pairs("pegasus.clusters") {
        let list = parse_metas(&metas);
        if !list.is_empty() {
            c.clusters.insert(name, list);
        }
    }
    for (name, id) in cfg.section_pairs("duplication-group") {
        match id.trim().parse::<u8>() {
            Ok(v) if (1..=127).contains(&v) => {
                c.group.insert(name, v);
            }
            _ => log::error!("[duplication-group] {name} = {id}: an id must be in [1, 127]"),
        }
    }
    set(c);
}

/// Replaces the settings (tests and tools).
pub fn set(c: DupConfig) {
    let lock = CONFIG.get_or_init(|| RwLock::new(Arc::new(DupConfig::default())));
    if let Ok(mut g) = lock.write() {
        *g = Arc::new(c);
    }
}

/// The current settings (shared, not copied: the write path of a follower reads them).
pub fn get() -> Arc<DupConfig> {
    CONFIG
        .get()
        .and_then(|l| l.read().ok().map(|g| g.clone()))
        .unwrap_or_else(|| {
            Arc::new(DupConfig {
                enabled: true,
                ..Default::default()
            })
        })
}

/// `host:port` items of a comma-separated list (empty when any item is not one).
pub fn parse_metas(s: &str) -> Vec<String> {
    let items: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let valid = items.iter().all(|i| {
        i.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    });
    if valid {
        items
    } else {
        Vec::new()
    }
}

impl DupConfig {
    /// This cluster's name for duplication.
    pub fn current_name(&self) -> &str {
        if self.dup_cluster_name.is_empty() {
            &self.cluster_name
        } else {
            &self.dup_cluster_name
        }
    }

    /// The id of cluster `name`, or upstream's error text.
    pub fn cluster_id(&self, name: &str) -> Result<u8, (ErrorCode, String)> {
        if name.is_empty() {
            return Err((
                ErrorCode::INVALID_PARAMETERS,
                "cluster_name is empty".into(),
            ));
        }
        if self.group.is_empty() {
            return Err((
                ErrorCode::OBJECT_NOT_FOUND,
                "`duplication-group` is not configured".into(),
            ));
        }
        self.group.get(name).copied().ok_or_else(|| {
            (
                ErrorCode::OBJECT_NOT_FOUND,
                format!("failed to get cluster id for  << {name}"),
            )
        })
    }

    /// This cluster's id, 0 when it is not in `[duplication-group]`.
    pub fn current_id_or_default(&self) -> u8 {
        self.group.get(self.current_name()).copied().unwrap_or(0)
    }

    /// Whether a duplicated write stamped with cluster `id` may be applied here.
    pub fn is_cluster_id_configured(&self, id: u8) -> bool {
        if self.ignore_other_cluster_ids && id != self.current_id_or_default() {
            return true;
        }
        self.group.values().any(|v| *v == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_and_metas_as_upstream() {
        let mut c = DupConfig {
            cluster_name: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            c.cluster_id("b").unwrap_err().1,
            "`duplication-group` is not configured"
        );
        c.group.insert("a".into(), 1);
        c.group.insert("b".into(), 2);
        assert_eq!(c.cluster_id("b"), Ok(2));
        assert_eq!(
            c.cluster_id("zz").unwrap_err().1,
            "failed to get cluster id for  << zz"
        );
        assert_eq!(c.current_id_or_default(), 1);
        assert!(c.is_cluster_id_configured(2) && !c.is_cluster_id_configured(9));
        c.ignore_other_cluster_ids = true;
        assert!(c.is_cluster_id_configured(9) && c.is_cluster_id_configured(1));
        assert_eq!(
            parse_metas(" 127.0.0.1:34601, 127.0.0.1:34602 "),
            vec!["127.0.0.1:34601", "127.0.0.1:34602"]
        );
        assert!(parse_metas("127.0.0.1:34601,nope").is_empty());
    }
}

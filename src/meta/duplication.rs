//! One table's duplication to another cluster as the meta keeps it (upstream's
//! duplication_info), free of I/O: its status machine (DS_INIT → DS_PREPARE → DS_APP → DS_LOG ⇄
//! DS_PAUSE, anything → DS_REMOVED), fail mode, per-partition progress (the decree each
//! partition's primary confirmed shipped, persisted at most every
//! `dup_progress_min_update_period_ms`), the JSON kept at
//! `<cluster_root>/apps/<app_id>/duplication/<dupid>` (progress in children `<pidx>` as a decimal
//! string), and the entries the RPCs answer with.

use std::collections::BTreeMap;

use crate::idl::dsn::ErrorCode;
use crate::idl::duplication::{
    DuplicationConfirmEntry, DuplicationEntry, DuplicationFailMode, DuplicationPartitionState,
    DuplicationStatus,
};

pub fn status_name(s: DuplicationStatus) -> &'static str {
    match s {
        DuplicationStatus::DS_INIT => "DS_INIT",
        DuplicationStatus::DS_PREPARE => "DS_PREPARE",
        DuplicationStatus::DS_APP => "DS_APP",
        DuplicationStatus::DS_LOG => "DS_LOG",
        DuplicationStatus::DS_PAUSE => "DS_PAUSE",
        DuplicationStatus::DS_REMOVED => "DS_REMOVED",
        _ => "DS_UNKNOWN",
    }
}

pub fn fail_mode_name(f: DuplicationFailMode) -> &'static str {
    match f {
        DuplicationFailMode::FAIL_SLOW => "FAIL_SLOW",
        DuplicationFailMode::FAIL_SKIP => "FAIL_SKIP",
        DuplicationFailMode::FAIL_FAST => "FAIL_FAST",
        _ => "FAIL_UNKNOWN",
    }
}

fn status_of(name: &str) -> Option<DuplicationStatus> {
    (0..=5)
        .map(DuplicationStatus)
        .find(|s| status_name(*s) == name)
}

fn fail_mode_of(name: &str) -> Option<DuplicationFailMode> {
    (0..=2)
        .map(DuplicationFailMode)
        .find(|f| fail_mode_name(*f) == name)
}

/// DS_INIT and DS_REMOVED: a duplication that neither syncs nor counts.
pub fn status_invalid(s: DuplicationStatus) -> bool {
    matches!(
        s,
        DuplicationStatus::DS_INIT | DuplicationStatus::DS_REMOVED
    )
}

/// Whether `from` may change to `to`.
pub fn valid_alteration(from: DuplicationStatus, to: DuplicationStatus) -> bool {
    use DuplicationStatus as S;
    to == from
        || to == S::DS_REMOVED
        || (from == S::DS_INIT && to == S::DS_PREPARE)
        || (from == S::DS_PREPARE && to == S::DS_APP)
        || (matches!(from, S::DS_INIT | S::DS_APP | S::DS_PAUSE) && to == S::DS_LOG)
        || (from == S::DS_LOG && to == S::DS_PAUSE)
}

/// One partition's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The decree persisted in the store (-1: none yet).
    pub stored: i64,
    /// The highest decree a primary confirmed.
    pub volatile: i64,
    /// The primary's last committed decree, as last reported (-1: never).
    pub last_committed: i64,
    pub checkpoint_prepared: bool,
    pub last_update_ms: i64,
}

impl Progress {
    fn new(decree: i64) -> Progress {
        Progress {
            stored: decree,
            volatile: decree,
            last_committed: -1,
            checkpoint_prepared: false,
            last_update_ms: 0,
        }
    }
}

/// A duplication of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct DupInfo {
    pub id: i32,
    pub app_id: i32,
    pub app_name: String,
    pub partition_count: i32,
    pub remote_cluster: String,
    pub remote_app_name: String,
    pub remote_replica_count: i32,
    pub create_ms: i64,
    pub status: DuplicationStatus,
    pub fail_mode: DuplicationFailMode,
    /// Partitions whose progress is known; one missing had an unreadable record.
    pub progress: BTreeMap<i32, Progress>,
}

impl DupInfo {
    /// A new duplication (DS_INIT) with every partition's progress at -1.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: i32,
        app_id: i32,
        app_name: &str,
        partition_count: i32,
        remote_cluster: &str,
        remote_app_name: &str,
        remote_replica_count: i32,
        create_ms: i64,
    ) -> DupInfo {
        DupInfo {
            id,
            app_id,
            app_name: app_name.into(),
            partition_count,
            remote_cluster: remote_cluster.into(),
            remote_app_name: remote_app_name.into(),
            remote_replica_count,
            create_ms,
            status: DuplicationStatus::DS_INIT,
            fail_mode: DuplicationFailMode::FAIL_SLOW,
            progress: (0..partition_count)
                .map(|p| (p, Progress::new(-1)))
                .collect(),
        }
    }

    /// Checks a change of status and fail mode: `Ok(true)` when something changes (the caller
    /// persists `to_json_with` and then calls `commit`), `Ok(false)` when nothing does.
    pub fn check_alter(
        &self,
        to: DuplicationStatus,
        fail_mode: DuplicationFailMode,
    ) -> Result<bool, ErrorCode> {
        if self.status == DuplicationStatus::DS_REMOVED {
            return Err(ErrorCode::OBJECT_NOT_FOUND);
        }
        if !valid_alteration(self.status, to) {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        Ok(!(to == self.status && fail_mode == self.fail_mode))
    }

    pub fn commit(&mut self, to: DuplicationStatus, fail_mode: DuplicationFailMode) {
        self.status = to;
        self.fail_mode = fail_mode;
    }

    /// The stored document with the given status and fail mode, fields in upstream's order.
    pub fn to_json_with(
        &self,
        status: DuplicationStatus,
        fail_mode: DuplicationFailMode,
    ) -> String {
        format!(
            "{{\"remote\":{},\"status\":\"{}\",\"create_timestamp_ms\":{},\"fail_mode\":\"{}\",\"remote_app_name\":{},\"remote_replica_count\":{}}}",
            serde_json::Value::from(self.remote_cluster.as_str()),
            status_name(status),
            self.create_ms,
            fail_mode_name(fail_mode),
            serde_json::Value::from(self.remote_app_name.as_str()),
            self.remote_replica_count
        )
    }

    /// Reads a stored document; older documents without the remote app name or replica count
    /// get the table's name and replica count, as upstream's.
    pub fn from_json(
        id: i32,
        app_id: i32,
        app_name: &str,
        partition_count: i32,
        max_replica_count: i32,
        b: &[u8],
    ) -> Option<DupInfo> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        let remote = v["remote"].as_str()?;
        let status = status_of(v["status"].as_str()?)?;
        let fail_mode = match v.get("fail_mode") {
            Some(f) => fail_mode_of(f.as_str()?)?,
            None => DuplicationFailMode::FAIL_SLOW,
        };
        let remote_app = v["remote_app_name"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(app_name);
        let count = v["remote_replica_count"]
            .as_i64()
            .filter(|c| *c > 0)
            .map_or(max_replica_count, |c| c as i32);
        let mut d = DupInfo::new(
            id,
            app_id,
            app_name,
            partition_count,
            remote,
            remote_app,
            count,
            v["create_timestamp_ms"].as_i64().unwrap_or(0),
        );
        d.status = status;
        d.fail_mode = fail_mode;
        Some(d)
    }

    /// Sets partition `pidx`'s progress from its stored record (`None`: no record).
    pub fn init_progress(&mut self, pidx: i32, stored: Option<&[u8]>) {
        match stored {
            None | Some([]) => {
                self.progress.insert(pidx, Progress::new(-1));
            }
            Some(b) => match std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) {
                Some(d) => {
                    self.progress.insert(pidx, Progress::new(d));
                }
                None => {
                    self.progress.remove(&pidx);
                }
            },
        }
    }

    /// Takes a primary's confirmation; returns the decree to persist for the partition when
    /// one is due (at most once per `min_update_ms`).
    pub fn alter_progress(
        &mut self,
        pidx: i32,
        e: &DuplicationConfirmEntry,
        now_ms: i64,
        min_update_ms: i64,
    ) -> Option<i64> {
        let p = self.progress.get_mut(&pidx)?;
        if let Some(lcd) = e.last_committed_decree {
            p.last_committed = lcd;
        }
        p.checkpoint_prepared = e.checkpoint_prepared.unwrap_or(false);
        p.volatile = p.volatile.max(e.confirmed_decree.unwrap_or(-1));
        if p.volatile == p.stored || now_ms < p.last_update_ms + min_update_ms {
            return None;
        }
        p.last_update_ms = now_ms;
        Some(p.volatile)
    }

    /// Records that `decree` was persisted for partition `pidx`.
    pub fn persisted(&mut self, pidx: i32, decree: i64) {
        if let Some(p) = self.progress.get_mut(&pidx) {
            p.stored = decree;
        }
    }

    /// Whether every partition's primary reported its checkpoint ready.
    pub fn all_checkpoints_prepared(&self) -> bool {
        self.progress.len() == self.partition_count.max(0) as usize
            && self.progress.values().all(|p| p.checkpoint_prepared)
    }

    fn base_entry(&self) -> DuplicationEntry {
        DuplicationEntry {
            dupid: Some(self.id),
            status: Some(self.status),
            remote: Some(self.remote_cluster.clone()),
            create_ts: Some(self.create_ms),
            progress: None,
            fail_mode: Some(self.fail_mode),
            remote_app_name: Some(self.remote_app_name.clone()),
            remote_replica_count: Some(self.remote_replica_count),
            mode: None,
            partition_states: None,
        }
    }

    /// The entry of a sync reply: progress as persisted.
    pub fn sync_entry(&self) -> DuplicationEntry {
        let mut e = self.base_entry();
        e.progress = Some(self.progress.iter().map(|(p, g)| (*p, g.stored)).collect());
        e
    }

    /// The entry of a query or list reply: per-partition states.
    pub fn list_entry(&self) -> DuplicationEntry {
        let mut e = self.base_entry();
        e.partition_states = Some(
            self.progress
                .iter()
                .map(|(p, g)| {
                    (
                        *p,
                        DuplicationPartitionState {
                            confirmed_decree: Some(g.stored),
                            last_committed_decree: Some(g.last_committed),
                        },
                    )
                })
                .collect(),
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DuplicationStatus as S;

    #[test]
    fn transitions_follow_upstream() {
        assert!(valid_alteration(S::DS_INIT, S::DS_PREPARE));
        assert!(valid_alteration(S::DS_INIT, S::DS_LOG));
        assert!(valid_alteration(S::DS_PREPARE, S::DS_APP));
        assert!(valid_alteration(S::DS_APP, S::DS_LOG));
        assert!(valid_alteration(S::DS_LOG, S::DS_PAUSE));
        assert!(valid_alteration(S::DS_PAUSE, S::DS_LOG));
        assert!(valid_alteration(S::DS_PREPARE, S::DS_REMOVED));
        assert!(!valid_alteration(S::DS_PREPARE, S::DS_LOG));
        assert!(!valid_alteration(S::DS_PREPARE, S::DS_PAUSE));
        assert!(!valid_alteration(S::DS_LOG, S::DS_APP));
        assert!(!valid_alteration(S::DS_LOG, S::DS_INIT));
        let mut d = DupInfo::new(1700000000, 2, "t", 4, "b", "t", 3, 5);
        assert_eq!(
            d.check_alter(S::DS_PREPARE, DuplicationFailMode::FAIL_SLOW),
            Ok(true)
        );
        d.commit(S::DS_REMOVED, DuplicationFailMode::FAIL_SLOW);
        assert_eq!(
            d.check_alter(S::DS_LOG, DuplicationFailMode::FAIL_SLOW),
            Err(ErrorCode::OBJECT_NOT_FOUND)
        );
    }

    #[test]
    fn stored_json_round_trips_and_reads_old_documents() {
        let d = DupInfo::new(7, 2, "t", 4, "b", "t2", 3, 1700000000123);
        let j = d.to_json_with(S::DS_PREPARE, DuplicationFailMode::FAIL_SLOW);
        assert_eq!(
            j,
            r#"{"remote":"b","status":"DS_PREPARE","create_timestamp_ms":1700000000123,"fail_mode":"FAIL_SLOW","remote_app_name":"t2","remote_replica_count":3}"#
        );
        let back = DupInfo::from_json(7, 2, "t", 4, 3, j.as_bytes()).unwrap();
        assert_eq!(back.status, S::DS_PREPARE);
        assert_eq!(back.remote_app_name, "t2");
        let old =
            br#"{"remote":"b","status":"DS_LOG","create_timestamp_ms":1,"fail_mode":"FAIL_SKIP"}"#;
        let o = DupInfo::from_json(7, 2, "t", 4, 2, old).unwrap();
        assert_eq!(
            (o.remote_app_name.as_str(), o.remote_replica_count),
            ("t", 2)
        );
        assert_eq!(o.fail_mode, DuplicationFailMode::FAIL_SKIP);
        assert!(DupInfo::from_json(7, 2, "t", 4, 2, br#"{"remote":"b","status":"X"}"#).is_none());
    }

    #[test]
    fn progress_is_persisted_at_most_once_per_period() {
        let mut d = DupInfo::new(7, 2, "t", 2, "b", "t", 3, 0);
        let e = |c: i64| DuplicationConfirmEntry {
            dupid: Some(7),
            confirmed_decree: Some(c),
            checkpoint_prepared: Some(true),
            last_committed_decree: Some(c + 5),
        };
        assert_eq!(d.alter_progress(0, &e(10), 10_000, 5000), Some(10));
        d.persisted(0, 10);
        assert_eq!(d.alter_progress(0, &e(20), 12_000, 5000), None);
        assert_eq!(d.alter_progress(0, &e(15), 16_000, 5000), Some(20));
        assert_eq!(d.progress[&0].last_committed, 20);
        assert!(!d.all_checkpoints_prepared());
        d.alter_progress(1, &e(1), 16_000, 5000);
        assert!(d.all_checkpoints_prepared());
        d.init_progress(1, Some(b"oops"));
        assert!(!d.progress.contains_key(&1));
        let l = d.list_entry();
        assert_eq!(
            l.partition_states.unwrap()[&0].last_committed_decree,
            Some(20)
        );
    }
}

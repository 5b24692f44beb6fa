//! Manual compaction of one partition, driven by the table envs as upstream's
//! `pegasus_manual_compact_service`: a one-off compaction when `manual_compact.once.trigger_time`
//! is newer than the last finish, a daily one at the `manual_compact.periodic.trigger_time`
//! clock times, none while `manual_compact.disabled` is true, at most
//! `manual_compact.max_concurrent_running_count` at once on a server. The finish time is kept in
//! the meta column family (`pegasus_last_manual_compact_finish_time`, Unix milliseconds), and the
//! status (idle, queuing, running, finished) goes to the meta in config sync.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use crate::idl::metadata::ManualCompactionStatus;

pub const ENV_DISABLED: &str = "manual_compact.disabled";
pub const ENV_MAX_RUNNING: &str = "manual_compact.max_concurrent_running_count";
pub const ENV_ONCE_TRIGGER_TIME: &str = "manual_compact.once.trigger_time";
pub const ENV_ONCE_TARGET_LEVEL: &str = "manual_compact.once.target_level";
pub const ENV_ONCE_BOTTOMMOST: &str = "manual_compact.once.bottommost_level_compaction";
pub const ENV_PERIODIC_TRIGGER_TIME: &str = "manual_compact.periodic.trigger_time";
pub const ENV_PERIODIC_TARGET_LEVEL: &str = "manual_compact.periodic.target_level";
pub const ENV_PERIODIC_BOTTOMMOST: &str = "manual_compact.periodic.bottommost_level_compaction";
pub const BOTTOMMOST_FORCE: &str = "force";
pub const BOTTOMMOST_SKIP: &str = "skip";

/// How one compaction runs (RocksDB CompactRange over the data column family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// -1: the level the data ends in is chosen by RocksDB; otherwise 1..=num_levels-1.
    pub target_level: i32,
    /// Rewrite the bottommost level too (`force`), or leave it (`skip`, the default).
    pub bottommost_force: bool,
}

/// The manual-compaction envs of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactEnvs {
    pub disabled: bool,
    pub max_running: i32,
    pub once_trigger_s: Option<i64>,
    pub once: CompactOptions,
    /// Daily trigger times as (hour, minute), local time.
    pub periodic: Vec<(u32, u32)>,
    pub periodic_opts: CompactOptions,
}

fn level(envs: &BTreeMap<String, String>, key: &str) -> i32 {
    envs.get(key)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(-1)
}

fn bottommost(envs: &BTreeMap<String, String>, key: &str) -> bool {
    envs.get(key).is_some_and(|v| v.trim() == BOTTOMMOST_FORCE)
}

/// Parses `HH:MM[,HH:MM...]`; malformed entries are ignored.
pub fn parse_clock_times(s: &str) -> Vec<(u32, u32)> {
    s.split(',')
        .filter_map(|t| {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m) = (h.trim().parse::<u32>().ok()?, m.trim().parse::<u32>().ok()?);
            (h < 24 && m < 60).then_some((h, m))
        })
        .collect()
}

impl CompactEnvs {
    pub fn parse(envs: &BTreeMap<String, String>) -> CompactEnvs {
        CompactEnvs {
            disabled: envs.get(ENV_DISABLED).is_some_and(|v| v.trim() == "true"),
            max_running: envs
                .get(ENV_MAX_RUNNING)
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(i32::MAX),
            once_trigger_s: envs
                .get(ENV_ONCE_TRIGGER_TIME)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|t| *t > 0),
            once: CompactOptions {
                target_level: level(envs, ENV_ONCE_TARGET_LEVEL),
                bottommost_force: bottommost(envs, ENV_ONCE_BOTTOMMOST),
            },
            periodic: envs
                .get(ENV_PERIODIC_TRIGGER_TIME)
                .map(|v| parse_clock_times(v))
                .unwrap_or_default(),
            periodic_opts: CompactOptions {
                target_level: level(envs, ENV_PERIODIC_TARGET_LEVEL),
                bottommost_force: bottommost(envs, ENV_PERIODIC_BOTTOMMOST),
            },
        }
    }

    /// Whether a compaction is due, and how: the one-off trigger when it is newer than the
    /// last finish, else a periodic time of today (Unix seconds from `today_at`) that passed
    /// after the last finish.
    pub fn due(
        &self,
        last_finish_ms: i64,
        now_ms: i64,
        today_at: &dyn Fn(u32, u32) -> Option<i64>,
    ) -> Option<CompactOptions> {
        if self.disabled || self.max_running <= 0 {
            return None;
        }
        if self
            .once_trigger_s
            .is_some_and(|t| t > last_finish_ms / 1000)
        {
            return Some(self.once);
        }
        let passed = self.periodic.iter().any(|&(h, m)| {
            today_at(h, m).is_some_and(|t| last_finish_ms < t * 1000 && t * 1000 < now_ms)
        });
        passed.then_some(self.periodic_opts)
    }
}

/// Today's local clock time `h:m` as Unix seconds (the periodic trigger times are local, as
/// upstream reads them).
pub fn local_today_at(h: u32, m: u32) -> Option<i64> {
    // SAFETY: localtime_r and mktime only read and write the tm given to them.
    unsafe {
        let now: libc::time_t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return None;
        }
        tm.tm_hour = h as i32;
        tm.tm_min = m as i32;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        let t = libc::mktime(&mut tm);
        (t != -1).then_some(t as i64)
    }
}

/// Manual compactions running on this server (the limit counts them).
static RUNNING: AtomicI32 = AtomicI32::new(0);

/// The manual-compaction state of one partition's database.
#[derive(Debug, Default)]
pub struct ManualCompactState {
    enqueued_ms: AtomicI64,
    started_ms: AtomicI64,
    last_finish_ms: AtomicI64,
    last_used_ms: AtomicI64,
}

impl ManualCompactState {
    pub fn new(last_finish_ms: i64) -> ManualCompactState {
        let s = ManualCompactState::default();
        s.last_finish_ms.store(last_finish_ms, Ordering::SeqCst);
        s
    }

    pub fn last_finish_ms(&self) -> i64 {
        self.last_finish_ms.load(Ordering::SeqCst)
    }

    /// (queued at, started at, duration of the last one) in ms; 0 where unknown.
    pub fn times_ms(&self) -> (i64, i64, i64) {
        (
            self.enqueued_ms.load(Ordering::SeqCst),
            self.started_ms.load(Ordering::SeqCst),
            self.last_used_ms.load(Ordering::SeqCst),
        )
    }

    /// Queues a compaction unless one is queued or running; true when this call queued it.
    pub fn try_enqueue(&self, now_ms: i64) -> bool {
        self.enqueued_ms
            .compare_exchange(0, now_ms.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Runs a queued compaction through `compact` (which returns the finish time it
    /// persisted), unless `max_running` compactions already run on this server.
    pub fn run(
        &self,
        max_running: i32,
        now_ms: &dyn Fn() -> i64,
        compact: impl FnOnce() -> Result<i64, String>,
    ) -> Result<bool, String> {
        if RUNNING.fetch_add(1, Ordering::SeqCst) >= max_running {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            self.enqueued_ms.store(0, Ordering::SeqCst);
            return Ok(false);
        }
        let start = now_ms();
        self.started_ms.store(start, Ordering::SeqCst);
        let r = compact();
        if let Ok(finish) = r {
            self.last_finish_ms.store(finish, Ordering::SeqCst);
            self.last_used_ms
                .store((finish - start).max(1), Ordering::SeqCst);
        }
        self.started_ms.store(0, Ordering::SeqCst);
        self.enqueued_ms.store(0, Ordering::SeqCst);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        r.map(|_| true)
    }

    /// What config sync reports: running, queuing, finished (a compaction of this process
    /// finished and none is queued since), or idle.
    pub fn status(&self) -> ManualCompactionStatus {
        if self.started_ms.load(Ordering::SeqCst) > 0 {
            ManualCompactionStatus::RUNNING
        } else if self.enqueued_ms.load(Ordering::SeqCst) > 0 {
            ManualCompactionStatus::QUEUING
        } else if self.last_used_ms.load(Ordering::SeqCst) > 0 && self.last_finish_ms() > 0 {
            ManualCompactionStatus::FINISHED
        } else {
            ManualCompactionStatus::IDLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn once_trigger_against_last_finish() {
        let e = CompactEnvs::parse(&envs(&[
            (ENV_ONCE_TRIGGER_TIME, "1000"),
            (ENV_ONCE_TARGET_LEVEL, "2"),
            (ENV_ONCE_BOTTOMMOST, "force"),
        ]));
        let never = |_: u32, _: u32| None;
        assert_eq!(
            e.due(0, 2_000_000, &never),
            Some(CompactOptions {
                target_level: 2,
                bottommost_force: true
            })
        );
        // finished after the trigger: nothing to do
        assert_eq!(e.due(1_000_500, 2_000_000, &never), None);
        // finished before it
        assert!(e.due(999_000, 2_000_000, &never).is_some());
        let off = CompactEnvs::parse(&envs(&[
            (ENV_ONCE_TRIGGER_TIME, "1000"),
            (ENV_DISABLED, "true"),
        ]));
        assert_eq!(off.due(0, 2_000_000, &never), None);
        let zero = CompactEnvs::parse(&envs(&[
            (ENV_ONCE_TRIGGER_TIME, "1000"),
            (ENV_MAX_RUNNING, "0"),
        ]));
        assert_eq!(zero.due(0, 2_000_000, &never), None);
        // defaults: level -1, bottommost skipped
        let d = CompactEnvs::parse(&envs(&[(ENV_ONCE_TRIGGER_TIME, "5")]));
        assert_eq!(
            d.once,
            CompactOptions {
                target_level: -1,
                bottommost_force: false
            }
        );
    }

    #[test]
    fn periodic_times_of_today() {
        assert_eq!(
            parse_clock_times("3:00, 21:30,bad,25:00,7:61"),
            vec![(3, 0), (21, 30)]
        );
        let e = CompactEnvs::parse(&envs(&[(ENV_PERIODIC_TRIGGER_TIME, "3:00,21:30")]));
        // today 3:00 = 10_800 s, 21:30 = 77_400 s (a clock that starts at midnight 0)
        let at = |h: u32, m: u32| Some(i64::from(h * 3600 + m * 60));
        assert!(e.due(0, 20_000_000, &at).is_some()); // 3:00 passed, never compacted
        assert_eq!(e.due(11_000_000, 20_000_000, &at), None); // compacted after 3:00
        assert!(e.due(11_000_000, 78_000_000, &at).is_some()); // 21:30 passed since
        assert_eq!(e.due(0, 10_000_000, &at), None); // before 3:00
    }

    #[test]
    fn local_clock_times_are_today() {
        let now = crate::base::value_schema::now_us() as i64 / 1_000_000;
        let t = local_today_at(0, 0).unwrap();
        assert!(t <= now && now - t < 26 * 3600, "{t} {now}");
        assert_eq!(local_today_at(1, 30).unwrap() - t, 5400);
    }

    #[test]
    fn status_follows_the_run() {
        let s = ManualCompactState::new(0);
        assert_eq!(s.status(), ManualCompactionStatus::IDLE);
        assert!(s.try_enqueue(10));
        assert!(!s.try_enqueue(11));
        assert_eq!(s.status(), ManualCompactionStatus::QUEUING);
        let ran = s
            .run(i32::MAX, &|| 100, || {
                assert_eq!(s.status(), ManualCompactionStatus::RUNNING);
                Ok(150)
            })
            .unwrap();
        assert!(ran);
        assert_eq!(s.status(), ManualCompactionStatus::FINISHED);
        assert_eq!(s.last_finish_ms(), 150);
        // over the server's limit: dropped from the queue without running
        assert!(s.try_enqueue(200));
        assert!(!s.run(0, &|| 300, || panic!("must not run")).unwrap());
        assert_eq!(s.status(), ManualCompactionStatus::FINISHED);
        // a state loaded from disk knows its finish time but reports idle
        let loaded = ManualCompactState::new(150);
        assert_eq!(loaded.status(), ManualCompactionStatus::IDLE);
    }
}

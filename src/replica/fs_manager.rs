//! The replica server's data directories (upstream's fs_manager): the tagged disks of
//! `[replication] data_dirs`, each holding replica folders under `<path>/replica/reps`; which
//! disk a new replica goes to (the one with the fewest replicas of its table, then the fewest
//! in all, among disks with room); disk space and status from statvfs; disks added at run time
//! (RPC_ADD_NEW_DISK). Holds no replica: the stub passes what it needs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::idl::dsn::ErrorCode;
use crate::idl::metadata::DiskStatus;

/// One data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirNode {
    pub tag: String,
    /// The replicas' parent directory (`<path>/replica/reps`).
    pub dir: PathBuf,
    pub capacity_mb: i64,
    pub available_mb: i64,
    pub status: DiskStatus,
}

/// Parses `tag:path[,tag:path...]` as upstream does (spaces trimmed, empty items skipped);
/// each disk's replicas live in `<path>/<app_name>/reps`.
pub fn parse_data_dirs(text: &str, app_name: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = item
            .split(':')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let [tag, path] = parts.as_slice() else {
            return Err(format!("invalid data_dir item({item}) in config"));
        };
        let dir = Path::new(path.trim_end_matches('/'))
            .join(app_name)
            .join("reps");
        for (t, d) in &out {
            if *d == dir {
                return Err(format!(
                    "dir({}) and dir({}) conflict",
                    d.display(),
                    dir.display()
                ));
            }
            if t == tag {
                return Err(format!(
                    "dir({}) and dir({}) have same tag({tag})",
                    d.display(),
                    dir.display()
                ));
            }
        }
        out.push((tag.to_string(), dir));
    }
    Ok(out)
}

/// (capacity, available) of the file system holding `dir`, in MiB.
pub fn disk_space_mb(dir: &Path) -> Option<(i64, i64)> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u128;
    let cap = (st.f_blocks as u128 * frsize) >> 20;
    let avail = (st.f_bavail as u128 * frsize) >> 20;
    Some((cap as i64, avail as i64))
}

/// The data directories of a replica server.
pub struct FsManager {
    dirs: RwLock<Vec<DirNode>>,
    /// `[replication] disk_min_available_space_ratio`: below this percentage a disk takes no
    /// new replica.
    min_available_ratio: i64,
}

impl FsManager {
    pub fn new(dirs: Vec<(String, PathBuf)>, min_available_ratio: i64) -> FsManager {
        let nodes = dirs
            .into_iter()
            .map(|(tag, dir)| DirNode {
                tag,
                dir,
                capacity_mb: 0,
                available_mb: 0,
                status: DiskStatus::NORMAL,
            })
            .collect();
        let fs = FsManager {
            dirs: RwLock::new(nodes),
            min_available_ratio,
        };
        fs.update_disk_stat();
        fs
    }

    /// The directories, with their last measured space.
    pub fn dirs(&self) -> Vec<DirNode> {
        self.dirs.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Creates every directory; one that cannot be created or written is marked IO_ERROR
    /// (upstream's ignore_broken_disk). Fails when no directory is usable.
    pub fn initialize(&self) -> Result<(), String> {
        let Ok(mut dirs) = self.dirs.write() else {
            return Err("data dirs lock poisoned".into());
        };
        for d in dirs.iter_mut() {
            if let Err(e) = check_dir(&d.dir) {
                log::error!("data dir {} ({}) is broken: {e}", d.dir.display(), d.tag);
                d.status = DiskStatus::IO_ERROR;
            }
        }
        if dirs.iter().all(|d| d.status == DiskStatus::IO_ERROR) {
            return Err("no usable replica data dir".into());
        }
        Ok(())
    }

    /// Measures every disk's space and sets its status (space insufficient below the ratio,
    /// normal again above; an IO error stays).
    pub fn update_disk_stat(&self) {
        let min_ratio =
            crate::flags::i64_or("disk_min_available_space_ratio", self.min_available_ratio);
        let Ok(mut dirs) = self.dirs.write() else {
            return;
        };
        for d in dirs.iter_mut() {
            if d.status == DiskStatus::IO_ERROR {
                continue;
            }
            let probe = if d.dir.exists() {
                d.dir.clone()
            } else {
                d.dir
                    .ancestors()
                    .find(|p| p.exists())
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            };
            if let Some((cap, avail)) = disk_space_mb(&probe) {
                d.capacity_mb = cap;
                d.available_mb = avail;
                let ratio = if cap > 0 {
                    (avail * 100 + cap / 2) / cap
                } else {
                    0
                };
                d.status = if ratio < min_ratio {
                    DiskStatus::SPACE_INSUFFICIENT
                } else {
                    DiskStatus::NORMAL
                };
            }
        }
    }

    /// The tag of the disk holding `path`.
    pub fn tag_of(&self, path: &Path) -> Option<String> {
        self.dirs
            .read()
            .ok()?
            .iter()
            .find(|d| path.starts_with(&d.dir))
            .map(|d| d.tag.clone())
    }

    /// The disk of `tag`.
    pub fn dir_of(&self, tag: &str) -> Option<DirNode> {
        self.dirs
            .read()
            .ok()?
            .iter()
            .find(|d| d.tag == tag)
            .cloned()
    }

    /// Whether `path` lies in one of the data directories.
    pub fn contains(&self, path: &Path) -> bool {
        self.dirs
            .read()
            .map(|d| d.iter().any(|d| path.starts_with(&d.dir)))
            .unwrap_or(false)
    }

    /// An existing replica folder `name` on a usable disk.
    pub fn find_existing(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .read()
            .ok()?
            .iter()
            .filter(|d| d.status != DiskStatus::IO_ERROR)
            .map(|d| d.dir.join(name))
            .find(|p| p.is_dir())
    }

    /// The disk for a new replica of `app_id`: among normal disks, the fewest replicas of the
    /// table, then the fewest in all, then the first configured. `held(dir)` counts a disk's
    /// (table, total) replicas.
    /// When every disk is short of space, the least loaded of those without IO errors is
    /// taken anyway (upstream refuses the replica; a nearly full machine would then lose
    /// partitions instead of filling up), with a warning.
    pub fn choose_dir(&self, held: &dyn Fn(&Path) -> (usize, usize)) -> Option<PathBuf> {
        self.update_disk_stat();
        let dirs = self.dirs.read().ok()?;
        let best = |status: &dyn Fn(DiskStatus) -> bool| {
            dirs.iter()
                .filter(|d| status(d.status))
                .min_by_key(|d| held(&d.dir))
                .map(|d| d.dir.clone())
        };
        best(&|s| s == DiskStatus::NORMAL).or_else(|| {
            let d = best(&|s| s != DiskStatus::IO_ERROR);
            if let Some(d) = &d {
                log::warn!(
                    "every data dir is short of space; placing a new replica on {}",
                    d.display()
                );
            }
            d
        })
    }

    /// RPC_ADD_NEW_DISK: adds `tag:path[,...]` at run time, with upstream's checks and hints.
    pub fn add_disks(&self, disk_str: &str) -> Result<(), (ErrorCode, String)> {
        let parsed = match parse_data_dirs(disk_str, "replica") {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                return Err((
                    ErrorCode::INVALID_PARAMETERS,
                    format!("invalid str({disk_str}), err_msg: "),
                ))
            }
            Err(e) => {
                return Err((
                    ErrorCode::INVALID_PARAMETERS,
                    format!("invalid str({disk_str}), err_msg: {e}"),
                ))
            }
        };
        for (tag, dir) in parsed {
            let exists = self
                .dirs
                .read()
                .map(|d| d.iter().any(|n| n.dir == dir || n.tag == tag))
                .unwrap_or(true);
            if exists {
                return Err((
                    ErrorCode::NODE_ALREADY_EXIST,
                    format!("data_dir({}) tag({tag}) already exist", dir.display()),
                ));
            }
            if dir.is_dir()
                && std::fs::read_dir(&dir)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false)
            {
                return Err((
                    ErrorCode::DIR_NOT_EMPTY,
                    format!("Disk({}) directory is not empty", dir.display()),
                ));
            }
            if let Err(e) = check_dir(&dir) {
                return Err((ErrorCode::FILE_OPERATION_FAILED, e));
            }
            log::info!("added data dir {} (tag {tag})", dir.display());
            if let Ok(mut d) = self.dirs.write() {
                d.push(DirNode {
                    tag,
                    dir,
                    capacity_mb: 0,
                    available_mb: 0,
                    status: DiskStatus::NORMAL,
                });
            }
        }
        self.update_disk_stat();
        Ok(())
    }
}

impl FsManager {
    /// Removes replica folders set aside longer ago than their keep time (`[replication]
    /// gc_disk_*_interval_seconds`): `.err` (corrupt) and `.gar` (garbage) from the time in
    /// their name, else their modification time; `.tmp` and `.ori` (disk migration) from their
    /// modification time. `.bak` folders are never removed. Returns what was removed.
    pub fn clean(&self, now: std::time::SystemTime) -> Vec<PathBuf> {
        let keep = |flag: &str, default: i64| crate::flags::i64_or(flag, default).max(0) as u64;
        let mut removed = Vec::new();
        for d in self.dirs() {
            if d.status == DiskStatus::IO_ERROR {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&d.dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let (secs, named) = if name.ends_with(".err") {
                    (
                        keep("gc_disk_error_replica_interval_seconds", 604_800),
                        true,
                    )
                } else if name.ends_with(".gar") {
                    (
                        keep("gc_disk_garbage_replica_interval_seconds", 86_400),
                        true,
                    )
                } else if name.ends_with(".tmp") {
                    (
                        keep("gc_disk_migration_tmp_replica_interval_seconds", 86_400),
                        false,
                    )
                } else if name.ends_with(".ori") {
                    (
                        keep("gc_disk_migration_origin_replica_interval_seconds", 604_800),
                        false,
                    )
                } else {
                    continue;
                };
                let base = named
                    .then(|| time_in_name(&name))
                    .flatten()
                    .or_else(|| e.metadata().ok()?.modified().ok());
                let Some(base) = base else { continue };
                if base + std::time::Duration::from_secs(secs) > now {
                    continue;
                }
                let path = e.path();
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        log::info!("removed {} (kept {secs} s)", path.display());
                        removed.push(path);
                    }
                    Err(err) => log::warn!("cannot remove {}: {err}", path.display()),
                }
            }
        }
        removed
    }
}

/// The time in a set-aside folder's name (`<gpid>.<type>.<us>.<suffix>`, at least 16 digits
/// of microseconds after 2010).
fn time_in_name(name: &str) -> Option<std::time::SystemTime> {
    let mut parts = name.rsplit('.');
    parts.next()?;
    let us = parts.next()?;
    if us.len() < 16 || !us.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let us: u64 = us.parse().ok()?;
    if us <= 1_262_304_000_000_000 {
        return None;
    }
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us))
}

/// Creates `dir` and checks that a file can be written and read back in it.
fn check_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let probe = dir.join(".rw_check");
    std::fs::write(&probe, b"ok").map_err(|e| format!("write {}: {e}", probe.display()))?;
    let back = std::fs::read(&probe).map_err(|e| format!("read {}: {e}", probe.display()))?;
    let _ = std::fs::remove_file(&probe);
    if back != b"ok" {
        return Err(format!("{} reads back wrong data", probe.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs_parse_as_upstream() {
        let d = parse_data_dirs(" ssd1:/data/ssd1/ , ssd2:/data/ssd2", "replica").unwrap();
        assert_eq!(
            d,
            vec![
                ("ssd1".to_string(), PathBuf::from("/data/ssd1/replica/reps")),
                ("ssd2".to_string(), PathBuf::from("/data/ssd2/replica/reps")),
            ]
        );
        assert!(parse_data_dirs("", "replica").unwrap().is_empty());
        assert_eq!(
            parse_data_dirs("ssd1", "replica").unwrap_err(),
            "invalid data_dir item(ssd1) in config"
        );
        assert!(parse_data_dirs("a:/x,b:/x", "replica")
            .unwrap_err()
            .contains("conflict"));
        assert!(parse_data_dirs("a:/x,a:/y", "replica")
            .unwrap_err()
            .contains("have same tag(a)"));
    }

    #[test]
    fn placement_space_and_added_disks() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a/replica/reps");
        let b = t.path().join("b/replica/reps");
        let fs = FsManager::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())], 0);
        fs.initialize().unwrap();
        assert!(fs.dirs().iter().all(|d| d.capacity_mb > 0));
        // Fewest replicas of the table first, then fewest in all, then config order.
        let counts = |da: (usize, usize), db: (usize, usize)| {
            let (a, b) = (a.clone(), b.clone());
            move |p: &Path| {
                if p == a {
                    da
                } else if p == b {
                    db
                } else {
                    (99, 99)
                }
            }
        };
        assert_eq!(fs.choose_dir(&counts((1, 5), (0, 9))), Some(b.clone()));
        assert_eq!(fs.choose_dir(&counts((1, 5), (1, 9))), Some(a.clone()));
        assert_eq!(fs.choose_dir(&counts((0, 0), (0, 0))), Some(a.clone()));
        std::fs::create_dir_all(b.join("1.2.pegasus")).unwrap();
        assert_eq!(fs.find_existing("1.2.pegasus"), Some(b.join("1.2.pegasus")));
        assert_eq!(fs.tag_of(&b.join("1.2.pegasus")).as_deref(), Some("b"));
        // Disks short of room are used only when every disk is.
        let full = FsManager::new(vec![("a".into(), a.clone())], 101);
        assert_eq!(full.dirs()[0].status, DiskStatus::SPACE_INSUFFICIENT);
        assert_eq!(full.choose_dir(&counts((0, 0), (0, 0))), Some(a.clone()));
        // Added disks: parse errors, duplicates, non-empty dirs, then success.
        let c = t.path().join("c");
        assert_eq!(
            fs.add_disks("").unwrap_err().0,
            ErrorCode::INVALID_PARAMETERS
        );
        assert_eq!(
            fs.add_disks(&format!("a:{}", c.display())).unwrap_err().0,
            ErrorCode::NODE_ALREADY_EXIST
        );
        std::fs::create_dir_all(c.join("replica/reps/x")).unwrap();
        assert_eq!(
            fs.add_disks(&format!("c:{}", c.display())).unwrap_err().0,
            ErrorCode::DIR_NOT_EMPTY
        );
        let d = t.path().join("d");
        fs.add_disks(&format!("d:{}", d.display())).unwrap();
        assert!(d.join("replica/reps").is_dir());
        assert_eq!(fs.dirs().len(), 3);
        assert!(fs.dir_of("d").unwrap().capacity_mb > 0);
    }

    #[test]
    fn set_aside_folders_are_removed_after_their_keep_time() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a/replica/reps");
        let fs = FsManager::new(vec![("a".into(), a.clone())], 0);
        fs.initialize().unwrap();
        let old_us = 1_600_000_000_000_000u64; // 2020: long past every keep time
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        for n in [
            format!("1.0.pegasus.{old_us}.err"),
            format!("1.1.pegasus.{now_us}.err"),
            format!("1.2.pegasus.{old_us}.gar"),
            "1.3.pegasus.disk.migrate.ori".to_string(),
            "1.4.pegasus.bak".to_string(),
            "1.5.pegasus".to_string(),
        ] {
            std::fs::create_dir_all(a.join(n)).unwrap();
        }
        let removed = fs.clean(std::time::SystemTime::now());
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names
            .iter()
            .any(|n| n.ends_with(".err") && n.contains(&old_us.to_string())));
        assert!(names.iter().any(|n| n.ends_with(".gar")));
        // A recent .err, a fresh .ori (7 days by default), .bak and live replicas stay.
        assert!(a.join("1.3.pegasus.disk.migrate.ori").is_dir());
        assert!(a.join("1.4.pegasus.bak").is_dir());
        assert!(a.join("1.5.pegasus").is_dir());
        // Far in the future the .ori goes too, by its modification time.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(8 * 86_400);
        let removed = fs.clean(later);
        assert!(removed
            .iter()
            .any(|p| p.ends_with("1.3.pegasus.disk.migrate.ori")));
        assert!(a.join("1.5.pegasus").is_dir() && a.join("1.4.pegasus.bak").is_dir());
    }
}

//! Block services: where cold backups go and restores read from, as upstream configures them:
//! `[block_service.<provider>] type = local_service | hdfs_service` with `args`, and the provider
//! named in a backup or restore request is the section suffix. Each type sits behind the
//! `BlockService` trait: `local_service` (`local.rs`, a directory with md5/size sidecars) and
//! `hdfs_service` (`hdfs.rs`, a real HDFS through the `hdfs-native` crate).

mod hdfs;
mod local;

pub use hdfs::HdfsService;
pub use local::LocalService;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::Config;
use crate::idl::dsn::ErrorCode;

/// A file as the block service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub size: i64,
    pub md5: String,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
}

/// Lowercase hex MD5 of a file (read in 64 KiB blocks).
pub fn md5_file(path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Lowercase hex MD5 of bytes.
pub fn md5_bytes(b: &[u8]) -> String {
    use md5::Digest;
    format!("{:x}", md5::Md5::digest(b))
}

/// Joins path parts as upstream's path_combine: one `/` between parts, empty parts dropped.
pub fn combine(parts: &[&str]) -> String {
    let mut segs: Vec<&str> = Vec::new();
    let absolute = parts.first().is_some_and(|p| p.starts_with('/'));
    for p in parts {
        segs.extend(p.split('/').filter(|s| !s.is_empty() && *s != "."));
    }
    let joined = segs.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// What backups and restores need of a provider. Calls block (run them off the async workers,
/// or accept a short stall); paths are relative to the provider's root, `/`-separated, and a
/// `..` segment is refused with ERR_INVALID_PARAMETERS.
pub trait BlockService: Send + Sync {
    /// The size and md5 of a stored file; `None` when there is no such file. A provider that
    /// keeps no md5 (HDFS, as upstream's) gives an empty one.
    fn meta(&self, path: &str) -> Result<Option<FileMeta>, ErrorCode>;
    /// Writes `bytes` as the file `path`, replacing it.
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ErrorCode>;
    /// Reads the whole file `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, ErrorCode>;
    /// Copies the local file `from` to `path`; returns the size and md5 stored.
    fn upload(&self, from: &Path, path: &str) -> Result<FileMeta, ErrorCode>;
    /// Copies `path` to the local file `to`; returns its size and md5 as copied.
    fn download(&self, path: &str, to: &Path) -> Result<FileMeta, ErrorCode>;
    /// Lists a directory, sorted by name.
    fn list(&self, path: &str) -> Result<Vec<Entry>, ErrorCode>;
    /// Removes a file or a directory (a non-empty one only if `recursive`).
    fn remove(&self, path: &str, recursive: bool) -> Result<(), ErrorCode>;
}

/// The path segments of `path`, with `.` and empty ones dropped and `..` refused.
pub(crate) fn segments(path: &str) -> Result<Vec<&str>, ErrorCode> {
    let mut out = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if seg == ".." {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        out.push(seg);
    }
    Ok(out)
}

/// The configured providers: section suffix → (type, args).
static PROVIDERS: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();

/// Providers already opened, by (type, args): an HDFS connection is made once and shared.
static OPENED: OnceLock<Mutex<Opened>> = OnceLock::new();

type Opened = HashMap<(String, String), Arc<dyn BlockService>>;

/// Records the `[block_service.*]` sections of the configuration.
pub fn configure(cfg: &Config) {
    let mut m = HashMap::new();
    for section in cfg.sections() {
        if let Some(name) = section.strip_prefix("block_service.") {
            m.insert(
                name.to_string(),
                (
                    cfg.string(section, "type", ""),
                    cfg.string(section, "args", ""),
                ),
            );
        }
    }
    if let Ok(mut p) = PROVIDERS.get_or_init(Default::default).lock() {
        *p = m;
    }
}

/// Sets one provider (tests and tools).
pub fn set_provider(name: &str, ty: &str, args: &str) {
    if let Ok(mut p) = PROVIDERS.get_or_init(Default::default).lock() {
        p.insert(name.to_string(), (ty.to_string(), args.to_string()));
    }
}

/// The provider named `name`, or `None` when it is not configured, of a type this server does
/// not have, or cannot be opened (an HDFS name node that cannot be reached).
pub fn get(name: &str) -> Option<Arc<dyn BlockService>> {
    let (ty, args) = PROVIDERS.get()?.lock().ok()?.get(name).cloned()?;
    let key = (ty.clone(), args.clone());
    if let Some(s) = OPENED.get_or_init(Default::default).lock().ok()?.get(&key) {
        return Some(s.clone());
    }
    let words: Vec<&str> = args.split_whitespace().collect();
    let service: Arc<dyn BlockService> = match ty.as_str() {
        "local_service" => {
            let root = words.first().copied().unwrap_or(".");
            let root = PathBuf::from(root);
            if std::fs::create_dir_all(&root).is_err() {
                return None;
            }
            Arc::new(LocalService::new(root))
        }
        "hdfs_service" => {
            // args: <name node> [<root path>], as upstream's.
            let name_node = words.first()?;
            let root = words.get(1).copied().unwrap_or("/");
            match HdfsService::connect(name_node, root) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    log::error!("block service {name}: cannot open HDFS {name_node}: {e}");
                    return None;
                }
            }
        }
        _ => return None,
    };
    OPENED
        .get_or_init(Default::default)
        .lock()
        .ok()?
        .insert(key, service.clone());
    Some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_combine_as_upstream() {
        assert_eq!(combine(&["", "onebox"]), "onebox");
        assert_eq!(combine(&["a/", "/b//c", ""]), "a/b/c");
        assert_eq!(combine(&["/abs", "x"]), "/abs/x");
    }
}

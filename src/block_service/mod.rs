//! Block services: where cold backups go and restores read from, as upstream configures them:
//! `[block_service.<provider>] type = local_service` with `args = <root dir>`. The provider
//! named in a backup or restore request is the section suffix. `local_service` keeps each file
//! at `<root>/<path>` with a sidecar `.<name>.meta` (`{"md5":"<hex>","size":N}`) beside it, and
//! lists or reads only files that have one, as upstream's does (so a backup written by either
//! implementation is read by the other). An HDFS provider is not offered (see the notes).

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

/// The local-filesystem provider.
#[derive(Debug, Clone)]
pub struct LocalService {
    root: PathBuf,
}

fn fs_err(e: std::io::Error) -> ErrorCode {
    if e.kind() == std::io::ErrorKind::NotFound {
        ErrorCode::OBJECT_NOT_FOUND
    } else {
        ErrorCode::FS_INTERNAL
    }
}

impl LocalService {
    pub fn new(root: PathBuf) -> LocalService {
        LocalService { root }
    }

    /// The local file of `path`, always under the root: a leading `/` is relative to the root
    /// (as upstream's path_combine makes it), and a `..` segment is refused, so no request or
    /// stored file name reaches outside the block service.
    fn local(&self, path: &str) -> Result<PathBuf, ErrorCode> {
        let mut p = self.root.clone();
        for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            if seg == ".." {
                return Err(ErrorCode::INVALID_PARAMETERS);
            }
            p.push(seg);
        }
        Ok(p)
    }

    fn sidecar(p: &Path) -> PathBuf {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        p.with_file_name(format!(".{name}.meta"))
    }

    fn write_sidecar(p: &Path, m: &FileMeta) -> Result<(), ErrorCode> {
        let text = serde_json::json!({ "md5": m.md5, "size": m.size }).to_string();
        std::fs::write(Self::sidecar(p), text).map_err(fs_err)
    }

    /// The size and md5 of a stored file; `None` when it (or its sidecar) is missing.
    pub fn meta(&self, path: &str) -> Result<Option<FileMeta>, ErrorCode> {
        let p = self.local(path)?;
        if !p.is_file() {
            return Ok(None);
        }
        let text = match std::fs::read(Self::sidecar(&p)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(ErrorCode::FS_INTERNAL),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|_| ErrorCode::FS_INTERNAL)?;
        match (v["size"].as_i64(), v["md5"].as_str()) {
            (Some(size), Some(md5)) => Ok(Some(FileMeta {
                size,
                md5: md5.to_string(),
            })),
            _ => Err(ErrorCode::FS_INTERNAL),
        }
    }

    /// Writes `bytes` as the file `path` (and its sidecar).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ErrorCode> {
        let p = self.local(path)?;
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(fs_err)?;
        }
        std::fs::write(&p, bytes).map_err(fs_err)?;
        Self::write_sidecar(
            &p,
            &FileMeta {
                size: bytes.len() as i64,
                md5: md5_bytes(bytes),
            },
        )
    }

    /// Reads the whole file `path` (it must have its sidecar).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        if self.meta(path)?.is_none() {
            return Err(ErrorCode::OBJECT_NOT_FOUND);
        }
        std::fs::read(self.local(path)?).map_err(fs_err)
    }

    /// Copies the local file `from` to `path`; returns what was stored.
    pub fn upload(&self, from: &Path, path: &str) -> Result<FileMeta, ErrorCode> {
        let p = self.local(path)?;
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(fs_err)?;
        }
        std::fs::copy(from, &p).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        let m = FileMeta {
            size: std::fs::metadata(&p).map_err(fs_err)?.len() as i64,
            md5: md5_file(&p).map_err(fs_err)?,
        };
        Self::write_sidecar(&p, &m)?;
        Ok(m)
    }

    /// Copies `path` to the local file `to`; returns its size and md5 as copied.
    pub fn download(&self, path: &str, to: &Path) -> Result<FileMeta, ErrorCode> {
        if self.meta(path)?.is_none() {
            return Err(ErrorCode::OBJECT_NOT_FOUND);
        }
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        }
        std::fs::copy(self.local(path)?, to).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        Ok(FileMeta {
            size: std::fs::metadata(to).map_err(fs_err)?.len() as i64,
            md5: md5_file(to).map_err(fs_err)?,
        })
    }

    /// Lists a directory: its subdirectories, and its files that have a sidecar.
    pub fn list(&self, path: &str) -> Result<Vec<Entry>, ErrorCode> {
        let p = self.local(path)?;
        if p.is_file() {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        let rd = std::fs::read_dir(&p).map_err(fs_err)?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir || Self::sidecar(&e.path()).is_file() && !name.ends_with(".meta") {
                out.push(Entry { name, is_dir });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a file (and its sidecar) or a directory (recursively only if asked).
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), ErrorCode> {
        let p = self.local(path)?;
        if p.is_dir() {
            if recursive {
                std::fs::remove_dir_all(&p).map_err(fs_err)
            } else {
                std::fs::remove_dir(&p).map_err(|_| ErrorCode::DIR_NOT_EMPTY)
            }
        } else if p.is_file() {
            let _ = std::fs::remove_file(Self::sidecar(&p));
            std::fs::remove_file(&p).map_err(fs_err)
        } else {
            Err(ErrorCode::OBJECT_NOT_FOUND)
        }
    }
}

/// The configured providers: section suffix → (type, args).
static PROVIDERS: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();

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

/// The provider named `name`, or `None` when it is not configured (or of a type this server
/// does not have).
pub fn get(name: &str) -> Option<Arc<LocalService>> {
    let (ty, args) = PROVIDERS.get()?.lock().ok()?.get(name).cloned()?;
    if ty != "local_service" {
        return None;
    }
    let root = args.split_whitespace().next().unwrap_or("");
    let root = PathBuf::from(if root.is_empty() { "." } else { root });
    if std::fs::create_dir_all(&root).is_err() {
        return None;
    }
    Some(Arc::new(LocalService::new(root)))
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

    #[test]
    fn files_carry_sidecars_and_listing_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalService::new(dir.path().to_path_buf());
        s.write("r/1/backup_info", b"{}").unwrap();
        let m = s.meta("r/1/backup_info").unwrap().unwrap();
        assert_eq!(m.size, 2);
        assert_eq!(m.md5, "99914b932bd37a50b983c5e7c90ae93b");
        let side = std::fs::read_to_string(dir.path().join("r/1/.backup_info.meta")).unwrap();
        assert_eq!(
            side,
            r#"{"md5":"99914b932bd37a50b983c5e7c90ae93b","size":2}"#
        );
        std::fs::write(dir.path().join("r/1/stray"), b"x").unwrap();
        let names: Vec<String> = s.list("r/1").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["backup_info".to_string()]);
        assert_eq!(s.read("r/1/stray"), Err(ErrorCode::OBJECT_NOT_FOUND));
        let local = dir.path().join("copy");
        assert_eq!(s.download("r/1/backup_info", &local).unwrap(), m);
        let up = s.upload(&local, "r/2/f").unwrap();
        assert_eq!(up, m);
        assert_eq!(s.remove("r", false), Err(ErrorCode::DIR_NOT_EMPTY));
        s.remove("r", true).unwrap();
        assert_eq!(s.list("r"), Err(ErrorCode::OBJECT_NOT_FOUND));
        // Nothing reaches outside the root.
        assert_eq!(s.read("../etc/passwd"), Err(ErrorCode::INVALID_PARAMETERS));
        assert_eq!(
            s.write("a/../../x", b"x"),
            Err(ErrorCode::INVALID_PARAMETERS)
        );
        s.write("/abs/f", b"y").unwrap();
        assert!(dir.path().join("abs/f").is_file());
    }
}

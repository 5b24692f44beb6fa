//! The `local_service` block-service provider: each file at `<root>/<path>` with a sidecar
//! `.<name>.meta` (`{"md5":"<hex>","size":N}`) beside it; only files that have one are listed or
//! read, as upstream's provider does, so a backup written by either implementation is read by
//! the other.

use std::path::{Path, PathBuf};

use super::{md5_bytes, md5_file, BlockService, Entry, FileMeta};
use crate::idl::dsn::ErrorCode;

fn fs_err(e: std::io::Error) -> ErrorCode {
    if e.kind() == std::io::ErrorKind::NotFound {
        ErrorCode::OBJECT_NOT_FOUND
    } else {
        ErrorCode::FS_INTERNAL
    }
}

/// The local-filesystem provider.
#[derive(Debug, Clone)]
pub struct LocalService {
    root: PathBuf,
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
}

impl BlockService for LocalService {
    /// The size and md5 of a stored file; `None` when it (or its sidecar) is missing.
    fn meta(&self, path: &str) -> Result<Option<FileMeta>, ErrorCode> {
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
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ErrorCode> {
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
    fn read(&self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        if self.meta(path)?.is_none() {
            return Err(ErrorCode::OBJECT_NOT_FOUND);
        }
        std::fs::read(self.local(path)?).map_err(fs_err)
    }

    /// Copies the local file `from` to `path`; returns what was stored.
    fn upload(&self, from: &Path, path: &str) -> Result<FileMeta, ErrorCode> {
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
    fn download(&self, path: &str, to: &Path) -> Result<FileMeta, ErrorCode> {
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
    fn list(&self, path: &str) -> Result<Vec<Entry>, ErrorCode> {
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
    fn remove(&self, path: &str, recursive: bool) -> Result<(), ErrorCode> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

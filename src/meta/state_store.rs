//! The meta state store: a tree of paths with byte values. The local implementation keeps
//! the tree in memory and appends every change to `meta_state_service.log` in upstream's
//! `meta_state_service_simple` record format, replayed at start.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound(String),
    AlreadyExists(String),
    NotEmpty(String),
    Io(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(p) => write!(f, "node {p} not found"),
            StoreError::AlreadyExists(p) => write!(f, "node {p} already exists"),
            StoreError::NotEmpty(p) => write!(f, "node {p} has children"),
            StoreError::Io(e) => write!(f, "state store I/O error: {e}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The operations the meta server needs from its state store.
pub trait StateStore: Send {
    fn create_node(&mut self, path: &str, value: &[u8]) -> Result<()>;
    fn delete_node(&mut self, path: &str, recursive: bool) -> Result<()>;
    fn set_data(&mut self, path: &str, value: &[u8]) -> Result<()>;
    fn get_data(&self, path: &str) -> Result<Vec<u8>>;
    fn get_children(&self, path: &str) -> Result<Vec<String>>;
    fn exists(&self, path: &str) -> bool {
        self.get_data(path).is_ok()
    }
    /// Called once the meta state is loaded: from then on calls are made with the state
    /// locked and must not wait long (see `zk_store::STORE_CALL_DEADLINE`).
    fn loaded(&mut self) {}
    /// Creates `path` and every missing ancestor with empty values.
    fn ensure_path(&mut self, path: &str) -> Result<()> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            if !self.exists(&cur) {
                self.create_node(&cur, b"")?;
            }
        }
        Ok(())
    }
}

const LOG_MAGIC: i32 = 0xdeadbeef_u32 as i32;
const OP_CREATE: i32 = 0;
const OP_DELETE: i32 = 1;
const OP_SET: i32 = 2;

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn normalize(path: &str) -> String {
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        "/".to_string()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// The in-memory tree shared by the local store.
#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<String, Vec<u8>>,
}

impl Tree {
    fn new() -> Tree {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Vec::new());
        Tree { nodes }
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    fn create(&mut self, path: &str, value: &[u8]) -> Result<()> {
        if self.nodes.contains_key(path) {
            return Err(StoreError::AlreadyExists(path.into()));
        }
        let parent = parent_of(path).ok_or_else(|| StoreError::AlreadyExists(path.into()))?;
        if !self.nodes.contains_key(parent) {
            return Err(StoreError::NotFound(parent.into()));
        }
        self.nodes.insert(path.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, path: &str, recursive: bool) -> Result<()> {
        if !self.nodes.contains_key(path) || path == "/" {
            return Err(StoreError::NotFound(path.into()));
        }
        let prefix = format!("{path}/");
        let descendants: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if !descendants.is_empty() && !recursive {
            return Err(StoreError::NotEmpty(path.into()));
        }
        for d in descendants {
            self.nodes.remove(&d);
        }
        self.nodes.remove(path);
        Ok(())
    }

    fn set(&mut self, path: &str, value: &[u8]) -> Result<()> {
        match self.nodes.get_mut(path) {
            Some(v) => {
                *v = value.to_vec();
                Ok(())
            }
            None => Err(StoreError::NotFound(path.into())),
        }
    }
}

/// The local embedded store (`meta_state_service_simple`).
pub struct LocalStore {
    tree: Tree,
    log: File,
    path: PathBuf,
}

fn wrap_string(out: &mut Vec<u8>, ttype: u8, bytes: &[u8]) {
    out.push(ttype);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.push(0);
}

fn encode_record(op: i32, path: &str, value: Option<&[u8]>, recursive: Option<bool>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&op.to_le_bytes());
    wrap_string(&mut body, 11, path.as_bytes());
    if let Some(v) = value {
        wrap_string(&mut body, 12, v);
    }
    if let Some(r) = recursive {
        body.extend_from_slice(&[2, 0, 0, r as u8, 0]);
    }
    let mut rec = Vec::with_capacity(12 + body.len());
    rec.extend_from_slice(&LOG_MAGIC.to_le_bytes());
    rec.extend_from_slice(&(body.len() as u64).to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

/// Reads one wrapped string/blob argument: type byte, i16 id, i32 length, bytes, STOP.
fn read_wrapped(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let hdr = b.get(*pos..*pos + 7)?;
    let len = i32::from_be_bytes([hdr[3], hdr[4], hdr[5], hdr[6]]);
    if len < 0 {
        return None;
    }
    let start = *pos + 7;
    let end = start.checked_add(len as usize)?;
    let v = b.get(start..end)?.to_vec();
    if *b.get(end)? != 0 {
        return None;
    }
    *pos = end + 1;
    Some(v)
}

impl LocalStore {
    /// Opens (creating) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<LocalStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let path = dir.join("meta_state_service.log");
        let mut tree = Tree::new();
        let mut valid_len = 0u64;
        if let Ok(mut f) = File::open(&path) {
            let mut all = Vec::new();
            f.read_to_end(&mut all)
                .map_err(|e| StoreError::Io(e.to_string()))?;
            let mut pos = 0usize;
            while pos + 12 <= all.len() {
                let magic =
                    i32::from_le_bytes([all[pos], all[pos + 1], all[pos + 2], all[pos + 3]]);
                let mut sz = [0u8; 8];
                sz.copy_from_slice(&all[pos + 4..pos + 12]);
                let end = usize::try_from(u64::from_le_bytes(sz))
                    .ok()
                    .and_then(|size| (pos + 12).checked_add(size));
                let end = match end {
                    Some(end) if magic == LOG_MAGIC && end <= all.len() && end >= pos + 16 => end,
                    _ => break,
                };
                let body = &all[pos + 12..end];
                if Self::replay(&mut tree, body).is_none() {
                    log::warn!(
                        "meta state log: undecodable record at offset {pos}; stopping replay"
                    );
                    break;
                }
                pos = end;
                valid_len = pos as u64;
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        // Drop a torn tail so new records follow the last whole one.
        log.set_len(valid_len)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(LocalStore { tree, log, path })
    }

    fn replay(tree: &mut Tree, body: &[u8]) -> Option<()> {
        let op = i32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let mut pos = 4;
        let path = String::from_utf8(read_wrapped(body, &mut pos)?).ok()?;
        // Replayed operations may legitimately fail (as upstream, the log records requests).
        match op {
            OP_CREATE => {
                let v = read_wrapped(body, &mut pos)?;
                let _ = tree.create(&path, &v);
            }
            OP_DELETE => {
                let r = *body.get(pos + 3)? != 0;
                let _ = tree.delete(&path, r);
            }
            OP_SET => {
                let v = read_wrapped(body, &mut pos)?;
                let _ = tree.set(&path, &v);
            }
            _ => return None,
        }
        Some(())
    }

    pub fn log_path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, rec: &[u8]) -> Result<()> {
        self.log
            .write_all(rec)
            .and_then(|_| self.log.sync_data())
            .map_err(|e| StoreError::Io(e.to_string()))
    }
}

impl StateStore for LocalStore {
    fn create_node(&mut self, path: &str, value: &[u8]) -> Result<()> {
        let p = normalize(path);
        self.tree.create(&p, value)?;
        let rec = encode_record(OP_CREATE, &p, Some(value), None);
        if let Err(e) = self.append(&rec) {
            let _ = self.tree.delete(&p, true);
            return Err(e);
        }
        Ok(())
    }

    fn delete_node(&mut self, path: &str, recursive: bool) -> Result<()> {
        let p = normalize(path);
        if !self.tree.nodes.contains_key(&p) {
            return Err(StoreError::NotFound(p));
        }
        if !recursive && !self.tree.children(&p).is_empty() {
            return Err(StoreError::NotEmpty(p));
        }
        self.append(&encode_record(OP_DELETE, &p, None, Some(recursive)))?;
        self.tree.delete(&p, recursive)
    }

    fn set_data(&mut self, path: &str, value: &[u8]) -> Result<()> {
        let p = normalize(path);
        if !self.tree.nodes.contains_key(&p) {
            return Err(StoreError::NotFound(p));
        }
        self.append(&encode_record(OP_SET, &p, Some(value), None))?;
        self.tree.set(&p, value)
    }

    fn get_data(&self, path: &str) -> Result<Vec<u8>> {
        let p = normalize(path);
        self.tree
            .nodes
            .get(&p)
            .cloned()
            .ok_or(StoreError::NotFound(p))
    }

    fn get_children(&self, path: &str) -> Result<Vec<String>> {
        let p = normalize(path);
        if !self.tree.nodes.contains_key(&p) {
            return Err(StoreError::NotFound(p));
        }
        Ok(self.tree.children(&p))
    }
}

/// An in-memory store (the simulator's): clones share one tree, so a restarted meta server
/// finds what the previous incarnation wrote. `fail_writes` makes every change fail.
#[derive(Clone)]
pub struct MemStore {
    tree: std::sync::Arc<std::sync::Mutex<Tree>>,
    pub fail_writes: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            tree: std::sync::Arc::new(std::sync::Mutex::new(Tree::new())),
            fail_writes: Default::default(),
        }
    }
}

impl MemStore {
    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<()> {
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Io("injected write failure".into()));
        }
        Ok(())
    }
}

impl StateStore for MemStore {
    fn create_node(&mut self, path: &str, value: &[u8]) -> Result<()> {
        self.writable()?;
        self.tree().create(&normalize(path), value)
    }

    fn delete_node(&mut self, path: &str, recursive: bool) -> Result<()> {
        self.writable()?;
        self.tree().delete(&normalize(path), recursive)
    }

    fn set_data(&mut self, path: &str, value: &[u8]) -> Result<()> {
        self.writable()?;
        self.tree().set(&normalize(path), value)
    }

    fn get_data(&self, path: &str) -> Result<Vec<u8>> {
        let p = normalize(path);
        self.tree()
            .nodes
            .get(&p)
            .cloned()
            .ok_or(StoreError::NotFound(p))
    }

    fn get_children(&self, path: &str) -> Result<Vec<String>> {
        let p = normalize(path);
        let t = self.tree();
        if !t.nodes.contains_key(&p) {
            return Err(StoreError::NotFound(p));
        }
        Ok(t.children(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_upstream() {
        let r = encode_record(OP_SET, "/a", Some(b"xy"), None);
        let mut want = vec![0xef, 0xbe, 0xad, 0xde];
        want.extend_from_slice(&(4u64 + 10 + 10).to_le_bytes());
        want.extend_from_slice(&[2, 0, 0, 0]);
        want.extend_from_slice(&[0x0b, 0, 0, 0, 0, 0, 2, b'/', b'a', 0]);
        want.extend_from_slice(&[0x0c, 0, 0, 0, 0, 0, 2, b'x', b'y', 0]);
        assert_eq!(r, want);
        let d = encode_record(OP_DELETE, "/a", None, Some(true));
        assert_eq!(&d[d.len() - 5..], &[2, 0, 0, 1, 0]);
    }

    #[test]
    fn tree_ops_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LocalStore::open(dir.path()).unwrap();
            s.ensure_path("/pegasus/onebox/apps").unwrap();
            s.create_node("/pegasus/onebox/apps/1", b"{app}").unwrap();
            s.create_node("/pegasus/onebox/apps/1/0", b"p0").unwrap();
            s.create_node("/pegasus/onebox/apps/2", b"x").unwrap();
            assert_eq!(
                s.create_node("/missing/parent", b""),
                Err(StoreError::NotFound("/missing".into()))
            );
            assert!(matches!(
                s.create_node("/pegasus/onebox/apps/1", b""),
                Err(StoreError::AlreadyExists(_))
            ));
            s.set_data("/pegasus/onebox/apps/1/0", b"p0v2").unwrap();
            assert!(matches!(
                s.delete_node("/pegasus/onebox/apps/1", false),
                Err(StoreError::NotEmpty(_))
            ));
            s.delete_node("/pegasus/onebox/apps/2", false).unwrap();
        }
        // Append a torn record; it must be ignored and trimmed.
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(dir.path().join("meta_state_service.log"))
                .unwrap();
            f.write_all(&[0xef, 0xbe, 0xad, 0xde, 100, 0, 0]).unwrap();
        }
        let mut s = LocalStore::open(dir.path()).unwrap();
        assert_eq!(s.get_data("/pegasus/onebox/apps/1/0").unwrap(), b"p0v2");
        assert_eq!(s.get_children("/pegasus/onebox/apps").unwrap(), vec!["1"]);
        assert!(s.get_data("/pegasus/onebox/apps/2").is_err());
        s.create_node("/pegasus/onebox/apps/3", b"z").unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        assert_eq!(s.get_data("/pegasus/onebox/apps/3").unwrap(), b"z");
        drop(s);
        // A header whose size runs past the end of memory is treated as a torn tail too.
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(dir.path().join("meta_state_service.log"))
                .unwrap();
            let mut rec = LOG_MAGIC.to_le_bytes().to_vec();
            rec.extend_from_slice(&(u64::MAX - 4).to_le_bytes());
            rec.extend_from_slice(b"junk");
            f.write_all(&rec).unwrap();
        }
        let s = LocalStore::open(dir.path()).unwrap();
        assert_eq!(s.get_data("/pegasus/onebox/apps/3").unwrap(), b"z");
    }
}

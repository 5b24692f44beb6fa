//! The `hdfs_service` block-service provider, configured as upstream's:
//! `[block_service.<name>] type = hdfs_service`, `args = <name node> [<root path>]` (the root
//! defaults to `/`; a name node without a scheme gets `hdfs://`, and `default` takes
//! `fs.defaultFS` from `HADOOP_CONF_DIR`). Files live at `<root>/<path>` as plain HDFS files:
//! no sidecars, and no md5 kept (upstream's provider keeps none either), so a backup written by
//! either implementation is read by the other. Reads and writes go in batches of
//! `[replication] hdfs_read_batch_size_bytes` / `hdfs_write_batch_size_bytes` through token
//! buckets of `hdfs_read_limit_rate_mb_per_sec` / `hdfs_write_limit_rate_mb_per_sec`, shared by
//! the whole server as upstream's are.
//!
//! The `hdfs-native` crate is async; this provider owns a small tokio runtime for it, and each
//! blocking call hands its future to that runtime and waits for the answer, so callers on any
//! thread (async worker or not) can use it.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};

use super::{md5_file, segments, BlockService, Entry, FileMeta};
use crate::idl::dsn::ErrorCode;

/// How long one HDFS call may take before it is failed with ERR_TIMEOUT.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// A token bucket that lets a caller borrow: a consumer takes its tokens at once and then
/// waits until the bucket is no longer in debt, as upstream's `consumeWithBorrowAndWait`.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new() -> TokenBucket {
        TokenBucket {
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens at `rate` per second with at most `burst` saved; returns how long the
    /// caller must wait before going on.
    fn consume(&mut self, n: u64, rate: u64, burst: u64, now: Instant) -> Duration {
        let rate = rate.max(1) as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst as f64);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

static READ_BUCKET: Mutex<Option<TokenBucket>> = Mutex::new(None);
static WRITE_BUCKET: Mutex<Option<TokenBucket>> = Mutex::new(None);

/// Waits for `n` bytes of the read or write budget.
async fn throttle(write: bool, n: u64) {
    let (bucket, rate_flag) = if write {
        (&WRITE_BUCKET, "hdfs_write_limit_rate_mb_per_sec")
    } else {
        (&READ_BUCKET, "hdfs_read_limit_rate_mb_per_sec")
    };
    let rate = (crate::flags::i64_or(rate_flag, 200).max(1) as u64) << 20;
    let wait = match bucket.lock() {
        Ok(mut b) => b.get_or_insert_with(TokenBucket::new).consume(
            n,
            rate,
            (2 * rate).max(n),
            Instant::now(),
        ),
        Err(_) => Duration::ZERO,
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

fn batch_size(write: bool) -> usize {
    let flag = if write {
        "hdfs_write_batch_size_bytes"
    } else {
        "hdfs_read_batch_size_bytes"
    };
    crate::flags::i64_or(flag, 64 << 20).clamp(4096, 1 << 30) as usize
}

fn hdfs_err(path: &str, e: HdfsError) -> ErrorCode {
    match e {
        HdfsError::FileNotFound(_) => ErrorCode::OBJECT_NOT_FOUND,
        e => {
            log::error!("HDFS {path}: {e}");
            ErrorCode::FS_INTERNAL
        }
    }
}

/// The HDFS provider.
pub struct HdfsService {
    client: Client,
    root: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for HdfsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsService")
            .field("root", &self.root)
            .finish()
    }
}

impl HdfsService {
    /// Opens the name node and checks that it answers (as upstream's connect at start).
    pub fn connect(name_node: &str, root: &str) -> Result<HdfsService, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hdfs_service")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut builder = ClientBuilder::new().with_io_runtime(rt.handle().clone());
        if name_node != "default" {
            let url = if name_node.contains("://") {
                name_node.to_string()
            } else {
                format!("hdfs://{name_node}")
            };
            builder = builder.with_url(url);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let root = format!("/{}", segments(root).map_err(|e| e.name())?.join("/"));
        let s = HdfsService { client, root, rt };
        let c = s.client.clone();
        s.run(async move { c.get_file_info("/").await.map(|_| ()) })
            .map_err(|e| e.name())?
            .map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// The HDFS path of `path`.
    fn full(&self, path: &str) -> Result<String, ErrorCode> {
        let segs = segments(path)?;
        let base = self.root.trim_end_matches('/');
        Ok(if segs.is_empty() {
            if base.is_empty() {
                "/".into()
            } else {
                base.into()
            }
        } else {
            format!("{base}/{}", segs.join("/"))
        })
    }

    /// Runs `f` on the provider's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ErrorCode> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let out = tokio::time::timeout(CALL_TIMEOUT, f).await;
            let _ = tx.send(out);
        });
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ErrorCode::TIMEOUT),
            Err(_) => Err(ErrorCode::FS_INTERNAL),
        }
    }

    /// Writes `data` as the file `p`, replacing it, in throttled batches.
    async fn put(client: Client, p: String, data: Bytes) -> Result<(), ErrorCode> {
        let opts = WriteOptions::default().overwrite(true).create_parent(true);
        let mut w = client.create(&p, opts).await.map_err(|e| hdfs_err(&p, e))?;
        let batch = batch_size(true);
        let mut off = 0;
        while off < data.len() {
            let end = (off + batch).min(data.len());
            throttle(true, (end - off) as u64).await;
            w.write_bytes(data.slice(off..end))
                .await
                .map_err(|e| hdfs_err(&p, e))?;
            off = end;
        }
        w.close().await.map_err(|e| hdfs_err(&p, e))
    }

    /// Reads the whole file `p` in throttled batches, passing each to `sink`.
    async fn get(
        client: Client,
        p: String,
        mut sink: impl FnMut(&[u8]) -> Result<(), ErrorCode> + Send,
    ) -> Result<(), ErrorCode> {
        let r = client.read(&p).await.map_err(|e| hdfs_err(&p, e))?;
        let len = r.file_length();
        let batch = batch_size(false);
        let mut off = 0;
        while off < len {
            let n = batch.min(len - off);
            throttle(false, n as u64).await;
            let b = r.read_range(off, n).await.map_err(|e| hdfs_err(&p, e))?;
            if b.is_empty() {
                return Err(ErrorCode::FS_INTERNAL);
            }
            sink(&b)?;
            off += b.len();
        }
        Ok(())
    }
}

impl BlockService for HdfsService {
    fn meta(&self, path: &str) -> Result<Option<FileMeta>, ErrorCode> {
        let p = self.full(path)?;
        let c = self.client.clone();
        match self.run(async move { c.get_file_info(&p).await })? {
            Ok(st) if !st.isdir => Ok(Some(FileMeta {
                size: st.length as i64,
                md5: String::new(),
            })),
            Ok(_) | Err(HdfsError::FileNotFound(_)) => Ok(None),
            Err(e) => Err(hdfs_err(path, e)),
        }
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ErrorCode> {
        let p = self.full(path)?;
        let (c, data) = (self.client.clone(), Bytes::copy_from_slice(bytes));
        self.run(Self::put(c, p, data))?
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        let p = self.full(path)?;
        let c = self.client.clone();
        self.run(async move {
            let mut out = Vec::new();
            Self::get(c, p, |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .await
            .map(|_| out)
        })?
    }

    fn upload(&self, from: &Path, path: &str) -> Result<FileMeta, ErrorCode> {
        let p = self.full(path)?;
        // As upstream's: the whole local file is read, then written in batches.
        let data = std::fs::read(from).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        let size = data.len() as i64;
        let md5 = super::md5_bytes(&data);
        let c = self.client.clone();
        self.run(Self::put(c, p.clone(), Bytes::from(data)))??;
        let c = self.client.clone();
        let stored = self
            .run(async move { c.get_file_info(&p).await })?
            .map_err(|e| hdfs_err(path, e))?;
        if stored.length as i64 != size {
            log::error!(
                "HDFS {path}: {} bytes stored of {size} uploaded",
                stored.length
            );
            return Err(ErrorCode::FS_INTERNAL);
        }
        Ok(FileMeta { size, md5 })
    }

    fn download(&self, path: &str, to: &Path) -> Result<FileMeta, ErrorCode> {
        let p = self.full(path)?;
        if let Some(d) = to.parent() {
            std::fs::create_dir_all(d).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        }
        let mut f = std::fs::File::create(to).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        let c = self.client.clone();
        let res = self.run(async move {
            Self::get(c, p, |b| {
                f.write_all(b).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)
            })
            .await
            .map(|_| f.sync_all().map_err(|_| ErrorCode::FILE_OPERATION_FAILED))
        })??;
        res?;
        let size = std::fs::metadata(to)
            .map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?
            .len() as i64;
        let md5 = md5_file(to).map_err(|_| ErrorCode::FILE_OPERATION_FAILED)?;
        Ok(FileMeta { size, md5 })
    }

    fn list(&self, path: &str) -> Result<Vec<Entry>, ErrorCode> {
        let p = self.full(path)?;
        let c = self.client.clone();
        let (st, items) = self
            .run(async move {
                let st = c.get_file_info(&p).await?;
                if !st.isdir {
                    return Ok((st, Vec::new()));
                }
                let items = c.list_status(&p, false).await?;
                Ok::<_, HdfsError>((st, items))
            })?
            .map_err(|e| hdfs_err(path, e))?;
        if !st.isdir {
            return Err(ErrorCode::INVALID_PARAMETERS);
        }
        let mut out: Vec<Entry> = items
            .into_iter()
            .map(|s| Entry {
                name: s.path.rsplit('/').next().unwrap_or_default().to_string(),
                is_dir: s.isdir,
            })
            .filter(|e| !e.name.is_empty())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove(&self, path: &str, recursive: bool) -> Result<(), ErrorCode> {
        let p = self.full(path)?;
        let c = self.client.clone();
        self.run(async move {
            let st = c.get_file_info(&p).await.map_err(|e| hdfs_err(&p, e))?;
            if st.isdir && !recursive {
                let items = c
                    .list_status(&p, false)
                    .await
                    .map_err(|e| hdfs_err(&p, e))?;
                if !items.is_empty() {
                    return Err(ErrorCode::DIR_NOT_EMPTY);
                }
            }
            match c.delete(&p, recursive).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(ErrorCode::FS_INTERNAL),
                Err(e) => Err(hdfs_err(&p, e)),
            }
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_lends_then_makes_the_borrower_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new();
        // Empty at first: 100 bytes at 100/s means one second of debt.
        assert_eq!(b.consume(100, 100, 200, t0), Duration::from_secs(1));
        // Two seconds later the debt is paid and 100 tokens are saved.
        assert_eq!(
            b.consume(100, 100, 200, t0 + Duration::from_secs(2)),
            Duration::ZERO
        );
        // The bucket holds no more than its burst.
        assert_eq!(
            b.consume(300, 100, 200, t0 + Duration::from_secs(100)),
            Duration::from_secs(1)
        );
    }
}

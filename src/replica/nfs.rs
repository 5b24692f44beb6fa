//! NFS file copy between replica servers (RPC_NFS_GET_FILE_SIZE / RPC_NFS_COPY): the serving
//! side as pure functions over the filesystem, and the learner-side block copier.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use log::warn;

use crate::idl::dsn::{Blob, ErrorCode, HostPort, RpcAddress};
use crate::idl::nfs::{CopyRequest, CopyResponse, GetFileSizeRequest, GetFileSizeResponse};
use crate::idl::protocol;
use crate::rpc::client::RpcClient;
use crate::rpc::frame::ReplyValue;
use crate::storage::engine::PegasusDb;

pub const RPC_NFS_GET_FILE_SIZE: &str = "RPC_NFS_GET_FILE_SIZE";
pub const RPC_NFS_COPY: &str = "RPC_NFS_COPY";

/// Upstream `[nfs] nfs_copy_block_bytes`.
pub const DEFAULT_COPY_BLOCK_BYTES: usize = 4 << 20;
/// The largest range one copy request may ask for; bigger requests are refused so that a peer
/// cannot make the server allocate unbounded memory.
pub const MAX_COPY_REQUEST_BYTES: usize = 16 << 20;
/// Upstream `[nfs] max_retry_count_per_copy_request`.
pub const MAX_RETRY_COUNT_PER_COPY_REQUEST: u32 = 2;
/// Upstream `[nfs] rpc_timeout_ms`.
pub const NFS_RPC_TIMEOUT: Duration = Duration::from_secs(100);

/// Joins a peer-supplied file name under `base`. The name is relative to `base` even when it
/// starts with '/' (upstream joins with `path_combine`); `..` components, and names that
/// name nothing, are refused.
fn safe_join(base: &Path, name: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    let mut any = false;
    for comp in Path::new(name.trim_start_matches('/')).components() {
        match comp {
            Component::Normal(c) => {
                out.push(c);
                any = true;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    any.then_some(out)
}

fn ordinal(e: ErrorCode) -> i32 {
    e.code()
}

/// Serves RPC_NFS_GET_FILE_SIZE. With an empty `file_list`, lists `source_dir` recursively and
/// returns names as the path suffix after `source_dir` (so they start with '/'); otherwise
/// returns the size of each listed file and echoes its name. `error` is the error ordinal.
pub fn on_get_file_size(req: &GetFileSizeRequest) -> GetFileSizeResponse {
    let mut resp = GetFileSizeResponse {
        error: Some(0),
        file_list: Some(Vec::new()),
        size_list: Some(Vec::new()),
    };
    let fail = |mut r: GetFileSizeResponse, e: ErrorCode| {
        r.error = Some(ordinal(e));
        r
    };
    let source_dir = req.source_dir.as_deref().unwrap_or("");
    if source_dir.is_empty() {
        return fail(resp, ErrorCode::INVALID_PARAMETERS);
    }
    let base = Path::new(source_dir);
    let mut names = Vec::new();
    let mut sizes = Vec::new();
    let requested = req.file_list.as_deref().unwrap_or(&[]);
    if requested.is_empty() {
        if !base.is_dir() {
            warn!("nfs: directory {source_dir} does not exist");
            return fail(resp, ErrorCode::OBJECT_NOT_FOUND);
        }
        let files = match PegasusDb::list_files_recursive(base) {
            Ok(f) => f,
            Err(e) => {
                warn!("nfs: listing {source_dir} failed: {e}");
                return fail(resp, ErrorCode::FILE_OPERATION_FAILED);
            }
        };
        for rel in files {
            match std::fs::metadata(base.join(&rel)) {
                Ok(m) => {
                    names.push(format!("/{rel}"));
                    sizes.push(m.len() as i64);
                }
                Err(e) => {
                    warn!("nfs: size of {source_dir}/{rel} failed: {e}");
                    return fail(resp, ErrorCode::FILE_OPERATION_FAILED);
                }
            }
        }
    } else {
        for name in requested {
            let Some(path) = safe_join(base, name) else {
                warn!("nfs: refusing file name {name:?} under {source_dir}");
                return fail(resp, ErrorCode::FILE_OPERATION_FAILED);
            };
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    names.push(name.clone());
                    sizes.push(m.len() as i64);
                }
                Ok(_) => {
                    warn!("nfs: {} is not a file", path.display());
                    return fail(resp, ErrorCode::FILE_OPERATION_FAILED);
                }
                Err(e) => {
                    warn!("nfs: size of {} failed: {e}", path.display());
                    return fail(resp, ErrorCode::FILE_OPERATION_FAILED);
                }
            }
        }
    }
    resp.file_list = Some(names);
    resp.size_list = Some(sizes);
    resp
}

/// Serves RPC_NFS_COPY: reads `[offset, offset + size)` of `source_dir/file_name` (fewer bytes
/// at the end of the file; the reply's `size` is the number of bytes returned).
pub fn on_copy(req: &CopyRequest) -> CopyResponse {
    let offset = req.offset.unwrap_or(0);
    let size = req.size.unwrap_or(0);
    let fail = |e: ErrorCode| CopyResponse {
        error: Some(e),
        file_content: Some(Blob(Vec::new())),
        offset: Some(offset),
        size: Some(0),
    };
    let source_dir = req.source_dir.as_deref().unwrap_or("");
    let file_name = req.file_name.as_deref().unwrap_or("");
    if source_dir.is_empty() || offset < 0 || size < 0 || size as usize > MAX_COPY_REQUEST_BYTES {
        warn!("nfs: refusing copy of {file_name:?} [{offset}, +{size}) from {source_dir:?}");
        return fail(ErrorCode::INVALID_PARAMETERS);
    }
    let Some(path) = safe_join(Path::new(source_dir), file_name) else {
        warn!("nfs: refusing file name {file_name:?} under {source_dir}");
        return fail(ErrorCode::INVALID_PARAMETERS);
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            warn!("nfs: open {} failed: {e}", path.display());
            return fail(ErrorCode::OBJECT_NOT_FOUND);
        }
    };
    let mut buf = Vec::with_capacity(size as usize);
    let read = file
        .seek(SeekFrom::Start(offset as u64))
        .and_then(|_| (&mut file).take(size as u64).read_to_end(&mut buf));
    if let Err(e) = read {
        warn!("nfs: read {} failed: {e}", path.display());
        return fail(ErrorCode::FILE_OPERATION_FAILED);
    }
    CopyResponse {
        error: Some(ErrorCode::OK),
        size: Some(buf.len() as i32),
        file_content: Some(Blob(buf)),
        offset: Some(offset),
    }
}

fn struct_value<T: thrift::protocol::TSerializable>(v: &T) -> ReplyValue {
    ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(v),
    }
}

async fn call<T: thrift::protocol::TSerializable>(
    client: &RpcClient,
    name: &str,
    arg: &ReplyValue,
) -> Result<T, String> {
    let reply = client
        .call(name, 0, 0, arg, NFS_RPC_TIMEOUT)
        .await
        .map_err(|e| format!("{name} to {}: {e}", client.addr()))?;
    if reply.error != "ERR_OK" {
        return Err(format!("{name} to {}: {}", client.addr(), reply.error));
    }
    protocol::decode(&reply.body, protocol::read_arg::<T>)
        .map_err(|e| format!("{name} to {}: undecodable reply: {e}", client.addr()))
}

/// Paces what this server sends to copiers: each disk (`key`) sends at most
/// `[nfs] max_send_rate_megabytes_per_disk` MiB/s (0 = unlimited); a request waits for its
/// slot before it is read.
pub async fn pace_send(key: &str, bytes: u64) {
    static NEXT_FREE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    > = std::sync::OnceLock::new();
    let mb = crate::flags::i64_or("max_send_rate_megabytes_per_disk", 0);
    if mb <= 0 {
        return;
    }
    let cost = Duration::from_secs_f64(bytes as f64 / ((mb as u64) << 20) as f64);
    let start = {
        let Ok(mut m) = NEXT_FREE.get_or_init(Default::default).lock() else {
            return;
        };
        let now = Instant::now();
        let slot = m.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        m.insert(key.to_string(), slot + cost);
        slot
    };
    tokio::time::sleep_until(start.into()).await;
}

/// Paces transfers to `max_bytes_per_sec` over the whole copy (0 = unlimited).
struct Pacer {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    async fn consume(&mut self, n: u64) {
        self.bytes += n;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Writes `data` at the current end of `file` on a blocking thread; returns the file back.
async fn write_block(file: std::fs::File, data: Vec<u8>) -> Result<std::fs::File, String> {
    tokio::task::spawn_blocking(move || {
        let mut f = file;
        f.write_all(&data).map(|_| f)
    })
    .await
    .map_err(|e| format!("write task failed: {e}"))?
    .map_err(|e| format!("write failed: {e}"))
}

/// Copies files from the replica server behind `client` into `dst_dir`: `files` relative to
/// `source_dir` (empty = everything under it, recursively), fetched in blocks of `block_bytes`
/// (0 = 4 MiB, at most 16 MiB) with up to 2 retries per block, paced to `max_bytes_per_sec`
/// (0 = unlimited; `[nfs] max_copy_rate_megabytes_per_disk`). Existing files are overwritten.
/// Returns the number of bytes copied.
pub async fn copy_remote_files(
    client: &RpcClient,
    source_dir: &str,
    files: &[String],
    dst_dir: &Path,
    block_bytes: usize,
    max_bytes_per_sec: u64,
) -> Result<u64, String> {
    let block = if block_bytes == 0 {
        DEFAULT_COPY_BLOCK_BYTES
    } else {
        block_bytes.min(MAX_COPY_REQUEST_BYTES)
    } as u64;
    let (source, hp_source) = match client.addr() {
        SocketAddr::V4(a) => {
            let source = RpcAddress::from_socket_addr(a);
            (source, crate::rpc::host_port::book().hp_of(source))
        }
        SocketAddr::V6(a) => (
            RpcAddress::INVALID,
            HostPort::new(a.ip().to_string(), a.port()),
        ),
    };
    let dst_str = dst_dir.to_string_lossy().into_owned();
    let size_req = GetFileSizeRequest {
        source: Some(source),
        dst_dir: Some(dst_str.clone()),
        file_list: Some(files.to_vec()),
        source_dir: Some(source_dir.to_string()),
        overwrite: Some(true),
        source_disk_tag: None,
        dest_disk_tag: None,
        pid: None,
        hp_source: Some(hp_source.clone()),
    };
    let sizes: GetFileSizeResponse =
        call(client, RPC_NFS_GET_FILE_SIZE, &struct_value(&size_req)).await?;
    let err = sizes.error.unwrap_or(0);
    if err != 0 {
        return Err(format!(
            "get file size of {source_dir} from {}: {}",
            client.addr(),
            ErrorCode::from_code(err)
        ));
    }
    let names = sizes.file_list.unwrap_or_default();
    let lens = sizes.size_list.unwrap_or_default();
    if names.len() != lens.len() {
        return Err(format!(
            "get file size of {source_dir}: {} names but {} sizes",
            names.len(),
            lens.len()
        ));
    }
    std::fs::create_dir_all(dst_dir).map_err(|e| format!("create {}: {e}", dst_dir.display()))?;
    let mut pacer = Pacer {
        rate: max_bytes_per_sec,
        start: Instant::now(),
        bytes: 0,
    };
    let mut total = 0u64;
    for (name, &len) in names.iter().zip(&lens) {
        let len = u64::try_from(len).map_err(|_| format!("negative size {len} of {name}"))?;
        let dst = safe_join(dst_dir, name).ok_or_else(|| format!("unsafe file name {name:?}"))?;
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        let mut file =
            std::fs::File::create(&dst).map_err(|e| format!("create {}: {e}", dst.display()))?;
        let mut offset = 0u64;
        while offset < len {
            let size = block.min(len - offset);
            let req = CopyRequest {
                source: Some(source),
                source_dir: Some(source_dir.to_string()),
                dst_dir: Some(dst_str.clone()),
                file_name: Some(name.clone()),
                offset: Some(offset as i64),
                size: Some(size as i32),
                is_last: Some(offset + size >= len),
                overwrite: Some(true),
                source_disk_tag: None,
                pid: None,
                hp_source: Some(hp_source.clone()),
            };
            let arg = struct_value(&req);
            let mut attempt = 0;
            let data = loop {
                let got = match call::<CopyResponse>(client, RPC_NFS_COPY, &arg).await {
                    Ok(r) if !r.error.unwrap_or_default().is_ok() => Err(format!(
                        "copy {name} [{offset}, +{size}) from {}: {}",
                        client.addr(),
                        r.error.unwrap_or_default()
                    )),
                    Ok(r) => {
                        let content = r.file_content.map(|b| b.0).unwrap_or_default();
                        if r.offset != Some(offset as i64) || content.len() as u64 != size {
                            Err(format!(
                                "copy {name} [{offset}, +{size}): got {} bytes at offset {:?} \
                                 (file changed on the source?)",
                                content.len(),
                                r.offset
                            ))
                        } else {
                            Ok(content)
                        }
                    }
                    Err(e) => Err(e),
                };
                match got {
                    Ok(d) => break d,
                    Err(e) if attempt < MAX_RETRY_COUNT_PER_COPY_REQUEST => {
                        attempt += 1;
                        warn!("nfs: {e}; retry {attempt}");
                    }
                    Err(e) => return Err(e),
                }
            };
            file = write_block(file, data)
                .await
                .map_err(|e| format!("{}: {e}", dst.display()))?;
            offset += size;
            total += size;
            pacer.consume(size).await;
        }
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| format!("sync task failed: {e}"))?
            .map_err(|e| format!("sync {}: {e}", dst.display()))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::rpc::frame::Request;
    use crate::rpc::server::{self, BoxFuture, Handler, HttpReply, Reply, ServerOptions};

    fn size_req(dir: &str, list: Vec<String>) -> GetFileSizeRequest {
        GetFileSizeRequest {
            source: None,
            dst_dir: Some(String::new()),
            file_list: Some(list),
            source_dir: Some(dir.to_string()),
            overwrite: Some(false),
            source_disk_tag: None,
            dest_disk_tag: None,
            pid: None,
            hp_source: None,
        }
    }

    fn copy_req(dir: &str, name: &str, offset: i64, size: i32) -> CopyRequest {
        CopyRequest {
            source: None,
            source_dir: Some(dir.to_string()),
            dst_dir: Some(String::new()),
            file_name: Some(name.to_string()),
            offset: Some(offset),
            size: Some(size),
            is_last: Some(false),
            overwrite: Some(false),
            source_disk_tag: None,
            pid: None,
            hp_source: None,
        }
    }

    fn populate(dir: &Path) {
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        std::fs::write(dir.join("sub/a.sst"), vec![7u8; 1000]).unwrap();
        std::fs::write(dir.join("sub/deeper/b"), b"").unwrap();
    }

    #[test]
    fn get_file_size_lists_recursively() {
        let tmp = tempfile::tempdir().unwrap();
        populate(tmp.path());
        let dir = tmp.path().to_str().unwrap();
        let r = on_get_file_size(&size_req(dir, vec![]));
        assert_eq!(r.error, Some(0));
        assert_eq!(
            r.file_list.unwrap(),
            vec!["/CURRENT", "/sub/a.sst", "/sub/deeper/b"]
        );
        assert_eq!(r.size_list.unwrap(), vec![16, 1000, 0]);
    }

    #[test]
    fn get_file_size_explicit_list_and_errors() {
        let tmp = tempfile::tempdir().unwrap();
        populate(tmp.path());
        let dir = tmp.path().to_str().unwrap();
        let r = on_get_file_size(&size_req(dir, vec!["sub/a.sst".into(), "/CURRENT".into()]));
        assert_eq!(r.error, Some(0));
        assert_eq!(r.file_list.unwrap(), vec!["sub/a.sst", "/CURRENT"]);
        assert_eq!(r.size_list.unwrap(), vec![1000, 16]);

        let missing = tmp.path().join("nope");
        let r = on_get_file_size(&size_req(missing.to_str().unwrap(), vec![]));
        assert_eq!(r.error, Some(10));
        let r = on_get_file_size(&size_req(dir, vec!["absent".into()]));
        assert_eq!(r.error, Some(20));
        let r = on_get_file_size(&size_req(dir, vec!["sub/../../etc/passwd".into()]));
        assert_eq!(r.error, Some(20));
        let r = on_get_file_size(&size_req(dir, vec!["..".into()]));
        assert_eq!(r.error, Some(20));
    }

    #[test]
    fn copy_reads_exact_range() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(tmp.path().join("f"), &data).unwrap();
        let dir = tmp.path().to_str().unwrap();
        let r = on_copy(&copy_req(dir, "/f", 100, 300));
        assert!(r.error.unwrap().is_ok());
        assert_eq!(r.offset, Some(100));
        assert_eq!(r.size, Some(300));
        assert_eq!(r.file_content.unwrap().0, data[100..400]);
        // The tail returns what is left.
        let r = on_copy(&copy_req(dir, "f", 4900, 300));
        assert_eq!(r.file_content.unwrap().0, data[4900..]);
        assert_eq!(r.size, Some(100));

        let r = on_copy(&copy_req(dir, "g", 0, 10));
        assert_eq!(r.error, Some(ErrorCode::OBJECT_NOT_FOUND));
        let r = on_copy(&copy_req(dir, "../f", 0, 10));
        assert_eq!(r.error, Some(ErrorCode::INVALID_PARAMETERS));
        let r = on_copy(&copy_req(dir, "f", 0, (MAX_COPY_REQUEST_BYTES + 1) as i32));
        assert_eq!(r.error, Some(ErrorCode::INVALID_PARAMETERS));
        let r = on_copy(&copy_req(dir, "f", -1, 10));
        assert_eq!(r.error, Some(ErrorCode::INVALID_PARAMETERS));
    }

    struct NfsHandler;

    impl Handler for NfsHandler {
        fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>> {
            Box::pin(async move {
                Some(match req.name.as_str() {
                    RPC_NFS_GET_FILE_SIZE => match server::arg::<GetFileSizeRequest>(&req) {
                        Some(a) => Reply::of(&on_get_file_size(&a)),
                        None => Reply::err("ERR_INVALID_DATA"),
                    },
                    RPC_NFS_COPY => match server::arg::<CopyRequest>(&req) {
                        Some(a) => Reply::of(&on_copy(&a)),
                        None => Reply::err("ERR_INVALID_DATA"),
                    },
                    _ => Reply::err("ERR_HANDLER_NOT_FOUND"),
                })
            })
        }

        fn http(self: Arc<Self>, _req: crate::rpc::http::HttpRequest) -> BoxFuture<HttpReply> {
            Box::pin(async move {
                HttpReply {
                    status: 404,
                    location: None,
                    content_type: "text/plain",
                    body: String::new(),
                }
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_files_over_a_socket() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        populate(src.path());
        let big: Vec<u8> = (0..100_003u32).map(|i| (i * 31 % 256) as u8).collect();
        std::fs::write(src.path().join("sub/big.sst"), &big).unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let srv = tokio::spawn(server::serve(
            listener,
            Arc::new(NfsHandler),
            ServerOptions::default(),
        ));
        let client = RpcClient::new(addr, 0);
        let source_dir = src.path().to_str().unwrap();

        // Everything, in 4 KiB blocks.
        let out = dst.path().join("learn");
        let n = copy_remote_files(&client, source_dir, &[], &out, 4096, 0)
            .await
            .unwrap();
        assert_eq!(n, 100_003 + 1000 + 16);
        assert_eq!(std::fs::read(out.join("sub/big.sst")).unwrap(), big);
        assert_eq!(
            std::fs::read(out.join("sub/a.sst")).unwrap(),
            vec![7u8; 1000]
        );
        assert_eq!(
            std::fs::read(out.join("CURRENT")).unwrap(),
            b"MANIFEST-000001\n"
        );
        assert_eq!(std::fs::read(out.join("sub/deeper/b")).unwrap().len(), 0);

        // An explicit list, rate-limited: 20000 bytes at 100 kB/s take about 0.2 s.
        let out2 = dst.path().join("two");
        std::fs::write(src.path().join("r"), vec![1u8; 20_000]).unwrap();
        let t = Instant::now();
        let n = copy_remote_files(&client, source_dir, &["r".into()], &out2, 5000, 100_000)
            .await
            .unwrap();
        assert_eq!(n, 20_000);
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(std::fs::read(out2.join("r")).unwrap(), vec![1u8; 20_000]);

        // Failures come back as errors.
        let missing = src.path().join("missing");
        let e = copy_remote_files(&client, missing.to_str().unwrap(), &[], &out2, 4096, 0)
            .await
            .unwrap_err();
        assert!(e.contains("ERR_OBJECT_NOT_FOUND"), "{e}");
        let e = copy_remote_files(&client, source_dir, &["../x".into()], &out2, 4096, 0)
            .await
            .unwrap_err();
        assert!(e.contains("ERR_FILE_OPERATION_FAILED"), "{e}");
        srv.abort();
    }
}

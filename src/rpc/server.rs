//! The listening side: one TCP port per process; each connection is bound to THFT, RDSN or
//! HTTP by its first four bytes. Requests are handed to the server's handler in arrival order
//! (which keeps a partition's requests in order), each with a reply sink; replies are written
//! back in completion order, matched by the client through their sequence ids. A connection
//! has a bounded budget of requests (and bytes) in flight: past it, it is not read until
//! replies go out, so a client that never reads its replies cannot grow the server's memory.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::frame::{self, Parsed, Protocol, ReplyValue, Request};

/// What a handler answers: the dsn error name and, on success, the result value.
#[derive(Debug, Clone)]
pub struct Reply {
    pub error: &'static str,
    pub value: Option<ReplyValue>,
}

impl Reply {
    pub fn ok(value: ReplyValue) -> Reply {
        Reply {
            error: "ERR_OK",
            value: Some(value),
        }
    }

    pub fn err(error: &'static str) -> Reply {
        Reply { error, value: None }
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An HTTP answer: status code, content type, body.
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
}

/// Where the reply to one request goes: the connection it came on. It holds the request's
/// share of the connection's in-flight budget until the reply is written (or, for a request
/// never answered, until the sink is dropped).
pub struct ReplySink {
    header: Request,
    self_address: u64,
    tx: mpsc::Sender<Outgoing>,
    budget: Budget,
    /// When the request was taken off its connection.
    received: Instant,
}

/// Called with each reply's task code and its request's arrival time (the replica server's
/// profiler metrics).
pub type ReplyHook = fn(&str, Instant);

static REPLY_HOOK: std::sync::OnceLock<ReplyHook> = std::sync::OnceLock::new();

/// Installs the process's reply hook (once).
pub fn set_reply_hook(hook: ReplyHook) {
    let _ = REPLY_HOOK.set(hook);
}

/// A request's share of its connection's in-flight limits.
struct Budget {
    _count: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// An encoded reply on its way to the socket, with the budget it frees once written.
struct Outgoing {
    bytes: Vec<u8>,
    _budget: Budget,
}

impl ReplySink {
    /// Encodes and queues the reply; dropped silently when the connection is gone.
    pub fn send(self, reply: Reply) {
        if let Some(hook) = REPLY_HOOK.get() {
            hook(&self.header.name, self.received);
        }
        let bytes = frame::encode_reply(
            &self.header,
            reply.error,
            reply.value.as_ref(),
            self.self_address,
        );
        // Never full: every queued reply holds one of the connection's count permits, and
        // the channel has room for all of them.
        let _ = self.tx.try_send(Outgoing {
            bytes,
            _budget: self.budget,
        });
    }

    /// The request's task-code name.
    pub fn name(&self) -> &str {
        &self.header.name
    }
}

/// The role-specific request handler of a server.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; `None` means the request gets no reply at all.
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>>;
    /// Answers an HTTP request (GET or POST), parsed by upstream's rules.
    fn http(self: Arc<Self>, req: super::http::HttpRequest) -> BoxFuture<HttpReply>;
    /// Takes one request off its connection, in arrival order: whatever must keep that order
    /// (a partition's reads and writes) is queued before this returns. By default the
    /// request runs as a task of its own.
    fn dispatch(self: &Arc<Self>, req: Request, sink: ReplySink)
    where
        Self: Sized,
    {
        let h = self.clone();
        tokio::spawn(async move {
            if let Some(reply) = h.handle(req).await {
                sink.send(reply);
            }
        });
    }
}

/// Limits and identity of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_frame_bytes: usize,
    /// This server's rpc_address, put into RDSN reply headers.
    pub self_address: u64,
    /// Requests of one connection taken in but not answered yet; past it the connection is
    /// not read until replies go out (TCP backpressure on the client).
    pub max_in_flight: usize,
    /// Bytes of those requests, likewise.
    pub max_in_flight_bytes: usize,
    /// A connection that has not completed its first request after this long is closed;
    /// `None` (the default, as upstream) keeps every connection however long it idles. The
    /// Python client connects to every primary up front and does not reconnect a session the
    /// server closed until a request on it failed, so closing idle sessions costs its users a
    /// timeout; the per-IP connection limit and the incomplete-request timeout bound what idle
    /// peers can hold instead.
    pub idle_timeout: Option<Duration>,
    /// A request whose first bytes came this long ago and that is still incomplete closes
    /// its connection (a peer trickling bytes cannot hold it open).
    pub frame_timeout: Duration,
    /// `[network] conn_threshold_per_ip`: connections accepted from one IP address at once
    /// (0: no limit).
    pub conn_threshold_per_ip: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_frame_bytes: 64 << 20,
            self_address: 0,
            max_in_flight: 4096,
            max_in_flight_bytes: 64 << 20,
            idle_timeout: None,
            frame_timeout: Duration::from_secs(60),
            conn_threshold_per_ip: 0,
        }
    }
}

/// Accepts connections forever.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, opts: ServerOptions) {
    let opts = Arc::new(opts);
    let per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let ip = peer.ip();
                if opts.conn_threshold_per_ip > 0 {
                    let Ok(mut m) = per_ip.lock() else { continue };
                    let n = m.entry(ip).or_default();
                    if *n >= opts.conn_threshold_per_ip {
                        warn!(
                            "refusing a connection from {peer}: {n} connections from {ip} \
                             (conn_threshold_per_ip)"
                        );
                        continue;
                    }
                    *n += 1;
                }
                let _ = stream.set_nodelay(true);
                let h = handler.clone();
                let o = opts.clone();
                let counts = per_ip.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, peer, h, o.clone()).await {
                        info!("connection from {peer} closed: {e}");
                    }
                    if o.conn_threshold_per_ip > 0 {
                        if let Ok(mut m) = counts.lock() {
                            if let Some(n) = m.get_mut(&ip) {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    m.remove(&ip);
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Budget units of the byte limit (KiB, so any frame size fits a u32 permit count).
const BYTE_UNIT: usize = 1024;

async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    opts: Arc<ServerOptions>,
) -> std::io::Result<()> {
    let mut first = [0u8; 4];
    match opts.idle_timeout {
        Some(t) => match tokio::time::timeout(t, stream.read_exact(&mut first)).await {
            Ok(r) => {
                r?;
            }
            Err(_) => return Ok(()),
        },
        None => {
            stream.read_exact(&mut first).await?;
        }
    }
    let protocol = match frame::detect(&first) {
        Some(p) => p,
        None => {
            warn!("closing connection from {peer}: unknown protocol magic {first:02x?}");
            return Ok(());
        }
    };
    if protocol == Protocol::Http {
        super::http::serve(stream, first, handler).await;
        return Ok(());
    }
    let (mut rd, mut wr) = stream.into_split();
    let max_in_flight = opts.max_in_flight.max(1);
    let byte_units = (opts.max_in_flight_bytes / BYTE_UNIT).clamp(1, u32::MAX as usize >> 4);
    let count = Arc::new(Semaphore::new(max_in_flight));
    let bytes_budget = Arc::new(Semaphore::new(byte_units));
    let (tx, mut rx) = mpsc::channel::<Outgoing>(max_in_flight);
    let writer = tokio::spawn(async move {
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut done: Vec<Outgoing> = Vec::new();
        while let Some(first) = rx.recv().await {
            out.clear();
            out.extend_from_slice(&first.bytes);
            done.push(first);
            // Everything already queued goes out with the same write.
            while out.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(more) => {
                        out.extend_from_slice(&more.bytes);
                        done.push(more);
                    }
                    Err(_) => break,
                }
            }
            if wr.write_all(&out).await.is_err() {
                break;
            }
            crate::metrics::NETWORK_SENT_BYTES.add(out.len() as i64);
            done.clear();
            if out.capacity() > 1 << 20 {
                out = Vec::with_capacity(64 * 1024);
            }
        }
    });
    let mut buf: Vec<u8> = first.to_vec();
    let mut pos = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut served_one = false;
    let mut partial_since: Option<Instant> = None;
    'conn: loop {
        loop {
            match frame::parse(protocol, &buf[pos..], opts.max_frame_bytes) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Frame(req, used)) => {
                    pos += used;
                    served_one = true;
                    partial_since = None;
                    let units = (used / BYTE_UNIT + 1).min(byte_units) as u32;
                    let Ok(c) = count.clone().acquire_owned().await else {
                        break 'conn;
                    };
                    let Ok(b) = bytes_budget.clone().acquire_many_owned(units).await else {
                        break 'conn;
                    };
                    let mut req = *req;
                    let body = std::mem::take(&mut req.body);
                    let header = req.clone();
                    req.body = body;
                    let sink = ReplySink {
                        header,
                        self_address: opts.self_address,
                        tx: tx.clone(),
                        budget: Budget {
                            _count: c,
                            _bytes: b,
                        },
                        received: Instant::now(),
                    };
                    handler.dispatch(req, sink);
                }
                Ok(Parsed::Reply(_, used)) => {
                    // Replies are only expected on client connections; drop it.
                    pos += used;
                }
                Err(e) => {
                    warn!("closing connection from {peer}: {e}");
                    break 'conn;
                }
            }
        }
        // Keep the unparsed tail at the front of the buffer.
        if pos > 0 {
            buf.drain(..pos);
            pos = 0;
        }
        if buf.is_empty() {
            partial_since = None;
            if buf.capacity() > 4 << 20 {
                buf = Vec::with_capacity(64 * 1024);
            }
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        let wait = match partial_since {
            Some(t) => Some(opts.frame_timeout.saturating_sub(t.elapsed())),
            None if !served_one => opts
                .idle_timeout
                .map(|t| t.saturating_sub(started.elapsed())),
            None => None,
        };
        let read = match wait {
            Some(w) => tokio::time::timeout(w, rd.read(&mut chunk)).await,
            None => Ok(rd.read(&mut chunk).await),
        };
        let n = match read {
            Ok(r) => r?,
            Err(_) => {
                if partial_since.is_some() {
                    info!("closing connection from {peer}: a request incomplete for too long");
                } else {
                    info!("closing connection from {peer}: no request since it was opened");
                }
                break;
            }
        };
        if n == 0 {
            break;
        }
        crate::metrics::NETWORK_RECEIVED_BYTES.add(n as i64);
        buf.extend_from_slice(&chunk[..n]);
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

impl Reply {
    /// A successful reply carrying a struct (or placeholder-typed) value.
    pub fn of<T: thrift::protocol::TSerializable>(v: &T) -> Reply {
        Reply::ok(ReplyValue {
            ttype: 12,
            bytes: crate::idl::protocol::encode_struct(v),
        })
    }

    /// The answer to RPC_NEGOTIATION: authentication is disabled.
    pub fn negotiation() -> Reply {
        use crate::idl::security::{NegotiationResponse, NegotiationStatus};
        Reply::of(&NegotiationResponse {
            status: Some(NegotiationStatus::SASL_AUTH_DISABLE),
            msg: Some(crate::idl::dsn::Blob(Vec::new())),
        })
    }

    /// A successful reply carrying a plain string (remote commands).
    pub fn string(s: &str) -> Reply {
        let mut bytes = Vec::with_capacity(4 + s.len());
        bytes.extend_from_slice(&(s.len() as i32).to_be_bytes());
        bytes.extend_from_slice(s.as_bytes());
        Reply::ok(ReplyValue { ttype: 11, bytes })
    }
}

/// Decodes the single argument of a request body; `None` when it is malformed.
pub fn arg<T: thrift::protocol::TSerializable>(req: &Request) -> Option<T> {
    crate::idl::protocol::decode(&req.body, crate::idl::protocol::read_arg::<T>).ok()
}

/// Decodes an i64 argument (e.g. the context id of clear_scanner).
pub fn arg_i64(req: &Request) -> Option<i64> {
    crate::idl::protocol::decode(&req.body, |p| {
        crate::idl::protocol::read_arg_with(p, |p| p.read_i64())
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers nothing until released; counts the requests it was handed.
    struct Stalling {
        seen: AtomicUsize,
        release: tokio::sync::Notify,
    }

    impl Handler for Stalling {
        fn handle(self: Arc<Self>, _req: Request) -> BoxFuture<Option<Reply>> {
            self.seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                self.release.notified().await;
                Some(Reply::err("ERR_OK"))
            })
        }

        fn http(self: Arc<Self>, _req: crate::rpc::http::HttpRequest) -> BoxFuture<HttpReply> {
            Box::pin(async {
                HttpReply {
                    status: 404,
                    content_type: "text/plain",
                    body: String::new(),
                    location: None,
                }
            })
        }
    }

    async fn start(opts: ServerOptions) -> (SocketAddr, Arc<Stalling>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = Arc::new(Stalling {
            seen: AtomicUsize::new(0),
            release: tokio::sync::Notify::new(),
        });
        tokio::spawn(serve(listener, h.clone(), opts));
        (addr, h)
    }

    fn request(id: u64) -> Vec<u8> {
        frame::encode_rdsn_request_body(id, "RPC_TEST", 1, 0, 0, 1000, b"")
    }

    /// Past its in-flight budget a connection is not read: the handler sees exactly the
    /// budget, however many requests were sent, until replies free it.
    #[tokio::test]
    async fn a_connection_takes_no_more_than_its_budget_in_flight() {
        let (addr, h) = start(ServerOptions {
            max_in_flight: 8,
            ..ServerOptions::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut all = Vec::new();
        for id in 0..100 {
            all.extend_from_slice(&request(id));
        }
        s.write_all(&all).await.expect("send");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.seen.load(Ordering::SeqCst), 8);
        // Each released request frees one place for the next.
        for _ in 0..50 {
            h.release.notify_waiters();
            tokio::time::sleep(Duration::from_millis(20)).await;
            if h.seen.load(Ordering::SeqCst) == 100 {
                break;
            }
        }
        assert_eq!(h.seen.load(Ordering::SeqCst), 100);
    }

    /// A peer that trickles bytes of a request never completed is cut off.
    #[tokio::test]
    async fn an_incomplete_request_times_out() {
        let (addr, h) = start(ServerOptions {
            frame_timeout: Duration::from_millis(300),
            ..ServerOptions::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = request(1);
        let mut closed = false;
        for b in &req[..40] {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !closed {
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .expect("the server closes the connection");
            closed = matches!(n, Ok(0) | Err(_));
        }
        assert!(closed);
        assert_eq!(h.seen.load(Ordering::SeqCst), 0);
    }

    /// A connection that sends no request is closed after the idle timeout; one that was
    /// served stays open however long it idles.
    #[tokio::test]
    async fn only_a_connection_that_never_sent_a_request_is_closed_when_idle() {
        let (addr, h) = start(ServerOptions {
            idle_timeout: Some(Duration::from_millis(300)),
            ..ServerOptions::default()
        })
        .await;
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let mut used = TcpStream::connect(addr).await.expect("connect");
        used.write_all(&request(1)).await.expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.release.notify_waiters();
        let mut reply = vec![0u8; frame::RDSN_HEADER_LEN];
        used.read_exact(&mut reply).await.expect("the reply");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
            .await
            .expect("the server closes the silent connection");
        assert!(matches!(n, Ok(0) | Err(_)));
        // The served one is still open well past the idle timeout.
        let still_open =
            tokio::time::timeout(Duration::from_millis(800), used.read(&mut buf)).await;
        assert!(
            still_open.is_err(),
            "no EOF on the served connection: {still_open:?}"
        );
        used.write_all(&request(2)).await.expect("send again");
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.release.notify_waiters();
        used.read_exact(&mut reply).await.expect("the second reply");
    }
}

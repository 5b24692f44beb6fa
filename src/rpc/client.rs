//! The calling side for server-to-server RPCs (beacons, config sync): RDSN framing over one
//! lazily (re)connected TCP connection per peer, many calls in flight matched by request id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thrift::protocol::TSerializable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::frame::{self, Parsed, Protocol, RdsnReply, ReplyValue};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Connect(String),
    Timeout,
    ConnectionLost,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "connect failed: {e}"),
            CallError::Timeout => write!(f, "timed out"),
            CallError::ConnectionLost => write!(f, "connection lost"),
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<RdsnReply>>>>;

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    /// Cleared by the reader when the peer closes or the stream breaks.
    alive: Arc<AtomicBool>,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.tx.is_closed() && self.alive.load(Ordering::SeqCst)
    }
}

/// The struct result of a reply; `None` on a failed call, a non-OK dsn error or a bad body.
pub fn decode_reply<Resp: TSerializable>(reply: Result<RdsnReply, CallError>) -> Option<Resp> {
    match reply {
        Ok(r) if r.error == "ERR_OK" => {
            crate::idl::protocol::decode(&r.body, crate::idl::protocol::read_arg::<Resp>).ok()
        }
        _ => None,
    }
}

/// A client for one peer address.
pub struct RpcClient {
    addr: SocketAddr,
    self_address: u64,
    conn: tokio::sync::Mutex<Option<Conn>>,
    next_id: AtomicU64,
}

impl RpcClient {
    pub fn new(addr: SocketAddr, self_address: u64) -> RpcClient {
        RpcClient {
            addr,
            self_address,
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(&self) -> Result<Conn, CallError> {
        let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(self.addr))
            .await
            .map_err(|_| CallError::Connect("timeout".into()))?
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(async move {
            let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
            while let Some(b) = rx.recv().await {
                // Requests queued meanwhile go out with the same write.
                out.clear();
                out.extend_from_slice(&b);
                while out.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                if out.capacity() > 1 << 20 {
                    out = Vec::with_capacity(64 * 1024);
                }
            }
        });
        let p = pending.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let reader_alive = alive.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            'outer: loop {
                let mut pos = 0;
                loop {
                    match frame::parse(Protocol::Rdsn, &buf[pos..], 64 << 20) {
                        Ok(Parsed::Incomplete) => break,
                        Ok(Parsed::Reply(r, used)) => {
                            pos += used;
                            let waiter = p.lock().ok().and_then(|mut m| m.remove(&r.id));
                            if let Some(w) = waiter {
                                let _ = w.send(r);
                            }
                        }
                        Ok(Parsed::Frame(_, used)) => {
                            pos += used;
                        }
                        Err(_) => break 'outer,
                    }
                }
                buf.drain(..pos);
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            // Later calls must reconnect; dropping the senders wakes every waiter with
            // ConnectionLost.
            reader_alive.store(false, Ordering::SeqCst);
            if let Ok(mut m) = p.lock() {
                m.clear();
            }
        });
        Ok(Conn { tx, pending, alive })
    }

    /// Sends a one-way request (no reply is expected, e.g. RPC_CONFIG_PROPOSAL).
    pub async fn send_oneway(
        &self,
        name: &str,
        app_id: i32,
        partition_index: i32,
        arg: &ReplyValue,
    ) -> Result<(), CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode_rdsn_request(
            id,
            name,
            app_id,
            partition_index,
            self.self_address,
            5000,
            arg,
        );
        let mut guard = self.conn.lock().await;
        let alive = guard.as_ref().map(|c| c.usable()).unwrap_or(false);
        if !alive {
            *guard = Some(self.connect().await?);
        }
        let conn = guard.as_ref().ok_or(CallError::ConnectionLost)?;
        if conn.tx.send(bytes).is_err() {
            *guard = None;
            return Err(CallError::ConnectionLost);
        }
        Ok(())
    }

    /// Calls with a struct(-like) argument and decodes the struct(-like) result; `None` when
    /// the call fails, the dsn error is not ERR_OK, or the body does not decode.
    pub async fn call_struct<Req: TSerializable, Resp: TSerializable>(
        &self,
        name: &str,
        app_id: i32,
        partition_index: i32,
        req: &Req,
        timeout: Duration,
    ) -> Option<Resp> {
        let arg = ReplyValue {
            ttype: 12,
            bytes: crate::idl::protocol::encode_struct(req),
        };
        decode_reply(
            self.call(name, app_id, partition_index, &arg, timeout)
                .await,
        )
    }

    /// Sends one request and waits for its reply.
    pub async fn call(
        &self,
        name: &str,
        app_id: i32,
        partition_index: i32,
        arg: &ReplyValue,
        timeout: Duration,
    ) -> Result<RdsnReply, CallError> {
        let mut body = Vec::new();
        frame::wrap_field0(arg, &mut body);
        self.call_raw(name, app_id, partition_index, body, timeout)
            .await
    }

    /// Sends one request with a ready-made body and waits for its reply.
    pub async fn call_raw(
        &self,
        name: &str,
        app_id: i32,
        partition_index: i32,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<RdsnReply, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode_rdsn_request_body(
            id,
            name,
            app_id,
            partition_index,
            self.self_address,
            timeout.as_millis() as i32,
            &body,
        );
        let (wtx, wrx) = oneshot::channel();
        {
            let mut guard = self.conn.lock().await;
            let alive = guard.as_ref().map(|c| c.usable()).unwrap_or(false);
            if !alive {
                *guard = Some(self.connect().await?);
            }
            let conn = guard.as_ref().ok_or(CallError::ConnectionLost)?;
            if let Ok(mut m) = conn.pending.lock() {
                m.insert(id, wtx);
            }
            if conn.tx.send(bytes).is_err() {
                *guard = None;
                return Err(CallError::ConnectionLost);
            }
        }
        match tokio::time::timeout(timeout, wrx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => {
                *self.conn.lock().await = None;
                Err(CallError::ConnectionLost)
            }
            Err(_) => {
                if let Some(c) = self.conn.lock().await.as_ref() {
                    if let Ok(mut m) = c.pending.lock() {
                        m.remove(&id);
                    }
                }
                Err(CallError::Timeout)
            }
        }
    }
}

/// Calls meta RPC `rpc` on the metas `metas` (`host:port`, of this or another cluster) in turn,
/// until one answers with an error other than "ask another meta" (ERR_FORWARD_TO_OTHERS,
/// ERR_SERVICE_NOT_ACTIVE); `None` when none does.
pub async fn call_metas<Req: TSerializable, Resp: TSerializable>(
    metas: &[String],
    rpc: &str,
    req: &Req,
    timeout: Duration,
    err_of: impl Fn(&Resp) -> Option<crate::idl::dsn::ErrorCode>,
) -> Option<Resp> {
    use crate::idl::dsn::ErrorCode;
    use std::net::ToSocketAddrs;
    for hp in metas {
        let Some(a) = hp
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|x| x.is_ipv4()))
        else {
            continue;
        };
        let r: Option<Resp> = RpcClient::new(a, 0)
            .call_struct(rpc, 0, 0, req, timeout)
            .await;
        if let Some(r) = r {
            let e = err_of(&r);
            if e != Some(ErrorCode::FORWARD_TO_OTHERS) && e != Some(ErrorCode::SERVICE_NOT_ACTIVE) {
                return Some(r);
            }
        }
    }
    None
}

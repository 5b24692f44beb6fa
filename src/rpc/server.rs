//! The listening side: one TCP port per process; each connection is bound to THFT, RDSN or
//! HTTP by its first four bytes, requests are dispatched concurrently and replies written back
//! in completion order, matched by the client through their sequence ids.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use log::{info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

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

/// The role-specific request handler of a server.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; `None` means the request gets no reply at all.
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Option<Reply>>;
    /// Answers an HTTP GET of `path` (with query string).
    fn http(self: Arc<Self>, path: String) -> BoxFuture<HttpReply>;
}

/// Limits and identity of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_frame_bytes: usize,
    /// This server's rpc_address, put into RDSN reply headers.
    pub self_address: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_frame_bytes: 64 << 20,
            self_address: 0,
        }
    }
}

/// Accepts connections forever.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>, opts: ServerOptions) {
    let opts = Arc::new(opts);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let h = handler.clone();
                let o = opts.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, peer, h, o).await {
                        info!("connection from {peer} closed: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    opts: Arc<ServerOptions>,
) -> std::io::Result<()> {
    let mut first = [0u8; 4];
    stream.read_exact(&mut first).await?;
    let protocol = match frame::detect(&first) {
        Some(p) => p,
        None => {
            warn!("closing connection from {peer}: unknown protocol magic {first:02x?}");
            return Ok(());
        }
    };
    if protocol == Protocol::Http {
        return serve_http(stream, first, handler).await;
    }
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = first.to_vec();
    let mut chunk = vec![0u8; 64 * 1024];
    'conn: loop {
        loop {
            match frame::parse(protocol, &buf, opts.max_frame_bytes) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Frame(req, used)) => {
                    buf.drain(..used);
                    let h = handler.clone();
                    let tx = tx.clone();
                    let self_addr = opts.self_address;
                    tokio::spawn(async move {
                        let mut req = *req;
                        let body = std::mem::take(&mut req.body);
                        let header = req.clone();
                        req.body = body;
                        if let Some(reply) = h.handle(req).await {
                            let bytes = frame::encode_reply(
                                &header,
                                reply.error,
                                reply.value.as_ref(),
                                self_addr,
                            );
                            let _ = tx.send(bytes);
                        }
                    });
                }
                Ok(Parsed::Reply(_, used)) => {
                    // Replies are only expected on client connections; drop it.
                    buf.drain(..used);
                }
                Err(e) => {
                    warn!("closing connection from {peer}: {e}");
                    break 'conn;
                }
            }
        }
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

async fn serve_http<H: Handler>(
    mut stream: TcpStream,
    first: [u8; 4],
    handler: Arc<H>,
) -> std::io::Result<()> {
    let mut buf = first.to_vec();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let path = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let reply = handler.http(path).await;
    let reason = match reply.status {
        200 => "OK",
        307 => "Temporary Redirect",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let location = reply
        .location
        .as_deref()
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 {} {}\r\n{location}Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reason,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
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

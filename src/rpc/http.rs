//! HTTP on the RPC port, as upstream serves it: a connection whose first bytes are `GET ` or
//! `POST` is handed to `hyper` (HTTP/1.1, keep-alive) with those bytes replayed; each request
//! is parsed by upstream's rules (path segments joined without empty ones, path and query
//! %-decoded before splitting, a repeated query key refused) and passed to the role's
//! handler; replies carry upstream's `text/plain` unless a page says otherwise.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::server::{Handler, HttpReply};

/// Largest request body taken (the POST pages send small JSON documents).
const MAX_BODY: usize = 1 << 20;

/// One HTTP request, parsed.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The normalized path with a leading `/` (`/` for the root).
    pub path: String,
    /// The decoded query arguments, in the order given.
    pub args: Vec<(String, String)>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The value of query argument `k`.
    pub fn arg(&self, k: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The query string as upstream re-serializes it for a redirect (`k=v&...`).
    pub fn query_string(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A GET of `path_and_query` (tests and in-process callers).
    pub fn get(path_and_query: &str) -> Result<HttpRequest, String> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let (path, args) = parse_target(path, query)?;
        Ok(HttpRequest {
            method: "GET".into(),
            path,
            args,
            accept: None,
            body: Vec::new(),
        })
    }
}

/// %-decodes `s` with upstream's error texts ('+' stays a '+').
pub fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return Err("Encountered partial escape sequence at end of string".into());
            }
            let hex = &b[i + 1..i + 3];
            let v = std::str::from_utf8(hex)
                .ok()
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match v {
                Some(v) => out.push(v),
                None => {
                    return Err(format!(
                        "The characters {} do not form a hex value. Please escape it or pass a valid hex value",
                        String::from_utf8_lossy(hex)
                    ))
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Parses a request target: the normalized path and the query arguments, or the text of a
/// 400 reply.
pub fn parse_target(path: &str, query: &str) -> Result<(String, Vec<(String, String)>), String> {
    let bad = |e: String| format!("failed to parse request: ERR_INVALID_PARAMETERS: {e}");
    let path = decode(path).map_err(bad)?;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let path = format!("/{}", segs.join("/"));
    let query = decode(query).map_err(bad)?;
    let mut args: Vec<(String, String)> = Vec::new();
    for item in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        if args.iter().any(|(n, _)| n == k) {
            return Err(bad(format!("duplicate parameter: {k}")));
        }
        args.push((k.to_string(), v.to_string()));
    }
    Ok((path, args))
}

/// The 404 of a path no page answers (upstream's text).
pub fn not_found(path: &str) -> HttpReply {
    HttpReply {
        status: 404,
        content_type: "text/plain",
        body: format!("service not found for \"{}\"", path.trim_start_matches('/')),
        location: None,
    }
}

/// A TCP stream whose first bytes were already read (to detect the protocol): they are read
/// again first.
struct Replayed {
    head: Vec<u8>,
    pos: usize,
    stream: TcpStream,
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.head.len() {
            let n = (self.head.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.head[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn text_reply(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    build(HttpReply {
        status,
        content_type: "text/plain",
        body,
        location: None,
    })
}

fn build(r: HttpReply) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header("Content-Type", r.content_type);
    if let Some(l) = &r.location {
        b = b.header("Location", l.as_str());
    }
    b.body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

async fn serve_one<H: Handler>(
    handler: Arc<H>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    if method != "GET" && method != "POST" {
        return Ok(text_reply(400, format!("unsupported method {method}")));
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return Ok(text_reply(400, "request body too large".into())),
    };
    let (path, args) = match parse_target(&path, &query) {
        Ok(t) => t,
        Err(e) => return Ok(text_reply(400, e)),
    };
    let reply = handler
        .http(HttpRequest {
            method,
            path,
            args,
            accept,
            body,
        })
        .await;
    Ok(build(reply))
}

/// Serves HTTP/1.1 on `stream`, whose first bytes `head` were already read.
pub async fn serve<H: Handler>(stream: TcpStream, head: [u8; 4], handler: Arc<H>) {
    let io = TokioIo::new(Replayed {
        head: head.to_vec(),
        pos: 0,
        stream,
    });
    let svc = hyper::service::service_fn(move |req| serve_one(handler.clone(), req));
    // A client that sends its headers too slowly is dropped rather than held forever.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(60))
        .keep_alive(true)
        .serve_connection(io, svc)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_upstream() {
        let (p, a) = parse_target("//meta///app/", "name=temp&detail").expect("ok");
        assert_eq!(p, "/meta/app");
        assert_eq!(
            a,
            vec![
                ("name".to_string(), "temp".to_string()),
                ("detail".to_string(), String::new())
            ]
        );
        assert_eq!(parse_target("/", "").expect("ok").0, "/");
        let e = parse_target("/meta/app", "name=a&name=b").expect_err("dup");
        assert_eq!(
            e,
            "failed to parse request: ERR_INVALID_PARAMETERS: duplicate parameter: name"
        );
        assert_eq!(decode("a%20b+c").expect("ok"), "a b+c");
        assert!(decode("abc%2")
            .expect_err("partial")
            .contains("partial escape"));
        assert!(decode("%zz")
            .expect_err("hex")
            .contains("do not form a hex value"));
    }
}

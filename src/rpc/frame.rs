//! Message framing: parses THFT (v0/v1) and RDSN request frames out of a byte buffer and
//! encodes replies in the framing the request came in. Pure functions over bytes, so the
//! parser can be fuzzed without sockets.

use std::fmt;

use thrift::protocol::{TInputProtocol, TMessageType};

use crate::idl::protocol;
use crate::idl::request_meta::ThriftRequestMetaV1;

/// Which framing a connection speaks; chosen from its first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Thft,
    Rdsn,
    Http,
}

pub const THFT_MAGIC: &[u8; 4] = b"THFT";
pub const RDSN_MAGIC: &[u8; 4] = b"RDSN";
pub const RDSN_HEADER_LEN: usize = 192;
pub const THFT_V0_HEADER_LEN: usize = 48;
pub const THFT_V1_HEADER_LEN: usize = 16;
/// Largest RPC name (the C++ server keeps names in a 48-byte NUL-terminated buffer).
pub const MAX_RPC_NAME_LEN: usize = 47;

/// Picks the framing from the first bytes of a connection.
pub fn detect(first4: &[u8; 4]) -> Option<Protocol> {
    match first4 {
        b"THFT" => Some(Protocol::Thft),
        b"RDSN" => Some(Protocol::Rdsn),
        b"GET " | b"POST" => Some(Protocol::Http),
        _ => None,
    }
}

/// Why a frame was refused; the connection is closed on any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    BadMagic,
    BadHeaderVersion(u32),
    BadHeaderLength(u32),
    TooLarge(u64),
    BadMessage(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic => write!(f, "bad frame magic"),
            FrameError::BadHeaderVersion(v) => write!(f, "unknown header version {v}"),
            FrameError::BadHeaderLength(l) => write!(f, "bad header length {l}"),
            FrameError::TooLarge(l) => write!(f, "frame of {l} bytes exceeds the limit"),
            FrameError::BadMessage(m) => write!(f, "malformed message: {m}"),
        }
    }
}

/// Header fields echoed back in an RDSN reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdsnEcho {
    pub trace_id: u64,
    pub context: u64,
    pub timeout_ms: i32,
    pub thread_hash: i32,
}

/// One decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub protocol: Protocol,
    /// The task code name, e.g. `RPC_RRDB_RRDB_GET`.
    pub name: String,
    /// THFT seqid (as i32 bits) or RDSN id.
    pub seqid: u64,
    pub app_id: i32,
    pub partition_index: i32,
    pub client_timeout_ms: i32,
    pub partition_hash: u64,
    pub is_backup_request: bool,
    /// RDSN: the requester's rpc_address (0 for THFT).
    pub from_address: u64,
    pub rdsn: Option<RdsnEcho>,
    /// A struct whose first field is the argument (THFT args struct or RDSN wrapper).
    pub body: Vec<u8>,
}

/// Outcome of trying to parse one frame from the front of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// Need more bytes; the hint is the total frame length if known.
    Incomplete,
    Frame(Box<Request>, usize),
    /// A response (RDSN context bit0 clear) rather than a request: (id, error name, body).
    Reply(RdsnReply, usize),
}

/// A reply received on an RDSN connection (server-to-server calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsnReply {
    pub id: u64,
    pub name: String,
    pub error: String,
    pub body: Vec<u8>,
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// Reads a NUL-terminated name from a fixed-size field.
fn c_name(field: &[u8]) -> Result<String, FrameError> {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let s = std::str::from_utf8(&field[..end]).map_err(|_| FrameError::BadMessage("name"))?;
    Ok(s.to_string())
}

/// Parses one frame of the given protocol from the front of `buf`.
pub fn parse(protocol: Protocol, buf: &[u8], max_frame: usize) -> Result<Parsed, FrameError> {
    match protocol {
        Protocol::Thft => parse_thft(buf, max_frame),
        Protocol::Rdsn => parse_rdsn(buf, max_frame),
        Protocol::Http => Err(FrameError::BadMagic),
    }
}

fn parse_thft(buf: &[u8], max_frame: usize) -> Result<Parsed, FrameError> {
    if buf.len() < 4 {
        return Ok(Parsed::Incomplete);
    }
    if &buf[..4] != THFT_MAGIC {
        return Err(FrameError::BadMagic);
    }
    if buf.len() < 12 {
        return Ok(Parsed::Incomplete);
    }
    let version = be32(buf, 4);
    match version {
        0 => {
            let hdr_len = be32(buf, 8);
            if hdr_len as usize != THFT_V0_HEADER_LEN {
                return Err(FrameError::BadHeaderLength(hdr_len));
            }
            if buf.len() < THFT_V0_HEADER_LEN {
                return Ok(Parsed::Incomplete);
            }
            let body_len = be32(buf, 16) as u64;
            let total = THFT_V0_HEADER_LEN as u64 + body_len;
            if total > max_frame as u64 {
                return Err(FrameError::TooLarge(total));
            }
            let total = total as usize;
            if buf.len() < total {
                return Ok(Parsed::Incomplete);
            }
            let app_id = be32(buf, 24) as i32;
            let pidx = be32(buf, 28) as i32;
            let timeout = be32(buf, 32) as i32;
            let phash = be64(buf, 40);
            let (name, seqid, body) = thrift_message(&buf[THFT_V0_HEADER_LEN..total])?;
            Ok(Parsed::Frame(
                Box::new(Request {
                    protocol: Protocol::Thft,
                    name,
                    seqid: seqid as u32 as u64,
                    app_id,
                    partition_index: pidx,
                    client_timeout_ms: timeout,
                    partition_hash: phash,
                    is_backup_request: false,
                    from_address: 0,
                    rdsn: None,
                    body: body.to_vec(),
                }),
                total,
            ))
        }
        1 => {
            if buf.len() < THFT_V1_HEADER_LEN {
                return Ok(Parsed::Incomplete);
            }
            let meta_len = be32(buf, 8) as u64;
            let body_len = be32(buf, 12) as u64;
            let total = THFT_V1_HEADER_LEN as u64 + meta_len + body_len;
            if total > max_frame as u64 {
                return Err(FrameError::TooLarge(total));
            }
            let total = total as usize;
            if buf.len() < total {
                return Ok(Parsed::Incomplete);
            }
            let meta_end = THFT_V1_HEADER_LEN + meta_len as usize;
            let meta = parse_request_meta(&buf[THFT_V1_HEADER_LEN..meta_end])?;
            let (name, seqid, body) = thrift_message(&buf[meta_end..total])?;
            Ok(Parsed::Frame(
                Box::new(Request {
                    protocol: Protocol::Thft,
                    name,
                    seqid: seqid as u32 as u64,
                    app_id: meta.app_id.unwrap_or(0),
                    partition_index: meta.partition_index.unwrap_or(0),
                    client_timeout_ms: meta.client_timeout.unwrap_or(0),
                    partition_hash: meta.client_partition_hash.unwrap_or(0) as u64,
                    is_backup_request: meta.is_backup_request.unwrap_or(false),
                    from_address: 0,
                    rdsn: None,
                    body: body.to_vec(),
                }),
                total,
            ))
        }
        v => Err(FrameError::BadHeaderVersion(v)),
    }
}

/// Decodes the v1 `thrift_request_meta_v1` struct (every field optional).
fn parse_request_meta(b: &[u8]) -> Result<ThriftRequestMetaV1, FrameError> {
    protocol::decode_struct(b).map_err(|_| FrameError::BadMessage("request meta"))
}

/// Parses a thrift message begin (strict or legacy); returns (name, seqid, rest).
fn thrift_message(b: &[u8]) -> Result<(String, i32, &[u8]), FrameError> {
    let mut p = protocol::SliceInputProtocol::new(b);
    let m = p
        .read_message_begin()
        .map_err(|_| FrameError::BadMessage("message begin"))?;
    if m.name.len() > MAX_RPC_NAME_LEN {
        return Err(FrameError::BadMessage("rpc name too long"));
    }
    if m.message_type != TMessageType::Call && m.message_type != TMessageType::OneWay {
        return Err(FrameError::BadMessage("message type is not CALL/ONEWAY"));
    }
    let pos = p.position();
    Ok((m.name, m.sequence_number, &b[pos..]))
}

fn parse_rdsn(buf: &[u8], max_frame: usize) -> Result<Parsed, FrameError> {
    if buf.len() < 12 {
        return Ok(Parsed::Incomplete);
    }
    if &buf[..4] != RDSN_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = le32(buf, 4);
    if version != 0 {
        return Err(FrameError::BadHeaderVersion(version));
    }
    let hdr_len = le32(buf, 8);
    if hdr_len as usize != RDSN_HEADER_LEN {
        return Err(FrameError::BadHeaderLength(hdr_len));
    }
    if buf.len() < RDSN_HEADER_LEN {
        return Ok(Parsed::Incomplete);
    }
    let body_len = le32(buf, 16) as u64;
    let total = RDSN_HEADER_LEN as u64 + body_len;
    if total > max_frame as u64 {
        return Err(FrameError::TooLarge(total));
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let id = le64(buf, 24);
    let trace_id = le64(buf, 32);
    let name = c_name(&buf[40..88])?;
    let app_id = le32(buf, 96) as i32;
    let pidx = le32(buf, 100) as i32;
    let context = le64(buf, 104);
    let from_address = le64(buf, 112);
    let timeout_ms = le32(buf, 120) as i32;
    let thread_hash = le32(buf, 124) as i32;
    let partition_hash = le64(buf, 128);
    let body = buf[RDSN_HEADER_LEN..total].to_vec();
    if context & 1 == 0 {
        let error = c_name(&buf[136..184])?;
        return Ok(Parsed::Reply(
            RdsnReply {
                id,
                name,
                error,
                body,
            },
            total,
        ));
    }
    Ok(Parsed::Frame(
        Box::new(Request {
            protocol: Protocol::Rdsn,
            name,
            seqid: id,
            app_id,
            partition_index: pidx,
            client_timeout_ms: timeout_ms,
            partition_hash,
            is_backup_request: context & (1 << 11) != 0,
            from_address,
            rdsn: Some(RdsnEcho {
                trace_id,
                context,
                timeout_ms,
                thread_hash,
            }),
            body,
        }),
        total,
    ))
}

/// The encoded result value of a reply: its thrift type byte and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyValue {
    pub ttype: u8,
    pub bytes: Vec<u8>,
}

fn push_thrift_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Wraps a value as a one-field struct (field id 0) followed by STOP.
pub fn wrap_field0(v: &ReplyValue, out: &mut Vec<u8>) {
    out.push(v.ttype);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&v.bytes);
    out.push(0);
}

/// Encodes a reply to `req` with the dsn error name and, when present, the result value.
pub fn encode_reply(
    req: &Request,
    error: &str,
    value: Option<&ReplyValue>,
    self_address: u64,
) -> Vec<u8> {
    let ack = format!("{}_ACK", req.name);
    match req.protocol {
        Protocol::Rdsn => {
            let mut body = Vec::new();
            if let Some(v) = value {
                wrap_field0(v, &mut body);
            }
            let echo = req.rdsn.clone().unwrap_or_default();
            let mut out = rdsn_header(&RdsnHeader {
                body_len: body.len() as u32,
                id: req.seqid,
                trace_id: echo.trace_id,
                name: &ack,
                app_id: req.app_id,
                partition_index: req.partition_index,
                context: echo.context & !1,
                from_address: self_address,
                timeout_ms: echo.timeout_ms,
                thread_hash: echo.thread_hash,
                partition_hash: req.partition_hash,
                error: Some(error),
            });
            out.extend_from_slice(&body);
            out
        }
        _ => {
            let mut out = Vec::with_capacity(64 + value.map(|v| v.bytes.len()).unwrap_or(0));
            out.extend_from_slice(&[0, 0, 0, 0]);
            push_thrift_string(&mut out, error);
            out.extend_from_slice(&0x8001_0002u32.to_be_bytes());
            push_thrift_string(&mut out, &ack);
            out.extend_from_slice(&(req.seqid as u32).to_be_bytes());
            if let Some(v) = value {
                wrap_field0(v, &mut out);
            }
            let len = out.len() as u32;
            out[..4].copy_from_slice(&len.to_be_bytes());
            out
        }
    }
}

/// Fields of an RDSN header to write.
pub struct RdsnHeader<'a> {
    pub body_len: u32,
    pub id: u64,
    pub trace_id: u64,
    pub name: &'a str,
    pub app_id: i32,
    pub partition_index: i32,
    pub context: u64,
    pub from_address: u64,
    pub timeout_ms: i32,
    pub thread_hash: i32,
    pub partition_hash: u64,
    /// Set on replies.
    pub error: Option<&'a str>,
}

/// Encodes a 192-byte RDSN header.
pub fn rdsn_header(h: &RdsnHeader<'_>) -> Vec<u8> {
    let mut out = vec![0u8; RDSN_HEADER_LEN];
    out[0..4].copy_from_slice(RDSN_MAGIC);
    out[8..12].copy_from_slice(&(RDSN_HEADER_LEN as u32).to_le_bytes());
    out[16..20].copy_from_slice(&h.body_len.to_le_bytes());
    out[24..32].copy_from_slice(&h.id.to_le_bytes());
    out[32..40].copy_from_slice(&h.trace_id.to_le_bytes());
    let n = h.name.len().min(MAX_RPC_NAME_LEN);
    out[40..40 + n].copy_from_slice(&h.name.as_bytes()[..n]);
    out[96..100].copy_from_slice(&h.app_id.to_le_bytes());
    out[100..104].copy_from_slice(&h.partition_index.to_le_bytes());
    out[104..112].copy_from_slice(&h.context.to_le_bytes());
    out[112..120].copy_from_slice(&h.from_address.to_le_bytes());
    out[120..124].copy_from_slice(&h.timeout_ms.to_le_bytes());
    out[124..128].copy_from_slice(&h.thread_hash.to_le_bytes());
    out[128..136].copy_from_slice(&h.partition_hash.to_le_bytes());
    if let Some(e) = h.error {
        let n = e.len().min(47);
        out[136..136 + n].copy_from_slice(&e.as_bytes()[..n]);
        let code = crate::rpc::error::error_ordinal(e).unwrap_or(1);
        out[184..188].copy_from_slice(&code.to_le_bytes());
    }
    out
}

/// Encodes an RDSN request (server-to-server calls): header + wrapped argument.
pub fn encode_rdsn_request(
    id: u64,
    name: &str,
    app_id: i32,
    partition_index: i32,
    from_address: u64,
    timeout_ms: i32,
    arg: &ReplyValue,
) -> Vec<u8> {
    let mut body = Vec::new();
    wrap_field0(arg, &mut body);
    encode_rdsn_request_body(
        id,
        name,
        app_id,
        partition_index,
        from_address,
        timeout_ms,
        &body,
    )
}

/// Encodes an RDSN request whose body is already laid out (e.g. RPC_PREPARE's sequence).
pub fn encode_rdsn_request_body(
    id: u64,
    name: &str,
    app_id: i32,
    partition_index: i32,
    from_address: u64,
    timeout_ms: i32,
    body: &[u8],
) -> Vec<u8> {
    let mut out = rdsn_header(&RdsnHeader {
        body_len: body.len() as u32,
        id,
        trace_id: id,
        name,
        app_id,
        partition_index,
        // is_request | thrift binary format | forward supported
        context: 0x441,
        from_address,
        timeout_ms,
        thread_hash: 0,
        partition_hash: 0,
        error: None,
    });
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn get_body() -> Vec<u8> {
        let mut b = hex("80 01 00 01 00 00 00 11");
        b.extend_from_slice(b"RPC_RRDB_RRDB_GET");
        b.extend_from_slice(&hex("00 00 00 00 0c 00 01 00 00 00 0b 00 07"));
        b.extend_from_slice(b"hashkeysk");
        b.push(0);
        b
    }

    #[test]
    fn thft_v1_vector() {
        // The Java v1 GET of the spec's worked example.
        let mut f = hex("54 48 46 54 00 00 00 01 00 00 00 25 00 00 00 30");
        f.extend_from_slice(&hex(
            "08 00 01 00 00 00 02 08 00 02 00 00 00 02 08 00 03 00 00 03 e8
             0a 00 04 12 99 d9 b0 66 72 77 3a 02 00 05 00 00",
        ));
        let body = get_body();
        assert_eq!(body.len(), 48);
        f.extend_from_slice(&body);
        match parse(Protocol::Thft, &f, 1 << 20).unwrap() {
            Parsed::Frame(r, n) => {
                assert_eq!(n, f.len());
                assert_eq!(r.name, "RPC_RRDB_RRDB_GET");
                assert_eq!((r.app_id, r.partition_index), (2, 2));
                assert_eq!(r.client_timeout_ms, 1000);
                assert_eq!(r.partition_hash, 0x1299_D9B0_6672_773A);
                assert!(!r.is_backup_request);
                assert_eq!(r.seqid, 0);
                assert_eq!(r.body[..3], [0x0c, 0x00, 0x01]);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Every strict prefix is incomplete, never an error.
        for cut in 0..f.len() {
            assert!(matches!(
                parse(Protocol::Thft, &f[..cut], 1 << 20),
                Ok(Parsed::Incomplete)
            ));
        }
    }

    #[test]
    fn thft_v0_vector_and_reply() {
        let mut f = hex(
            "54 48 46 54 00 00 00 00 00 00 00 30 00 00 00 00 00 00 00 30 00 00 00 00
             00 00 00 02 00 00 00 02 00 00 03 e8 00 00 3d e0 12 99 d9 b0 66 72 77 3a",
        );
        f.extend_from_slice(&get_body());
        let r = match parse(Protocol::Thft, &f, 1 << 20).unwrap() {
            Parsed::Frame(r, _) => r,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(r.partition_hash, 0x1299_D9B0_6672_773A);
        let err = encode_reply(&r, "ERR_OBJECT_NOT_FOUND", None, 0);
        let mut want = hex("00 00 00 3d 00 00 00 14");
        want.extend_from_slice(b"ERR_OBJECT_NOT_FOUND");
        want.extend_from_slice(&hex("80 01 00 02 00 00 00 15"));
        want.extend_from_slice(b"RPC_RRDB_RRDB_GET_ACK");
        want.extend_from_slice(&hex("00 00 00 00"));
        assert_eq!(err, want);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            parse(Protocol::Thft, b"THFT\x00\x00\x00\x02\x00\x00\x00\x00", 100).unwrap_err(),
            FrameError::BadHeaderVersion(2)
        );
        assert_eq!(
            parse(Protocol::Thft, b"THFT\x00\x00\x00\x00\x00\x00\x00\x31", 100).unwrap_err(),
            FrameError::BadHeaderLength(49)
        );
        assert_eq!(
            parse(Protocol::Thft, b"XXXX\x00\x00\x00\x00", 100).unwrap_err(),
            FrameError::BadMagic
        );
        let mut big = hex("54 48 46 54 00 00 00 01 00 00 00 00 7f ff ff ff");
        big.extend_from_slice(&[0; 8]);
        assert!(matches!(
            parse(Protocol::Thft, &big, 1 << 20),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn legacy_message_begin() {
        let mut b = Vec::new();
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"ABC");
        b.push(1);
        b.extend_from_slice(&7i32.to_be_bytes());
        b.push(0);
        let (name, seq, rest) = thrift_message(&b).unwrap();
        assert_eq!((name.as_str(), seq, rest), ("ABC", 7, &[0u8][..]));
        // A REPLY message type is refused.
        b[7] = 2;
        assert!(thrift_message(&b).is_err());
    }

    #[test]
    fn rdsn_round_trip() {
        let arg = ReplyValue {
            ttype: 11,
            bytes: vec![0, 0, 0, 2, b'h', b'i'],
        };
        let f = encode_rdsn_request(
            9,
            "RPC_CLI_CLI_CALL",
            0,
            0,
            0x7F00_0001_8729_0001,
            5000,
            &arg,
        );
        let r = match parse(Protocol::Rdsn, &f, 1 << 20).unwrap() {
            Parsed::Frame(r, n) => {
                assert_eq!(n, f.len());
                r
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(r.name, "RPC_CLI_CLI_CALL");
        assert_eq!(r.seqid, 9);
        assert_eq!(r.from_address, 0x7F00_0001_8729_0001);
        let reply = encode_reply(&r, "ERR_OK", Some(&arg), 1);
        match parse(Protocol::Rdsn, &reply, 1 << 20).unwrap() {
            Parsed::Reply(rep, _) => {
                assert_eq!(rep.id, 9);
                assert_eq!(rep.error, "ERR_OK");
                assert_eq!(rep.name, "RPC_CLI_CLI_CALL_ACK");
                assert_eq!(rep.body[0], 11);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_frames() -> Vec<(Protocol, Vec<u8>)> {
        let mut v0 = b"THFT\x00\x00\x00\x00\x00\x00\x00\x30\x00\x00\x00\x00".to_vec();
        let mut body = vec![
            0x80, 0x01, 0x00, 0x01, 0, 0, 0, 3, b'R', b'P', b'C', 0, 0, 0, 5,
        ];
        body.extend_from_slice(&[0x0c, 0x00, 0x01, 0, 0, 0, 2, b'h', b'k', 0x00]);
        v0.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v0.extend_from_slice(&[0; 28]);
        v0.extend_from_slice(&body);
        let rdsn = encode_rdsn_request(
            1,
            "RPC_X",
            1,
            2,
            0,
            100,
            &ReplyValue {
                ttype: 10,
                bytes: vec![0; 8],
            },
        );
        vec![(Protocol::Thft, v0), (Protocol::Rdsn, rdsn)]
    }

    fn check(p: Protocol, buf: &[u8]) {
        match parse(p, buf, 1 << 16) {
            Ok(Parsed::Frame(_, n)) | Ok(Parsed::Reply(_, n)) => assert!(n <= buf.len() && n > 0),
            Ok(Parsed::Incomplete) | Err(_) => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check(Protocol::Thft, &bytes);
            check(Protocol::Rdsn, &bytes);
            let mut t = b"THFT".to_vec();
            t.extend_from_slice(&bytes);
            check(Protocol::Thft, &t);
            let mut r = b"RDSN".to_vec();
            r.extend_from_slice(&bytes);
            check(Protocol::Rdsn, &r);
        }

        #[test]
        fn mutated_frames_never_panic(
            which in 0usize..2,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let (p, mut f) = valid_frames().swap_remove(which);
            let n = f.len();
            for (pos, b) in flips {
                f[pos % n] = b;
            }
            check(p, &f);
            check(p, &f[..cut % (n + 1)]);
        }
    }
}

//! Shared helpers of the end-to-end tests: starting `pegasus_server` processes in their own
//! directories and talking to them over RDSN and THFT v1.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pegasus_rs::idl::dsn::{Blob, ErrorCode};
use pegasus_rs::idl::dsn_layer2::{QueryCfgRequest, QueryCfgResponse};
use pegasus_rs::idl::protocol;
use pegasus_rs::rpc::frame::{self, Parsed, Protocol, ReplyValue};
use thrift::protocol::{TInputProtocol, TSerializable};

pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(dir: &Path, meta_port: u16, replica_port: u16) -> PathBuf {
    write_config_with(dir, meta_port, replica_port, 1, "")
}

/// A config for one instance: the meta on `meta_port`, this replica server on
/// `replica_port`, table `temp` (4 partitions, `replicas` each), extra `[replication]` lines.
pub fn write_config_with(
    dir: &Path,
    meta_port: u16,
    replica_port: u16,
    replicas: i32,
    extra: &str,
) -> PathBuf {
    let cfg = format!(
        "[apps.meta]\nports = {meta_port}\n[apps.replica]\nports = {replica_port}\n[core]\ndata_dir = ./data\n\
         [meta_server]\nserver_list = 127.0.0.1:{meta_port}\ncluster_root = /pegasus/test\n\
         meta_state_service_type = meta_state_service_simple\nmin_live_node_count_for_unfreeze = 1\n\
         [meta_server.apps.temp]\napp_name = temp\napp_type = pegasus\npartition_count = 4\nmax_replica_count = {replicas}\n\
         [replication]\ncluster_name = test\nmutation_2pc_min_replica_count = 1\nconfig_sync_interval_ms = 300\nfd_beacon_interval_seconds = 1\n\
         fd_check_interval_seconds = 1\nfd_lease_seconds = 4\nfd_grace_seconds = 5\n{extra}\n"
    );
    let p = dir.join("config.ini");
    std::fs::write(&p, cfg).unwrap();
    p
}

pub fn start(dir: &Path, role: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join(format!("{role}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pegasus_server"))
        .arg("config.ini")
        .arg("-app_list")
        .arg(role)
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Server { child }
}

/// A blocking connection speaking one framing.
pub struct Conn {
    s: TcpStream,
    proto: Protocol,
    seq: u64,
}

impl Conn {
    pub fn connect(port: u16, proto: Protocol) -> Conn {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    return Conn { s, proto, seq: 0 };
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        }
    }

    /// Sends one request; returns (error name, result body starting at the field-0 header).
    pub fn call<T: TSerializable>(
        &mut self,
        name: &str,
        app_id: i32,
        pidx: i32,
        arg: &T,
    ) -> (String, Vec<u8>) {
        self.send(name, app_id, pidx, arg, false)
    }

    /// Sends a read flagged as a backup request (RDSN context bit 11), which secondaries
    /// serve.
    pub fn call_backup<T: TSerializable>(
        &mut self,
        name: &str,
        app_id: i32,
        pidx: i32,
        arg: &T,
    ) -> (String, Vec<u8>) {
        assert_eq!(
            self.proto,
            Protocol::Rdsn,
            "backup requests are sent over RDSN here"
        );
        self.send(name, app_id, pidx, arg, true)
    }

    fn send<T: TSerializable>(
        &mut self,
        name: &str,
        app_id: i32,
        pidx: i32,
        arg: &T,
        backup: bool,
    ) -> (String, Vec<u8>) {
        self.seq += 1;
        let value = ReplyValue {
            ttype: 12,
            bytes: protocol::encode_struct(arg),
        };
        let mut bytes = match self.proto {
            Protocol::Rdsn => {
                frame::encode_rdsn_request(self.seq, name, app_id, pidx, 0, 5000, &value)
            }
            _ => thft_v1(name, self.seq as i32, app_id, pidx, &value),
        };
        if backup {
            // Context bit 11 lives in byte 105 of the RDSN header.
            bytes[105] |= 0x08;
        }
        self.s.write_all(&bytes).unwrap();
        self.read_reply()
    }

    /// Sends an already framed request (its seqid must be the next one) and reads the reply.
    pub fn call_framed(&mut self, bytes: &[u8]) -> (String, Vec<u8>) {
        self.seq += 1;
        self.s.write_all(bytes).unwrap();
        self.read_reply()
    }

    pub fn next_seq(&self) -> i32 {
        self.seq as i32 + 1
    }

    pub fn read_reply(&mut self) -> (String, Vec<u8>) {
        match self.proto {
            Protocol::Rdsn => {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    if let Parsed::Reply(r, _) =
                        frame::parse(Protocol::Rdsn, &buf, 1 << 26).unwrap()
                    {
                        assert_eq!(r.id, self.seq);
                        return (r.error, r.body);
                    }
                    let n = self.s.read(&mut chunk).unwrap();
                    assert!(n > 0, "connection closed");
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
            _ => {
                let mut len = [0u8; 4];
                self.s.read_exact(&mut len).unwrap();
                let total = u32::from_be_bytes(len) as usize;
                let mut rest = vec![0u8; total - 4];
                self.s.read_exact(&mut rest).unwrap();
                let mut p = protocol::SliceInputProtocol::new(&rest);
                let err = p.read_string().unwrap();
                let m = p.read_message_begin().unwrap();
                assert_eq!(m.message_type, thrift::protocol::TMessageType::Reply);
                assert_eq!(m.sequence_number, self.seq as i32);
                (err, rest[p.position()..].to_vec())
            }
        }
    }
}

/// A Thrift CALL message whose args struct holds `arg` as field 1 (the body of a THFT frame).
fn thrift_call(name: &str, seq: i32, arg: &ReplyValue) -> Vec<u8> {
    let mut body = protocol::encode_message_begin(name, thrift::protocol::TMessageType::Call, seq);
    body.push(arg.ttype);
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&arg.bytes);
    body.push(0);
    body
}

/// Encodes a THFT v1 request as the Java client does: 16-byte header, request meta, body.
pub fn thft_v1(name: &str, seq: i32, app_id: i32, pidx: i32, arg: &ReplyValue) -> Vec<u8> {
    let meta = pegasus_rs::idl::request_meta::ThriftRequestMetaV1 {
        app_id: Some(app_id),
        partition_index: Some(pidx),
        client_timeout: Some(1000),
        client_partition_hash: Some(0),
        is_backup_request: Some(false),
    };
    let meta = protocol::encode_struct(&meta);
    let body = thrift_call(name, seq, arg);
    let mut out = b"THFT".to_vec();
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&body);
    out
}

/// Encodes a THFT v0 request as the Go and Python clients do: a 48-byte header (no CRCs)
/// carrying `timeout_ms`, then the body.
pub fn thft_v0(
    name: &str,
    seq: i32,
    app_id: i32,
    pidx: i32,
    timeout_ms: i32,
    arg: &ReplyValue,
) -> Vec<u8> {
    let body = thrift_call(name, seq, arg);
    let mut out = b"THFT".to_vec();
    for v in [
        0i32,
        48,
        0,
        body.len() as i32,
        0,
        app_id,
        pidx,
        timeout_ms,
        0,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn result<T: TSerializable>(body: &[u8]) -> T {
    protocol::decode(body, protocol::read_arg).expect("decodable result")
}

pub fn query(meta: &mut Conn, table: &str) -> QueryCfgResponse {
    let (e, b) = meta.call(
        "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
        0,
        0,
        &QueryCfgRequest {
            app_name: Some(table.into()),
            partition_indices: Some(vec![]),
        },
    );
    assert_eq!(e, "ERR_OK");
    result(&b)
}

pub fn wait_served(meta: &mut Conn, table: &str) -> QueryCfgResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = query(meta, table);
        let ok = r.err == Some(ErrorCode::OK)
            && r.partitions.as_ref().is_some_and(|p| {
                !p.is_empty() && p.iter().all(|c| c.primary.is_some_and(|a| !a.is_invalid()))
            });
        if ok {
            // Give the replica one config-sync round to open the partitions.
            std::thread::sleep(Duration::from_millis(800));
            return r;
        }
        assert!(Instant::now() < deadline, "table {table} not served: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn key(hk: &[u8], sk: &[u8]) -> Blob {
    Blob(pegasus_rs::base::key_schema::encode(hk, sk).unwrap())
}

pub fn pidx_of(hk: &[u8], count: i32) -> i32 {
    (pegasus_rs::base::key_schema::hash(hk, b"") % count as u64) as i32
}

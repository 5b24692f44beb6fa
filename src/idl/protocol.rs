// Thrift binary protocol helpers for untrusted input: a slice-backed input
// protocol that never panics and never trusts declared sizes, plus small
// encode/decode helpers and the one-field "args"/"result" wrapper structs used
// by THFT and RDSN bodies.

use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier,
    TMessageIdentifier, TMessageType, TOutputProtocol, TSerializable, TSetIdentifier,
    TStructIdentifier, TType,
};
use thrift::{ProtocolError, ProtocolErrorKind};

/// Maximum nesting depth accepted by `skip`.
pub const MAX_SKIP_DEPTH: i8 = 64;

fn proto_err(kind: ProtocolErrorKind, msg: impl Into<String>) -> thrift::Error {
    thrift::Error::Protocol(ProtocolError::new(kind, msg))
}

fn eof_err() -> thrift::Error {
    proto_err(
        ProtocolErrorKind::InvalidData,
        "unexpected end of thrift data",
    )
}

/// Binary wire byte -> thrift type.
fn ttype_from_u8(b: u8) -> thrift::Result<TType> {
    Ok(match b {
        0x00 => TType::Stop,
        0x01 => TType::Void,
        0x02 => TType::Bool,
        0x03 => TType::I08,
        0x04 => TType::Double,
        0x06 => TType::I16,
        0x08 => TType::I32,
        0x0A => TType::I64,
        0x0B => TType::String,
        0x0C => TType::Struct,
        0x0D => TType::Map,
        0x0E => TType::Set,
        0x0F => TType::List,
        0x10 => TType::Utf8,
        0x11 => TType::Utf16,
        other => {
            return Err(proto_err(
                ProtocolErrorKind::InvalidData,
                format!("unknown thrift type byte {other:#04x}"),
            ))
        }
    })
}

/// Smallest number of encoded bytes one element of type `t` can occupy; `None`
/// for types that cannot appear as container elements.
fn min_encoded_size(t: TType) -> Option<usize> {
    match t {
        TType::Bool | TType::I08 | TType::Struct => Some(1),
        TType::I16 => Some(2),
        TType::I32 | TType::String | TType::Utf7 | TType::Utf8 | TType::Utf16 => Some(4),
        TType::I64 | TType::Double => Some(8),
        TType::Set | TType::List => Some(5),
        TType::Map => Some(6),
        TType::Stop | TType::Void => None,
    }
}

/// Thrift binary input protocol over a byte slice, hardened for hostile input:
/// every length and container size is checked against the remaining bytes,
/// strings must be UTF-8, and `skip` is depth-limited. Both the strict
/// (versioned) and the legacy non-strict message header are accepted.
pub struct SliceInputProtocol<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceInputProtocol<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        SliceInputProtocol { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unconsumed tail of the input.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> thrift::Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(eof_err());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> thrift::Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn read_ttype(&mut self) -> thrift::Result<TType> {
        let b = self.read_byte()?;
        ttype_from_u8(b)
    }

    /// Validates a declared length of raw bytes against the input.
    fn checked_len(&self, len: i32) -> thrift::Result<usize> {
        if len < 0 {
            return Err(proto_err(
                ProtocolErrorKind::NegativeSize,
                format!("negative length {len}"),
            ));
        }
        let len = len as usize;
        if len > self.remaining() {
            return Err(proto_err(
                ProtocolErrorKind::SizeLimit,
                format!("length {len} exceeds remaining {} bytes", self.remaining()),
            ));
        }
        Ok(len)
    }

    /// Validates a declared container size given its per-entry element types.
    fn check_container(&self, size: i32, elems: &[TType]) -> thrift::Result<()> {
        if size < 0 {
            return Err(proto_err(
                ProtocolErrorKind::NegativeSize,
                format!("negative container size {size}"),
            ));
        }
        if size == 0 {
            return Ok(());
        }
        let mut per_entry = 0usize;
        for t in elems {
            match min_encoded_size(*t) {
                Some(n) => per_entry += n,
                None => {
                    return Err(proto_err(
                        ProtocolErrorKind::InvalidData,
                        format!("invalid container element type {t:?}"),
                    ))
                }
            }
        }
        let need = (size as usize).saturating_mul(per_entry);
        if need > self.remaining() {
            return Err(proto_err(
                ProtocolErrorKind::SizeLimit,
                format!(
                    "container of {size} entries cannot fit in {} bytes",
                    self.remaining()
                ),
            ));
        }
        Ok(())
    }
}

impl TInputProtocol for SliceInputProtocol<'_> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        let first = self.read_i32()?;
        if first < 0 {
            let version = (first as u32) & 0xffff_0000;
            if version != 0x8001_0000 {
                return Err(proto_err(
                    ProtocolErrorKind::BadVersion,
                    format!("bad thrift message version {version:#010x}"),
                ));
            }
            let message_type = TMessageType::try_from((first & 0xff) as u8)?;
            let name = self.read_string()?;
            let seq = self.read_i32()?;
            Ok(TMessageIdentifier::new(name, message_type, seq))
        } else {
            let len = self.checked_len(first)?;
            let name = String::from_utf8(self.take(len)?.to_vec())
                .map_err(|_| proto_err(ProtocolErrorKind::InvalidData, "message name not UTF-8"))?;
            let message_type = TMessageType::try_from(self.read_byte()?)?;
            let seq = self.read_i32()?;
            Ok(TMessageIdentifier::new(name, message_type, seq))
        }
    }

    fn read_message_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_struct_begin(&mut self) -> thrift::Result<Option<TStructIdentifier>> {
        Ok(None)
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        let t = self.read_ttype()?;
        let id = match t {
            TType::Stop => 0,
            _ => self.read_i16()?,
        };
        Ok(TFieldIdentifier::new::<Option<String>, String, i16>(
            None, t, id,
        ))
    }

    fn read_field_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_bool(&mut self) -> thrift::Result<bool> {
        Ok(self.read_byte()? != 0)
    }

    fn read_bytes(&mut self) -> thrift::Result<Vec<u8>> {
        let len = self.read_i32()?;
        let len = self.checked_len(len)?;
        Ok(self.take(len)?.to_vec())
    }

    fn read_i8(&mut self) -> thrift::Result<i8> {
        Ok(self.read_byte()? as i8)
    }

    fn read_i16(&mut self) -> thrift::Result<i16> {
        Ok(i16::from_be_bytes(self.take_array()?))
    }

    fn read_i32(&mut self) -> thrift::Result<i32> {
        Ok(i32::from_be_bytes(self.take_array()?))
    }

    fn read_i64(&mut self) -> thrift::Result<i64> {
        Ok(i64::from_be_bytes(self.take_array()?))
    }

    fn read_double(&mut self) -> thrift::Result<f64> {
        Ok(f64::from_bits(u64::from_be_bytes(self.take_array()?)))
    }

    fn read_string(&mut self) -> thrift::Result<String> {
        let bytes = self.read_bytes()?;
        String::from_utf8(bytes)
            .map_err(|_| proto_err(ProtocolErrorKind::InvalidData, "string is not valid UTF-8"))
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        let element_type = self.read_ttype()?;
        let size = self.read_i32()?;
        self.check_container(size, &[element_type])?;
        Ok(TListIdentifier::new(element_type, size))
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        let element_type = self.read_ttype()?;
        let size = self.read_i32()?;
        self.check_container(size, &[element_type])?;
        Ok(TSetIdentifier::new(element_type, size))
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        let key_type = self.read_ttype()?;
        let value_type = self.read_ttype()?;
        let size = self.read_i32()?;
        self.check_container(size, &[key_type, value_type])?;
        Ok(TMapIdentifier::new(key_type, value_type, size))
    }

    fn read_map_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn skip(&mut self, field_type: TType) -> thrift::Result<()> {
        self.skip_till_depth(field_type, MAX_SKIP_DEPTH)
    }

    fn skip_till_depth(&mut self, field_type: TType, depth: i8) -> thrift::Result<()> {
        if depth <= 0 {
            return Err(proto_err(
                ProtocolErrorKind::DepthLimit,
                "thrift nesting too deep",
            ));
        }
        match field_type {
            TType::Bool | TType::I08 => self.take(1).map(|_| ()),
            TType::I16 => self.take(2).map(|_| ()),
            TType::I32 => self.take(4).map(|_| ()),
            TType::I64 | TType::Double => self.take(8).map(|_| ()),
            TType::String | TType::Utf7 | TType::Utf8 | TType::Utf16 => {
                let len = self.read_i32()?;
                let len = self.checked_len(len)?;
                self.take(len).map(|_| ())
            }
            TType::Struct => loop {
                let f = self.read_field_begin()?;
                if f.field_type == TType::Stop {
                    return Ok(());
                }
                self.skip_till_depth(f.field_type, depth - 1)?;
            },
            TType::List | TType::Set => {
                let t = self.read_ttype()?;
                let size = self.read_i32()?;
                self.check_container(size, &[t])?;
                for _ in 0..size {
                    self.skip_till_depth(t, depth - 1)?;
                }
                Ok(())
            }
            TType::Map => {
                let m = self.read_map_begin()?;
                if let (Some(k), Some(v)) = (m.key_type, m.value_type) {
                    for _ in 0..m.size {
                        self.skip_till_depth(k, depth - 1)?;
                        self.skip_till_depth(v, depth - 1)?;
                    }
                }
                Ok(())
            }
            TType::Stop | TType::Void => Err(proto_err(
                ProtocolErrorKind::InvalidData,
                format!("cannot skip type {field_type:?}"),
            )),
        }
    }

    fn read_byte(&mut self) -> thrift::Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }
}

/// Runs `f` over a hardened input protocol reading `bytes`.
pub fn decode<T>(
    bytes: &[u8],
    f: impl FnOnce(&mut dyn TInputProtocol) -> thrift::Result<T>,
) -> thrift::Result<T> {
    let mut p = SliceInputProtocol::new(bytes);
    f(&mut p)
}

/// Decodes one value of a (generated or dsn) thrift type from `bytes`.
pub fn decode_struct<T: TSerializable>(bytes: &[u8]) -> thrift::Result<T> {
    decode(bytes, |p| T::read_from_in_protocol(p))
}

/// Runs `f` over a strict binary output protocol and returns the bytes written.
pub fn encode(
    f: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<Vec<u8>> {
    let mut p = TBinaryOutputProtocol::new(Vec::new(), true);
    f(&mut p)?;
    Ok(p.transport)
}

/// Encodes one value of a (generated or dsn) thrift type. Writing to memory
/// cannot fail, so this returns the bytes directly.
pub fn encode_struct<T: TSerializable>(v: &T) -> Vec<u8> {
    let mut p = TBinaryOutputProtocol::new(Vec::new(), true);
    // Generated writers only fail on transport errors; a Vec never errors.
    let _ = v.write_to_out_protocol(&mut p);
    p.transport
}

/// Reads the single-argument wrapper struct of a request body (`<method>_args`
/// for THFT with field id 1, the RDSN wrapper with field id 0). Like upstream,
/// the field id and type are not checked; the argument is decoded with `f`
/// and the rest of the body is ignored. A body that starts with STOP is an error.
pub fn read_arg_with<T>(
    i_prot: &mut dyn TInputProtocol,
    f: impl FnOnce(&mut dyn TInputProtocol) -> thrift::Result<T>,
) -> thrift::Result<T> {
    i_prot.read_struct_begin()?;
    let field = i_prot.read_field_begin()?;
    if field.field_type == TType::Stop {
        return Err(proto_err(
            ProtocolErrorKind::InvalidData,
            "request body has no argument field",
        ));
    }
    f(i_prot)
}

/// `read_arg_with` for struct-like argument types.
pub fn read_arg<T: TSerializable>(i_prot: &mut dyn TInputProtocol) -> thrift::Result<T> {
    read_arg_with(i_prot, |p| T::read_from_in_protocol(p))
}

/// Writes a one-field wrapper struct: field `field_id` of wire type `ttype`
/// whose payload is produced by `f`, then STOP. THFT results use id 0
/// (`<method>_result.success`), THFT args id 1, RDSN bodies id 0.
pub fn write_wrapped_with(
    o_prot: &mut dyn TOutputProtocol,
    field_id: i16,
    ttype: TType,
    f: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<()> {
    o_prot.write_struct_begin(&TStructIdentifier::new("wrapper"))?;
    o_prot.write_field_begin(&TFieldIdentifier::new("value", ttype, field_id))?;
    f(o_prot)?;
    o_prot.write_field_end()?;
    o_prot.write_field_stop()?;
    o_prot.write_struct_end()
}

/// `write_wrapped_with` for struct-like values (wire type STRUCT, which is
/// also correct for blob / error_code / gpid / rpc_address / host_port).
pub fn write_wrapped<T: TSerializable>(
    o_prot: &mut dyn TOutputProtocol,
    field_id: i16,
    v: &T,
) -> thrift::Result<()> {
    write_wrapped_with(o_prot, field_id, TType::Struct, |p| {
        v.write_to_out_protocol(p)
    })
}

/// Encodes a wrapper struct holding `v` in field `field_id` (see `write_wrapped`).
pub fn encode_wrapped<T: TSerializable>(field_id: i16, v: &T) -> Vec<u8> {
    let mut p = TBinaryOutputProtocol::new(Vec::new(), true);
    let _ = write_wrapped(&mut p, field_id, v);
    p.transport
}

/// Encodes a strict message header (`80 01 00 tt`, name, seqid).
pub fn encode_message_begin(name: &str, message_type: TMessageType, seq: i32) -> Vec<u8> {
    let mut p = TBinaryOutputProtocol::new(Vec::new(), true);
    let _ = p.write_message_begin(&TMessageIdentifier::new(name, message_type, seq));
    p.transport
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idl::dsn::{Blob, ErrorCode, Gpid, HostPort, RpcAddress};
    use crate::idl::{dsn_layer2, fd, meta_admin, request_meta, rrdb};
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn roundtrip<T: TSerializable + PartialEq + std::fmt::Debug>(v: &T) {
        let bytes = encode_struct(v);
        let back: T = decode_struct(&bytes).unwrap();
        assert_eq!(&back, v);
    }

    #[test]
    fn gpid_and_address_vectors() {
        let g = Gpid::new(2, 3);
        assert_eq!(encode_struct(&g), hex("00 00 00 03 00 00 00 02"));
        assert_eq!(g.to_string(), "2.3");
        roundtrip(&g);
        roundtrip(&Gpid::new(-1, 7));

        let a = RpcAddress::from_ipv4(Ipv4Addr::new(10, 0, 0, 5), 34801);
        assert_eq!(encode_struct(&a), hex("0a 00 00 05 87 f1 00 01"));
        assert_eq!(a.to_string(), "10.0.0.5:34801");
        assert_eq!(
            RpcAddress::from_ipv4(Ipv4Addr::new(127, 0, 0, 1), 34601).0,
            0x7F00_0001_8729_0001
        );
        assert!(RpcAddress(0).is_invalid());
        assert_eq!(RpcAddress(0).to_socket_addr(), None);
        roundtrip(&a);

        let hp = HostPort::new("node1.example", 34801);
        let mut want = hex("00 00 00 0d");
        want.extend_from_slice(b"node1.example");
        want.extend_from_slice(&hex("87 f1 01"));
        assert_eq!(encode_struct(&hp), want);
        roundtrip(&hp);
    }

    #[test]
    fn error_codes() {
        assert_eq!(ErrorCode::default(), ErrorCode::OK);
        assert_eq!(ErrorCode::from_name("ERR_OBJECT_NOT_FOUND").code(), 10);
        assert_eq!(ErrorCode::from_name("NO_SUCH"), ErrorCode::UNKNOWN);
        assert_eq!(ErrorCode::from_code(87), ErrorCode::NOT_MATCHED);
        assert_eq!(ErrorCode::ALL.len(), 88);
        let b = encode_struct(&ErrorCode::OK);
        assert_eq!(b, hex("00 00 00 06 45 52 52 5f 4f 4b"));
        roundtrip(&ErrorCode::FORWARD_TO_OTHERS);
    }

    #[test]
    fn get_result_vector() {
        // Body of a GET reply (wire-protocol.md 3.3) after the message header.
        let resp = rrdb::ReadResponse {
            error: Some(0),
            value: Some(Blob::from("v1")),
            app_id: Some(2),
            partition_index: Some(2),
            server: Some("10.0.0.5:34801".to_string()),
        };
        let mut want = hex("0c 00 00 08 00 01 00 00 00 00 0c 00 02 00 00 00 02 76 31
             08 00 03 00 00 00 02 08 00 04 00 00 00 02 0b 00 06 00 00 00 0e");
        want.extend_from_slice(b"10.0.0.5:34801");
        want.extend_from_slice(&hex("00 00"));
        assert_eq!(encode_wrapped(0, &resp), want);

        let back = decode(&want, |p| read_arg::<rrdb::ReadResponse>(p)).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn get_request_vector() {
        // Java v1 GET request from wire-protocol.md 3.3: meta then body.
        let meta = hex(
            "08 00 01 00 00 00 02 08 00 02 00 00 00 02 08 00 03 00 00 03 e8
             0a 00 04 12 99 d9 b0 66 72 77 3a 02 00 05 00 00",
        );
        let m: request_meta::ThriftRequestMetaV1 = decode_struct(&meta).unwrap();
        assert_eq!(m.app_id, Some(2));
        assert_eq!(m.partition_index, Some(2));
        assert_eq!(m.client_timeout, Some(1000));
        assert_eq!(m.client_partition_hash, Some(0x1299_D9B0_6672_773A));
        assert_eq!(m.is_backup_request, Some(false));
        assert_eq!(encode_struct(&m), meta);

        let mut body = hex("80 01 00 01 00 00 00 11");
        body.extend_from_slice(b"RPC_RRDB_RRDB_GET");
        body.extend_from_slice(&hex("00 00 00 00 0c 00 01 00 00 00 0b 00 07"));
        body.extend_from_slice(b"hashkeysk");
        body.push(0);
        let mut p = SliceInputProtocol::new(&body);
        let msg = p.read_message_begin().unwrap();
        assert_eq!(msg.name, "RPC_RRDB_RRDB_GET");
        assert_eq!(msg.message_type, TMessageType::Call);
        assert_eq!(msg.sequence_number, 0);
        let key: Blob = read_arg(&mut p).unwrap();
        assert_eq!(key.as_bytes(), b"\x00\x07hashkeysk");

        // Same header in the legacy non-strict form.
        let mut legacy = hex("00 00 00 11");
        legacy.extend_from_slice(b"RPC_RRDB_RRDB_GET");
        legacy.extend_from_slice(&hex("01 00 00 00 07"));
        let msg = decode(&legacy, |p| p.read_message_begin()).unwrap();
        assert_eq!(msg.name, "RPC_RRDB_RRDB_GET");
        assert_eq!(msg.sequence_number, 7);
        assert_eq!(
            encode_message_begin("RPC_RRDB_RRDB_GET", TMessageType::Call, 0),
            body[..29].to_vec()
        );
    }

    fn sample_update() -> rrdb::UpdateRequest {
        rrdb::UpdateRequest {
            key: Some(Blob::from(&b"\x00\x02hksk"[..])),
            value: Some(Blob::from("value")),
            expire_ts_seconds: Some(0),
            type_: Some(rrdb::UpdateType::UT_PUT),
            check_value_returned: None,
            check_value_exist: None,
            check_value: None,
        }
    }

    fn sample_pc() -> dsn_layer2::PartitionConfiguration {
        let a = |x| RpcAddress::from_ipv4(Ipv4Addr::new(10, 0, 0, x), 34801);
        dsn_layer2::PartitionConfiguration {
            pid: Some(Gpid::new(2, 5)),
            ballot: Some(7),
            max_replica_count: Some(3),
            primary: Some(a(1)),
            secondaries: Some(vec![a(2), a(3)]),
            last_drops: Some(vec![]),
            last_committed_decree: Some(100),
            partition_flags: Some(0),
            hp_primary: Some(HostPort::new("n1", 34801)),
            hp_secondaries: Some(vec![HostPort::new("n2", 34801), HostPort::new("n3", 34801)]),
            hp_last_drops: None,
        }
    }

    #[test]
    fn struct_roundtrips() {
        roundtrip(&sample_update());
        roundtrip(&sample_pc());
        roundtrip(&dsn_layer2::QueryCfgResponse {
            err: Some(ErrorCode::OK),
            app_id: Some(2),
            partition_count: Some(1),
            is_stateful: Some(true),
            partitions: Some(vec![sample_pc()]),
        });
        let mut envs = BTreeMap::new();
        envs.insert("k".to_string(), "v".to_string());
        roundtrip(&meta_admin::ConfigurationCreateAppRequest {
            app_name: Some("temp".into()),
            options: Some(meta_admin::CreateAppOptions {
                partition_count: Some(8),
                replica_count: Some(3),
                success_if_exist: Some(true),
                app_type: Some("pegasus".into()),
                is_stateful: Some(true),
                envs: Some(envs),
                atomic_idempotent: None,
            }),
        });
        roundtrip(&fd::BeaconMsg {
            time: Some(1),
            from_node: Some(RpcAddress::from_ipv4(Ipv4Addr::LOCALHOST, 34801)),
            to_node: Some(RpcAddress::from_ipv4(Ipv4Addr::LOCALHOST, 34601)),
            start_time: Some(5),
            hp_from_node: Some(HostPort::new("localhost", 34801)),
            hp_to_node: None,
        });
        // Unknown fields are skipped.
        let mut bytes = hex("0b 00 63 00 00 00 01 41 0f 00 64 08 00 00 00 01 00 00 00 01");
        bytes.extend_from_slice(&encode_struct(&sample_update()));
        assert_eq!(
            decode_struct::<rrdb::UpdateRequest>(&bytes).unwrap(),
            sample_update()
        );
    }

    #[test]
    fn hostile_sizes_are_rejected() {
        // list<blob> claiming 2^31-1 elements.
        let b = hex("0f 00 02 0c 7f ff ff ff");
        assert!(decode_struct::<rrdb::MultiRemoveRequest>(&b).is_err());
        // Negative list size.
        let b = hex("0f 00 02 0c ff ff ff ff 00");
        assert!(decode_struct::<rrdb::MultiRemoveRequest>(&b).is_err());
        // Blob longer than the input.
        let b = hex("0c 00 01 7f ff ff ff 00");
        assert!(decode_struct::<rrdb::UpdateRequest>(&b).is_err());
        // Deep nesting in an unknown field.
        let mut b = Vec::new();
        for _ in 0..200 {
            b.extend_from_slice(&hex("0c 00 63"));
        }
        assert!(decode_struct::<rrdb::UpdateRequest>(&b).is_err());
        // Map with an invalid element type.
        let b = hex("0d 00 63 00 0b 00 00 00 01");
        assert!(decode_struct::<rrdb::UpdateRequest>(&b).is_err());
    }

    /// xorshift PRNG so the fuzz loop needs no extra crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn decode_all(bytes: &[u8]) {
        let _ = decode_struct::<rrdb::UpdateRequest>(bytes);
        let _ = decode_struct::<rrdb::MultiPutRequest>(bytes);
        let _ = decode_struct::<rrdb::MultiGetRequest>(bytes);
        let _ = decode_struct::<rrdb::GetScannerRequest>(bytes);
        let _ = decode_struct::<rrdb::CheckAndMutateRequest>(bytes);
        let _ = decode_struct::<dsn_layer2::QueryCfgResponse>(bytes);
        let _ = decode_struct::<meta_admin::ConfigurationQueryByNodeRequest>(bytes);
        let _ = decode_struct::<meta_admin::ConfigurationUpdateRequest>(bytes);
        let _ = decode_struct::<request_meta::ThriftRequestMetaV1>(bytes);
        let _ = decode(bytes, |p| {
            p.read_message_begin()?;
            read_arg::<rrdb::UpdateRequest>(p)
        });
        let _ = decode(bytes, |p| p.skip(TType::Struct));
    }

    #[test]
    fn fuzz_no_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds = [
            encode_struct(&sample_update()),
            encode_struct(&sample_pc()),
            encode_wrapped(1, &sample_update()),
        ];
        for seed in &seeds {
            for cut in 0..seed.len() {
                decode_all(&seed[..cut]);
            }
        }
        for i in 0..20_000 {
            let mut b = seeds[i % seeds.len()].clone();
            let flips = 1 + (rng.next() % 4) as usize;
            for _ in 0..flips {
                let pos = (rng.next() as usize) % b.len();
                b[pos] = rng.next() as u8;
            }
            let cut = (rng.next() as usize) % (b.len() + 1);
            decode_all(&b[..cut]);
        }
        for _ in 0..5_000 {
            let len = (rng.next() % 64) as usize;
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            decode_all(&b);
        }
    }
}

//! A replicated mutation (one decree) and rDSN's raw little-endian mutation layout, shared by
//! the private log, the RPC_PREPARE body and `learn_state.meta` (a back-to-back sequence).
//!
//! Layout (all LE): a 56-byte header (i64 version = 0, u64 gpid, i64 ballot, i64 decree,
//! i64 log_offset, i64 last_committed_decree, i64 timestamp), i32 update count, one
//! descriptor per update (i32 name length, name bytes, i32 serialization type, i32 data
//! length), then every update's data back to back.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// Task code of the update carried by an empty write.
pub const WRITE_EMPTY: &str = "RPC_REPLICATION_WRITE_EMPTY";

/// Task codes that may appear as updates of a mutation in a Pegasus private log.
pub const KNOWN_UPDATE_CODES: &[&str] = &[
    WRITE_EMPTY,
    "RPC_RRDB_RRDB_PUT",
    "RPC_RRDB_RRDB_REMOVE",
    "RPC_RRDB_RRDB_MULTI_PUT",
    "RPC_RRDB_RRDB_MULTI_REMOVE",
    "RPC_RRDB_RRDB_INCR",
    "RPC_RRDB_RRDB_CHECK_AND_SET",
    "RPC_RRDB_RRDB_CHECK_AND_MUTATE",
    "RPC_RRDB_RRDB_DUPLICATE",
    "RPC_RRDB_RRDB_BULK_LOAD",
];

/// The task-code name as an update keeps it: a known code borrows its static name.
pub fn code_name(name: &str) -> Cow<'static, str> {
    match KNOWN_UPDATE_CODES.iter().find(|c| **c == name) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(name.to_string()),
    }
}

/// Size of the fixed mutation header.
pub const MUTATION_HEADER_LEN: usize = 56;

/// A header version above this is the vptr of a legacy (very old rDSN) header.
const LEGACY_VERSION_MIN: i64 = 64;

/// One client write inside a mutation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MutationUpdate {
    /// Task-code name, e.g. `RPC_RRDB_RRDB_PUT` (known codes borrow a static name, so
    /// cloning an update allocates nothing).
    pub code: Cow<'static, str>,
    /// dsn_msg_serialize_format of `data` (1 = thrift binary; 0 for an empty write).
    pub serialization_type: i32,
    /// The request body as the client sent it (after the thrift message header); shared,
    /// not copied, between the prepare list, the log, the prepares sent and the cache.
    pub data: Bytes,
}

/// One decree of a partition, as prepared, logged and learned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mutation {
    pub app_id: i32,
    pub partition_index: i32,
    pub ballot: i64,
    pub decree: i64,
    /// Global plog offset where this record starts (0 until logged).
    pub log_offset: i64,
    /// The primary's committed decree when this mutation was prepared.
    pub last_committed_decree: i64,
    /// Unique increasing microseconds since the Unix epoch (0 from a legacy header).
    pub timestamp: i64,
    pub updates: Vec<MutationUpdate>,
}

/// Why bytes could not be decoded as a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutationError {
    /// The buffer ends before the record does.
    Truncated { needed: usize, available: usize },
    /// The header's first i64 is neither 0 nor a legacy vptr (> 64).
    InvalidVersion(i64),
    /// A negative update count.
    InvalidCount(i32),
    /// A negative name or data length.
    InvalidLength(i32),
    /// A task-code name that is empty, not plain ASCII, or (for `check_codes`) unknown.
    InvalidCode(String),
}

impl fmt::Display for MutationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutationError::Truncated { needed, available } => write!(
                f,
                "truncated mutation: need {needed} bytes, {available} available"
            ),
            MutationError::InvalidVersion(v) => write!(f, "invalid mutation version {v:#018x}"),
            MutationError::InvalidCount(c) => write!(f, "invalid mutation update count {c}"),
            MutationError::InvalidLength(l) => write!(f, "invalid mutation field length {l}"),
            MutationError::InvalidCode(c) => write!(f, "invalid mutation task code {c:?}"),
        }
    }
}

impl std::error::Error for MutationError {}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MutationError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(MutationError::Truncated {
                needed: n,
                available,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i64(&mut self) -> Result<i64, MutationError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }

    fn i32(&mut self) -> Result<i32, MutationError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(i32::from_le_bytes(b))
    }

    fn len(&mut self) -> Result<usize, MutationError> {
        let l = self.i32()?;
        usize::try_from(l).map_err(|_| MutationError::InvalidLength(l))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

fn plain_code(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
}

impl Mutation {
    /// The gpid as rDSN's u64 value: app_id in the low 32 bits, partition index in the high.
    pub fn gpid_value(&self) -> u64 {
        (self.app_id as u32 as u64) | ((self.partition_index as u32 as u64) << 32)
    }

    /// Appends the raw layout (version 0 header) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&0i64.to_le_bytes());
        out.extend_from_slice(&self.gpid_value().to_le_bytes());
        out.extend_from_slice(&self.ballot.to_le_bytes());
        out.extend_from_slice(&self.decree.to_le_bytes());
        out.extend_from_slice(&self.log_offset.to_le_bytes());
        out.extend_from_slice(&self.last_committed_decree.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&(self.updates.len() as i32).to_le_bytes());
        for u in &self.updates {
            out.extend_from_slice(&(u.code.len() as i32).to_le_bytes());
            out.extend_from_slice(u.code.as_bytes());
            out.extend_from_slice(&u.serialization_type.to_le_bytes());
            out.extend_from_slice(&(u.data.len() as i32).to_le_bytes());
        }
        for u in &self.updates {
            out.extend_from_slice(&u.data);
        }
    }

    /// The encoded record as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        v
    }

    /// Number of bytes `encode` appends.
    pub fn encoded_len(&self) -> usize {
        MUTATION_HEADER_LEN
            + 4
            + self
                .updates
                .iter()
                .map(|u| 12 + u.code.len() + u.data.len())
                .sum::<usize>()
    }

    /// Decodes one record from the front of `buf`; returns it and the bytes it used.
    /// Accepts the legacy header (first i64 > 64: the seventh i64 is ignored, timestamp 0).
    pub fn decode(buf: &[u8]) -> Result<(Mutation, usize), MutationError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.i64()?;
        let gpid = r.i64()? as u64;
        let ballot = r.i64()?;
        let decree = r.i64()?;
        let log_offset = r.i64()?;
        let last_committed_decree = r.i64()?;
        let seventh = r.i64()?;
        let timestamp = if version == 0 {
            seventh
        } else if version > LEGACY_VERSION_MIN {
            0
        } else {
            return Err(MutationError::InvalidVersion(version));
        };
        let count = r.i32()?;
        let count_usize = usize::try_from(count).map_err(|_| MutationError::InvalidCount(count))?;
        // Every descriptor takes at least 12 bytes: never trust the count for allocation.
        let mut updates = Vec::with_capacity(count_usize.min(r.remaining() / 12));
        let mut lens = Vec::with_capacity(updates.capacity());
        for _ in 0..count_usize {
            let name_len = r.len()?;
            let name = r.take(name_len)?;
            if !plain_code(name) {
                return Err(MutationError::InvalidCode(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            let code = code_name(&String::from_utf8_lossy(name));
            let serialization_type = r.i32()?;
            lens.push(r.len()?);
            updates.push(MutationUpdate {
                code,
                serialization_type,
                data: Bytes::new(),
            });
        }
        for (u, len) in updates.iter_mut().zip(lens) {
            u.data = Bytes::copy_from_slice(r.take(len)?);
        }
        let m = Mutation {
            app_id: gpid as u32 as i32,
            partition_index: (gpid >> 32) as u32 as i32,
            ballot,
            decree,
            log_offset,
            last_committed_decree,
            timestamp,
            updates,
        };
        Ok((m, r.pos))
    }

    /// An empty write: one `RPC_REPLICATION_WRITE_EMPTY` update, serialization type 0, no data.
    pub fn write_empty(
        app_id: i32,
        partition_index: i32,
        ballot: i64,
        decree: i64,
        last_committed_decree: i64,
        timestamp: i64,
    ) -> Mutation {
        Mutation {
            app_id,
            partition_index,
            ballot,
            decree,
            log_offset: 0,
            last_committed_decree,
            timestamp,
            updates: vec![MutationUpdate {
                code: Cow::Borrowed(WRITE_EMPTY),
                serialization_type: 0,
                data: Bytes::new(),
            }],
        }
    }

    /// True when this mutation holds only empty writes.
    pub fn is_write_empty(&self) -> bool {
        self.updates.iter().all(|u| u.code == WRITE_EMPTY)
    }

    /// Rejects task codes a Pegasus replica never logs (C++ aborts on an unknown code).
    pub fn check_codes(&self) -> Result<(), MutationError> {
        for u in &self.updates {
            if !KNOWN_UPDATE_CODES.contains(&u.code.as_ref()) {
                return Err(MutationError::InvalidCode(u.code.to_string()));
            }
        }
        Ok(())
    }
}

/// Appends mutations back to back with no framing (the `learn_state.meta` format).
pub fn encode_seq(ms: &[Mutation], out: &mut Vec<u8>) {
    out.reserve(ms.iter().map(Mutation::encoded_len).sum());
    for m in ms {
        m.encode(out);
    }
}

/// Decodes back-to-back mutations until `buf` is exhausted; any trailing partial record is
/// an error.
pub fn decode_seq(buf: &[u8]) -> Result<Vec<Mutation>, MutationError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (m, used) = Mutation::decode(&buf[pos..])?;
        out.push(m);
        pos += used;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The spec's `update_request{key=00 01 'a' 'a', value='a', expire_ts_seconds=0}` body.
    const UPDATE_REQUEST: [u8; 31] = [
        0x0c, 0x00, 0x00, // wrapper field 0, struct
        0x0c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x61, 0x61, // key
        0x0c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x61, // value
        0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, // expire_ts_seconds
        0x00, // stop of update_request
        0x00, // stop of the wrapper
    ];

    fn sample() -> Mutation {
        Mutation {
            app_id: 1,
            partition_index: 3,
            ballot: 7,
            decree: 42,
            log_offset: 76,
            last_committed_decree: 41,
            timestamp: 1_700_000_000_123_456,
            updates: vec![
                MutationUpdate {
                    code: "RPC_RRDB_RRDB_PUT".into(),
                    serialization_type: 1,
                    data: UPDATE_REQUEST.to_vec().into(),
                },
                MutationUpdate {
                    code: "RPC_RRDB_RRDB_REMOVE".into(),
                    serialization_type: 1,
                    data: vec![1, 2, 3].into(),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), m.encoded_len());
        let (d, used) = Mutation::decode(&bytes).expect("decode");
        assert_eq!(used, bytes.len());
        assert_eq!(d, m);
        d.check_codes().expect("known codes");
    }

    #[test]
    fn byte_layout_matches_spec() {
        let m = sample();
        let b = m.to_bytes();
        let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(i64_at(0), 0, "version");
        // gpid 1.3: app_id LE then partition index LE.
        assert_eq!(&b[8..16], &[1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(i64_at(16), 7, "ballot");
        assert_eq!(i64_at(24), 42, "decree");
        assert_eq!(i64_at(32), 76, "log_offset");
        assert_eq!(i64_at(40), 41, "last_committed_decree");
        assert_eq!(i64_at(48), 1_700_000_000_123_456, "timestamp");
        assert_eq!(i32_at(56), 2, "update count");
        // First descriptor.
        assert_eq!(i32_at(60), 17);
        assert_eq!(&b[64..81], b"RPC_RRDB_RRDB_PUT");
        assert_eq!(i32_at(81), 1);
        assert_eq!(i32_at(85), UPDATE_REQUEST.len() as i32);
        // Second descriptor.
        assert_eq!(i32_at(89), 20);
        assert_eq!(&b[93..113], b"RPC_RRDB_RRDB_REMOVE");
        assert_eq!(i32_at(113), 1);
        assert_eq!(i32_at(117), 3);
        // Payloads after all descriptors, in order.
        assert_eq!(&b[121..152], &UPDATE_REQUEST);
        assert_eq!(&b[152..], &[1, 2, 3]);
    }

    #[test]
    fn write_empty_layout() {
        let m = Mutation::write_empty(2, 5, 3, 10, 9, 123);
        let b = m.to_bytes();
        assert_eq!(b.len(), 56 + 4 + 4 + WRITE_EMPTY.len() + 4 + 4);
        assert_eq!(&b[56..60], &1i32.to_le_bytes());
        assert_eq!(&b[60..64], &27i32.to_le_bytes());
        assert_eq!(&b[64..91], WRITE_EMPTY.as_bytes());
        assert_eq!(&b[91..99], &[0u8; 8]);
        assert!(Mutation::decode(&b).unwrap().0.is_write_empty());
    }

    #[test]
    fn legacy_header_and_bad_versions() {
        let m = sample();
        let mut b = m.to_bytes();
        b[0..8].copy_from_slice(&0x7f00_1234_5678i64.to_le_bytes());
        b[48..56].copy_from_slice(&0x3fi64.to_le_bytes()); // isset bitmap
        let (d, _) = Mutation::decode(&b).unwrap();
        assert_eq!(d.timestamp, 0);
        assert_eq!(d.decree, 42);
        for v in [1i64, 64, -1] {
            b[0..8].copy_from_slice(&v.to_le_bytes());
            assert_eq!(
                Mutation::decode(&b).unwrap_err(),
                MutationError::InvalidVersion(v)
            );
        }
    }

    #[test]
    fn sequence_round_trip() {
        let a = sample();
        let mut b2 = Mutation::write_empty(1, 3, 7, 43, 42, 5);
        b2.log_offset = 500;
        let mut buf = Vec::new();
        encode_seq(&[a.clone(), b2.clone()], &mut buf);
        assert_eq!(decode_seq(&buf).unwrap(), vec![a, b2]);
        assert!(decode_seq(&[]).unwrap().is_empty());
        assert!(matches!(
            decode_seq(&buf[..buf.len() - 1]),
            Err(MutationError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_negative_and_unknown() {
        let mut b = sample().to_bytes();
        b[56..60].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(
            Mutation::decode(&b).unwrap_err(),
            MutationError::InvalidCount(-1)
        );
        let mut m = sample();
        m.updates[0].code = "RPC_SOMETHING_ELSE".into();
        assert!(m.check_codes().is_err());
        m.updates[0].code = String::new().into();
        assert!(matches!(
            Mutation::decode(&m.to_bytes()),
            Err(MutationError::InvalidCode(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Mutation::decode(&data);
            let _ = decode_seq(&data);
        }

        #[test]
        fn truncation_is_an_error(cut in 0usize..155) {
            let b = sample().to_bytes();
            prop_assert!(Mutation::decode(&b[..cut]).is_err());
        }

        #[test]
        fn corrupted_header_never_panics(pos in 56usize..160, byte in any::<u8>()) {
            let mut b = sample().to_bytes();
            if pos < b.len() {
                b[pos] = byte;
            }
            let _ = Mutation::decode(&b);
        }
    }
}

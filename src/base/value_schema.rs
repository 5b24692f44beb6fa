//! Pegasus value layouts (data version 0: `expire_ts u32 | data`; version 1:
//! `expire_ts u32 | timetag u64 | data`, all BE) and TTL arithmetic on the 2016-01-01 epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// 2016-01-01T00:00:00Z in Unix seconds: the zero of Pegasus expire timestamps.
pub const EPOCH_BEGIN: u64 = 1_451_606_400;

/// Seconds since the Pegasus epoch, now.
pub fn epoch_now() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(EPOCH_BEGIN);
    unix.saturating_sub(EPOCH_BEGIN) as u32
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Is a record with this expire timestamp expired at `now` (Pegasus seconds)?
pub fn is_expired(expire_ts: u32, now: u32) -> bool {
    expire_ts > 0 && expire_ts <= now
}

/// Builds a v1 timetag from a microsecond timestamp, cluster id and delete flag.
pub fn timetag(timestamp_us: u64, cluster_id: u8, deleted: bool) -> u64 {
    (timestamp_us << 8) | ((cluster_id as u64 & 0x7F) << 1) | deleted as u64
}

/// A decoded stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    pub expire_ts: u32,
    pub timetag: u64,
    pub user_data: &'a [u8],
}

/// The header size of a data version; `None` for versions this server does not support.
pub fn header_len(version: u32) -> Option<usize> {
    match version {
        0 => Some(4),
        1 => Some(12),
        _ => None,
    }
}

/// Encodes a value in the given data version (0 or 1; anything else is treated as 1).
pub fn encode(version: u32, expire_ts: u32, timetag: u64, user_data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + user_data.len());
    v.extend_from_slice(&expire_ts.to_be_bytes());
    if version != 0 {
        v.extend_from_slice(&timetag.to_be_bytes());
    }
    v.extend_from_slice(user_data);
    v
}

/// Decodes a value of the given data version; `None` when it is too short.
pub fn decode(version: u32, raw: &[u8]) -> Option<Value<'_>> {
    let hl = header_len(version)?;
    if raw.len() < hl {
        return None;
    }
    let expire_ts = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let timetag = if version == 0 {
        0
    } else {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[4..12]);
        u64::from_be_bytes(b)
    };
    Some(Value {
        expire_ts,
        timetag,
        user_data: &raw[hl..],
    })
}

/// Reads only the expire timestamp (same offset in v0 and v1).
pub fn expire_ts(raw: &[u8]) -> Option<u32> {
    if raw.len() < 4 {
        return None;
    }
    Some(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// Remaining TTL in seconds for a record, -1 if it has none; `None` if expired.
pub fn ttl_seconds(expire_ts: u32, now: u32) -> Option<i32> {
    if expire_ts == 0 {
        Some(-1)
    } else if expire_ts <= now {
        None
    } else {
        Some((expire_ts - now) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_layout() {
        let tt = timetag(0x0001_0203_0405_0607, 5, false);
        assert_eq!(tt, 0x0102_0304_0506_0700 | (5 << 1));
        let v = encode(1, 0x0A0B_0C0D, tt, b"xy");
        assert_eq!(
            v,
            [0x0A, 0x0B, 0x0C, 0x0D, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0A, b'x', b'y']
        );
        let d = decode(1, &v).unwrap();
        assert_eq!(d.expire_ts, 0x0A0B_0C0D);
        assert_eq!(d.timetag, tt);
        assert_eq!(d.user_data, b"xy");
        assert!(decode(1, &v[..11]).is_none());
    }

    #[test]
    fn v0_layout() {
        let v = encode(0, 7, 99, b"abc");
        assert_eq!(v, [0, 0, 0, 7, b'a', b'b', b'c']);
        let d = decode(0, &v).unwrap();
        assert_eq!((d.expire_ts, d.timetag, d.user_data), (7, 0, &b"abc"[..]));
        assert!(decode(2, &v).is_none());
    }

    #[test]
    fn ttl_rules() {
        assert!(!is_expired(0, 100));
        assert!(is_expired(100, 100));
        assert!(!is_expired(101, 100));
        assert_eq!(ttl_seconds(0, 5), Some(-1));
        assert_eq!(ttl_seconds(5, 5), None);
        assert_eq!(ttl_seconds(15, 5), Some(10));
        // 2026 is well after the epoch and before u32 wrap.
        assert!(epoch_now() > 300_000_000);
    }
}

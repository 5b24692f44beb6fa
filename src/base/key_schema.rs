//! Pegasus key layout in RocksDB: `hashkey_len (u16 BE) | hashkey | sortkey`, plus the
//! "prefix next" bounds used by range reads and the key hash that picks a partition.

use super::crc::crc64;

/// Largest allowed hash-key length (u16::MAX itself is excluded).
pub const MAX_HASH_KEY_LEN: usize = 0xFFFE;

/// Encodes a full key; `None` when the hash key is too long.
pub fn encode(hash_key: &[u8], sort_key: &[u8]) -> Option<Vec<u8>> {
    if hash_key.len() > MAX_HASH_KEY_LEN {
        return None;
    }
    let mut k = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    k.extend_from_slice(&(hash_key.len() as u16).to_be_bytes());
    k.extend_from_slice(hash_key);
    k.extend_from_slice(sort_key);
    Some(k)
}

/// Splits a full key into (hash key, sort key); `None` when malformed.
pub fn decode(key: &[u8]) -> Option<(&[u8], &[u8])> {
    if key.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([key[0], key[1]]) as usize;
    if 2 + len > key.len() {
        return None;
    }
    Some((&key[2..2 + len], &key[2 + len..]))
}

/// The hash that routes a key: CRC-64 of the hash key, or of the sort key when the hash key
/// is empty.
pub fn hash(hash_key: &[u8], sort_key: &[u8]) -> u64 {
    if hash_key.is_empty() {
        crc64(sort_key)
    } else {
        crc64(hash_key)
    }
}

/// Hash of a full key; `None` when malformed.
pub fn hash_full_key(key: &[u8]) -> Option<u64> {
    decode(key).map(|(h, s)| hash(h, s))
}

/// The smallest key greater than every key that starts with `prefix`: strip trailing 0xFF
/// bytes and increment the last remaining byte. An all-0xFF (or empty) prefix has no such key.
pub fn prefix_next(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(&last) = v.last() {
        if last == 0xFF {
            v.pop();
        } else {
            let n = v.len();
            v[n - 1] = last + 1;
            return Some(v);
        }
    }
    None
}

/// The first key after every key of `hash_key`.
pub fn hash_key_next(hash_key: &[u8]) -> Option<Vec<u8>> {
    encode(hash_key, b"").and_then(|k| prefix_next(&k))
}

/// Does the key of `key_hash` belong to partition `pidx` of a table with
/// `partition_version = partition_count - 1`?
pub fn check_partition_hash(key_hash: u64, partition_version: i32, pidx: i32) -> bool {
    if partition_version < 0 || pidx > partition_version {
        return true;
    }
    (key_hash & partition_version as u64) == pidx as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_vectors() {
        let k = encode(b"hashkey", b"sk").unwrap();
        assert_eq!(k, b"\x00\x07hashkeysk");
        assert_eq!(decode(&k), Some((&b"hashkey"[..], &b"sk"[..])));
        assert_eq!(encode(b"", b"s").unwrap(), b"\x00\x00s");
        assert_eq!(decode(b"\x00"), None);
        assert_eq!(decode(b"\x00\x05ab"), None);
        assert!(encode(&vec![0u8; 0xFFFF], b"").is_none());
        assert!(encode(&vec![0u8; 0xFFFE], b"").is_some());
    }

    #[test]
    fn hashing() {
        assert_eq!(hash(b"hashkey", b"sk"), 0x1299_D9B0_6672_773A);
        assert_eq!(hash(b"", b"hashkey"), 0x1299_D9B0_6672_773A);
        assert_eq!(
            hash_full_key(b"\x00\x07hashkeysk"),
            Some(0x1299_D9B0_6672_773A)
        );
        assert_eq!(0x1299_D9B0_6672_773Au64 % 8, 2);
    }

    #[test]
    fn next_keys() {
        assert_eq!(prefix_next(b"\x00\x02ab"), Some(b"\x00\x02ac".to_vec()));
        assert_eq!(prefix_next(b"\x00\x02a\xff"), Some(b"\x00\x02b".to_vec()));
        assert_eq!(prefix_next(b"\xff\xff"), None);
        assert_eq!(hash_key_next(b"\xff"), Some(b"\x00\x02".to_vec()));
    }

    #[test]
    fn partition_check() {
        assert!(check_partition_hash(10, 7, 2));
        assert!(!check_partition_hash(10, 7, 3));
        assert!(check_partition_hash(10, -1, 3));
    }
}

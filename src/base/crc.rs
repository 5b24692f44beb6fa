//! The two checksums of Pegasus's formats, from well-kept crates: CRC-32C (the `crc32c`
//! crate, hardware-accelerated where the CPU has it) chains the mutation-log blocks, and
//! CRC-64/NVME (the `crc` crate; rDSN's CRC-64 with the Jones-style polynomial) hashes keys
//! to partitions.

use crc::{Crc, CRC_64_NVME};

static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME);

/// CRC-32C continuing from `init` (the previous CRC; 0 to start).
pub fn crc32c(init: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(init, data)
}

/// CRC-64 of `data` (rDSN's `crc64_calc` with an initial value of 0, as key hashing uses).
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        assert_eq!(
            crc32c(crc32c(0, b"1234"), b"56789"),
            crc32c(0, b"123456789")
        );
    }

    #[test]
    fn crc64_check_values() {
        assert_eq!(crc64(b"123456789"), 0xAE8B_1486_0A79_9888);
        assert_eq!(crc64(b"a"), 0x8C2F_8445_B4CB_FC3C);
        assert_eq!(crc64(b"hashkey"), 0x1299_D9B0_6672_773A);
        assert_eq!(crc64(b""), 0);
    }
}

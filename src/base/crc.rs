//! Table-driven CRC-32C and CRC-64 (the "Jones"/NVME polynomial) as used by Pegasus:
//! CRC-64 hashes keys to partitions, CRC-32C checksums mutation-log blocks.

const fn make_crc32_table(poly: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            k += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn make_crc64_table(poly: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            k += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C_TABLE: [u32; 256] = make_crc32_table(0x82F6_3B78);
static CRC64_TABLE: [u64; 256] = make_crc64_table(0x9A6C_9329_AC4B_C9B5);

/// CRC-32C continuing from `init` (the previous CRC; 0 to start).
pub fn crc32c(init: u32, data: &[u8]) -> u32 {
    let mut crc = !init;
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// CRC-64 continuing from `init` (the previous CRC; 0 to start).
pub fn crc64(init: u64, data: &[u8]) -> u64 {
    let mut crc = !init;
    for &b in data {
        crc = CRC64_TABLE[((crc ^ b as u64) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        assert_eq!(CRC32C_TABLE[1], 0xF26B_8303);
        assert_eq!(
            crc32c(crc32c(0, b"1234"), b"56789"),
            crc32c(0, b"123456789")
        );
    }

    #[test]
    fn crc64_check_values() {
        assert_eq!(crc64(0, b"123456789"), 0xAE8B_1486_0A79_9888);
        assert_eq!(crc64(0, b"a"), 0x8C2F_8445_B4CB_FC3C);
        assert_eq!(crc64(0, b"hashkey"), 0x1299_D9B0_6672_773A);
        assert_eq!(crc64(0, b""), 0);
        assert_eq!(CRC64_TABLE[1], 0x7F6E_F0C8_3035_8979);
        assert_eq!(CRC64_TABLE[128], 0x9A6C_9329_AC4B_C9B5);
    }
}

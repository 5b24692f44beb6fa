//! A small bounds-checked reader of thrift binary encoding, used by the framing layer for
//! message begins and header structs; it never panics and never allocates from a length it
//! has not checked against the bytes present.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

pub type Result<T> = std::result::Result<T, DecodeError>;

const MAX_SKIP_DEPTH: u32 = 64;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(DecodeError)?;
        if end > self.buf.len() {
            return Err(DecodeError);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn i16(&mut self) -> Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn binary(&mut self) -> Result<&'a [u8]> {
        let n = self.i32()?;
        if n < 0 {
            return Err(DecodeError);
        }
        self.take(n as usize)
    }

    /// A UTF-8 string of at most `max` bytes.
    pub fn string_max(&mut self, max: usize) -> Result<String> {
        let b = self.binary()?;
        if b.len() > max {
            return Err(DecodeError);
        }
        std::str::from_utf8(b)
            .map(|s| s.to_string())
            .map_err(|_| DecodeError)
    }

    /// Reads a field header: (type, id); type 0 is STOP (id 0).
    pub fn field_header(&mut self) -> Result<(u8, i16)> {
        let t = self.byte()?;
        if t == 0 {
            return Ok((0, 0));
        }
        Ok((t, self.i16()?))
    }

    pub fn skip(&mut self, ttype: u8) -> Result<()> {
        self.skip_depth(ttype, 0)
    }

    fn skip_depth(&mut self, ttype: u8, depth: u32) -> Result<()> {
        if depth > MAX_SKIP_DEPTH {
            return Err(DecodeError);
        }
        match ttype {
            2 | 3 => self.take(1).map(|_| ()),
            4 | 10 | 9 => self.take(8).map(|_| ()),
            6 => self.take(2).map(|_| ()),
            8 => self.take(4).map(|_| ()),
            11 => self.binary().map(|_| ()),
            12 => loop {
                let (t, _) = self.field_header()?;
                if t == 0 {
                    return Ok(());
                }
                self.skip_depth(t, depth + 1)?;
            },
            13 => {
                let kt = self.byte()?;
                let vt = self.byte()?;
                let n = self.count()?;
                for _ in 0..n {
                    self.skip_depth(kt, depth + 1)?;
                    self.skip_depth(vt, depth + 1)?;
                }
                Ok(())
            }
            14 | 15 => {
                let et = self.byte()?;
                let n = self.count()?;
                for _ in 0..n {
                    self.skip_depth(et, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(DecodeError),
        }
    }

    /// A container element count, which can never exceed the bytes left.
    fn count(&mut self) -> Result<usize> {
        let n = self.i32()?;
        if n < 0 || n as usize > self.buf.len() - self.pos {
            return Err(DecodeError);
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.binary(), Err(DecodeError));
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert_eq!(r.binary(), Err(DecodeError));
        // A list claiming 2^31-1 elements of a 0-byte-less type.
        let mut r = Reader::new(&[8, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(r.skip(15), Err(DecodeError));
        // Deep nesting is refused rather than recursing without limit.
        let deep = vec![12u8, 0, 1].repeat(100);
        let mut r = Reader::new(&deep);
        assert_eq!(r.skip(12), Err(DecodeError));
    }
}

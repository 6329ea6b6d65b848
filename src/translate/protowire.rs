//! The protobuf wire-format reader of the translators' hot paths: it walks a message's fields
//! and hands out borrowed slices (strings, bytes, sub-messages) instead of decoding into owned
//! structs, so translating a batch allocates only what the output needs. It knows no schema;
//! callers name the message and field they read, and every mismatch prost would refuse
//! (truncation, varint overflow, field 0, a wire type that does not fit the field, invalid
//! UTF-8) is a typed [`ReadError`] naming the message, never a panic. Used by the Loki and
//! the remote-write translators.

use thiserror::Error;

/// Why an encoded request could not be read. Always a typed error, never a panic.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("truncated protobuf: {0} ends early")]
    Truncated(&'static str),
    #[error("invalid protobuf: varint overflow in {0}")]
    VarintOverflow(&'static str),
    #[error("invalid protobuf: invalid field key in {0}")]
    InvalidKey(&'static str),
    #[error("invalid protobuf: field {field} of {msg} has wire type {got}")]
    WireType {
        msg: &'static str,
        field: u32,
        got: u8,
    },
    #[error("invalid protobuf: unsupported wire type {got} in {msg}")]
    UnsupportedWireType { msg: &'static str, got: u8 },
    #[error("invalid UTF-8 in string field {field} of {msg}")]
    Utf8 { msg: &'static str, field: u32 },
    #[error("invalid protobuf: {0}")]
    Decode(String),
}

impl From<prost::DecodeError> for ReadError {
    fn from(e: prost::DecodeError) -> Self {
        ReadError::Decode(e.to_string())
    }
}

/// One field's payload, by wire type.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
    /// A start-group field (wire type 3); not skipped here, see the module docs.
    Group,
}

impl<'a> Field<'a> {
    fn wire_type(&self) -> u8 {
        match self {
            Field::Varint(_) => 0,
            Field::I64(_) => 1,
            Field::Len(_) => 2,
            Field::Group => 3,
            Field::I32(_) => 5,
        }
    }

    pub fn mismatch(&self, msg: &'static str, field: u32) -> ReadError {
        ReadError::WireType {
            msg,
            field,
            got: self.wire_type(),
        }
    }

    #[inline]
    pub fn bytes(self, msg: &'static str, field: u32) -> Result<&'a [u8], ReadError> {
        match self {
            Field::Len(b) => Ok(b),
            other => Err(other.mismatch(msg, field)),
        }
    }

    #[inline]
    pub fn str(self, msg: &'static str, field: u32) -> Result<&'a str, ReadError> {
        let b = self.bytes(msg, field)?;
        utf8(b).ok_or(ReadError::Utf8 { msg, field })
    }

    #[inline]
    pub fn varint(self, msg: &'static str, field: u32) -> Result<u64, ReadError> {
        match self {
            Field::Varint(v) => Ok(v),
            other => Err(other.mismatch(msg, field)),
        }
    }

    #[inline]
    pub fn fixed64(self, msg: &'static str, field: u32) -> Result<u64, ReadError> {
        match self {
            Field::I64(v) => Ok(v),
            other => Err(other.mismatch(msg, field)),
        }
    }

    #[inline]
    pub fn fixed32(self, msg: &'static str, field: u32) -> Result<u32, ReadError> {
        match self {
            Field::I32(v) => Ok(v),
            other => Err(other.mismatch(msg, field)),
        }
    }
}

/// UTF-8 check with a fast path for ASCII, the usual case for keys and short values.
#[inline(always)]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        simdutf8::basic::from_utf8(b).ok()
    }
}

/// Iterates the fields of one encoded message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    msg: &'static str,
}

impl<'a> Fields<'a> {
    #[inline]
    pub fn new(buf: &'a [u8], msg: &'static str) -> Self {
        Fields { buf, pos: 0, msg }
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, ReadError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            // Two bytes (128 to 16383: lengths of log lines, records, attribute lists).
            Some(&b) => match self.buf.get(self.pos + 1) {
                Some(&c) if c < 0x80 => {
                    self.pos += 2;
                    Ok(u64::from(b & 0x7f) | (u64::from(c) << 7))
                }
                _ => self.varint_slow(),
            },
            None => Err(ReadError::Truncated(self.msg)),
        }
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, ReadError> {
        let mut result = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ReadError::Truncated(self.msg));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ReadError::VarintOverflow(self.msg));
            }
            result |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(result);
            }
        }
        Err(ReadError::VarintOverflow(self.msg))
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.buf.len() - self.pos {
            return Err(ReadError::Truncated(self.msg));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A little-endian fixed-width payload (wire types 1 and 5).
    #[inline(always)]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A length-delimited payload (wire type 2): its varint length, then that many bytes.
    #[inline(always)]
    fn len_payload(&mut self) -> Result<&'a [u8], ReadError> {
        let len = usize::try_from(self.varint()?).map_err(|_| ReadError::Truncated(self.msg))?;
        self.take(len)
    }

    /// The next byte without consuming it, `None` at the end of the message. Hot readers
    /// match it against the one-byte keys they expect (field numbers 1 to 15 with their
    /// wire type) and read the payload with [`Self::after_key_len`] and friends; any other
    /// byte goes through [`Self::next_field`], which applies every check.
    #[inline(always)]
    pub fn peek_key(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes a one-byte key seen with [`Self::peek_key`] and reads a length-delimited
    /// payload (wire type 2), as [`Self::next_field`] would.
    #[inline(always)]
    pub fn after_key_len(&mut self) -> Result<&'a [u8], ReadError> {
        self.pos += 1;
        self.len_payload()
    }

    /// [`Self::after_key_len`] for a `string` field: the payload must be UTF-8.
    #[inline(always)]
    pub fn after_key_str(&mut self, field: u32) -> Result<&'a str, ReadError> {
        let b = self.after_key_len()?;
        utf8(b).ok_or(ReadError::Utf8 {
            msg: self.msg,
            field,
        })
    }

    /// Consumes a one-byte key and reads a varint payload (wire type 0).
    #[inline(always)]
    pub fn after_key_varint(&mut self) -> Result<u64, ReadError> {
        self.pos += 1;
        self.varint()
    }

    /// Consumes a one-byte key and reads a fixed 64-bit payload (wire type 1).
    #[inline(always)]
    pub fn after_key_fixed64(&mut self) -> Result<u64, ReadError> {
        self.pos += 1;
        self.take_array().map(u64::from_le_bytes)
    }

    /// Consumes a one-byte key and reads a fixed 32-bit payload (wire type 5).
    #[inline(always)]
    pub fn after_key_fixed32(&mut self) -> Result<u32, ReadError> {
        self.pos += 1;
        self.take_array().map(u32::from_le_bytes)
    }

    /// The next `(field number, payload)`, `None` at the end of the message.
    #[inline(always)]
    pub fn next_field(&mut self) -> Result<Option<(u32, Field<'a>)>, ReadError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) || key >> 3 == 0 {
            return Err(ReadError::InvalidKey(self.msg));
        }
        let field = (key >> 3) as u32;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::I64(u64::from_le_bytes(self.take_array()?)),
            2 => Field::Len(self.len_payload()?),
            3 => {
                // The group's contents follow; the caller gives up on this message.
                self.pos = self.buf.len();
                Field::Group
            }
            5 => Field::I32(u32::from_le_bytes(self.take_array()?)),
            got => {
                return Err(ReadError::UnsupportedWireType {
                    msg: self.msg,
                    got: got as u8,
                });
            }
        };
        Ok(Some((field, f)))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_field() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                // Stop after the first error: the rest of the buffer is not trustworthy.
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// The fields of message `msg` encoded in `buf`, as an iterator.
pub fn fields<'a>(buf: &'a [u8], msg: &'static str) -> Fields<'a> {
    Fields::new(buf, msg)
}

impl Field<'_> {
    /// A `double` field.
    #[inline]
    pub fn f64(self, msg: &'static str, field: u32) -> Result<f64, ReadError> {
        Ok(f64::from_bits(self.fixed64(msg, field)?))
    }

    /// A `sint32` field (zigzag).
    #[inline]
    pub fn sint32(self, msg: &'static str, field: u32) -> Result<i32, ReadError> {
        let v = self.varint(msg, field)? as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
}

/// Appends one occurrence of a repeated `fixed64`/`double` field (packed or not) to `out`.
pub fn push_fixed64s(
    v: Field<'_>,
    msg: &'static str,
    field: u32,
    out: &mut Vec<u64>,
) -> Result<(), ReadError> {
    match v {
        Field::I64(x) => out.push(x),
        Field::Len(b) => {
            if b.len() % 8 != 0 {
                return Err(ReadError::Truncated(msg));
            }
            out.extend(b.chunks_exact(8).map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            }));
        }
        other => return Err(other.mismatch(msg, field)),
    }
    Ok(())
}

/// Appends one occurrence of a repeated varint field (packed or not) to `out`.
pub fn push_varints(
    v: Field<'_>,
    msg: &'static str,
    field: u32,
    out: &mut Vec<u64>,
) -> Result<(), ReadError> {
    match v {
        Field::Varint(x) => out.push(x),
        Field::Len(b) => {
            let mut f = Fields::new(b, msg);
            while f.pos < b.len() {
                out.push(f.varint()?);
            }
        }
        other => return Err(other.mismatch(msg, field)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type_and_rejects_damage() {
        // field 1 varint 150, field 2 fixed64 1.5, field 3 "hi", field 4 fixed32 7
        let mut buf = vec![0x08, 0x96, 0x01, 0x11];
        buf.extend_from_slice(&1.5f64.to_le_bytes());
        buf.extend_from_slice(&[0x1a, 0x02, b'h', b'i', 0x25, 7, 0, 0, 0]);
        let got: Vec<_> = fields(&buf, "M").collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].1.varint("M", 1), Ok(150));
        assert_eq!(got[1].1.f64("M", 2), Ok(1.5));
        assert_eq!(got[2].1.str("M", 3), Ok("hi"));
        assert_eq!(got[3].1.fixed32("M", 4), Ok(7));
        // a wire type that does not fit the field is refused, naming it
        assert_eq!(
            got[0].1.str("M", 1),
            Err(ReadError::WireType {
                msg: "M",
                field: 1,
                got: 0
            })
        );
        for cut in 1..buf.len() {
            let r: Result<Vec<_>, _> = fields(&buf[..cut], "M").collect();
            assert!(
                r.is_err() || cut == 3 || cut == 12 || cut == 16,
                "cut {cut}"
            );
        }
        assert!(fields(&[0x0e], "M").next().unwrap().is_err());
        assert!(fields(&[0x00], "M").next().unwrap().is_err());
        let (_, bad) = fields(&[0x1a, 0x01, 0xff], "M").next().unwrap().unwrap();
        assert!(bad.str("M", 3).is_err());
        let mut v = Vec::new();
        assert!(push_fixed64s(Field::Len(&[1, 2, 3]), "M", 1, &mut v).is_err());
        push_varints(Field::Len(&[0x96, 0x01, 0x05]), "M", 1, &mut v).unwrap();
        assert_eq!(v, vec![150, 5]);
        assert_eq!(Field::Varint(3).sint32("M", 1), Ok(-2));
        assert_eq!(Field::Varint(4).sint32("M", 1), Ok(2));
    }
}

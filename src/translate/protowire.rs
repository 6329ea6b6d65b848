//! A minimal protobuf wire-format reader for the translators' hot paths: it walks a message's
//! fields and hands out borrowed slices (strings, bytes, sub-messages) instead of decoding
//! into owned structs, so translating a batch allocates only what the output needs. It knows
//! no schema; the translators name the fields they read. Errors are typed and never panic.

use thiserror::Error;

/// Why a buffer is not a well-formed protobuf message.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("truncated message")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintOverflow,
    #[error("unsupported wire type {0}")]
    WireType(u8),
    #[error("field number 0")]
    FieldZero,
    #[error("invalid UTF-8 in a string field")]
    Utf8,
    #[error("packed field length is not a multiple of 8")]
    PackedLength,
}

/// One field's value as it is on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// A varint field (`int32`, `int64`, `uint*`, `bool`, `enum`); other wire types read as 0.
    pub fn varint(self) -> u64 {
        match self {
            Value::Varint(v) => v,
            _ => 0,
        }
    }

    /// A `fixed64`/`double`/`sfixed64` field's bits; other wire types read as 0.
    pub fn fixed64(self) -> u64 {
        match self {
            Value::Fixed64(v) => v,
            _ => 0,
        }
    }

    /// A `double` field.
    pub fn f64(self) -> f64 {
        f64::from_bits(self.fixed64())
    }

    /// A length-delimited field's bytes (empty for other wire types).
    pub fn bytes(self) -> &'a [u8] {
        match self {
            Value::Len(b) => b,
            _ => &[],
        }
    }

    /// A `string` field, checked for UTF-8 as prost would.
    pub fn str(self) -> Result<&'a str, ReadError> {
        simdutf8::basic::from_utf8(self.bytes()).map_err(|_| ReadError::Utf8)
    }

    /// A `sint32` field (zigzag).
    pub fn sint32(self) -> i32 {
        let v = self.varint() as u32;
        ((v >> 1) as i32) ^ -((v & 1) as i32)
    }
}

/// Iterator over the fields of one message: `(field number, value)`.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// The fields of `buf`.
pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ReadError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(ReadError::Truncated)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(ReadError::VarintOverflow)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], ReadError> {
    let end = pos.checked_add(n).ok_or(ReadError::Truncated)?;
    let s = buf.get(*pos..end).ok_or(ReadError::Truncated)?;
    *pos = end;
    Ok(s)
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, Value<'a>), ReadError> {
        let key = read_varint(self.buf, &mut self.pos)?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(ReadError::FieldZero);
        }
        let v = match (key & 7) as u8 {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => {
                let b = take(self.buf, &mut self.pos, 8)?;
                Value::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| ReadError::Truncated)?,
                ))
            }
            2 => {
                let n = read_varint(self.buf, &mut self.pos)?;
                let n = usize::try_from(n).map_err(|_| ReadError::Truncated)?;
                Value::Len(take(self.buf, &mut self.pos, n)?)
            }
            5 => {
                let b = take(self.buf, &mut self.pos, 4)?;
                Value::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| ReadError::Truncated)?,
                ))
            }
            w => return Err(ReadError::WireType(w)),
        };
        Ok((field, v))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_field();
        if r.is_err() {
            // Stop after the first error: the rest of the buffer is not trustworthy.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

/// Appends a repeated `fixed64`/`double` field occurrence (packed or not) to `out` as bits.
pub fn push_fixed64s(v: Value<'_>, out: &mut Vec<u64>) -> Result<(), ReadError> {
    match v {
        Value::Fixed64(x) => out.push(x),
        Value::Len(b) => {
            if b.len() % 8 != 0 {
                return Err(ReadError::PackedLength);
            }
            out.extend(b.chunks_exact(8).map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            }));
        }
        _ => {}
    }
    Ok(())
}

/// Appends a repeated varint field occurrence (packed or not) to `out`.
pub fn push_varints(v: Value<'_>, out: &mut Vec<u64>) -> Result<(), ReadError> {
    match v {
        Value::Varint(x) => out.push(x),
        Value::Len(b) => {
            let mut pos = 0;
            while pos < b.len() {
                out.push(read_varint(b, &mut pos)?);
            }
        }
        _ => {}
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
        let got: Vec<_> = fields(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0], (1, Value::Varint(150)));
        assert_eq!(got[1].1.f64(), 1.5);
        assert_eq!(got[2].1.str(), Ok("hi"));
        assert_eq!(got[3], (4, Value::Fixed32(7)));
        for cut in 1..buf.len() {
            let r: Result<Vec<_>, _> = fields(&buf[..cut]).collect();
            assert!(
                r.is_err() || cut == 3 || cut == 12 || cut == 16,
                "cut {cut}"
            );
        }
        assert_eq!(fields(&[0x0b]).next(), Some(Err(ReadError::WireType(3))));
        assert_eq!(fields(&[0x00]).next(), Some(Err(ReadError::FieldZero)));
        assert_eq!(
            fields(&[0x1a, 0x01, 0xff]).next().unwrap().unwrap().1.str(),
            Err(ReadError::Utf8)
        );
        let mut v = Vec::new();
        assert_eq!(
            push_fixed64s(Value::Len(&[1, 2, 3]), &mut v),
            Err(ReadError::PackedLength)
        );
        push_varints(Value::Len(&[0x96, 0x01, 0x05]), &mut v).unwrap();
        assert_eq!(v, vec![150, 5]);
        assert_eq!(Value::Varint(3).sint32(), -2);
        assert_eq!(Value::Varint(4).sint32(), 2);
    }
}

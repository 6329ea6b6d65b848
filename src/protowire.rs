//! The one low-level reader of the protobuf wire format (the encoding of the Protocol Buffers
//! "Encoding" guide: varints, field keys, the wire types VARINT, I64, LEN and I32). It walks a
//! message's fields and hands out borrowed slices (strings, bytes, sub-messages) instead of
//! decoding into owned structs, so reading allocates nothing.
//!
//! Both sides of the data path read through it: the receive-path validation and item counting
//! (`pipeline::wire`, a schema-driven walker) and the export-path translators
//! (`translate::prometheus`, `translate::loki`). It lives at the crate root because it belongs
//! to neither: it is the lowest layer under both, knows no schema (callers name the message and
//! field they read), and makes "accepted at the edge" and "readable by the translator" rest on
//! the same checks.
//!
//! Every input prost would refuse when decoding is refused here too, as a typed [`ReadError`]
//! naming the message, never a panic: truncation, a varint longer than 10 bytes or above
//! `u64::MAX`, a field key above `u32::MAX` or with field number 0, a wire type that does not
//! fit the field, invalid UTF-8 in a `string`. [`MAX_DEPTH`] is the nesting limit every
//! recursive walker over this reader applies.

use thiserror::Error;

/// Wire type 0: a varint (`int32`, `int64`, `uint*`, `sint*`, `bool`, `enum`).
pub(crate) const VARINT: u8 = 0;
/// Wire type 1: 8 little-endian bytes (`fixed64`, `sfixed64`, `double`).
pub(crate) const I64: u8 = 1;
/// Wire type 2: a varint length, then that many bytes (`string`, `bytes`, messages, packed
/// repeated scalars).
pub(crate) const LEN: u8 = 2;
/// Wire type 3: start of a group (deprecated proto2 encoding).
const SGROUP: u8 = 3;
/// Wire type 5: 4 little-endian bytes (`fixed32`, `sfixed32`, `float`).
pub(crate) const I32: u8 = 5;

/// Maximum nesting depth of messages (an `AnyValue` inside an `AnyValue` ...) a walker
/// accepts. prost's own recursion limit is 100; staying below it keeps "accepted here"
/// implying "decodable by prost".
pub(crate) const MAX_DEPTH: u32 = 64;

/// The name of a wire type, as error messages print it.
pub(crate) fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        VARINT => "varint",
        I64 => "fixed64",
        LEN => "length-delimited",
        I32 => "fixed32",
        SGROUP | 4 => "group",
        _ => "undefined",
    }
}

/// Why encoded protobuf bytes could not be read (or, for the schema-driven validation, are
/// not a valid OTLP request). `&'static str` fields name the protobuf message being read
/// (e.g. `"Span"`, `"ExportLogsServiceRequest"`); `field` is a protobuf field number.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    /// A key, varint, fixed-width value or length-delimited payload runs past the end of the
    /// message's bytes.
    #[error("truncated protobuf: {0} ends early")]
    Truncated(&'static str),
    /// A varint longer than 10 bytes, or whose 10th byte carries bits above `u64::MAX`.
    #[error("invalid protobuf: varint overflow in {0}")]
    VarintOverflow(&'static str),
    /// A field key above `u32::MAX` (prost refuses it as "invalid key value").
    #[error("invalid protobuf: invalid field key in {0}")]
    InvalidKey(&'static str),
    /// A field key with field number 0, which protobuf reserves.
    #[error("invalid protobuf: field number 0 in {0}")]
    FieldZero(&'static str),
    /// A known field encoded with a wire type its declared type does not use.
    #[error(
        "invalid protobuf: field {field} of {msg} has wire type {got}, expected {}",
        wire_type_name(*want)
    )]
    WireType {
        /// The message holding the field.
        msg: &'static str,
        /// The field number.
        field: u32,
        /// The wire type found (0 to 7).
        got: u8,
        /// The wire type the field is declared with (0, 1, 2 or 5).
        want: u8,
    },
    /// A wire type this reader does not read where it occurs: 3 and 4 (groups) or the
    /// undefined 6 and 7.
    #[error("invalid protobuf: unsupported wire type {got} ({}) in {msg}", wire_type_name(*got))]
    UnsupportedWireType {
        /// The message holding the field.
        msg: &'static str,
        /// The wire type found.
        got: u8,
    },
    /// A `string` field whose bytes are not UTF-8 (proto3 requires it; prost refuses it).
    #[error("invalid UTF-8 in string field {field} of {msg}")]
    Utf8 {
        /// The message holding the field.
        msg: &'static str,
        /// The field number.
        field: u32,
    },
    /// A packed repeated `fixed64` / `double` field whose byte length is not a multiple of 8.
    #[error("invalid protobuf: packed fixed64 field of {msg} has {len} bytes")]
    PackedLength {
        /// The message holding the field.
        msg: &'static str,
        /// The payload's length in bytes.
        len: usize,
    },
    /// An OTLP trace or span id that is neither empty nor of its fixed length (16 bytes for
    /// `trace_id`, 8 for `span_id`): the Collector's pdata refuses such a request.
    #[error("{id} must be {want} bytes or empty, got {got}")]
    IdLength {
        /// The id as `Message.field`, e.g. `"Span.trace_id"`, `"Span.Link.span_id"`.
        id: &'static str,
        /// The required length in bytes.
        want: u8,
        /// The length found, in bytes (saturating at `u32::MAX`).
        got: u32,
    },
    /// Messages nested deeper than [`MAX_DEPTH`] levels.
    #[error("message nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// prost's decoder refused bytes a translator handed to it (its message text).
    #[error("invalid protobuf: {0}")]
    Decode(String),
}

impl From<prost::DecodeError> for ReadError {
    fn from(e: prost::DecodeError) -> Self {
        ReadError::Decode(e.to_string())
    }
}

/// One field's payload, by wire type. Fixed-width values are the raw little-endian words;
/// the typed accessors check the wire type against the one the field is declared with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Field<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    I64(u64),
    /// Wire type 2: the payload, without its length prefix.
    Len(&'a [u8]),
    /// Wire type 5.
    I32(u32),
    /// A start-group field (wire type 3). Its contents are not skipped: [`Fields`] stops at
    /// it, and the caller either refuses the message or hands it to prost.
    Group,
}

impl<'a> Field<'a> {
    fn wire_type(&self) -> u8 {
        match self {
            Field::Varint(_) => VARINT,
            Field::I64(_) => I64,
            Field::Len(_) => LEN,
            Field::Group => SGROUP,
            Field::I32(_) => I32,
        }
    }

    #[cold]
    fn mismatch(&self, msg: &'static str, field: u32, want: u8) -> ReadError {
        ReadError::WireType {
            msg,
            field,
            got: self.wire_type(),
            want,
        }
    }

    /// A `bytes` or message field's payload; [`ReadError::WireType`] unless wire type 2.
    #[inline]
    pub(crate) fn bytes(self, msg: &'static str, field: u32) -> Result<&'a [u8], ReadError> {
        match self {
            Field::Len(b) => Ok(b),
            other => Err(other.mismatch(msg, field, LEN)),
        }
    }

    /// A `string` field: as [`Self::bytes`], and [`ReadError::Utf8`] unless UTF-8.
    #[inline]
    pub(crate) fn str(self, msg: &'static str, field: u32) -> Result<&'a str, ReadError> {
        let b = self.bytes(msg, field)?;
        utf8(b).ok_or(ReadError::Utf8 { msg, field })
    }

    /// A varint field's value (callers cast it to the declared integer type, as prost does).
    #[inline]
    pub(crate) fn varint(self, msg: &'static str, field: u32) -> Result<u64, ReadError> {
        match self {
            Field::Varint(v) => Ok(v),
            other => Err(other.mismatch(msg, field, VARINT)),
        }
    }

    /// A `fixed64` field's value.
    #[inline]
    pub(crate) fn fixed64(self, msg: &'static str, field: u32) -> Result<u64, ReadError> {
        match self {
            Field::I64(v) => Ok(v),
            other => Err(other.mismatch(msg, field, I64)),
        }
    }

    /// A `fixed32` field's value.
    #[inline]
    pub(crate) fn fixed32(self, msg: &'static str, field: u32) -> Result<u32, ReadError> {
        match self {
            Field::I32(v) => Ok(v),
            other => Err(other.mismatch(msg, field, I32)),
        }
    }

    /// A `double` field.
    #[inline]
    pub(crate) fn f64(self, msg: &'static str, field: u32) -> Result<f64, ReadError> {
        Ok(f64::from_bits(self.fixed64(msg, field)?))
    }

    /// A `sint32` field (zigzag).
    #[inline]
    pub(crate) fn sint32(self, msg: &'static str, field: u32) -> Result<i32, ReadError> {
        let v = self.varint(msg, field)? as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
}

/// UTF-8 check with a fast path for ASCII, the usual case for keys and short values.
#[inline(always)]
pub(crate) fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        simdutf8::basic::from_utf8(b).ok()
    }
}

/// Reads the fields of one encoded message, front to back. The reading methods advance past
/// what they read; after an error the position is unspecified and the caller gives up on the
/// message (the [`Iterator`] implementation stops by itself).
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    msg: &'static str,
}

impl<'a> Fields<'a> {
    /// A reader over `buf`, the encoding of message `msg` (the name errors carry).
    #[inline]
    pub(crate) fn new(buf: &'a [u8], msg: &'static str) -> Self {
        Fields { buf, pos: 0, msg }
    }

    /// `true` when every byte has been read.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// One varint (at most 10 bytes, at most `u64::MAX`).
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Result<u64, ReadError> {
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
    pub(crate) fn peek_key(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes a one-byte key seen with [`Self::peek_key`] and reads a length-delimited
    /// payload (wire type 2), as [`Self::next_field`] would.
    #[inline(always)]
    pub(crate) fn after_key_len(&mut self) -> Result<&'a [u8], ReadError> {
        self.pos += 1;
        self.len_payload()
    }

    /// [`Self::after_key_len`] for a `string` field: the payload must be UTF-8.
    #[inline(always)]
    pub(crate) fn after_key_str(&mut self, field: u32) -> Result<&'a str, ReadError> {
        let b = self.after_key_len()?;
        utf8(b).ok_or(ReadError::Utf8 {
            msg: self.msg,
            field,
        })
    }

    /// Consumes a one-byte key and reads a varint payload (wire type 0).
    #[inline(always)]
    pub(crate) fn after_key_varint(&mut self) -> Result<u64, ReadError> {
        self.pos += 1;
        self.varint()
    }

    /// Consumes a one-byte key and reads a fixed 64-bit payload (wire type 1).
    #[inline(always)]
    pub(crate) fn after_key_fixed64(&mut self) -> Result<u64, ReadError> {
        self.pos += 1;
        self.take_array().map(u64::from_le_bytes)
    }

    /// Consumes a one-byte key and reads a fixed 32-bit payload (wire type 5).
    #[inline(always)]
    pub(crate) fn after_key_fixed32(&mut self) -> Result<u32, ReadError> {
        self.pos += 1;
        self.take_array().map(u32::from_le_bytes)
    }

    /// The next field key as `(field number, wire type)`, `None` at the end of the message.
    /// Refuses keys above `u32::MAX` and field number 0, as prost does. Read the payload
    /// next with [`Self::payload`].
    #[inline(always)]
    pub(crate) fn next_key(&mut self) -> Result<Option<(u32, u8)>, ReadError> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(ReadError::InvalidKey(self.msg));
        }
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(ReadError::FieldZero(self.msg));
        }
        Ok(Some((field, (key & 7) as u8)))
    }

    /// The payload of a field whose key [`Self::next_key`] returned with `wire_type`. A
    /// group (wire type 3) is returned as [`Field::Group`] and ends the reading (its
    /// contents are not walked); wire types 4, 6 and 7 are
    /// [`ReadError::UnsupportedWireType`].
    #[inline(always)]
    pub(crate) fn payload(&mut self, wire_type: u8) -> Result<Field<'a>, ReadError> {
        Ok(match wire_type {
            VARINT => Field::Varint(self.varint()?),
            I64 => Field::I64(u64::from_le_bytes(self.take_array()?)),
            LEN => Field::Len(self.len_payload()?),
            SGROUP => {
                // The group's contents follow; the caller gives up on this message.
                self.pos = self.buf.len();
                Field::Group
            }
            I32 => Field::I32(u32::from_le_bytes(self.take_array()?)),
            got => {
                return Err(ReadError::UnsupportedWireType { msg: self.msg, got });
            }
        })
    }

    /// The next `(field number, payload)`, `None` at the end of the message: [`Self::next_key`]
    /// then [`Self::payload`].
    #[inline(always)]
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Field<'a>)>, ReadError> {
        match self.next_key()? {
            Some((field, wire_type)) => Ok(Some((field, self.payload(wire_type)?))),
            None => Ok(None),
        }
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
pub(crate) fn fields<'a>(buf: &'a [u8], msg: &'static str) -> Fields<'a> {
    Fields::new(buf, msg)
}

/// Checks the payload of a packed repeated scalar field of message `msg` whose elements have
/// wire type `elem`: for fixed64 elements a length that is a multiple of 8
/// ([`ReadError::PackedLength`]), for varints a sequence of whole varints. Other element wire
/// types are not checked.
pub(crate) fn check_packed(body: &[u8], elem: u8, msg: &'static str) -> Result<(), ReadError> {
    match elem {
        I64 if body.len() % 8 != 0 => Err(ReadError::PackedLength {
            msg,
            len: body.len(),
        }),
        VARINT => {
            let mut f = Fields::new(body, msg);
            while !f.is_empty() {
                f.varint()?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Appends one occurrence of a repeated `fixed64`/`double` field (packed or not) to `out`.
pub(crate) fn push_fixed64s(
    v: Field<'_>,
    msg: &'static str,
    field: u32,
    out: &mut Vec<u64>,
) -> Result<(), ReadError> {
    match v {
        Field::I64(x) => out.push(x),
        Field::Len(b) => {
            check_packed(b, I64, msg)?;
            out.extend(b.chunks_exact(8).map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            }));
        }
        other => return Err(other.mismatch(msg, field, I64)),
    }
    Ok(())
}

/// Appends one occurrence of a repeated varint field (packed or not) to `out`.
pub(crate) fn push_varints(
    v: Field<'_>,
    msg: &'static str,
    field: u32,
    out: &mut Vec<u64>,
) -> Result<(), ReadError> {
    match v {
        Field::Varint(x) => out.push(x),
        Field::Len(b) => {
            let mut f = Fields::new(b, msg);
            while !f.is_empty() {
                out.push(f.varint()?);
            }
        }
        other => return Err(other.mismatch(msg, field, VARINT)),
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
                got: 0,
                want: LEN,
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

    #[test]
    fn keys_are_checked_as_prost_does() {
        // field number 0
        assert_eq!(
            fields(&[0x00, 0x01], "M").next(),
            Some(Err(ReadError::FieldZero("M")))
        );
        // a 5-byte key above u32::MAX
        assert_eq!(
            fields(&[0xd0, 0xcf, 0xcf, 0xe8, 0x7a, 0x21], "M").next(),
            Some(Err(ReadError::InvalidKey("M")))
        );
        // 11 continuation bytes, and a 10th byte above 1
        let mut long = vec![0x08];
        long.extend([0xff; 10]);
        assert_eq!(
            fields(&long, "M").next(),
            Some(Err(ReadError::VarintOverflow("M")))
        );
        let mut big = vec![0x08];
        big.extend([0xff; 9]);
        big.push(0x02);
        assert_eq!(
            fields(&big, "M").next(),
            Some(Err(ReadError::VarintOverflow("M")))
        );
        // the largest varint reads
        let mut max = vec![0x08];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert_eq!(
            fields(&max, "M")
                .next()
                .map(|r| r.map(|(n, f)| (n, f.varint("M", n)))),
            Some(Ok((1, Ok(u64::MAX))))
        );
    }

    #[test]
    fn wire_types_beyond_the_four_are_refused_or_stop_the_reader() {
        // wire type 4 (end group), 6 and 7 are refused, naming the type
        for (key, name) in [(0x0c, "group"), (0x0e, "undefined"), (0x0f, "undefined")] {
            let e = fields(&[key, 0x00], "M").next().unwrap().unwrap_err();
            assert_eq!(
                e,
                ReadError::UnsupportedWireType {
                    msg: "M",
                    got: key & 7
                }
            );
            assert!(e.to_string().contains(name), "{e}");
        }
        // a start group is handed out once, then the reader stops
        let mut f = fields(&[0x0b, 0x08, 0x01, 0x0c], "M");
        assert!(matches!(f.next(), Some(Ok((1, Field::Group)))));
        assert!(f.next().is_none());
    }

    #[test]
    fn errors_stay_small() {
        // Every reading call returns `Result<_, ReadError>`: a larger error makes every one of
        // them move more bytes on the hot paths.
        assert!(std::mem::size_of::<ReadError>() <= 32);
    }

    #[test]
    fn packed_payloads_are_checked() {
        assert_eq!(check_packed(&[0; 16], I64, "M"), Ok(()));
        assert_eq!(
            check_packed(&[0; 9], I64, "M"),
            Err(ReadError::PackedLength { msg: "M", len: 9 })
        );
        assert_eq!(check_packed(&[0x96, 0x01, 0x05], VARINT, "M"), Ok(()));
        assert_eq!(
            check_packed(&[0x05, 0x96], VARINT, "M"),
            Err(ReadError::Truncated("M"))
        );
    }
}

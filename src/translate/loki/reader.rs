//! Zero-copy reader for encoded OTLP logs (`ExportLogsServiceRequest` wire bytes): walks the
//! protobuf fields directly and hands out borrowed `&str` / `&[u8]` for keys, values and
//! bodies, so the hot path allocates nothing per log record.
//!
//! It follows prost's decoding rules for everything it reads (varints of at most 10 bytes,
//! field number 0 and wire type mismatches rejected, strings must be UTF-8, the last value
//! of a scalar field wins, unknown fields skipped) so that whatever prost accepts is read the
//! same way. The rare shapes whose prost semantics involve merging (a record body or
//! attribute value holding a map or an array, a message field repeated inside a record, a
//! group-encoded unknown field) are not interpreted here: the record is reported as
//! [`Parsed::Complex`] and the caller decodes just that record with prost.

pub use crate::protowire::ReadError;
use crate::protowire::{Field, Fields};

/// A scalar attribute or body value (`AnyValue` without maps and arrays).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val<'a> {
    /// No `AnyValue` message at all.
    Missing,
    /// An `AnyValue` with no value set.
    Empty,
    /// `stringValue` (UTF-8 checked).
    Str(&'a str),
    /// `boolValue`.
    Bool(bool),
    /// `intValue`.
    Int(i64),
    /// `doubleValue`.
    Double(f64),
    /// `bytesValue`, raw bytes.
    Bytes(&'a [u8]),
}

/// One attribute.
#[derive(Clone, Copy, Debug)]
pub struct Kv<'a> {
    /// Attribute key.
    pub key: &'a str,
    /// Attribute value.
    pub value: Val<'a>,
}

/// The fields of one log record the translators use; its attributes go to a separate vector.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// `time_unix_nano`: when the event happened, Unix nanoseconds; 0 when unset.
    pub time: u64,
    /// `observed_time_unix_nano`: when it was collected, Unix nanoseconds; 0 when unset.
    pub observed: u64,
    /// `severity_number` (OTLP logs data model: 1-24, 0 unspecified).
    pub severity_number: i32,
    /// `severity_text` as sent (`INFO`, `warn`, ...).
    pub severity_text: &'a str,
    /// The record's body.
    pub body: Val<'a>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags (low byte: sampled bit).
    pub flags: u32,
    /// Trace id bytes (16 when set, empty when not).
    pub trace_id: &'a [u8],
    /// Span id bytes (8 when set, empty when not).
    pub span_id: &'a [u8],
    /// `event_name` (empty when not an event).
    pub event_name: &'a str,
}

impl Record<'_> {
    /// `time_unix_nano`, else `observed_time_unix_nano`, else `now` (see `super::record_time`).
    #[inline]
    pub fn ts(&self, now_nanos: i64) -> i64 {
        if self.time != 0 {
            self.time.min(i64::MAX as u64) as i64
        } else if self.observed != 0 {
            self.observed.min(i64::MAX as u64) as i64
        } else {
            now_nanos
        }
    }
}

/// A log record read from the wire.
pub enum Parsed<'a> {
    /// Read completely here, without prost.
    Simple(Record<'a>),
    /// Needs prost's merge semantics: decode this record with prost (see module docs).
    Complex,
}

const LOG_RECORD: &str = "LogRecord";
const KEY_VALUE: &str = "KeyValue";
const ANY_VALUE: &str = "AnyValue";

/// `AnyValue` -> a scalar, `None` when it is a map, an array or otherwise needs prost.
/// The usual one-byte keys are matched directly; anything else goes through the checked
/// generic path (see [`Fields::peek_key`]).
#[inline(always)]
fn any_value(buf: &[u8]) -> Result<Option<Val<'_>>, ReadError> {
    let mut f = Fields::new(buf, ANY_VALUE);
    let mut v = Val::Empty;
    while let Some(key) = f.peek_key() {
        v = match key {
            0x0a => Val::Str(f.after_key_str(1)?),
            0x10 => Val::Bool(f.after_key_varint()? != 0),
            0x18 => Val::Int(f.after_key_varint()? as i64),
            0x21 => Val::Double(f64::from_bits(f.after_key_fixed64()?)),
            0x3a => Val::Bytes(f.after_key_len()?),
            _ => {
                let Some((n, x)) = f.next_field()? else { break };
                match n {
                    1 => Val::Str(x.str(ANY_VALUE, n)?),
                    2 => Val::Bool(x.varint(ANY_VALUE, n)? != 0),
                    3 => Val::Int(x.varint(ANY_VALUE, n)? as i64),
                    4 => Val::Double(f64::from_bits(x.fixed64(ANY_VALUE, n)?)),
                    7 => Val::Bytes(x.bytes(ANY_VALUE, n)?),
                    _ if matches!(x, Field::Group) => return Ok(None),
                    5 | 6 | 8 => return Ok(None),
                    _ => continue,
                }
            }
        };
    }
    Ok(Some(v))
}

/// `KeyValue` -> `Kv`, `None` when it needs prost.
#[inline(always)]
fn key_value(buf: &[u8]) -> Result<Option<Kv<'_>>, ReadError> {
    let mut f = Fields::new(buf, KEY_VALUE);
    let mut key = "";
    let mut value = Val::Missing;
    let mut seen_value = false;
    while let Some(k) = f.peek_key() {
        let payload = match k {
            0x0a => {
                key = f.after_key_str(1)?;
                continue;
            }
            0x12 => f.after_key_len()?,
            _ => {
                let Some((n, x)) = f.next_field()? else { break };
                match n {
                    1 => {
                        key = x.str(KEY_VALUE, n)?;
                        continue;
                    }
                    2 => {
                        if seen_value {
                            return Ok(None);
                        }
                        x.bytes(KEY_VALUE, n)?
                    }
                    _ if matches!(x, Field::Group) => return Ok(None),
                    3 => {
                        x.varint(KEY_VALUE, n)?;
                        continue;
                    }
                    _ => continue,
                }
            }
        };
        if seen_value {
            return Ok(None); // two AnyValues merge: prost's job
        }
        seen_value = true;
        match any_value(payload)? {
            Some(v) => value = v,
            None => return Ok(None),
        }
    }
    Ok(Some(Kv { key, value }))
}

/// Reads one encoded `LogRecord`; its attributes replace the contents of `attrs`.
pub fn record<'a>(buf: &'a [u8], attrs: &mut Vec<Kv<'a>>) -> Result<Parsed<'a>, ReadError> {
    attrs.clear();
    let mut r = Record {
        time: 0,
        observed: 0,
        severity_number: 0,
        severity_text: "",
        body: Val::Missing,
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: &[],
        span_id: &[],
        event_name: "",
    };
    let mut f = Fields::new(buf, LOG_RECORD);
    // One-byte keys of the fields in use are matched directly (the usual case); anything
    // else (unknown fields, wire type mismatches, long keys) takes the checked generic path.
    while let Some(key) = f.peek_key() {
        match key {
            0x09 => r.time = f.after_key_fixed64()?,
            0x59 => r.observed = f.after_key_fixed64()?,
            0x10 => r.severity_number = f.after_key_varint()? as i32,
            0x1a => r.severity_text = f.after_key_str(3)?,
            0x2a => {
                let b = f.after_key_len()?;
                if r.body != Val::Missing {
                    return Ok(Parsed::Complex);
                }
                match any_value(b)? {
                    Some(v) => r.body = v,
                    None => return Ok(Parsed::Complex),
                }
            }
            0x32 => match key_value(f.after_key_len()?)? {
                Some(kv) => attrs.push(kv),
                None => return Ok(Parsed::Complex),
            },
            0x38 => r.dropped_attributes_count = f.after_key_varint()? as u32,
            0x45 => r.flags = f.after_key_fixed32()?,
            0x4a => r.trace_id = f.after_key_len()?,
            0x52 => r.span_id = f.after_key_len()?,
            0x62 => r.event_name = f.after_key_str(12)?,
            _ => {
                let Some((n, x)) = f.next_field()? else { break };
                if generic_field(&mut r, n, x, attrs)? {
                    return Ok(Parsed::Complex);
                }
            }
        }
    }
    Ok(Parsed::Simple(r))
}

/// One `LogRecord` field on the checked generic path; `true` when the record needs prost.
#[inline(never)]
fn generic_field<'a>(
    r: &mut Record<'a>,
    n: u32,
    x: Field<'a>,
    attrs: &mut Vec<Kv<'a>>,
) -> Result<bool, ReadError> {
    match n {
        1 => r.time = x.fixed64(LOG_RECORD, n)?,
        11 => r.observed = x.fixed64(LOG_RECORD, n)?,
        2 => r.severity_number = x.varint(LOG_RECORD, n)? as i32,
        3 => r.severity_text = x.str(LOG_RECORD, n)?,
        5 => {
            if r.body != Val::Missing {
                return Ok(true);
            }
            match any_value(x.bytes(LOG_RECORD, n)?)? {
                Some(v) => r.body = v,
                None => return Ok(true),
            }
        }
        6 => match key_value(x.bytes(LOG_RECORD, n)?)? {
            Some(kv) => attrs.push(kv),
            None => return Ok(true),
        },
        7 => r.dropped_attributes_count = x.varint(LOG_RECORD, n)? as u32,
        8 => r.flags = x.fixed32(LOG_RECORD, n)?,
        9 => r.trace_id = x.bytes(LOG_RECORD, n)?,
        10 => r.span_id = x.bytes(LOG_RECORD, n)?,
        12 => r.event_name = x.str(LOG_RECORD, n)?,
        _ if matches!(x, Field::Group) => return Ok(true),
        _ => {}
    }
    Ok(false)
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends `v` in decimal.
#[inline]
pub fn push_int(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `v` in decimal.
#[inline]
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Whether a trace or span id is valid: `len` bytes, not all zero (see `super::id_hex`).
#[inline]
pub fn id_valid(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formatting() {
        for v in [0i64, 7, -7, 10, 200, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            push_i64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    /// Builds a record with one-byte keys (`long == false`, the hot path) or with the same
    /// keys as two-byte varints (valid protobuf, read by the generic path).
    fn record_bytes(long: bool) -> Vec<u8> {
        let key = |out: &mut Vec<u8>, field: u8, wire: u8| {
            let k = (field << 3) | wire;
            if long {
                out.extend_from_slice(&[k | 0x80, 0x00]);
            } else {
                out.push(k);
            }
        };
        let ld = |out: &mut Vec<u8>, field: u8, payload: &[u8]| {
            key(out, field, 2);
            out.push(payload.len() as u8);
            out.extend_from_slice(payload);
        };
        let any = |value: &dyn Fn(&mut Vec<u8>)| {
            let mut a = Vec::new();
            value(&mut a);
            a
        };
        let mut r = Vec::new();
        key(&mut r, 1, 1);
        r.extend_from_slice(&7u64.to_le_bytes());
        key(&mut r, 2, 0);
        r.push(9);
        ld(&mut r, 3, b"INFO");
        ld(&mut r, 5, &any(&|a| ld(a, 1, b"line")));
        let attrs: [(&[u8], Vec<u8>); 5] = [
            (b"s", any(&|a| ld(a, 1, b"v"))),
            (
                b"b",
                any(&|a| {
                    key(a, 2, 0);
                    a.push(1)
                }),
            ),
            (
                b"i",
                any(&|a| {
                    key(a, 3, 0);
                    a.push(5)
                }),
            ),
            (
                b"d",
                any(&|a| {
                    key(a, 4, 1);
                    a.extend_from_slice(&1.5f64.to_le_bytes())
                }),
            ),
            (b"y", any(&|a| ld(a, 7, &[1, 2]))),
        ];
        for (k, v) in attrs {
            let mut kv = Vec::new();
            ld(&mut kv, 1, k);
            ld(&mut kv, 2, &v);
            ld(&mut r, 6, &kv);
        }
        key(&mut r, 7, 0);
        r.push(2);
        key(&mut r, 8, 5);
        r.extend_from_slice(&1u32.to_le_bytes());
        ld(&mut r, 9, &[0xab; 16]);
        ld(&mut r, 10, &[0xcd; 8]);
        key(&mut r, 11, 1);
        r.extend_from_slice(&8u64.to_le_bytes());
        ld(&mut r, 12, b"ev");
        r
    }

    #[test]
    fn one_byte_key_shortcut_reads_what_the_generic_path_reads() {
        let (short, long) = (record_bytes(false), record_bytes(true));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (Ok(Parsed::Simple(x)), Ok(Parsed::Simple(y))) =
            (record(&short, &mut a), record(&long, &mut b))
        else {
            panic!("both are simple records");
        };
        assert_eq!(format!("{x:?} {a:?}"), format!("{y:?} {b:?}"));
        assert_eq!((x.time, x.observed, x.flags, x.event_name), (7, 8, 1, "ev"));
        assert_eq!(a.len(), 5);
        assert_eq!(a[3].value, Val::Double(1.5));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut attrs = Vec::new();
        for bad in [
            &[0x0a, 0x05, 0x01][..],         // truncated length
            &[0x00],                         // field 0
            &[0xff; 11],                     // varint overflow
            &[0x09, 1, 2],                   // truncated fixed64
            &[0x1a, 0x02, 0xff, 0xfe],       // invalid UTF-8 severity_text
            &[0x08, 0x01],                   // time as varint
            &[0x0f],                         // wire type 7
            &[0x32, 0x03, 0x0a, 0x01, 0xff], // invalid UTF-8 key
            &[0x2a, 0x02, 0x22, 0x01],       // truncated AnyValue double
        ] {
            assert!(record(bad, &mut attrs).is_err(), "{bad:?}");
        }
    }
}

//! The `otlp` format on the fast path (same output as [`super::otlp`], which stays the
//! reference). Per resource: stream selector, label names and resource metadata, computed
//! once by the reference code (and reused while consecutive resources are byte-identical, the
//! usual case for a batch of one SDK's requests). Per scope: scope metadata. Per record: the
//! entry is encoded straight into the output arena from the borrowed wire values.
//!
//! Metadata names must be unique within an entry (see [`super::otlp`]). Which name each pair
//! gets depends only on the stream labels, which record fields are present and the sequence
//! of attribute keys, so it is resolved once (with the reference rules) and memoized: records
//! with the same shape as the previous one reuse the resolved names and the pre-encoded
//! resource and scope pairs. Records the reader cannot take zero-copy (map or array values)
//! are decoded with prost and mapped by the reference code.

use super::Options;
use super::builder::PushBuilder;
use super::encode::{ld_len, put_line, put_varint};
use super::fast::Mapper;
use super::labels;
use super::otlp::{self, Metadata, Pair};
use super::reader::{self, Kv, Parsed, ReadError, Record, Val, push_i64};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::borrow::Cow;

/// Record fields in the order they claim metadata names.
const FIELD_NAMES: [&str; 8] = [
    "observed_timestamp",
    "severity_number",
    "severity_text",
    "dropped_attributes_count",
    "flags",
    "trace_id",
    "span_id",
    "event_name",
];

fn owned(pairs: Vec<Pair<'_>>) -> Vec<Pair<'static>> {
    pairs
        .into_iter()
        .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
        .collect()
}

/// Which of [`FIELD_NAMES`] a record has, one bit each.
fn present(r: &Record<'_>) -> u8 {
    let mut m = 0u8;
    m |= u8::from(r.time != 0 && r.observed != 0);
    m |= u8::from(r.severity_number != 0) << 1;
    m |= u8::from(!r.severity_text.is_empty()) << 2;
    m |= u8::from(r.dropped_attributes_count != 0) << 3;
    m |= u8::from(r.flags != 0) << 4;
    m |= u8::from(reader::id_valid(r.trace_id, 16)) << 5;
    m |= u8::from(reader::id_valid(r.span_id, 8)) << 6;
    m |= u8::from(!r.event_name.is_empty()) << 7;
    m
}

/// Resolved metadata names for one record shape.
#[derive(Default)]
struct Memo<'a> {
    valid: bool,
    mask: u8,
    keys: Vec<&'a str>,
    /// Encoded name field per record field and per attribute, `None` when the pair is
    /// dropped.
    field_names: [Option<Head>; 8],
    attr_names: Vec<Option<Head>>,
    /// The resource and scope pairs, encoded with their resolved names.
    tail: Vec<u8>,
}

impl<'a> Memo<'a> {
    #[inline]
    fn matches(&self, mask: u8, attrs: &[Kv<'a>]) -> bool {
        self.valid
            && self.mask == mask
            && self.keys.len() == attrs.len()
            && self
                .keys
                .iter()
                .zip(attrs)
                .all(|(k, kv)| same_key(k, kv.key))
    }

    fn rebuild(
        &mut self,
        mask: u8,
        attrs: &[Kv<'a>],
        label_names: &[String],
        tail_pairs: &[&[Pair<'static>]],
    ) {
        let mut md = Metadata {
            labels: label_names,
            pairs: Vec::new(),
        };
        let claim = |md: &mut Metadata<'_, '_>, name: &str| -> Option<Head> {
            let before = md.pairs.len();
            md.add(Cow::Owned(name.to_string()), Cow::Borrowed(""));
            md.pairs.get(before).map(|(n, _)| Head::new(n))
        };
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            self.field_names[i] = if mask & (1 << i) != 0 {
                claim(&mut md, name)
            } else {
                None
            };
        }
        self.attr_names.clear();
        for kv in attrs {
            let n = claim(&mut md, &labels::normalize(kv.key));
            self.attr_names.push(n);
        }
        self.tail.clear();
        for (n, v) in tail_pairs.iter().flat_map(|p| p.iter()) {
            if let Some(head) = claim(&mut md, n) {
                put_named_pair(&mut self.tail, &head, v.as_bytes());
            }
        }
        self.keys.clear();
        self.keys.extend(attrs.iter().map(|kv| kv.key));
        self.mask = mask;
        self.valid = true;
    }
}

/// Reused buffers of [`val_text`], and the text of the last float it formatted: formatting
/// a float costs more than writing the rest of its pair, and a float attribute often has
/// the same value in consecutive records.
#[derive(Default)]
pub(super) struct Scratch {
    tmp: String,
    float_bits: Option<u64>,
    float_text: String,
}

/// `AsString` of a scalar value (see [`super::value::as_string`]).
pub(super) fn val_text(out: &mut Vec<u8>, v: Val<'_>, scratch: &mut Scratch) {
    match v {
        Val::Missing | Val::Empty => {}
        Val::Str(s) => out.extend_from_slice(s.as_bytes()),
        Val::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Val::Int(i) => push_i64(out, i),
        Val::Double(d) => {
            if d.is_finite() {
                if scratch.float_bits != Some(d.to_bits()) {
                    scratch.float_text.clear();
                    super::value::write_float(&mut scratch.float_text, d);
                    scratch.float_bits = Some(d.to_bits());
                }
                out.extend_from_slice(scratch.float_text.as_bytes());
            } else {
                out.extend_from_slice(if d.is_nan() {
                    b"NaN"
                } else if d > 0.0 {
                    b"+Inf"
                } else {
                    b"-Inf"
                });
            }
        }
        Val::Bytes(b) => {
            use base64::Engine;
            scratch.tmp.clear();
            base64::engine::general_purpose::STANDARD.encode_string(b, &mut scratch.tmp);
            out.extend_from_slice(scratch.tmp.as_bytes());
        }
    }
}

/// Bytes of a [`Head`] kept inline: names of up to 29 bytes, nearly all of them.
const HEAD_INLINE: usize = 32;

/// A metadata pair's name field followed by its value's tag (`0x0a len name 0x12`), encoded
/// once per record shape (see [`Memo`]). Short heads live in a fixed-size array, so writing
/// one is a fixed-width copy rather than a call to `memcpy`: an entry has a dozen pairs of
/// about 25 bytes (measured: +7% records/s on `translate_loki/otlp_format`).
#[derive(Clone, Debug, PartialEq)]
enum Head {
    Inline { bytes: [u8; HEAD_INLINE], len: u8 },
    Long(Vec<u8>),
}

impl Head {
    fn new(name: &str) -> Head {
        let mut enc = Vec::with_capacity(name.len() + 3);
        if !name.is_empty() {
            enc.push(0x0a); // Pair.name = 1, left out when empty
            put_varint(&mut enc, name.len() as u64);
            enc.extend_from_slice(name.as_bytes());
        }
        enc.push(0x12); // Pair.value = 2
        match u8::try_from(enc.len()) {
            Ok(len) if enc.len() <= HEAD_INLINE => {
                let mut bytes = [0u8; HEAD_INLINE];
                bytes[..enc.len()].copy_from_slice(&enc);
                Head::Inline { bytes, len }
            }
            _ => Head::Long(enc),
        }
    }

    /// Encoded length of the name field alone (without the value's tag).
    #[inline(always)]
    fn name_len(&self) -> usize {
        match self {
            Head::Inline { len, .. } => usize::from(*len) - 1,
            Head::Long(b) => b.len() - 1,
        }
    }

    /// Appends the name field, and the value's tag when `with_tag`.
    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>, with_tag: bool) {
        let n = self.name_len() + usize::from(with_tag);
        match self {
            Head::Inline { bytes, .. } => {
                let at = out.len();
                out.extend_from_slice(bytes);
                out.truncate(at + n);
            }
            Head::Long(b) => out.extend_from_slice(b.get(..n).unwrap_or(b)),
        }
    }
}

/// Writes a metadata pair whose name is already encoded; same bytes as
/// [`super::encode::put_pair`].
#[inline(always)]
fn put_named_pair(arena: &mut Vec<u8>, head: &Head, v: &[u8]) {
    let mut len = head.name_len();
    if !v.is_empty() {
        len += ld_len(v.len());
    }
    arena.push(0x1a); // EntryAdapter.structuredMetadata = 3
    put_varint(arena, len as u64);
    head.put(arena, !v.is_empty());
    if !v.is_empty() {
        put_varint(arena, v.len() as u64);
        arena.extend_from_slice(v);
    }
}

#[inline]
fn put_num(arena: &mut Vec<u8>, name: &Option<Head>, v: impl itoa::Integer) {
    if let Some(n) = name {
        put_named_pair(arena, n, itoa::Buffer::new().format(v).as_bytes());
    }
}

/// Lower-case hex of 8 bytes at once: every nibble is spread to a byte of its own, then
/// turned into its digit with byte-wise arithmetic that cannot carry across bytes.
#[inline]
fn hex8(b: [u8; 8]) -> [u8; 16] {
    const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
    let mut v = u128::from(u64::from_be_bytes(b));
    v = (v | (v << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
    // 1 in the bytes whose nibble is 10 to 15: those become letters.
    let letters = ((v + ONES * 6) >> 4) & ONES;
    (v + ONES * u128::from(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// Lower-case hex of up to 16 bytes (longer ids are cut to their first 16).
#[inline]
fn hex_id<'b>(buf: &'b mut [u8; 32], id: &[u8]) -> &'b [u8] {
    let id = id.get(..16).unwrap_or(id);
    for (out, chunk) in buf.chunks_exact_mut(16).zip(id.chunks(8)) {
        let b = match <[u8; 8]>::try_from(chunk) {
            Ok(b) => b,
            Err(_) => {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                b
            }
        };
        out.copy_from_slice(&hex8(b));
    }
    &buf[..2 * id.len()]
}

#[inline]
fn put_hex(arena: &mut Vec<u8>, name: &Option<Head>, id: &[u8]) {
    if let Some(n) = name {
        let mut buf = [0u8; 32];
        put_named_pair(arena, n, hex_id(&mut buf, id));
    }
}

/// Equality of two short strings (attribute keys) without a call to `memcmp`: two
/// overlapping word loads cover lengths 4 to 16.
#[inline(always)]
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| -> u64 {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let half = |s: &[u8], at: usize| -> u32 {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes)
    };
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

pub struct OtlpMapper<'a, 'o> {
    opts: &'o Options,
    now_nanos: i64,
    res_raw: Vec<u8>,
    res_valid: bool,
    selector: String,
    label_names: Vec<String>,
    res_md: Vec<Pair<'static>>,
    stream: Option<usize>,
    scope_md: Vec<Pair<'static>>,
    memo: Memo<'a>,
    attrs: Vec<Kv<'a>>,
    val: Vec<u8>,
    scratch: Scratch,
}

impl<'a, 'o> OtlpMapper<'a, 'o> {
    pub fn new(opts: &'o Options, now_nanos: i64) -> Self {
        OtlpMapper {
            opts,
            now_nanos,
            res_raw: Vec::new(),
            res_valid: false,
            selector: String::new(),
            label_names: Vec::new(),
            res_md: Vec::new(),
            stream: None,
            scope_md: Vec::new(),
            memo: Memo::default(),
            attrs: Vec::new(),
            val: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    fn simple(&mut self, r: &Record<'a>, raw_len: usize, stream: usize, out: &mut PushBuilder) {
        let mask = present(r);
        if !self.memo.matches(mask, &self.attrs) {
            self.memo.rebuild(
                mask,
                &self.attrs,
                &self.label_names,
                &[self.res_md.as_slice(), self.scope_md.as_slice()],
            );
        }
        let ts = r.ts(self.now_nanos);
        let start = out.begin_entry(ts);
        let arena = &mut out.arena;
        arena.reserve(raw_len * 2 + self.memo.tail.len() + 256);
        match r.body {
            Val::Str(s) => put_line(arena, s.as_bytes()),
            other => {
                self.val.clear();
                val_text(&mut self.val, other, &mut self.scratch);
                put_line(arena, &self.val);
            }
        }
        let names = &self.memo.field_names;
        if mask & 1 != 0 {
            put_num(arena, &names[0], r.observed);
        }
        if mask & 2 != 0 {
            put_num(arena, &names[1], r.severity_number);
        }
        if mask & 4 != 0
            && let Some(n) = &names[2]
        {
            put_named_pair(arena, n, r.severity_text.as_bytes());
        }
        if mask & 8 != 0 {
            put_num(arena, &names[3], r.dropped_attributes_count);
        }
        if mask & 16 != 0 {
            put_num(arena, &names[4], r.flags);
        }
        if mask & 32 != 0 {
            put_hex(arena, &names[5], r.trace_id);
        }
        if mask & 64 != 0 {
            put_hex(arena, &names[6], r.span_id);
        }
        if mask & 128 != 0
            && let Some(n) = &names[7]
        {
            put_named_pair(arena, n, r.event_name.as_bytes());
        }
        for (kv, name) in self.attrs.iter().zip(&self.memo.attr_names) {
            let Some(n) = name else { continue };
            match kv.value {
                Val::Str(s) => put_named_pair(arena, n, s.as_bytes()),
                Val::Int(i) => put_named_pair(arena, n, itoa::Buffer::new().format(i).as_bytes()),
                other => {
                    self.val.clear();
                    val_text(&mut self.val, other, &mut self.scratch);
                    put_named_pair(arena, n, &self.val);
                }
            }
        }
        arena.extend_from_slice(&self.memo.tail);
        out.end_entry(stream, ts, start);
    }
}

impl<'a> Mapper<'a> for OtlpMapper<'a, '_> {
    fn resource(&mut self, raw: &[u8]) -> Result<(), ReadError> {
        if self.res_valid && self.res_raw == raw {
            return Ok(());
        }
        self.res_valid = false;
        let r = Resource::decode(raw)?;
        let set = otlp::resource_labels(&r.attributes, self.opts);
        self.selector = set.to_selector();
        self.label_names = set.iter().map(|(n, _)| n.to_string()).collect();
        self.res_md = owned(otlp::resource_metadata(&r.attributes, self.opts));
        self.stream = None;
        self.memo.valid = false;
        self.res_raw.clear();
        self.res_raw.extend_from_slice(raw);
        self.res_valid = true;
        Ok(())
    }

    fn scope(&mut self, raw: &[u8]) -> Result<(), ReadError> {
        let s = InstrumentationScope::decode(raw)?;
        self.scope_md = owned(otlp::scope_metadata(Some(&s)));
        self.memo.valid = false;
        Ok(())
    }

    fn record(&mut self, raw: &'a [u8], out: &mut PushBuilder) -> Result<(), ReadError> {
        let stream = match self.stream {
            Some(s) => s,
            None => {
                let s = out.stream(&self.selector);
                self.stream = Some(s);
                s
            }
        };
        match reader::record(raw, &mut self.attrs)? {
            Parsed::Simple(r) => self.simple(&r, raw.len(), stream, out),
            Parsed::Complex => {
                let lr = LogRecord::decode(raw)?;
                let e = otlp::record_entry(
                    &lr,
                    &self.label_names,
                    &self.res_md,
                    &self.scope_md,
                    self.now_nanos,
                );
                out.push_entry(stream, &e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_match_hex_encode() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..=20 {
            for _ in 0..50 {
                let id: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let mut buf = [0u8; 32];
                let want = hex::encode(&id[..len.min(16)]);
                assert_eq!(hex_id(&mut buf, &id), want.as_bytes(), "{id:?}");
            }
        }
        let mut buf = [0u8; 32];
        assert_eq!(hex_id(&mut buf, &[0x0f, 0xa0, 0xff, 0x09]), b"0fa0ff09");
    }

    #[test]
    fn named_pairs_match_put_pair() {
        // Names around the inline limit (29 bytes) and the one-byte varint limit (127),
        // values empty, short and long: same bytes as the reference encoder.
        for name_len in [0, 1, 28, 29, 30, 31, 127, 128, 300] {
            let name = "n".repeat(name_len);
            let head = Head::new(&name);
            assert_eq!(
                matches!(head, Head::Inline { .. }),
                name_len <= 29,
                "{name_len}"
            );
            for value_len in [0, 1, 100, 126, 127, 128, 20_000] {
                let value = vec![b'v'; value_len];
                // something already in the arena, as in an entry under construction
                let mut got = b"prefix".to_vec();
                put_named_pair(&mut got, &head, &value);
                let mut want = b"prefix".to_vec();
                super::super::encode::put_pair(&mut want, name.as_bytes(), &value);
                assert_eq!(got, want, "name {name_len}, value {value_len}");
            }
        }
    }

    #[test]
    fn short_key_equality() {
        let keys = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abce",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "xbcdefgh",
            "http.status_code",
            "http.status_codf",
            "Http.status_code",
            "http.status_code.x",
            "http.status_code.y",
            "request.id",
            "request.ie",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(same_key(a, b), a == b, "{a} {b}");
            }
        }
    }
}

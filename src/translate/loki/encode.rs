//! Hand-written protobuf encoder for `logproto.PushRequest`. The translator's entries borrow
//! their strings from the decoded OTLP request; encoding them directly (sizes first, then one
//! pass of writes into a buffer of the exact size) avoids building an owned `PushRequest`
//! with a `String` per line and per metadata pair. Tests decode the output with the prost types
//! generated from `proto/loki/push.proto`, so the two cannot drift apart silently.

use std::borrow::Cow;

/// One log line of a stream, ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    /// Unix nanoseconds.
    pub ts: i64,
    pub line: Cow<'a, str>,
    pub metadata: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// One stream: its selector and its entries (already in time order when encoded).
#[derive(Clone, Debug, PartialEq)]
pub struct Stream<'a> {
    pub labels: String,
    pub entries: Vec<Entry<'a>>,
}

pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Size of a length-delimited field (tag + length + payload); tags here are all one byte.
#[inline]
pub(crate) fn ld_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

#[inline]
pub(crate) fn put_ld(buf: &mut Vec<u8>, tag: u8, payload_len: usize) {
    buf.push(tag);
    put_varint(buf, payload_len as u64);
}

#[inline]
pub(crate) fn put_str(buf: &mut Vec<u8>, tag: u8, s: &str) {
    put_ld(buf, tag, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn split_ts(ts: i64) -> (i64, i32) {
    (
        ts.div_euclid(1_000_000_000),
        ts.rem_euclid(1_000_000_000) as i32,
    )
}

fn timestamp_len(ts: i64) -> usize {
    let (s, n) = split_ts(ts);
    let mut len = 0;
    if s != 0 {
        len += 1 + varint_len(s as u64);
    }
    if n != 0 {
        len += 1 + varint_len(n as u64);
    }
    len
}

fn pair_len(n: &str, v: &str) -> usize {
    let mut len = 0;
    if !n.is_empty() {
        len += ld_len(n.len());
    }
    if !v.is_empty() {
        len += ld_len(v.len());
    }
    len
}

fn entry_len(e: &Entry<'_>) -> usize {
    let mut len = ld_len(timestamp_len(e.ts));
    if !e.line.is_empty() {
        len += ld_len(e.line.len());
    }
    for (n, v) in &e.metadata {
        len += ld_len(pair_len(n, v));
    }
    len
}

fn stream_len(s: &Stream<'_>, entry_lens: &[usize]) -> usize {
    let mut len = if s.labels.is_empty() {
        0
    } else {
        ld_len(s.labels.len())
    };
    for l in entry_lens {
        len += ld_len(*l);
    }
    len
}

/// Writes `EntryAdapter.timestamp` (field 1).
#[inline]
pub(crate) fn put_timestamp(buf: &mut Vec<u8>, ts: i64) {
    put_ld(buf, 0x0a, timestamp_len(ts)); // EntryAdapter.timestamp = 1
    let (secs, nanos) = split_ts(ts);
    if secs != 0 {
        buf.push(0x08);
        put_varint(buf, secs as u64);
    }
    if nanos != 0 {
        buf.push(0x10);
        put_varint(buf, nanos as u64);
    }
}

/// Writes `EntryAdapter.line` (field 2), left out when empty.
#[inline]
pub(crate) fn put_line(buf: &mut Vec<u8>, line: &[u8]) {
    if !line.is_empty() {
        buf.push(0x12);
        put_varint(buf, line.len() as u64);
        buf.extend_from_slice(line);
    }
}

/// Writes one `EntryAdapter.structuredMetadata` pair (field 3).
#[inline]
pub(crate) fn put_pair(buf: &mut Vec<u8>, n: &[u8], v: &[u8]) {
    let mut len = 0;
    if !n.is_empty() {
        len += ld_len(n.len());
    }
    if !v.is_empty() {
        len += ld_len(v.len());
    }
    put_ld(buf, 0x1a, len);
    if !n.is_empty() {
        buf.push(0x0a);
        put_varint(buf, n.len() as u64);
        buf.extend_from_slice(n);
    }
    if !v.is_empty() {
        buf.push(0x12);
        put_varint(buf, v.len() as u64);
        buf.extend_from_slice(v);
    }
}

/// Writes an entry's payload (without its own tag and length).
pub(crate) fn put_entry_payload(buf: &mut Vec<u8>, e: &Entry<'_>) {
    put_timestamp(buf, e.ts);
    put_line(buf, e.line.as_bytes());
    for (n, v) in &e.metadata {
        put_pair(buf, n.as_bytes(), v.as_bytes());
    }
}

/// Encodes `PushRequest{streams}` (uncompressed protobuf).
pub fn encode_push_request(streams: &[Stream<'_>]) -> Vec<u8> {
    let entry_lens: Vec<Vec<usize>> = streams
        .iter()
        .map(|s| s.entries.iter().map(entry_len).collect())
        .collect();
    let stream_lens: Vec<usize> = streams
        .iter()
        .zip(&entry_lens)
        .map(|(s, el)| stream_len(s, el))
        .collect();
    let total: usize = stream_lens.iter().map(|l| ld_len(*l)).sum();
    let mut buf = Vec::with_capacity(total);
    for ((s, el), sl) in streams.iter().zip(&entry_lens).zip(&stream_lens) {
        put_ld(&mut buf, 0x0a, *sl); // PushRequest.streams = 1
        if !s.labels.is_empty() {
            put_str(&mut buf, 0x0a, &s.labels); // StreamAdapter.labels = 1
        }
        for (e, len) in s.entries.iter().zip(el) {
            put_ld(&mut buf, 0x12, *len); // StreamAdapter.entries = 2
            put_entry_payload(&mut buf, e);
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }
}

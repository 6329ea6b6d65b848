//! Output side of the fast path: entries are encoded (as complete `StreamAdapter.entries`
//! fields: tag, length, `logproto.EntryAdapter` payload) straight into one arena buffer as
//! they are translated; streams only keep the positions of their entries. The length is
//! known only at the end of an entry, so [`PushBuilder::begin_entry`] reserves room for the
//! usual two-byte length and [`PushBuilder::end_entry`] fills it in (moving the payload by
//! a byte or two in the rare other cases). [`PushBuilder::finish`] sorts streams by selector
//! and entries by time (stable) and writes the `PushRequest` in one pass, copying entries
//! that lie back to back in the arena in one go; byte-for-byte what
//! `super::encode::encode_push_request` produces for the same streams.

use super::Translated;
use super::encode::{Entry, ld_len, put_entry_payload, put_ld, put_str, put_timestamp, varint_len};
use std::collections::HashMap;

/// Where an entry lies in the arena: `len` bytes from `start`, tag and length included.
#[derive(Clone, Copy)]
struct EntryPos {
    ts: i64,
    start: usize,
    len: usize,
}

/// `StreamAdapter.entries` = 2, length-delimited.
const ENTRY_TAG: u8 = 0x12;
/// Bytes reserved for an entry's tag and length: lengths of 128 to 16383 bytes fit.
const RESERVED: usize = 3;

struct StreamBuf {
    selector: String,
    entries: Vec<EntryPos>,
}

/// Streams and encoded entries of one push request under construction.
#[derive(Default)]
pub struct PushBuilder {
    /// Encoded entry payloads, back to back.
    pub arena: Vec<u8>,
    streams: Vec<StreamBuf>,
    index: HashMap<String, usize>,
}

impl PushBuilder {
    /// An empty request whose entry buffer starts with room for `bytes` bytes (about 1.5x the
    /// OTLP input is typical).
    pub fn with_capacity(bytes: usize) -> Self {
        PushBuilder {
            arena: Vec::with_capacity(bytes),
            ..Default::default()
        }
    }

    /// Index of the stream with this selector, created when new.
    pub fn stream(&mut self, selector: &str) -> usize {
        if let Some(i) = self.index.get(selector) {
            return *i;
        }
        let i = self.streams.len();
        self.streams.push(StreamBuf {
            selector: selector.to_string(),
            entries: Vec::new(),
        });
        self.index.insert(selector.to_string(), i);
        i
    }

    /// Starts an entry: reserves its tag and length and writes its timestamp; the caller
    /// then appends the line and metadata to [`Self::arena`] and calls [`Self::end_entry`]
    /// with the returned start.
    #[inline]
    pub fn begin_entry(&mut self, ts: i64) -> usize {
        let start = self.arena.len();
        self.arena.extend_from_slice(&[ENTRY_TAG, 0x80, 0]);
        put_timestamp(&mut self.arena, ts);
        start
    }

    /// Ends the entry begun at `start`: writes its tag and length.
    #[inline]
    pub fn end_entry(&mut self, stream: usize, ts: i64, start: usize) {
        let payload = self.arena.len().saturating_sub(start + RESERVED);
        let header = 1 + varint_len(payload as u64);
        if header != RESERVED {
            self.move_payload(start, header);
        }
        let mut at = start + 1;
        let mut v = payload;
        while let Some(b) = self.arena.get_mut(at) {
            if v < 0x80 {
                *b = v as u8;
                break;
            }
            *b = (v as u8) | 0x80;
            v >>= 7;
            at += 1;
        }
        let len = self.arena.len() - start;
        if let Some(s) = self.streams.get_mut(stream) {
            s.entries.push(EntryPos { ts, start, len });
        }
    }

    /// Moves the payload of the entry at `start` so that a `header`-byte tag and length fit
    /// before it (the reservation was for [`RESERVED`] bytes).
    #[cold]
    fn move_payload(&mut self, start: usize, header: usize) {
        let from = start + RESERVED;
        let end = self.arena.len();
        if header < RESERVED {
            self.arena.copy_within(from..end, start + header);
            self.arena.truncate(end - (RESERVED - header));
        } else {
            self.arena.resize(end + (header - RESERVED), 0);
            self.arena.copy_within(from..end, start + header);
        }
    }

    /// Adds an entry built by the reference mapping.
    pub fn push_entry(&mut self, stream: usize, e: &Entry<'_>) {
        let start = self.arena.len();
        self.arena.extend_from_slice(&[ENTRY_TAG, 0x80, 0]);
        put_entry_payload(&mut self.arena, e);
        self.end_entry(stream, e.ts, start);
    }

    /// Sorts entries by time within each stream (stable) and streams by selector, and encodes the
    /// `logproto.PushRequest`.
    pub fn finish(mut self) -> Translated {
        self.streams.sort_by(|a, b| a.selector.cmp(&b.selector));
        let mut entries = 0u64;
        let mut stream_lens = Vec::with_capacity(self.streams.len());
        let mut total = 0usize;
        for s in &mut self.streams {
            if !s.entries.is_sorted_by_key(|e| e.ts) {
                s.entries.sort_by_key(|e| e.ts);
            }
            entries += s.entries.len() as u64;
            let mut len = if s.selector.is_empty() {
                0
            } else {
                ld_len(s.selector.len())
            };
            for e in &s.entries {
                len += e.len;
            }
            stream_lens.push(len);
            total += ld_len(len);
        }
        let mut body = Vec::with_capacity(total);
        for (s, len) in self.streams.iter().zip(stream_lens) {
            put_ld(&mut body, 0x0a, len); // PushRequest.streams = 1
            if !s.selector.is_empty() {
                put_str(&mut body, 0x0a, &s.selector); // StreamAdapter.labels = 1
            }
            // Entries that follow each other in the arena are copied as one run.
            let mut run = 0..0;
            for e in &s.entries {
                if e.start != run.end {
                    body.extend_from_slice(self.arena.get(run.clone()).unwrap_or_default());
                    run.start = e.start;
                }
                run.end = e.start + e.len;
            }
            body.extend_from_slice(self.arena.get(run).unwrap_or_default());
        }
        debug_assert_eq!(body.len(), total);
        Translated {
            body,
            entries,
            streams: self.streams.len(),
        }
    }
}

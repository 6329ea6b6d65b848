//! Output side of the fast path: entries are encoded (as `logproto.EntryAdapter` payloads)
//! straight into one arena buffer as they are translated; streams only keep the positions of
//! their entries. [`PushBuilder::finish`] sorts streams by selector and entries by time
//! (stable) and writes the `PushRequest` in one pass, byte-for-byte what
//! [`super::encode::encode_push_request`] produces for the same streams.

use super::Translated;
use super::encode::{Entry, ld_len, put_entry_payload, put_ld, put_str, put_timestamp};
use std::collections::HashMap;

#[derive(Clone, Copy)]
struct EntryPos {
    ts: i64,
    start: usize,
    len: usize,
}

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

    /// Starts an entry: writes its timestamp; the caller then appends the line and metadata
    /// to [`Self::arena`] and calls [`Self::end_entry`] with the returned start.
    #[inline]
    pub fn begin_entry(&mut self, ts: i64) -> usize {
        let start = self.arena.len();
        put_timestamp(&mut self.arena, ts);
        start
    }

    #[inline]
    pub fn end_entry(&mut self, stream: usize, ts: i64, start: usize) {
        let len = self.arena.len() - start;
        if let Some(s) = self.streams.get_mut(stream) {
            s.entries.push(EntryPos { ts, start, len });
        }
    }

    /// Adds an entry built by the reference mapping.
    pub fn push_entry(&mut self, stream: usize, e: &Entry<'_>) {
        let start = self.arena.len();
        put_entry_payload(&mut self.arena, e);
        self.end_entry(stream, e.ts, start);
    }

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
                len += ld_len(e.len);
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
            for e in &s.entries {
                put_ld(&mut body, 0x12, e.len); // StreamAdapter.entries = 2
                body.extend_from_slice(&self.arena[e.start..e.start + e.len]);
            }
        }
        debug_assert_eq!(body.len(), total);
        Translated {
            body,
            entries,
            streams: self.streams.len(),
        }
    }
}

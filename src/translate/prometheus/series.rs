//! Collects translated series and writes remote-write requests. Each series' labels are
//! protobuf-encoded once, straight from the borrowed label set (no per-label `String`s); the
//! encoded labels double as the merge key, so data points of the same series (several
//! batches concatenated often carry the same series at successive timestamps) end up in one
//! `TimeSeries` with samples in timestamp order. Requests are then written directly as
//! `WriteRequest` bytes, split to stay under a byte budget.

use super::labels::{Lbl, NAME};
use crate::proto::prometheus::{Exemplar, Histogram, MetricMetadata, Sample, TimeSeries};
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint, message};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Small, fast, non-cryptographic hasher (FxHash) for label-set keys and name caches.
#[derive(Default)]
pub struct FxHasher(u64);

pub type FxBuild = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

fn put_str_field(tag: u8, s: &str, out: &mut Vec<u8>) {
    out.push(tag);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Appends one `Label` entry (TimeSeries field 1) to `out`.
fn put_label(name: &str, value: &str, out: &mut Vec<u8>) {
    let len = 2
        + encoded_len_varint(name.len() as u64)
        + name.len()
        + encoded_len_varint(value.len() as u64)
        + value.len();
    out.push(0x0a);
    encode_varint(len as u64, out);
    put_str_field(0x0a, name, out);
    put_str_field(0x12, value, out);
}

/// Encodes the full, sorted label set of one series into `out` (cleared first): the base
/// labels (sorted, without `__name__`) with `__name__ = name` and an optional extra label
/// (`le`, `quantile`, which replaces a base label of the same name) merged in order.
pub fn encode_labels(base: &[Lbl<'_>], name: &str, extra: Option<(&str, &str)>, out: &mut Vec<u8>) {
    out.clear();
    let mut pending: [Option<(&str, &str)>; 2] = [Some((NAME, name)), extra];
    if let [Some(a), Some(b)] = &pending {
        if b.0 < a.0 {
            pending.swap(0, 1);
        }
    }
    let mut p = 0usize;
    for l in base {
        while p < 2 {
            match pending[p] {
                Some((n, v)) if n <= &*l.name => {
                    put_label(n, v, out);
                    p += 1;
                }
                None => p += 1,
                _ => break,
            }
        }
        if pending.iter().flatten().any(|(n, _)| *n == &*l.name) {
            continue;
        }
        put_label(&l.name, &l.value, out);
    }
    for (n, v) in pending[p..].iter().flatten() {
        put_label(n, v, out);
    }
}

/// One series: encoded labels plus what was written to it.
#[derive(Debug, Default)]
pub struct EncSeries {
    pub labels: Vec<u8>,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
    pub histograms: Vec<Histogram>,
}

impl EncSeries {
    fn sample_len(s: &Sample) -> usize {
        // value: tag + fixed64; timestamp: tag + varint
        1 + 8 + 1 + encoded_len_varint(s.timestamp as u64)
    }

    /// Encoded length of the TimeSeries message body.
    pub fn encoded_len(&self) -> usize {
        let mut n = self.labels.len();
        for s in &self.samples {
            let l = Self::sample_len(s);
            n += 1 + encoded_len_varint(l as u64) + l;
        }
        n += message::encoded_len_repeated(3, &self.exemplars);
        n += message::encoded_len_repeated(4, &self.histograms);
        n
    }

    /// Appends the TimeSeries message body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.labels);
        for s in &self.samples {
            out.push(0x12);
            encode_varint(Self::sample_len(s) as u64, out);
            out.push(0x09);
            out.extend_from_slice(&s.value.to_le_bytes());
            out.push(0x10);
            encode_varint(s.timestamp as u64, out);
        }
        for e in &self.exemplars {
            message::encode(3, e, out);
        }
        for h in &self.histograms {
            message::encode(4, h, out);
        }
    }

    /// Decodes into the generated type (tests, debugging).
    pub fn to_time_series(&self) -> TimeSeries {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        TimeSeries::decode(buf.as_slice()).unwrap_or_default()
    }
}

/// The series of one translation, unique by label set.
#[derive(Default)]
pub struct SeriesSet {
    series: Vec<EncSeries>,
    index: HashMap<u64, usize, FxBuild>,
    /// Label sets whose hash collided with a different set (rare).
    overflow: HashMap<Vec<u8>, usize, FxBuild>,
}

impl SeriesSet {
    pub fn with_capacity(n: usize) -> Self {
        SeriesSet {
            series: Vec::with_capacity(n),
            index: HashMap::with_capacity_and_hasher(n, Default::default()),
            overflow: HashMap::default(),
        }
    }

    fn slot(&mut self, labels: &[u8]) -> &mut EncSeries {
        let mut h = FxHasher::default();
        h.write(labels);
        let key = h.finish();
        let i = match self.index.get(&key) {
            Some(&i) if self.series[i].labels == labels => i,
            Some(_) => match self.overflow.get(labels) {
                Some(&i) => i,
                None => {
                    let i = self.push(labels);
                    self.overflow.insert(labels.to_vec(), i);
                    i
                }
            },
            None => {
                let i = self.push(labels);
                self.index.insert(key, i);
                i
            }
        };
        &mut self.series[i]
    }

    fn push(&mut self, labels: &[u8]) -> usize {
        self.series.push(EncSeries {
            labels: labels.to_vec(),
            ..Default::default()
        });
        self.series.len() - 1
    }

    /// Adds a float sample (and exemplars) to the series with these encoded labels.
    pub fn add_sample(&mut self, labels: &[u8], sample: Sample, exemplars: Vec<Exemplar>) {
        let ts = self.slot(labels);
        ts.samples.push(sample);
        ts.exemplars.extend(exemplars);
    }

    /// Adds a native histogram sample.
    pub fn add_histogram(&mut self, labels: &[u8], h: Histogram, exemplars: Vec<Exemplar>) {
        let ts = self.slot(labels);
        ts.histograms.push(h);
        ts.exemplars.extend(exemplars);
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The series with samples, histograms and exemplars in timestamp order; for equal
    /// timestamps the last one written wins (a repeated point is sent once).
    pub fn finish(self) -> Vec<EncSeries> {
        let mut out = self.series;
        for ts in &mut out {
            if ts.samples.len() > 1
                && !ts
                    .samples
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp)
            {
                ts.samples.reverse();
                ts.samples.sort_by_key(|s| s.timestamp);
                ts.samples.dedup_by_key(|s| s.timestamp);
            }
            if ts.histograms.len() > 1
                && !ts
                    .histograms
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp)
            {
                ts.histograms.reverse();
                ts.histograms.sort_by_key(|h| h.timestamp);
                ts.histograms.dedup_by_key(|h| h.timestamp);
            }
            if ts.exemplars.len() > 1 {
                ts.exemplars.sort_by_key(|e| e.timestamp);
            }
        }
        out
    }
}

/// Writes encoded `WriteRequest`s whose size stays under `max_bytes` (a single series larger
/// than the budget still goes alone in its own request). Metadata travel in their own
/// requests after the series, as the Collector does.
pub fn write_requests(
    series: &[EncSeries],
    metadata: &[MetricMetadata],
    max_bytes: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for ts in series {
        let len = ts.encoded_len();
        let size = 1 + encoded_len_varint(len as u64) + len;
        if !cur.is_empty() && cur.len() + size > max_bytes {
            out.push(std::mem::take(&mut cur));
        }
        if cur.capacity() == 0 {
            cur.reserve(max_bytes.min(1 << 20).max(size));
        }
        cur.push(0x0a);
        encode_varint(len as u64, &mut cur);
        ts.encode(&mut cur);
    }
    if !cur.is_empty() {
        out.push(std::mem::take(&mut cur));
    }
    for md in metadata {
        let len = md.encoded_len();
        let size = 1 + encoded_len_varint(len as u64) + len;
        if !cur.is_empty() && cur.len() + size > max_bytes {
            out.push(std::mem::take(&mut cur));
        }
        message::encode(3, md, &mut cur);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Compresses an encoded request with snappy's block format, as remote-write wants.
pub fn snappy(raw: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(raw)
}

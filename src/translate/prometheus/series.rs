//! Collects translated series, merging data points that share a label set into one
//! `TimeSeries` (several batches concatenated often carry the same series at successive
//! timestamps), putting samples in timestamp order, and splitting the result into
//! remote-write requests below a byte budget.

use crate::proto::prometheus::{
    Exemplar, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use prost::Message;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Small, fast, non-cryptographic hasher (FxHash) for label-set keys; collisions are
/// resolved by comparing the labels.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
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
}

fn hash_labels(labels: &[Label]) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        h.write(l.name.as_bytes());
        h.write(&[0xff]);
        h.write(l.value.as_bytes());
        h.write(&[0xfe]);
    }
    h.finish()
}

/// The series of one translation, unique by label set.
#[derive(Default)]
pub struct SeriesSet {
    series: Vec<TimeSeries>,
    index: HashMap<u64, Vec<usize>, BuildHasherDefault<FxHasher>>,
}

impl SeriesSet {
    pub fn with_capacity(n: usize) -> Self {
        SeriesSet {
            series: Vec::with_capacity(n),
            index: HashMap::with_capacity_and_hasher(n, Default::default()),
        }
    }

    fn slot(&mut self, labels: Vec<Label>) -> &mut TimeSeries {
        let h = hash_labels(&labels);
        let idxs = self.index.entry(h).or_default();
        let found = idxs
            .iter()
            .copied()
            .find(|&i| self.series[i].labels == labels);
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.series.len();
                idxs.push(i);
                self.series.push(TimeSeries {
                    labels,
                    ..Default::default()
                });
                i
            }
        };
        &mut self.series[i]
    }

    /// Adds a float sample (and exemplars) to the series with these sorted labels.
    pub fn add_sample(&mut self, labels: Vec<Label>, sample: Sample, exemplars: Vec<Exemplar>) {
        let ts = self.slot(labels);
        ts.samples.push(sample);
        ts.exemplars.extend(exemplars);
    }

    /// Adds a native histogram sample.
    pub fn add_histogram(&mut self, labels: Vec<Label>, h: Histogram, exemplars: Vec<Exemplar>) {
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
    pub fn finish(self) -> Vec<TimeSeries> {
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

/// Splits series and metadata into requests whose encoded size stays under `max_bytes`
/// (a single series larger than the budget still goes alone in its own request).
/// Metadata travel in their own requests after the series, as the Collector does.
pub fn split_requests(
    series: Vec<TimeSeries>,
    metadata: Vec<MetricMetadata>,
    max_bytes: usize,
) -> Vec<WriteRequest> {
    let mut out = Vec::new();
    let mut cur = WriteRequest::default();
    let mut cur_size = 0usize;
    for ts in series {
        let len = ts.encoded_len();
        let size = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if cur_size + size > max_bytes && !cur.timeseries.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_size = 0;
        }
        cur_size += size;
        cur.timeseries.push(ts);
    }
    if !cur.timeseries.is_empty() {
        out.push(std::mem::take(&mut cur));
        cur_size = 0;
    }
    for md in metadata {
        let len = md.encoded_len();
        let size = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if cur_size + size > max_bytes && !cur.metadata.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_size = 0;
        }
        cur_size += size;
        cur.metadata.push(md);
    }
    if !cur.metadata.is_empty() {
        out.push(cur);
    }
    out
}

/// Encodes a request and compresses it with snappy's block format, as remote-write wants.
pub fn encode_snappy(req: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw)
}

//! Collects translated series and writes remote-write requests. A data point's labels are
//! protobuf-encoded once into a [`Template`], from which each of its series is written with a
//! few copies; the encoded labels double as the merge key, so data points of the same series (several
//! batches concatenated often carry the same series at successive timestamps) end up in one
//! `TimeSeries` with samples in timestamp order. Requests are then written directly as
//! `WriteRequest` bytes, split to stay under a byte budget.

use super::hash::{FxBuild, FxHasher};
use super::labels::{Lbl, NAME};
use crate::proto::prometheus::{Exemplar, Histogram, MetricMetadata, Sample, TimeSeries};
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint, message};
use std::collections::HashMap;
use std::hash::Hasher;

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

/// The hash of one encoded label. A label set's hash is the (wrapping) sum of its labels'
/// hashes, so it does not depend on how the set was put together (base labels, `__name__`,
/// an extra label replacing a base one): equal sets always meet in [`SeriesSet`]'s index.
fn label_hash(encoded: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(encoded);
    // Finalizer (splitmix64) so that sums of hashes stay well spread.
    let mut x = h.finish();
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Appends one label to `out` and returns its hash.
fn put_label_hashed(name: &str, value: &str, out: &mut Vec<u8>) -> u64 {
    let start = out.len();
    put_label(name, value, out);
    label_hash(&out[start..])
}

/// One label encoded once (with its hash) to be copied into many series: a metric's
/// `__name__`, a histogram bound's `le`.
#[derive(Clone, Debug, Default)]
pub struct EncLabel {
    bytes: Vec<u8>,
    hash: u64,
}

impl EncLabel {
    pub fn new(name: &str, value: &str) -> EncLabel {
        let mut l = EncLabel::default();
        l.set(name, value);
        l
    }

    /// Re-encodes this label (reuses its buffer).
    pub fn set(&mut self, name: &str, value: &str) {
        self.bytes.clear();
        self.hash = put_label_hashed(name, value, &mut self.bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `__name__ = value`.
    pub fn name(value: &str) -> EncLabel {
        EncLabel::new(NAME, value)
    }
}

/// What goes where when a series is written from a [`Template`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Insert {
    #[default]
    Name,
    Extra,
}

/// One data point's base labels encoded once, with the byte offsets where `__name__` and the
/// point's extra label (`le`, `quantile`) go, so each of the point's series (a 15-bucket
/// histogram has 18) is written with a few copies instead of re-encoding every label.
#[derive(Debug, Default)]
pub struct Template {
    bytes: Vec<u8>,
    extra_name: String,
    /// Insertions in output order: (byte offset in `bytes`, what).
    inserts: [(usize, Insert); 2],
    n_inserts: usize,
    /// Bytes of a base label replaced by the extra label.
    skip: Option<(usize, usize)>,
    /// Sum of the base labels' hashes, and the replaced label's hash.
    hash: u64,
    skip_hash: u64,
}

impl Template {
    /// A template for `base` labels plus, when `extra_name` is given, one more label of that
    /// name (tests build templates directly; the translator reuses one via [`Self::reset`]).
    #[cfg(test)]
    pub(crate) fn new(base: &[Lbl<'_>], extra_name: Option<&str>) -> Template {
        let mut t = Template::default();
        t.reset(base, extra_name);
        t
    }

    /// Re-targets this template to another point (reuses its buffer).
    pub fn reset(&mut self, base: &[Lbl<'_>], extra_name: Option<&str>) {
        self.bytes.clear();
        self.skip = None;
        self.extra_name.clear();
        self.hash = 0;
        self.skip_hash = 0;
        let mut name_at = None;
        let mut extra_at = None;
        for l in base {
            let n: &str = &l.name;
            if name_at.is_none() && NAME < n {
                name_at = Some(self.bytes.len());
            }
            if let Some(e) = extra_name {
                if extra_at.is_none() && e <= n {
                    extra_at = Some(self.bytes.len());
                }
                if e == n {
                    let start = self.bytes.len();
                    self.skip_hash = put_label_hashed(n, &l.value, &mut self.bytes);
                    self.hash = self.hash.wrapping_add(self.skip_hash);
                    self.skip = Some((start, self.bytes.len()));
                    continue;
                }
            }
            let h = put_label_hashed(n, &l.value, &mut self.bytes);
            self.hash = self.hash.wrapping_add(h);
        }
        let end = self.bytes.len();
        let name_at = name_at.unwrap_or(end);
        self.inserts[0] = (name_at, Insert::Name);
        self.n_inserts = 1;
        if let Some(e) = extra_name {
            self.extra_name.push_str(e);
            let extra_at = extra_at.unwrap_or(end);
            let extra_first = extra_at < name_at || (extra_at == name_at && e < NAME);
            let ex = (extra_at, Insert::Extra);
            self.inserts = if extra_first {
                [ex, self.inserts[0]]
            } else {
                [self.inserts[0], ex]
            };
            self.n_inserts = 2;
        }
    }

    /// Appends the series' labels to `out`: the base plus `name` (a `__name__` label) and
    /// `extra` (a label named as the template's extra label, when it has one). Returns the
    /// set's hash.
    pub fn write(&self, name: &EncLabel, extra: Option<&EncLabel>, out: &mut Vec<u8>) -> u64 {
        let mut hash = self.hash;
        let mut pos = 0usize;
        for &(at, what) in &self.inserts[..self.n_inserts] {
            if at > pos {
                out.extend_from_slice(&self.bytes[pos..at]);
                pos = at;
            }
            match what {
                Insert::Name => {
                    out.extend_from_slice(&name.bytes);
                    hash = hash.wrapping_add(name.hash);
                }
                // Without a value the base label of that name (if any) stays.
                Insert::Extra => {
                    if let Some(v) = extra {
                        out.extend_from_slice(&v.bytes);
                        hash = hash.wrapping_add(v.hash);
                        if let Some((s, e)) = self.skip {
                            if s == at {
                                pos = e;
                                hash = hash.wrapping_sub(self.skip_hash);
                            }
                        }
                    }
                }
            }
        }
        out.extend_from_slice(&self.bytes[pos..]);
        hash
    }
}

/// One series of a translation: its labels (a range of the set's arena) and what was written
/// to it apart from float samples (those live in one shared list).
#[derive(Debug, Default)]
struct Series {
    start: usize,
    len: usize,
    exemplars: Vec<Exemplar>,
    histograms: Vec<Histogram>,
}

/// The series of one translation, unique by label set. Labels of all series share one
/// buffer and samples one list, so adding a series allocates nothing in the common case.
#[derive(Default)]
pub struct SeriesSet {
    arena: Vec<u8>,
    series: Vec<Series>,
    samples: Vec<(u32, Sample)>,
    index: HashMap<u64, u32, FxBuild>,
    /// Label sets whose hash collided with a different set (rare).
    overflow: HashMap<Vec<u8>, u32, FxBuild>,
}

impl SeriesSet {
    /// Room for `n` series and `bytes` bytes of labels.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        SeriesSet {
            arena: Vec::with_capacity(bytes),
            series: Vec::with_capacity(n),
            samples: Vec::with_capacity(n),
            index: HashMap::with_capacity_and_hasher(n, Default::default()),
            overflow: HashMap::default(),
        }
    }

    /// Writes the series' labels from a template straight into the arena and returns the
    /// series' index (an existing series with the same labels, or a new one).
    fn slot(&mut self, t: &Template, name: &EncLabel, extra: Option<&EncLabel>) -> u32 {
        let start = self.arena.len();
        let key = t.write(name, extra, &mut self.arena);
        let (arena, series) = (&self.arena, &self.series);
        let new = &arena[start..];
        let same = |i: u32| {
            let s = &series[i as usize];
            &arena[s.start..s.start + s.len] == new
        };
        let found = match self.index.get(&key) {
            Some(&i) if same(i) => Some(i),
            Some(_) => self.overflow.get(new).copied(),
            None => None,
        };
        if let Some(i) = found {
            self.arena.truncate(start);
            return i;
        }
        let collided = self.index.contains_key(&key);
        let len = self.arena.len() - start;
        self.series.push(Series {
            start,
            len,
            ..Default::default()
        });
        let i = (self.series.len() - 1) as u32;
        if collided {
            self.overflow.insert(self.arena[start..].to_vec(), i);
        } else {
            self.index.insert(key, i);
        }
        i
    }

    /// Adds a float sample (and exemplars) to the series `t` + `name` (+ `extra`).
    pub fn add_sample(
        &mut self,
        t: &Template,
        name: &EncLabel,
        extra: Option<&EncLabel>,
        sample: Sample,
        exemplars: Vec<Exemplar>,
    ) {
        let i = self.slot(t, name, extra);
        self.samples.push((i, sample));
        if !exemplars.is_empty() {
            self.series[i as usize].exemplars.extend(exemplars);
        }
    }

    /// Adds a native histogram sample to the series `t` + `name`.
    pub fn add_histogram(
        &mut self,
        t: &Template,
        name: &EncLabel,
        h: Histogram,
        ex: Vec<Exemplar>,
    ) {
        let i = self.slot(t, name, None) as usize;
        self.series[i].histograms.push(h);
        self.series[i].exemplars.extend(ex);
    }

    /// Number of distinct series so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// The series with samples, histograms and exemplars in timestamp order; for equal
    /// timestamps the last one written wins (a repeated point is sent once).
    pub fn finish(self) -> Finished {
        let SeriesSet {
            arena,
            mut series,
            samples,
            ..
        } = self;
        // The common case: one sample per series, written in series order.
        if samples.len() == series.len()
            && samples
                .iter()
                .enumerate()
                .all(|(i, (s, _))| *s as usize == i)
        {
            sort_series_extras(&mut series);
            return Finished {
                arena,
                ranges: (0..series.len()).map(|i| (i, i + 1)).collect(),
                series,
                samples: samples.into_iter().map(|(_, s)| s).collect(),
            };
        }
        // Group samples by series (a counting sort keeps the order of writing).
        let mut starts = vec![0usize; series.len() + 1];
        for (i, _) in &samples {
            starts[*i as usize + 1] += 1;
        }
        for i in 0..series.len() {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut grouped = vec![
            Sample {
                value: 0.0,
                timestamp: 0
            };
            samples.len()
        ];
        for (i, s) in samples {
            grouped[next[i as usize]] = s;
            next[i as usize] += 1;
        }
        let mut ranges = Vec::with_capacity(series.len());
        let mut out_samples = Vec::with_capacity(grouped.len());
        for i in 0..series.len() {
            let g = &mut grouped[starts[i]..starts[i + 1]];
            let from = out_samples.len();
            if g.windows(2).all(|w| w[0].timestamp < w[1].timestamp) {
                out_samples.extend_from_slice(g);
            } else {
                g.reverse();
                let mut v = g.to_vec();
                v.sort_by_key(|s| s.timestamp);
                v.dedup_by_key(|s| s.timestamp);
                out_samples.extend(v);
            }
            ranges.push((from, out_samples.len()));
        }
        sort_series_extras(&mut series);
        Finished {
            arena,
            series,
            ranges,
            samples: out_samples,
        }
    }
}

/// Histograms and exemplars of each series in timestamp order (equal histogram timestamps:
/// the last written wins).
fn sort_series_extras(series: &mut [Series]) {
    {
        for ts in series.iter_mut() {
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
    }
}

/// The series of a finished translation, ready to be written as requests.
#[derive(Debug, Default)]
pub struct Finished {
    arena: Vec<u8>,
    series: Vec<Series>,
    /// Each series' samples: a range of `samples`.
    ranges: Vec<(usize, usize)>,
    samples: Vec<Sample>,
}

fn sample_len(s: &Sample) -> usize {
    // value: tag + fixed64; timestamp: tag + varint
    1 + 8 + 1 + encoded_len_varint(s.timestamp as u64)
}

impl Finished {
    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// Encoded length of series `i`'s TimeSeries message body.
    fn encoded_len(&self, i: usize) -> usize {
        let s = &self.series[i];
        let (a, b) = self.ranges[i];
        let mut n = s.len;
        for x in &self.samples[a..b] {
            let l = sample_len(x);
            n += 1 + encoded_len_varint(l as u64) + l;
        }
        n += message::encoded_len_repeated(3, &s.exemplars);
        n += message::encoded_len_repeated(4, &s.histograms);
        n
    }

    /// Appends series `i`'s TimeSeries message body to `out`.
    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        let s = &self.series[i];
        let (a, b) = self.ranges[i];
        out.extend_from_slice(&self.arena[s.start..s.start + s.len]);
        for x in &self.samples[a..b] {
            out.push(0x12);
            encode_varint(sample_len(x) as u64, out);
            out.push(0x09);
            out.extend_from_slice(&x.value.to_le_bytes());
            out.push(0x10);
            encode_varint(x.timestamp as u64, out);
        }
        for e in &s.exemplars {
            message::encode(3, e, out);
        }
        for h in &s.histograms {
            message::encode(4, h, out);
        }
    }

    /// Decodes every series into the generated type (tests, debugging).
    pub fn to_time_series(&self) -> Vec<TimeSeries> {
        let mut out = Vec::with_capacity(self.series.len());
        let mut buf = Vec::new();
        for i in 0..self.series.len() {
            buf.clear();
            self.encode(i, &mut buf);
            out.push(TimeSeries::decode(buf.as_slice()).unwrap_or_default());
        }
        out
    }
}

/// Writes encoded `WriteRequest`s whose size stays under `max_bytes` (a single series larger
/// than the budget still goes alone in its own request). Metadata travel in their own
/// requests after the series, as the Collector does.
pub fn write_requests(
    series: &Finished,
    metadata: &[MetricMetadata],
    max_bytes: usize,
) -> Vec<Vec<u8>> {
    // First the split (sizes only), then each request written into a buffer of its size.
    let lens: Vec<usize> = (0..series.len()).map(|i| series.encoded_len(i)).collect();
    let mut cuts: Vec<(usize, usize, usize)> = Vec::new(); // (first series, end, bytes)
    let (mut first, mut bytes) = (0usize, 0usize);
    for (i, &len) in lens.iter().enumerate() {
        let size = 1 + encoded_len_varint(len as u64) + len;
        if bytes > 0 && bytes + size > max_bytes {
            cuts.push((first, i, bytes));
            (first, bytes) = (i, 0);
        }
        bytes += size;
    }
    if bytes > 0 {
        cuts.push((first, lens.len(), bytes));
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    for (from, to, bytes) in cuts {
        let mut cur = Vec::with_capacity(bytes);
        for (i, &len) in lens.iter().enumerate().take(to).skip(from) {
            cur.push(0x0a);
            encode_varint(len as u64, &mut cur);
            series.encode(i, &mut cur);
        }
        out.push(cur);
    }
    let mut cur: Vec<u8> = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The label set a template must write, built the slow way: merge, sort, encode.
    fn reference(base: &[(&str, &str)], name: &str, extra: Option<(&str, &str)>) -> Vec<u8> {
        let mut all: Vec<(&str, &str)> = base
            .iter()
            .filter(|(n, _)| extra.is_none_or(|(e, _)| e != *n))
            .copied()
            .collect();
        all.push((NAME, name));
        all.extend(extra);
        all.sort();
        let mut out = Vec::new();
        for (n, v) in all {
            put_label(n, v, &mut out);
        }
        out
    }

    fn decode_labels(b: &[u8]) -> Vec<(String, String)> {
        TimeSeries::decode(b)
            .unwrap()
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect()
    }

    #[test]
    fn equal_label_sets_share_a_series_however_they_were_built() {
        // A gauge `x_bucket{le="0.5"}` and histogram `x`'s bucket le=0.5 are the same series.
        let mut set = SeriesSet::default();
        let s = |v| Sample {
            value: v,
            timestamp: 1,
        };
        let (name, le) = (EncLabel::name("x_bucket"), EncLabel::new("le", "0.5"));
        let gauge = Template::new(&[Lbl::owned("a", "1"), Lbl::owned("le", "0.5")], None);
        set.add_sample(&gauge, &name, None, s(1.0), Vec::new());
        let hist = Template::new(&[Lbl::owned("a", "1")], Some("le"));
        set.add_sample(&hist, &name, Some(&le), s(2.0), Vec::new());
        let replaced = Template::new(&[Lbl::owned("a", "1"), Lbl::owned("le", "9")], Some("le"));
        set.add_sample(&replaced, &name, Some(&le), s(3.0), Vec::new());
        let le1 = EncLabel::new("le", "1");
        set.add_sample(&hist, &name, Some(&le1), s(4.0), Vec::new());
        assert_eq!(set.len(), 2);
        let done = set.finish();
        let ts = done.to_time_series();
        // equal timestamps: the last written wins
        assert_eq!(ts[0].samples.len(), 1);
        assert_eq!(ts[0].samples[0].value, 3.0);
        assert_eq!(ts[1].samples[0].value, 4.0);
    }

    #[test]
    fn template_writes_the_same_bytes_as_a_full_encode() {
        let sets: [&[(&str, &str)]; 6] = [
            &[],
            &[("a", "1"), ("z", "2")],
            &[
                ("A", "x"),
                ("_x", "y"),
                ("le", "old"),
                ("quantile", "q"),
                ("zz", "z"),
            ],
            &[("Z", "1"), ("ZZ", "2")],
            &[("le", "only")],
            &[("job", "j"), ("ld", "before-le"), ("lf", "after-le")],
        ];
        let mut out = Vec::new();
        for base in sets {
            let lbls: Vec<Lbl<'_>> = base.iter().map(|(n, v)| Lbl::owned(n, *v)).collect();
            for extra in [None, Some("le"), Some("quantile")] {
                let t = Template::new(&lbls, extra);
                for value in [None, Some("0.5"), Some("+Inf")] {
                    let want = reference(base, "m_bucket", extra.zip(value));
                    out.clear();
                    let ex = extra.zip(value).map(|(e, v)| EncLabel::new(e, v));
                    let h = t.write(&EncLabel::name("m_bucket"), ex.as_ref(), &mut out);
                    assert_eq!(out, want, "base {base:?} extra {extra:?} value {value:?}");
                    // the hash is the set's, however it was put together
                    let mut sum = 0u64;
                    for (n, v) in decode_labels(&out) {
                        sum = sum.wrapping_add(put_label_hashed(&n, &v, &mut Vec::new()));
                    }
                    assert_eq!(h, sum);
                }
            }
        }
    }
}

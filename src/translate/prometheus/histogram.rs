//! Exponential histogram -> Prometheus native histogram (remote-write 1.0 `histograms`
//! field). Separate because the bucket re-indexing (OTel index -> Prometheus index, scale
//! reduction above schema 8, span/gap encoding, deltas) is the subtle part of the mapping.

use super::points::Point;
use crate::proto::prometheus::{BucketSpan, Histogram, histogram};

/// Prometheus' default zero threshold, used when the OTLP point leaves it at 0.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;
/// Highest and lowest schema Prometheus accepts for exponential buckets.
pub const MAX_SCHEMA: i32 = 8;
pub const MIN_SCHEMA: i32 = -4;

/// An exponential point the translator cannot represent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedScale(pub i32);

/// Re-indexes one side of an OTel exponential histogram. OTel bucket `i` covers
/// `(base^i, base^(i+1)]`, Prometheus bucket `j` covers `(base^(j-1), base^j]`, so
/// `j = (i >> scale_down) + 1`; buckets that land on the same `j` are merged. Empty buckets
/// are not sent: between two non-empty buckets a gap of up to two is filled with zeros, a
/// larger gap opens a new span (the rule of Prometheus' translator and client_golang).
pub fn bucket_layout(counts: &[u64], offset: i32, scale_down: u32) -> (Vec<BucketSpan>, Vec<i64>) {
    // Merged, non-empty buckets as (Prometheus index, count).
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(counts.len());
    for (i, &c) in counts.iter().enumerate() {
        let idx = ((i64::from(offset) + i as i64) >> scale_down) + 1;
        match merged.last_mut() {
            Some((last, n)) if *last == idx => *n = n.saturating_add(c as i64),
            _ => merged.push((idx, c as i64)),
        }
    }
    merged.retain(|&(_, n)| n != 0);
    let Some(&(first, _)) = merged.first() else {
        return (Vec::new(), Vec::new());
    };
    let mut spans = vec![BucketSpan {
        offset: first as i32,
        length: 0,
    }];
    let mut deltas = Vec::with_capacity(merged.len());
    let mut prev_count = 0i64;
    let mut prev_idx = first - 1;
    for (idx, n) in merged {
        let gap = idx - prev_idx - 1;
        if gap > 2 {
            spans.push(BucketSpan {
                offset: gap as i32,
                length: 0,
            });
        } else {
            for _ in 0..gap {
                deltas.push(-prev_count);
                prev_count = 0;
            }
        }
        if let Some(s) = spans.last_mut() {
            s.length += if gap > 2 { 1 } else { gap as u32 + 1 };
        }
        deltas.push(n - prev_count);
        prev_count = n;
        prev_idx = idx;
    }
    (spans, deltas)
}

/// Converts one exponential point. `stale` writes a stale marker (sum = stale NaN).
pub fn to_native(
    dp: &Point<'_>,
    timestamp_ms: i64,
    stale: bool,
) -> Result<Histogram, UnsupportedScale> {
    if dp.scale < MIN_SCHEMA {
        return Err(UnsupportedScale(dp.scale));
    }
    let (schema, scale_down) = if dp.scale > MAX_SCHEMA {
        (MAX_SCHEMA, (dp.scale - MAX_SCHEMA) as u32)
    } else {
        (dp.scale, 0)
    };
    let zero_threshold = if dp.zero_threshold > 0.0 {
        dp.zero_threshold
    } else {
        DEFAULT_ZERO_THRESHOLD
    };
    let mut h = Histogram {
        count: Some(histogram::Count::CountInt(dp.count)),
        sum: dp.sum.unwrap_or(0.0),
        schema,
        zero_threshold,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(dp.zero_count)),
        timestamp: timestamp_ms,
        ..Default::default()
    };
    if stale {
        h.sum = f64::from_bits(super::STALE_NAN_BITS);
        h.count = Some(histogram::Count::CountInt(0));
        h.zero_count = Some(histogram::ZeroCount::ZeroCountInt(0));
        return Ok(h);
    }
    if let Some(p) = &dp.positive {
        let (spans, deltas) = bucket_layout(&p.counts, p.offset, scale_down);
        h.positive_spans = spans;
        h.positive_deltas = deltas;
    }
    if let Some(n) = &dp.negative {
        let (spans, deltas) = bucket_layout(&n.counts, n.offset, scale_down);
        h.negative_spans = spans;
        h.negative_deltas = deltas;
    }
    Ok(h)
}

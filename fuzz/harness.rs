#![allow(dead_code)] // each fuzz target uses one harness
//! Fuzz harnesses shared by the cargo-fuzz targets (`fuzz_targets/*.rs`) and by the stable
//! corpus-replay test `tests/fuzz_harness_smoke.rs` of the main crate, so the same checks run
//! in `make test` without a nightly toolchain. Each takes arbitrary bytes from outside and
//! checks the decoder's invariants; any panic is a finding.

use watchtower::pipeline::payload::Signal;
use watchtower::queue::durable::record;

/// Protobuf validation and item counting: never panics, and (ARCHITECTURE.md rule 2) the
/// concatenation of two valid requests is valid with the summed count.
pub fn wire(data: &[u8]) {
    for s in Signal::ALL {
        if let Ok(n) = watchtower::pipeline::wire::validate_and_count(s, data) {
            let twice = [data, data].concat();
            assert_eq!(
                watchtower::pipeline::wire::validate_and_count(s, &twice).ok(),
                Some(2 * n),
                "concatenation of a valid request"
            );
        }
    }
}

/// OTLP/JSON: what the converter emits must pass protobuf validation (ids included: the
/// converter refuses hex ids of the wrong length itself, naming their JSON path).
pub fn json(data: &[u8]) {
    for s in Signal::ALL {
        if let Ok(pb) = watchtower::receiver::json::json_to_protobuf(s, data)
            && let Err(e) = watchtower::pipeline::wire::validate_and_count(s, &pb)
        {
            panic!("JSON converted to invalid protobuf: {e}");
        }
    }
}

/// Compressed bodies: the output limit holds for any input (bombs included), in gzip and in
/// every codec the receivers decode.
pub fn gzip(data: &[u8]) {
    use watchtower::compression::{Codec, decompress};
    const MAX: usize = 1 << 20;
    if let Ok(out) = watchtower::receiver::http::gunzip_limited(data, MAX) {
        assert!(out.len() <= MAX);
    }
    for c in [
        Codec::Gzip,
        Codec::Zlib,
        Codec::Zstd,
        Codec::Snappy,
        Codec::SnappyFramed,
        Codec::Lz4,
    ] {
        if let Ok(out) = decompress(c, data, MAX) {
            assert!(out.len() <= MAX);
        }
    }
}

/// The durable queue's record reader: never panics, accounts for every byte exactly once, in
/// order, and every record it returns re-encodes to the same bytes. Read as a segment
/// (`segment_items`), the same holds, every data record is numbered at least the segment's
/// first, and with first 0 (nothing can be older) it reads as the plain reader.
pub fn record(data: &[u8]) {
    use record::{Body, Reader, segment_items};
    let plain: Vec<_> = Reader::new(data).collect();
    covers_exactly(data, &plain);
    assert_eq!(segment_items(data, 0), plain);
    for first in [1, 2, 50, u64::MAX] {
        let items = segment_items(data, first);
        covers_exactly(data, &items);
        for item in &items {
            if let record::Item::Record {
                body: Body::Data { seq, .. },
                ..
            } = item
            {
                assert!(*seq >= first);
            }
        }
    }
}

fn covers_exactly(data: &[u8], items: &[record::Item<'_>]) {
    use record::{Body, Item, encode_acks, encode_data};
    let mut pos = 0usize;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Record { offset, body } => {
                assert_eq!(*offset, pos);
                let mut again = Vec::new();
                match body {
                    Body::Data {
                        seq,
                        signal,
                        items,
                        payload,
                    } => encode_data(&mut again, *seq, *signal, *items, payload),
                    Body::Acks(s) => encode_acks(&mut again, s),
                }
                assert_eq!(&data[*offset..*offset + again.len()], &again[..]);
                pos += again.len();
            }
            Item::Corrupt { offset, len } | Item::TornTail { offset, len } => {
                assert_eq!(*offset, pos);
                assert!(*len > 0);
                pos += len;
            }
            Item::Padding { offset, len } => {
                assert_eq!(*offset, pos);
                assert!(*len > 0);
                assert!(data[*offset..*offset + len].iter().all(|&b| b == 0));
                pos += len;
            }
            Item::Recycled { offset, len } => {
                assert_eq!(*offset, pos);
                assert_eq!(i + 1, items.len(), "the recycled rest is the last item");
                pos += len;
            }
        }
    }
    assert_eq!(pos, data.len());
}

/// Config parsing: any text gives a config or errors, never a panic.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = watchtower::config::parse(&text, &|k| (k == "X").then(|| "1".to_string()));
}

/// OTLP metrics -> Prometheus remote-write: the wire reader takes any bytes without
/// panicking, and a request the receivers' validator accepts always translates.
pub fn prw(data: &[u8]) {
    let s = watchtower::translate::prometheus::Settings::default();
    let raw = watchtower::translate::prometheus::translate_bytes(data, &s);
    if watchtower::pipeline::wire::validate_and_count(Signal::Metrics, data).is_err() {
        return;
    }
    match raw {
        Ok(enc) => drop(enc.requests(64 << 10)),
        Err(e) => panic!("a validated metrics request failed to translate: {e}"),
    }
}

/// OTLP logs -> Loki push on the wire bytes (the exporter's fast path), both formats: never
/// panics on any input, and on a request the receiver accepts (wire validation + prost) it
/// produces exactly what the prost-based reference mapping produces.
pub fn loki(data: &[u8]) {
    use prost::Message;
    use watchtower::translate::loki::{Format, Options, translate_encoded, translate_reference};
    const NOW: i64 = 1_700_000_000_000_000_000;
    let valid = watchtower::pipeline::wire::validate_and_count(Signal::Logs, data).is_ok();
    let decoded = if valid {
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(data).ok()
    } else {
        None
    };
    for format in [Format::Otlp, Format::Json] {
        let opts = Options {
            format,
            ..Options::default()
        };
        let fast = translate_encoded(data, &opts, NOW);
        if let Some(req) = &decoded {
            let want = translate_reference(req, &opts, NOW);
            assert_eq!(
                fast.as_ref().ok(),
                Some(&want),
                "fast path differs ({format:?})"
            );
        }
    }
}

//! Durable queues (docs/durable.md "Recovery"): a segment truncated mid-record (a torn tail, as kill -9 during a write leaves it)
//! and a flipped byte inside another record: the restart works, both are counted, and every
//! other acknowledged item is delivered.

mod durable_support;

use durable_support::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::BTreeSet;
use std::time::Duration;
use watchtower::queue::durable::record::{Body, Item, Reader};

fn span_ids(payload: &[u8]) -> BTreeSet<u64> {
    let req = ExportTraceServiceRequest::decode(payload).expect("payload is a trace request");
    req.resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .map(|s| u64::from_be_bytes(s.span_id[..].try_into().expect("8 bytes")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_and_flipped_byte_are_counted_and_the_rest_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, addr) = Capture::start(0).await;
    cap.set_down(true);
    let yaml = config(
        "127.0.0.1:0",
        &dir.path().display().to_string(),
        &[("tempo", addr, "max_bytes: 64MiB")],
        "",
    );
    let app = start_app(&yaml).await;
    let c = client();
    let mut acked = BTreeSet::new();
    for k in 0..40u64 {
        let r = c
            .post(http_url(&app))
            .header("content-type", "application/x-protobuf")
            .body(trace_request(1 + k * 10, 10))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        acked.extend(1 + k * 10..11 + k * 10);
    }
    // graceful stop with the destination down: everything stays on disk
    app.shutdown().await;

    let qdir = dir.path().join("otlphttp.tempo");
    let mut segs: Vec<_> = std::fs::read_dir(&qdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("seg".as_ref()))
        .collect();
    segs.sort();
    let seg = segs
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a segment with records")
        .clone();
    let mut data = std::fs::read(&seg).unwrap();
    let records: Vec<(usize, BTreeSet<u64>)> = Reader::new(&data)
        .filter_map(|i| match i {
            Item::Record {
                offset,
                body: Body::Data { payload, .. },
            } => Some((offset, span_ids(payload))),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 40);
    let (flip_at, flipped_ids) = (records[7].0 + 40, records[7].1.clone());
    let (cut_from, torn_ids) = records[39].clone();
    data[flip_at] ^= 0x5a;
    data.truncate(cut_from + 30);
    std::fs::write(&seg, &data).unwrap();

    cap.set_down(false);
    let app = start_app(&yaml).await;
    let lost: BTreeSet<u64> = flipped_ids.union(&torn_ids).copied().collect();
    let want: BTreeSet<u64> = acked.difference(&lost).copied().collect();
    let ok = wait_until(Duration::from_secs(15), || cap.unique() == want).await;
    let got = cap.unique();
    assert!(
        ok,
        "delivered {} of {} (extra: {:?})",
        got.intersection(&want).count(),
        want.len(),
        got.difference(&want).take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        app.metrics
            .queue
            .durable_damage_count("otlphttp/tempo", "torn_tail"),
        1
    );
    assert_eq!(
        app.metrics
            .queue
            .durable_damage_count("otlphttp/tempo", "corrupt_record"),
        1
    );
    assert_eq!(
        app.metrics.queue.durable_replayed_count("otlphttp/tempo"),
        380
    );
    app.shutdown().await;
    // the next start finds nothing damaged any more (the torn tail was cut off)
    let app = start_app(&yaml).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.metrics
            .queue
            .durable_damage_count("otlphttp/tempo", "torn_tail"),
        0
    );
    app.shutdown().await;
}

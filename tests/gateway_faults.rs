//! The fault matrix of the gateway core: retryable outages, permanent errors, Retry-After,
//! a stalled destination next to a healthy one, full `block` and `drop_oldest` queues, the
//! memory limit, partial success and SIGTERM draining. Counts are exact.

mod support;

use std::time::{Duration, Instant};
use support::capture::{Capture, Script};
use support::gateway::Gateway;
use support::{post_protobuf, span_ids, trace_request, wait_until};

fn traces_only(exporters: &str) -> String {
    format!("  pipelines:\n    traces: {{ receivers: [otlp], exporters: [{exporters}] }}\n")
}

const FAST_RETRY: &str =
    "retry_on_failure: { initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 60s }";

/// A gateway whose traces go to `dest` through `otlphttp` with fast retries.
async fn fast_retry_gateway(dest: &Capture) -> Gateway {
    Gateway::start(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\", {FAST_RETRY} }}\n",
            dest.url()
        ),
        &traces_only("otlphttp"),
    )
    .await
}

/// Polls a self-metric until it equals `want` (5 s at most); returns the last value read.
async fn metric_reaches(gw: &Gateway, name: &str, needles: &[&str], want: f64) -> f64 {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let v = gw.metric(name, needles).await;
        if v == want || Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_503_for_two_seconds_then_everything_is_delivered() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        fail_until: Some(Instant::now() + Duration::from_secs(2)),
        fail_status: 503,
        ..Default::default()
    });
    let gw = fast_retry_gateway(&dest).await;
    for r in 0..10u64 {
        let (st, _, _) =
            post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", r * 10, 10)).await;
        assert_eq!(st, 200);
    }
    assert!(
        wait_until(Duration::from_secs(15), || dest.span_count() >= 100).await,
        "only {} spans",
        dest.span_count()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        span_ids(&dest),
        (0..100).collect::<Vec<u64>>(),
        "every span exactly once"
    );
    assert_eq!(
        gw.metric("otelcol_exporter_sent_spans_total", &[]).await,
        100.0
    );
    assert_eq!(
        gw.metric("otelcol_exporter_send_failed_spans_total", &[])
            .await,
        0.0
    );
    assert!(
        gw.metric(
            "watchtower_exporter_retries_total",
            &["reason=\"http_503\""]
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_400_drops_the_batch_once_and_counts_it() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        fail_next: 1,
        fail_status: 400,
        ..Default::default()
    });
    let gw = fast_retry_gateway(&dest).await;
    let (st, _, _) = post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 5)).await;
    assert_eq!(
        st, 200,
        "the gateway accepted it; the destination refuses later"
    );
    assert!(wait_until(Duration::from_secs(5), || dest.requests() >= 1).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(dest.requests(), 1, "a 400 is never retried");
    assert_eq!(
        gw.metric("otelcol_exporter_send_failed_spans_total", &[])
            .await,
        5.0
    );
    assert_eq!(
        gw.metric(
            "watchtower_exporter_dropped_items_total",
            &["reason=\"http_400\""]
        )
        .await,
        5.0
    );
    // the destination is fine afterwards
    post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 100, 3)).await;
    assert!(wait_until(Duration::from_secs(5), || dest.span_count() == 3).await);
    assert_eq!(span_ids(&dest), vec![100, 101, 102]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        fail_next: 1,
        fail_status: 429,
        retry_after_secs: Some(2),
        ..Default::default()
    });
    // Retry-After is honoured up to max_interval (ARCHITECTURE.md rule 5), so it is above 2 s
    let gw = Gateway::start(&format!("exporters:\n  otlphttp: {{ endpoint: \"{}\", retry_on_failure: {{ initial_interval: 50ms, max_interval: 3s }} }}\n", dest.url()), &traces_only("otlphttp")).await;
    post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 4)).await;
    assert!(wait_until(Duration::from_secs(8), || dest.span_count() == 4).await);
    let a = dest.arrivals();
    assert_eq!(a.len(), 2);
    let gap = a[1] - a[0];
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, Retry-After said 2s"
    );
    assert_eq!(
        gw.metric(
            "watchtower_exporter_retries_total",
            &["reason=\"http_429\""]
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_destination_does_not_slow_the_healthy_one() {
    let fast = Capture::http().await;
    let stalled = Capture::http().await;
    stalled.set_script(Script {
        hang: true,
        ..Default::default()
    });
    let body = format!(
        "exporters:\n  otlphttp/fast: {{ endpoint: \"{}\" }}\n  otlphttp/stalled: {{ endpoint: \"{}\", timeout: 60s }}\n",
        fast.url(),
        stalled.url()
    );
    let gw = Gateway::start(&body, &traces_only("otlphttp/fast, otlphttp/stalled")).await;
    let mut worst = Duration::ZERO;
    for r in 0..40u64 {
        let t = Instant::now();
        let (st, _, _) =
            post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", r * 5, 5)).await;
        worst = worst.max(t.elapsed());
        assert_eq!(st, 200);
    }
    assert!(
        wait_until(Duration::from_secs(5), || fast.span_count() == 200).await,
        "fast got {}",
        fast.span_count()
    );
    assert_eq!(
        stalled.span_count(),
        0,
        "the stalled destination has delivered nothing yet"
    );
    // functional bound, not a speed goal: no request waited on the stalled destination
    assert!(worst < Duration::from_secs(2), "a request took {worst:?}");
    assert_eq!(span_ids(&fast), (0..200).collect::<Vec<u64>>());
    stalled.release();
    assert!(
        wait_until(Duration::from_secs(10), || stalled.span_count() == 200).await,
        "stalled got {}",
        stalled.span_count()
    );
    assert_eq!(span_ids(&stalled), (0..200).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_block_queue_refuses_retryably_and_no_destination_keeps_a_copy() {
    let a = Capture::http().await;
    let b = Capture::http().await;
    b.set_script(Script {
        hang: true,
        ..Default::default()
    });
    let body = format!(
        "exporters:\n  otlphttp/a: {{ endpoint: \"{}\" }}\n  otlphttp/b: {{ endpoint: \"{}\", timeout: 60s, sending_queue: {{ queue_size: 2, num_consumers: 1, block_timeout: 50ms }} }}\n",
        a.url(),
        b.url()
    );
    let gw = Gateway::start(&body, &traces_only("otlphttp/a, otlphttp/b")).await;
    let url = gw.http_url("/v1/traces");
    assert_eq!(post_protobuf(&url, trace_request("svc", 0, 5)).await.0, 200);
    assert!(
        wait_until(Duration::from_secs(5), || b.requests() == 1).await,
        "b's worker holds request 1"
    );
    assert_eq!(
        post_protobuf(&url, trace_request("svc", 10, 5)).await.0,
        200
    );
    assert_eq!(
        post_protobuf(&url, trace_request("svc", 20, 5)).await.0,
        200
    );
    let (st, retry_after, _) = post_protobuf(&url, trace_request("svc", 30, 5)).await;
    assert_eq!(st, 429, "b's queue is full: retryable refusal");
    assert!(retry_after.is_some(), "429 carries Retry-After");
    // gRPC clients get a retryable status too
    {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        use prost::Message;
        let mut c = TraceServiceClient::connect(gw.grpc_url()).await.unwrap();
        let req =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &trace_request("svc", 40, 5)[..],
            )
            .unwrap();
        let err = c.export(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    assert!(wait_until(Duration::from_secs(5), || a.span_count() == 15).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let want: Vec<u64> = [0..5, 10..15, 20..25].into_iter().flatten().collect();
    assert_eq!(
        span_ids(&a),
        want,
        "a holds no copy of the refused requests"
    );
    assert_eq!(
        gw.metric(
            "otelcol_exporter_enqueue_failed_spans_total",
            &["exporter=\"otlphttp/b\""]
        )
        .await,
        10.0
    );
    assert_eq!(
        gw.metric("otelcol_receiver_refused_spans_total", &[]).await,
        10.0
    );
    b.release();
    assert!(wait_until(Duration::from_secs(10), || b.span_count() == 15).await);
    // the client's retry is accepted now and lands once everywhere
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        post_protobuf(&url, trace_request("svc", 30, 5)).await.0,
        200
    );
    assert!(
        wait_until(Duration::from_secs(5), || a.span_count() == 20
            && b.span_count() == 20)
        .await
    );
    let want: Vec<u64> = [0..5, 10..15, 20..25, 30..35]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(span_ids(&a), want);
    assert_eq!(span_ids(&b), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_queue_counts_every_dropped_item() {
    let a = Capture::http().await;
    let b = Capture::http().await;
    b.set_script(Script {
        hang: true,
        ..Default::default()
    });
    let body = format!(
        "exporters:\n  otlphttp/a: {{ endpoint: \"{}\" }}\n  otlphttp/b: {{ endpoint: \"{}\", timeout: 60s, sending_queue: {{ queue_size: 2, num_consumers: 1, full_policy: drop_oldest }} }}\n",
        a.url(),
        b.url()
    );
    let gw = Gateway::start(&body, &traces_only("otlphttp/a, otlphttp/b")).await;
    let url = gw.http_url("/v1/traces");
    assert_eq!(post_protobuf(&url, trace_request("svc", 0, 5)).await.0, 200);
    assert!(wait_until(Duration::from_secs(5), || b.requests() == 1).await);
    for r in 1..6u64 {
        assert_eq!(
            post_protobuf(&url, trace_request("svc", r * 10, 5)).await.0,
            200,
            "drop policies never refuse"
        );
    }
    assert_eq!(
        gw.metric(
            "watchtower_exporter_dropped_items_total",
            &[
                "exporter=\"otlphttp/b\"",
                "reason=\"queue_full_drop_oldest\""
            ]
        )
        .await,
        15.0
    );
    assert_eq!(
        gw.metric(
            "otelcol_exporter_enqueue_failed_spans_total",
            &["exporter=\"otlphttp/b\""]
        )
        .await,
        15.0
    );
    assert!(
        wait_until(Duration::from_secs(5), || a.span_count() == 30).await,
        "a got everything"
    );
    b.release();
    assert!(wait_until(Duration::from_secs(10), || b.span_count() == 15).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let want: Vec<u64> = [0..5, 40..45, 50..55].into_iter().flatten().collect();
    assert_eq!(
        span_ids(&b),
        want,
        "b kept the first (in flight) and the two newest"
    );
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_refuses_instead_of_growing() {
    let stalled = Capture::http().await;
    stalled.set_script(Script {
        hang: true,
        ..Default::default()
    });
    let body = format!(
        "processors:\n  memory_limiter: {{ check_interval: 100ms, limit_mib: 120, spike_limit_mib: 20 }}\nexporters:\n  otlphttp: {{ endpoint: \"{}\", timeout: 60s, compression: none, sending_queue: {{ queue_size: 100000, max_bytes: 4GiB }} }}\n",
        stalled.url()
    );
    let gw = Gateway::start(&body, "  pipelines:\n    traces: { receivers: [otlp], processors: [memory_limiter], exporters: [otlphttp] }\n").await;
    let big = "x".repeat(900 * 1024);
    let mut refused = None;
    for r in 0..400u64 {
        let mut req = trace_request("svc", r, 1);
        // a 900 KiB attribute value makes each request big
        {
            use prost::Message;
            let mut m = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&req[..]).unwrap();
            m.resource_spans[0].scope_spans[0].spans[0].name = big.clone();
            req = m.encode_to_vec();
        }
        let (st, ra, _) = post_protobuf(&gw.http_url("/v1/traces"), req).await;
        if st != 200 {
            refused = Some((r, st, ra));
            break;
        }
    }
    let (at, st, ra) = refused.expect("the memory limiter never refused");
    assert_eq!(st, 429, "retryable refusal");
    assert!(ra.is_some());
    assert!(at > 5, "refused too early, at request {at}");
    let peak_mib = vm_kib(gw.child.id(), "VmHWM:") / 1024;
    assert!(
        peak_mib <= 120,
        "peak RSS {peak_mib} MiB above limit_mib 120"
    );
    assert!(
        gw.metric("watchtower_memory_limiter_refused_requests_total", &[])
            .await
            >= 1.0
    );
    stalled.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_counted_not_retried() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        partial_reject: 2,
        ..Default::default()
    });
    let gw = fast_retry_gateway(&dest).await;
    post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 5)).await;
    assert!(wait_until(Duration::from_secs(5), || dest.requests() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.requests(), 1);
    assert_eq!(
        gw.metric("otelcol_exporter_sent_spans_total", &[]).await,
        3.0
    );
    assert_eq!(
        gw.metric(
            "watchtower_exporter_dropped_items_total",
            &["reason=\"partial_success\""]
        )
        .await,
        2.0
    );
    // a destination claiming far more rejected spans than it was sent cannot inflate the
    // counters, and its message (line breaks, a terminal escape) cannot forge log lines
    dest.set_script(Script {
        partial_reject: 1_000_000_000_000,
        partial_message: Some("bad\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m".into()),
        ..Default::default()
    });
    post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 5)).await;
    assert!(wait_until(Duration::from_secs(5), || dest.requests() == 2).await);
    assert_eq!(
        metric_reaches(
            &gw,
            "watchtower_exporter_dropped_items_total",
            &["reason=\"partial_success\""],
            7.0
        )
        .await,
        7.0,
        "the 5 spans of the second batch, not 10^12"
    );
    assert_eq!(
        gw.metric("otelcol_exporter_send_failed_spans_total", &[])
            .await,
        7.0
    );
}

/// A destination that answers a redirect has not taken the batch: it is dropped and counted
/// (`http_302`), never followed (a followed POST turns into a GET, whose `200` counted the
/// batch as sent while no destination had it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_not_followed() {
    let dest = Capture::http().await;
    let gw = fast_retry_gateway(&dest).await;
    // redirected to a page that answers GET with 200: the gateway's own health endpoint
    dest.set_script(Script {
        fail_next: 1,
        fail_status: 302,
        location: Some(format!("http://127.0.0.1:{}/", gw.health_port)),
        ..Default::default()
    });
    post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 5)).await;
    assert_eq!(
        metric_reaches(
            &gw,
            "watchtower_exporter_dropped_items_total",
            &["reason=\"http_302\""],
            5.0
        )
        .await,
        5.0,
        "the batch is dropped as http_302"
    );
    assert_eq!(
        gw.metric("otelcol_exporter_sent_spans_total", &[]).await,
        0.0
    );
    assert_eq!(dest.span_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_queued_data_then_exits_zero() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    let mut gw = Gateway::start_with(
        &format!("exporters:\n  otlphttp: {{ endpoint: \"{}\", sending_queue: {{ num_consumers: 1 }} }}\n", dest.url()),
        &traces_only("otlphttp"),
        "  shutdown_timeout: 20s\n",
    )
    .await;
    for r in 0..10u64 {
        assert_eq!(
            post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", r * 10, 10))
                .await
                .0,
            200
        );
    }
    gw.sigterm();
    let code = gw.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "clean exit");
    assert_eq!(
        span_ids(&dest),
        (0..100).collect::<Vec<u64>>(),
        "everything queued was delivered before exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_up_at_the_deadline_on_a_dead_destination() {
    let dest = Capture::http().await;
    dest.set_script(Script {
        hang: true,
        ..Default::default()
    });
    let mut gw = Gateway::start_with(
        &format!(
            "exporters:\n  otlphttp: {{ endpoint: \"{}\", timeout: 60s }}\n",
            dest.url()
        ),
        &traces_only("otlphttp"),
        "  shutdown_timeout: 1s\n",
    )
    .await;
    assert_eq!(
        post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 10))
            .await
            .0,
        200
    );
    let t = Instant::now();
    gw.sigterm();
    let code = gw.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "shutdown took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_destination_unavailable_is_retried_and_invalid_argument_is_dropped() {
    let dest = Capture::grpc().await;
    dest.set_script(Script {
        fail_next: 2,
        fail_status: 503,
        ..Default::default()
    });
    let body = format!(
        "exporters:\n  otlp: {{ endpoint: \"{}\", tls: {{ insecure: true }}, {FAST_RETRY} }}\n",
        dest.addr
    );
    let gw = Gateway::start(&body, &traces_only("otlp")).await;
    assert_eq!(
        post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 0, 4))
            .await
            .0,
        200
    );
    assert!(wait_until(Duration::from_secs(10), || dest.span_count() == 4).await);
    assert_eq!(
        gw.metric(
            "watchtower_exporter_retries_total",
            &["reason=\"grpc_unavailable\""]
        )
        .await,
        2.0
    );
    dest.set_script(Script {
        fail_next: 1,
        fail_status: 400,
        ..Default::default()
    });
    assert_eq!(
        post_protobuf(&gw.http_url("/v1/traces"), trace_request("svc", 10, 3))
            .await
            .0,
        200
    );
    assert!(wait_until(Duration::from_secs(5), || dest.requests() == 4).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dest.requests(), 4, "INVALID_ARGUMENT is not retried");
    assert_eq!(
        gw.metric(
            "watchtower_exporter_dropped_items_total",
            &["reason=\"grpc_invalidargument\""]
        )
        .await,
        3.0
    );
    assert_eq!(span_ids(&dest), vec![0, 1, 2, 3]);
}

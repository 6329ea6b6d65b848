use super::*;
use crate::pipeline::grpc::retry_delay;

/// The table as the OTLP specification and the receivers' documentation state it, row by row:
/// (kind, reason label, HTTP status, gRPC code, retry delay in seconds).
const ROWS: [(RefusalKind, &str, u16, Code, Option<u64>); 15] = [
    (
        RefusalKind::Unauthenticated,
        "unauthenticated",
        401,
        Code::Unauthenticated,
        None,
    ),
    (
        RefusalKind::UnsupportedMediaType,
        "unsupported_media_type",
        415,
        Code::InvalidArgument,
        None,
    ),
    (
        RefusalKind::UnsupportedEncoding,
        "unsupported_encoding",
        415,
        Code::Unimplemented,
        None,
    ),
    (
        RefusalKind::TooLarge,
        "too_large",
        413,
        Code::ResourceExhausted,
        None,
    ),
    (
        RefusalKind::BadData,
        "bad_data",
        400,
        Code::InvalidArgument,
        None,
    ),
    (
        RefusalKind::BodyTimeout,
        "body_timeout",
        408,
        Code::DeadlineExceeded,
        None,
    ),
    (
        RefusalKind::ClientCancelled,
        "client_cancelled",
        499,
        Code::Cancelled,
        None,
    ),
    (
        RefusalKind::Admission,
        "admission",
        429,
        Code::ResourceExhausted,
        Some(1),
    ),
    (
        RefusalKind::MemoryLimit,
        "memory_limit",
        429,
        Code::ResourceExhausted,
        Some(1),
    ),
    (
        RefusalKind::QueueFull,
        "queue_full",
        429,
        Code::Unavailable,
        Some(1),
    ),
    (
        RefusalKind::StorageUnavailable,
        "storage_unavailable",
        503,
        Code::Unavailable,
        Some(1),
    ),
    (
        RefusalKind::ShuttingDown,
        "shutting_down",
        503,
        Code::Unavailable,
        Some(1),
    ),
    (
        RefusalKind::NoPipeline,
        "no_pipeline",
        404,
        Code::Unimplemented,
        None,
    ),
    (
        RefusalKind::UnknownEndpoint,
        "unknown_endpoint",
        404,
        Code::Unimplemented,
        None,
    ),
    (
        RefusalKind::MethodNotAllowed,
        "method_not_allowed",
        405,
        Code::Unimplemented,
        None,
    ),
];

#[test]
fn every_kind_has_its_http_status_grpc_code_and_retry_hint() {
    assert_eq!(
        ROWS.map(|r| r.0),
        RefusalKind::ALL,
        "one row per kind, in order"
    );
    for (kind, reason, http, grpc, retry) in ROWS {
        let a = kind.answer();
        assert_eq!(a.http.as_u16(), http, "{kind:?}");
        assert_eq!(a.grpc, grpc, "{kind:?}");
        assert_eq!(a.retry_after, retry.map(Duration::from_secs), "{kind:?}");
        assert_eq!(kind.reason(), reason, "{kind:?}");
        assert_eq!(kind.retryable(), retry.is_some(), "{kind:?}");
        // the gRPC answer carries the code and, exactly for retryable rows, RetryInfo
        let st = Refused::new(kind, "why").grpc_status();
        assert_eq!(st.code(), grpc, "{kind:?}");
        assert_eq!(st.message(), "why");
        assert_eq!(retry_delay(&st), a.retry_after, "{kind:?}");
    }
    // `ALL` indexes the counters: each kind at its own position
    for (i, kind) in RefusalKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i);
    }
}

/// OTLP specification, "OTLP/HTTP" > "Failures": 429, 502, 503 and 504 are retryable, every
/// other 4xx is not. "OTLP/gRPC" > "Failures": CANCELLED, DEADLINE_EXCEEDED, ABORTED,
/// OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retryable; RESOURCE_EXHAUSTED only when the
/// server sends RetryInfo. Two rows answer in each protocol's own word for what happened,
/// whatever its retry rule: a body that missed the server's time limit (408, which OTLP/HTTP
/// clients do not retry, and DEADLINE_EXCEEDED, which OTLP/gRPC clients do) and a request its
/// client cancelled (which no client reads).
#[test]
fn retryable_kinds_are_retryable_for_an_otlp_client_on_both_transports() {
    for kind in RefusalKind::ALL {
        if matches!(
            kind,
            RefusalKind::BodyTimeout | RefusalKind::ClientCancelled
        ) {
            assert!(!kind.retryable(), "{kind:?} carries no retry hint");
            continue;
        }
        let a = kind.answer();
        let st = Refused::new(kind, "m").grpc_status();
        let http_retryable = matches!(a.http.as_u16(), 429 | 502 | 503 | 504);
        let grpc_retryable = match st.code() {
            Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss => true,
            Code::ResourceExhausted => retry_delay(&st).is_some(),
            _ => false,
        };
        assert_eq!(http_retryable, kind.retryable(), "{kind:?} over HTTP");
        assert_eq!(grpc_retryable, kind.retryable(), "{kind:?} over gRPC");
        assert!(a.http.is_client_error() || a.http.is_server_error());
    }
}

#[test]
fn an_http_error_body_carries_the_code_of_its_status() {
    let cases = [
        (RefusalKind::Unauthenticated, Code::Unauthenticated),
        (RefusalKind::UnsupportedMediaType, Code::InvalidArgument),
        (RefusalKind::UnsupportedEncoding, Code::InvalidArgument),
        (RefusalKind::TooLarge, Code::ResourceExhausted),
        (RefusalKind::BadData, Code::InvalidArgument),
        (RefusalKind::BodyTimeout, Code::DeadlineExceeded),
        (RefusalKind::ClientCancelled, Code::Cancelled),
        (RefusalKind::Admission, Code::ResourceExhausted),
        (RefusalKind::MemoryLimit, Code::ResourceExhausted),
        (RefusalKind::QueueFull, Code::ResourceExhausted),
        (RefusalKind::StorageUnavailable, Code::Unavailable),
        (RefusalKind::ShuttingDown, Code::Unavailable),
        (RefusalKind::NoPipeline, Code::NotFound),
    ];
    for (kind, code) in cases {
        assert_eq!(kind.http_body_code(), code, "{kind:?}");
    }
}

#[test]
fn router_refusals_keep_their_reason_and_message() {
    let cases = [
        Refusal::MemoryLimit,
        Refusal::QueueFull("otlphttp".into()),
        Refusal::StorageUnavailable("otlphttp".into()),
        Refusal::ShuttingDown,
        Refusal::NoPipeline(Signal::Logs),
        Refusal::BadData("field 3".into()),
    ];
    for r in cases {
        let kind = RefusalKind::of(&r);
        assert_eq!(kind.reason(), r.reason(), "{r:?}");
        assert_eq!(kind.retryable(), r.retryable(), "{r:?}");
        let message = r.to_string();
        let refused = Refused::from(r);
        assert_eq!(refused.kind, kind);
        assert_eq!(refused.message, message);
    }
    assert_eq!(
        Refused::from(Refusal::QueueFull("otlphttp".into())).message,
        "sending queue of exporter otlphttp is full; retry later"
    );
}

#[test]
fn typed_errors_of_the_receivers_become_their_rows() {
    let json = crate::receiver::json::json_to_protobuf(Signal::Traces, b"{").unwrap_err();
    let r = Refused::from(json);
    assert_eq!(r.kind, RefusalKind::BadData);
    assert!(r.message.starts_with("invalid JSON"), "{}", r.message);
    let full = crate::receiver::admission::Refused::Full {
        receiver: "otlp".into(),
        in_flight: 3,
        limit_mib: 1,
    };
    let r = Refused::from(full);
    assert_eq!(r.kind, RefusalKind::Admission);
    assert!(r.message.contains("request_limit_mib 1"), "{}", r.message);
}

#[test]
fn a_body_read_error_is_classified_by_its_cause() {
    use crate::listener::body::BodyTimeout;
    let slow: Box<dyn std::error::Error + Send + Sync> = Box::new(BodyTimeout::TooSlow {
        rate: 1024,
        window: Duration::from_secs(5),
    });
    let r = body_read_error(&*slow);
    assert_eq!(r.kind, RefusalKind::BodyTimeout);
    assert!(r.message.contains("min_body_rate"), "{}", r.message);
    let timeout: Box<dyn std::error::Error + Send + Sync> =
        Box::new(BodyTimeout::ReadTimeout(Duration::from_secs(1)));
    assert_eq!(body_read_error(&*timeout).kind, RefusalKind::BodyTimeout);
    // a stream the client reset with CANCEL, found under a wrapper
    let cancel = axum::Error::new(h2::Error::from(h2::Reason::CANCEL));
    let r = body_read_error(&cancel);
    assert_eq!(r.kind, RefusalKind::ClientCancelled);
    // an HTTP/1.1 body cut short by the end of its connection
    let eof = axum::Error::new(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "end of file before message length reached",
    ));
    assert_eq!(body_read_error(&eof).kind, RefusalKind::ClientCancelled);
    // any other stream error is the client's protocol error: bad data
    let proto = axum::Error::new(h2::Error::from(h2::Reason::PROTOCOL_ERROR));
    let r = body_read_error(&proto);
    assert_eq!(r.kind, RefusalKind::BadData);
    assert!(
        r.message.starts_with("error reading request body: "),
        "{}",
        r.message
    );
}

#[test]
fn counters_are_the_registered_series() {
    let m = Arc::new(Metrics::new());
    let c = ReceiverCounters::shared(&m, "otlp", "http");
    c.accepted(Signal::Traces, 5);
    c.accepted(Signal::Traces, 2);
    c.accepted(Signal::Logs, 0);
    c.refused_items(Signal::Logs, 3);
    c.refused(&Refused::new(RefusalKind::QueueFull, "full"));
    c.refused(&Refused::new(RefusalKind::BadData, "bad"));
    c.refused(&Refused::new(RefusalKind::BadData, "bad again"));
    let l = ReceiverLabels {
        receiver: "otlp".into(),
        transport: "http".into(),
    };
    assert_eq!(m.receiver_accepted.get(Signal::Traces, &l), 7);
    assert_eq!(m.receiver_refused.get(Signal::Logs, &l), 3);
    let reason = |r: &str| {
        m.receiver_refused_reason
            .get_or_create(&RefusedLabels {
                receiver: "otlp".into(),
                transport: "http".into(),
                reason: r.into(),
            })
            .get()
    };
    assert_eq!(reason("queue_full"), 1);
    assert_eq!(reason("bad_data"), 2);
    // another transport of the same receiver is its own series
    let g = ReceiverCounters::shared(&m, "otlp", "grpc");
    g.refused(&Refused::new(RefusalKind::BadData, "bad"));
    assert_eq!(reason("bad_data"), 2);
    let text = m.encode();
    assert!(
        text.contains(
            "watchtower_receiver_refused_requests_total{receiver=\"otlp\",transport=\"grpc\",reason=\"bad_data\"} 1"
        ),
        "{text}"
    );
    // a series appears only once something happened
    assert!(!text.contains("reason=\"admission\""), "{text}");
}

//! The remote-write [`Sender`]: read the OTLP batch, translate, split into requests under
//! `max_batch_size_bytes`, snappy-compress, POST with the remote-write headers, and classify
//! the answer (2xx ok; 429 and 5xx retryable with `Retry-After`; other 4xx permanent, with
//! the reason read from the body: `out_of_order`, `duplicate_sample`, `too_old`, ...).
//!
//! Split batches: sub-requests go out one after the other. If one fails retryably the
//! whole batch is retried later, so sub-requests that were already written are sent again.
//! That is harmless for Prometheus and Mimir: a sample identical in timestamp and value to the
//! stored one is accepted silently. A permanent failure of one sub-request does not stop the
//! others (their samples are independent); the batch then reports the permanent error.

use super::config::Config;
use crate::exporter::http::{
    RetryRules, build_client, classify_status, classify_transport, header_map,
};
use crate::exporter::{SendError, SendFuture, SendOk, Sender};
use crate::pipeline::payload::Payload;
use crate::translate::prometheus::{self as prom, Settings};
use http::{HeaderMap, HeaderValue, header};
use std::sync::Arc;

/// Remote-write protocol version header value (1.0).
pub const REMOTE_WRITE_VERSION: &str = "0.1.0";
/// One ready-to-send batch: compressed request bodies plus the points refused by the
/// translator.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Snappy-compressed `WriteRequest`s, each under `max_batch_size_bytes` before compression.
    pub bodies: Vec<Vec<u8>>,
    /// (reason, data points) the translator refused.
    pub dropped: Vec<(String, u64)>,
    /// Data points written into `bodies`.
    pub points: u64,
}

struct Inner {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    settings: Settings,
    max_bytes: usize,
}

/// Sender for one `prometheusremotewrite` exporter. Cheap to clone.
#[derive(Clone)]
pub struct PrwSender {
    inner: Arc<Inner>,
}

impl PrwSender {
    /// The sender for `cfg`: validates it and builds the HTTP client and headers (no I/O).
    ///
    /// # Errors
    /// The config's problem, or a TLS file that cannot be read.
    pub fn new(cfg: &Config) -> Result<Self, String> {
        cfg.validate()?;
        let mut headers = header_map(
            &cfg.headers,
            cfg.basic_auth.as_ref(),
            cfg.bearer_token.as_deref(),
        )?;
        // The protocol headers win over user headers.
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static(REMOTE_WRITE_VERSION),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("watchtower/", env!("CARGO_PKG_VERSION"))),
        );
        let mut settings = Settings::new(&cfg.namespace, &cfg.external_labels)?;
        settings.add_metric_suffixes = cfg.add_metric_suffixes;
        settings.resource_to_telemetry = cfg.resource_to_telemetry_enabled();
        settings.target_info = cfg.target_info_enabled();
        settings.send_metadata = cfg.send_metadata;
        let client = build_client(&cfg.tls, cfg.timeout())?;
        Ok(PrwSender {
            inner: Arc::new(Inner {
                client,
                url: cfg.endpoint.clone(),
                headers,
                settings,
                max_bytes: cfg.max_batch_size_bytes(),
            }),
        })
    }

    /// Decodes, translates, splits and compresses a batch (no I/O).
    pub fn prepare(&self, otlp: &[u8]) -> Result<Prepared, SendError> {
        prepare(otlp, &self.inner.settings, self.inner.max_bytes)
    }

    /// POSTs one compressed body.
    async fn post(&self, body: Vec<u8>) -> Result<(), SendError> {
        let inner = &self.inner;
        let resp = inner
            .client
            .post(&inner.url)
            .headers(inner.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| classify_transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = crate::exporter::http::read_error_body(resp).await;
        let mut err = classify_status(status, &headers, &body, RetryRules::PushApi);
        if !err.retryable {
            if let Some(r) = reason_from_body(&body) {
                err.reason = r.to_string();
            }
        }
        Err(err)
    }
}

/// Decode + translate + split + compress, as a free function for tests and benches.
pub fn prepare(otlp: &[u8], settings: &Settings, max_bytes: usize) -> Result<Prepared, SendError> {
    let t = prom::translate_bytes(otlp, settings)
        .map_err(|e| SendError::permanent("decode", format!("invalid OTLP metrics batch: {e}")))?;
    let dropped = t
        .dropped
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), *n))
        .collect();
    let points = t.points;
    let mut bodies = Vec::new();
    for raw in t.requests(max_bytes) {
        let body = crate::translate::snappy::compress(&raw)
            .map_err(|e| SendError::permanent("encode", format!("snappy: {e}")))?;
        bodies.push(body);
    }
    Ok(Prepared {
        bodies,
        dropped,
        points,
    })
}

/// A low-cardinality reason from a 4xx body (Prometheus and Mimir wording).
pub fn reason_from_body(body: &str) -> Option<&'static str> {
    let b = body.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| b.contains(n));
    if has(&["out of order", "out-of-order", "out_of_order"]) {
        Some("out_of_order")
    } else if has(&[
        "duplicate sample",
        "duplicate-timestamp",
        "duplicate timestamp",
    ]) {
        Some("duplicate_sample")
    } else if has(&["too old", "too-old", "out of bounds", "out-of-bounds"]) {
        Some("too_old")
    } else if has(&["too far in the future", "too-far-in-future"]) {
        Some("too_new")
    } else if has(&["series limit", "max-series", "series-per"]) {
        Some("series_limit")
    } else if has(&["label", "metric name", "metric-name"]) {
        Some("invalid_labels")
    } else {
        None
    }
}

impl Sender for PrwSender {
    fn send(&self, batch: Payload) -> SendFuture {
        let this = self.clone();
        Box::pin(async move {
            // Decoding and translating is CPU work: keep it off the async worker threads.
            let worker = this.clone();
            let bytes = batch.bytes;
            let prepared = tokio::task::spawn_blocking(move || worker.prepare(&bytes))
                .await
                .map_err(|e| {
                    SendError::retryable("internal", format!("translation task: {e}"))
                })??;
            let total = prepared.bodies.len();
            let mut first_permanent: Option<SendError> = None;
            let mut refused = 0usize;
            for body in prepared.bodies {
                match this.post(body).await {
                    Ok(()) => {}
                    Err(e) if e.retryable => return Err(e),
                    Err(e) => {
                        refused += 1;
                        first_permanent.get_or_insert(e);
                    }
                }
            }
            if let Some(mut e) = first_permanent {
                if total > 1 {
                    e.message = format!("{} ({refused} of {total} requests refused)", e.message);
                }
                return Err(e);
            }
            Ok(SendOk {
                dropped: prepared.dropped,
                message: None,
            })
        })
    }
}

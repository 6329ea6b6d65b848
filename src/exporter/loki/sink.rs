//! The Loki [`Sender`]: one batch (concatenated `ExportLogsServiceRequest`s) -> one push
//! request. Loki wants the protobuf snappy-compressed in the block format with
//! `Content-Type: application/x-protobuf`; `Content-Encoding` is optional for it (Loki
//! accepts none or `snappy`), so none is sent, like Promtail.
//!
//! Answers (docs/loki.md "Answers and retries"): 2xx ok; 429 and 5xx retryable with `Retry-After`; 400 permanent, with
//! the reason read from Loki's message (`out_of_order`, `too_far_behind`, `too_old`,
//! `line_too_long`, `too_many_labels`, `invalid_labels`, ...); other 4xx permanent.

use super::config::Config;
use crate::exporter::http::{
    RetryRules, build_client, classify_status, classify_transport, header_map,
};
use crate::exporter::{SendError, SendFuture, SendOk, Sender};
use crate::pipeline::payload::{Payload, Signal};
use crate::translate::loki::{Options, translate_encoded};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Sender for one `loki` exporter.
pub struct LokiSink {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    opts: Options,
}

impl LokiSink {
    /// The sender for `cfg`: validates it and builds the HTTP client and headers (no I/O).
    pub fn new(cfg: &Config) -> Result<Self, String> {
        let (opts, warnings) = cfg.validate()?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        let client = build_client(&cfg.tls, cfg.timeout())?;
        let mut headers = header_map(
            &cfg.headers,
            cfg.basic_auth.as_ref(),
            cfg.bearer_token.as_deref(),
        )?;
        // Protocol headers win over user headers.
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.remove(http::header::CONTENT_ENCODING);
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("watchtower/", env!("CARGO_PKG_VERSION"))),
        );
        Ok(LokiSink {
            inner: Arc::new(Inner {
                client,
                url: cfg.endpoint.trim().to_string(),
                headers,
                opts,
            }),
        })
    }
}

/// Errors turning a batch into a push body (all permanent: retrying cannot fix the data).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    /// The batch is not logs.
    #[error("loki exporter got a {0} batch; it only takes logs")]
    WrongSignal(Signal),
    /// The bytes are not an `ExportLogsServiceRequest` (the decoder's message).
    #[error("batch is not a valid ExportLogsServiceRequest: {0}")]
    Decode(String),
}

/// Translates a batch (on its wire bytes) and builds the compressed push body. Returns `None` when the batch has no
/// log records (nothing to send).
pub fn push_body(
    batch: &Payload,
    opts: &Options,
    now_nanos: i64,
) -> Result<Option<(Vec<u8>, u64)>, EncodeError> {
    if batch.signal != Signal::Logs {
        return Err(EncodeError::WrongSignal(batch.signal));
    }
    let t = translate_encoded(batch.bytes.as_ref(), opts, now_nanos)
        .map_err(|e| EncodeError::Decode(e.to_string()))?;
    if t.entries == 0 {
        return Ok(None);
    }
    let compressed = crate::translate::snappy::compress(&t.body)
        .map_err(|e| EncodeError::Decode(format!("snappy: {e}")))?;
    Ok(Some((compressed, t.entries)))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The low-cardinality reason of a Loki 400, from its message text (Loki `validation`
/// package and ingester stream errors).
pub fn reason_from_body(body: &str) -> &'static str {
    let b = body.to_ascii_lowercase();
    let has = |s: &str| b.contains(s);
    if has("out of order") {
        "out_of_order"
    } else if has("too far behind") {
        "too_far_behind"
    } else if has("timestamp too old") || has("too old") {
        "too_old"
    } else if has("timestamp too new") || has("too new") {
        "too_new"
    } else if has("max entry size") || has("line too long") || has("line_too_long") {
        "line_too_long"
    } else if has("label names; limit") || has("too many labels") || has("too many label names") {
        "too_many_labels"
    } else if has("structured metadata") {
        if has("disallowed") || has("not allowed") {
            "structured_metadata_disallowed"
        } else {
            "structured_metadata_too_large"
        }
    } else if has("error parsing labels")
        || has("invalid label")
        || has("duplicate label")
        || has("label name too long")
        || has("label value too long")
        || has("at least one label")
    {
        "invalid_labels"
    } else {
        "http_400"
    }
}

impl Sender for LokiSink {
    fn send(&self, batch: Payload) -> SendFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            // Translating is CPU work (milliseconds for a batch of thousands of records):
            // keep it off the async worker threads, which also serve the receivers.
            let worker = inner.clone();
            let translated =
                tokio::task::spawn_blocking(move || push_body(&batch, &worker.opts, now_nanos()))
                    .await
                    .map_err(|e| {
                        SendError::retryable("internal", format!("translation task: {e}"))
                    })?;
            let body = match translated {
                Ok(Some((body, _entries))) => body,
                Ok(None) => return Ok(SendOk::all()),
                Err(e) => return Err(SendError::permanent("invalid_batch", e.to_string())),
            };
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
                return Ok(SendOk::all());
            }
            let headers = resp.headers().clone();
            let text = crate::exporter::http::read_error_body(resp).await;
            let mut err = classify_status(status, &headers, &text, RetryRules::PushApi);
            if status == StatusCode::BAD_REQUEST {
                err.reason = reason_from_body(&text).to_string();
            }
            Err(err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let cases = [
            (
                "entry with timestamp 2024-01-01 ignored, reason: 'entry out of order' for stream: {a=\"b\"}",
                "out_of_order",
            ),
            (
                "entry too far behind, entry timestamp is: x, oldest acceptable timestamp is: y",
                "too_far_behind",
            ),
            (
                "entry for stream '{a=\"b\"}' has timestamp too old: 2020, oldest acceptable timestamp is: 2024",
                "too_old",
            ),
            (
                "entry for stream '{a=\"b\"}' has timestamp too new: 2030",
                "too_new",
            ),
            (
                "Max entry size '262144' bytes exceeded for stream '{a=\"b\"}' while adding an entry with length '300000' bytes",
                "line_too_long",
            ),
            (
                "entry for stream '{a=\"b\"}' has 19 label names; limit 15",
                "too_many_labels",
            ),
            (
                "error parsing labels '{a=b}' with error: parse error",
                "invalid_labels",
            ),
            (
                "stream '{a=\"b\"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes",
                "structured_metadata_too_large",
            ),
            ("something else", "http_400"),
        ];
        for (body, want) in cases {
            assert_eq!(reason_from_body(body), want, "{body}");
        }
    }

    #[test]
    fn refuses_other_signals_and_garbage() {
        let o = Options::default();
        let p = Payload::new(Signal::Traces, bytes::Bytes::new(), 0);
        assert_eq!(
            push_body(&p, &o, 0),
            Err(EncodeError::WrongSignal(Signal::Traces))
        );
        let p = Payload::new(Signal::Logs, bytes::Bytes::from_static(&[0x0a, 0xff]), 1);
        assert!(matches!(push_body(&p, &o, 0), Err(EncodeError::Decode(_))));
        let p = Payload::new(Signal::Logs, bytes::Bytes::new(), 0);
        assert_eq!(push_body(&p, &o, 0), Ok(None));
    }

    #[test]
    fn config_keys() {
        let cfg: Config = serde_yaml::from_str(
            r#"
endpoint: http://loki:3100/loki/api/v1/push
headers: { X-Scope-OrgID: qa }
timeout: 5s
format: json
default_labels_enabled: { exporter: false }
index_labels: [service.name, team.id]
retry_on_failure: { initial_interval: 100ms }
"#,
        )
        .unwrap();
        let (o, w) = cfg.validate().unwrap();
        assert!(w.is_empty());
        assert_eq!(o.index_labels, vec!["service.name", "team.id"]);
        assert!(!o.default_labels.exporter && o.default_labels.job);
        assert_eq!(o.format, crate::translate::loki::Format::Json);
        assert!(serde_yaml::from_str::<Config>("endpoint: x\nbogus: 1").is_err());
        let bad: Config = serde_yaml::from_str("endpoint: loki:3100").unwrap();
        assert!(bad.validate().is_err());
        let many: Config = serde_yaml::from_str(
            "endpoint: http://l/loki/api/v1/push\nindex_labels: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s]",
        )
        .unwrap();
        assert_eq!(many.validate().unwrap().1.len(), 1);
        assert!(build(&cfg).is_ok());
    }

    use super::super::build;
}

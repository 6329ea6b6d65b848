//! `otlphttp` exporter: OTLP/HTTP protobuf to Tempo, Sumo Logic or any OTLP endpoint. The
//! batch bytes are sent as they arrived (gzip-compressed by default; `compression: zstd |
//! snappy | deflate | none` too), never re-encoded.

use crate::compression::{Codec, compress};
use crate::config::common::{
    BasicAuth, ClientTls, Compression, Dur, Headers, QueueSettings, RetrySettings,
};
use crate::exporter::http::{
    RetryRules, build_client, classify_status, classify_transport, header_map,
};
use crate::exporter::{SendFuture, SendOk, Sender};
use crate::extension::auth::ClientAuthenticator;
use crate::pipeline::payload::{Payload, Signal};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended.
    pub endpoint: Option<String>,
    /// Full per-signal URLs (used as given).
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    #[serde(deserialize_with = "crate::config::common::headers")]
    pub headers: Headers,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    /// `auth: { authenticator: <extension id> }`: the extension's credential is added to
    /// every request.
    pub auth: Option<crate::extension::auth::AuthRef>,
    pub compression: Compression,
    pub timeout: Option<Dur>,
    pub tls: ClientTls,
    pub sending_queue: QueueSettings,
    pub retry_on_failure: RetrySettings,
    /// accepted for Collector compatibility; only `proto` is supported
    pub encoding: Option<String>,
}

impl Config {
    /// The URL for one signal, as the Collector derives it.
    pub fn url(&self, signal: Signal) -> Option<String> {
        let specific = match signal {
            Signal::Traces => &self.traces_endpoint,
            Signal::Metrics => &self.metrics_endpoint,
            Signal::Logs => &self.logs_endpoint,
        };
        if let Some(u) = specific {
            return Some(u.clone());
        }
        let base = self.endpoint.as_ref()?;
        Some(format!(
            "{}/v1/{}",
            base.trim_end_matches('/'),
            signal.as_str()
        ))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.endpoint.is_none()
            && self.traces_endpoint.is_none()
            && self.metrics_endpoint.is_none()
            && self.logs_endpoint.is_none()
        {
            return Err("endpoint is required".into());
        }
        for s in Signal::ALL {
            if let Some(u) = self.url(s) {
                let shown = crate::telemetry::redact::url(&u);
                if !u.contains("://") {
                    return Err(format!(
                        "URL {shown:?} has no scheme: an otlphttp endpoint is a URL such as http://tempo:4318 (https:// with TLS)"
                    ));
                }
                let parsed: http::Uri = u.parse().map_err(|_| format!("invalid URL {shown:?}"))?;
                if !matches!(parsed.scheme_str(), Some("http") | Some("https")) {
                    return Err(format!("URL {shown:?} must start with http:// or https://"));
                }
            }
        }
        if let Some(enc) = &self.encoding
            && enc != "proto"
        {
            return Err(format!("encoding {enc:?} is not supported (only proto)"));
        }
        Ok(())
    }
}

/// Builds the sender; `auth` is the `auth.authenticator` extension's client role.
pub fn build(
    cfg: &Config,
    auth: Option<Arc<dyn ClientAuthenticator>>,
) -> Result<Arc<dyn Sender>, String> {
    cfg.validate()?;
    let client = build_client(
        &cfg.tls,
        cfg.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(30)),
    )?;
    let mut headers = header_map(
        &cfg.headers,
        cfg.basic_auth.as_ref(),
        cfg.bearer_token.as_deref(),
    )?;
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("watchtower/", env!("CARGO_PKG_VERSION"))),
    );
    let codec = cfg.compression.codec();
    if let Some(c) = codec {
        headers.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static(c.name()),
        );
    }
    let urls = [
        cfg.url(Signal::Traces),
        cfg.url(Signal::Metrics),
        cfg.url(Signal::Logs),
    ];
    Ok(Arc::new(OtlpHttpSender {
        client,
        headers,
        urls,
        codec,
        auth,
    }))
}

struct OtlpHttpSender {
    client: reqwest::Client,
    headers: http::HeaderMap,
    urls: [Option<String>; 3],
    codec: Option<Codec>,
    auth: Option<Arc<dyn ClientAuthenticator>>,
}

impl Sender for OtlpHttpSender {
    fn send(&self, batch: Payload) -> SendFuture {
        let url = self.urls[batch.signal as usize].clone();
        let client = self.client.clone();
        let mut headers = self.headers.clone();
        let codec = self.codec;
        let credential = self.auth.as_ref().map(|a| a.credential());
        Box::pin(async move {
            match credential {
                Some(Ok((k, v))) => {
                    headers.insert(k, v);
                }
                Some(Err(e)) => {
                    return Err(crate::exporter::SendError::retryable(
                        "auth",
                        format!("auth.authenticator: {e}"),
                    ));
                }
                None => {}
            }
            let Some(url) = url else {
                return Err(crate::exporter::SendError::permanent(
                    "no_endpoint",
                    format!("no endpoint configured for {}", batch.signal),
                ));
            };
            let body: reqwest::Body = match codec {
                Some(c) => compress(c, &batch.bytes).into(),
                None => batch.bytes.clone().into(),
            };
            let resp = client
                .post(&url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| classify_transport(&e))?;
            let status = resp.status();
            let rheaders = resp.headers().clone();
            let body =
                crate::exporter::http::read_body_limited(resp, crate::exporter::MAX_RESPONSE_BYTES)
                    .await;
            if status.is_success() {
                return Ok(SendOk::partial(crate::exporter::otlp::partial_success(
                    batch.signal,
                    &body,
                )));
            }
            let text = crate::exporter::otlp::status_message(&body);
            Err(classify_status(status, &rheaders, &text, RetryRules::Otlp))
        })
    }
}

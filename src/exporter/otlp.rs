//! `otlp` exporter: OTLP over gRPC, sending the batch bytes unchanged as the message of one
//! unary `Export` call ([`grpc_unary`]; `compression: gzip | zstd | deflate | snappy | none`).
//! Also the OTLP response helpers (partial success, error bodies) otlphttp shares.

use crate::config::common::{
    BasicAuth, ClientTls, Compression, Dur, Headers, QueueSettings, RetrySettings,
};
use crate::exporter::grpc_unary;
use crate::exporter::{SendError, SendFuture, SendOk, Sender};
use crate::extension::auth::ClientAuthenticator;
use crate::pipeline::grpc::{RpcStatus, retry_delay};
use crate::pipeline::payload::{Payload, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// `exporters: otlp[/name]` settings (OTLP/gRPC), in the Collector's otlpexporter spelling.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `host:port` or a URL (`http://`, `https://`).
    pub endpoint: String,
    /// gRPC metadata added to every export call.
    #[serde(deserialize_with = "crate::config::common::headers")]
    pub headers: Headers,
    /// HTTP Basic credentials sent as `authorization` metadata.
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `authorization: Bearer <token>` metadata.
    pub bearer_token: Option<String>,
    /// `auth: { authenticator: <extension id> }`: the extension's credential is added to
    /// every request.
    pub auth: Option<crate::extension::auth::AuthRef>,
    /// Message compression; default gzip.
    pub compression: Compression,
    /// Per-call deadline; default 30 s.
    pub timeout: Option<Dur>,
    /// Client TLS (`insecure: true` for plaintext to a `host:port` endpoint).
    pub tls: ClientTls,
    /// The exporter's queue.
    pub sending_queue: QueueSettings,
    /// Retries of failed calls.
    pub retry_on_failure: RetrySettings,
    /// HTTP/2 PINGs that find a dead connection (configgrpc's client `keepalive`).
    pub keepalive: KeepaliveClientConfig,
}

/// `keepalive` of the `otlp` exporter, configgrpc's `KeepaliveClientConfig`
/// (`config/configgrpc/configgrpc.go`): after `time` without a frame from the destination the
/// client sends an HTTP/2 PING, and closes the connection if no answer comes within `timeout`;
/// in-flight calls then fail as UNAVAILABLE (retried) and the next call opens a new
/// connection. Without it, a connection whose peer went silent (a load balancer or NAT that
/// dropped it, a destination that accepted and never answered) kept every later call until the
/// kernel gave up on it. Defaults as configgrpc's: 10 s and 10 s, no PINGs without calls in
/// flight; `time: 0s` turns it off.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveClientConfig {
    /// Silence after which a PING is sent; `0s` = no PINGs.
    pub time: Dur,
    /// How long the PING's answer may take before the connection is closed.
    pub timeout: Dur,
    /// PING also while no call is in flight.
    pub permit_without_stream: bool,
}

impl Default for KeepaliveClientConfig {
    fn default() -> Self {
        KeepaliveClientConfig {
            time: Dur::secs(10),
            timeout: Dur::secs(10),
            permit_without_stream: false,
        }
    }
}

impl Config {
    /// Endpoint URL: `host:port` is https unless `tls.insecure`, as in the Collector.
    pub fn url(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.tls.insecure {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        }
    }

    /// Checks what serde cannot: an endpoint is set and parses as a URI.
    ///
    /// # Errors
    /// A message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoint.is_empty() {
            return Err("endpoint is required".into());
        }
        Endpoint::from_shared(self.url()).map_err(|e| {
            format!(
                "invalid endpoint {:?}: {}",
                crate::telemetry::redact::url(&self.endpoint),
                crate::telemetry::redact::text(&e.to_string())
            )
        })?;
        Ok(())
    }
}

/// Builds the sender; `auth` is the `auth.authenticator` extension's client role.
pub fn build(
    cfg: &Config,
    auth: Option<Arc<dyn ClientAuthenticator>>,
) -> Result<Arc<dyn Sender>, String> {
    cfg.validate()?;
    crate::install_crypto_provider();
    let url = cfg.url();
    let timeout = cfg.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(30));
    // no `Endpoint::timeout`: `grpc_unary::call` bounds the whole call itself (tonic's bound
    // covers the answer's headers only, and racing two equal timers reported a timeout as
    // CANCELLED)
    let mut ep = Endpoint::from_shared(url.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if !cfg.keepalive.time.0.is_zero() {
        ep = ep
            .http2_keep_alive_interval(cfg.keepalive.time.0)
            .keep_alive_timeout(cfg.keepalive.timeout.0)
            .keep_alive_while_idle(cfg.keepalive.permit_without_stream);
    }
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &cfg.tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("tls.ca_file {ca}: {e}"))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        if let Some(name) = &cfg.tls.server_name_override {
            tls = tls.domain_name(name.clone());
        }
        if cfg.tls.insecure_skip_verify {
            return Err(
                "tls.insecure_skip_verify is not supported by the gRPC exporter; use tls.ca_file"
                    .into(),
            );
        }
        ep = ep.tls_config(tls).map_err(|e| format!("tls: {e}"))?;
    }
    let channel = ep.connect_lazy();
    let metadata = crate::exporter::http::header_map(
        &cfg.headers,
        cfg.basic_auth.as_ref(),
        cfg.bearer_token.as_deref(),
    )?;
    Ok(Arc::new(OtlpGrpcSender {
        channel,
        metadata,
        encoding: grpc_unary::grpc_encoding(cfg.compression),
        timeout,
        auth,
    }))
}

struct OtlpGrpcSender {
    channel: Channel,
    /// `headers`, `basic_auth` and `bearer_token` as gRPC metadata
    metadata: http::HeaderMap,
    encoding: Option<(&'static str, crate::compression::Codec)>,
    timeout: Duration,
    auth: Option<Arc<dyn ClientAuthenticator>>,
}

/// The OTLP/gRPC method path of `signal`'s Export call
/// (`/opentelemetry.proto.collector.<signal>.v1.<Signal>Service/Export`).
pub fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// Classifies a gRPC status per the OTLP spec: CANCELLED, DEADLINE_EXCEEDED, ABORTED,
/// OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS retryable; RESOURCE_EXHAUSTED only with RetryInfo.
pub fn classify_grpc(status: &tonic::Status) -> SendError {
    use tonic::Code::*;
    let delay = retry_delay(status);
    let retryable = match status.code() {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => true,
        ResourceExhausted => delay.is_some(),
        _ => false,
    };
    let reason = format!("grpc_{:?}", status.code()).to_lowercase();
    let msg = format!("gRPC {:?}: {}", status.code(), status.message());
    let e = if retryable {
        SendError::retryable(reason, msg)
    } else {
        SendError::permanent(reason, msg)
    };
    e.with_retry_after(delay)
}

impl Sender for OtlpGrpcSender {
    fn send(&self, batch: Payload) -> SendFuture {
        let channel = self.channel.clone();
        let mut metadata = self.metadata.clone();
        let (encoding, timeout) = (self.encoding, self.timeout);
        let credential = self.auth.as_ref().map(|a| a.credential());
        Box::pin(async move {
            match credential {
                Some(Ok((k, v))) => {
                    metadata.insert(k, v);
                }
                Some(Err(e)) => {
                    return Err(SendError::retryable(
                        "auth",
                        format!("auth.authenticator: {e}"),
                    ));
                }
                None => {}
            }
            let path = grpc_path(batch.signal);
            match grpc_unary::call(channel, path, metadata, encoding, batch.bytes, timeout).await {
                Ok(resp) => Ok(SendOk::partial(partial_success(batch.signal, &resp))),
                Err(status) => Err(classify_grpc(&status)),
            }
        })
    }
}

/// An `Export*ServiceResponse`'s `partial_success` (OTLP specification, "Partial Success").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    /// `rejected_spans` / `rejected_data_points` / `rejected_log_records` (negative as 0).
    pub rejected: u64,
    /// `error_message`.
    pub message: String,
}

/// The partial success reported by an `Export*ServiceResponse` (empty if none or
/// undecodable).
pub fn partial_success(signal: Signal, body: &[u8]) -> PartialSuccess {
    let part = |rejected: i64, message: String| PartialSuccess {
        rejected: rejected.max(0) as u64,
        message: super::backend_text(&message),
    };
    match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| part(p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| part(p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| part(p.rejected_log_records, p.error_message)),
    }
    .unwrap_or_default()
}

/// The message of an OTLP/HTTP error body (`google.rpc.Status` protobuf), or the body as text.
pub fn status_message(body: &[u8]) -> String {
    if let Ok(st) = RpcStatus::decode(body)
        && !st.message.is_empty()
    {
        return st.message;
    }
    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A destination whose first connection is accepted and never answered (a peer gone
    /// silent), and whose later connections answer every call with OK. Returns its address
    /// and the number of calls answered.
    async fn silent_then_healthy() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            let (silent, _) = l.accept().await.unwrap();
            let _held = silent;
            loop {
                let (sock, _) = l.accept().await.unwrap();
                let count = count.clone();
                tokio::spawn(async move {
                    let mut conn = h2::server::handshake(sock).await.unwrap();
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let count = count.clone();
                        tokio::spawn(async move {
                            let mut body = req.into_body();
                            while let Some(Ok(c)) = body.data().await {
                                let _ = body.flow_control().release_capacity(c.len());
                            }
                            let resp = http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let mut stream = respond.send_response(resp, false).unwrap();
                            stream
                                .send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                                .unwrap();
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", http::HeaderValue::from_static("0"));
                            stream.send_trailers(t).unwrap();
                            count.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        (addr, answered)
    }

    #[tokio::test]
    async fn keepalive_gives_up_a_silent_connection_and_the_next_call_reconnects() {
        let (addr, answered) = silent_then_healthy().await;
        let cfg: Config = serde_yaml::from_str(&format!(
            "{{ endpoint: \"{addr}\", tls: {{ insecure: true }}, compression: none, timeout: 60s, keepalive: {{ time: 300ms, timeout: 300ms }} }}"
        ))
        .unwrap();
        let sender = build(&cfg, None).unwrap();
        let batch = || Payload::new(Signal::Traces, Bytes::from_static(b"\x0a\x00"), 0);
        let t0 = std::time::Instant::now();
        let e = sender.send(batch()).await.unwrap_err();
        // the unanswered PING closed the connection long before the call's 60 s timeout
        assert!(e.retryable, "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 0);
        sender.send(batch()).await.unwrap();
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn keepalive_defaults_are_configgrpc_s_and_zero_turns_it_off() {
        let cfg: Config = serde_yaml::from_str("{ endpoint: \"h:1\" }").unwrap();
        assert_eq!(cfg.keepalive.time, Dur::secs(10));
        assert_eq!(cfg.keepalive.timeout, Dur::secs(10));
        assert!(!cfg.keepalive.permit_without_stream);
        let off: Config =
            serde_yaml::from_str("{ endpoint: \"h:1\", keepalive: { time: 0s } }").unwrap();
        assert!(off.keepalive.time.0.is_zero());
        let bad = serde_yaml::from_str::<Config>("{ endpoint: \"h:1\", keepalive: { tme: 1s } }");
        assert!(bad.unwrap_err().to_string().contains("tme"));
    }

    #[test]
    fn a_partial_success_is_dropped_items_and_the_destination_s_message() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "3 spans too old".into(),
            }),
        }
        .encode_to_vec();
        let p = partial_success(Signal::Traces, &resp);
        assert_eq!(
            p,
            PartialSuccess {
                rejected: 3,
                message: "3 spans too old".into()
            }
        );
        let ok = SendOk::partial(p);
        assert_eq!(ok.dropped, vec![("partial_success".to_string(), 3)]);
        assert_eq!(ok.message.as_deref(), Some("3 spans too old"));
        // a warning without rejected items is kept; an empty response is a full success
        let warned = SendOk::partial(PartialSuccess {
            rejected: 0,
            message: "deprecated field".into(),
        });
        assert!(warned.dropped.is_empty());
        assert_eq!(warned.message.as_deref(), Some("deprecated field"));
        assert_eq!(
            SendOk::partial(partial_success(Signal::Logs, b"")),
            SendOk::all()
        );
        // undecodable: nothing claimed
        assert_eq!(
            partial_success(Signal::Metrics, b"\xff\xff"),
            PartialSuccess::default()
        );
    }
}

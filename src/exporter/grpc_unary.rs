//! One unary gRPC call of the `otlp` exporter, made on a tonic [`Channel`] (its connection,
//! TLS, user agent and `timeout`) without tonic's client codec: the batch is already an
//! encoded export request, so the call is the 5-byte message prefix and the batch bytes
//! handed to HTTP/2 as they are. tonic's encoder copied every batch into a growing buffer
//! (a second copy of each batch, and fresh pages on every growth); here an uncompressed
//! batch is not copied at all, a compressed one is compressed once into its own buffer.
//!
//! The answer is read as gRPC specifies it (`doc/PROTOCOL-HTTP2.md` of grpc/grpc): the status
//! from the trailers, or from the headers of a trailers-only answer, else inferred from the
//! HTTP status (`doc/http-grpc-status-mapping.md`); the response message (an
//! `Export*ServiceResponse`, for partial success) is read up to [`MAX_RESPONSE_BYTES`].

use crate::compression::{self, Codec};
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::transport::Channel;
use tower::ServiceExt;

pub use super::MAX_RESPONSE_BYTES;

/// The `grpc-encoding` name and codec of a message compression, as grpc-go names them:
/// `snappy` is the Snappy framing format there, `deflate` the zlib format (RFC 1950).
pub fn grpc_encoding(c: crate::config::common::Compression) -> Option<(&'static str, Codec)> {
    use crate::config::common::Compression::*;
    match c {
        None => Option::None,
        Gzip => Some(("gzip", Codec::Gzip)),
        Zstd => Some(("zstd", Codec::Zstd)),
        Deflate => Some(("deflate", Codec::Zlib)),
        Snappy => Some(("snappy", Codec::SnappyFramed)),
    }
}

/// The request body of one unary call: the message prefix (compressed flag, big-endian
/// length), then the message, as two data frames.
struct UnaryBody {
    prefix: Option<Bytes>,
    message: Option<Bytes>,
}

impl UnaryBody {
    fn new(message: Bytes, compressed: bool) -> UnaryBody {
        let mut prefix = BytesMut::with_capacity(5);
        prefix.put_u8(u8::from(compressed));
        // a batch never reaches 4 GiB: the queues and the batcher bound it far below
        prefix.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
        UnaryBody {
            prefix: Some(prefix.freeze()),
            message: Some(message),
        }
    }
}

impl http_body::Body for UnaryBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = match self.prefix.take() {
            Some(p) => Some(p),
            None => self.message.take(),
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.message.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let n = self.prefix.as_ref().map_or(0, Bytes::len)
            + self.message.as_ref().map_or(0, Bytes::len);
        http_body::SizeHint::with_exact(n as u64)
    }
}

/// Makes one unary call of `path` carrying `message` (an encoded request), compressed with
/// `encoding` when set, with `metadata` as request headers. The whole call, the answer's body
/// and trailers included, is bounded by `timeout`.
///
/// Returns the response message (uncompressed; empty if the server sent none).
///
/// # Errors
/// The call's non-OK status: the server's `grpc-status` / `grpc-message`, a code inferred
/// from the HTTP status when there is none, `DEADLINE_EXCEEDED` past `timeout`, the code
/// tonic derives from a transport error (`UNAVAILABLE` for a refused connection), `INTERNAL`
/// for a malformed or oversized answer.
pub async fn call(
    channel: Channel,
    path: &'static str,
    mut metadata: http::HeaderMap,
    encoding: Option<(&'static str, Codec)>,
    message: Bytes,
    timeout: Duration,
) -> Result<Bytes, tonic::Status> {
    let (message, compressed) = match encoding {
        Some((name, codec)) => {
            metadata.insert("grpc-encoding", http::HeaderValue::from_static(name));
            (Bytes::from(compression::compress(codec, &message)), true)
        }
        None => (message, false),
    };
    metadata.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    metadata.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    metadata.insert(
        "grpc-accept-encoding",
        http::HeaderValue::from_static("gzip"),
    );
    // the deadline, so the destination can give up on the call when this client does
    // (gRPC over HTTP/2, "Timeout": at most 8 digits and a unit)
    if let Ok(v) = http::HeaderValue::from_str(&grpc_timeout(timeout)) {
        metadata.insert("grpc-timeout", v);
    }
    let mut req = http::Request::new(tonic::body::Body::new(UnaryBody::new(message, compressed)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static(path);
    *req.headers_mut() = metadata;
    match tokio::time::timeout(timeout, exchange(channel, req)).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "no answer within the exporter's timeout ({timeout:?})"
        ))),
    }
}

/// `timeout` as a `grpc-timeout` value: milliseconds (`m`) while they fit in 8 digits, else
/// whole seconds (`S`), else hours (`H`, capped at 8 digits).
pub fn grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let ms = timeout.as_millis();
    if ms <= MAX {
        return format!("{}m", ms.max(1));
    }
    let s = timeout.as_secs();
    if u128::from(s) <= MAX {
        return format!("{s}S");
    }
    format!("{}H", (s / 3600).min(MAX as u64))
}

async fn exchange(
    channel: Channel,
    req: http::Request<tonic::body::Body>,
) -> Result<Bytes, tonic::Status> {
    let resp = channel
        .oneshot(req)
        .await
        .map_err(|e| transport_status(Box::new(e)))?;
    // a trailers-only answer: the status is in the headers
    if let Some(st) = tonic::Status::from_header_map(resp.headers())
        && st.code() != tonic::Code::Ok
    {
        return Err(st);
    }
    let (parts, body) = resp.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES + 5)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => tonic::Status::internal(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )),
            Err(e) => transport_status(e),
        })?;
    let status = match collected.trailers() {
        Some(t) => tonic::Status::from_header_map(t),
        None => None,
    }
    .or_else(|| tonic::Status::from_header_map(&parts.headers))
    .unwrap_or_else(|| status_from_http(parts.status));
    if status.code() != tonic::Code::Ok {
        return Err(status);
    }
    response_message(&parts.headers, collected.to_bytes())
}

/// The status of a call that failed below gRPC (connect, TLS, a reset connection, the
/// channel's deadline), with the whole error chain as the message, so the log says what failed
/// ("tcp connect error: Connection refused", not only "tcp connect error"). The code is the one
/// tonic derives from the error, except: the channel's deadline (`grpc-timeout`, tonic's
/// `TimeoutExpired`) is DEADLINE_EXCEEDED, not CANCELLED; and a failure tonic cannot name
/// (UNKNOWN: a connection reset or closed under the call) is UNAVAILABLE, as grpc-go reports a
/// transport that closed, so the batch is retried rather than dropped (at least once: the
/// destination may have written it).
fn transport_status(e: Box<dyn std::error::Error + Send + Sync>) -> tonic::Status {
    let mut chain = e.to_string();
    let mut timed_out = e.is::<tonic::TimeoutExpired>();
    let mut src = e.source();
    while let Some(s) = src {
        timed_out |= s.is::<tonic::TimeoutExpired>();
        let text = s.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        src = s.source();
    }
    if timed_out {
        return tonic::Status::deadline_exceeded(format!(
            "no answer within the exporter's timeout ({chain})"
        ));
    }
    let st = tonic::Status::from_error(e);
    if !st.details().is_empty() {
        return st;
    }
    let code = match st.code() {
        tonic::Code::Unknown => tonic::Code::Unavailable,
        c => c,
    };
    tonic::Status::new(code, chain)
}

/// The code of an answer without `grpc-status`, from its HTTP status
/// (`doc/http-grpc-status-mapping.md` of grpc/grpc); a 200 without a status is `UNKNOWN`.
pub fn status_from_http(status: http::StatusCode) -> tonic::Status {
    use tonic::Code;
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    let what = if status == http::StatusCode::OK {
        "an answer without grpc-status".to_string()
    } else {
        format!("HTTP {status} without grpc-status")
    };
    tonic::Status::new(code, what)
}

/// The first message of a response body (`data`: prefixed messages), decompressed with the
/// answer's `grpc-encoding` when its compressed flag is set; empty when there is none.
fn response_message(headers: &http::HeaderMap, data: Bytes) -> Result<Bytes, tonic::Status> {
    if data.len() < 5 {
        return Ok(Bytes::new());
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let Some(body) = data.get(5..5 + len) else {
        return Err(tonic::Status::internal(format!(
            "the answer's message is cut short ({} of {len} bytes)",
            data.len() - 5
        )));
    };
    match data[0] {
        0 => Ok(data.slice(5..5 + len)),
        1 => {
            let name = headers
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let codec = Codec::from_grpc(name).ok().flatten().ok_or_else(|| {
                tonic::Status::internal(format!(
                    "the answer is compressed with an unsupported grpc-encoding {name:?}"
                ))
            })?;
            compression::decompress(codec, body, MAX_RESPONSE_BYTES)
                .map(Bytes::from)
                .map_err(|e| tonic::Status::internal(format!("the answer's message: {e}")))
        }
        flag => Err(tonic::Status::internal(format!(
            "the answer's message has compressed flag {flag}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_is_the_prefix_then_the_message_itself() {
        let message = Bytes::from(vec![7u8; 300]);
        let mut body = UnaryBody::new(message.clone(), false);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(305));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], &[0, 0, 0, 1, 44]);
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        // the same allocation: the batch is not copied
        assert_eq!(second.as_ptr(), message.as_ptr());
        assert!(body.frame().await.is_none());
        let mut z = UnaryBody::new(Bytes::from_static(b"ab"), true);
        let first = z.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], &[1, 0, 0, 0, 2]);
    }

    #[test]
    fn the_response_message_is_read_plain_or_decompressed_and_checked() {
        let none = http::HeaderMap::new();
        let framed = |flag: u8, m: &[u8]| {
            let mut v = vec![flag];
            v.extend_from_slice(&(m.len() as u32).to_be_bytes());
            v.extend_from_slice(m);
            Bytes::from(v)
        };
        assert_eq!(response_message(&none, Bytes::new()).unwrap(), Bytes::new());
        assert_eq!(
            response_message(&none, framed(0, b"hello")).unwrap(),
            Bytes::from_static(b"hello")
        );
        let mut gz = http::HeaderMap::new();
        gz.insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        let z = compression::compress(Codec::Gzip, b"partial");
        assert_eq!(
            response_message(&gz, framed(1, &z)).unwrap(),
            Bytes::from_static(b"partial")
        );
        let e = response_message(&none, framed(1, b"x")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert!(e.message().contains("grpc-encoding"), "{}", e.message());
        let mut cut = framed(0, b"hello").to_vec();
        cut.truncate(7);
        let e = response_message(&none, Bytes::from(cut)).unwrap_err();
        assert!(
            e.message().contains("cut short (2 of 5 bytes)"),
            "{}",
            e.message()
        );
        assert_eq!(
            response_message(&none, framed(2, b"x")).unwrap_err().code(),
            tonic::Code::Internal
        );
    }

    fn endpoint(url: String) -> tonic::transport::Endpoint {
        tonic::transport::Endpoint::from_shared(url).unwrap()
    }

    /// One uncompressed traces export of a 2-byte message through `ep`, bounded by `timeout`.
    async fn export_to(
        ep: tonic::transport::Endpoint,
        timeout: Duration,
    ) -> Result<Bytes, tonic::Status> {
        let path = crate::exporter::otlp::grpc_path(crate::pipeline::payload::Signal::Traces);
        let message = Bytes::from_static(b"\x0a\x00");
        call(
            ep.connect_lazy(),
            path,
            http::HeaderMap::new(),
            None,
            message,
            timeout,
        )
        .await
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_says_why() {
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = export_to(
            endpoint(format!("http://127.0.0.1:{port}")),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(
            e.message().to_lowercase().contains("refused"),
            "{}",
            e.message()
        );
    }

    #[tokio::test]
    async fn the_channel_s_deadline_is_deadline_exceeded_not_cancelled() {
        let (addr, _sent) = stalling_destination(false).await;
        // a channel whose own deadline (tonic's `TimeoutExpired`) fires first
        let e = export_to(
            endpoint(format!("http://{addr}")).timeout(Duration::from_millis(100)),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
        assert!(e.message().contains("timeout"), "{}", e.message());
    }

    #[tokio::test]
    async fn a_connection_reset_under_a_call_is_unavailable_so_it_is_retried() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = l.accept().await.unwrap();
            // the client's preface and request arrive, then the connection is reset
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            sock.set_zero_linger().unwrap();
            drop(sock);
        });
        let e = export_to(endpoint(format!("http://{addr}")), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    }

    #[test]
    fn the_deadline_is_sent_in_grpc_timeout_units() {
        assert_eq!(grpc_timeout(Duration::from_secs(30)), "30000m");
        assert_eq!(grpc_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::from_secs(u64::MAX / 2)), "99999999H");
    }

    #[test]
    fn an_answer_without_grpc_status_maps_from_http() {
        use tonic::Code;
        for (http, code) in [
            (200, Code::Unknown),
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
        ] {
            let st = status_from_http(http::StatusCode::from_u16(http).unwrap());
            assert_eq!(st.code(), code, "HTTP {http}");
        }
    }

    /// A destination that reads the request, then answers the headers and never ends the body
    /// (`headers`), or never answers at all.
    async fn stalling_destination(
        headers: bool,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Receiver<(http::HeaderMap, Bytes)>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<(http::HeaderMap, Bytes)>();
        tokio::spawn(async move {
            let (sock, _) = l.accept().await.unwrap();
            let mut conn = h2::server::handshake(sock).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            let (parts, mut body) = req.into_parts();
            let mut got = BytesMut::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            let _ = tx.send((parts.headers, got.freeze()));
            if !headers {
                std::future::pending::<()>().await;
            }
            let resp = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let _stream = respond.send_response(resp, false).unwrap();
            std::future::pending::<()>().await;
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn a_destination_that_stalls_after_its_headers_ends_in_deadline_exceeded() {
        let (addr, sent) = stalling_destination(true).await;
        let r = export_to(
            endpoint(format!("http://{addr}")),
            Duration::from_millis(300),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
        assert!(e.message().contains("timeout"), "{}", e.message());
        // what went on the wire: the prefix and the message, uncompressed, with the deadline
        let (headers, body) = sent.await.unwrap();
        assert_eq!(&body[..], &[0, 0, 0, 0, 2, 0x0a, 0x00]);
        assert_eq!(headers["grpc-timeout"], "300m");
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["te"], "trailers");
    }
}

//! HTTP client plumbing shared by the HTTP destinations (otlphttp, remote-write, Loki):
//! building a reqwest client from the TLS/timeout settings, and classifying answers into
//! success, retryable and permanent failures with `Retry-After` honoured.

use crate::config::common::{BasicAuth, ClientTls, Headers};
use crate::exporter::{SendError, retry};
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::Duration;

/// Which protocol's retry rules apply to an HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryRules {
    /// OTLP/HTTP: 429, 502, 503, 504 are retryable; every other 4xx/5xx is permanent.
    Otlp,
    /// Remote-write and Loki: 429 and every 5xx are retryable; other 4xx are permanent.
    PushApi,
}

/// Builds a client for one destination. `tls.ca_file` adds roots; `insecure_skip_verify`
/// accepts any certificate (testing only).
pub fn build_client(tls: &ClientTls, timeout: Duration) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        // a redirect is answered, not followed: following turns the POST into a GET and the
        // GET's 200 would count a batch as sent that no destination took
        .redirect(reqwest::redirect::Policy::none());
    if tls.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("tls.ca_file {ca}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls.ca_file {ca}: {e}"))?;
        b = b.tls_certs_merge(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert).map_err(|e| format!("tls.cert_file {cert}: {e}"))?;
        pem.extend(std::fs::read(key).map_err(|e| format!("tls.key_file {key}: {e}"))?);
        let id =
            reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate: {e}"))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| format!("http client: {e}"))
}

/// Turns configured headers and auth into a header map, failing on invalid names/values.
pub fn header_map(
    headers: &Headers,
    basic: Option<&BasicAuth>,
    bearer: Option<&str>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k:?}"))?;
        map.insert(name, value);
    }
    if let Some(b) = basic {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", b.username, b.password));
        let value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| "invalid basic auth".to_string())?;
        map.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(t) = bearer {
        let value = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| "invalid bearer token".to_string())?;
        map.insert(http::header::AUTHORIZATION, value);
    }
    Ok(map)
}

/// `Retry-After` (RFC 9110 section 10.2.3) as delay-seconds or an HTTP date (all three date
/// forms, parsed by the `httpdate` crate), as a wait from now: a date in the past is zero,
/// and the wait is capped at [`retry::MAX_SERVER_DELAY`]. `None` when the header is absent or
/// unreadable. The retry layer further honours it only up to `retry_on_failure.max_interval`.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after_from(v, std::time::SystemTime::now())
}

/// A `Retry-After` value as a wait from `now`, capped at [`retry::MAX_SERVER_DELAY`].
pub fn retry_after_from(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate_parse(v)?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(retry::MAX_SERVER_DELAY))
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(v).ok()
}

/// Classifies a non-2xx answer. `body` is a prefix of the response body, used for the message
/// (and by Loki/remote-write callers to refine `reason`).
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    rules: RetryRules,
) -> SendError {
    let code = status.as_u16();
    let retryable = match rules {
        RetryRules::Otlp => matches!(code, 429 | 502 | 503 | 504),
        RetryRules::PushApi => code == 429 || status.is_server_error(),
    };
    let snippet: String = body.chars().take(300).collect();
    let mut message = format!("HTTP {code}: {}", snippet.trim());
    if status.is_redirection() {
        let to = headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        message = format!(
            "HTTP {code}: redirect to {} not followed (a POST must reach the endpoint itself: set the endpoint to the final URL)",
            crate::telemetry::redact::text(to)
        );
    }
    let err = if retryable {
        SendError::retryable(format!("http_{code}"), message)
    } else {
        SendError::permanent(format!("http_{code}"), message)
    };
    err.with_retry_after(parse_retry_after(headers))
}

/// How much of an error answer is kept for the message and the reason.
pub const MAX_ERROR_BODY: usize = 4096;

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error answer, lossily as text (a backend's
/// error page can be large; only its start names the problem).
pub async fn read_error_body(resp: reqwest::Response) -> String {
    String::from_utf8_lossy(&read_body_limited(resp, MAX_ERROR_BODY).await).into_owned()
}

/// Reads at most `max` bytes of an answer's body and leaves the rest unread (a destination's
/// answer never grows memory past `max`; a read error ends the body where it stopped).
pub async fn read_body_limited(mut resp: reqwest::Response, max: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(max - buf.len())]),
            _ => break,
        }
    }
    buf
}

/// Classifies a transport error (connection refused, timeout): always retryable.
pub fn classify_transport(e: &reqwest::Error) -> SendError {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // reqwest quotes the request URL: mask its credentials and path tokens
    SendError::retryable(reason, crate::telemetry::redact::text(&msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_body_is_read_up_to_the_limit_and_no_further() {
        // a destination's 8 MiB answer
        let answer = || reqwest::Response::from(http::Response::new(vec![b'x'; 8 << 20]));
        let body = read_body_limited(answer(), 100_000).await;
        assert_eq!(body.len(), 100_000);
        let text = read_error_body(answer()).await;
        assert_eq!(text.len(), MAX_ERROR_BODY);
        assert!(text.bytes().all(|b| b == b'x'));
        let small = reqwest::Response::from(http::Response::new(b"ok".to_vec()));
        assert_eq!(read_body_limited(small, 100_000).await, b"ok");
    }

    #[test]
    fn otlp_rules() {
        let h = HeaderMap::new();
        assert!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, &h, "", RetryRules::Otlp).retryable
        );
        assert!(classify_status(StatusCode::TOO_MANY_REQUESTS, &h, "", RetryRules::Otlp).retryable);
        assert!(!classify_status(StatusCode::BAD_REQUEST, &h, "bad", RetryRules::Otlp).retryable);
        assert!(
            !classify_status(StatusCode::INTERNAL_SERVER_ERROR, &h, "", RetryRules::Otlp).retryable
        );
        assert!(
            classify_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                &h,
                "",
                RetryRules::PushApi
            )
            .retryable
        );
        assert!(
            !classify_status(StatusCode::PAYLOAD_TOO_LARGE, &h, "", RetryRules::PushApi).retryable
        );
    }

    #[test]
    fn retry_after() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT")
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            784111777
        );
    }

    #[test]
    fn retry_after_every_form_is_capped() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let in_90s = Some(Duration::from_secs(90));
        // IMF-fixdate, the obsolete RFC 850 and asctime forms, and delay-seconds
        assert_eq!(
            retry_after_from("Sun, 06 Nov 1994 08:51:07 GMT", now),
            in_90s
        );
        assert_eq!(
            retry_after_from("Sunday, 06-Nov-94 08:51:07 GMT", now),
            in_90s
        );
        assert_eq!(retry_after_from("Sun Nov  6 08:51:07 1994", now), in_90s);
        assert_eq!(retry_after_from(" 90 ", now), in_90s);
        // far future in both forms: capped, never a worker parked for years
        assert_eq!(
            retry_after_from("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(retry::MAX_SERVER_DELAY)
        );
        assert_eq!(
            retry_after_from("99999999999", now),
            Some(retry::MAX_SERVER_DELAY)
        );
        // past dates are "now"; garbage is no hint
        assert_eq!(
            retry_after_from("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_from("soon", now), None);
        assert_eq!(retry_after_from("-5", now), None);
    }
}

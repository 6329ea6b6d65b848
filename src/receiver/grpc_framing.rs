//! Malformed gRPC framing is the client's fault: a length-prefixed message cut short by the
//! end of the stream, a compressed flag without `grpc-encoding`, or a flag other than 0/1.
//! tonic's decoder reports these as INTERNAL (the gRPC compression document asks INTERNAL for
//! the compressed-flag case); OTLP receivers answer INVALID_ARGUMENT, so the client sees that
//! the request itself is wrong and does not retry it (OTLP spec, "OTLP/gRPC Response").

/// Beginnings of the messages tonic 0.14's message decoder gives framing errors.
const FRAMING_ERRORS: [&str; 3] = [
    "Unexpected EOF decoding stream",
    "protocol error: received message with compressed-flag but no grpc-encoding",
    "protocol error: received message with invalid compression flag",
];

/// Percent-decodes a `grpc-message` value (gRPC over HTTP/2, "Responses").
fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let Some(hex) = v.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `grpc-message` names a framing error.
pub fn is_framing_error(grpc_message: &[u8]) -> bool {
    let m = percent_decode(grpc_message);
    FRAMING_ERRORS.iter().any(|p| m.starts_with(p))
}

/// Rewrites an INTERNAL status for malformed framing into INVALID_ARGUMENT (status in the
/// headers: tonic answers a unary request it cannot decode with a trailers-only response).
pub fn framing_errors_are_invalid_argument(res: &mut http::Response<tonic::body::Body>) {
    let h = res.headers_mut();
    if h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"13")
        && h.get("grpc-message")
            .is_some_and(|m| is_framing_error(m.as_bytes()))
    {
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_tonic_framing_messages_percent_encoded_or_not() {
        assert!(is_framing_error(b"Unexpected%20EOF%20decoding%20stream."));
        assert!(is_framing_error(
            b"protocol error: received message with compressed-flag but no grpc-encoding was specified"
        ));
        assert!(is_framing_error(
            b"protocol%20error:%20received%20message%20with%20invalid%20compression%20flag:%202"
        ));
        assert!(!is_framing_error(b"some%20other%20failure"));
        assert!(!is_framing_error(b"%"));
        assert!(!is_framing_error(b"%4"));
    }
}

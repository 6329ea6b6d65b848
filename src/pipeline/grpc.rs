//! gRPC plumbing: `google.rpc.Status` / `RetryInfo` details, which the receiver's retryable
//! refusals carry and the `otlp` exporter reads from its destination's refusals, and a tonic
//! codec that moves raw message bytes for tonic clients and servers that must not decode OTLP
//! (the bench tools' load generator and sink, tests). The `otlp` exporter itself frames its
//! calls without tonic's codec (`exporter::grpc_unary`).

use bytes::{Buf, BufMut, Bytes};
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// A tonic codec whose messages are the encoded protobuf bytes themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// [`RawCodec`]'s encoder: writes the bytes as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

/// [`RawCodec`]'s decoder: hands out the message bytes as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// `google.rpc.Status`
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// gRPC status code (`google.rpc.Code`).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details, e.g. [`RetryInfo`].
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    /// Type of `value`, e.g. [`RETRY_INFO_TYPE`].
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long the client should wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds, 0 to 999,999,999 (same sign as `seconds`).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `Any.type_url` of [`RetryInfo`] (OTLP specification, "OTLP/gRPC Throttling").
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A retryable refusal carrying RetryInfo, as OTLP clients expect for backpressure.
pub fn status_with_retry(code: tonic::Code, message: &str, delay: Duration) -> tonic::Status {
    use prost::Message;
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    let st = RpcStatus {
        code: code as i32,
        message: message.to_string(),
        details: vec![ProtoAny {
            type_url: RETRY_INFO_TYPE.into(),
            value: info.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, Bytes::from(st.encode_to_vec()))
}

/// The RetryInfo delay of a status, if it carries one.
pub fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    use prost::Message;
    let st = RpcStatus::decode(status.details()).ok()?;
    let any = st.details.iter().find(|d| d.type_url == RETRY_INFO_TYPE)?;
    let d = RetryInfo::decode(&any.value[..]).ok()?.retry_delay?;
    let secs = u64::try_from(d.seconds).ok()?;
    let wait = Duration::from_secs(secs)
        .checked_add(Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0)))?;
    Some(wait.min(crate::exporter::retry::MAX_SERVER_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trip() {
        let st = status_with_retry(
            tonic::Code::ResourceExhausted,
            "queue full",
            Duration::from_millis(1500),
        );
        assert_eq!(retry_delay(&st), Some(Duration::from_millis(1500)));
        assert_eq!(retry_delay(&tonic::Status::unavailable("x")), None);
    }
}

//! Body codecs shared by the OTLP receivers (decoding with a hard output limit, so a
//! decompression bomb in any codec costs at most the limit) and the OTLP exporters (encoding).
//!
//! Names follow the Collector: over HTTP (`config/confighttp/compression.go`) `gzip`/`x-gzip`,
//! `zlib` and `deflate` (both the zlib format, RFC 1950), `zstd`, `lz4` (LZ4 frame format),
//! `x-snappy-framed` (Snappy framing format) and `snappy`, which the Collector decodes as the
//! framing format when the body starts with the framing format's stream identifier and as a
//! raw Snappy block otherwise, and encodes as a block. gRPC's `grpc-encoding` uses the same
//! names (`gzip`, `deflate`, `zstd`, `snappy`).

use std::io::Read;

/// One supported content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// gzip (RFC 1952), also accepted as `x-gzip`.
    Gzip,
    /// The zlib format (RFC 1950), named `zlib` or `deflate`.
    Zlib,
    /// Zstandard (RFC 8878).
    Zstd,
    /// Snappy: framing format if the body starts with its stream identifier, else a block.
    Snappy,
    /// The Snappy framing format only (`x-snappy-framed`).
    SnappyFramed,
    /// The LZ4 frame format.
    Lz4,
}

/// The `Content-Encoding` values the OTLP/HTTP receiver accepts, for error messages and docs.
pub const HTTP_ENCODINGS: &str = "gzip, x-gzip, deflate, zlib, zstd, snappy, x-snappy-framed, lz4";
/// The `grpc-encoding` values the OTLP/gRPC receiver accepts.
pub const GRPC_ENCODINGS: &str = "gzip,deflate,zstd,snappy";

impl Codec {
    /// The codec for an HTTP `Content-Encoding` value (case-insensitive, trimmed): `Ok(None)`
    /// for no coding (`""`, `identity`), `Err(UnsupportedCoding)` for an unsupported one.
    pub fn from_http(value: &str) -> Result<Option<Codec>, UnsupportedCoding> {
        Ok(Some(match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Codec::Gzip,
            "deflate" | "zlib" => Codec::Zlib,
            "zstd" => Codec::Zstd,
            "snappy" => Codec::Snappy,
            "x-snappy-framed" => Codec::SnappyFramed,
            "lz4" => Codec::Lz4,
            _ => return Err(UnsupportedCoding),
        }))
    }

    /// The codec for a `grpc-encoding` value (gRPC's compression doc names `identity`, `gzip`,
    /// `deflate`, `snappy`, `zstd`).
    pub fn from_grpc(value: &str) -> Result<Option<Codec>, UnsupportedCoding> {
        Ok(Some(match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => return Ok(None),
            "gzip" => Codec::Gzip,
            "deflate" => Codec::Zlib,
            "zstd" => Codec::Zstd,
            "snappy" => Codec::Snappy,
            _ => return Err(UnsupportedCoding),
        }))
    }

    /// The name used in errors and on the wire for HTTP.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "deflate",
            Codec::Zstd => "zstd",
            Codec::Snappy => "snappy",
            Codec::SnappyFramed => "x-snappy-framed",
            Codec::Lz4 => "lz4",
        }
    }
}

/// A content coding this gateway does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported content coding")]
pub struct UnsupportedCoding;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded body would exceed the limit (bytes); decoding stopped there.
    #[error("decompressed body larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The body is not valid in its coding.
    #[error("invalid {codec} body: {message}")]
    Corrupt {
        /// The coding's name (`gzip`, `zstd`, ...).
        codec: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// The stream identifier chunk that opens every Snappy framing-format stream.
const SNAPPY_STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decodes `data` with `codec`, producing at most `max` bytes: a larger result is
/// [`DecodeError::TooLarge`] after reading at most `max + 1` bytes of output, whatever the
/// compression ratio.
pub fn decompress(codec: Codec, data: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt {
        codec: codec.name(),
        message: e.to_string(),
    };
    match codec {
        Codec::Gzip => read_limited(flate2::read::MultiGzDecoder::new(data), codec, data, max),
        Codec::Zlib => read_limited(flate2::read::ZlibDecoder::new(data), codec, data, max),
        Codec::Zstd => {
            let mut dec = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(&e))?;
            // the window never needs to exceed the output limit; 2^23 covers every level's
            // default for streams of unknown size, 2^27 is zstd's own decoder default
            let log = (usize::BITS - max.max(1).leading_zeros()).clamp(23, 27);
            dec.window_log_max(log).map_err(|e| corrupt(&e))?;
            read_limited(dec, codec, data, max)
        }
        Codec::Snappy if !data.starts_with(SNAPPY_STREAM_ID) => {
            // a block states its decoded length up front: check it before allocating
            let len = snap::raw::decompress_len(data).map_err(|e| corrupt(&e))?;
            if len > max {
                return Err(DecodeError::TooLarge(max));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| corrupt(&e))
        }
        Codec::Snappy | Codec::SnappyFramed => {
            read_limited(snap::read::FrameDecoder::new(data), codec, data, max)
        }
        Codec::Lz4 => read_limited(lz4_flex::frame::FrameDecoder::new(data), codec, data, max),
    }
}

fn read_limited(
    reader: impl Read,
    codec: Codec,
    data: &[u8],
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
    match reader.take(max as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(DecodeError::TooLarge(max)),
        Ok(_) => Ok(out),
        Err(e) => Err(DecodeError::Corrupt {
            codec: codec.name(),
            message: e.to_string(),
        }),
    }
}

/// Encodes `data` with `codec` (fast levels: the exporters compress on their send path).
/// `Snappy` writes a block, as the Collector's `snappy` does.
pub fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let cap = data.len() / 4 + 64;
    // writing into a Vec cannot fail; an encoder error would leave an empty body, which the
    // destination refuses rather than misreads
    match codec {
        Codec::Gzip => {
            let mut e =
                flate2::write::GzEncoder::new(Vec::with_capacity(cap), flate2::Compression::fast());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        Codec::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(cap),
                flate2::Compression::fast(),
            );
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        Codec::Zstd => zstd::bulk::compress(data, 1).unwrap_or_default(),
        Codec::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .unwrap_or_default(),
        Codec::SnappyFramed => {
            let mut e = snap::write::FrameEncoder::new(Vec::with_capacity(cap));
            let _ = e.write_all(data);
            e.into_inner().unwrap_or_default()
        }
        Codec::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(cap));
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 6] = [
        Codec::Gzip,
        Codec::Zlib,
        Codec::Zstd,
        Codec::Snappy,
        Codec::SnappyFramed,
        Codec::Lz4,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in ALL {
            let z = compress(c, &data);
            assert!(z.len() < data.len(), "{c:?} compresses");
            assert_eq!(decompress(c, &z, data.len()).as_ref(), Ok(&data), "{c:?}");
        }
    }

    #[test]
    fn snappy_accepts_framed_and_block() {
        let data = b"hello hello hello hello".repeat(100);
        let framed = compress(Codec::SnappyFramed, &data);
        assert!(framed.starts_with(SNAPPY_STREAM_ID));
        assert_eq!(
            decompress(Codec::Snappy, &framed, 1 << 20),
            Ok(data.clone())
        );
        let block = compress(Codec::Snappy, &data);
        assert_eq!(decompress(Codec::Snappy, &block, 1 << 20), Ok(data));
    }

    #[test]
    fn a_bomb_in_any_codec_stops_at_the_limit() {
        let data = vec![0u8; 8 << 20];
        for c in ALL {
            let z = compress(c, &data);
            assert_eq!(
                decompress(c, &z, 1 << 20),
                Err(DecodeError::TooLarge(1 << 20)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for c in ALL {
            let r = decompress(c, b"\x00\x01not compressed at all", 1 << 20);
            assert!(
                matches!(r, Err(DecodeError::Corrupt { .. })),
                "{c:?}: {r:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(Codec::from_http("X-GZIP"), Ok(Some(Codec::Gzip)));
        assert_eq!(Codec::from_http("deflate"), Ok(Some(Codec::Zlib)));
        assert_eq!(Codec::from_http("identity"), Ok(None));
        assert_eq!(Codec::from_http("br"), Err(UnsupportedCoding));
        assert_eq!(Codec::from_grpc("snappy"), Ok(Some(Codec::Snappy)));
        assert_eq!(Codec::from_grpc("lz4"), Err(UnsupportedCoding));
    }
}

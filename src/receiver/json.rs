//! OTLP/JSON -> OTLP protobuf, at the edge. OTLP/JSON is the protobuf JSON mapping
//! (ProtoJSON) with OTLP's exceptions (OTLP specification, "OTLP/HTTP" > "JSON Protobuf
//! Encoding"): trace and span ids are hex, not base64, and enums may be names or integers.
//! The mapping itself is pbjson's (types and impls generated from `proto/opentelemetry` at
//! build time); the value rules and OTLP's exceptions live in [`scalars`]. See
//! docs/otlp-json.md for everything a body may contain.
//!
//! A request either decodes completely or is refused: every type error is an error that names
//! the JSON path of the offending value, so that no wrongly typed field is dropped behind a
//! success answer.

pub mod scalars;

use crate::pipeline::payload::Signal;
use crate::proto::otlp_json::opentelemetry::proto::collector;
use prost::Message;
use serde::de::DeserializeOwned;

/// Why an OTLP/JSON body was refused (an HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The body is not JSON (or has trailing data), or holds a number JSON can write but no
    /// OTLP field can hold (`1e400`). `path` is the JSON path of the value being read when
    /// the error was found, when there was one (`resourceSpans[0].scopeSpans[0]...`).
    #[error("invalid JSON{}: {error}", path.as_ref().map(|p| format!(" at {p}")).unwrap_or_default())]
    Syntax {
        /// JSON path of the value being read, `None` at the top level.
        path: Option<String>,
        /// serde_json's error, with line and column.
        error: serde_json::Error,
    },
    /// The body is JSON, but a value has the wrong type or is out of range. `path` is the
    /// JSON path of that value (`resourceMetrics[0].scopeMetrics[0].metrics[2].gauge...`),
    /// `.` for the body itself.
    #[error("invalid OTLP/JSON {signal} request at {path}: {message}")]
    Field {
        /// The request's signal.
        signal: Signal,
        /// JSON path of the bad value.
        path: String,
        /// What was wrong and what was expected.
        message: String,
    },
}

/// Converts an OTLP/JSON request body to the encoded protobuf request.
pub fn json_to_protobuf(signal: Signal, body: &[u8]) -> Result<Vec<u8>, JsonError> {
    match signal {
        Signal::Traces => decode::<collector::trace::v1::ExportTraceServiceRequest>(signal, body),
        Signal::Metrics => {
            decode::<collector::metrics::v1::ExportMetricsServiceRequest>(signal, body)
        }
        Signal::Logs => decode::<collector::logs::v1::ExportLogsServiceRequest>(signal, body),
    }
}

fn decode<T: DeserializeOwned + Message>(
    signal: Signal,
    body: &[u8],
) -> Result<Vec<u8>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match T::deserialize(&mut de).and_then(|m| de.end().map(|()| m)) {
        Ok(m) => Ok(m.encode_to_vec()),
        Err(e) => Err(locate::<T>(signal, body, e)),
    }
}

/// Runs the failed decode again with path tracking (which costs an allocation per key, so
/// only a refused body pays for it) to name where the error is.
fn locate<T: DeserializeOwned>(signal: Signal, body: &[u8], first: serde_json::Error) -> JsonError {
    use serde_json::error::Category;
    if matches!(first.classify(), Category::Eof | Category::Io) {
        return JsonError::Syntax {
            path: None,
            error: first,
        };
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let tracked = serde_path_to_error::deserialize::<_, T>(&mut de);
    if first.classify() == Category::Syntax {
        // A number out of range is a syntax error to serde_json, raised inside the value: the
        // path says which one. Broken structure (`{not json`, trailing data) has no path, or
        // only a key the tracker could not read.
        let path = match tracked {
            Err(e)
                if e.path().iter().next().is_some()
                    && !e
                        .path()
                        .iter()
                        .any(|s| matches!(s, serde_path_to_error::Segment::Unknown)) =>
            {
                Some(e.path().to_string())
            }
            _ => None,
        };
        return JsonError::Syntax { path, error: first };
    }
    match tracked {
        Err(e) => JsonError::Field {
            signal,
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        },
        // not reached: the same input fails the same way
        Ok(_) => JsonError::Field {
            signal,
            path: ".".into(),
            message: first.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;

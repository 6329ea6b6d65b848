//! OTLP logs -> Loki push request (pure, no I/O). The `loki` exporter calls
//! [`translate_encoded`] in its own worker on the encoded `ExportLogsServiceRequest` bytes of a
//! batch and gets an encoded (uncompressed) `logproto.PushRequest`.
//!
//! Two implementations with the same output:
//! - the fast path ([`translate_encoded`]): a zero-copy wire reader ([`reader`], driven by
//!   [`fast`]) feeds per-format mappers (`otlp_fast`, `json_fast`) that encode entries
//!   straight into the output buffer ([`builder`]); no prost decode of log records, no
//!   per-record allocation in the common case;
//! - the reference path ([`translate_reference`]): prost decode into owned structs, then
//!   `otlp` / `json_format` build entries that `encode` writes. It defines the mapping;
//!   the fast path reuses its per-resource code and falls back to its per-record code for rare
//!   record shapes (map or array values, `loki.*.labels` hints), and tests check that both
//!   paths agree byte for byte.
//!
//! Two mappings ([`Format`]):
//! - `otlp` (default): the same as Loki's native OTLP ingestion (`pkg/loghttp/push/otlp.go`),
//!   so dashboards written for OTLP-in-Loki work unchanged: a configurable list of resource
//!   attributes becomes index labels, everything else becomes structured metadata, the body is
//!   the line. See `otlp`.
//! - `json`: the contrib `lokiexporter` / Alloy `otelcol.exporter.loki` format for users
//!   migrating from it: `exporter`/`job`/`instance` labels, `loki.*.labels` hints, the record
//!   as a JSON line. See `json_format`.
//!
//! Both group entries per stream (one stream per distinct label set), sort entries by time
//! within a stream (stable: equal timestamps keep arrival order) and sort streams by selector,
//! so the output is deterministic.

pub mod builder;
pub(crate) mod encode;
pub mod fast;
pub(crate) mod json_fast;
pub(crate) mod json_format;
pub(crate) mod labels;
pub(crate) mod otlp;
pub(crate) mod otlp_fast;
pub mod reader;
pub(crate) mod value;

pub use reader::ReadError;

#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod tests;

use encode::{Entry, Stream};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::collections::HashMap;

/// Which mapping to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `otlp`: Loki's native OTLP ingestion mapping (index labels from resource attributes,
    /// structured metadata, the body as the line).
    #[default]
    Otlp,
    /// `json`: the contrib lokiexporter's mapping (`exporter`/`job`/`instance` labels, the record
    /// as a JSON line).
    Json,
}

/// The labels the `json` format adds by default (lokiexporter `default_labels_enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultLabels {
    /// `exporter="OTLP"`.
    pub exporter: bool,
    /// `job` = `service.namespace/service.name` or `service.name`.
    pub job: bool,
    /// `instance` = `service.instance.id`.
    pub instance: bool,
    /// `level` = the record's severity text, lower-cased.
    pub level: bool,
}

impl Default for DefaultLabels {
    fn default() -> Self {
        DefaultLabels {
            exporter: true,
            job: true,
            instance: true,
            level: true,
        }
    }
}

/// Translation settings, built once from the exporter config.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The mapping (`format:` of the exporter); default `otlp`.
    pub format: Format,
    /// Resource attribute names promoted to stream labels (`otlp` format), in precedence
    /// order: when two of them normalize to the same label name, the earlier one wins.
    pub index_labels: Vec<String>,
    /// Labels the `json` format adds; all on by default.
    pub default_labels: DefaultLabels,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Otlp,
            index_labels: labels::DEFAULT_INDEX_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_labels: DefaultLabels::default(),
        }
    }
}

/// An encoded push request and what is in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translated {
    /// Encoded `logproto.PushRequest`, not yet compressed.
    pub body: Vec<u8>,
    /// Entries (one per log record).
    pub entries: u64,
    /// Streams (distinct label sets).
    pub streams: usize,
}

/// Translates an encoded `ExportLogsServiceRequest` (or several concatenated: a batch) on the
/// fast path. `now_nanos` is the receive time used for records without any timestamp.
/// Malformed bytes give a [`ReadError`]. Group-encoded (wire type 3) fields outside log
/// records are refused, as the receiver's wire validation refuses them.
pub fn translate_encoded(
    bytes: &[u8],
    opts: &Options,
    now_nanos: i64,
) -> Result<Translated, ReadError> {
    let mut out = builder::PushBuilder::with_capacity(bytes.len() + bytes.len() / 2);
    match opts.format {
        Format::Otlp => {
            fast::walk(
                bytes,
                &mut otlp_fast::OtlpMapper::new(opts, now_nanos),
                &mut out,
            )?;
        }
        Format::Json => {
            fast::walk(
                bytes,
                &mut json_fast::JsonMapper::new(opts, now_nanos),
                &mut out,
            )?;
        }
    }
    Ok(out.finish())
}

/// Translates a decoded request: encodes it and runs [`translate_encoded`] (falling back to
/// [`translate_reference`] if the fast path refuses it, e.g. nesting deeper than prost's
/// limit).
pub fn translate(req: &ExportLogsServiceRequest, opts: &Options, now_nanos: i64) -> Translated {
    use prost::Message;
    translate_encoded(&req.encode_to_vec(), opts, now_nanos)
        .unwrap_or_else(|_| translate_reference(req, opts, now_nanos))
}

/// The reference implementation: prost-decoded request, owned entries, then encoding.
pub fn translate_reference(
    req: &ExportLogsServiceRequest,
    opts: &Options,
    now_nanos: i64,
) -> Translated {
    match opts.format {
        Format::Otlp => {
            let prepared = otlp::prepare(req, opts);
            let streams = otlp::build(req, &prepared, now_nanos);
            finish(streams)
        }
        Format::Json => finish(json_format::build(req, opts, now_nanos)),
    }
}

/// Sorts and encodes grouped streams.
fn finish(mut streams: Vec<Stream<'_>>) -> Translated {
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut entries = 0u64;
    for s in &mut streams {
        if !s.entries.is_sorted_by_key(|e| e.ts) {
            s.entries.sort_by_key(|e| e.ts);
        }
        entries += s.entries.len() as u64;
    }
    Translated {
        body: encode::encode_push_request(&streams),
        entries,
        streams: streams.len(),
    }
}

/// Timestamp rule shared by both formats: `time_unix_nano`, else `observed_time_unix_nano`,
/// else the receive time.
pub fn record_time(lr: &LogRecord, now_nanos: i64) -> i64 {
    if lr.time_unix_nano != 0 {
        lr.time_unix_nano.min(i64::MAX as u64) as i64
    } else if lr.observed_time_unix_nano != 0 {
        lr.observed_time_unix_nano.min(i64::MAX as u64) as i64
    } else {
        now_nanos
    }
}

/// Lower-case hex of a trace or span id; `None` when absent, all zero or of the wrong length
/// (the OTLP spec calls those invalid).
pub fn id_hex(id: &[u8], len: usize) -> Option<String> {
    if id.len() != len || id.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex::encode(id))
}

/// Groups entries by selector while keeping the order streams first appear in.
#[derive(Default)]
pub(crate) struct Grouper<'a> {
    index: HashMap<String, usize>,
    pub streams: Vec<Stream<'a>>,
}

impl<'a> Grouper<'a> {
    /// Index of the stream with this selector, created when new.
    pub fn stream(&mut self, selector: String) -> usize {
        if let Some(i) = self.index.get(&selector) {
            return *i;
        }
        let i = self.streams.len();
        self.streams.push(Stream {
            labels: selector.clone(),
            entries: Vec::new(),
        });
        self.index.insert(selector, i);
        i
    }

    pub fn push(&mut self, stream: usize, entry: Entry<'a>) {
        self.streams[stream].entries.push(entry);
    }
}

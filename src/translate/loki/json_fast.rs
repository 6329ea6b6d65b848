//! The `json` format on the fast path (same output as [`super::json_format`], which stays the
//! reference). Per resource: the base labels, promoted resource attributes and the
//! `"resources":{..}` part of the line, computed once by the reference code. Per scope: the
//! `"instrumentation_scope"` part. Per record: the stream is looked up by severity text
//! (memoized per resource) and the JSON line is written from the borrowed wire values, with
//! the attribute order (sorted keys, last duplicate wins) memoized per key sequence. Records
//! carrying `loki.*.labels` hints, or values the reader cannot take zero-copy, are decoded with
//! prost and mapped by the reference code.

use super::Options;
use super::builder::PushBuilder;
use super::fast::Mapper;
use super::json_format::{self, HINT_ATTRIBUTES, HINT_RESOURCES, is_hint};
use super::labels::LabelSet;
use super::reader::{self, Kv, Parsed, ReadError, Record, Val};
use super::value::{write_float, write_json_str};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// A scalar as JSON (see [`super::value::write_json_value`]).
fn json_val(out: &mut String, v: Val<'_>) {
    match v {
        Val::Missing | Val::Empty => out.push_str("null"),
        Val::Str(s) => write_json_str(out, s),
        Val::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Val::Int(i) => reader::push_int(out, i),
        Val::Double(d) => {
            if d.is_finite() {
                write_float(out, d)
            } else {
                out.push_str("null")
            }
        }
        Val::Bytes(b) => {
            use base64::Engine;
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
    }
}

fn push_hex(out: &mut String, id: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in id {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

pub struct JsonMapper<'a, 'o> {
    opts: &'o Options,
    now_nanos: i64,
    res_raw: Vec<u8>,
    res_valid: bool,
    res: Vec<KeyValue>,
    base: LabelSet,
    res_promoted: Vec<String>,
    res_frag: String,
    /// Severity text -> stream, for the current resource.
    levels: Vec<(String, usize)>,
    scope: InstrumentationScope,
    scope_frag: String,
    memo_valid: bool,
    memo_keys: Vec<&'a str>,
    memo_order: Vec<usize>,
    attrs: Vec<Kv<'a>>,
    line: String,
}

impl<'a, 'o> JsonMapper<'a, 'o> {
    pub fn new(opts: &'o Options, now_nanos: i64) -> Self {
        JsonMapper {
            opts,
            now_nanos,
            res_raw: Vec::new(),
            res_valid: false,
            res: Vec::new(),
            base: LabelSet::new(),
            res_promoted: Vec::new(),
            res_frag: String::new(),
            levels: Vec::new(),
            scope: InstrumentationScope::default(),
            scope_frag: String::new(),
            memo_valid: false,
            memo_keys: Vec::new(),
            memo_order: Vec::new(),
            attrs: Vec::new(),
            line: String::new(),
        }
    }

    fn stream(&mut self, severity_text: &str, out: &mut PushBuilder) -> usize {
        let key = if self.opts.default_labels.level {
            severity_text
        } else {
            ""
        };
        if let Some((_, s)) = self.levels.iter().find(|(k, _)| k == key) {
            return *s;
        }
        let mut set = self.base.clone();
        if !key.is_empty() {
            set.insert_or_replace("level", &key.to_lowercase());
        }
        if set.is_empty() {
            set.insert_or_replace("exporter", "OTLP");
        }
        let s = out.stream(&set.to_selector());
        self.levels.push((key.to_string(), s));
        s
    }

    /// Indices of the attributes the line shows, in output order.
    fn order(&mut self) {
        let same = self.memo_valid
            && self.memo_keys.len() == self.attrs.len()
            && self
                .memo_keys
                .iter()
                .zip(&self.attrs)
                .all(|(k, kv)| *k == kv.key);
        if same {
            return;
        }
        let attrs = &self.attrs;
        let mut kept: Vec<usize> = (0..attrs.len())
            .filter(|&i| !is_hint(attrs[i].key))
            .collect();
        kept.sort_by(|&a, &b| attrs[a].key.cmp(attrs[b].key)); // stable
        self.memo_order.clear();
        for (j, &i) in kept.iter().enumerate() {
            if kept
                .get(j + 1)
                .is_some_and(|&n| attrs[n].key == attrs[i].key)
            {
                continue; // the last duplicate wins
            }
            self.memo_order.push(i);
        }
        self.memo_keys.clear();
        self.memo_keys.extend(attrs.iter().map(|kv| kv.key));
        self.memo_valid = true;
    }

    fn simple(&mut self, r: &Record<'a>, out: &mut PushBuilder) {
        let stream = self.stream(r.severity_text, out);
        self.order();
        // Every part starts with a comma; the first one is dropped below.
        let line = &mut self.line;
        line.clear();
        if !matches!(r.body, Val::Missing | Val::Empty) {
            line.push_str(",\"body\":");
            json_val(line, r.body);
        }
        if reader::id_valid(r.trace_id, 16) {
            line.push_str(",\"traceid\":\"");
            push_hex(line, r.trace_id);
            line.push('"');
        }
        if reader::id_valid(r.span_id, 8) {
            line.push_str(",\"spanid\":\"");
            push_hex(line, r.span_id);
            line.push('"');
        }
        if !r.severity_text.is_empty() {
            line.push_str(",\"severity\":");
            write_json_str(line, r.severity_text);
        }
        if r.flags != 0 {
            line.push_str(",\"flags\":");
            reader::push_int(line, i64::from(r.flags));
        }
        if !self.memo_order.is_empty() {
            line.push_str(",\"attributes\":{");
            for (j, &i) in self.memo_order.iter().enumerate() {
                if j > 0 {
                    line.push(',');
                }
                let kv = &self.attrs[i];
                write_json_str(line, kv.key);
                line.push(':');
                json_val(line, kv.value);
            }
            line.push('}');
        }
        line.push_str(&self.res_frag);
        line.push_str(&self.scope_frag);
        let inner: &str = line.strip_prefix(',').unwrap_or(line.as_str());
        let ts = r.ts(self.now_nanos);
        let start = out.begin_entry(ts);
        let arena = &mut out.arena;
        arena.push(0x12); // EntryAdapter.line = 2
        super::encode::put_varint(arena, inner.len() as u64 + 2);
        arena.push(b'{');
        arena.extend_from_slice(inner.as_bytes());
        arena.push(b'}');
        out.end_entry(stream, ts, start);
    }
}

impl<'a> Mapper<'a> for JsonMapper<'a, '_> {
    fn resource(&mut self, raw: &[u8]) -> Result<(), ReadError> {
        if self.res_valid && self.res_raw == raw {
            return Ok(());
        }
        self.res_valid = false;
        self.res = Resource::decode(raw)?.attributes;
        (self.base, self.res_promoted) = json_format::resource_base(&self.res, self.opts);
        self.res_frag.clear();
        json_format::write_filtered_map(
            &mut self.res_frag,
            "resources",
            &self.res,
            &self.res_promoted,
        );
        self.levels.clear();
        self.res_raw.clear();
        self.res_raw.extend_from_slice(raw);
        self.res_valid = true;
        Ok(())
    }

    fn scope(&mut self, raw: &[u8]) -> Result<(), ReadError> {
        self.scope = InstrumentationScope::decode(raw)?;
        self.scope_frag.clear();
        if !self.scope.name.is_empty() {
            self.scope_frag
                .push_str(",\"instrumentation_scope\":{\"name\":");
            write_json_str(&mut self.scope_frag, &self.scope.name);
            if !self.scope.version.is_empty() {
                self.scope_frag.push_str(",\"version\":");
                write_json_str(&mut self.scope_frag, &self.scope.version);
            }
            self.scope_frag.push('}');
        }
        Ok(())
    }

    fn record(&mut self, raw: &'a [u8], out: &mut PushBuilder) -> Result<(), ReadError> {
        if let Parsed::Simple(r) = reader::record(raw, &mut self.attrs)?
            && !self
                .attrs
                .iter()
                .any(|kv| kv.key == HINT_RESOURCES || kv.key == HINT_ATTRIBUTES)
        {
            self.simple(&r, out);
            return Ok(());
        }
        let lr = LogRecord::decode(raw)?;
        let (selector, e) = json_format::record_entry(
            &lr,
            &self.res,
            &self.base,
            &self.res_promoted,
            Some(&self.scope),
            self.opts,
            self.now_nanos,
        );
        let stream = out.stream(&selector);
        out.push_entry(stream, &e);
        Ok(())
    }
}

//! The fast path ([`translate_encoded`]) against the reference path ([`translate_reference`]):
//! byte-identical output on varied generated requests (both formats, several option sets),
//! on hand-made wire shapes prost merges (repeated message fields, concatenated records,
//! scope after records), and on mutated bytes (whenever the receiver's validation and prost
//! accept them; otherwise only "no panic").

use super::*;
use crate::pipeline::payload::Signal;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const NOW: i64 = 1_700_000_000_000_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const KEYS: &[&str] = &[
    "service.name",
    "service_name",
    "service.namespace",
    "k8s.pod.name",
    "host.name",
    "http.method",
    "trace_id",
    "trace_id_extracted",
    "severity_text",
    "flags",
    "scope_name",
    "app",
    "container",
    "1st",
    "_x",
    "__y",
    "",
    "ünï.code",
    "a-b",
    "loki.attribute.labels",
    "loki.resource.labels",
    "loki.tenant",
    "loki.format",
    "user.id",
];
const STRS: &[&str] = &[
    "",
    "a",
    "INFO",
    "Warn",
    "x\"y\\z\n",
    "<tag>&",
    "héllo \u{2028}",
    "service.name, http.method",
    "host.name",
    "k8s.pod.name",
    "user.id",
];

fn value(r: &mut Rng, depth: u32) -> AnyValue {
    let v = match r.below(if depth > 2 { 7 } else { 10 }) {
        0 => None,
        1 | 2 => Some(Value::StringValue(r.pick(STRS).into())),
        3 => Some(Value::BoolValue(r.chance(50))),
        4 => Some(Value::IntValue(r.next() as i64 >> r.below(64))),
        5 => Some(Value::DoubleValue(
            [0.5, 12.5, 1e21, 1e-7, -3.0, f64::NAN, f64::INFINITY, 0.0][r.below(8)],
        )),
        6 => Some(Value::BytesValue(vec![0xfb; r.below(5)])),
        7 => Some(Value::ArrayValue(ArrayValue {
            values: (0..r.below(3)).map(|_| value(r, depth + 1)).collect(),
        })),
        8 => Some(Value::KvlistValue(KeyValueList {
            values: (0..r.below(3)).map(|_| kv(r, depth + 1)).collect(),
        })),
        _ => Some(Value::StringValueStrindex(3)),
    };
    AnyValue { value: v }
}

fn kv(r: &mut Rng, depth: u32) -> KeyValue {
    KeyValue {
        key: r.pick(KEYS).into(),
        value: if r.chance(5) {
            None
        } else {
            Some(value(r, depth))
        },
        ..Default::default()
    }
}

/// Mostly "plain" records (string and scalar attributes), sometimes anything.
fn record(r: &mut Rng, wild: bool) -> LogRecord {
    let n = r.below(6);
    LogRecord {
        time_unix_nano: [0, 5, 1_700_000_000_123_456_789, u64::MAX][r.below(4)],
        observed_time_unix_nano: [0, 7, 1_700_000_001_000_000_000][r.below(3)],
        severity_number: [0, 9, 17, -3][r.below(4)],
        severity_text: r.pick(&["", "INFO", "Error", "İ"]).into(),
        body: match r.below(4) {
            0 => None,
            _ if wild => Some(value(r, 0)),
            _ => Some(AnyValue {
                value: Some(Value::StringValue(r.pick(STRS).into())),
            }),
        },
        attributes: (0..n)
            .map(|_| {
                if wild {
                    kv(r, 0)
                } else {
                    KeyValue {
                        key: r.pick(&KEYS[..19]).into(),
                        value: Some(AnyValue {
                            value: Some(match r.below(3) {
                                0 => Value::IntValue(r.below(1000) as i64),
                                _ => Value::StringValue(r.pick(STRS).into()),
                            }),
                        }),
                        ..Default::default()
                    }
                }
            })
            .collect(),
        dropped_attributes_count: [0, 2][r.below(2)],
        flags: [0, 1, 257][r.below(3)],
        trace_id: [vec![], vec![0; 16], vec![0xab; 16], vec![1; 15]][r.below(4)].clone(),
        span_id: [vec![], vec![0; 8], vec![0xcd; 8]][r.below(3)].clone(),
        event_name: r.pick(&["", "click"]).into(),
    }
}

fn request(r: &mut Rng) -> ExportLogsServiceRequest {
    let wild = r.chance(30);
    ExportLogsServiceRequest {
        resource_logs: (0..1 + r.below(3))
            .map(|_| ResourceLogs {
                resource: r.chance(90).then(|| Resource {
                    attributes: (0..r.below(5)).map(|_| kv(r, 1)).collect(),
                    ..Default::default()
                }),
                scope_logs: (0..r.below(3))
                    .map(|_| ScopeLogs {
                        scope: r.chance(70).then(|| InstrumentationScope {
                            name: r.pick(&["", "lib"]).into(),
                            version: r.pick(&["", "1.0"]).into(),
                            attributes: (0..r.below(2)).map(|_| kv(r, 1)).collect(),
                            dropped_attributes_count: [0, 1][r.below(2)],
                        }),
                        log_records: (0..r.below(5)).map(|_| record(r, wild)).collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

fn option_sets() -> Vec<Options> {
    vec![
        Options::default(),
        Options {
            index_labels: vec![
                "trace_id".into(),
                "service_name".into(),
                "service.name".into(),
                "host.name".into(),
            ],
            ..Options::default()
        },
        Options {
            format: Format::Json,
            ..Options::default()
        },
        Options {
            format: Format::Json,
            default_labels: DefaultLabels {
                exporter: false,
                job: false,
                instance: true,
                level: false,
            },
            ..Options::default()
        },
    ]
}

fn same(bytes: &[u8], req: &ExportLogsServiceRequest) {
    for o in option_sets() {
        let want = translate_reference(req, &o, NOW);
        let got = translate_encoded(bytes, &o, NOW);
        assert_eq!(got.as_ref(), Ok(&want), "{:?} on {req:?}", o.format);
    }
}

#[test]
fn fast_path_equals_reference_on_generated_requests() {
    let mut r = Rng(0x9e3779b97f4a7c15);
    for _ in 0..1500 {
        let req = request(&mut r);
        same(&req.encode_to_vec(), &req);
    }
}

fn wrap(field: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut b);
    prost::encoding::encode_varint(payload.len() as u64, &mut b);
    b.extend_from_slice(payload);
    b
}

#[test]
fn fast_path_equals_reference_on_merged_wire_shapes() {
    let mut r = Rng(42);
    for _ in 0..300 {
        let a = request(&mut r);
        let b = request(&mut r);
        let (Some(ra), Some(rb)) = (a.resource_logs.first(), b.resource_logs.first()) else {
            continue;
        };
        // One ResourceLogs made of two: resource twice, scopes appended.
        let merged_rl = [ra.encode_to_vec(), rb.encode_to_vec()].concat();
        // One LogRecord made of two: body and attributes merge, scalars: last wins.
        let la = record(&mut r, true).encode_to_vec();
        let plain = r.chance(50);
        let lb = record(&mut r, plain).encode_to_vec();
        let merged_lr = [la, lb].concat();
        // ScopeLogs with the records before the scope.
        let scope = InstrumentationScope {
            name: "late".into(),
            ..Default::default()
        };
        let sl = [
            wrap(2, &merged_lr),
            wrap(2, &record(&mut r, false).encode_to_vec()),
            wrap(1, &scope.encode_to_vec()),
            wrap(1, &scope.encode_to_vec()),
        ]
        .concat();
        let rl2 = [wrap(2, &sl), wrap(1, &Resource::default().encode_to_vec())].concat();
        // An unknown field of every wire type at the top.
        let unknown = [
            vec![0x78, 0x01],
            vec![0x81, 0x01],
            vec![0; 8],
            vec![0x85, 0x01, 0, 0, 0, 0],
        ]
        .concat();
        let bytes = [wrap(1, &merged_rl), unknown, wrap(1, &rl2)].concat();
        let req = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("valid protobuf");
        same(&bytes, &req);
    }
}

#[test]
fn fast_path_on_mutated_bytes_never_panics_and_agrees_when_valid() {
    let mut r = Rng(7);
    let mut agreed = 0;
    for i in 0..4000 {
        let req = request(&mut r);
        let mut b = req.encode_to_vec();
        if b.is_empty() {
            continue;
        }
        match i % 4 {
            0 => {
                let p = r.below(b.len());
                b[p] ^= 1 << r.below(8);
            }
            1 => b.truncate(r.below(b.len())),
            2 => {
                let p = r.below(b.len());
                b[p] = r.next() as u8;
            }
            _ => {
                let p = r.below(b.len());
                b.insert(p, r.next() as u8);
            }
        }
        let accepted = crate::pipeline::wire::validate_and_count(Signal::Logs, &b).is_ok();
        let decoded = ExportLogsServiceRequest::decode(b.as_slice());
        for o in option_sets() {
            let got = translate_encoded(&b, &o, NOW);
            if let (true, Ok(d)) = (accepted, &decoded) {
                assert_eq!(got, Ok(translate_reference(d, &o, NOW)), "{b:?}");
                agreed += 1;
            }
        }
    }
    assert!(agreed > 100, "too few valid mutants: {agreed}");
}

#[test]
fn malformed_requests_are_typed_errors() {
    let o = Options::default();
    for bad in [
        &[0x0a, 0x05][..],
        &[0x0a, 0x02, 0x12, 0x05],
        &[0x0a, 0x04, 0x12, 0x02, 0x12, 0x05],
        &[0x0b, 0x0c],
        &[0x0a, 0x03, 0x0a, 0x01, 0x0f],
    ] {
        assert!(translate_encoded(bad, &o, NOW).is_err(), "{bad:?}");
    }
    // A record that is not valid protobuf inside an otherwise fine request.
    let lr = wrap(2, &[0x1a, 0x02, 0xc3, 0x28]); // severity_text: invalid UTF-8
    let bytes = wrap(1, &wrap(2, &lr));
    assert!(matches!(
        translate_encoded(&bytes, &o, NOW),
        Err(ReadError::Utf8 { .. })
    ));
}

//! Golden mapping tests: OTLP request in, decoded Loki push request out (the encoder's output
//! is decoded with the prost types generated from `proto/loki/push.proto`).

use super::*;
use crate::proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::collections::BTreeMap;

const NOW: i64 = 1_700_000_000_000_000_000;

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.into())),
    }
}
fn int(v: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(v)),
    }
}
fn dbl(v: f64) -> AnyValue {
    AnyValue {
        value: Some(Value::DoubleValue(v)),
    }
}
fn boolean(v: bool) -> AnyValue {
    AnyValue {
        value: Some(Value::BoolValue(v)),
    }
}
fn bytes(v: &[u8]) -> AnyValue {
    AnyValue {
        value: Some(Value::BytesValue(v.to_vec())),
    }
}
fn map(kvs: Vec<KeyValue>) -> AnyValue {
    AnyValue {
        value: Some(Value::KvlistValue(KeyValueList { values: kvs })),
    }
}
fn arr(vs: Vec<AnyValue>) -> AnyValue {
    AnyValue {
        value: Some(Value::ArrayValue(ArrayValue { values: vs })),
    }
}
fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        ..Default::default()
    }
}
fn rec(body: &str, ts: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: ts,
        body: Some(s(body)),
        ..Default::default()
    }
}
fn resource(attrs: Vec<KeyValue>, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: attrs,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}
fn req(rls: Vec<ResourceLogs>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest { resource_logs: rls }
}
fn run_with(r: &ExportLogsServiceRequest, o: &Options) -> PushRequest {
    let t = translate(r, o, NOW);
    let p = PushRequest::decode(t.body.as_slice()).expect("our encoding decodes");
    assert_eq!(t.streams, p.streams.len());
    assert_eq!(
        t.entries as usize,
        p.streams.iter().map(|s| s.entries.len()).sum::<usize>()
    );
    p
}
fn run(r: &ExportLogsServiceRequest) -> PushRequest {
    run_with(r, &Options::default())
}
fn json_opts() -> Options {
    Options {
        format: Format::Json,
        ..Options::default()
    }
}
fn only(p: &PushRequest) -> (&StreamAdapter, &EntryAdapter) {
    assert_eq!(p.streams.len(), 1, "{p:?}");
    assert_eq!(p.streams[0].entries.len(), 1);
    (&p.streams[0], &p.streams[0].entries[0])
}
fn md(e: &EntryAdapter) -> BTreeMap<String, String> {
    let m: BTreeMap<_, _> = e
        .structured_metadata
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        m.len(),
        e.structured_metadata.len(),
        "duplicate metadata names: {e:?}"
    );
    m
}
fn ts(e: &EntryAdapter) -> i64 {
    let t = e.timestamp.unwrap_or_default();
    t.seconds * 1_000_000_000 + t.nanos as i64
}
fn one(attrs: Vec<KeyValue>, r: LogRecord) -> PushRequest {
    run(&req(vec![resource(attrs, vec![r])]))
}

#[test]
fn service_name_becomes_the_label() {
    let p = one(vec![kv("service.name", s("my-app"))], rec("hello", 5));
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{service_name="my-app"}"#);
    assert_eq!(e.line, "hello");
    assert_eq!(ts(e), 5);
    assert!(md(e).is_empty());
}

#[test]
fn namespace_is_a_second_label_sorted() {
    let p = one(
        vec![
            kv("service.namespace", s("ns")),
            kv("service.name", s("my-app")),
        ],
        rec("x", 1),
    );
    assert_eq!(
        only(&p).0.labels,
        r#"{service_name="my-app", service_namespace="ns"}"#
    );
}

#[test]
fn service_name_discovered_from_container_then_unknown() {
    let p = one(vec![kv("k8s.container.name", s("api"))], rec("x", 1));
    assert_eq!(
        only(&p).0.labels,
        r#"{k8s_container_name="api", service_name="api"}"#
    );
    let p = one(vec![kv("host.name", s("h1"))], rec("x", 1));
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{service_name="unknown_service"}"#);
    assert_eq!(md(e)["host_name"], "h1");
    // An empty service.name counts as missing.
    let p = one(vec![kv("service.name", s(""))], rec("x", 1));
    assert_eq!(only(&p).0.labels, r#"{service_name="unknown_service"}"#);
}

#[test]
fn discovery_follows_lokis_list_order() {
    // container_name comes before k8s_job_name in Loki's discovery list.
    let p = one(
        vec![kv("k8s.job.name", s("job1")), kv("container.name", s("c1"))],
        rec("x", 1),
    );
    assert!(only(&p).0.labels.contains(r#"service_name="c1""#));
}

#[test]
fn k8s_attributes_are_labels_other_resource_attributes_metadata() {
    let p = one(
        vec![
            kv("service.name", s("a")),
            kv("k8s.pod.name", s("pod-1")),
            kv("k8s.namespace.name", s("qa")),
            kv("cloud.region", s("eu-west-1")),
            kv("team.id", s("t7")),
            kv("process.pid", int(42)),
        ],
        rec("x", 1),
    );
    let (st, e) = only(&p);
    assert_eq!(
        st.labels,
        r#"{cloud_region="eu-west-1", k8s_namespace_name="qa", k8s_pod_name="pod-1", service_name="a"}"#
    );
    let m = md(e);
    assert_eq!(m["team_id"], "t7");
    assert_eq!(m["process_pid"], "42");
    assert!(!m.contains_key("k8s_pod_name"));
}

#[test]
fn log_attributes_are_never_labels() {
    let mut r = rec("x", 1);
    r.attributes = vec![
        kv("service.name", s("from-record")),
        kv("k8s.pod.name", s("p")),
    ];
    let p = one(vec![kv("service.name", s("svc"))], r);
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{service_name="svc"}"#);
    let m = md(e);
    // Colliding with the stream label: LogQL's `_extracted` convention.
    assert_eq!(m["service_name_extracted"], "from-record");
    assert_eq!(m["k8s_pod_name"], "p");
}

#[test]
fn service_name_and_service_underscore_name_both_present() {
    // Deterministic rule: `service.name` (indexed) is the label; the non-indexed
    // `service_name` resource attribute is kept as metadata `service_name_extracted`.
    let p = one(
        vec![kv("service_name", s("b")), kv("service.name", s("a"))],
        rec("x", 1),
    );
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{service_name="a"}"#);
    assert_eq!(md(e)["service_name_extracted"], "b");
    // Both indexed: the one listed first in index_labels wins.
    let o = Options {
        index_labels: vec!["service_name".into(), "service.name".into()],
        ..Options::default()
    };
    let r = req(vec![resource(
        vec![kv("service.name", s("a")), kv("service_name", s("b"))],
        vec![rec("x", 1)],
    )]);
    assert_eq!(run_with(&r, &o).streams[0].labels, r#"{service_name="b"}"#);
}

#[test]
fn attribute_collisions_after_sanitizing() {
    let mut r = rec("x", 1);
    r.attributes = vec![
        kv("foo.bar", s("a")),
        kv("foo_bar", s("b")),
        kv("foo-bar", s("c")),
        kv("trace_id", s("user-value")),
    ];
    r.trace_id = vec![0xAB; 16];
    let p = one(vec![kv("service.name", s("svc"))], r);
    let m = md(only(&p).1);
    assert_eq!(m["foo_bar"], "a");
    assert_eq!(m["foo_bar_extracted"], "b");
    // A third name with the same sanitized form has nowhere to go: dropped.
    assert!(!m.values().any(|v| v == "c"));
    // The record's trace id is never shadowed by an attribute.
    assert_eq!(m["trace_id"], "ab".repeat(16));
    assert_eq!(m["trace_id_extracted"], "user-value");
}

#[test]
fn name_normalization() {
    let mut r = rec("x", 1);
    r.attributes = vec![
        kv("123x", s("1")),
        kv("_private", s("2")),
        kv("__keep", s("3")),
        kv("a..b", s("4")),
        kv("naïve", s("5")),
        kv("http.request.method", s("GET")),
    ];
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert_eq!(m["key_123x"], "1");
    assert_eq!(m["key_private"], "2");
    assert_eq!(m["__keep"], "3");
    assert_eq!(m["a__b"], "4");
    assert_eq!(m["na_ve"], "5");
    assert_eq!(m["http_request_method"], "GET");
}

#[test]
fn nested_attributes_are_flattened() {
    let mut r = rec("x", 1);
    r.attributes = vec![kv(
        "http",
        map(vec![kv("req", map(vec![kv("id", int(1))]))]),
    )];
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert_eq!(m["http_req_id"], "1");
    // Array attributes are JSON text.
    let mut r = rec("x", 1);
    r.attributes = vec![kv("tags", arr(vec![s("a"), int(2)]))];
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert_eq!(m["tags"], r#"["a",2]"#);
}

#[test]
fn trace_and_span_ids() {
    let mut r = rec("x", 1);
    r.trace_id = vec![0; 16];
    r.span_id = vec![0; 8];
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert!(!m.contains_key("trace_id") && !m.contains_key("span_id"));
    let mut r = rec("x", 1);
    r.trace_id = (0u8..16).map(|b| b * 17).collect();
    r.span_id = vec![0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3];
    r.flags = 1;
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert_eq!(m["trace_id"], "00112233445566778899aabbccddeeff");
    assert_eq!(m["span_id"], "deadbeef00010203");
    assert_eq!(m["flags"], "1");
    // Wrong length is invalid per OTLP: omitted.
    let mut r = rec("x", 1);
    r.trace_id = vec![1; 8];
    assert!(!md(only(&one(vec![], r)).1).contains_key("trace_id"));
}

#[test]
fn severity_and_record_fields() {
    let mut r = rec("x", 10);
    r.severity_number = 17;
    r.severity_text = "ERROR".into();
    r.observed_time_unix_nano = 20;
    r.dropped_attributes_count = 3;
    r.event_name = "user.login".into();
    let m = md(only(&one(vec![kv("service.name", s("svc"))], r)).1);
    assert_eq!(m["severity_number"], "17");
    assert_eq!(m["severity_text"], "ERROR");
    assert_eq!(m["observed_timestamp"], "20");
    assert_eq!(m["dropped_attributes_count"], "3");
    assert_eq!(m["event_name"], "user.login");
    assert!(!m.contains_key("flags"));
}

#[test]
fn scope_fields_are_metadata() {
    let mut rl = resource(vec![kv("service.name", s("svc"))], vec![rec("x", 1)]);
    rl.scope_logs[0].scope = Some(InstrumentationScope {
        name: "my.lib".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("lib.kind", s("http"))],
        dropped_attributes_count: 0,
    });
    let m = md(only(&run(&req(vec![rl]))).1);
    assert_eq!(m["scope_name"], "my.lib");
    assert_eq!(m["scope_version"], "1.2.3");
    assert_eq!(m["lib_kind"], "http");
}

#[test]
fn timestamps_fall_back_to_observed_then_now() {
    let mut r = rec("a", 0);
    r.observed_time_unix_nano = 777;
    let p = one(vec![], r);
    let e = only(&p).1;
    assert_eq!(ts(e), 777);
    // Not repeated as metadata when it is the timestamp.
    assert!(!md(e).contains_key("observed_timestamp"));
    let p = one(vec![], rec("b", 0));
    assert_eq!(ts(only(&p).1), NOW);
    // Negative-free split into seconds and nanos.
    let p = one(vec![], rec("c", 1_500_000_001));
    let t = only(&p).1.timestamp.unwrap();
    assert_eq!((t.seconds, t.nanos), (1, 500_000_001));
}

#[test]
fn body_kinds() {
    let cases: Vec<(Option<AnyValue>, &str)> = vec![
        (Some(s("plain text")), "plain text"),
        (Some(int(-42)), "-42"),
        (Some(dbl(1.0)), "1"),
        (Some(dbl(0.25)), "0.25"),
        (Some(dbl(1e-7)), "1e-7"),
        (Some(dbl(1e21)), "1e+21"),
        (Some(boolean(true)), "true"),
        (
            Some(map(vec![
                kv("z", int(1)),
                kv("a", s("<b>&")),
                kv("m", map(vec![kv("k", dbl(2.5))])),
            ])),
            r#"{"a":"\u003cb\u003e\u0026","m":{"k":2.5},"z":1}"#,
        ),
        (
            Some(arr(vec![s("x"), boolean(false), AnyValue { value: None }])),
            r#"["x",false,null]"#,
        ),
        (Some(bytes(b"hi\x00")), "aGkA"),
        (Some(AnyValue { value: None }), ""),
        (None, ""),
    ];
    for (body, want) in cases {
        let r = LogRecord {
            time_unix_nano: 1,
            body: body.clone(),
            ..Default::default()
        };
        let p = one(vec![kv("service.name", s("svc"))], r);
        assert_eq!(only(&p).1.line, want, "{body:?}");
    }
}

#[test]
fn map_body_json_escapes_like_go() {
    let body = map(vec![
        kv("msg", s("line1\nq\"\\\u{1}\u{2028}é")),
        kv("msg", s("last wins")),
    ]);
    let r = LogRecord {
        time_unix_nano: 1,
        body: Some(body),
        ..Default::default()
    };
    assert_eq!(only(&one(vec![], r)).1.line, r#"{"msg":"last wins"}"#);
    let mut out = String::new();
    value::write_json_str(&mut out, "line1\nq\"\\\u{1}\u{2028}é\t\u{8}");
    assert_eq!(out, r#""line1\nq\"\\\u0001\u2028é\t\b""#);
}

#[test]
fn label_values_are_quoted_like_go() {
    let p = one(vec![kv("service.name", s("a\"b\\c\nd"))], rec("x", 1));
    assert_eq!(only(&p).0.labels, r#"{service_name="a\"b\\c\nd"}"#);
}

#[test]
fn many_streams_in_one_request() {
    let r = req(vec![
        resource(
            vec![kv("service.name", s("b"))],
            vec![rec("b1", 2), rec("b2", 1)],
        ),
        resource(vec![kv("service.name", s("a"))], vec![rec("a1", 1)]),
        resource(
            vec![kv("service.name", s("b")), kv("team", s("x"))],
            vec![rec("b3", 3)],
        ),
        resource(vec![kv("service.name", s("c"))], vec![]),
    ]);
    let p = run(&r);
    let got: Vec<(&str, Vec<&str>)> = p
        .streams
        .iter()
        .map(|s| {
            (
                s.labels.as_str(),
                s.entries.iter().map(|e| e.line.as_str()).collect(),
            )
        })
        .collect();
    // Same labels merge into one stream (team is metadata), entries sorted by time, streams
    // sorted by selector, resources without records make no stream.
    assert_eq!(
        got,
        vec![
            (r#"{service_name="a"}"#, vec!["a1"]),
            (r#"{service_name="b"}"#, vec!["b2", "b1", "b3"])
        ]
    );
    assert_eq!(md(&p.streams[1].entries[2])["team"], "x");
}

#[test]
fn equal_timestamps_keep_arrival_order() {
    let recs: Vec<_> = (0..50)
        .map(|i| rec(&format!("l{i}"), if i % 2 == 0 { 5 } else { 3 }))
        .collect();
    let p = one_many(recs);
    let lines: Vec<&str> = p.streams[0]
        .entries
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    let odd: Vec<String> = (0..50)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("l{i}"))
        .collect();
    let even: Vec<String> = (0..50)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("l{i}"))
        .collect();
    let want: Vec<&str> = odd.iter().chain(&even).map(|s| s.as_str()).collect();
    assert_eq!(lines, want);
}

fn one_many(recs: Vec<LogRecord>) -> PushRequest {
    run(&req(vec![resource(
        vec![kv("service.name", s("svc"))],
        recs,
    )]))
}

#[test]
fn very_long_lines_pass_through_intact() {
    // Loki refuses lines over its limit (256 KB default) with a 400 the exporter classifies;
    // the translator never truncates silently.
    let long = "x".repeat(300 * 1024);
    let p = one_many(vec![rec(&long, 1), rec("short", 2)]);
    assert_eq!(p.streams[0].entries[0].line.len(), long.len());
    assert_eq!(p.streams[0].entries[1].line, "short");
}

#[test]
fn custom_index_labels_and_empty_values() {
    let o = Options {
        index_labels: vec![
            "service.name".into(),
            "team.id".into(),
            "cfg".into(),
            "empty".into(),
        ],
        ..Options::default()
    };
    let r = req(vec![resource(
        vec![
            kv("service.name", s("svc")),
            kv("team.id", s("t1")),
            kv("cfg", map(vec![kv("zone", s("z1"))])),
            kv("empty", s("")),
            kv("k8s.pod.name", s("p")),
        ],
        vec![rec("x", 1)],
    )]);
    let p = run_with(&r, &o);
    let (st, e) = only(&p);
    assert_eq!(
        st.labels,
        r#"{cfg_zone="z1", service_name="svc", team_id="t1"}"#
    );
    assert_eq!(md(e)["k8s_pod_name"], "p");
}

#[test]
fn encoder_matches_prost() {
    use crate::proto::logproto::{LabelPairAdapter, Timestamp};
    let streams = vec![encode::Stream {
        labels: r#"{a="b"}"#.into(),
        entries: vec![
            encode::Entry {
                ts: 1_700_000_000_123_456_789,
                line: "l1".into(),
                metadata: vec![("k".into(), "v".into()), ("e".into(), "".into())],
            },
            encode::Entry {
                ts: 0,
                line: "".into(),
                metadata: vec![],
            },
            encode::Entry {
                ts: -1,
                line: "neg".into(),
                metadata: vec![],
            },
        ],
    }];
    let prost_req = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{a="b"}"#.into(),
            hash: 0,
            entries: vec![
                EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 123_456_789,
                    }),
                    line: "l1".into(),
                    structured_metadata: vec![
                        LabelPairAdapter {
                            name: "k".into(),
                            value: "v".into(),
                        },
                        LabelPairAdapter {
                            name: "e".into(),
                            value: "".into(),
                        },
                    ],
                    parsed: vec![],
                },
                EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 0,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
                EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: -1,
                        nanos: 999_999_999,
                    }),
                    line: "neg".into(),
                    ..Default::default()
                },
            ],
        }],
    };
    assert_eq!(
        encode::encode_push_request(&streams),
        prost_req.encode_to_vec()
    );
}

#[test]
fn json_format_default_labels_and_line() {
    let mut rl = resource(
        vec![
            kv("service.name", s("api")),
            kv("service.namespace", s("shop")),
            kv("service.instance.id", s("i-1")),
            kv("host.name", s("h")),
        ],
        vec![],
    );
    let mut r = rec("hello", 9);
    r.severity_text = "WARN".into();
    r.trace_id = vec![0x11; 16];
    r.span_id = vec![0x22; 8];
    r.flags = 1;
    r.attributes = vec![kv("user", s("u1")), kv("n", int(3))];
    rl.scope_logs[0].log_records = vec![r];
    rl.scope_logs[0].scope = Some(InstrumentationScope {
        name: "lib".into(),
        version: "2".into(),
        ..Default::default()
    });
    let p = run_with(&req(vec![rl]), &json_opts());
    let (st, e) = only(&p);
    assert_eq!(
        st.labels,
        r#"{exporter="OTLP", instance="i-1", job="shop/api", level="warn"}"#
    );
    assert_eq!(
        e.line,
        format!(
            r#"{{"body":"hello","traceid":"{}","spanid":"{}","severity":"WARN","flags":1,"attributes":{{"n":3,"user":"u1"}},"resources":{{"host.name":"h","service.instance.id":"i-1","service.name":"api","service.namespace":"shop"}},"instrumentation_scope":{{"name":"lib","version":"2"}}}}"#,
            "11".repeat(16),
            "22".repeat(8)
        )
    );
    assert!(e.structured_metadata.is_empty());
    assert_eq!(ts(e), 9);
}

#[test]
fn json_format_hints_promote_and_remove() {
    let mut r = LogRecord {
        time_unix_nano: 1,
        body: Some(map(vec![kv("k", int(1))])),
        ..Default::default()
    };
    r.attributes = vec![
        kv("loki.attribute.labels", s("http.method, req")),
        kv("http.method", s("GET")),
        kv("req", map(vec![kv("id", s("r1"))])),
        kv("loki.resource.labels", arr(vec![s("region")])),
        kv("other", s("o")),
    ];
    let rl = resource(
        vec![
            kv("service.name", s("api")),
            kv("region", s("eu")),
            kv("loki.resource.labels", s("pod.name,missing")),
            kv("pod.name", s("p1")),
        ],
        vec![r],
    );
    let o = Options {
        default_labels: DefaultLabels {
            exporter: false,
            job: true,
            instance: true,
            level: true,
        },
        ..json_opts()
    };
    let p = run_with(&req(vec![rl]), &o);
    let (st, e) = only(&p);
    assert_eq!(
        st.labels,
        r#"{http_method="GET", job="api", pod_name="p1", region="eu", req="{\"id\":\"r1\"}"}"#
    );
    assert_eq!(
        e.line,
        r#"{"body":{"k":1},"attributes":{"other":"o"},"resources":{"service.name":"api"}}"#
    );
}

#[test]
fn json_format_without_default_labels_or_body() {
    let o = Options {
        default_labels: DefaultLabels {
            exporter: false,
            job: false,
            instance: false,
            level: false,
        },
        ..json_opts()
    };
    let r = LogRecord {
        time_unix_nano: 1,
        attributes: vec![
            kv("loki.attribute.labels", s("nested.a")),
            kv("nested", map(vec![kv("a", int(5))])),
        ],
        ..Default::default()
    };
    let p = run_with(&req(vec![resource(vec![], vec![r])]), &o);
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{nested_a="5"}"#);
    assert_eq!(e.line, r#"{"attributes":{"nested":{"a":5}}}"#);
    // No labels at all: Loki needs one, exporter="OTLP" is kept.
    let p = run_with(&req(vec![resource(vec![], vec![LogRecord::default()])]), &o);
    let (st, e) = only(&p);
    assert_eq!(st.labels, r#"{exporter="OTLP"}"#);
    assert_eq!(e.line, "{}");
}

#[test]
fn json_format_streams_split_by_promoted_attribute() {
    let recs = (0..4)
        .map(|i| LogRecord {
            time_unix_nano: 10 - i,
            body: Some(s(&format!("m{i}"))),
            attributes: vec![
                kv("loki.attribute.labels", s("lvl")),
                kv("lvl", s(if i % 2 == 0 { "a" } else { "b" })),
            ],
            ..Default::default()
        })
        .collect();
    let p = run_with(
        &req(vec![resource(vec![kv("service.name", s("x"))], recs)]),
        &json_opts(),
    );
    assert_eq!(p.streams.len(), 2);
    assert_eq!(
        p.streams[0].labels,
        r#"{exporter="OTLP", job="x", lvl="a"}"#
    );
    let lines: Vec<&str> = p.streams[0]
        .entries
        .iter()
        .map(|e| e.line.as_str())
        .collect();
    let res = r#""resources":{"service.name":"x"}"#;
    assert_eq!(
        lines,
        vec![
            format!(r#"{{"body":"m2",{res}}}"#),
            format!(r#"{{"body":"m0",{res}}}"#)
        ]
    );
}

#[test]
fn empty_request_yields_no_streams() {
    let t = translate(&req(vec![]), &Options::default(), NOW);
    assert_eq!((t.entries, t.streams, t.body.len()), (0, 0, 0));
}

#[test]
fn float_formatting_matches_go() {
    let f = |x: f64| {
        let mut s = String::new();
        value::write_float(&mut s, x);
        s
    };
    assert_eq!(f(0.0), "0");
    assert_eq!(f(-0.0), "-0");
    assert_eq!(f(123456789.0), "123456789");
    assert_eq!(f(1.5e-7), "1.5e-7");
    assert_eq!(f(1e-10), "1e-10");
    assert_eq!(f(2.5e300), "2.5e+300");
    assert_eq!(f(1e20), "100000000000000000000");
    assert_eq!(f(0.000001), "0.000001");
}

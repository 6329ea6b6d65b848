//! Statements and conditions from the Collector's OTTL documentation (ottlfuncs README,
//! filter and transform processor READMEs), applied to known OTLP items and compared with
//! the documented result.

use super::value::Value;
use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        ..Default::default()
    }
}

fn span() -> Span {
    Span {
        name: "GET /healthz".into(),
        kind: 2,
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 5_000,
        attributes: vec![
            kv("http.method", s("GET")),
            kv("http.route", s("/healthz")),
            kv("http.target", s("/user/42/list/7")),
            kv("db.password", s("hunter2")),
            kv(
                "http.status_code",
                AnyValue {
                    value: Some(any_value::Value::IntValue(200)),
                },
            ),
            kv("account", s("/account/1234/x")),
        ],
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("host.name", s("localhost")),
            kv("process.command_line", s("run --password=secret -v")),
        ],
        ..Default::default()
    })
}

/// Runs statements on a span and returns the span and the resource.
fn on_span(stmts: &[&str]) -> (Span, Option<Resource>) {
    let mut sp = span();
    let mut res = resource();
    let mut scope = None;
    for st in stmts {
        let c = statement(Context::Span, st).unwrap_or_else(|e| panic!("{st}: {e}"));
        let mut tx = Tx {
            resource: &mut res,
            scope: Some(&mut scope),
            item: Item::Span(&mut sp),
        };
        c.execute(&mut tx).unwrap_or_else(|e| panic!("{st}: {e}"));
    }
    (sp, res)
}

fn attr(attrs: &[KeyValue], k: &str) -> Value {
    attrs
        .iter()
        .find(|kv| kv.key == k)
        .map_or(Value::Nil, |kv| Value::from_any(kv.value.as_ref()))
}

fn str_v(v: &str) -> Value {
    Value::Str(v.into())
}

#[test]
fn editors_from_the_collector_docs() {
    let (sp, _) = on_span(&[r#"set(attributes["http.path"], "/foo")"#]);
    assert_eq!(attr(&sp.attributes, "http.path"), str_v("/foo"));

    let (sp, _) = on_span(&[r#"set(name, attributes["http.route"])"#]);
    assert_eq!(sp.name, "/healthz");

    // set with a nil value does nothing
    let (sp, _) = on_span(&[r#"set(name, attributes["missing"])"#]);
    assert_eq!(sp.name, "GET /healthz");

    let (sp, _) = on_span(&[r#"delete_key(attributes, "http.method")"#]);
    assert_eq!(attr(&sp.attributes, "http.method"), Value::Nil);
    assert_eq!(sp.attributes.len(), 5);

    let (sp, _) = on_span(&[r#"delete_matching_keys(attributes, "(?i).*password.*")"#]);
    assert_eq!(attr(&sp.attributes, "db.password"), Value::Nil);
    assert_eq!(sp.attributes.len(), 5);

    let (sp, _) = on_span(&[r#"keep_keys(attributes, ["http.method", "http.route", "http.url"])"#]);
    let keys: Vec<&str> = sp.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["http.method", "http.route"]);

    let (sp, _) = on_span(&[r#"limit(attributes, 2, ["account"])"#]);
    let keys: Vec<&str> = sp.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["http.method", "account"]);

    let (sp, _) = on_span(&[
        r#"replace_match(attributes["http.target"], "/user/*/list/*", "/user/{userId}/list/{listId}")"#,
    ]);
    assert_eq!(
        attr(&sp.attributes, "http.target"),
        str_v("/user/{userId}/list/{listId}")
    );

    let (sp, _) = on_span(&[
        r#"replace_all_matches(attributes, "/user/*/list/*", "/user/{userId}/list/{listId}")"#,
    ]);
    assert_eq!(
        attr(&sp.attributes, "http.target"),
        str_v("/user/{userId}/list/{listId}")
    );

    let (sp, _) = on_span(&[
        r#"replace_all_patterns(attributes, "value", "/account/\\d{4}", "/account/{accountId}")"#,
    ]);
    assert_eq!(
        attr(&sp.attributes, "account"),
        str_v("/account/{accountId}/x")
    );

    let (sp, _) = on_span(&[r#"replace_all_patterns(attributes, "key", "^http\\.", "h.")"#]);
    assert_eq!(attr(&sp.attributes, "h.method"), str_v("GET"));

    let (_, res) = on_span(&[
        r#"replace_pattern(resource.attributes["process.command_line"], "password\\=[^\\s]*(\\s?)", "password=***")"#,
    ]);
    assert_eq!(
        attr(&res.unwrap().attributes, "process.command_line"),
        str_v("run --password=***-v")
    );

    // capture groups expand as in Go's regexp
    let (sp, _) = on_span(&[r#"replace_pattern(name, "^GET /(\\w+)$", "probe-$1")"#]);
    assert_eq!(sp.name, "probe-healthz");

    // hashed replacement with a format
    let (sp, _) =
        on_span(&[r#"replace_pattern(attributes["db.password"], "^(.*)$", "$1", SHA256, "h:%s")"#]);
    let want = format!(
        "h:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, b"hunter2"))
    );
    assert_eq!(attr(&sp.attributes, "db.password"), Value::Str(want));

    let (sp, _) = on_span(&[r#"truncate_all(attributes, 3)"#]);
    assert_eq!(attr(&sp.attributes, "http.route"), str_v("/he"));
    assert_eq!(attr(&sp.attributes, "http.status_code"), Value::Int(200));

    let (sp, _) = on_span(&[
        r#"set(attributes["j"], "{\"a\":1,\"b\":\"x\"}")"#,
        r#"merge_maps(attributes, ParseJSON(attributes["j"]), "upsert")"#,
    ]);
    assert_eq!(attr(&sp.attributes, "a"), Value::Double(1.0));
    assert_eq!(attr(&sp.attributes, "b"), str_v("x"));

    let (sp, _) =
        on_span(&[r#"merge_maps(attributes, {"http.method": "POST", "new": "n"}, "insert")"#]);
    assert_eq!(attr(&sp.attributes, "http.method"), str_v("GET"));
    assert_eq!(attr(&sp.attributes, "new"), str_v("n"));

    // nested maps are created on write and read back with chained indexes
    let (sp, _) = on_span(&[
        r#"set(attributes["a"]["b"], 5)"#,
        r#"set(attributes["c"], attributes["a"]["b"])"#,
    ]);
    assert_eq!(attr(&sp.attributes, "c"), Value::Int(5));

    // where clauses
    let (sp, _) = on_span(&[r#"set(attributes["srv"], true) where kind == SPAN_KIND_SERVER"#]);
    assert_eq!(attr(&sp.attributes, "srv"), Value::Bool(true));
    let (sp, _) = on_span(&[r#"set(attributes["cli"], true) where kind == SPAN_KIND_CLIENT"#]);
    assert_eq!(attr(&sp.attributes, "cli"), Value::Nil);

    // status and ids
    let (sp, _) = on_span(&[
        r#"set(status.code, STATUS_CODE_ERROR) where attributes["http.status_code"] >= 200"#,
    ]);
    assert_eq!(sp.status.unwrap().code, 2);
    let (sp, _) = on_span(&[r#"set(attributes["tid"], trace_id.string)"#]);
    assert_eq!(attr(&sp.attributes, "tid"), str_v(&"01".repeat(16)));
}

#[test]
fn converters_from_the_collector_docs() {
    let cases: &[(&str, Value)] = &[
        (
            r#"Concat(["HTTP method is: ", attributes["http.method"]], "")"#,
            str_v("HTTP method is: GET"),
        ),
        (
            r#"Concat([attributes["http.method"], attributes["http.route"]], ": ")"#,
            str_v("GET: /healthz"),
        ),
        (
            r#"Concat([name, 1, attributes["nope"]], " ")"#,
            str_v("GET /healthz 1 <nil>"),
        ),
        (
            r#"Split("A|B|C", "|")"#,
            Value::List(vec![str_v("A"), str_v("B"), str_v("C")]),
        ),
        (r#"Int("2.3")"#, Value::Nil),
        (r#"Int(2.7)"#, Value::Int(2)),
        (r#"Int("42")"#, Value::Int(42)),
        (r#"Int(true)"#, Value::Int(1)),
        (r#"Double("1.5")"#, Value::Double(1.5)),
        (
            r#"Double(attributes["http.status_code"])"#,
            Value::Double(200.0),
        ),
        (r#"String(1.5)"#, str_v("1.5")),
        (r#"String(attributes["http.status_code"])"#, str_v("200")),
        (r#"String(true)"#, str_v("true")),
        (r#"String(span_id)"#, str_v("0202020202020202")),
        (
            r#"SHA256("name")"#,
            str_v("82a3537ff0dbce7eec35d69edc3a189ee6f17d82f353a553f9aa96cb0be3ce89"),
        ),
        (
            r#"ParseJSON("{\"attr\":true}")"#,
            Value::Map(vec![("attr".into(), Value::Bool(true))]),
        ),
        (
            r#"ParseJSON("{\"a\":{\"b\":[1,2]}}")["a"]["b"][1]"#,
            Value::Double(2.0),
        ),
        (
            r#"IsMatch(attributes["http.route"], "health")"#,
            Value::Bool(true),
        ),
        (r#"IsMatch("string", ".*ring")"#, Value::Bool(true)),
        (
            r#"IsMatch(attributes["missing"], ".*")"#,
            Value::Bool(false),
        ),
        (r#"IsString(name)"#, Value::Bool(true)),
        (
            r#"IsInt(attributes["http.status_code"])"#,
            Value::Bool(true),
        ),
        (r#"IsMap(attributes)"#, Value::Bool(true)),
        (
            r#"IsDouble(attributes["http.status_code"])"#,
            Value::Bool(false),
        ),
        (r#"Len(name)"#, Value::Int(12)),
    ];
    for (expr, want) in cases {
        let (sp, _) = on_span(&[&format!(r#"set(attributes["out"], {expr})"#)]);
        let got = attr(&sp.attributes, "out");
        assert_eq!(&got, want, "{expr}");
    }
}

fn holds(ctx: Context, cond: &str, tx: &mut Tx<'_>) -> bool {
    let c = condition(ctx, cond).unwrap_or_else(|e| panic!("{cond}: {e}"));
    c.eval(tx).unwrap_or_else(|e| panic!("{cond}: {e}"))
}

#[test]
fn conditions_from_the_filter_docs() {
    let mut sp = span();
    let mut res = resource();
    let mut scope = Some(
        opentelemetry_proto::tonic::common::v1::InstrumentationScope {
            name: "io.opentelemetry.http".into(),
            version: "1.2".into(),
            ..Default::default()
        },
    );
    let mut tx = Tx {
        resource: &mut res,
        scope: Some(&mut scope),
        item: Item::Span(&mut sp),
    };
    let cases = [
        (r#"attributes["http.route"] == "/healthz""#, true),
        (r#"resource.attributes["host.name"] == "localhost""#, true),
        (r#"name == "app_3""#, false),
        (r#"IsMatch(name, ".*health.*")"#, true),
        (
            r#"kind == SPAN_KIND_SERVER and attributes["http.method"] == "GET""#,
            true,
        ),
        (
            r#"kind == SPAN_KIND_INTERNAL or attributes["http.method"] == "POST""#,
            false,
        ),
        (r#"not (kind == SPAN_KIND_INTERNAL)"#, true),
        (r#"attributes["http.request.method"] == nil"#, true),
        (r#"attributes["http.status_code"] < 300"#, true),
        (r#"attributes["http.status_code"] >= 200.5"#, false),
        (
            r#"instrumentation_scope.name == "io.opentelemetry.http""#,
            true,
        ),
        (r#"instrumentation_scope.version != "1.2""#, false),
        (r#"end_time - start_time > 0"#, false),
        (r#"end_time > start_time"#, true),
        (r#"span.name == "GET /healthz""#, true),
        (
            r#"trace_id == TraceID(0x01010101010101010101010101010101)"#,
            true,
        ),
        (r#"span_id != SpanID(0x0202020202020202)"#, false),
        (r#"true"#, true),
    ];
    for (cond, want) in cases {
        if cond.contains(" - ") {
            // arithmetic is outside the supported subset: a config error with a position
            let e = condition(Context::Span, cond).unwrap_err();
            assert!(e.offset > 0, "{e}");
            continue;
        }
        assert_eq!(holds(Context::Span, cond, &mut tx), want, "{cond}");
    }
}

#[test]
fn log_paths_and_severity_enums() {
    let mut log = LogRecord {
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(s("user alice@example.com logged in")),
        ..Default::default()
    };
    let mut res = resource();
    let mut scope = None;
    let mut tx = Tx {
        resource: &mut res,
        scope: Some(&mut scope),
        item: Item::Log(&mut log),
    };
    assert!(holds(
        Context::Log,
        "severity_number < SEVERITY_NUMBER_WARN",
        &mut tx
    ));
    assert!(holds(
        Context::Log,
        "severity_number >= SEVERITY_NUMBER_INFO",
        &mut tx
    ));
    assert!(!holds(
        Context::Log,
        "severity_number == SEVERITY_NUMBER_INFO2",
        &mut tx
    ));
    assert!(holds(
        Context::Log,
        r#"log.severity_text == "INFO""#,
        &mut tx
    ));
    assert!(holds(
        Context::Log,
        r#"IsMatch(body, "@example\\.com")"#,
        &mut tx
    ));
    let st = statement(
        Context::Log,
        r#"replace_pattern(body, "[a-z]+@[a-z.]+", "<email>")"#,
    )
    .unwrap();
    st.execute(&mut tx).unwrap();
    assert_eq!(
        Value::from_any(log.body.as_ref()),
        str_v("user <email> logged in")
    );
}

#[test]
fn unsupported_names_are_compile_errors_with_positions() {
    let e = statement(Context::Span, r#"set(attributes["x"], Foo(name))"#).unwrap_err();
    assert_eq!(e.offset, 21);
    assert!(e.message.contains("unsupported converter \"Foo\""), "{e}");
    let e = statement(Context::Span, r#"flatten(attributes)"#).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("unsupported editor"), "{e}");
    let e = condition(Context::Span, r#"name == "a" and severity_number > 3"#).unwrap_err();
    assert_eq!(e.offset, 16);
    assert!(e.message.contains("severity_number"), "{e}");
    let e = condition(Context::Log, "kind == SPAN_KIND_NOPE").unwrap_err();
    assert!(e.message.contains("kind"), "{e}");
    let e = condition(Context::Span, "kind == SPAN_KIND_NOPE").unwrap_err();
    assert_eq!(e.offset, 8);
    let e = statement(Context::Span, r#"replace_pattern(name, "(", "x")"#).unwrap_err();
    assert!(e.message.contains("invalid pattern"), "{e}");
    let e = statement(Context::Span, r#"set(name)"#).unwrap_err();
    assert!(e.message.contains("takes 2 arguments"), "{e}");
    assert_eq!(e.to_string().split(':').next(), Some("column 1"));
    // a bad second argument is pointed at, not the ',' before it; math is named as such
    let e = statement(Context::Span, r#"set(attributes["d"], (1))"#).unwrap_err();
    assert_eq!(e.offset, 21, "{e}");
    assert!(e.message.contains("expected a value, found '('"), "{e}");
    assert!(e.message.contains("math expressions"), "{e}");
    let e = statement(Context::Span, r#"set(attributes["d"], 1 + 2)"#).unwrap_err();
    assert_eq!(e.offset, 23, "{e}");
    assert!(
        e.message.contains("found '+'") && e.message.contains("math expressions"),
        "{e}"
    );
}

use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "TEMPO" => Some("http://tempo:4318".into()),
        _ => None,
    }
}

const GOOD: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 0.0.0.0:4317 }
      http:
processors:
  memory_limiter: { check_interval: 1s, limit_mib: 512, spike_limit_mib: 128 }
  batch: { timeout: 5s, send_batch_size: 1000 }
  resource:
    attributes:
      - { key: service.namespace, value: qa, action: upsert }
exporters:
  otlphttp/tempo: { endpoint: "${env:TEMPO}" }
  otlp/backup: { endpoint: "backup:4317", tls: { insecure: true } }
  otlphttp/sumo:
    endpoint: "${env:SUMO:-http://sumo.invalid}"
    sending_queue: { queue_size: 5000, full_policy: drop_oldest }
    retry_on_failure: { initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s }
  debug:
extensions:
  health_check: { endpoint: 0.0.0.0:13133 }
service:
  extensions: [health_check]
  telemetry: { metrics: { address: 0.0.0.0:8888 } }
  pipelines:
    traces:  { receivers: [otlp], processors: [memory_limiter, resource, batch], exporters: [otlphttp/tempo, otlphttp/sumo] }
    traces/qa: { receivers: [otlp], exporters: [debug] }
    metrics: { receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlp/backup, otlphttp/sumo] }
    logs:    { receivers: [otlp], processors: [memory_limiter, batch], exporters: [debug] }
"#;

#[test]
fn design_md_example_parses() {
    let c = parse(GOOD, &env).unwrap();
    assert_eq!(c.exporters.len(), 4);
    match &c.exporters["otlphttp/tempo"] {
        ExporterConfig::OtlpHttp(h) => assert_eq!(
            h.url(Signal::Traces).unwrap(),
            "http://tempo:4318/v1/traces"
        ),
        other => panic!("{other:?}"),
    }
    match &c.exporters["otlphttp/sumo"] {
        ExporterConfig::OtlpHttp(h) => {
            assert_eq!(h.sending_queue.full_policy, common::FullPolicy::DropOldest);
            assert_eq!(h.sending_queue.queue_size, 5000);
            assert_eq!(h.endpoint.as_deref(), Some("http://sumo.invalid"));
        }
        other => panic!("{other:?}"),
    }
    let ReceiverConfig::Otlp(o) = &c.receivers["otlp"];
    assert_eq!(
        o.protocols.http.as_ref().unwrap().endpoint,
        "0.0.0.0:4318",
        "empty http: means defaults"
    );
    assert_eq!(c.service.pipelines.len(), 4);
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, &env) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn reports_every_error_with_location() {
    let bad = r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 0.0.0.0:4317 }
  kafka: {}
exporters:
  otlphttp/a:
    endpont: http://x
  prometheusremotewrite: { endpoint: "http://p/api/v1/write" }
  otlphttp/b:
    endpoint: http://b
    sending_queue:
      full_policy: sometimes
service:
  pipelines:
    traces: { receivers: [otlp, zipkin], exporters: [otlphttp/b, prometheusremotewrite, nope] }
    events: { receivers: [otlp], exporters: [otlphttp/b] }
"#;
    let errs = errors(bad);
    let all = errs.join("\n");
    assert!(all.contains("unknown receiver type \"kafka\""), "{all}");
    assert!(all.contains("line 9") && all.contains("endpont"), "{all}");
    assert!(all.contains("sometimes"), "{all}");
    assert!(all.contains("receiver \"zipkin\" is not defined"), "{all}");
    assert!(all.contains("exporter \"nope\" is not defined"), "{all}");
    assert!(all.contains("does not support traces"), "{all}");
    assert!(all.contains("invalid pipeline id \"events\""), "{all}");
    assert!(errs.len() >= 7, "{all}");
}

#[test]
fn missing_env_var_is_an_error() {
    let errs = errors("exporters:\n  otlphttp: { endpoint: \"${env:SUMO_OTLP_ENDPOINT}\" }\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("line 2") && errs[0].contains("SUMO_OTLP_ENDPOINT"),
        "{errs:?}"
    );
}

#[test]
fn telemetry_levels_are_the_collectors_words_and_a_bad_one_does_not_hide_the_pipelines() {
    let pipes = "receivers: { otlp: { protocols: { grpc: } } }\nexporters: { debug: }\n";
    let svc = |telemetry: &str, receiver: &str| {
        format!(
            "{pipes}service:\n  telemetry: {telemetry}\n  pipelines: {{ traces: {{ receivers: [{receiver}], exporters: [debug] }} }}\n"
        )
    };
    let ok = parse(
        &svc(
            "{ logs: { level: WARN }, metrics: { level: Detailed } }",
            "otlp",
        ),
        &env,
    )
    .unwrap();
    assert_eq!(ok.service.telemetry.logs.level, Some(LogLevel::Warn));
    assert_eq!(ok.service.telemetry.metrics.level, MetricsLevel::Detailed);
    // an unknown level is an error naming the words (it used to filter out every log line)
    let e = errors(&svc("{ logs: { level: verbose } }", "otlp"));
    assert_eq!(
        e,
        vec![
            "line 4 column 31: service.telemetry.logs.level: unknown log level `verbose`, expected one of trace, debug, info, warn, error (dpanic, panic, fatal: as error)"
        ]
    );
    let e = errors(&svc("{ logs: { encoding: xml } }", "otlp"));
    assert!(
        e[0].contains("unknown variant `xml`, expected `console` or `json`"),
        "{e:?}"
    );
    let e = errors(&svc("{ metrics: { level: all } }", "otlp"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("expected one of none, basic, normal, detailed"),
        "{e:?}"
    );
    // with an error in `service`, the pipelines are still checked, without a false "at least
    // one pipeline is required"
    let e = errors(&svc("{ logs: { level: verbose } }", "otlpx"));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[1].contains("receiver \"otlpx\" is not defined"), "{e:?}");
}

#[test]
fn listeners_sharing_a_port_are_named_before_run_fails_to_bind() {
    let cfg = |health: &str, zpages_listed: bool| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:4317 }}, http: {{ endpoint: \"0.0.0.0:9999\" }} }} }} }}\nexporters: {{ debug: }}\nextensions:\n  health_check: {{ endpoint: \"{health}\" }}\n  zpages: {{ endpoint: localhost:4317 }}\nservice:\n  extensions: [health_check{}]\n  telemetry: {{ metrics: {{ address: 127.0.0.1:8888 }} }}\n  pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}\n",
            if zpages_listed { ", zpages" } else { "" }
        )
    };
    assert_eq!(errors(&cfg("127.0.0.1:13133", false)), Vec::<String>::new());
    // a wildcard host overlaps every host; localhost is 127.0.0.1
    let e = errors(&cfg("127.0.0.1:9999", true));
    assert_eq!(
        e,
        vec![
            "line 4: extensions.health_check.endpoint: port 9999 is also the port of receivers.otlp.protocols.http.endpoint: two listeners cannot share it",
            "line 5: extensions.zpages.endpoint: port 4317 is also the port of receivers.otlp.protocols.grpc.endpoint: two listeners cannot share it",
        ]
    );
    // an extension that does not run binds nothing; port 0 is any free port
    assert_eq!(errors(&cfg("127.0.0.1:0", false)), Vec::<String>::new());
}

#[test]
fn the_collectors_metric_readers_set_the_self_metrics_endpoint() {
    let cfg = |metrics: &str| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: }} }} }}\nexporters: {{ debug: }}\nservice:\n  telemetry:\n    metrics:\n{metrics}  pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}\n"
        )
    };
    let pull = "      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: '0.0.0.0'\n                port: 9464\n";
    let c = parse(&cfg(pull), &env).unwrap();
    assert_eq!(c.service.telemetry.metrics.endpoint(), "0.0.0.0:9464");
    // without readers, `address` as before
    let c = parse(&cfg("      address: 127.0.0.1:1234\n"), &env).unwrap();
    assert_eq!(c.service.telemetry.metrics.endpoint(), "127.0.0.1:1234");
    // not both forms at once
    let e = errors(&cfg(&format!("      address: 127.0.0.1:1234\n{pull}")));
    assert!(
        e.iter()
            .any(|m| m.contains("set either address or readers")),
        "{e:?}"
    );
    // push readers are refused with what to do instead
    let e = errors(&cfg(
        "      readers:\n        - periodic:\n            exporter: { otlp: { protocol: grpc, endpoint: x } }\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("service.telemetry.metrics.readers") && e[0].contains("periodic readers"),
        "{e:?}"
    );
    // a reader's port clashing with a receiver's is named like any other
    let e = errors(&cfg(&pull.replace("9464", "4317")));
    assert!(
        e.iter().any(|m| m.contains(
            "readers: port 4317 is also the port of receivers.otlp.protocols.grpc.endpoint"
        )),
        "{e:?}"
    );
}

#[test]
fn bad_values_are_named() {
    let base = |exp: &str| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ http: }} }} }}\nexporters:\n{exp}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], exporters: [otlphttp] }} }} }}\n"
        )
    };
    let e = errors(&base(
        "  otlphttp: { endpoint: http://x, timeout: 5 parsecs }",
    ));
    assert!(e.iter().any(|m| m.contains("unknown unit")), "{e:?}");
    let e = errors(&base(
        "  otlphttp: { endpoint: http://x, retry_on_failure: { multiplier: 0.5 } }",
    ));
    assert!(e.iter().any(|m| m.contains("multiplier")), "{e:?}");
    let e = errors(
        "receivers: { otlp: { protocols: { http: { endpoint: nope } } } }\nexporters: { debug: }\nservice: { pipelines: { logs: { receivers: [otlp], exporters: [debug] } } }\n",
    );
    assert!(e.iter().any(|m| m.contains("host:port")), "{e:?}");
    assert!(
        errors("receivers: [1,2]\n")
            .iter()
            .any(|m| m.contains("mapping"))
    );
    assert!(errors("a: [\n").iter().any(|m| m.contains("invalid YAML")));
    // an integer beyond 64 bits is named with its range, not as a Rust type
    let e = errors(
        "receivers: { otlp: { protocols: { grpc: { max_recv_msg_size_mib: 99999999999999999999999 } } } }\n",
    );
    assert_eq!(
        e,
        vec![
            "line 1 column 66: invalid YAML: receivers.otlp.protocols.grpc.max_recv_msg_size_mib: integer 99999999999999999999999 is out of range (from -9223372036854775808 to 18446744073709551615)"
        ]
    );
    // MiB counts that overflow bytes are refused, not wrapped
    let e = errors(
        "receivers: { otlp: { protocols: { http: }, admission: { request_limit_mib: 17592186044416 } } }\nexporters: { debug: }\nservice: { pipelines: { logs: { receivers: [otlp], exporters: [debug] } } }\n",
    );
    assert!(
        e.iter()
            .any(|m| m.contains("admission.request_limit_mib (17592186044416) is above 1048576")),
        "{e:?}"
    );
    assert!(
        errors("receivers: {}\nfoo: 1\nservice: {}\n")
            .iter()
            .any(|m| m.contains("unknown top-level key \"foo\""))
    );
}

#[test]
fn memory_limiter_must_be_first() {
    let t = "receivers: { otlp: { protocols: { grpc: } } }\nprocessors: { batch: {}, memory_limiter: { limit_mib: 100 } }\nexporters: { debug: }\nservice: { pipelines: { traces: { receivers: [otlp], processors: [batch, memory_limiter], exporters: [debug] } } }\n";
    assert!(errors(t).iter().any(|m| m.contains("first processor")));
}

#[test]
fn default_config_is_valid_with_and_without_destinations() {
    let none = |_: &str| None;
    let text = default::default_config(&none);
    let c = parse(&text, &none).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.exporters.len(), 1);
    let with = |k: &str| match k {
        "WATCHTOWER_TEMPO_ENDPOINT" => Some("http://tempo:4318".to_string()),
        "WATCHTOWER_SUMO_ENDPOINT" => Some("https://sumo.example/receiver/v1/otlp/abc".to_string()),
        _ => None,
    };
    let text = default::default_config(&with);
    let c = parse(&text, &none).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        c.exporters.contains_key("otlphttp/tempo") && c.exporters.contains_key("otlphttp/sumo")
    );
    assert_eq!(
        c.service.pipelines["traces"].exporters,
        vec!["debug", "otlphttp/tempo", "otlphttp/sumo"]
    );
    assert_eq!(
        c.service.pipelines["metrics"].exporters,
        vec!["debug", "otlphttp/sumo"]
    );
    // an endpoint holding `$` or `${` is taken as it is, never resolved a second time
    let odd = |k: &str| {
        (k == "WATCHTOWER_TEMPO_ENDPOINT").then(|| "http://tempo:4318/p$$x/${env:HOME}".to_string())
    };
    let text = default::default_config(&odd);
    let c = parse(&text, &none).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let source = serde_yaml::to_string(&c.source).unwrap();
    assert!(
        source.contains("http://tempo:4318/p$$x/${env:HOME}"),
        "{source}"
    );
}

// The `runs` extension and the `runsummary` exporter (src/runs/).
const RUNS_BASE: &str = "receivers: { otlp: { protocols: { http: {} } } }\n";

#[test]
fn config_runs_extension_and_runsummary_exporter() {
    let text = format!(
        "{RUNS_BASE}exporters: {{ runsummary: {{ sending_queue: {{ queue_size: 5 }} }} }}\nextensions: {{ runs: {{ max_duration: 30m, directory: /tmp/x, max_groups: 10 }} }}\nservice: {{ extensions: [runs], pipelines: {{ traces: {{ receivers: [otlp], exporters: [runsummary] }} }} }}\n"
    );
    let cfg = parse(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    match cfg.extensions.get("runs") {
        Some(ExtensionConfig::Runs(r)) => {
            assert_eq!(r.max_groups, 10);
            assert_eq!(r.max_duration.0.as_secs(), 1800);
        }
        other => panic!("{other:?}"),
    }
    match cfg.exporters.get("runsummary") {
        Some(ExporterConfig::RunSummary(c)) => {
            assert_eq!(c.sending_queue.queue_size, 5);
            assert_eq!(c.sending_queue.policy(), common::FullPolicy::DropNewest);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn runsummary_refuses_block_and_unknown_keys() {
    for bad in [
        "exporters: { runsummary: { sending_queue: { full_policy: block } } }\n",
        "exporters: { runsummary: { nope: 1 } }\n",
        "exporters: { runsummary: {} }\nextensions: { runs: { max_groups: 0 } }\n",
    ] {
        let text = format!(
            "{RUNS_BASE}{bad}service: {{ pipelines: {{ traces: {{ receivers: [otlp], exporters: [runsummary] }} }} }}\n"
        );
        assert!(parse(&text, &|_| None).is_err(), "{bad}");
    }
}

#[test]
fn compression_auth_and_mtls_keys_parse() {
    let text = r#"
receivers:
  otlp:
    protocols:
      grpc:
        auth: { authenticator: bearertokenauth }
        tls: { cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem }
      http:
        auth: { authenticator: basicauth/in }
exporters:
  otlphttp: { endpoint: "http://x:4318", compression: snappy, auth: { authenticator: basicauth/out } }
  otlp: { endpoint: "x:4317", compression: zstd, auth: { authenticator: bearertokenauth } }
extensions:
  bearertokenauth: { tokens: [a, b], scheme: Token, header: X-Key }
  basicauth/in: { htpasswd: { inline: "u:p" } }
  basicauth/out: { client_auth: { username: u, password: p } }
  runs: { auth: { authenticator: bearertokenauth } }
service:
  extensions: [bearertokenauth, basicauth/in, basicauth/out, runs]
  pipelines:
    traces: { receivers: [otlp], exporters: [otlphttp, otlp] }
"#;
    let cfg = parse(text, &env).unwrap_or_else(|e| panic!("{e}"));
    let ReceiverConfig::Otlp(o) = &cfg.receivers["otlp"];
    let g = o.protocols.grpc.as_ref().unwrap();
    assert_eq!(g.auth.as_ref().unwrap().authenticator, "bearertokenauth");
    assert_eq!(
        g.tls.as_ref().unwrap().client_ca_file.as_deref(),
        Some("ca.pem")
    );
    match &cfg.exporters["otlphttp"] {
        ExporterConfig::OtlpHttp(c) => assert_eq!(c.compression, common::Compression::Snappy),
        _ => panic!("otlphttp"),
    }
    match &cfg.exporters["otlp"] {
        ExporterConfig::Otlp(c) => assert_eq!(c.compression, common::Compression::Zstd),
        _ => panic!("otlp"),
    }
    match &cfg.extensions["bearertokenauth"] {
        ExtensionConfig::BearerTokenAuth(c) => {
            assert_eq!((c.scheme.as_str(), c.header.as_str()), ("Token", "X-Key"));
            assert_eq!(c.tokens, vec!["a".to_string(), "b".to_string()]);
        }
        _ => panic!("bearertokenauth"),
    }
    // a client-only basicauth on a receiver, and an unknown extension key, are errors
    let bad = text
        .replace(
            "authenticator: basicauth/in",
            "authenticator: basicauth/out",
        )
        .replace("scheme: Token", "schema: Token");
    let errs = errors(&bad);
    assert!(
        errs.iter().any(
            |e| e.contains("receivers.otlp.protocols.http.auth.authenticator")
                && e.contains("no htpasswd")
        ),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("schema")), "{errs:?}");
}

#[test]
fn bad_values_inside_a_component_name_their_key_path_line_and_column() {
    let text = "receivers: { otlp: { protocols: { grpc: } } }\nexporters:\n  otlp/x:\n    endpoint: backup:4317\n    retry_on_failure:\n      max_interval: 5x\n    sending_queue:\n      queue_size: lots\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [otlp/x] } } }\n";
    let errs = errors(text);
    assert_eq!(
        errs,
        [
            "line 6 column 21: exporters.otlp/x.retry_on_failure.max_interval: unknown unit \"x\" in duration \"5x\" (use ns, us, ms, s, m, h)",
            "line 8 column 19: exporters.otlp/x.sending_queue.queue_size: invalid type: string \"lots\", expected a non-negative integer",
        ],
    );
}

#[test]
fn an_environment_number_given_to_a_text_setting_keeps_its_text_and_a_literal_one_is_refused() {
    let lookup = |k: &str| match k {
        "CLUSTER" => Some("0".to_string()),
        "ORG" => Some("1.5".to_string()),
        "FLAG" => Some("true".to_string()),
        _ => None,
    };
    let text = |cluster: &str| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: }} }} }}\nexporters:\n  prometheusremotewrite:\n    endpoint: http://mimir:9009/api/v1/push\n    external_labels:\n      cluster: {cluster}\n      org: ${{env:ORG}}\n    tls:\n      server_name_override: &flag ${{env:FLAG}}\nservice:\n  pipelines: {{ metrics: {{ receivers: [otlp], exporters: [prometheusremotewrite] }} }}\n"
        )
    };
    let cfg = parse(&text("${env:CLUSTER}"), &lookup).unwrap();
    let ExporterConfig::PrometheusRemoteWrite(c) = &cfg.exporters["prometheusremotewrite"] else {
        panic!("not a prometheusremotewrite exporter");
    };
    assert_eq!(c.external_labels["cluster"], "0");
    assert_eq!(c.external_labels["org"], "1.5");
    assert_eq!(c.tls.server_name_override.as_deref(), Some("true"));
    // written in the file, a number where text is expected is still an error (as the
    // Collector's), at its line
    let errs = parse(&text("0"), &lookup).unwrap_err().to_string();
    assert!(
        errs.contains("line 6") && errs.contains("cluster"),
        "{errs}"
    );
}

#[test]
fn an_environment_list_or_mapping_is_one_as_in_the_collector_and_text_settings_keep_its_text() {
    let lookup = |k: &str| match k {
        "EXPORTERS" => Some("[prometheusremotewrite, debug]".to_string()),
        "LABELS" => Some("{cluster: c1, region: eu}".to_string()),
        "TOKEN" => Some("scheme: opaque".to_string()),
        "SERVER" => Some("- not a list here".to_string()),
        "ENDPOINT" => Some("[4317]".to_string()),
        "CLUSTER" => Some("team: payments".to_string()),
        "STATEMENT" => Some(r#"set(span.attributes["sep"], "k: v")"#.to_string()),
        _ => None,
    };
    let text = |endpoint: &str| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: {endpoint} }} }} }} }}\nprocessors:\n  resource:\n    attributes: [ {{ key: k8s.cluster.name, value: ${{env:CLUSTER}}, action: upsert }} ]\n  transform:\n    trace_statements: [ ${{env:STATEMENT}} ]\nexporters:\n  debug:\n  prometheusremotewrite:\n    endpoint: http://mimir:9009/api/v1/push\n    external_labels: ${{env:LABELS}}\n    headers: {{ authorization: ${{env:TOKEN}} }}\n    tls:\n      server_name_override: ${{env:SERVER}}\nservice:\n  pipelines: {{ metrics: {{ receivers: [otlp], exporters: ${{env:EXPORTERS}} }} }}\n"
        )
    };
    let cfg = parse(&text("0.0.0.0:4317"), &lookup).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.service.pipelines["metrics"].exporters,
        ["prometheusremotewrite", "debug"]
    );
    let ExporterConfig::PrometheusRemoteWrite(c) = &cfg.exporters["prometheusremotewrite"] else {
        panic!("not a prometheusremotewrite exporter");
    };
    assert_eq!(c.external_labels["cluster"], "c1");
    assert_eq!(c.external_labels["region"], "eu");
    // a setting that takes text (or any scalar, or a statement) given a value YAML would
    // read as a mapping or a sequence: the text as set
    assert_eq!(c.headers["authorization"], "scheme: opaque");
    // (the transform statement holding `: ` parsed: the config above is valid)
    let resource = format!("{:?}", cfg.processors["resource"]);
    assert!(
        resource.contains("String(\"team: payments\")"),
        "{resource}"
    );
    assert_eq!(
        c.tls.server_name_override.as_deref(),
        Some("- not a list here")
    );
    // an empty variable (or `~`) for a list or mapping setting leaves it out (its default)
    let empty = |k: &str| match k {
        "LABELS" => Some("~".to_string()),
        "EXPORTERS" => Some(String::new()),
        other => lookup(other),
    };
    let errs = parse(&text("0.0.0.0:4317"), &empty)
        .unwrap_err()
        .to_string();
    // (a pipeline without exporters is refused as one written without them is)
    assert!(
        errs.contains("service.pipelines.metrics") && !errs.contains("external_labels"),
        "{errs}"
    );
    // a list that is not YAML: said so, the variable's value never quoted (it may be secret)
    let broken = |k: &str| match k {
        "EXPORTERS" => Some("[prometheusremotewrite, s3cret".to_string()),
        other => lookup(other),
    };
    let errs = parse(&text("0.0.0.0:4317"), &broken)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("service.pipelines.metrics.exporters: expected a list or mapping; the environment variable's value is not YAML"),
        "{errs}"
    );
    assert!(!errs.contains("s3cret"), "{errs}");
    // YAML's string tag makes a number text, as quotes do
    let tagged = text("0.0.0.0:4317").replace("value: ${env:CLUSTER}", "value: !!str ${env:NUM}");
    let num = |k: &str| match k {
        "NUM" => Some("400".to_string()),
        other => lookup(other),
    };
    let cfg = parse(&tagged, &num).unwrap_or_else(|e| panic!("{e}"));
    let resource = format!("{:?}", cfg.processors["resource"]);
    assert!(resource.contains("String(\"400\")"), "{resource}");
    // an address from the environment is checked as the text the setting gets
    let errs = parse(&text("${env:ENDPOINT}"), &lookup)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("receivers.otlp.protocols.grpc.endpoint: must be host:port"),
        "{errs}"
    );
}

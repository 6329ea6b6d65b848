//! Durable queues (docs/durable.md "Config"): the `file_storage` extension and `sending_queue.storage` in the
//! Collector's shape, and the validation errors that name what is wrong.

use watchtower::config::{ExtensionConfig, parse};
use watchtower::queue::durable::FsyncMode;

fn cfg(ext: &str, listed: &str, storage: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:0" }}
exporters:
  otlphttp/a:
    endpoint: http://127.0.0.1:1
    sending_queue: {{ storage: {storage}, max_bytes: 1GiB }}
    retry_on_failure: {{ retry_budget: {{ ratio: 0.2, min_per_second: 2 }} }}
  otlphttp/b:
    endpoint: http://127.0.0.1:2
    sending_queue: {{ storage: {storage} }}
extensions:
{ext}
service:
  extensions: [{listed}]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp/a, otlphttp/b] }}
"#
    )
}

fn errors(text: &str) -> String {
    match parse(text, &|_| None) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn two_exporters_share_one_file_storage() {
    let c = parse(
        &cfg(
            "  file_storage: { directory: /tmp/wt, fsync: interval, fsync_interval: 200ms }",
            "file_storage",
            "file_storage",
        ),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match c.extensions.get("file_storage") {
        Some(ExtensionConfig::FileStorage(f)) => {
            assert_eq!(f.directory, "/tmp/wt");
            assert_eq!(f.fsync, FsyncMode::Interval);
        }
        _ => panic!("file_storage not parsed"),
    }
    let a = &c.exporters["otlphttp/a"];
    assert_eq!(a.queue().storage.as_deref(), Some("file_storage"));
    assert_eq!(a.queue().max_bytes.0, 1 << 30);
    assert_eq!(a.retry().retry_budget.ratio, 0.2);
}

#[test]
fn named_extension_and_default_fsync_is_group() {
    let c = parse(
        &cfg(
            "  file_storage/q: { directory: /tmp/wt }",
            "file_storage/q",
            "file_storage/q",
        ),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match c.extensions.get("file_storage/q") {
        Some(ExtensionConfig::FileStorage(f)) => assert_eq!(f.fsync, FsyncMode::Group),
        _ => panic!("file_storage/q not parsed"),
    }
}

#[test]
fn storage_must_name_a_defined_listed_file_storage() {
    let e = errors(&cfg(
        "  file_storage: { directory: /tmp/wt }",
        "file_storage",
        "file_storage/other",
    ));
    assert!(
        e.contains("exporters.otlphttp/a.sending_queue.storage"),
        "{e}"
    );
    assert!(e.contains("\"file_storage/other\" is not defined"), "{e}");
    let e = errors(&cfg(
        "  file_storage: { directory: /tmp/wt }\n  health_check: {}",
        "health_check",
        "file_storage",
    ));
    assert!(e.contains("not listed in service.extensions"), "{e}");
    let e = errors(&cfg("  health_check: {}", "health_check", "health_check"));
    assert!(e.contains("must name a file_storage extension"), "{e}");
}

#[test]
fn bad_file_storage_settings_are_named() {
    let e = errors(&cfg(
        "  file_storage: { directory: /tmp/wt, fsync: always }",
        "file_storage",
        "file_storage",
    ));
    assert!(e.contains("extensions.file_storage"), "{e}");
    assert!(e.contains("always"), "{e}");
    let e = errors(&cfg(
        "  file_storage: { directory: /tmp/wt, compaction: {} }",
        "file_storage",
        "file_storage",
    ));
    assert!(e.contains("compaction"), "{e}");
    let e = errors(&cfg(
        "  file_storage: { directory: \"\" }",
        "file_storage",
        "file_storage",
    ));
    assert!(e.contains("directory must not be empty"), "{e}");
}

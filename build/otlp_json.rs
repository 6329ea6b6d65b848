//! Build step for the OTLP/JSON receiver: compiles the OTLP `.proto` files under
//! `proto/opentelemetry` with protox into prost types plus pbjson-generated serde
//! `Deserialize` impls (the ProtoJSON mapping), then points pbjson's scalar helpers at the
//! receiver's own ones (`crate::receiver::json::scalars`), which add what OTLP/JSON needs on
//! top of ProtoJSON: trace/span ids as hex, `null` as the default value, open enums, exact
//! integers in exponent notation and error messages that say what was expected.

use std::path::Path;

/// The OTLP packages compiled for JSON decoding, as (package, module path).
pub const PACKAGES: [&str; 8] = [
    "opentelemetry.proto.common.v1",
    "opentelemetry.proto.resource.v1",
    "opentelemetry.proto.trace.v1",
    "opentelemetry.proto.metrics.v1",
    "opentelemetry.proto.logs.v1",
    "opentelemetry.proto.collector.trace.v1",
    "opentelemetry.proto.collector.metrics.v1",
    "opentelemetry.proto.collector.logs.v1",
];

const SCALARS: &str = "crate::receiver::json::scalars";

pub fn generate(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;
    let files = [
        "opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
        "opentelemetry/proto/collector/logs/v1/logs_service.proto",
    ];
    println!("cargo:rerun-if-changed=proto/opentelemetry");
    println!("cargo:rerun-if-changed=build/otlp_json.rs");
    let fds = protox::compile(files, ["proto"])?;
    let dir = out.join("otlp_json");
    std::fs::create_dir_all(&dir)?;
    prost_build::Config::new()
        .out_dir(&dir)
        .compile_fds(fds.clone())?;
    pbjson_build::Builder::new()
        .register_descriptors(&fds.encode_to_vec())?
        .ignore_unknown_fields()
        .out_dir(&dir)
        .build(&[".opentelemetry"])?;
    for pkg in PACKAGES {
        let path = dir.join(format!("{pkg}.serde.rs"));
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, patch(&text))?;
    }
    std::fs::write(out.join("otlp_json.rs"), module_tree(&dir))?;
    Ok(())
}

/// The nested `pub mod` tree that prost's relative paths (`super::super::common::v1`) expect.
fn module_tree(dir: &Path) -> String {
    let mut s = String::new();
    s.push_str("pub mod opentelemetry { pub mod proto {\n");
    let groups: [(&str, &[&str]); 2] = [
        ("", &["common", "resource", "trace", "metrics", "logs"]),
        ("collector", &["trace", "metrics", "logs"]),
    ];
    for (outer, inner) in groups {
        if !outer.is_empty() {
            s.push_str(&format!("pub mod {outer} {{\n"));
        }
        for name in inner {
            let pkg = if outer.is_empty() {
                format!("opentelemetry.proto.{name}.v1")
            } else {
                format!("opentelemetry.proto.{outer}.{name}.v1")
            };
            let rs = dir.join(format!("{pkg}.rs"));
            let serde = dir.join(format!("{pkg}.serde.rs"));
            s.push_str(&format!(
                "pub mod {name} {{ pub mod v1 {{ include!({:?}); include!({:?}); }} }}\n",
                rs.display().to_string(),
                serde.display().to_string()
            ));
        }
        if !outer.is_empty() {
            s.push_str("}\n");
        }
    }
    s.push_str("} }\n");
    s
}

/// Rewrites pbjson's generated field decoding (one field per `GeneratedField::X =>` arm):
/// numbers, bytes, enums and `null` go through the receiver's scalar types. Panics when the
/// generated code no longer has the shape this expects, so a pbjson upgrade cannot silently
/// skip a rule.
fn patch(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut field = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("GeneratedField::") {
            if let Some((name, _)) = rest.split_once(" =>") {
                field = name.to_string();
            }
        }
        let mut l = line.to_string();
        if l.contains("map_.next_value::<::pbjson::private::BytesDeserialize<_>>") {
            let ty = match field.as_str() {
                "TraceId" => "TraceId",
                "SpanId" | "ParentSpanId" => "SpanId",
                _ => "Base64",
            };
            l = l.replace(
                "::pbjson::private::BytesDeserialize<_>",
                &format!("{SCALARS}::{ty}"),
            );
        }
        if l.contains("::pbjson::private::BytesDeserialize<_>") {
            l = l.replace(
                "::pbjson::private::BytesDeserialize<_>",
                &format!("{SCALARS}::Base64"),
            );
        }
        if l.contains("map_.next_value::<Vec<::pbjson::private::NumberDeserialize<_>>>()?") {
            l = l.replace(
                "map_.next_value::<Vec<::pbjson::private::NumberDeserialize<_>>>()?",
                &format!("map_.next_value::<{SCALARS}::OrDefault<Vec<{SCALARS}::Number<_>>>>()?.0"),
            );
        }
        if l.contains("::pbjson::private::NumberDeserialize") && t.contains("next_value") {
            l = l.replace(
                "::pbjson::private::NumberDeserialize",
                &format!("{SCALARS}::Number"),
            );
        }
        if let Some(end) = l.find(">()? as i32") {
            if let Some(start) = l[..end].rfind("map_.next_value::<") {
                let ty = l[start + "map_.next_value::<".len()..end].to_string();
                l = format!(
                    "{}map_.next_value::<{SCALARS}::OpenEnum<{ty}>>()?.0{}",
                    &l[..start],
                    &l[end + ">()? as i32".len()..]
                );
            }
        }
        if l.contains("Some(map_.next_value()?)") {
            l = l.replace(
                "Some(map_.next_value()?)",
                &format!("Some(map_.next_value::<{SCALARS}::OrDefault<_>>()?.0)"),
            );
        }
        assert!(
            !(t.contains("next_value") && l.contains("::pbjson::private::")),
            "otlp_json build: unhandled pbjson helper in: {line}"
        );
        out.push_str(&l);
        out.push('\n');
    }
    out
}

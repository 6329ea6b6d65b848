//! Compiles `proto/` (Prometheus remote-write, Loki push) with protox, so the build needs no
//! system `protoc`. OTLP types come from the `opentelemetry-proto` crate; the OTLP/JSON
//! decoder's own types and serde impls are generated from `proto/opentelemetry` (build/otlp_json.rs).
#[path = "build/otlp_json.rs"]
mod otlp_json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/prometheus/remote.proto", "proto/loki/push.proto"];
    for f in files.iter().chain(["proto/prometheus/types.proto"].iter()) {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    otlp_json::generate(std::path::Path::new(&std::env::var("OUT_DIR")?))?;
    Ok(())
}

//! Compiles `proto/` (Prometheus remote-write, Loki push) with protox, so the build needs no
//! system `protoc`. OTLP types come from the `opentelemetry-proto` crate.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/prometheus/remote.proto", "proto/loki/push.proto"];
    for f in files.iter().chain(["proto/prometheus/types.proto"].iter()) {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}

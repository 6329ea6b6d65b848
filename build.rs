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
    symbol_order()?;
    Ok(())
}

/// Release builds of the `watchtower` binary link the functions listed in
/// `build/symbol-order.txt` (the code the steady state runs, made by `make symbol-order`)
/// first and together, so that the pages the kernel keeps resident for them are few
/// (docs/ARCHITECTURE.md, "Resident memory"). lld (Rust's default linker on x86_64 Linux)
/// reads the list; names it does not find are skipped silently.
fn symbol_order() -> Result<(), Box<dyn std::error::Error>> {
    let list = "build/symbol-order.txt";
    println!("cargo:rerun-if-changed={list}");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux_x86_64 = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join(list);
    if release && linux_x86_64 && path.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=watchtower=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        println!("cargo:rustc-link-arg-bin=watchtower=-Wl,--no-warn-symbol-ordering");
        println!("cargo:rustc-link-arg-bin=watchtower=-no-pie");
    }
    Ok(())
}

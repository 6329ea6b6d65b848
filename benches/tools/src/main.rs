//! The `watchtower-bench` binary: `watchtower-bench loadgen` and `watchtower-bench sink`
//! (until the workspace split they were `watchtower loadgen` / `watchtower sink`; the
//! options are unchanged).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use watchtower_bench::{floor, loadgen, sink};

/// jemalloc, as the gateway uses: the sink and the load generator allocate per request, and
/// their CPU figures (BENCHMARKS.md) were taken with the gateway's allocator and options.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The gateway binary's jemalloc start-up options (src/main.rs), so the instruments behave as
/// they did when they were subcommands of that binary. `_RJEM_MALLOC_CONF` overrides them.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0".as_ptr() });

#[derive(Parser, Debug)]
#[command(
    name = "watchtower-bench",
    version,
    about = "Benchmark and test instruments for the Watchtower OTLP gateway."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate OTLP load (benchmarks, tests): traces, metrics or logs over gRPC or HTTP.
    Loadgen(loadgen::Args),
    /// A counting OTLP / remote-write / Loki receiver for benchmarks and tests.
    Sink(sink::Args),
    /// A do-nothing OTLP endpoint on the gateway's HTTP libraries: the sidecar benchmark's
    /// CPU floor.
    Floor(floor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                eprintln!("cannot start the runtime: {e}");
                ExitCode::from(1)
            })
    };
    match cli.command {
        Command::Loadgen(args) => rt().map_or_else(|e| e, |rt| rt.block_on(loadgen::main(args))),
        Command::Sink(args) => rt().map_or_else(|e| e, |rt| rt.block_on(sink::main(args))),
        // its own current-thread runtime, as a one-CPU sidecar's gateway runs
        Command::Floor(args) => floor::main(args),
    }
}

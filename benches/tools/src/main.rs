//! The `watchtower-bench` binary: `watchtower-bench loadgen` and `watchtower-bench sink`
//! (until the workspace split they were `watchtower loadgen` / `watchtower sink`; the
//! options are unchanged).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use watchtower_bench::{loadgen, sink};

/// jemalloc, as the gateway uses: the sink and the load generator allocate per request, and the
/// benchmarks compare them with the gateway under the same allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Loadgen(args) => rt.block_on(loadgen::main(args)),
        Command::Sink(args) => rt.block_on(sink::main(args)),
    }
}

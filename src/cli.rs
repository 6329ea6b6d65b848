//! Command-line interface: `run`, `validate`, `default-config`, the test-run and zpages clients.
//! Subcommand handlers stay thin; the work is in the library modules. The benchmark
//! instruments (`loadgen`, `sink`) are the separate `watchtower-bench` binary (benches/tools).

use clap::{Parser, Subcommand};

/// The `watchtower` command line (clap): one subcommand.
#[derive(Parser, Debug)]
#[command(
    long_about = None,
    name = "watchtower",
    version,
    about = "A native Rust OTLP gateway: receive OTLP once, fan out to Tempo, Prometheus/Mimir, Loki and any OTLP endpoint."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; their help text is each variant's doc comment.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (built-in default config unless --config is given).
    Run {
        /// Config file (OpenTelemetry Collector YAML shape); a path or a `file:` URI.
        #[arg(long, short = 'c', env = "WATCHTOWER_CONFIG", value_parser = config_path)]
        config: Option<String>,
    },
    /// Check a config file: prints `ok`, or the errors with their locations (the file's shape
    /// first; once it is right, what building the exporters and opening files finds), and
    /// exits non-zero.
    Validate {
        /// Config file (a path or a `file:` URI); without it, the built-in default config is
        /// checked.
        #[arg(long, short = 'c', value_parser = config_path)]
        config: Option<String>,
    },
    /// Print the built-in default config (as `run` would use it with the current environment).
    DefaultConfig,
    /// Open a test run: data matching --match is stamped with test.run.id until run-end.
    RunStart(crate::runs::client::RunStartArgs),
    /// End a test run and print its totals.
    RunEnd(crate::runs::client::RunEndArgs),
    /// Inspect runs and their summaries.
    #[command(subcommand)]
    Runs(crate::runs::client::RunsCommand),
    /// CD quality gate: compare a run with a baseline; exit 0 pass, 1 warn, 2 block.
    Gate(crate::runs::client::GateArgs),
    /// Stream items passing through a running gateway (zpages tap), one line each or --json.
    Tap(crate::extension::zpages::client::TapArgs),
    /// Wait until an item matching the filters passes: exit 0 (printing it), 1 on timeout,
    /// 2 on a usage or connection error.
    Wait(crate::extension::zpages::client::WaitArgs),
    /// Print the recent items a running gateway kept (zpages recent data).
    Recent(crate::extension::zpages::client::RecentArgs),
}

/// `--config` as the Collector takes it: a path, or a `file:` URI (`file:/etc/otel.yaml`);
/// the Collector's other providers (`env:`, `yaml:`, `http:`) are refused by name.
fn config_path(s: &str) -> Result<String, String> {
    if let Some(p) = s.strip_prefix("file:") {
        return Ok(p.to_string());
    }
    for scheme in ["env:", "yaml:", "http:", "https:"] {
        if s.starts_with(scheme) {
            return Err(format!(
                "{scheme} config URIs are not supported; give a file path or a file: URI"
            ));
        }
    }
    Ok(s.to_string())
}

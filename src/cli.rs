//! Command-line interface: `run`, `validate`, `default-config` (and the tools that live in the
//! same binary). Subcommand handlers stay thin; the work is in the library modules.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "watchtower",
    version,
    about = "A native Rust OTLP gateway: receive OTLP once, fan out to Tempo, Prometheus/Mimir, Loki and any OTLP endpoint."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (built-in default config unless --config is given).
    Run {
        /// Config file (OpenTelemetry Collector YAML shape).
        #[arg(long, short = 'c', env = "WATCHTOWER_CONFIG")]
        config: Option<String>,
    },
    /// Check a config file: prints `ok`, or every error with its location, and exits non-zero.
    Validate {
        /// Config file; without it, the built-in default config is checked.
        #[arg(long, short = 'c')]
        config: Option<String>,
    },
    /// Print the built-in default config (as `run` would use it with the current environment).
    DefaultConfig,
}

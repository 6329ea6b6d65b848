//! The `watchtower` binary.

use clap::Parser;
use std::process::ExitCode;
use watchtower::app::App;
use watchtower::cli::{Cli, Command};
use watchtower::config::{self, Config, ConfigErrors, default::default_config};
use watchtower::telemetry::redact;

/// jemalloc, so freed memory goes back to the OS and the memory limiter can read live bytes
/// (`telemetry::allocator`); glibc malloc kept the memory of a spike resident for minutes.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options: a background thread purges unused pages, dirty pages are
/// returned over about five seconds and muzzy ones at once (measured in docs/memory.md: a
/// shorter decay gave the pages of each batch back between batches, and every batch faulted
/// them in again).
/// `_RJEM_MALLOC_CONF` in the environment overrides them.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0".as_ptr() });

fn env_lookup(k: &str) -> Option<String> {
    config::env::process(k)
}

fn load(path: Option<&str>) -> Result<Config, ConfigErrors> {
    match path {
        Some(p) => config::load_file(p),
        None => config::parse(&default_config(&env_lookup), &env_lookup),
    }
}

/// The config text `path` names (empty if unreadable: loading reports that), or the built-in
/// config's.
fn config_text(path: Option<&str>) -> String {
    match path {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => default_config(&env_lookup),
    }
}

/// Secret values in the config text (env references expanded), to scrub from any message that
/// could quote them; also applies the configured secret path prefixes for URL masking.
fn config_secrets(path: Option<&str>) -> Vec<String> {
    let text = config_text(path);
    let masked = config::env::mask(&text);
    let Ok(mut v) = serde_yaml::from_str::<serde_yaml::Value>(&masked.text) else {
        return Vec::new();
    };
    // a reference without a value stays a placeholder: nothing secret in it
    let _ = config::env::resolve(&mut v, &masked, &env_lookup);
    let prefixes: Vec<String> = v
        .get("service")
        .and_then(|s| s.get("telemetry"))
        .and_then(|t| t.get("logs"))
        .and_then(|l| l.get("secret_path_prefixes"))
        .and_then(|p| serde_yaml::from_value(p.clone()).ok())
        .unwrap_or_default();
    redact::set_secret_path_prefixes(&prefixes);
    redact::secrets_in(&v)
}

fn init_logging(level: Option<&str>, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.unwrap_or("info")));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        fmt.json().try_init()
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Builds every exporter once, inside a runtime, so validate catches what only building
/// finds (bad URLs, unreadable CA files, invalid headers). `unused_only`: just the exporters no
/// pipeline names (`run` builds the others when it starts, and reports their errors then).
async fn check_build(cfg: &Config, unused_only: bool, text: &str) -> Vec<String> {
    let used: std::collections::BTreeSet<&str> = cfg
        .service
        .pipelines
        .values()
        .flat_map(|p| p.exporters.iter().map(String::as_str))
        .collect();
    let mut errs = Vec::new();
    for (id, e) in &cfg.exporters {
        if unused_only && used.contains(id.as_str()) {
            continue;
        }
        if let Err(m) = e.build_sender(id) {
            match config::line_of(text, &["exporters", id]) {
                Some(line) => errs.push(format!("line {line}: exporters.{id}: {m}")),
                None => errs.push(format!("exporters.{id}: {m}")),
            }
        }
    }
    errs
}

/// The files and directories a config names, checked as `run` would open them, so that
/// `validate` refuses what `run` would: TLS certificates and keys of the receivers, htpasswd
/// and token files, and the directories of `runs` and `file_storage` (which `run` creates:
/// each must be a directory or creatable, under no regular file).
fn check_files(cfg: &Config, text: &str) -> Vec<String> {
    use watchtower::config::{ExtensionConfig, ReceiverConfig};
    let mut errs = Vec::new();
    let mut at = |path: &[&str], m: String| match config::line_of(text, path) {
        Some(line) => errs.push(format!("line {line}: {}: {m}", path.join("."))),
        None => errs.push(format!("{}: {m}", path.join("."))),
    };
    let readable = |f: &str| {
        std::fs::File::open(f)
            .map(|_| ())
            .map_err(|e| format!("{f}: {e}"))
    };
    let dir_ok = |d: &str| {
        let p = std::path::Path::new(d);
        match p.ancestors().find(|a| a.exists()) {
            Some(a) if !a.is_dir() => Err(format!("{d}: {} is not a directory", a.display())),
            _ => Ok(()),
        }
    };
    for (id, r) in &cfg.receivers {
        let ReceiverConfig::Otlp(o) = r;
        let tls = [
            (
                "grpc",
                o.protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()),
            ),
            (
                "http",
                o.protocols.http.as_ref().and_then(|h| h.tls.as_ref()),
            ),
        ];
        for (proto, t) in tls {
            let Some(t) = t else { continue };
            for (key, f) in [
                ("cert_file", Some(&t.cert_file)),
                ("key_file", Some(&t.key_file)),
                ("client_ca_file", t.client_ca_file.as_ref()),
            ] {
                if let Some(Err(e)) = f.map(|f| readable(f)) {
                    at(&["receivers", id, "protocols", proto, "tls", key], e);
                }
            }
        }
    }
    for (id, e) in &cfg.extensions {
        match e {
            ExtensionConfig::BasicAuth(b) => {
                if let Some(Err(e)) = b
                    .htpasswd
                    .as_ref()
                    .and_then(|h| h.file.as_deref())
                    .map(readable)
                {
                    at(&["extensions", id, "htpasswd", "file"], e);
                }
            }
            ExtensionConfig::BearerTokenAuth(b) => {
                if let Some(Err(e)) = b.filename.as_deref().map(readable) {
                    at(&["extensions", id, "filename"], e);
                }
            }
            ExtensionConfig::Runs(r) => {
                if let Some(Err(e)) = r.directory.as_deref().map(dir_ok) {
                    at(&["extensions", id, "directory"], e);
                }
            }
            ExtensionConfig::FileStorage(f) => {
                if let Err(e) = dir_ok(&f.directory) {
                    at(&["extensions", id, "directory"], e);
                }
            }
            _ => {}
        }
    }
    // a limit_percentage is resolved from this machine's cgroup or meminfo, as `run` does
    for (path, e) in config::memory_budget::unresolvable(cfg) {
        let parts: Vec<&str> = path.split('.').collect();
        at(&parts, e);
    }
    errs
}

async fn run(path: Option<String>) -> ExitCode {
    let secrets = config_secrets(path.as_deref());
    let cfg = match load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            init_logging(None, false);
            eprintln!(
                "invalid config:\n{}",
                redact::text_with(&e.to_string(), &secrets)
            );
            return ExitCode::from(2);
        }
    };
    init_logging(
        cfg.service.telemetry.logs.level.map(|l| l.directive()),
        cfg.service.telemetry.logs.encoding == config::LogEncoding::Json,
    );
    // every configured exporter must build, as `validate` demands, used by a pipeline or not
    let errs = check_build(&cfg, true, &config_text(path.as_deref())).await;
    if !errs.is_empty() {
        eprintln!(
            "invalid config:\n{}",
            redact::text_with(&errs.join("\n"), &secrets)
        );
        return ExitCode::from(2);
    }
    watchtower::listener::prepare_process(&cfg);
    let app = match App::start(cfg).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(grpc = ?app.bound.grpc, http = ?app.bound.http, health = ?app.bound.health, metrics = ?app.bound.metrics, zpages = ?app.bound.zpages, "watchtower {} ready", env!("CARGO_PKG_VERSION"));
    let released = watchtower::telemetry::startup_pages::release();
    tracing::debug!(
        mappings = released.mappings,
        kib = released.bytes / 1024,
        "start-up code pages released from the resident set"
    );
    wait_for_signal().await;
    tracing::info!("shutting down: draining queues");
    let report = app.shutdown().await;
    if report.undelivered.is_empty() {
        // batches dropped during the drain (permanent errors, the deadline) were logged as dropped
        tracing::info!("shutdown complete, every queue empty");
    } else {
        for (exp, n) in &report.undelivered {
            tracing::warn!(exporter = %exp, items = n, "not delivered before the shutdown deadline");
        }
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How many threads run async tasks: `TOKIO_WORKER_THREADS` when set to a positive number
/// (tokio's own variable), else the CPUs this process may use (`available_parallelism`, which
/// follows the container's CPU quota: a pod limited to less than one core gets 1).
fn worker_threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// The runtime for `workers` threads. One thread gets tokio's current-thread scheduler, which
/// runs every task on the main thread without the work-stealing machinery (queues shared
/// between workers, wake-ups of idle workers) that buys nothing with a single worker: a sidecar
/// with a fraction of a core pays less per request. More threads get the multi-thread
/// scheduler with that many workers. Blocking work goes to the blocking pool either way.
fn runtime_builder(workers: usize) -> tokio::runtime::Builder {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    }
}

fn main() -> ExitCode {
    watchtower::telemetry::allocator::declare_jemalloc_global();
    watchtower::telemetry::startup_pages::advise_random();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // a command whose output is piped (`watchtower recent --json | head`) ends quietly
        // when the reader leaves, as Unix tools do, instead of panicking in `println!`; the
        // gateway itself keeps Rust's default (a closed peer is an error, not a signal)
        // SAFETY: at start-up, before any thread exists; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match runtime_builder(worker_threads()).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Run { config } => rt.block_on(run(config)),
        Command::Validate { config } => {
            // never echo a configured secret (a header written as a string, a bad URL)
            let secrets = config_secrets(config.as_deref());
            match load(config.as_deref()) {
                Ok(cfg) => {
                    let text = config_text(config.as_deref());
                    let mut errs = rt.block_on(check_build(&cfg, false, &text));
                    errs.extend(check_files(&cfg, &text));
                    if errs.is_empty() {
                        println!("ok");
                        ExitCode::SUCCESS
                    } else {
                        for e in errs {
                            println!("{}", redact::text_with(&e, &secrets));
                        }
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    println!("{}", redact::text_with(&e.to_string(), &secrets));
                    ExitCode::from(1)
                }
            }
        }
        Command::RunStart(a) => rt.block_on(watchtower::runs::client::run_start(a)),
        Command::RunEnd(a) => rt.block_on(watchtower::runs::client::run_end(a)),
        Command::Runs(c) => rt.block_on(watchtower::runs::client::runs(c)),
        Command::Gate(a) => rt.block_on(watchtower::runs::client::gate(a)),
        Command::Tap(a) => rt.block_on(watchtower::extension::zpages::client::tap(a)),
        Command::Wait(a) => rt.block_on(watchtower::extension::zpages::client::wait(a)),
        Command::Recent(a) => rt.block_on(watchtower::extension::zpages::client::recent(a)),
        Command::DefaultConfig => {
            print!("{}", default_config(&env_lookup));
            ExitCode::SUCCESS
        }
    }
}

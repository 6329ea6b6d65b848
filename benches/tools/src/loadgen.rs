//! `watchtower-bench loadgen`: sends OTLP traces, metrics or logs over gRPC or HTTP (protobuf or
//! JSON) at a fixed rate or as fast as possible, over N connections, from a pool of requests
//! encoded up front. Refusals (HTTP 429/503, gRPC RESOURCE_EXHAUSTED/UNAVAILABLE) are
//! counted, backed off (honouring Retry-After / RetryInfo) and retried; other errors are
//! counted as failed. Reports items/s and bytes/s accepted, refused and failed, and request
//! latency percentiles, on stdout and as JSON with `--json`.

use crate::content::{GenOpts, GenRequest, pool};
use crate::stats::{Latencies, Summary};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use watchtower::pipeline::grpc::{RawCodec, retry_delay};
use watchtower::pipeline::payload::Signal;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC
    Grpc,
    /// OTLP/HTTP with protobuf bodies
    Http,
    /// OTLP/HTTP with JSON bodies
    HttpJson,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::HttpJson => "http-json",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

impl From<SignalArg> for Signal {
    fn from(s: SignalArg) -> Signal {
        match s {
            SignalArg::Traces => Signal::Traces,
            SignalArg::Metrics => Signal::Metrics,
            SignalArg::Logs => Signal::Logs,
        }
    }
}

/// `watchtower-bench loadgen` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Target: `host:port` (gRPC) or a base URL `http://host:port` (HTTP; `/v1/<signal>` is added).
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    #[arg(long, value_enum, default_value = "traces")]
    pub signal: SignalArg,
    /// Items per second over all connections; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent connections (one sequential sender each).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Spans / data points / log records per request.
    #[arg(long, default_value_t = 100)]
    pub items_per_request: usize,
    /// Attributes per item.
    #[arg(long, default_value_t = 8)]
    pub attributes: usize,
    /// Extra bytes per item (a `payload` string attribute).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Distinct services (resources).
    #[arg(long, default_value_t = 5)]
    pub services: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many accepted-or-given-up requests in total (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub requests: u64,
    /// Distinct pre-encoded requests in the pool.
    #[arg(long, default_value_t = 64)]
    pub pool: usize,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seed of the generated content.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON to this file (`-` = stdout).
    #[arg(long)]
    pub json: Option<String>,
    /// Do not print the human summary.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for Args {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: Args,
        }
        P::parse_from(["loadgen"]).a
    }
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Triple {
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Rates {
    pub accepted: f64,
    pub refused: f64,
    pub failed: f64,
}

/// What a run did. `refused` counts refused attempts (each retried after a back-off);
/// `failed` counts requests given up on (non-retryable answer, transport error, or still
/// refused when the run ended).
#[derive(Serialize, Clone, Debug, Default)]
pub struct Report {
    pub signal: String,
    pub protocol: String,
    pub endpoint: String,
    pub connections: usize,
    pub items_per_request: usize,
    pub target_rate: u64,
    pub elapsed_s: f64,
    pub requests: Triple,
    pub items: Triple,
    pub bytes: Triple,
    pub items_per_s: Rates,
    pub bytes_per_s: Rates,
    /// Latency of every request attempt, milliseconds.
    pub latency_ms: Summary,
    /// The first few distinct error messages.
    pub errors: Vec<String>,
}

enum Outcome {
    Ok,
    Refused(Option<Duration>),
    Failed(String),
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

#[allow(clippy::large_enum_variant)] // one per connection, created once
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http {
        client: HttpClient,
        uri: http::Uri,
        json: bool,
    },
}

fn grpc_path(signal: Signal) -> &'static str {
    watchtower::exporter::otlp::grpc_path(signal)
}

impl Client {
    async fn connect(args: &Args, signal: Signal) -> Result<Client, String> {
        let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
        match args.protocol {
            Protocol::Grpc => {
                let url = if args.endpoint.contains("://") {
                    args.endpoint.clone()
                } else {
                    format!("http://{}", args.endpoint)
                };
                let ep = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| format!("invalid endpoint {}: {e}", args.endpoint))?
                    .timeout(timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .tcp_nodelay(true);
                // lazy: a refused connection is a failed request, counted, not a crash
                Ok(Client::Grpc(tonic::client::Grpc::new(ep.connect_lazy())))
            }
            Protocol::Http | Protocol::HttpJson => {
                let base = if args.endpoint.contains("://") {
                    args.endpoint.trim_end_matches('/').to_string()
                } else {
                    format!("http://{}", args.endpoint.trim_end_matches('/'))
                };
                let uri: http::Uri = format!("{base}/v1/{}", signal.as_str())
                    .parse()
                    .map_err(|e| format!("invalid endpoint {}: {e}", args.endpoint))?;
                let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
                conn.set_nodelay(true);
                conn.set_connect_timeout(Some(Duration::from_secs(5)));
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .pool_max_idle_per_host(1)
                .build(conn);
                Ok(Client::Http {
                    client,
                    uri,
                    json: args.protocol == Protocol::HttpJson,
                })
            }
        }
    }

    async fn send(&mut self, signal: Signal, req: &GenRequest, timeout: Duration) -> Outcome {
        match self {
            Client::Grpc(g) => {
                if let Err(e) = g.ready().await {
                    return Outcome::Failed(format!("gRPC channel not ready: {e}"));
                }
                let path = http::uri::PathAndQuery::from_static(grpc_path(signal));
                match g
                    .unary(tonic::Request::new(req.proto.clone()), path, RawCodec)
                    .await
                {
                    Ok(_) => Outcome::Ok,
                    Err(st) => match st.code() {
                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                            if !is_transport_error(&st) =>
                        {
                            Outcome::Refused(retry_delay(&st))
                        }
                        c => Outcome::Failed(format!("gRPC {c:?}: {}", st.message())),
                    },
                }
            }
            Client::Http { client, uri, json } => {
                let (body, ct) = if *json {
                    (req.json.clone().unwrap_or_default(), "application/json")
                } else {
                    (req.proto.clone(), "application/x-protobuf")
                };
                let request = match http::Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, ct)
                    .body(Full::new(body))
                {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(e.to_string()),
                };
                let fut = async {
                    let resp = client.request(request).await.map_err(|e| {
                        use std::error::Error;
                        let mut m = e.to_string();
                        if let Some(src) = e.source() {
                            m = format!("{m}: {src}");
                        }
                        m
                    })?;
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    Ok::<_, String>((status, retry_after, body))
                };
                match tokio::time::timeout(timeout, fut).await {
                    Err(_) => Outcome::Failed("timeout".into()),
                    Ok(Err(e)) => Outcome::Failed(e),
                    Ok(Ok((status, retry_after, body))) => {
                        if status.is_success() {
                            Outcome::Ok
                        } else if status.as_u16() == 429 || status.as_u16() == 503 {
                            Outcome::Refused(retry_after)
                        } else {
                            Outcome::Failed(format!(
                                "HTTP {}: {}",
                                status.as_u16(),
                                watchtower::exporter::otlp::status_message(&body)
                            ))
                        }
                    }
                }
            }
        }
    }
}

/// tonic reports connect failures as UNAVAILABLE too; those are failures, not refusals.
fn is_transport_error(st: &tonic::Status) -> bool {
    st.code() == tonic::Code::Unavailable
        && (st.message().contains("transport") || st.message().contains("connect"))
        && st.details().is_empty()
}

#[derive(Default)]
struct Counters {
    requests: Triple,
    items: Triple,
    bytes: Triple,
    lat: Latencies,
    errors: Vec<String>,
}

/// Runs the load and returns the report (also printed / written per the options).
pub async fn run(args: &Args) -> Result<Report, String> {
    let signal: Signal = args.signal.into();
    let json = args.protocol == Protocol::HttpJson;
    let gen_opts = GenOpts {
        signal,
        items_per_request: args.items_per_request.max(1),
        attributes: args.attributes,
        payload_bytes: args.payload_bytes,
        services: args.services.max(1),
        seed: args.seed,
    };
    let pool_size = args.pool.max(1);
    let reqs: Arc<Vec<GenRequest>> = Arc::new(
        tokio::task::spawn_blocking(move || pool(&gen_opts, pool_size, json))
            .await
            .map_err(|e| e.to_string())?,
    );
    let conns = args.connections.max(1);
    // per-connection interval between request starts for a fixed rate
    let interval = if args.rate > 0 {
        let req_per_s = args.rate as f64 / args.items_per_request.max(1) as f64;
        Some(Duration::from_secs_f64(conns as f64 / req_per_s))
    } else {
        None
    };
    let duration = Duration::from_secs_f64(args.duration.max(0.0));
    let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    let budget = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for w in 0..conns {
        let mut client = Client::connect(args, signal).await?;
        let reqs = reqs.clone();
        let budget = budget.clone();
        let stop = stop.clone();
        let limit = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut c = Counters::default();
            let mut k = w; // pool index
            // stagger fixed-rate senders over one interval
            let mut next = started
                + interval
                    .map(|i| i.mul_f64(w as f64 / conns as f64))
                    .unwrap_or_default();
            loop {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                if limit > 0 && budget.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                if let Some(iv) = interval {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep_until(next.into()).await;
                    } else if now - next > Duration::from_secs(1) {
                        next = now; // fell far behind: do not burst to catch up
                    }
                    next += iv;
                }
                let req = &reqs[k % reqs.len()];
                k += conns;
                let size = if json {
                    req.json.as_ref().map(|j| j.len()).unwrap_or(0)
                } else {
                    req.proto.len()
                } as u64;
                let mut backoff = Duration::from_millis(50);
                loop {
                    let t0 = Instant::now();
                    let out = client.send(signal, req, timeout).await;
                    c.lat.record(t0.elapsed());
                    match out {
                        Outcome::Ok => {
                            c.requests.accepted += 1;
                            c.items.accepted += req.items;
                            c.bytes.accepted += size;
                            break;
                        }
                        Outcome::Refused(after) => {
                            c.requests.refused += 1;
                            c.items.refused += req.items;
                            c.bytes.refused += size;
                            let wait = after.unwrap_or(backoff).min(Duration::from_secs(2));
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            if Instant::now() + wait >= deadline || stop.load(Ordering::Relaxed) {
                                c.requests.failed += 1;
                                c.items.failed += req.items;
                                c.bytes.failed += size;
                                note(&mut c.errors, "still refused when the run ended".into());
                                break;
                            }
                            tokio::time::sleep(wait).await;
                        }
                        Outcome::Failed(m) => {
                            c.requests.failed += 1;
                            c.items.failed += req.items;
                            c.bytes.failed += size;
                            note(&mut c.errors, m);
                            // do not spin on a dead endpoint
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            break;
                        }
                    }
                }
            }
            c
        }));
    }
    let mut total = Counters::default();
    for t in tasks {
        let c = t.await.map_err(|e| format!("sender task failed: {e}"))?;
        for (a, b) in [
            (&mut total.requests, c.requests),
            (&mut total.items, c.items),
            (&mut total.bytes, c.bytes),
        ] {
            a.accepted += b.accepted;
            a.refused += b.refused;
            a.failed += b.failed;
        }
        total.lat.merge(c.lat);
        for e in c.errors {
            note(&mut total.errors, e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let per_s = |t: &Triple| Rates {
        accepted: t.accepted as f64 / elapsed,
        refused: t.refused as f64 / elapsed,
        failed: t.failed as f64 / elapsed,
    };
    let report = Report {
        signal: signal.as_str().into(),
        protocol: args.protocol.as_str().into(),
        endpoint: args.endpoint.clone(),
        connections: conns,
        items_per_request: args.items_per_request,
        target_rate: args.rate,
        elapsed_s: elapsed,
        items_per_s: per_s(&total.items),
        bytes_per_s: per_s(&total.bytes),
        requests: total.requests,
        items: total.items,
        bytes: total.bytes,
        latency_ms: total.lat.summary(),
        errors: total.errors,
    };
    Ok(report)
}

fn note(errors: &mut Vec<String>, m: String) {
    if errors.len() < 5 && !errors.contains(&m) {
        errors.push(m);
    }
}

/// Human summary.
pub fn format_report(r: &Report) -> String {
    format!(
        "loadgen {signal} over {proto} to {ep}: {conns} connections, {ipr} items/request, {el:.2}s\n\
         \x20 requests  accepted {ra}  refused {rr}  failed {rf}\n\
         \x20 items     accepted {ia} ({ips:.0}/s)  refused {ir}  failed {ifl}\n\
         \x20 bytes     accepted {ba} ({bps:.1} MB/s)  refused {br}  failed {bf}\n\
         \x20 latency   p50 {p50:.2} ms  p90 {p90:.2} ms  p99 {p99:.2} ms  max {max:.2} ms\n{errs}",
        signal = r.signal,
        proto = r.protocol,
        ep = r.endpoint,
        conns = r.connections,
        ipr = r.items_per_request,
        el = r.elapsed_s,
        ra = r.requests.accepted,
        rr = r.requests.refused,
        rf = r.requests.failed,
        ia = r.items.accepted,
        ips = r.items_per_s.accepted,
        ir = r.items.refused,
        ifl = r.items.failed,
        ba = r.bytes.accepted,
        bps = r.bytes_per_s.accepted / 1e6,
        br = r.bytes.refused,
        bf = r.bytes.failed,
        p50 = r.latency_ms.p50,
        p90 = r.latency_ms.p90,
        p99 = r.latency_ms.p99,
        max = r.latency_ms.max,
        errs = r
            .errors
            .iter()
            .map(|e| format!("  error: {e}\n"))
            .collect::<String>(),
    )
}

/// The subcommand: run, print, write JSON. Exit code 0 when every request was accepted in
/// the end, 1 when some failed, 2 on a usage error.
pub async fn main(args: Args) -> std::process::ExitCode {
    let report = match run(&args).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if !args.quiet {
        eprint!("{}", format_report(&report));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if path == "-" {
            println!("{text}");
        } else if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("loadgen: cannot write {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    if report.requests.failed > 0 {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

//! `watchtower tap`, `watchtower wait` and `watchtower recent`: the zpages tap and recent data
//! in a terminal, for people, CI steps and coding agents. They talk to a running gateway's
//! zpages endpoint (`--endpoint`, default `localhost:55679`).
//!
//! Exit codes: `tap` and `recent` 0, or 2 on a usage or connection error; `wait` 0 when a
//! matching item passed (it is printed), 1 on timeout, 2 on a usage or connection error.

use crate::config::common::parse_duration;
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// Filters shared by the three commands (the API's query parameters).
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// zpages endpoint (host:port or URL).
    #[arg(long, env = "WATCHTOWER_ZPAGES", default_value = "localhost:55679")]
    pub endpoint: String,
    /// `Authorization` header value for a zpages endpoint with `auth` (e.g. `Bearer <token>`).
    /// Read it from the environment rather than the command line, so it stays out of `ps`.
    #[arg(long, env = "WATCHTOWER_ZPAGES_AUTHORIZATION", hide_env_values = true)]
    pub authorization: Option<String>,
    /// Tap point: a receiver or exporter id (`otlp`, `exporter/otlphttp/tempo`); default all
    /// receivers.
    #[arg(long)]
    pub component: Option<String>,
    /// traces, metrics or logs.
    #[arg(long)]
    pub signal: Option<String>,
    /// Resource `service.name`.
    #[arg(long)]
    pub service: Option<String>,
    /// Resource `test.run.id`.
    #[arg(long)]
    pub run: Option<String>,
    /// Case-insensitive substring of the span name, metric name or log body.
    #[arg(long = "match")]
    pub text: Option<String>,
    /// Exact span name, metric name or log body.
    #[arg(long)]
    pub name: Option<String>,
    /// Span status (error, ok, unset) or log severity text.
    #[arg(long)]
    pub status: Option<String>,
    /// Print each item as one line of JSON (with its OTLP/JSON) instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// `watchtower tap`.
#[derive(Args, Debug, Clone)]
pub struct TapArgs {
    /// Which items to show.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Stop after N items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// `watchtower wait`.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Which item to wait for.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Give up after this long (exit 1).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

/// `watchtower recent`.
#[derive(Args, Debug, Clone)]
pub struct RecentArgs {
    /// Which items to show.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Hex trace id.
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Items seen in this last duration (30s, 5m) or since Unix time in nanoseconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Most items to print (newest; printed oldest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

fn url(f: &FilterArgs, path: &str, extra: &[(&str, String)]) -> Result<reqwest::Url, String> {
    let base = if f.endpoint.contains("://") {
        f.endpoint.clone()
    } else {
        format!("http://{}", f.endpoint)
    };
    let mut u = reqwest::Url::parse(&base)
        .and_then(|b| b.join(path))
        .map_err(|e| format!("invalid --endpoint {:?}: {e}", f.endpoint))?;
    {
        let mut q = u.query_pairs_mut();
        let pairs = [
            ("component", &f.component),
            ("signal", &f.signal),
            ("service", &f.service),
            ("run", &f.run),
            ("match", &f.text),
            ("name", &f.name),
            ("status", &f.status),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(u)
}

/// One summary line: time (UTC), component, signal, service, name, status, trace id.
pub fn summary_line(v: &Value) -> String {
    let ns = v["observed_time_unix_nano"].as_u64().unwrap_or(0);
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let f = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let status = f("status");
    let trace = f("trace_id");
    format!(
        "{h:02}:{m:02}:{s:02}.{ms:03} {} {} {} {:?}{}{}",
        f("component"),
        f("signal"),
        if f("service").is_empty() {
            "-".into()
        } else {
            f("service")
        },
        f("name"),
        if status.is_empty() {
            String::new()
        } else {
            format!(" status={status}")
        },
        if trace.is_empty() || trace.bytes().all(|b| b == b'0') {
            String::new()
        } else {
            format!(" trace_id={trace}")
        },
    )
}

fn print_item(v: &Value, json: bool) {
    if json {
        println!("{v}");
    } else {
        println!("{}", summary_line(v));
    }
}

fn client() -> reqwest::Client {
    crate::install_crypto_provider();
    reqwest::Client::new()
}

async fn open(u: reqwest::Url, authorization: Option<&str>) -> Result<reqwest::Response, String> {
    let mut req = client().get(u.clone());
    if let Some(a) = authorization {
        req = req.header(http::header::AUTHORIZATION, a);
    }
    let r = req.send().await.map_err(|e| {
        format!(
            "cannot reach zpages at {}: {e}",
            u.origin().ascii_serialization()
        )
    })?;
    if !r.status().is_success() {
        let st = r.status();
        let body = r.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(body);
        return Err(format!("zpages answered {st}: {msg}"));
    }
    Ok(r)
}

/// Reads the tap stream, calling `each` for every item line (gap lines are reported on
/// stderr). Stops when `each` returns false or the stream ends.
async fn stream(
    mut r: reqwest::Response,
    mut each: impl FnMut(&Value) -> bool,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match r.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("tap stream broken: {e}")),
        };
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(g) = v.get("gap") {
                eprintln!(
                    "-- gap: {} items lost (this viewer was too slow) --",
                    g["lost_items"]
                );
            } else if v.get("signal").is_some() && !each(&v) {
                return Ok(());
            }
        }
    }
}

/// `watchtower tap`.
pub async fn tap(a: TapArgs) -> ExitCode {
    let mut extra = Vec::new();
    if let Some(n) = a.limit {
        extra.push(("limit", n.to_string()));
    }
    let run = async {
        let u = url(&a.filter, "/api/v1/tap", &extra)?;
        let r = open(u, a.filter.authorization.as_deref()).await?;
        let json = a.filter.json;
        let mut n = 0usize;
        stream(r, |v| {
            print_item(v, json);
            n += 1;
            a.limit.is_none_or(|l| n < l)
        })
        .await
    };
    let res = match a.duration {
        Some(d) => tokio::time::timeout(d, run).await.unwrap_or(Ok(())),
        None => run.await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `watchtower wait`.
pub async fn wait(a: WaitArgs) -> ExitCode {
    let run = async {
        let u = url(&a.filter, "/api/v1/tap", &[("limit", "1".into())])?;
        let r = open(u, a.filter.authorization.as_deref()).await?;
        let mut found = None;
        stream(r, |v| {
            found = Some(v.clone());
            false
        })
        .await?;
        Ok::<Option<Value>, String>(found)
    };
    match tokio::time::timeout(a.timeout, run).await {
        Ok(Ok(Some(v))) => {
            print_item(&v, a.filter.json);
            ExitCode::SUCCESS
        }
        Ok(Ok(None)) => {
            eprintln!("the tap stream ended before a matching item passed");
            ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("timeout: no matching item within {:?}", a.timeout);
            ExitCode::from(1)
        }
    }
}

/// `watchtower recent`.
pub async fn recent(a: RecentArgs) -> ExitCode {
    let mut extra = vec![("limit", a.limit.to_string())];
    if let Some(t) = &a.trace_id {
        extra.push(("trace_id", t.clone()));
    }
    if let Some(s) = &a.since {
        extra.push(("since", s.clone()));
    }
    let res = async {
        let r = open(
            url(&a.filter, "/api/v1/recent", &extra)?,
            a.filter.authorization.as_deref(),
        )
        .await?;
        let v: Value = serde_json::from_str(&r.text().await.map_err(|e| e.to_string())?)
            .map_err(|e| format!("invalid answer: {e}"))?;
        Ok::<Value, String>(v)
    }
    .await;
    match res {
        Ok(v) => {
            for it in v["items"].as_array().into_iter().flatten() {
                print_item(it, a.filter.json);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

//! The CLI side of runs: `run-start`, `run-end`, `runs show|list` and `gate`, thin clients of
//! the control API (reqwest), printing tables or reports. Exit codes: 0 ok / pass, 1 warn,
//! 2 block; a gate that cannot fetch its summaries blocks (2) with a message on stderr.

use crate::runs::gate::{self, GateConfig};
use crate::runs::registry::{MAX_PAGE, Page, StartRequest};
use crate::runs::summary::{RunInfo, Summary};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// Which gateway to talk to (`--url`, or `WATCHTOWER_URL`), and the credential the runs API
/// asks for when `extensions.runs.auth` protects it.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Watchtower's health/admin endpoint.
    #[arg(long, env = "WATCHTOWER_URL", default_value = "http://localhost:13133")]
    pub url: String,
    /// A file holding the token sent as `Authorization: Bearer <token>` (for a
    /// `bearertokenauth` authenticator); read on every call, surrounding whitespace trimmed.
    #[arg(long, env = "WATCHTOWER_BEARER_TOKEN_FILE", value_name = "PATH")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// A request header to send, `Name: value` (repeatable), e.g. `Authorization: Basic ...`
    /// for a `basicauth` authenticator.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

impl Target {
    /// The headers every call carries: `--header` values, then the bearer token.
    ///
    /// # Errors
    /// A malformed `--header`, or a token file that cannot be read or is empty.
    fn request_headers(&self) -> Result<http::HeaderMap, ClientError> {
        let mut out = http::HeaderMap::new();
        for h in &self.headers {
            let parsed = h.split_once(':').and_then(|(n, v)| {
                Some((
                    http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                    http::HeaderValue::from_str(v.trim()).ok()?,
                ))
            });
            let (name, value) = parsed.ok_or_else(|| {
                ClientError::Usage(format!("--header expects \"Name: value\", got {h:?}"))
            })?;
            out.append(name, value);
        }
        if let Some(path) = &self.bearer_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                ClientError::Usage(format!("--bearer-token-file {}: {e}", path.display()))
            })?;
            let value = http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .ok()
                .filter(|_| !token.trim().is_empty())
                .ok_or_else(|| {
                    ClientError::Usage(format!(
                        "--bearer-token-file {}: empty, or not a valid header value",
                        path.display()
                    ))
                })?;
            out.insert(http::header::AUTHORIZATION, value);
        }
        Ok(out)
    }
}

/// `watchtower run-start` arguments.
#[derive(Args, Debug)]
pub struct RunStartArgs {
    /// The gateway's health_check endpoint.
    #[command(flatten)]
    pub target: Target,
    /// Run id (default: generated and printed).
    #[arg(long)]
    pub id: Option<String>,
    /// Label k=v stored with the run (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Stamp only resources with this attribute value (repeatable, all must match).
    #[arg(long = "match", value_name = "K=V")]
    pub matchers: Vec<String>,
    /// Overrides the gateway's max_duration for this run (e.g. 30m).
    #[arg(long)]
    pub max_duration: Option<String>,
}

/// `watchtower run-end` arguments.
#[derive(Args, Debug)]
pub struct RunEndArgs {
    /// The gateway's health_check endpoint.
    #[command(flatten)]
    pub target: Target,
    /// The run to end.
    #[arg(long)]
    pub id: String,
}

/// `watchtower runs show|list`.
#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Print a run's summary as tables (or JSON with --json).
    Show {
        /// The gateway's health_check endpoint.
        #[command(flatten)]
        target: Target,
        /// The run to show.
        id: String,
        /// Print the summary as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// List runs.
    List {
        /// The gateway's health_check endpoint.
        #[command(flatten)]
        target: Target,
    },
}

/// How `gate` prints its report.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Format {
    /// Markdown (for a pull-request comment).
    Md,
    /// The report as JSON.
    Json,
    /// Plain text for a terminal.
    Text,
}

/// `watchtower gate` arguments; thresholds given here override the config file's `block`.
#[derive(Args, Debug)]
pub struct GateArgs {
    /// The gateway's health_check endpoint.
    #[command(flatten)]
    pub target: Target,
    /// The run to judge.
    #[arg(long)]
    pub run: String,
    /// The run to compare with (without it, every exception type is new).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Block when more exception types than this are new (default 0).
    #[arg(long)]
    pub max_new_exception_types: Option<u64>,
    /// Block when the run's span error rate is above this (0..1).
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Block when an operation's p95 grew by more than this percentage.
    #[arg(long)]
    pub max_p95_regression: Option<f64>,
    /// Never block: what would block only warns (exit 1).
    #[arg(long)]
    pub warn_only: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Thresholds file (gate.yaml); flags override its `block` values.
    #[arg(long)]
    pub config: Option<String>,
}

/// Why a call to the runs API failed (printed on stderr; the command exits 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {url}: {err}")]
    Http { url: String, err: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("unexpected answer from {url}: {err}")]
    Decode { url: String, err: String },
}

fn kv_list(items: &[String], what: &str) -> Result<BTreeMap<String, String>, ClientError> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ClientError::Usage(format!("--{what} expects K=V, got {s:?}")))
        })
        .collect()
}

fn client() -> Result<reqwest::Client, ClientError> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ClientError::Usage(format!("http client: {e}")))
}

/// A run id as one URL path segment: every byte outside RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded, so any id addresses its own `/runs/{id}`.
pub fn path_id(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

async fn call<T: serde::de::DeserializeOwned>(
    t: &Target,
    method: reqwest::Method,
    path: String,
    body: Option<String>,
) -> Result<T, ClientError> {
    let c = client()?;
    let url = format!("{}{path}", base(t)?);
    let mut req = c.request(method, &url).headers(t.request_headers()?);
    if let Some(b) = body {
        req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    let resp = req.send().await.map_err(|e| ClientError::Http {
        url: url.clone(),
        err: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| ClientError::Http {
        url: url.clone(),
        err: e.to_string(),
    })?;
    if !(200..300).contains(&status) {
        // a runs API answers its errors as JSON; anything else is another server, or a
        // gateway without the `runs` extension
        let body = if status == 404 && serde_json::from_str::<serde_json::Value>(&text).is_err() {
            let hint = "no runs API there: --url must be a gateway's health_check endpoint, with the `runs` extension listed in service.extensions";
            match text.trim() {
                "" => hint.to_string(),
                t => format!("{t} ({hint})"),
            }
        } else {
            text
        };
        return Err(ClientError::Status { url, status, body });
    }
    serde_json::from_str(&text).map_err(|e| ClientError::Decode {
        url,
        err: e.to_string(),
    })
}

/// `--url` without a trailing slash; it must name its scheme.
fn base(t: &Target) -> Result<String, ClientError> {
    if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
        return Err(ClientError::Usage(format!(
            "--url {:?} must start with http:// or https://",
            t.url
        )));
    }
    Ok(t.url.trim_end_matches('/').to_string())
}

/// `GET /runs/{id}`: the run's summary, indexes rebuilt.
pub(crate) async fn fetch_summary(t: &Target, id: &str) -> Result<Summary, ClientError> {
    let mut s: Summary = call(
        t,
        reqwest::Method::GET,
        format!("/runs/{}", path_id(id)),
        None,
    )
    .await?;
    s.reindex();
    Ok(s)
}

fn fail(e: ClientError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// `run-start`: `POST /runs`; prints the run's id. Exit 0, or 2 with the error on stderr.
pub async fn run_start(a: RunStartArgs) -> ExitCode {
    let req = match (kv_list(&a.labels, "label"), kv_list(&a.matchers, "match")) {
        (Ok(labels), Ok(matchers)) => StartRequest {
            id: a.id,
            labels,
            matchers,
            max_duration: a.max_duration,
            ..Default::default()
        },
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let body = match serde_json::to_string(&req) {
        Ok(b) => b,
        Err(e) => return fail(ClientError::Usage(e.to_string())),
    };
    match call::<Summary>(&a.target, reqwest::Method::POST, "/runs".into(), Some(body)).await {
        Ok(s) => {
            if s.partial {
                eprintln!(
                    "warning: run {} is not open on every replica; missing: {}",
                    s.id,
                    s.missing_replicas.join(", ")
                );
            }
            println!("{}", s.id);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `run-end`: `POST /runs/{id}/end`; prints the run's totals. Exit 0, or 2 with the error on
/// stderr.
pub async fn run_end(a: RunEndArgs) -> ExitCode {
    let path = format!("/runs/{}/end", path_id(&a.id));
    match call::<Summary>(&a.target, reqwest::Method::POST, path, None).await {
        Ok(s) => {
            if s.partial {
                eprintln!(
                    "warning: run {} was not ended on every replica and its totals lack their part; missing: {}",
                    s.id,
                    s.missing_replicas.join(", ")
                );
            }
            println!(
                "run {} {}: {} spans ({} errors), {} log records, {} exceptions in {} groups{}",
                s.id,
                s.state,
                s.totals.spans,
                s.totals.error_spans,
                s.totals.log_records,
                s.totals.exceptions,
                s.exception_groups.len(),
                if s.complete {
                    String::new()
                } else {
                    format!("; {} items dropped by the summary", s.dropped.total())
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// The readable form of `runs show`.
pub fn render_table(s: &Summary) -> String {
    let mut o = format!(
        "run {}  state {}  source {}  labels {:?}  match {:?}\n",
        s.id, s.state, s.source, s.labels, s.matchers
    );
    o.push_str(&format!(
        "totals: {} spans, {} error spans ({:.2}%), {} log records ({} error), {} metric points, {} exceptions{}\n\n",
        s.totals.spans,
        s.totals.error_spans,
        s.totals.error_rate * 100.0,
        s.totals.log_records,
        s.totals.error_log_records,
        s.totals.metric_points,
        s.totals.exceptions,
        if s.complete { String::new() } else { format!("  [INCOMPLETE: {} items dropped]", s.dropped.total()) }
    ));
    if s.partial {
        o.push_str(&format!(
            "PARTIAL: the parts of replicas {} are missing (they did not answer, or no longer hold them)\n\n",
            s.missing_replicas.join(", ")
        ));
    }
    if !s.late_joins.is_empty() {
        o.push_str(&format!(
            "NOTE: {} replica(s) took up this run after it started (at ms {:?}): a scale-up, or a restart; what a replica that crashed had received before (since its last save, with a runs directory) is missing\n\n",
            s.late_joins.len(),
            s.late_joins
        ));
    }
    if !s.absorbed.is_empty() {
        o.push_str(&format!(
            "NOTE: {} replica(s) stopped and handed their parts of this run to the others: they are counted\n\n",
            s.absorbed.len()
        ));
    }
    o.push_str(&format!(
        "{:<24} {:>8} {:>8} {:>7} {:>8} {:>10}\n",
        "SERVICE", "SPANS", "ERRORS", "ERR%", "LOGS", "EXCEPTIONS"
    ));
    for (name, sv) in &s.services {
        o.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>6.2}% {:>8} {:>10}\n",
            name,
            sv.spans,
            sv.error_spans,
            sv.error_rate * 100.0,
            sv.log_records,
            sv.exceptions
        ));
    }
    o.push_str(&format!(
        "\n{:<24} {:<28} {:>7} {:>9} {:>9} {:>9}\n",
        "SERVICE", "OPERATION", "COUNT", "P50 ms", "P95 ms", "P99 ms"
    ));
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for (name, sv) in &s.services {
        for (op, st) in &sv.operations {
            o.push_str(&format!(
                "{:<24} {:<28} {:>7} {:>9} {:>9} {:>9}\n",
                name,
                op,
                st.count,
                f(st.p50_ms),
                f(st.p95_ms),
                f(st.p99_ms)
            ));
        }
    }
    for (title, groups) in [
        ("EXCEPTIONS", &s.exception_groups),
        ("ERROR LOGS", &s.error_log_groups),
    ] {
        if groups.is_empty() {
            o.push_str(&format!("\n{title}: none\n"));
            continue;
        }
        o.push_str(&format!(
            "\n{title}\n{:<18} {:<44} {:>6}  {:<32}  MESSAGE\n",
            "SERVICE", "TYPE", "COUNT", "EXAMPLE TRACE"
        ));
        for g in groups.iter() {
            o.push_str(&format!(
                "{:<18} {:<44} {:>6}  {:<32}  {}\n",
                g.service,
                if g.ty.is_empty() { "-" } else { &g.ty },
                g.count,
                g.example_trace_ids
                    .first()
                    .map(|s| s.as_str())
                    .unwrap_or("-"),
                g.message
            ));
        }
    }
    if s.other.exceptions
        + s.other.error_log_records
        + s.other.operation_spans
        + s.other.service_items
        > 0
    {
        o.push_str(&format!("\nother (over the caps): {:?}\n", s.other));
    }
    o
}

/// `runs show|list`: prints a summary or the list of runs. Exit 0, or 2 with the error on
/// stderr.
pub async fn runs(cmd: RunsCommand) -> ExitCode {
    match cmd {
        RunsCommand::Show { target, id, json } => match fetch_summary(&target, &id).await {
            Ok(s) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                } else {
                    print!("{}", render_table(&s));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        RunsCommand::List { target } => match list_all(&target).await {
            Ok(runs) => {
                println!(
                    "{:<32} {:<8} {:>14} {:>8} {:>8} {:>10}",
                    "ID", "STATE", "STARTED_MS", "SPANS", "LOGS", "EXCEPTIONS"
                );
                for r in runs {
                    println!(
                        "{:<32} {:<8} {:>14} {:>8} {:>8} {:>10}",
                        r.id,
                        format!("{:?}", r.state).to_lowercase(),
                        r.started_unix_ms,
                        r.spans,
                        r.log_records,
                        r.exceptions
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

/// Every run, following `next_page_token` (at most 1,000 pages).
pub(crate) async fn list_all(t: &Target) -> Result<Vec<RunInfo>, ClientError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/runs?limit={MAX_PAGE}");
        if let Some(tok) = &token {
            path.push_str(&format!("&page_token={tok}"));
        }
        let page: Page = call(t, reqwest::Method::GET, path, None).await?;
        if page.partial {
            eprintln!(
                "warning: replicas {} did not answer; their runs and counts are missing",
                page.missing_replicas.join(", ")
            );
        }
        out.extend(page.runs);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    Ok(out)
}

/// `gate`: judges a run against its baseline and thresholds and prints the report. Exit 0
/// pass, 1 warn, 2 block (also when a summary cannot be fetched).
pub async fn gate(a: GateArgs) -> ExitCode {
    let mut cfg = match &a.config {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {p}: {e}"))
            .and_then(|t| GateConfig::from_yaml(&t))
        {
            Ok(c) => c,
            Err(e) => return fail(ClientError::Usage(e)),
        },
        None => GateConfig::default(),
    };
    if let Some(n) = a.max_new_exception_types {
        cfg.block.max_new_exception_types = Some(n);
    }
    if let Some(r) = a.max_error_rate {
        cfg.block.max_error_rate = Some(r);
    }
    if let Some(p) = a.max_p95_regression {
        cfg.block.max_p95_regression_pct = Some(p);
    }
    cfg.warn_only |= a.warn_only;
    let run = match fetch_summary(&a.target, &a.run).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let baseline = match &a.baseline {
        Some(b) => match fetch_summary(&a.target, b).await {
            Ok(s) => Some(s),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let report = gate::evaluate(&run, baseline.as_ref(), &cfg);
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Md => print!("{}", gate::markdown(&report)),
        Format::Text => print!("{}", gate::text(&report)),
    }
    ExitCode::from(report.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::summary::RunSource;

    #[test]
    fn the_table_says_which_replicas_joined_late_and_which_handed_their_parts_over() {
        let mut s = Summary::new("r", RunSource::Api, 1);
        assert!(!render_table(&s).contains("NOTE:"));
        s.late_joins = vec![1_796_000_000_000];
        s.absorbed = vec!["0a".into(), "0b".into()];
        let t = render_table(&s);
        assert!(
            t.contains("NOTE: 1 replica(s) took up this run after it started"),
            "{t}"
        );
        assert!(
            t.contains("NOTE: 2 replica(s) stopped and handed their parts of this run"),
            "{t}"
        );
    }

    #[test]
    fn a_run_id_is_one_path_segment() {
        assert_eq!(path_id("build-1.2_x~"), "build-1.2_x~");
        assert_eq!(path_id("a b/c%ü"), "a%20b%2Fc%25%C3%BC");
    }
}

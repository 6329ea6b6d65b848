//! A protocol-faithful Loki double for the tests: an axum server on 127.0.0.1 that takes
//! `POST /loki/api/v1/push` the way Loki's distributor does (raw-snappy protobuf
//! `logproto.PushRequest`, decoded with the same `proto/` definitions), enforces the rules that
//! matter here (labels parse, valid and sorted names, at most 15, entries of a stream in time
//! order, line size) and answers like Loki: 204, or 400 with Loki's message text. Scripted
//! answers (429 with `Retry-After`, 5xx, ...) can be queued for fault tests. What it accepts
//! is recorded.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use prost::Message;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use watchtower::proto::logproto::PushRequest;

pub const MAX_LINE: usize = 256 * 1024;
pub const MAX_LABEL_NAMES: usize = 15;

/// One stored entry.
#[derive(Clone, Debug)]
pub struct Stored {
    pub labels: BTreeMap<String, String>,
    pub selector: String,
    pub ts: i64,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
    pub tenant: Option<String>,
}

#[derive(Default)]
pub struct DoubleState {
    pub stored: Vec<Stored>,
    pub script: VecDeque<(u16, Option<String>, String)>,
    pub requests: usize,
    pub newest: HashMap<String, i64>,
}

#[derive(Clone)]
pub struct LokiDouble {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<DoubleState>>,
}

impl LokiDouble {
    pub async fn start() -> LokiDouble {
        let state = Arc::new(Mutex::new(DoubleState::default()));
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LokiDouble { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    /// Queues an answer for the next request (status, Retry-After, body).
    pub fn script(&self, status: u16, retry_after: Option<&str>, body: &str) {
        self.state.lock().script.push_back((
            status,
            retry_after.map(String::from),
            body.to_string(),
        ));
    }

    pub fn stored(&self) -> Vec<Stored> {
        self.state.lock().stored.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().requests
    }
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

/// Parses a selector `{a="b", c="d"}` the way Loki's parser accepts it: names, `=`, Go-quoted
/// values, `, ` separators. Returns the pairs in written order.
pub fn parse_selector(s: &str) -> Result<Vec<(String, String)>, String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or("selector must be wrapped in {}")?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(format!("expected =\" after {name:?}"));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or("unterminated value")? {
                '"' => break,
                '\\' => match chars.next().ok_or("bad escape")? {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'x' => {
                        let h: String = chars.by_ref().take(2).collect();
                        let b = u8::from_str_radix(&h, 16).map_err(|_| "bad \\x")?;
                        value.push(b as char);
                    }
                    c => return Err(format!("unknown escape \\{c}")),
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(out)
}

fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn push(
    State(state): State<Arc<Mutex<DoubleState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock();
    st.requests += 1;
    if let Some((code, retry_after, text)) = st.script.pop_front() {
        let mut resp = (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            text,
        )
            .into_response();
        if let Some(ra) = retry_after {
            if let Ok(v) = ra.parse() {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        return resp;
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.is_empty() || ct.starts_with("application/x-protobuf")) {
        return bad(format!("unsupported content type {ct:?} for this double"));
    }
    match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("snappy") => {}
        Some(other) => return bad(format!("Content-Encoding {other:?} not supported")),
    }
    let raw = match snap::raw::Decoder::new().decompress_vec(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("snappy: {e}")),
    };
    let req = match PushRequest::decode(raw.as_slice()) {
        Ok(r) => r,
        Err(e) => return bad(format!("proto: {e}")),
    };
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    // Validate everything first (Loki validates in the distributor before writing).
    let mut accepted = Vec::new();
    let mut errors = Vec::new();
    for s in &req.streams {
        let pairs = match parse_selector(&s.labels) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!(
                    "error parsing labels '{}' with error: {e}",
                    s.labels
                ));
                continue;
            }
        };
        if pairs.is_empty() {
            errors.push("error at least one label pair is required per stream".to_string());
            continue;
        }
        if let Some((n, _)) = pairs.iter().find(|(n, _)| !valid_name(n)) {
            errors.push(format!(
                "error parsing labels '{}' with error: invalid label name {n:?}",
                s.labels
            ));
            continue;
        }
        if pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
            errors.push(format!(
                "error parsing labels '{}' with error: labels not sorted or duplicate label name",
                s.labels
            ));
            continue;
        }
        if pairs.len() > MAX_LABEL_NAMES {
            errors.push(format!(
                "entry for stream '{}' has {} label names; limit {}",
                s.labels,
                pairs.len(),
                MAX_LABEL_NAMES
            ));
            continue;
        }
        let mut newest = st.newest.get(&s.labels).copied().unwrap_or(i64::MIN);
        for e in &s.entries {
            let t = e.timestamp.unwrap_or_default();
            let ts = t.seconds * 1_000_000_000 + t.nanos as i64;
            if e.line.len() > MAX_LINE {
                errors.push(format!(
                    "Max entry size '{MAX_LINE}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes",
                    s.labels,
                    e.line.len()
                ));
                continue;
            }
            if ts < newest {
                errors.push(format!(
                    "entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {}",
                    s.labels
                ));
                continue;
            }
            newest = ts;
            accepted.push(Stored {
                labels: pairs.iter().cloned().collect(),
                selector: s.labels.clone(),
                ts,
                line: e.line.clone(),
                metadata: e
                    .structured_metadata
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect(),
                tenant: tenant.clone(),
            });
        }
        st.newest.insert(s.labels.clone(), newest);
    }
    let total = req.streams.iter().map(|s| s.entries.len()).sum::<usize>();
    st.stored.extend(accepted);
    if errors.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let n = errors.len();
        bad(format!(
            "{},\ntotal ignored: {n} out of {total}",
            errors.join(",\n")
        ))
    }
}

//! The filters shared by the tap stream, recent data, `wait` and the MCP tools, parsed from
//! query parameters (`component`, `signal`, `service`, `run`, `match`, `name`, `status`,
//! `trace_id`, `since`, `limit`).

use super::items::Item;
use crate::pipeline::payload::Signal;
use serde::Deserialize;
use thiserror::Error;

/// A filter parameter that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum FilterError {
    #[error("signal must be traces, metrics or logs (got {0:?})")]
    Signal(String),
    #[error("component must be receiver/<id>, exporter/<id> or a component id (got {0:?})")]
    Component(String),
    #[error("since must be a duration such as 30s or 5m, or Unix time in nanoseconds (got {0:?})")]
    Since(String),
    #[error("trace_id must be 32 hex digits (got {0:?})")]
    TraceId(String),
}

/// Query parameters as sent (all optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterParams {
    pub component: Option<String>,
    pub signal: Option<String>,
    pub service: Option<String>,
    pub run: Option<String>,
    #[serde(rename = "match")]
    pub text: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub trace_id: Option<String>,
    pub since: Option<String>,
    pub limit: Option<usize>,
}

/// Which component a tap listens at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// Every receiver (the default: each item once, as it entered).
    Receivers,
    Receiver(String),
    Exporter(String),
}

impl Point {
    /// True when a request seen at `kind`/`id` is wanted.
    pub fn wants(&self, kind: Kind, id: &str) -> bool {
        match self {
            Point::Receivers => kind == Kind::Receiver,
            Point::Receiver(r) => kind == Kind::Receiver && r == id,
            Point::Exporter(e) => kind == Kind::Exporter && e == id,
        }
    }
}

/// Where a tap point sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Receiver,
    Exporter,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Exporter => "exporter",
        }
    }
}

/// A parsed filter. Empty fields match everything.
#[derive(Debug, Clone)]
pub struct Filter {
    pub point: Point,
    pub signal: Option<Signal>,
    pub service: Option<String>,
    pub run: Option<String>,
    /// Substring of the span name, metric name or log body (case-insensitive).
    pub text: Option<String>,
    /// Exact span / metric name or log body.
    pub name: Option<String>,
    /// Span status (`error`, `ok`, `unset`) or log severity text, case-insensitive.
    pub status: Option<String>,
    pub trace_id: Option<String>,
    /// Items observed at or after this Unix time (ns).
    pub since_unix_nano: Option<u64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Filter {
    /// Parses parameters; `known` checks a component id (receiver or exporter of the config)
    /// and says which kind it is.
    pub fn parse(
        p: &FilterParams,
        known: &dyn Fn(&str) -> Option<Kind>,
        now_unix_nano: u64,
    ) -> Result<Filter, FilterError> {
        let signal = match nonempty(&p.signal) {
            None => None,
            Some(s) => Some(Signal::parse(&s).ok_or(FilterError::Signal(s))?),
        };
        let point = match nonempty(&p.component) {
            None => Point::Receivers,
            Some(c) => {
                let (kind, id) = match c.split_once(':') {
                    Some(("receiver", id)) => (Some(Kind::Receiver), id.to_string()),
                    Some(("exporter", id)) => (Some(Kind::Exporter), id.to_string()),
                    _ => match c.strip_prefix("receiver/") {
                        Some(id) => (Some(Kind::Receiver), id.to_string()),
                        None => match c.strip_prefix("exporter/") {
                            Some(id) => (Some(Kind::Exporter), id.to_string()),
                            None => (None, c.clone()),
                        },
                    },
                };
                match (kind, known(&id)) {
                    (Some(Kind::Receiver), Some(_)) | (None, Some(Kind::Receiver)) => {
                        Point::Receiver(id)
                    }
                    (Some(Kind::Exporter), Some(_)) | (None, Some(Kind::Exporter)) => {
                        Point::Exporter(id)
                    }
                    _ => return Err(FilterError::Component(c)),
                }
            }
        };
        let since_unix_nano = match nonempty(&p.since) {
            None => None,
            Some(s) => Some(match s.parse::<u64>() {
                Ok(ns) => ns,
                Err(_) => {
                    let d = crate::config::common::parse_duration(&s)
                        .map_err(|_| FilterError::Since(s.clone()))?;
                    now_unix_nano.saturating_sub(d.as_nanos() as u64)
                }
            }),
        };
        let trace_id = match nonempty(&p.trace_id) {
            None => None,
            Some(t) => {
                let t = t.to_ascii_lowercase();
                if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(FilterError::TraceId(t));
                }
                Some(t)
            }
        };
        Ok(Filter {
            point,
            signal,
            service: nonempty(&p.service),
            run: nonempty(&p.run),
            text: nonempty(&p.text).map(|t| t.to_lowercase()),
            name: nonempty(&p.name),
            status: nonempty(&p.status).map(|s| s.to_lowercase()),
            trace_id,
            since_unix_nano,
        })
    }

    /// True when one decoded item passes every item-level field.
    pub fn matches(&self, it: &Item) -> bool {
        self.signal.is_none_or(|s| s.as_str() == it.signal)
            && self.service.as_ref().is_none_or(|s| *s == it.service)
            && self.run.as_ref().is_none_or(|r| *r == it.run)
            && self.name.as_ref().is_none_or(|n| *n == it.name)
            && self
                .status
                .as_ref()
                .is_none_or(|s| *s == it.status.to_lowercase())
            && self.trace_id.as_ref().is_none_or(|t| *t == it.trace_id)
            && self
                .since_unix_nano
                .is_none_or(|t| it.observed_time_unix_nano >= t)
            && self
                .text
                .as_ref()
                .is_none_or(|t| it.name.to_lowercase().contains(t.as_str()))
    }
}

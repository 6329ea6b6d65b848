//! Metric and unit names: OTLP name + unit + kind -> a Prometheus metric name, following
//! Prometheus' `otlptranslator` (UnderscoreEscapingWithSuffixes, or WithoutSuffixes when
//! `add_metric_suffixes: false`). Kept apart because these rules decide whether dashboards
//! written against the Collector keep working, and are tested case by case.

use std::fmt;

/// What the name rules need to know about a metric's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// Cumulative monotonic sum: gets `_total`.
    Counter,
    /// Gauge or non-monotonic sum: gets `_ratio` when the unit is exactly `1`.
    Gauge,
    /// Histograms, summaries: unit suffix only.
    Other,
}

/// A metric (or label) name that sanitizes to nothing usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName(pub String);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name {:?} has no valid Prometheus form", self.0)
    }
}

impl std::error::Error for InvalidName {}

fn is_metric_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Main unit (`s`, `By`, ...) -> Prometheus word; unknown units pass through.
fn main_unit(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The unit after `/` -> Prometheus word (`s` -> `second`).
fn per_unit(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Splits a unit into (main suffix, per suffix) before cleaning: `By/s` -> (`bytes`,
/// `per_second`). Parts with `{...}` annotations are dropped.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().map(str::trim).unwrap_or("");
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        main_unit(main).to_string()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => {
            let w = per_unit(p);
            if w.is_empty() {
                String::new()
            } else {
                format!("per_{w}")
            }
        }
        _ => String::new(),
    };
    (main, per)
}

/// Invalid characters -> `_`, runs of `_` collapsed, leading `_` removed.
fn clean_unit(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        let c = if is_metric_token_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The `UNIT` metadata value: `By/s` -> `bytes_per_second`, `1` -> ``.
pub fn unit_name(unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_unit(&main), clean_unit(&per));
    let u = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    u.trim_matches('_').to_string()
}

/// Sanitizes a configured namespace the same way metric names are tokenized.
pub fn clean_namespace(ns: &str) -> String {
    ns.split(|c: char| !(is_metric_token_char(c) || c == '_'))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Builds the Prometheus metric name. `namespace` must already be clean
/// ([`clean_namespace`]). Fails when nothing but underscores would be left.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: NameKind,
    namespace: &str,
    with_suffixes: bool,
) -> Result<String, InvalidName> {
    let out = if with_suffixes {
        with_suffix_name(name, unit, kind, namespace)
    } else {
        plain_name(name, namespace)
    };
    if out.is_empty() || (out != name && out.bytes().all(|b| b == b'_')) {
        return Err(InvalidName(name.to_string()));
    }
    Ok(out)
}

fn with_suffix_name(name: &str, unit: &str, kind: NameKind, namespace: &str) -> String {
    let mut tokens: Vec<&str> = name
        .split(|c: char| !is_metric_token_char(c))
        .filter(|t| !t.is_empty())
        .collect();
    let (main, per) = unit_suffixes(unit);
    let mut main = clean_unit(&main);
    let mut per = clean_unit(&per);
    if tokens.contains(&main.as_str()) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        while per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per.as_str()) {
            per.clear();
        }
    }
    if !per.is_empty() {
        while main.ends_with('_') {
            main.pop();
        }
    }
    if !main.is_empty() {
        tokens.push(&main);
    }
    if !per.is_empty() {
        tokens.push(&per);
    }
    if kind == NameKind::Counter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    if unit == "1" && kind == NameKind::Gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }
    if !namespace.is_empty() {
        tokens.insert(0, namespace);
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

fn plain_name(name: &str, namespace: &str) -> String {
    let joined = name
        .split(|c: char| !(is_metric_token_char(c) || c == '_'))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if !namespace.is_empty() {
        return format!("{namespace}_{joined}");
    }
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// Label name rules (Prometheus defaults): every character outside `[A-Za-z0-9_]` -> `_`;
/// a leading digit gets `key_`, a single leading `_` gets `key`; `__reserved__` names are
/// kept. Fails on empty names and names of only underscores.
pub fn label_name(key: &str) -> Result<String, InvalidName> {
    if key.is_empty() {
        return Err(InvalidName(String::new()));
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out != key && out.bytes().all(|b| b == b'_') {
        return Err(InvalidName(key.to_string()));
    }
    Ok(out)
}

/// Whether `name` is a valid legacy label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Formats `le` / `quantile` values like Go's `strconv.FormatFloat(f, 'f', -1, 64)`:
/// shortest round-trip, no exponent, `+Inf` / `-Inf` / `NaN`.
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, v);
    s
}

/// [`format_float`] into an existing buffer (no allocation when it has room).
pub fn write_float(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

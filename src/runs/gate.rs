//! The CD quality gate: compares a run's summary with a baseline run's (or with nothing) and
//! decides pass (exit 0), warn (1) or block (2). Pure functions over two summaries, so the
//! rules are unit-testable and an analysis tool can reproduce them from the JSON alone.
//! Thresholds come from flags or a `gate.yaml` in the repository:
//! ```yaml
//! block: { max_new_exception_types: 0, max_error_rate: 0.2, max_p95_regression_pct: 100 }
//! warn:  { max_error_rate: 0.05, max_p95_regression_pct: 25 }
//! min_operation_count: 20   # operations with fewer spans are not compared for p95
//! warn_only: false          # true: never block, only warn
//! ```

use crate::runs::summary::{Group, RunState, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_new_exception_types: Option<u64>,
    pub max_error_rate: Option<f64>,
    pub max_p95_regression_pct: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    pub block: Limits,
    pub warn: Limits,
    pub min_operation_count: u64,
    pub warn_only: bool,
}

impl Default for GateConfig {
    /// Blocks on any new exception type; nothing else unless configured.
    fn default() -> Self {
        GateConfig {
            block: Limits {
                max_new_exception_types: Some(0),
                ..Default::default()
            },
            warn: Limits::default(),
            min_operation_count: 20,
            warn_only: false,
        }
    }
}

impl GateConfig {
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        serde_yaml::from_str(text).map_err(|e| format!("gate config: {e}"))
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Warn,
    Block,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Warn => 1,
            Verdict::Block => 2,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub value: f64,
    pub warn_threshold: Option<f64>,
    pub block_threshold: Option<f64>,
    pub status: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewGroup {
    pub service: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub fingerprint: String,
    pub message: String,
    pub count: u64,
    pub example_trace_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Regression {
    pub service: String,
    pub operation: String,
    pub baseline_p95_ms: f64,
    pub run_p95_ms: f64,
    pub change_pct: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub verdict: Verdict,
    pub exit_code: u8,
    pub run: String,
    pub baseline: Option<String>,
    pub checks: Vec<Check>,
    /// exception types (by service) the baseline does not have
    pub new_exception_types: Vec<String>,
    /// every exception group of a new type, with an example trace id
    pub new_exception_groups: Vec<NewGroup>,
    /// groups of known types whose fingerprint (message shape, frames) is new
    pub new_fingerprints: Vec<NewGroup>,
    pub p95_regressions: Vec<Regression>,
    pub notes: Vec<String>,
}

fn new_group(g: &Group) -> NewGroup {
    NewGroup {
        service: g.service.clone(),
        ty: g.ty.clone(),
        fingerprint: g.fingerprint.clone(),
        message: g.message.clone(),
        count: g.count,
        example_trace_id: g.example_trace_ids.first().cloned(),
    }
}

fn check(
    name: &str,
    value: f64,
    warn: Option<f64>,
    block: Option<f64>,
    warn_only: bool,
    detail: String,
) -> Check {
    let mut status = Verdict::Pass;
    if warn.is_some_and(|t| value > t) {
        status = Verdict::Warn;
    }
    if block.is_some_and(|t| value > t) {
        status = if warn_only {
            Verdict::Warn
        } else {
            Verdict::Block
        };
    }
    Check {
        name: name.into(),
        value,
        warn_threshold: warn,
        block_threshold: block,
        status,
        detail,
    }
}

/// Compares `run` with `baseline` under `cfg`.
pub fn evaluate(run: &Summary, baseline: Option<&Summary>, cfg: &GateConfig) -> Report {
    let mut notes = Vec::new();
    if run.state == RunState::Open {
        notes.push(format!(
            "run {} is still open: the summary may grow",
            run.id
        ));
    }
    if !run.complete {
        notes.push(format!(
            "the run summary is incomplete: the runsummary exporter dropped {} items while the run was open",
            run.dropped.total()
        ));
    }
    for (what, s) in std::iter::once(("run", run)).chain(baseline.map(|b| ("baseline", b))) {
        if s.partial {
            notes.push(format!(
                "the {what} summary is partial: the parts of replicas {} are missing (they did not answer, or no longer hold them)",
                s.missing_replicas.join(", ")
            ));
        }
        if !s.late_joins.is_empty() {
            notes.push(format!(
                "{} replica(s) took up the {what} after it started (a scale-up, or a restart: what a replica that crashed had received before, since its last save with a runs directory, is missing; a replica that stopped cleanly handed its part to the others)",
                s.late_joins.len()
            ));
        }
    }
    let base_types: BTreeSet<(String, String)> =
        baseline.map(|b| b.exception_types()).unwrap_or_default();
    let base_fps: BTreeSet<&str> = baseline
        .map(|b| {
            b.exception_groups
                .iter()
                .map(|g| g.fingerprint.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut new_types: BTreeSet<String> = BTreeSet::new();
    let mut new_groups = Vec::new();
    let mut new_fps = Vec::new();
    for g in &run.exception_groups {
        if !base_types.contains(&(g.service.clone(), g.ty.clone())) {
            new_types.insert(format!("{}: {}", g.service, g.ty));
            new_groups.push(new_group(g));
        } else if !base_fps.contains(g.fingerprint.as_str()) {
            new_fps.push(new_group(g));
        }
    }
    new_groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let mut checks = Vec::new();
    checks.push(check(
        "new_exception_types",
        new_types.len() as f64,
        cfg.warn.max_new_exception_types.map(|v| v as f64),
        cfg.block.max_new_exception_types.map(|v| v as f64),
        cfg.warn_only,
        if new_types.is_empty() && baseline.is_none() {
            "no exception in the run (no baseline: any would be new)".into()
        } else if new_types.is_empty() {
            "no exception type the baseline does not have".into()
        } else {
            format!(
                "new: {}",
                new_types.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        },
    ));
    checks.push(check(
        "error_rate",
        run.totals.error_rate,
        cfg.warn.max_error_rate,
        cfg.block.max_error_rate,
        cfg.warn_only,
        format!(
            "{} of {} spans have status ERROR{}",
            run.totals.error_spans,
            run.totals.spans,
            baseline
                .map(|b| format!(" (baseline {:.4})", b.totals.error_rate))
                .unwrap_or_default()
        ),
    ));
    let mut regressions = Vec::new();
    if let Some(b) = baseline {
        for (svc, s) in &run.services {
            let Some(bs) = b.services.get(svc) else {
                continue;
            };
            for (name, op) in &s.operations {
                let Some(bop) = bs.operations.get(name) else {
                    continue;
                };
                if op.count < cfg.min_operation_count || bop.count < cfg.min_operation_count {
                    continue;
                }
                let (Some(r), Some(bp)) = (op.sketch.quantile(0.95), bop.sketch.quantile(0.95))
                else {
                    continue;
                };
                if bp <= 0.0 {
                    continue;
                }
                regressions.push(Regression {
                    service: svc.clone(),
                    operation: name.clone(),
                    baseline_p95_ms: bp,
                    run_p95_ms: r,
                    change_pct: (r - bp) / bp * 100.0,
                });
            }
        }
        regressions.sort_by(|a, b| b.change_pct.total_cmp(&a.change_pct));
        let worst = regressions.first();
        checks.push(check(
            "p95_regression_pct",
            worst.map(|r| r.change_pct).unwrap_or(0.0).max(0.0),
            cfg.warn.max_p95_regression_pct,
            cfg.block.max_p95_regression_pct,
            cfg.warn_only,
            match worst {
                Some(r) => format!(
                    "worst: {} {} p95 {:.1} ms -> {:.1} ms",
                    r.service, r.operation, r.baseline_p95_ms, r.run_p95_ms
                ),
                None => "no operation with enough spans in both runs".into(),
            },
        ));
        regressions.retain(|r| r.change_pct > 0.0);
        regressions.truncate(10);
    } else {
        notes.push("no baseline: every exception type counts as new; p95 is not compared".into());
    }
    let mut verdict = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Verdict::Pass);
    // a gate that cannot see everything never passes silently
    let partial = run.partial || baseline.is_some_and(|b| b.partial);
    if verdict == Verdict::Pass && (!run.complete || partial) {
        verdict = Verdict::Warn;
    }
    Report {
        verdict,
        exit_code: verdict.exit_code(),
        run: run.id.clone(),
        baseline: baseline.map(|b| b.id.clone()),
        checks,
        new_exception_types: new_types.into_iter().collect(),
        new_exception_groups: new_groups,
        new_fingerprints: new_fps,
        p95_regressions: regressions,
        notes,
    }
}

fn fmt_threshold(t: Option<f64>) -> String {
    t.map(|v| format!("{v}")).unwrap_or_else(|| "-".into())
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Warn => "WARN",
        Verdict::Block => "BLOCK",
    }
}

/// Markdown, e.g. for a PR comment.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## Watchtower gate: **{}** — run `{}`{}\n\n",
        verdict_word(r.verdict),
        r.run,
        r.baseline
            .as_ref()
            .map(|b| format!(" vs baseline `{b}`"))
            .unwrap_or_default()
    );
    s.push_str("| check | value | warn above | block above | result |\n|---|---|---|---|---|\n");
    for c in &r.checks {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.name,
            shown(c),
            fmt_threshold(c.warn_threshold),
            fmt_threshold(c.block_threshold),
            verdict_word(c.status)
        ));
    }
    if !r.new_exception_groups.is_empty() {
        s.push_str("\n### New exception types\n\n| service | type | count | message | example trace |\n|---|---|---|---|---|\n");
        for g in &r.new_exception_groups {
            s.push_str(&format!(
                "| {} | `{}` | {} | {} | `{}` |\n",
                g.service,
                g.ty,
                g.count,
                g.message.replace('|', "\\|"),
                g.example_trace_id.as_deref().unwrap_or("-")
            ));
        }
    }
    if !r.p95_regressions.is_empty() {
        s.push_str("\n### Slower operations (p95)\n\n| service | operation | baseline ms | run ms | change |\n|---|---|---|---|---|\n");
        for g in &r.p95_regressions {
            s.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:+.0}% |\n",
                g.service, g.operation, g.baseline_p95_ms, g.run_p95_ms, g.change_pct
            ));
        }
    }
    for n in &r.notes {
        s.push_str(&format!("\n> {n}\n"));
    }
    s
}

/// A check's value as the reports print it: a rate to 4 decimals, percentages to 1.
fn shown(c: &Check) -> String {
    if c.name == "error_rate" {
        format!("{:.4}", c.value)
    } else {
        format!("{:.1}", c.value)
    }
}

/// Plain text for a terminal.
pub fn text(r: &Report) -> String {
    let mut s = format!(
        "gate {}: run {}{}\n",
        verdict_word(r.verdict),
        r.run,
        r.baseline
            .as_ref()
            .map(|b| format!(" vs {b}"))
            .unwrap_or_default()
    );
    for c in &r.checks {
        s.push_str(&format!(
            "  [{}] {} = {}: {}\n",
            verdict_word(c.status),
            c.name,
            shown(c),
            c.detail
        ));
    }
    for g in &r.new_exception_groups {
        s.push_str(&format!(
            "  new exception {} in {} ({}x, e.g. trace {}): {}\n",
            g.ty,
            g.service,
            g.count,
            g.example_trace_id.as_deref().unwrap_or("-"),
            g.message
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::summary::RunSource;

    fn with_groups(id: &str, types: &[&str]) -> Summary {
        let mut s = Summary::new(id, RunSource::Api, 0);
        s.state = RunState::Ended;
        for t in types {
            s.exception_groups.push(Group {
                service: "svc".into(),
                ty: (*t).into(),
                fingerprint: format!("fp-{t}"),
                count: 2,
                example_trace_ids: vec!["abc".into()],
                ..Default::default()
            });
        }
        s.finalize();
        s
    }

    #[test]
    fn new_type_blocks_same_passes_warn_only_warns() {
        let a = with_groups("a", &["E1"]);
        let b = with_groups("b", &["E1", "E2"]);
        let cfg = GateConfig::default();
        let r = evaluate(&b, Some(&a), &cfg);
        assert_eq!(r.verdict, Verdict::Block);
        assert_eq!(r.new_exception_types, vec!["svc: E2".to_string()]);
        assert_eq!(
            r.new_exception_groups[0].example_trace_id.as_deref(),
            Some("abc")
        );
        assert_eq!(evaluate(&a, Some(&a), &cfg).verdict, Verdict::Pass);
        let wo = GateConfig {
            warn_only: true,
            ..GateConfig::default()
        };
        assert_eq!(evaluate(&b, Some(&a), &wo).exit_code, 1);
        assert!(markdown(&r).contains("`E2`"));
    }

    #[test]
    fn without_a_baseline_the_check_says_why_it_passes() {
        let quiet = with_groups("q", &[]);
        let r = evaluate(&quiet, None, &GateConfig::default());
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!(
            r.checks[0].detail,
            "no exception in the run (no baseline: any would be new)"
        );
        let noisy = with_groups("n", &["E1"]);
        assert_eq!(
            evaluate(&noisy, None, &GateConfig::default()).verdict,
            Verdict::Block
        );
    }

    #[test]
    fn late_joins_are_a_note_not_a_verdict() {
        let a = with_groups("a", &["E1"]);
        let mut late = a.clone();
        late.late_joins = vec![1_796_000_000_000];
        let r = evaluate(&late, Some(&a), &GateConfig::default());
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("took up the run after it started")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn partial_summary_warns_and_names_missing_replicas() {
        let a = with_groups("a", &["E1"]);
        let mut p = a.clone();
        p.partial = true;
        p.missing_replicas = vec!["10.0.0.7:13133".into()];
        let r = evaluate(&p, Some(&a), &GateConfig::default());
        assert_eq!(r.verdict, Verdict::Warn, "a partial view never passes");
        assert!(
            r.notes.iter().any(|n| n.contains("10.0.0.7:13133")),
            "{:?}",
            r.notes
        );
        assert_eq!(
            evaluate(&a, Some(&p), &GateConfig::default()).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn gate_yaml_parses() {
        let c = GateConfig::from_yaml(
            "block: { max_error_rate: 0.2 }\nwarn: { max_p95_regression_pct: 25 }\n",
        );
        let c = c.unwrap_or_default();
        assert_eq!(c.block.max_error_rate, Some(0.2));
        assert_eq!(c.block.max_new_exception_types, None);
        assert!(GateConfig::from_yaml("blok: {}").is_err());
    }
}

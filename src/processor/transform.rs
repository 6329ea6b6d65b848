//! `transform` processor: runs OTTL statements on traces, metrics and logs, with the
//! Collector's transformprocessor config: `trace_statements`, `metric_statements` and
//! `log_statements` hold either statements (flat form; the context is inferred from the path
//! prefixes, `span.`, `resource.`, ...) or groups with `context`, `conditions`, `statements`
//! and `error_mode`.

use crate::processor::filter::StatementError;
use crate::processor::ottl::{
    self, CBool, CStatement, CompileError, Context, ErrorMode, EvalError, ast, grammar, walk,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;

/// A statement group (context-grouped form).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// `resource`, `scope`, `span`, `spanevent`, `metric`, `datapoint` or `log`; inferred
    /// from the statements' path prefixes when absent
    #[serde(default)]
    pub context: Option<String>,
    /// statements run on an item only when one of these holds (none: always); a condition
    /// given as a boolean (`true`, an environment value) is its text
    #[serde(default, deserialize_with = "crate::config::common::text_list")]
    pub conditions: Vec<String>,
    #[serde(deserialize_with = "crate::config::common::text_list")]
    pub statements: Vec<String>,
    /// overrides the processor's `error_mode`
    #[serde(default)]
    pub error_mode: Option<ErrorMode>,
}

/// One entry of a `*_statements` list.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Statement(String),
    Group(Group),
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Entry::Statement(s)),
            v @ serde_yaml::Value::Mapping(_) => serde_yaml::from_value::<Group>(v)
                .map(Entry::Group)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "each entry must be a statement or a group with `statements`",
            )),
        }
    }
}

/// `transform` processor config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub error_mode: ErrorMode,
    #[serde(default)]
    pub trace_statements: Vec<Entry>,
    #[serde(default)]
    pub metric_statements: Vec<Entry>,
    #[serde(default)]
    pub log_statements: Vec<Entry>,
}

/// A compiled group.
#[derive(Clone, Debug)]
pub struct CGroup {
    pub ctx: Context,
    pub mode: ErrorMode,
    pub conditions: Vec<CBool>,
    pub statements: Vec<(String, CStatement)>,
}

/// A compiled `transform` processor.
#[derive(Clone, Debug, Default)]
pub struct Transform {
    pub traces: Vec<CGroup>,
    pub metrics: Vec<CGroup>,
    pub logs: Vec<CGroup>,
}

const TRACE_CONTEXTS: &[Context] = &[
    Context::Resource,
    Context::Scope,
    Context::Span,
    Context::SpanEvent,
];
const METRIC_CONTEXTS: &[Context] = &[
    Context::Resource,
    Context::Scope,
    Context::Metric,
    Context::DataPoint,
];
const LOG_CONTEXTS: &[Context] = &[Context::Resource, Context::Scope, Context::Log];

fn collect_prefixes(e: &ast::Expr, out: &mut Vec<String>) {
    match e {
        ast::Expr::Path(p) => out.push(p.fields[0].clone()),
        ast::Expr::Converter(inv, _) => inv.args.iter().for_each(|a| collect_prefixes(a, out)),
        ast::Expr::List(l) => l.iter().for_each(|a| collect_prefixes(a, out)),
        ast::Expr::Map(m) => m.iter().for_each(|(_, a)| collect_prefixes(a, out)),
        _ => {}
    }
}

fn collect_bool(b: &ast::BoolExpr, out: &mut Vec<String>) {
    match b {
        ast::BoolExpr::Or(v) | ast::BoolExpr::And(v) => v.iter().for_each(|b| collect_bool(b, out)),
        ast::BoolExpr::Not(b) => collect_bool(b, out),
        ast::BoolExpr::Compare(l, _, r) => {
            collect_prefixes(l, out);
            collect_prefixes(r, out);
        }
        ast::BoolExpr::Value(e) => collect_prefixes(e, out),
    }
}

/// Infers a statement's context as the Collector does: the most specific context named by a
/// path prefix.
fn infer(allowed: &[Context], texts: &[&str]) -> Result<Context, (usize, CompileError)> {
    let mut best: Option<usize> = None;
    for (i, t) in texts.iter().enumerate() {
        let ast =
            grammar::parse_statement(t).map_err(|e| (i, CompileError::new(e.offset, e.message)))?;
        let mut prefixes = Vec::new();
        ast.editor
            .args
            .iter()
            .for_each(|a| collect_prefixes(a, &mut prefixes));
        if let Some(c) = &ast.condition {
            collect_bool(c, &mut prefixes);
        }
        for p in prefixes {
            if let Some(rank) =
                Context::parse(&p).and_then(|c| allowed.iter().position(|a| *a == c))
            {
                best = Some(best.map_or(rank, |b| b.max(rank)));
            }
        }
    }
    best.map(|r| allowed[r]).ok_or_else(|| {
        (
            0,
            CompileError::new(
                0,
                format!(
                    "cannot infer the context: prefix paths with one of {} or use the grouped form with `context:`",
                    allowed.iter().map(|c| format!("{}.", c.name())).collect::<Vec<_>>().join(", ")
                ),
            ),
        )
    })
}

fn compile_list(
    key: &str,
    allowed: &[Context],
    entries: &[Entry],
    default_mode: ErrorMode,
    errors: &mut Vec<StatementError>,
) -> Vec<CGroup> {
    let mut groups = Vec::new();
    for entry in entries {
        let (ctx_name, conditions, statements, mode): (Option<&str>, &[String], Vec<&str>, _) =
            match entry {
                Entry::Statement(s) => (None, &[], vec![s.as_str()], default_mode),
                Entry::Group(g) => (
                    g.context.as_deref(),
                    g.conditions.as_slice(),
                    g.statements.iter().map(String::as_str).collect(),
                    g.error_mode.unwrap_or(default_mode),
                ),
            };
        let ctx = match ctx_name {
            Some(n) => match Context::parse(n).filter(|c| allowed.contains(c)) {
                Some(c) => c,
                None => {
                    errors.push(StatementError {
                        key: format!("{key}.context"),
                        text: n.to_string(),
                        error: CompileError::new(
                            0,
                            format!(
                                "unsupported context; supported here: {}",
                                allowed
                                    .iter()
                                    .map(|c| c.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ),
                    });
                    continue;
                }
            },
            None => match infer(allowed, &statements) {
                Ok(c) => c,
                Err((i, error)) => {
                    errors.push(StatementError {
                        key: key.into(),
                        text: statements
                            .get(i)
                            .map_or_else(String::new, |s| s.to_string()),
                        error,
                    });
                    continue;
                }
            },
        };
        let conds = crate::processor::filter::compile_conditions(key, ctx, conditions, errors);
        let mut compiled = Vec::new();
        for s in statements {
            match ottl::statement(ctx, s) {
                Ok(c) => compiled.push((s.to_string(), c)),
                Err(error) => errors.push(StatementError {
                    key: key.into(),
                    text: s.to_string(),
                    error,
                }),
            }
        }
        groups.push(CGroup {
            ctx,
            mode,
            conditions: conds,
            statements: compiled,
        });
    }
    groups
}

impl CGroup {
    fn run(&self, tx: &mut ottl::Tx<'_>) -> Result<(), EvalError> {
        if !self.conditions.is_empty() {
            let mut any = false;
            for c in &self.conditions {
                match c.eval(tx) {
                    Ok(true) => {
                        any = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => ottl::handle(self.mode, "transform condition", e)?,
                }
            }
            if !any {
                return Ok(());
            }
        }
        for (text, st) in &self.statements {
            if let Err(e) = st.execute(tx) {
                ottl::handle(self.mode, &format!("statement {text:?}"), e)?;
            }
        }
        Ok(())
    }
}

impl Transform {
    /// Compiles a config; every statement that does not compile is reported.
    pub fn compile(cfg: &Config) -> Result<Transform, Vec<StatementError>> {
        let mut errors = Vec::new();
        let m = cfg.error_mode;
        let t = Transform {
            traces: compile_list(
                "trace_statements",
                TRACE_CONTEXTS,
                &cfg.trace_statements,
                m,
                &mut errors,
            ),
            metrics: compile_list(
                "metric_statements",
                METRIC_CONTEXTS,
                &cfg.metric_statements,
                m,
                &mut errors,
            ),
            logs: compile_list(
                "log_statements",
                LOG_CONTEXTS,
                &cfg.log_statements,
                m,
                &mut errors,
            ),
        };
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    /// Runs the trace statements.
    pub fn traces(&self, req: &mut ExportTraceServiceRequest) -> Result<(), EvalError> {
        for g in &self.traces {
            walk::traces(req, g.ctx, &mut |tx| g.run(tx))?;
        }
        Ok(())
    }

    /// Runs the metric statements.
    pub fn metrics(&self, req: &mut ExportMetricsServiceRequest) -> Result<(), EvalError> {
        for g in &self.metrics {
            walk::metrics(req, g.ctx, &mut |tx| g.run(tx))?;
        }
        Ok(())
    }

    /// Runs the log statements.
    pub fn logs(&self, req: &mut ExportLogsServiceRequest) -> Result<(), EvalError> {
        for g in &self.logs {
            walk::logs(req, g.ctx, &mut |tx| g.run(tx))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn transform(yaml: &str) -> Result<Transform, Vec<StatementError>> {
        Transform::compile(&serde_yaml::from_str(yaml).unwrap())
    }

    fn logs() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource::default()),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            severity_text: "debug".into(),
                            severity_number: 5,
                            ..Default::default()
                        },
                        LogRecord {
                            severity_text: "error".into(),
                            severity_number: 17,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn flat_statements_infer_their_context() {
        let t = transform(
            "log_statements:\n  - 'set(log.attributes[\"svc\"], resource.attributes[\"service.name\"])'\n  - 'set(resource.attributes[\"service.name\"], \"shop\")'\n",
        )
        .unwrap();
        assert_eq!(t.logs[0].ctx, Context::Log);
        assert_eq!(t.logs[1].ctx, Context::Resource);
        let mut req = logs();
        t.logs(&mut req).unwrap();
        // the first statement ran before the resource had the attribute: nil is not set
        let rl = &req.resource_logs[0];
        assert!(rl.scope_logs[0].log_records[0].attributes.is_empty());
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
    }

    #[test]
    fn groups_with_conditions() {
        let t = transform(
            "log_statements:\n  - context: log\n    conditions: ['severity_number >= SEVERITY_NUMBER_ERROR']\n    statements: ['set(severity_text, \"ERROR\")', 'set(attributes[\"alert\"], true)']\n",
        )
        .unwrap();
        let mut req = logs();
        t.logs(&mut req).unwrap();
        let recs = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(recs[0].severity_text, "debug");
        assert!(recs[0].attributes.is_empty());
        assert_eq!(recs[1].severity_text, "ERROR");
        assert_eq!(recs[1].attributes[0].key, "alert");
    }

    #[test]
    fn a_boolean_condition_is_its_text() {
        // `conditions: [${env:ONLY_ERRORS}]` with `true` (a typed environment value)
        let t = transform(
            "log_statements:\n  - context: log\n    conditions: [true]\n    statements: ['set(severity_text, \"SEEN\")']\n",
        )
        .unwrap();
        let mut req = logs();
        t.logs(&mut req).unwrap();
        let recs = &req.resource_logs[0].scope_logs[0].log_records;
        assert!(recs.iter().all(|r| r.severity_text == "SEEN"), "{recs:?}");
    }

    #[test]
    fn bad_groups_name_the_problem() {
        let e = serde_yaml::from_str::<Config>(
            "log_statements:\n  - context: log\n    statement: ['x']\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `statement`"), "{e}");
        let e = serde_yaml::from_str::<Config>("log_statements:\n  - 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a statement or a group"), "{e}");
    }

    #[test]
    fn errors() {
        let e = transform("log_statements:\n  - 'set(attributes[\"a\"], \"b\")'\n").unwrap_err();
        assert!(
            e[0].error.message.contains("cannot infer the context"),
            "{:?}",
            e
        );
        let e = transform(
            "trace_statements:\n  - context: log\n    statements: ['set(name, \"x\")']\n",
        )
        .unwrap_err();
        assert!(
            e[0].error.message.contains("unsupported context"),
            "{:?}",
            e
        );
        let e = transform("metric_statements:\n  - context: datapoint\n    statements: ['set(severity_text, \"x\")']\n")
            .unwrap_err();
        assert!(e[0].error.message.contains("severity_text"), "{:?}", e);
        // propagate (default) fails the request when a statement fails at run time
        let t = transform("log_statements:\n  - context: log\n    statements: ['set(attributes[\"x\"], ParseJSON(severity_text))']\n").unwrap();
        assert!(t.logs(&mut logs()).is_err());
        let t = transform("error_mode: silent\nlog_statements:\n  - context: log\n    statements: ['set(attributes[\"x\"], ParseJSON(severity_text))', 'set(severity_text, \"after\")']\n").unwrap();
        let mut req = logs();
        t.logs(&mut req).unwrap();
        assert_eq!(
            req.resource_logs[0].scope_logs[0].log_records[0].severity_text,
            "after"
        );
    }
}

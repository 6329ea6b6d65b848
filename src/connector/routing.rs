//! `routing` connector (the Collector's routingconnector): items of the pipeline that exports
//! to it go to the pipelines that receive from it, chosen by OTTL conditions. `table` entries
//! have a `condition` or a `statement` (`route() where <condition>`), an optional `context`
//! (`resource`, the default, or the signal's item context `span`, `metric`, `log`) and
//! `pipelines`; items no entry matches go to `default_pipelines`. With `match_once` (the
//! default) an item goes to the first matching entry only, otherwise to every matching one.

use crate::pipeline::payload::Signal;
use crate::processor::filter::StatementError;
use crate::processor::ottl::{self, CBool, CompileError, Context, ErrorMode, EvalError, Item, Tx};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use serde::Deserialize;

fn yes() -> bool {
    true
}

/// One `table` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub statement: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    pub pipelines: Vec<String>,
}

/// `routing` connector config.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub table: Vec<Route>,
    #[serde(default)]
    pub default_pipelines: Vec<String>,
    #[serde(default)]
    pub error_mode: ErrorMode,
    #[serde(default = "yes")]
    pub match_once: bool,
}

impl Config {
    /// Every pipeline the connector may feed.
    pub fn pipelines(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .table
            .iter()
            .flat_map(|r| r.pipelines.iter())
            .chain(self.default_pipelines.iter())
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The item context routes may use for a signal besides `resource`.
pub fn item_context(signal: Signal) -> Context {
    match signal {
        Signal::Traces => Context::Span,
        Signal::Metrics => Context::Metric,
        Signal::Logs => Context::Log,
    }
}

/// A compiled entry: condition, context, indexes of target pipelines.
#[derive(Clone, Debug)]
pub struct CRoute {
    pub ctx: Context,
    pub condition: CBool,
    pub targets: Vec<usize>,
}

/// A routing table compiled for one signal; targets are indexes into `targets` names.
#[derive(Clone, Debug)]
pub struct Table {
    pub targets: Vec<String>,
    pub routes: Vec<CRoute>,
    pub default: Vec<usize>,
    pub match_once: bool,
    pub mode: ErrorMode,
}

fn route_condition(r: &Route, ctx: Context) -> Result<(String, CBool), CompileError> {
    match (&r.statement, &r.condition) {
        (Some(s), None) => {
            let ast = ottl::grammar::parse_statement(s)
                .map_err(|e| CompileError::new(e.offset, e.message))?;
            if ast.editor.name != "route" || !ast.editor.args.is_empty() {
                return Err(CompileError::new(
                    ast.editor.pos,
                    "a routing statement must be `route() where <condition>`",
                ));
            }
            let Some(c) = &ast.condition else {
                return Err(CompileError::new(s.len(), "route() needs a where clause"));
            };
            Ok((s.clone(), ottl::eval::Compiler { ctx }.condition(c)?))
        }
        (None, Some(c)) => Ok((c.clone(), ottl::condition(ctx, c)?)),
        _ => Err(CompileError::new(
            0,
            "each table entry needs exactly one of statement or condition",
        )),
    }
}

impl Table {
    /// Compiles the table for the signal of the pipelines it connects.
    pub fn compile(cfg: &Config, signal: Signal) -> Result<Table, Vec<StatementError>> {
        let targets: Vec<String> = cfg.pipelines().into_iter().map(String::from).collect();
        let index = |n: &String| targets.iter().position(|t| t == n).unwrap_or(0);
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        for (i, r) in cfg.table.iter().enumerate() {
            let key = format!("table[{i}]");
            let ctx = match r.context.as_deref().unwrap_or("resource") {
                "resource" => Context::Resource,
                c if Context::parse(c) == Some(item_context(signal)) => item_context(signal),
                c => {
                    errors.push(StatementError {
                        key: format!("{key}.context"),
                        text: c.to_string(),
                        error: CompileError::new(
                            0,
                            format!(
                                "unsupported context for {signal}; supported: resource, {}",
                                item_context(signal).name()
                            ),
                        ),
                    });
                    continue;
                }
            };
            if r.pipelines.is_empty() {
                errors.push(StatementError {
                    key: key.clone(),
                    text: String::new(),
                    error: CompileError::new(0, "pipelines must not be empty"),
                });
            }
            match route_condition(r, ctx) {
                Ok((_, condition)) => routes.push(CRoute {
                    ctx,
                    condition,
                    targets: r.pipelines.iter().map(index).collect(),
                }),
                Err(error) => errors.push(StatementError {
                    key,
                    text: r
                        .statement
                        .clone()
                        .or(r.condition.clone())
                        .unwrap_or_default(),
                    error,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Table {
            default: cfg.default_pipelines.iter().map(index).collect(),
            targets,
            routes,
            match_once: cfg.match_once,
            mode: cfg.error_mode,
        })
    }

    /// Target indexes for one item.
    fn select(&self, tx: &mut Tx<'_>) -> Result<Vec<usize>, EvalError> {
        let mut sel: Vec<usize> = Vec::new();
        let mut matched = false;
        for r in &self.routes {
            let hit = if r.ctx == Context::Resource {
                let mut rtx = Tx {
                    resource: &mut *tx.resource,
                    scope: None,
                    item: Item::None,
                };
                r.condition.eval(&mut rtx)
            } else {
                r.condition.eval(tx)
            };
            let hit = match hit {
                Ok(h) => h,
                Err(e) => {
                    ottl::handle(self.mode, "routing condition", e)?;
                    false
                }
            };
            if hit {
                matched = true;
                for t in &r.targets {
                    if !sel.contains(t) {
                        sel.push(*t);
                    }
                }
                if self.match_once {
                    break;
                }
            }
        }
        if !matched {
            sel.clone_from(&self.default);
        }
        Ok(sel)
    }

    /// Splits a traces request by target (index into `targets`).
    pub fn traces(
        &self,
        req: ExportTraceServiceRequest,
    ) -> Result<Vec<ExportTraceServiceRequest>, EvalError> {
        let n = self.targets.len();
        let mut outs = vec![ExportTraceServiceRequest::default(); n];
        for mut rs in req.resource_spans {
            let mut res_out: Vec<Option<ResourceSpans>> = vec![None; n];
            for ss in std::mem::take(&mut rs.scope_spans) {
                let ScopeSpans {
                    mut scope,
                    spans,
                    schema_url,
                } = ss;
                let mut picked: Vec<Vec<_>> = vec![Vec::new(); n];
                for mut span in spans {
                    let sel = self.select(&mut Tx {
                        resource: &mut rs.resource,
                        scope: Some(&mut scope),
                        item: Item::Span(&mut span),
                    })?;
                    for t in sel {
                        picked[t].push(span.clone());
                    }
                }
                for (t, items) in picked.into_iter().enumerate() {
                    if !items.is_empty() {
                        res_out[t]
                            .get_or_insert_with(|| ResourceSpans {
                                resource: rs.resource.clone(),
                                scope_spans: Vec::new(),
                                schema_url: rs.schema_url.clone(),
                            })
                            .scope_spans
                            .push(ScopeSpans {
                                scope: scope.clone(),
                                spans: items,
                                schema_url: schema_url.clone(),
                            });
                    }
                }
            }
            for (t, r) in res_out.into_iter().enumerate() {
                if let Some(r) = r {
                    outs[t].resource_spans.push(r);
                }
            }
        }
        Ok(outs)
    }

    /// Splits a logs request by target.
    pub fn logs(
        &self,
        req: ExportLogsServiceRequest,
    ) -> Result<Vec<ExportLogsServiceRequest>, EvalError> {
        let n = self.targets.len();
        let mut outs = vec![ExportLogsServiceRequest::default(); n];
        for mut rl in req.resource_logs {
            let mut res_out: Vec<Option<ResourceLogs>> = vec![None; n];
            for sl in std::mem::take(&mut rl.scope_logs) {
                let ScopeLogs {
                    mut scope,
                    log_records,
                    schema_url,
                } = sl;
                let mut picked: Vec<Vec<_>> = vec![Vec::new(); n];
                for mut rec in log_records {
                    let sel = self.select(&mut Tx {
                        resource: &mut rl.resource,
                        scope: Some(&mut scope),
                        item: Item::Log(&mut rec),
                    })?;
                    for t in sel {
                        picked[t].push(rec.clone());
                    }
                }
                for (t, items) in picked.into_iter().enumerate() {
                    if !items.is_empty() {
                        res_out[t]
                            .get_or_insert_with(|| ResourceLogs {
                                resource: rl.resource.clone(),
                                scope_logs: Vec::new(),
                                schema_url: rl.schema_url.clone(),
                            })
                            .scope_logs
                            .push(ScopeLogs {
                                scope: scope.clone(),
                                log_records: items,
                                schema_url: schema_url.clone(),
                            });
                    }
                }
            }
            for (t, r) in res_out.into_iter().enumerate() {
                if let Some(r) = r {
                    outs[t].resource_logs.push(r);
                }
            }
        }
        Ok(outs)
    }

    /// Splits a metrics request by target (metric by metric).
    pub fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
    ) -> Result<Vec<ExportMetricsServiceRequest>, EvalError> {
        let n = self.targets.len();
        let mut outs = vec![ExportMetricsServiceRequest::default(); n];
        for mut rm in req.resource_metrics {
            let mut res_out: Vec<Option<ResourceMetrics>> = vec![None; n];
            for sm in std::mem::take(&mut rm.scope_metrics) {
                let ScopeMetrics {
                    mut scope,
                    metrics,
                    schema_url,
                } = sm;
                let mut picked: Vec<Vec<_>> = vec![Vec::new(); n];
                for mut m in metrics {
                    let sel = self.select(&mut Tx {
                        resource: &mut rm.resource,
                        scope: Some(&mut scope),
                        item: Item::Metric(&mut m),
                    })?;
                    for t in sel {
                        picked[t].push(m.clone());
                    }
                }
                for (t, items) in picked.into_iter().enumerate() {
                    if !items.is_empty() {
                        res_out[t]
                            .get_or_insert_with(|| ResourceMetrics {
                                resource: rm.resource.clone(),
                                scope_metrics: Vec::new(),
                                schema_url: rm.schema_url.clone(),
                            })
                            .scope_metrics
                            .push(ScopeMetrics {
                                scope: scope.clone(),
                                metrics: items,
                                schema_url: schema_url.clone(),
                            });
                    }
                }
            }
            for (t, r) in res_out.into_iter().enumerate() {
                if let Some(r) = r {
                    outs[t].resource_metrics.push(r);
                }
            }
        }
        Ok(outs)
    }
}

/// A routing connector as it runs: its table and the pipelines it feeds (in `targets` order).
pub struct RoutingRt {
    pub id: String,
    pub table: Table,
    pub pipelines: Vec<std::sync::Arc<crate::pipeline::router::PipelineRt>>,
}

impl RoutingRt {
    /// Splits a payload into one payload per target pipeline that gets items (the index is
    /// into `pipelines`).
    pub fn route(
        &self,
        payload: &crate::pipeline::payload::Payload,
    ) -> Result<Vec<(usize, crate::pipeline::payload::Payload)>, String> {
        use crate::pipeline::payload::Payload;
        use prost::Message;
        let bad = |e: &dyn std::fmt::Display| format!("connector {}: {e}", self.id);
        let parts: Vec<(Vec<u8>, u64)> = match payload.signal {
            Signal::Traces => {
                let req = ExportTraceServiceRequest::decode(payload.bytes.clone())
                    .map_err(|e| bad(&e))?;
                self.table
                    .traces(req)
                    .map_err(|e| bad(&e))?
                    .into_iter()
                    .map(|r| {
                        let n = r
                            .resource_spans
                            .iter()
                            .flat_map(|r| &r.scope_spans)
                            .map(|s| s.spans.len() as u64)
                            .sum();
                        (r.encode_to_vec(), n)
                    })
                    .collect()
            }
            Signal::Logs => {
                let req =
                    ExportLogsServiceRequest::decode(payload.bytes.clone()).map_err(|e| bad(&e))?;
                self.table
                    .logs(req)
                    .map_err(|e| bad(&e))?
                    .into_iter()
                    .map(|r| {
                        let n = r
                            .resource_logs
                            .iter()
                            .flat_map(|r| &r.scope_logs)
                            .map(|s| s.log_records.len() as u64)
                            .sum();
                        (r.encode_to_vec(), n)
                    })
                    .collect()
            }
            Signal::Metrics => {
                let req = ExportMetricsServiceRequest::decode(payload.bytes.clone())
                    .map_err(|e| bad(&e))?;
                self.table
                    .metrics(req)
                    .map_err(|e| bad(&e))?
                    .into_iter()
                    .map(|r| {
                        let n = r
                            .resource_metrics
                            .iter()
                            .flat_map(|r| &r.scope_metrics)
                            .flat_map(|s| &s.metrics)
                            .map(|m| crate::processor::ottl::walk::data_points(m) as u64)
                            .sum();
                        (r.encode_to_vec(), n)
                    })
                    .collect()
            }
        };
        Ok(parts
            .into_iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (b, n))| (i, Payload::new(payload.signal, b.into(), n)))
            .collect())
    }
}

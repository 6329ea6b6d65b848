//! `filter` processor: drops spans, span events, metrics, data points and log records for
//! which any of the configured OTTL conditions is true (the Collector's filterprocessor keys
//! `traces.span`, `traces.spanevent`, `metrics.metric`, `metrics.datapoint`,
//! `logs.log_record`, `error_mode`). Scopes and resources left empty are removed; dropped
//! items are counted as `otelcol_processor_filter_{spans,datapoints,logs}_filtered`.

use crate::processor::ottl::{self, CBool, CompileError, Context, ErrorMode, EvalError, walk};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;

/// `traces:` conditions.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    #[serde(default)]
    pub span: Vec<String>,
    #[serde(default)]
    pub spanevent: Vec<String>,
}

/// `metrics:` conditions.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default)]
    pub metric: Vec<String>,
    #[serde(default)]
    pub datapoint: Vec<String>,
}

/// `logs:` conditions.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    #[serde(default)]
    pub log_record: Vec<String>,
}

/// `filter` processor config. `error_mode` defaults to `propagate`, as in the Collector.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub error_mode: ErrorMode,
    #[serde(default)]
    pub traces: TracesConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub logs: LogsConfig,
}

/// A statement or condition that does not compile: its config key, text and error.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementError {
    pub key: String,
    pub text: String,
    pub error: CompileError,
}

impl std::fmt::Display for StatementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}: {}", self.key, self.text, self.error)
    }
}

/// Compiles a list of conditions, collecting every error.
pub fn compile_conditions(
    key: &str,
    ctx: Context,
    texts: &[String],
    errors: &mut Vec<StatementError>,
) -> Vec<CBool> {
    texts
        .iter()
        .filter_map(|t| match ottl::condition(ctx, t) {
            Ok(c) => Some(c),
            Err(error) => {
                errors.push(StatementError {
                    key: key.into(),
                    text: t.clone(),
                    error,
                });
                None
            }
        })
        .collect()
}

/// A compiled `filter` processor.
#[derive(Clone, Debug)]
pub struct Filter {
    pub mode: ErrorMode,
    pub span: Vec<CBool>,
    pub spanevent: Vec<CBool>,
    pub metric: Vec<CBool>,
    pub datapoint: Vec<CBool>,
    pub log_record: Vec<CBool>,
}

/// Self-metrics of all filter processors, labelled with the processor id.
#[derive(Clone, Debug, Default)]
pub struct FilterMetrics {
    pub spans: Family<FilterLabels, Counter>,
    pub datapoints: Family<FilterLabels, Counter>,
    pub logs: Family<FilterLabels, Counter>,
}

/// `filter="<processor id>"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FilterLabels {
    pub filter: String,
}

impl FilterMetrics {
    /// Registers the counters (the Collector's names, with `_total` added by the encoder).
    pub fn register(reg: &mut Registry) -> Self {
        let m = FilterMetrics::default();
        reg.register(
            "otelcol_processor_filter_spans_filtered",
            "Spans dropped by a filter processor",
            m.spans.clone(),
        );
        reg.register(
            "otelcol_processor_filter_datapoints_filtered",
            "Metric data points dropped by a filter processor",
            m.datapoints.clone(),
        );
        reg.register(
            "otelcol_processor_filter_logs_filtered",
            "Log records dropped by a filter processor",
            m.logs.clone(),
        );
        m
    }
}

impl Filter {
    /// Compiles a config; every condition that does not compile is reported.
    pub fn compile(cfg: &Config) -> Result<Filter, Vec<StatementError>> {
        let mut errors = Vec::new();
        let f = Filter {
            mode: cfg.error_mode,
            span: compile_conditions("traces.span", Context::Span, &cfg.traces.span, &mut errors),
            spanevent: compile_conditions(
                "traces.spanevent",
                Context::SpanEvent,
                &cfg.traces.spanevent,
                &mut errors,
            ),
            metric: compile_conditions(
                "metrics.metric",
                Context::Metric,
                &cfg.metrics.metric,
                &mut errors,
            ),
            datapoint: compile_conditions(
                "metrics.datapoint",
                Context::DataPoint,
                &cfg.metrics.datapoint,
                &mut errors,
            ),
            log_record: compile_conditions(
                "logs.log_record",
                Context::Log,
                &cfg.logs.log_record,
                &mut errors,
            ),
        };
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(errors)
        }
    }

    /// Whether any condition holds; failing conditions count as false unless `propagate`.
    fn any(&self, conds: &[CBool], tx: &mut ottl::Tx<'_>) -> Result<bool, EvalError> {
        for c in conds {
            match c.eval(tx) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => ottl::handle(self.mode, "filter condition", e)?,
            }
        }
        Ok(false)
    }

    /// Drop decisions for every item of a context, in walk order.
    fn marks(
        &self,
        conds: &[CBool],
        walk: impl FnOnce(&mut walk::Visit<'_>) -> Result<(), EvalError>,
    ) -> Result<Vec<bool>, EvalError> {
        let mut marks = Vec::new();
        walk(&mut |tx| {
            marks.push(self.any(conds, tx)?);
            Ok(())
        })?;
        Ok(marks)
    }

    /// Filters a traces request; returns the number of spans dropped.
    pub fn traces(&self, req: &mut ExportTraceServiceRequest) -> Result<u64, EvalError> {
        let mut dropped = 0u64;
        if !self.span.is_empty() {
            let marks = self.marks(&self.span, |f| walk::traces(req, Context::Span, f))?;
            let mut it = marks.into_iter();
            for ss in req
                .resource_spans
                .iter_mut()
                .flat_map(|r| r.scope_spans.iter_mut())
            {
                ss.spans.retain(|_| {
                    let drop = it.next().unwrap_or(false);
                    dropped += u64::from(drop);
                    !drop
                });
            }
        }
        if !self.spanevent.is_empty() {
            let marks = self.marks(&self.spanevent, |f| {
                walk::traces(req, Context::SpanEvent, f)
            })?;
            let mut it = marks.into_iter();
            for span in req
                .resource_spans
                .iter_mut()
                .flat_map(|r| r.scope_spans.iter_mut())
                .flat_map(|s| s.spans.iter_mut())
            {
                span.events.retain(|_| !it.next().unwrap_or(false));
            }
        }
        for rs in &mut req.resource_spans {
            rs.scope_spans.retain(|s| !s.spans.is_empty());
        }
        req.resource_spans.retain(|r| !r.scope_spans.is_empty());
        Ok(dropped)
    }

    /// Filters a metrics request; returns the number of data points dropped.
    pub fn metrics(&self, req: &mut ExportMetricsServiceRequest) -> Result<u64, EvalError> {
        let mut dropped = 0u64;
        if !self.metric.is_empty() {
            let marks = self.marks(&self.metric, |f| walk::metrics(req, Context::Metric, f))?;
            let mut it = marks.into_iter();
            for sm in req
                .resource_metrics
                .iter_mut()
                .flat_map(|r| r.scope_metrics.iter_mut())
            {
                sm.metrics.retain(|m| {
                    let drop = it.next().unwrap_or(false);
                    if drop {
                        dropped += walk::data_points(m) as u64;
                    }
                    !drop
                });
            }
        }
        if !self.datapoint.is_empty() {
            let marks = self.marks(&self.datapoint, |f| {
                walk::metrics(req, Context::DataPoint, f)
            })?;
            let mut it = marks.into_iter();
            let mut keep = |_: &_| {
                let drop = it.next().unwrap_or(false);
                dropped += u64::from(drop);
                !drop
            };
            for sm in req
                .resource_metrics
                .iter_mut()
                .flat_map(|r| r.scope_metrics.iter_mut())
            {
                for m in &mut sm.metrics {
                    match &mut m.data {
                        Some(metric::Data::Gauge(g)) => {
                            g.data_points.retain(|p| keep(&p.attributes))
                        }
                        Some(metric::Data::Sum(g)) => g.data_points.retain(|p| keep(&p.attributes)),
                        Some(metric::Data::Histogram(g)) => {
                            g.data_points.retain(|p| keep(&p.attributes))
                        }
                        Some(metric::Data::ExponentialHistogram(g)) => {
                            g.data_points.retain(|p| keep(&p.attributes))
                        }
                        Some(metric::Data::Summary(g)) => {
                            g.data_points.retain(|p| keep(&p.attributes))
                        }
                        None => {}
                    }
                }
                // a metric whose points were all dropped goes too
                sm.metrics.retain(|m| walk::data_points(m) > 0);
            }
        }
        for rm in &mut req.resource_metrics {
            rm.scope_metrics.retain(|s| !s.metrics.is_empty());
        }
        req.resource_metrics.retain(|r| !r.scope_metrics.is_empty());
        Ok(dropped)
    }

    /// Filters a logs request; returns the number of log records dropped.
    pub fn logs(&self, req: &mut ExportLogsServiceRequest) -> Result<u64, EvalError> {
        let mut dropped = 0u64;
        if !self.log_record.is_empty() {
            let marks = self.marks(&self.log_record, |f| walk::logs(req, Context::Log, f))?;
            let mut it = marks.into_iter();
            for sl in req
                .resource_logs
                .iter_mut()
                .flat_map(|r| r.scope_logs.iter_mut())
            {
                sl.log_records.retain(|_| {
                    let drop = it.next().unwrap_or(false);
                    dropped += u64::from(drop);
                    !drop
                });
            }
        }
        for rl in &mut req.resource_logs {
            rl.scope_logs.retain(|s| !s.log_records.is_empty());
        }
        req.resource_logs.retain(|r| !r.scope_logs.is_empty());
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};

    fn filter(yaml: &str) -> Filter {
        Filter::compile(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn spans(names: &[&str]) -> ResourceSpans {
        ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| Span {
                        name: n.to_string(),
                        events: vec![
                            span::Event {
                                name: "debug".into(),
                                ..Default::default()
                            },
                            span::Event {
                                name: "exception".into(),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn spans_and_events_dropped_and_empty_resources_removed() {
        let f = filter(
            "traces:\n  span: ['name == \"health\"', 'IsMatch(name, \"^ping\")']\n  spanevent: ['name == \"debug\"']\n",
        );
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![spans(&["health", "ping-1"]), spans(&["health", "work"])],
        };
        assert_eq!(f.traces(&mut req).unwrap(), 3);
        assert_eq!(
            req.resource_spans.len(),
            1,
            "the all-dropped resource is removed"
        );
        let left = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].name, "work");
        let events: Vec<&str> = left[0].events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, vec!["exception"]);
    }

    fn gauge(name: &str, envs: &[&str]) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: envs
                    .iter()
                    .map(|e| NumberDataPoint {
                        attributes: vec![kv("env", e)],
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn metrics_and_data_points() {
        let f = filter(
            "metrics:\n  metric: ['name == \"drop.me\" and type == METRIC_DATA_TYPE_GAUGE']\n  datapoint: ['attributes[\"env\"] == \"dev\"', 'metric.name == \"all.dev\"']\n",
        );
        let mut req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        gauge("drop.me", &["prod", "prod"]),
                        gauge("keep", &["dev", "prod"]),
                        gauge("all.dev", &["prod"]),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(f.metrics(&mut req).unwrap(), 4);
        let ms = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(ms.len(), 1, "a metric without points is removed");
        assert_eq!(ms[0].name, "keep");
        assert_eq!(walk::data_points(&ms[0]), 1);
    }

    #[test]
    fn error_mode_decides_what_a_failing_condition_does() {
        // ParseJSON fails on a non-JSON name: propagate fails, ignore keeps the span
        let cond = "traces:\n  span: ['ParseJSON(name)[\"a\"] == 1']\n";
        let f = filter(cond);
        let mut req = ExportTraceServiceRequest {
            resource_spans: vec![spans(&["not json"])],
        };
        assert!(f.traces(&mut req).is_err());
        let f = filter(&format!("error_mode: ignore\n{cond}"));
        assert_eq!(f.traces(&mut req).unwrap(), 0);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_conditions_are_errors() {
        assert!(serde_yaml::from_str::<Config>("spans:\n  include: {}\n").is_err());
        let cfg: Config = serde_yaml::from_str(
            "logs:\n  log_record: ['name == 1', 'severity_number > SEVERITY_NUMBER_WARN']\n",
        )
        .unwrap();
        let errs = Filter::compile(&cfg).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "logs.log_record");
        assert_eq!(errs[0].text, "name == 1");
    }
}

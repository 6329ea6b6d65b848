//! Visiting every item of one context in a decoded request, with its resource and scope, so
//! statements can run on it (`transform`) or decide to drop it (`filter`).

use super::context::{Context, EvalError, Item, Tx};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};

/// A visitor; an error stops the walk.
pub type Visit<'f> = dyn FnMut(&mut Tx<'_>) -> Result<(), EvalError> + 'f;

/// Number of data points of a metric.
pub fn data_points(m: &Metric) -> usize {
    match &m.data {
        None => 0,
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
    }
}

/// Visits the items of `ctx` (resource, scope, span or spanevent) in a traces request.
pub fn traces(
    req: &mut ExportTraceServiceRequest,
    ctx: Context,
    f: &mut Visit<'_>,
) -> Result<(), EvalError> {
    for rs in &mut req.resource_spans {
        let resource = &mut rs.resource;
        if ctx == Context::Resource {
            f(&mut Tx {
                resource,
                scope: None,
                item: Item::None,
            })?;
            continue;
        }
        for ss in &mut rs.scope_spans {
            let scope = &mut ss.scope;
            match ctx {
                Context::Scope => f(&mut Tx {
                    resource,
                    scope: Some(scope),
                    item: Item::None,
                })?,
                Context::Span => {
                    for span in &mut ss.spans {
                        f(&mut Tx {
                            resource,
                            scope: Some(scope),
                            item: Item::Span(span),
                        })?;
                    }
                }
                Context::SpanEvent => {
                    for span in &mut ss.spans {
                        for i in 0..span.events.len() {
                            f(&mut Tx {
                                resource,
                                scope: Some(scope),
                                item: Item::SpanEvent(span, i),
                            })?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Visits the items of `ctx` (resource, scope, metric or datapoint) in a metrics request.
pub fn metrics(
    req: &mut ExportMetricsServiceRequest,
    ctx: Context,
    f: &mut Visit<'_>,
) -> Result<(), EvalError> {
    for rm in &mut req.resource_metrics {
        let resource = &mut rm.resource;
        if ctx == Context::Resource {
            f(&mut Tx {
                resource,
                scope: None,
                item: Item::None,
            })?;
            continue;
        }
        for sm in &mut rm.scope_metrics {
            let scope = &mut sm.scope;
            match ctx {
                Context::Scope => f(&mut Tx {
                    resource,
                    scope: Some(scope),
                    item: Item::None,
                })?,
                Context::Metric => {
                    for m in &mut sm.metrics {
                        f(&mut Tx {
                            resource,
                            scope: Some(scope),
                            item: Item::Metric(m),
                        })?;
                    }
                }
                Context::DataPoint => {
                    for m in &mut sm.metrics {
                        for i in 0..data_points(m) {
                            f(&mut Tx {
                                resource,
                                scope: Some(scope),
                                item: Item::DataPoint(m, i),
                            })?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Visits the items of `ctx` (resource, scope or log) in a logs request.
pub fn logs(
    req: &mut ExportLogsServiceRequest,
    ctx: Context,
    f: &mut Visit<'_>,
) -> Result<(), EvalError> {
    for rl in &mut req.resource_logs {
        let resource = &mut rl.resource;
        if ctx == Context::Resource {
            f(&mut Tx {
                resource,
                scope: None,
                item: Item::None,
            })?;
            continue;
        }
        for sl in &mut rl.scope_logs {
            let scope = &mut sl.scope;
            match ctx {
                Context::Scope => f(&mut Tx {
                    resource,
                    scope: Some(scope),
                    item: Item::None,
                })?,
                Context::Log => {
                    for l in &mut sl.log_records {
                        f(&mut Tx {
                            resource,
                            scope: Some(scope),
                            item: Item::Log(l),
                        })?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

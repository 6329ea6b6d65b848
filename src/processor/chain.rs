//! The data-changing processors of one pipeline, run in order on one decoded request: the
//! request is decoded once, every step edits it, and it is re-encoded once with its new item
//! count. A request its processors emptied is not delivered at all.

use crate::pipeline::payload::{Payload, Signal};
use crate::processor::attributes::{self, AttrAction, Target};
use crate::processor::deltatocumulative::DeltaToCumulative;
use crate::processor::filter::{Filter, FilterLabels, FilterMetrics};
use crate::processor::ottl::EvalError;
use crate::processor::transform::Transform;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::Arc;

/// One data-changing processor of a pipeline.
#[derive(Clone, Debug)]
pub enum Edit {
    /// `resource` or `attributes`
    Attrs(Target, Vec<AttrAction>),
    /// `filter`, with its id for the dropped-item counters
    Filter {
        id: String,
        filter: Arc<Filter>,
        metrics: FilterMetrics,
    },
    /// `transform`, with its id for error messages
    Transform {
        id: String,
        transform: Arc<Transform>,
    },
    /// `deltatocumulative` (metrics only; its streams are shared by the pipelines using it)
    DeltaToCumulative(Arc<DeltaToCumulative>),
}

/// Why a request could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot decode request: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("processor {processor}: {error}")]
    Eval { processor: String, error: EvalError },
}

/// Runs the edits; `None` when nothing is left to deliver.
pub fn apply(payload: &Payload, edits: &[Edit]) -> Result<Option<Payload>, ChainError> {
    let (bytes, items) = match payload.signal {
        Signal::Traces => {
            let mut req = ExportTraceServiceRequest::decode(payload.bytes.clone())?;
            for e in edits {
                match e {
                    Edit::Attrs(t, a) => attributes::apply_traces(&mut req, &[(*t, a)]),
                    Edit::Filter {
                        id,
                        filter,
                        metrics,
                    } => {
                        let n = filter.traces(&mut req).map_err(|error| eval(id, error))?;
                        count(&metrics.spans, id, n);
                    }
                    Edit::Transform { id, transform } => {
                        transform.traces(&mut req).map_err(|e| eval(id, e))?
                    }
                    Edit::DeltaToCumulative(_) => {}
                }
            }
            let items = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            (req.encode_to_vec(), items)
        }
        Signal::Metrics => {
            let mut req = ExportMetricsServiceRequest::decode(payload.bytes.clone())?;
            for e in edits {
                match e {
                    Edit::Attrs(t, a) => attributes::apply_metrics(&mut req, &[(*t, a)]),
                    Edit::Filter {
                        id,
                        filter,
                        metrics,
                    } => {
                        let n = filter.metrics(&mut req).map_err(|error| eval(id, error))?;
                        count(&metrics.datapoints, id, n);
                    }
                    Edit::Transform { id, transform } => {
                        transform.metrics(&mut req).map_err(|e| eval(id, e))?
                    }
                    Edit::DeltaToCumulative(d) => d.process(&mut req, tokio::time::Instant::now()),
                }
            }
            let items = req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| crate::processor::ottl::walk::data_points(m) as u64)
                .sum();
            (req.encode_to_vec(), items)
        }
        Signal::Logs => {
            let mut req = ExportLogsServiceRequest::decode(payload.bytes.clone())?;
            for e in edits {
                match e {
                    Edit::Attrs(t, a) => attributes::apply_logs(&mut req, &[(*t, a)]),
                    Edit::Filter {
                        id,
                        filter,
                        metrics,
                    } => {
                        let n = filter.logs(&mut req).map_err(|error| eval(id, error))?;
                        count(&metrics.logs, id, n);
                    }
                    Edit::Transform { id, transform } => {
                        transform.logs(&mut req).map_err(|e| eval(id, e))?
                    }
                    Edit::DeltaToCumulative(_) => {}
                }
            }
            let items = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            (req.encode_to_vec(), items)
        }
    };
    if items == 0 && payload.items > 0 {
        return Ok(None);
    }
    Ok(Some(Payload::new(payload.signal, bytes.into(), items)))
}

fn eval(processor: &str, error: EvalError) -> ChainError {
    ChainError::Eval {
        processor: processor.to_string(),
        error,
    }
}

fn count(
    family: &prometheus_client::metrics::family::Family<
        FilterLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    id: &str,
    n: u64,
) {
    if n > 0 {
        family
            .get_or_create(&FilterLabels { filter: id.into() })
            .inc_by(n);
    }
}

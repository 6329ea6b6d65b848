//! The fast path's driver: walks an encoded `ExportLogsServiceRequest` (and its
//! `ResourceLogs` / `ScopeLogs`) on the wire and feeds a format [`Mapper`] with the raw bytes
//! of each resource, scope and log record. Resources and scopes are few: mappers decode them
//! with prost and reuse the reference mapping for them. Records are many: mappers read them
//! with the zero-copy [`super::reader`].

use super::builder::PushBuilder;
use super::reader::ReadError;
use crate::protowire::{Field, Fields};

const REQUEST: &str = "ExportLogsServiceRequest";
const RESOURCE_LOGS: &str = "ResourceLogs";
const SCOPE_LOGS: &str = "ScopeLogs";

/// A format's mapping, fed in wire order.
pub trait Mapper<'a> {
    /// The next `ResourceLogs.resource` (encoded `Resource`, empty when absent).
    fn resource(&mut self, raw: &[u8]) -> Result<(), ReadError>;
    /// The next `ScopeLogs.scope` of the current resource (encoded, empty when absent).
    fn scope(&mut self, raw: &[u8]) -> Result<(), ReadError>;
    /// One encoded `LogRecord` of the current scope.
    fn record(&mut self, raw: &'a [u8], out: &mut PushBuilder) -> Result<(), ReadError>;
}

fn group(msg: &'static str) -> ReadError {
    ReadError::UnsupportedWireType { msg, got: 3 }
}

/// A message that occurs several times merges (protobuf: concatenation = merge).
fn joined<'s>(parts: &[&'s [u8]], scratch: &'s mut Vec<u8>) -> &'s [u8] {
    match parts {
        [] => &[],
        [one] => one,
        many => {
            scratch.clear();
            for p in many {
                scratch.extend_from_slice(p);
            }
            scratch
        }
    }
}

/// Walks the request, calling `m` for every resource, scope and record in order.
pub fn walk<'a, M: Mapper<'a>>(
    buf: &'a [u8],
    m: &mut M,
    out: &mut PushBuilder,
) -> Result<(), ReadError> {
    let mut res_parts: Vec<&'a [u8]> = Vec::new();
    let mut scope_logs: Vec<&'a [u8]> = Vec::new();
    let mut scope_parts: Vec<&'a [u8]> = Vec::new();
    let mut records: Vec<&'a [u8]> = Vec::new();
    let mut scratch = Vec::new();
    let mut f = Fields::new(buf, REQUEST);
    while let Some((n, x)) = f.next_field()? {
        match (n, x) {
            (_, Field::Group) => return Err(group(REQUEST)),
            (1, x) => {
                res_parts.clear();
                scope_logs.clear();
                let mut g = Fields::new(x.bytes(REQUEST, n)?, RESOURCE_LOGS);
                while let Some((n, x)) = g.next_field()? {
                    match (n, x) {
                        (_, Field::Group) => return Err(group(RESOURCE_LOGS)),
                        (1, x) => res_parts.push(x.bytes(RESOURCE_LOGS, n)?),
                        (2, x) => scope_logs.push(x.bytes(RESOURCE_LOGS, n)?),
                        (3, x) => {
                            x.str(RESOURCE_LOGS, n)?;
                        }
                        _ => {}
                    }
                }
                m.resource(joined(&res_parts, &mut scratch))?;
                for sl in &scope_logs {
                    scope_parts.clear();
                    records.clear();
                    let mut h = Fields::new(sl, SCOPE_LOGS);
                    while let Some((n, x)) = h.next_field()? {
                        match (n, x) {
                            (_, Field::Group) => return Err(group(SCOPE_LOGS)),
                            (1, x) => scope_parts.push(x.bytes(SCOPE_LOGS, n)?),
                            (2, x) => records.push(x.bytes(SCOPE_LOGS, n)?),
                            (3, x) => {
                                x.str(SCOPE_LOGS, n)?;
                            }
                            _ => {}
                        }
                    }
                    m.scope(joined(&scope_parts, &mut scratch))?;
                    for r in &records {
                        m.record(r, out)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

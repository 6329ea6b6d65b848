//! OTLP metrics read straight from the wire bytes (field numbers of
//! `opentelemetry/proto/metrics/v1/metrics.proto`): attributes, data points and exemplars as
//! borrowed views, reused from point to point, so the translator never builds the owned prost
//! tree of a batch (that decode alone cost more than the whole translation).

use crate::protowire::{Field, ReadError, fields, push_fixed64s, push_varints};

const ANY_VALUE: &str = "AnyValue";
const KEY_VALUE: &str = "KeyValue";
const EXEMPLAR: &str = "Exemplar";
const BUCKETS: &str = "Buckets";
const QUANTILE: &str = "ValueAtQuantile";
const METRIC: &str = "Metric";
const SCOPE: &str = "InstrumentationScope";
const DATA: &str = "metric data";

/// An attribute value; strings and bytes borrow from the request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An array or key-value list: the whole `AnyValue` message, decoded only when needed.
    Complex(&'a [u8]),
    Empty,
}

/// One `KeyValue`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attr<'a> {
    pub key: &'a str,
    pub value: AttrValue<'a>,
}

/// Reads an `AnyValue` (the last value field wins, as in protobuf).
pub fn read_any(b: &[u8]) -> Result<AttrValue<'_>, ReadError> {
    let mut v = AttrValue::Empty;
    for f in fields(b, ANY_VALUE) {
        let (n, x) = f?;
        v = match n {
            1 => AttrValue::Str(x.str(ANY_VALUE, n)?),
            2 => AttrValue::Bool(x.varint(ANY_VALUE, n)? != 0),
            3 => AttrValue::Int(x.varint(ANY_VALUE, n)? as i64),
            4 => AttrValue::Double(x.f64(ANY_VALUE, n)?),
            5 | 6 => AttrValue::Complex(b),
            7 => AttrValue::Bytes(x.bytes(ANY_VALUE, n)?),
            8 => AttrValue::Empty,
            _ => continue,
        };
    }
    Ok(v)
}

/// Reads a `KeyValue`.
pub fn read_attr(b: &[u8]) -> Result<Attr<'_>, ReadError> {
    let mut a = Attr {
        key: "",
        value: AttrValue::Empty,
    };
    for f in fields(b, KEY_VALUE) {
        match f? {
            (n @ 1, x) => a.key = x.str(KEY_VALUE, n)?,
            (n @ 2, x) => a.value = read_any(x.bytes(KEY_VALUE, n)?)?,
            _ => {}
        }
    }
    Ok(a)
}

/// Appends the attributes (field `field` of message `b`) to `out`.
pub fn read_attrs<'a>(
    b: &'a [u8],
    msg: &'static str,
    field: u32,
    out: &mut Vec<Attr<'a>>,
) -> Result<(), ReadError> {
    for f in fields(b, msg) {
        let (n, x) = f?;
        if n == field {
            out.push(read_attr(x.bytes(msg, n)?)?);
        }
    }
    Ok(())
}

/// The kinds of data points, which differ in field numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Number,
    Histogram,
    Exponential,
    Summary,
}

impl Kind {
    /// The message name, for errors.
    fn message(self) -> &'static str {
        match self {
            Kind::Number => "NumberDataPoint",
            Kind::Histogram => "HistogramDataPoint",
            Kind::Exponential => "ExponentialHistogramDataPoint",
            Kind::Summary => "SummaryDataPoint",
        }
    }
}

/// One side of an exponential histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    pub offset: i32,
    pub counts: Vec<u64>,
}

/// An exemplar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exemplar<'a> {
    pub attrs: Vec<Attr<'a>>,
    pub time_unix_nano: u64,
    pub value: f64,
    pub span_id: &'a [u8],
    pub trace_id: &'a [u8],
}

/// Reads an `Exemplar`.
pub fn read_exemplar(b: &[u8]) -> Result<Exemplar<'_>, ReadError> {
    let mut e = Exemplar::default();
    const M: &str = EXEMPLAR;
    for f in fields(b, M) {
        let (n, x) = f?;
        match n {
            7 => e.attrs.push(read_attr(x.bytes(M, n)?)?),
            2 => e.time_unix_nano = x.fixed64(M, n)?,
            3 => e.value = x.f64(M, n)?,
            6 => e.value = x.fixed64(M, n)? as i64 as f64,
            4 => e.span_id = x.bytes(M, n)?,
            5 => e.trace_id = x.bytes(M, n)?,
            _ => {}
        }
    }
    Ok(e)
}

/// Any data point, with the fields of its kind filled (the others keep their defaults).
/// One value is reused for all points of a metric.
#[derive(Debug, Default)]
pub struct Point<'a> {
    pub attrs: Vec<Attr<'a>>,
    pub time_unix_nano: u64,
    pub flags: u32,
    /// Number points.
    pub value: f64,
    /// Histogram, exponential histogram and summary points.
    pub count: u64,
    pub sum: Option<f64>,
    /// Histogram points.
    pub bucket_counts: Vec<u64>,
    /// Histogram bounds as `f64` bits.
    pub bounds: Vec<u64>,
    /// Exponential histogram points.
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive: Option<Buckets>,
    pub negative: Option<Buckets>,
    /// Summary points: (quantile, value).
    pub quantiles: Vec<(f64, f64)>,
    /// Exemplars, still encoded (rare; read with [`read_exemplar`] when used).
    pub exemplars: Vec<&'a [u8]>,
}

fn read_buckets(b: &[u8]) -> Result<Buckets, ReadError> {
    let mut out = Buckets::default();
    for f in fields(b, BUCKETS) {
        match f? {
            (n @ 1, x) => out.offset = x.sint32(BUCKETS, n)?,
            (n @ 2, x) => push_varints(x, BUCKETS, n, &mut out.counts)?,
            _ => {}
        }
    }
    Ok(out)
}

fn read_quantile(b: &[u8]) -> Result<(f64, f64), ReadError> {
    let (mut q, mut v) = (0.0, 0.0);
    for f in fields(b, QUANTILE) {
        match f? {
            (n @ 1, x) => q = x.f64(QUANTILE, n)?,
            (n @ 2, x) => v = x.f64(QUANTILE, n)?,
            _ => {}
        }
    }
    Ok((q, v))
}

impl<'a> Point<'a> {
    fn reset(&mut self) {
        self.attrs.clear();
        self.time_unix_nano = 0;
        self.flags = 0;
        self.value = 0.0;
        self.count = 0;
        self.sum = None;
        self.bucket_counts.clear();
        self.bounds.clear();
        self.scale = 0;
        self.zero_count = 0;
        self.zero_threshold = 0.0;
        self.positive = None;
        self.negative = None;
        self.quantiles.clear();
        self.exemplars.clear();
    }

    /// Reads a data point of `kind` into `self` (cleared first).
    pub fn read(&mut self, kind: Kind, b: &'a [u8]) -> Result<(), ReadError> {
        self.reset();
        let m = kind.message();
        for f in fields(b, m) {
            let (n, x): (u32, Field<'a>) = f?;
            // Fields shared by every kind.
            if n == 3 {
                self.time_unix_nano = x.fixed64(m, n)?;
                continue;
            }
            match (kind, n) {
                (Kind::Number, 7) | (Kind::Histogram, 9) | (Kind::Exponential, 1) => {
                    self.attrs.push(read_attr(x.bytes(m, n)?)?)
                }
                (Kind::Summary, 7) => self.attrs.push(read_attr(x.bytes(m, n)?)?),
                (Kind::Number, 4) => self.value = x.f64(m, n)?,
                (Kind::Number, 6) => self.value = x.fixed64(m, n)? as i64 as f64,
                (Kind::Number, 5) | (Kind::Histogram, 8) | (Kind::Exponential, 11) => {
                    self.exemplars.push(x.bytes(m, n)?)
                }
                (Kind::Number, 8) | (Kind::Histogram, 10) | (Kind::Exponential, 10) => {
                    self.flags = x.varint(m, n)? as u32
                }
                (Kind::Summary, 8) => self.flags = x.varint(m, n)? as u32,
                (Kind::Histogram | Kind::Exponential | Kind::Summary, 4) => {
                    self.count = x.fixed64(m, n)?
                }
                (Kind::Histogram | Kind::Exponential | Kind::Summary, 5) => {
                    self.sum = Some(x.f64(m, n)?)
                }
                (Kind::Histogram, 6) => push_fixed64s(x, m, n, &mut self.bucket_counts)?,
                (Kind::Histogram, 7) => push_fixed64s(x, m, n, &mut self.bounds)?,
                (Kind::Exponential, 6) => self.scale = x.sint32(m, n)?,
                (Kind::Exponential, 7) => self.zero_count = x.fixed64(m, n)?,
                (Kind::Exponential, 8) => self.positive = Some(read_buckets(x.bytes(m, n)?)?),
                (Kind::Exponential, 9) => self.negative = Some(read_buckets(x.bytes(m, n)?)?),
                (Kind::Exponential, 14) => self.zero_threshold = x.f64(m, n)?,
                (Kind::Summary, 6) => self.quantiles.push(read_quantile(x.bytes(m, n)?)?),
                _ => {}
            }
        }
        if kind == Kind::Summary && self.sum.is_none() {
            // `sum` is a plain (not optional) double in SummaryDataPoint.
            self.sum = Some(0.0);
        }
        Ok(())
    }
}

/// The `data` of a `Metric` (the oneof), still encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    Gauge(&'a [u8]),
    Sum(&'a [u8]),
    Histogram(&'a [u8]),
    Exponential(&'a [u8]),
    Summary(&'a [u8]),
}

/// A `Metric`'s descriptive fields and its data.
#[derive(Clone, Copy, Debug)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unit: &'a str,
    pub data: Option<Data<'a>>,
}

/// Reads a `Metric` (data points stay encoded).
pub fn read_metric(b: &[u8]) -> Result<Metric<'_>, ReadError> {
    let mut m = Metric {
        name: "",
        description: "",
        unit: "",
        data: None,
    };
    const M: &str = METRIC;
    for f in fields(b, M) {
        let (n, x) = f?;
        match n {
            1 => m.name = x.str(M, n)?,
            2 => m.description = x.str(M, n)?,
            3 => m.unit = x.str(M, n)?,
            5 => m.data = Some(Data::Gauge(x.bytes(M, n)?)),
            7 => m.data = Some(Data::Sum(x.bytes(M, n)?)),
            9 => m.data = Some(Data::Histogram(x.bytes(M, n)?)),
            10 => m.data = Some(Data::Exponential(x.bytes(M, n)?)),
            11 => m.data = Some(Data::Summary(x.bytes(M, n)?)),
            _ => {}
        }
    }
    Ok(m)
}

/// The header of a Gauge/Sum/Histogram/ExponentialHistogram/Summary message: temporality,
/// monotonicity and the number of data points (field 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct DataHeader {
    pub temporality: i32,
    pub monotonic: bool,
    pub points: usize,
}

/// Only the fields `data`'s message defines are read: `aggregation_temporality` (2) exists in
/// Sum, Histogram and ExponentialHistogram, `is_monotonic` (3) only in Sum; elsewhere they
/// are unknown fields and skipped whatever their wire type, as prost does.
pub fn read_data_header(data: &Data<'_>) -> Result<DataHeader, ReadError> {
    let (b, temporal, monotonic) = match *data {
        Data::Gauge(b) | Data::Summary(b) => (b, false, false),
        Data::Sum(b) => (b, true, true),
        Data::Histogram(b) | Data::Exponential(b) => (b, true, false),
    };
    let mut h = DataHeader::default();
    for f in fields(b, DATA) {
        match f? {
            (1, _) => h.points += 1,
            (n @ 2, x) if temporal => h.temporality = x.varint(DATA, n)? as i32,
            (n @ 3, x) if monotonic => h.monotonic = x.varint(DATA, n)? != 0,
            _ => {}
        }
    }
    Ok(h)
}

/// The encoded data points (field 1) of a data message.
pub fn data_points(b: &[u8]) -> impl Iterator<Item = Result<&[u8], ReadError>> {
    fields(b, DATA).filter_map(|f| match f {
        Ok((n @ 1, x)) => Some(x.bytes(DATA, n)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// An `InstrumentationScope`'s name and version.
pub fn read_scope(b: &[u8]) -> Result<(&str, &str), ReadError> {
    let (mut name, mut version) = ("", "");
    for f in fields(b, SCOPE) {
        match f? {
            (n @ 1, x) => name = x.str(SCOPE, n)?,
            (n @ 2, x) => version = x.str(SCOPE, n)?,
            _ => {}
        }
    }
    Ok((name, version))
}

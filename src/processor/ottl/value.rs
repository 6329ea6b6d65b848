//! The values OTTL expressions produce: the OTLP `AnyValue` kinds plus `nil` and time, with
//! the Collector's comparison rules (pkg/ottl `compare.go`: numbers compare across int and
//! double, other kinds only with their own kind, `nil` equals only `nil`).

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use std::cmp::Ordering;

/// One OTTL value. Maps keep their insertion order, as pdata maps do.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// A point in time, nanoseconds since the Unix epoch (`start_time`, `time`, ...).
    Time(i64),
    Map(Vec<(String, Value)>),
    List(Vec<Value>),
}

/// Comparison operators of OTTL conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Value {
    /// Converts an OTLP value (absent = `nil`).
    pub fn from_any(v: Option<&AnyValue>) -> Value {
        let Some(v) = v.and_then(|v| v.value.as_ref()) else {
            return Value::Nil;
        };
        match v {
            any_value::Value::StringValue(s) => Value::Str(s.clone()),
            any_value::Value::BoolValue(b) => Value::Bool(*b),
            any_value::Value::IntValue(i) => Value::Int(*i),
            any_value::Value::DoubleValue(d) => Value::Double(*d),
            any_value::Value::BytesValue(b) => Value::Bytes(b.clone()),
            any_value::Value::ArrayValue(a) => {
                Value::List(a.values.iter().map(|v| Value::from_any(Some(v))).collect())
            }
            any_value::Value::KvlistValue(m) => Value::from_attrs(&m.values),
            // profiles-only string-table reference: no string here
            any_value::Value::StringValueStrindex(_) => Value::Nil,
        }
    }

    /// Converts an attribute list to a map value.
    pub fn from_attrs(attrs: &[KeyValue]) -> Value {
        Value::Map(
            attrs
                .iter()
                .map(|kv| (kv.key.clone(), Value::from_any(kv.value.as_ref())))
                .collect(),
        )
    }

    /// Converts to an OTLP value; `nil` becomes an empty value, time its nanoseconds.
    pub fn into_any(self) -> AnyValue {
        let value = match self {
            Value::Nil => None,
            Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
            Value::Int(i) | Value::Time(i) => Some(any_value::Value::IntValue(i)),
            Value::Double(d) => Some(any_value::Value::DoubleValue(d)),
            Value::Str(s) => Some(any_value::Value::StringValue(s)),
            Value::Bytes(b) => Some(any_value::Value::BytesValue(b)),
            Value::List(l) => Some(any_value::Value::ArrayValue(ArrayValue {
                values: l.into_iter().map(Value::into_any).collect(),
            })),
            Value::Map(m) => Some(any_value::Value::KvlistValue(KeyValueList {
                values: map_into_attrs(m),
            })),
        };
        AnyValue { value }
    }

    /// Kind name used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Time(_) => "time",
            Value::Map(_) => "map",
            Value::List(_) => "list",
        }
    }

    /// The Collector's string form of a "string-like" value (pkg/ottl `StringLikeGetter`):
    /// bytes as lowercase hex, numbers in shortest form, maps and lists as JSON; `nil` has none.
    pub fn to_string_like(&self) -> Option<String> {
        Some(match self {
            Value::Nil => return None,
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) | Value::Time(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Bytes(b) => hex::encode(b),
            Value::Map(_) | Value::List(_) => self.to_json().to_string(),
        })
    }

    /// JSON form (maps to objects, lists to arrays, bytes to hex strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Nil => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) | Value::Time(i) => J::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(hex::encode(b)),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// From JSON as `ParseJSON` maps it: numbers become doubles.
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Shortest decimal form without an exponent (Go's `FormatFloat(f, 'f', -1, 64)`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{d}")
    }
}

/// Converts map entries to an attribute list.
pub fn map_into_attrs(m: Vec<(String, Value)>) -> Vec<KeyValue> {
    m.into_iter()
        .map(|(key, v)| KeyValue {
            key,
            value: Some(v.into_any()),
            ..Default::default()
        })
        .collect()
}

fn ordering(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Compares two values as OTTL does: `==`/`!=` on any kinds (different kinds are unequal,
/// `nil` equals only `nil`, maps and lists compare deeply); ordering only between numbers,
/// strings, bytes or times, and false otherwise.
pub fn compare(a: &Value, op: CmpOp, b: &Value) -> bool {
    let eq = || match ordering(a, b) {
        Some(o) => o == Ordering::Equal,
        None => match (a, b) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Map(_), Value::Map(_)) | (Value::List(_), Value::List(_)) => a == b,
            _ => false,
        },
    };
    match op {
        CmpOp::Eq => eq(),
        CmpOp::Ne => !eq(),
        CmpOp::Lt => ordering(a, b) == Some(Ordering::Less),
        CmpOp::Le => matches!(ordering(a, b), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ordering(a, b) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ordering(a, b), Some(Ordering::Greater | Ordering::Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_the_collector() {
        assert!(compare(&Value::Int(1), CmpOp::Eq, &Value::Double(1.0)));
        assert!(compare(&Value::Int(1), CmpOp::Lt, &Value::Double(1.5)));
        assert!(!compare(&Value::Str("1".into()), CmpOp::Eq, &Value::Int(1)));
        assert!(compare(&Value::Str("1".into()), CmpOp::Ne, &Value::Int(1)));
        assert!(compare(&Value::Nil, CmpOp::Eq, &Value::Nil));
        assert!(!compare(&Value::Nil, CmpOp::Eq, &Value::Int(0)));
        assert!(!compare(&Value::Bool(true), CmpOp::Gt, &Value::Bool(false)));
        assert!(compare(
            &Value::Str("a".into()),
            CmpOp::Lt,
            &Value::Str("b".into())
        ));
        assert!(!compare(&Value::Str("a".into()), CmpOp::Lt, &Value::Int(3)));
    }

    #[test]
    fn string_like_forms() {
        assert_eq!(Value::Double(1.5).to_string_like().as_deref(), Some("1.5"));
        assert_eq!(Value::Double(2.0).to_string_like().as_deref(), Some("2"));
        assert_eq!(
            Value::Bytes(vec![1, 171]).to_string_like().as_deref(),
            Some("01ab")
        );
        assert_eq!(Value::Nil.to_string_like(), None);
        let m = Value::Map(vec![("a".into(), Value::Int(1))]);
        assert_eq!(m.to_string_like().as_deref(), Some(r#"{"a":1}"#));
    }
}

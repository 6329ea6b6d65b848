//! The scalar decoders the pbjson-generated OTLP/JSON impls call (build/otlp_json.rs points
//! them here): they implement the ProtoJSON value rules and OTLP's exceptions, with error
//! messages that say what was expected.
//!
//! - numbers: JSON numbers or strings; doubles also `"NaN"`, `"Infinity"`, `"-Infinity"`;
//!   integers also in exponent/fraction notation when the value is integral (exactly, for
//!   strings; for JSON numbers up to 2^53, beyond which a binary64 cannot tell the value);
//! - `traceId` / `spanId` / `parentSpanId`: hex, any case (OTLP/HTTP "JSON Protobuf
//!   Encoding"); every other `bytes` field base64, standard or URL-safe, padded or not;
//! - enums: the value's name or any int32 number (proto3 enums are open);
//! - `null` anywhere a value is expected: the field's default value.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Longest piece of a bad string value quoted back in an error message.
const QUOTE_MAX: usize = 64;

fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// A protobuf number kind as ProtoJSON writes it.
pub trait NumberKind: Sized + Default {
    /// What the field accepts, for error messages.
    const EXPECTED: &'static str;
    /// From a JSON integer that fits i64/u64.
    fn from_i128(v: i128) -> Option<Self>;
    /// From a JSON number with a fraction or exponent (or beyond u64).
    fn from_f64(v: f64) -> Result<Self, String>;
    /// From a JSON string.
    fn from_text(s: &str) -> Result<Self, String>;
}

/// 2^53: the largest range in which every integer is a binary64.
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

macro_rules! integer_kind {
    ($t:ty, $expected:literal) => {
        impl NumberKind for $t {
            const EXPECTED: &'static str = $expected;
            fn from_i128(v: i128) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Result<Self, String> {
                if !v.is_finite() || v.fract() != 0.0 {
                    return Err(format!("{v} is not an integer"));
                }
                if v.abs() > EXACT_F64_INT {
                    return Err(format!(
                        "{v:e} in exponent notation is beyond 2^53, where a JSON number cannot be read exactly; write it with digits or as a string"
                    ));
                }
                Self::from_i128(v as i128).ok_or_else(|| format!("{v} is out of range"))
            }
            fn from_text(s: &str) -> Result<Self, String> {
                let v = match s.parse::<i128>() {
                    Ok(v) => v,
                    Err(_) => parse_integral(s)?,
                };
                Self::from_i128(v).ok_or_else(|| format!("{} is out of range", quote(s)))
            }
        }
    };
}

integer_kind!(i32, "an int32 (JSON number or decimal string)");
integer_kind!(u32, "a uint32 (JSON number or decimal string)");
integer_kind!(i64, "an int64 (JSON number or decimal string)");
integer_kind!(u64, "a uint64 (JSON number or decimal string)");

impl NumberKind for f64 {
    const EXPECTED: &'static str =
        "a double (JSON number, numeric string, \"NaN\", \"Infinity\" or \"-Infinity\")";
    fn from_i128(v: i128) -> Option<Self> {
        // `as` rounds to the nearest binary64, ties to even
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        Ok(v)
    }
    fn from_text(s: &str) -> Result<Self, String> {
        match s {
            "NaN" => return Ok(f64::NAN),
            "Infinity" => return Ok(f64::INFINITY),
            "-Infinity" => return Ok(f64::NEG_INFINITY),
            _ => {}
        }
        // Rust also reads "inf", "nan", "infinity" in any case: not ProtoJSON spellings
        if s.bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
        {
            return Err(format!("{} is not a number", quote(s)));
        }
        // correctly rounded: any shortest round-trip text gives back its binary64; a finite
        // text too large for a double ("1e400") is out of range, as the same value written as
        // a JSON number is, not infinity
        match s.parse::<f64>() {
            Ok(v) if v.is_infinite() => Err(format!("{} is out of range for a double", quote(s))),
            Ok(v) => Ok(v),
            Err(_) => Err(format!("{} is not a number", quote(s))),
        }
    }
}

/// Reads an integer written in decimal with an optional fraction and exponent
/// (`"1.5e3"`, `"2E+2"`, `"-7.0"`), exactly; an error when the value is not integral or does not
/// fit 128 bits.
pub fn parse_integral(s: &str) -> Result<i128, String> {
    let bad = || format!("{} is not an integer", quote(s));
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(bad());
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let mut exp = exp.saturating_sub(frac.len() as i64);
    while exp < 0 && digits.last() == Some(&b'0') {
        digits.pop();
        exp += 1;
    }
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let digits = &digits[first..];
    if digits.is_empty() {
        return Ok(0);
    }
    if exp < 0 {
        return Err(bad());
    }
    let out_of_range = || format!("{} is out of range", quote(s));
    if digits.len() as i64 + exp > 39 {
        return Err(out_of_range());
    }
    let mut v: u128 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(d - b'0')))
            .ok_or_else(out_of_range)?;
    }
    for _ in 0..exp {
        v = v.checked_mul(10).ok_or_else(out_of_range)?;
    }
    let v = i128::try_from(v).map_err(|_| out_of_range())?;
    Ok(if neg { -v } else { v })
}

/// A ProtoJSON number field of kind `T`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number<T>(pub T);

struct NumberVisitor<T>(PhantomData<T>);

impl<T: NumberKind> Visitor<'_> for NumberVisitor<T> {
    type Value = Number<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i128(i128::from(v))
            .map(Number)
            .ok_or_else(|| E::custom(format!("{v} is out of range, expected {}", T::EXPECTED)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::from_i128(i128::from(v))
            .map(Number)
            .ok_or_else(|| E::custom(format!("{v} is out of range, expected {}", T::EXPECTED)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v)
            .map(Number)
            .map_err(|m| E::custom(format!("{m}, expected {}", T::EXPECTED)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        T::from_text(s)
            .map(Number)
            .map_err(|m| E::custom(format!("{m}, expected {}", T::EXPECTED)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Number(T::default()))
    }
}

impl<'de, T: NumberKind> Deserialize<'de> for Number<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor(PhantomData))
    }
}

/// An OTLP trace or span id of `N` bytes, written as `2N` hex digits of any case; `""` and
/// `null` are the empty (absent) id.
#[derive(Debug, Clone, PartialEq)]
pub struct HexId<const N: usize>(pub Vec<u8>);

/// `traceId`: 16 bytes.
pub type TraceId = HexId<16>;
/// `spanId`, `parentSpanId`: 8 bytes.
pub type SpanId = HexId<8>;

struct HexIdVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for HexIdVisitor<N> {
    type Value = HexId<N>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an id of {} hex digits", 2 * N)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if s.is_empty() {
            return Ok(HexId(Vec::new()));
        }
        let mut out = vec![0u8; N];
        if s.len() != 2 * N || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(E::custom(format!(
                "{} is not an id, expected {} hex digits (OTLP/JSON writes trace and span ids in hex, not base64)",
                quote(s),
                2 * N
            )));
        }
        Ok(HexId(out))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HexId(Vec::new()))
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexId<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HexIdVisitor::<N>)
    }
}

/// A ProtoJSON `bytes` value: base64, standard or URL-safe alphabet, padded or not; `null`
/// is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Base64(pub Vec<u8>);

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

struct Base64Visitor;

impl Visitor<'_> for Base64Visitor {
    type Value = Base64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("bytes as a base64 string (standard or URL-safe alphabet)")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let engine = if s.bytes().any(|b| b == b'-' || b == b'_') {
            URL_SAFE
        } else {
            STANDARD
        };
        engine.decode(s).map(Base64).map_err(|e| {
            E::custom(format!(
                "{} is not base64 ({e}), expected bytes as a base64 string",
                quote(s)
            ))
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Base64(Vec::new()))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Base64Visitor)
    }
}

/// A ProtoJSON enum field: the value's name, or its number (any int32: proto3 enums are
/// open); `null` is 0. An unknown name is an error listing the known ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenEnum<E>(pub i32, PhantomData<E>);

struct EnumVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Into<i32>> Visitor<'de> for EnumVisitor<T> {
    type Value = OpenEnum<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an enum value's name or its number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        i32::try_from(v)
            .map(|n| OpenEnum(n, PhantomData))
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &"an enum number (int32)"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i32::try_from(v)
            .map(|n| OpenEnum(n, PhantomData))
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an enum number (int32)"))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let d: de::value::StrDeserializer<'_, E> = s.into_deserializer();
        T::deserialize(d).map(|v| OpenEnum(v.into(), PhantomData))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(OpenEnum(0, PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Into<i32>> Deserialize<'de> for OpenEnum<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EnumVisitor(PhantomData))
    }
}

/// Any other field (string, bool, list, message list): `null` is the default value.
#[derive(Debug, Clone, PartialEq)]
pub struct OrDefault<T>(pub T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for OrDefault<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OrDefault(Option::<T>::deserialize(d)?.unwrap_or_default()))
    }
}

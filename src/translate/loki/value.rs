//! OTLP `AnyValue` -> text, byte-for-byte like the Go side (pdata `Value.AsString` and
//! `encoding/json`), because Loki's native OTLP ingestion and the contrib lokiexporter are Go:
//! a dashboard or LogQL filter written against their output must match ours. That means JSON
//! with sorted map keys, HTML-escaped `<`, `>`, `&`, bytes as base64 and floats formatted the
//! ES6 way (`1`, `0.5`, `1e-7`, `1e+21`).

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::borrow::Cow;
use std::fmt::Write as _;

/// `Value.AsString()`: strings as they are, scalars formatted, maps and arrays as JSON,
/// bytes as base64, an empty value as "".
pub fn as_string(v: Option<&AnyValue>) -> Cow<'_, str> {
    let Some(val) = v.and_then(|a| a.value.as_ref()) else {
        return Cow::Borrowed("");
    };
    match val {
        Value::StringValue(s) => Cow::Borrowed(s.as_str()),
        Value::BoolValue(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::IntValue(i) => Cow::Owned(i.to_string()),
        Value::DoubleValue(d) => {
            let mut s = String::new();
            if d.is_finite() {
                write_float(&mut s, *d);
            } else {
                // Go's pdata returns a "json: unsupported value" text here; a bare token is
                // more useful in a log line.
                s.push_str(if d.is_nan() {
                    "NaN"
                } else if *d > 0.0 {
                    "+Inf"
                } else {
                    "-Inf"
                });
            }
            Cow::Owned(s)
        }
        Value::BytesValue(b) => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::ArrayValue(_) | Value::KvlistValue(_) => {
            let mut s = String::new();
            write_json_value(&mut s, v);
            Cow::Owned(s)
        }
        // Profiles-only string table reference: meaningless for logs, treated as absent.
        Value::StringValueStrindex(_) => Cow::Borrowed(""),
    }
}

/// Float formatting of Go's `encoding/json` (and pdata `AsString`): shortest round-trip
/// digits, plain notation unless `abs < 1e-6` or `abs >= 1e21`, exponents as `e-7` / `e+21`.
pub fn write_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        out.push_str(mant);
        out.push('e');
        match exp.strip_prefix('-') {
            Some(neg) => {
                out.push('-');
                out.push_str(neg);
            }
            None => {
                out.push('+');
                if exp.len() < 2 {
                    out.push('0');
                }
                out.push_str(exp);
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Whether [`write_json_str`] may have to escape byte `b`: quote, backslash, controls, `<`,
/// `>`, `&`, and 0xE2 (the first byte of U+2028 / U+2029). Written with `|`, not `||`, so that [`block_special`] compiles to a few vector compares.
#[inline(always)]
const fn json_special(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\') | (b == b'<') | (b == b'>') | (b == b'&') | (b == 0xE2)
}

/// [`json_special`] as a table, for the byte-by-byte search.
const JSON_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = json_special(i as u8);
        i += 1;
    }
    t
};

/// Block size of the clean-run skip in [`next_special`].
const BLOCK: usize = 32;

/// Whether any byte of the block is [`json_special`]: a check without branches that the
/// compiler turns into vector compares (SSE2 on x86-64) instead of 32 lookups.
#[inline(always)]
fn block_special(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |any, &b| any | json_special(b))
}

/// Index of the first [`json_special`] byte at or after `from`. Whole blocks without one
/// (nearly all of a log line) are skipped with [`block_special`]; the table finds the byte
/// inside the block that has one, and in the last partial block.
#[inline]
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = bytes
        .get(i..i + BLOCK)
        .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
    {
        if block_special(block) {
            break;
        }
        i += BLOCK;
    }
    let rest = bytes.get(i..)?;
    rest.iter()
        .position(|&b| JSON_SPECIAL[usize::from(b)])
        .map(|p| i + p)
}

/// Appends `s` as a JSON string literal with Go's escaping rules. Runs of bytes that need
/// no escaping (nearly all of a log line) are found with [`next_special`] and copied whole.
pub fn write_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(at) = next_special(bytes, i) {
        i = at;
        let b = bytes[i];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xE2 => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(0xA8)) => "\\u2028",
                (Some(0x80), Some(0xA9)) => "\\u2029",
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => "",
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
            i += 1;
        } else {
            out.push_str(esc);
            i += if b == 0xE2 { 3 } else { 1 };
        }
        start = i;
    }
    // `start` is 0 or just after an escaped ASCII byte or an escaped U+2028 / U+2029
    // sequence: always a char boundary.
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends an `AnyValue` as JSON the way Go marshals `Value.AsRaw()`: maps with sorted keys
/// (the last duplicate key wins), bytes as base64 strings, empty as `null`, non-finite floats
/// as `null` (Go refuses to marshal them).
pub fn write_json_value(out: &mut String, v: Option<&AnyValue>) {
    let Some(val) = v.and_then(|a| a.value.as_ref()) else {
        out.push_str("null");
        return;
    };
    match val {
        Value::StringValue(s) => write_json_str(out, s),
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::DoubleValue(d) => {
            if d.is_finite() {
                write_float(out, *d)
            } else {
                out.push_str("null")
            }
        }
        Value::BytesValue(b) => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        Value::ArrayValue(a) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, Some(item));
            }
            out.push(']');
        }
        Value::KvlistValue(kv) => write_json_map(out, kv.values.iter()),
        Value::StringValueStrindex(_) => out.push_str("null"),
    }
}

/// Appends key-values as a JSON object with sorted keys; for duplicate keys the last wins
/// (Go map semantics).
pub fn write_json_map<'a>(out: &mut String, kvs: impl Iterator<Item = &'a KeyValue>) {
    let mut items: Vec<&KeyValue> = kvs.collect();
    // Stable sort keeps input order among equal keys; keep the last of each run.
    items.sort_by(|a, b| a.key.cmp(&b.key));
    out.push('{');
    let mut first = true;
    for (i, kv) in items.iter().enumerate() {
        if items.get(i + 1).is_some_and(|next| next.key == kv.key) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_json_str(out, &kv.key);
        out.push(':');
        write_json_value(out, kv.value.as_ref());
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte version [`write_json_str`] replaced, as the oracle.
    /// Appends `s` as a JSON string literal with Go's escaping rules.
    fn write_json_str_bytewise(out: &mut String, s: &str) {
        out.push('"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc: Option<&str> = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0x08 => Some("\\b"),
                0x0c => Some("\\f"),
                b'<' => Some("\\u003c"),
                b'>' => Some("\\u003e"),
                b'&' => Some("\\u0026"),
                0..=0x1f => None,
                // U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
                0xE2 if bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xA8) | Some(0xA9)) =>
                {
                    None
                }
                _ => continue,
            };
            out.push_str(&s[start..i]);
            match esc {
                Some(e) => {
                    out.push_str(e);
                    start = i + 1;
                }
                None if b == 0xE2 => {
                    out.push_str(if bytes[i + 2] == 0xA8 {
                        "\\u2028"
                    } else {
                        "\\u2029"
                    });
                    start = i + 3;
                }
                None => {
                    let _ = write!(out, "\\u{:04x}", b);
                    start = i + 1;
                }
            }
        }
        // `start` may point inside a skipped U+2028 sequence only if the loop escaped it, in which
        // case it points after it: always a char boundary.
        out.push_str(&s[start..]);
        out.push('"');
    }

    /// `write_json_str` appends what the byte-wise oracle appends (after existing text).
    fn assert_escapes_like_bytewise(s: &str) {
        let (mut got, mut want) = (String::from("x"), String::from("x"));
        write_json_str(&mut got, s);
        write_json_str_bytewise(&mut want, s);
        assert_eq!(got, want, "{s:?}");
    }

    #[test]
    fn block_check_agrees_with_the_byte_check() {
        for b in 0u8..=255 {
            for at in [0, 17, BLOCK - 1] {
                let mut block = [b'x'; BLOCK];
                block[at] = b;
                assert_eq!(
                    block_special(&block),
                    json_special(b),
                    "byte {b:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn one_special_anywhere_in_a_long_clean_line() {
        // Every byte value at every position of a 100-byte line (blocks of 32 plus a tail),
        // where it forms valid UTF-8 on its own or as the head of U+2028.
        for b in 0u8..=0x7f {
            for at in 0..100 {
                let mut s = "x".repeat(100);
                s.replace_range(at..at + 1, std::str::from_utf8(&[b]).unwrap_or("x"));
                assert_escapes_like_bytewise(&s);
            }
        }
        for at in 0..98 {
            let mut s = "x".repeat(100);
            s.replace_range(at..at + 3, "\u{2028}");
            assert_escapes_like_bytewise(&s);
        }
    }

    #[test]
    fn json_strings_escape_like_the_bytewise_version() {
        let pieces = [
            "a",
            "plain text ",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{1}",
            "\u{1f}",
            "<",
            ">",
            "&",
            "\u{2028}",
            "\u{2029}",
            "\u{2027}",
            "\u{202a}",
            "é",
            "\u{20ac}",
            "\u{e200}",
            "🙂",
            "\u{7f}",
            // clean runs around the block size of the skip
            "0123456789abcdefghijklmnopqrstu",
            "0123456789abcdefghijklmnopqrstuv",
            "0123456789abcdefghijklmnopqrstuvw",
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 16) {
                s.push_str(pieces[((x >> (4 * k)) % pieces.len() as u64) as usize]);
            }
            assert_escapes_like_bytewise(&s);
        }
    }
}

//! The OTTL functions Watchtower supports, with the Collector's names, arguments and
//! semantics (pkg/ottl/ottlfuncs): editors change the item, converters compute values.
//! Pattern, mode, strategy, key-list and limit arguments must be literals, so regular
//! expressions and globs are built once at compile time and a bad one is a config error.

use super::ast::{Expr, Invocation, Key, Literal};
use super::context::{EvalError, Tx};
use super::eval::{CExpr, CPath, CompileError, Compiler, expr_pos};
use super::value::Value;
use regex::Regex;

/// Editors (lowercase functions that change the item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Editor {
    Set,
    DeleteKey,
    DeleteMatchingKeys,
    KeepKeys,
    ReplacePattern,
    ReplaceAllPatterns,
    ReplaceMatch,
    ReplaceAllMatches,
    TruncateAll,
    Limit,
    MergeMaps,
}

/// Converters (uppercase functions that return a value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    Concat,
    Split,
    Sha256,
    Int,
    Double,
    String,
    ParseJson,
    IsMatch,
    IsString,
    IsInt,
    IsDouble,
    IsBool,
    IsMap,
    IsList,
    TraceId,
    SpanId,
    Len,
}

/// Names of the supported editors, for docs and errors.
pub const EDITORS: &[&str] = &[
    "set",
    "delete_key",
    "delete_matching_keys",
    "keep_keys",
    "replace_pattern",
    "replace_all_patterns",
    "replace_match",
    "replace_all_matches",
    "truncate_all",
    "limit",
    "merge_maps",
];

/// Names of the supported converters.
pub const CONVERTERS: &[&str] = &[
    "Concat",
    "Split",
    "SHA256",
    "Int",
    "Double",
    "String",
    "ParseJSON",
    "IsMatch",
    "IsString",
    "IsInt",
    "IsDouble",
    "IsBool",
    "IsMap",
    "IsList",
    "TraceID",
    "SpanID",
    "Len",
];

fn editor_of(name: &str) -> Option<Editor> {
    Some(match name {
        "set" => Editor::Set,
        "delete_key" => Editor::DeleteKey,
        "delete_matching_keys" => Editor::DeleteMatchingKeys,
        "keep_keys" => Editor::KeepKeys,
        "replace_pattern" => Editor::ReplacePattern,
        "replace_all_patterns" => Editor::ReplaceAllPatterns,
        "replace_match" => Editor::ReplaceMatch,
        "replace_all_matches" => Editor::ReplaceAllMatches,
        "truncate_all" => Editor::TruncateAll,
        "limit" => Editor::Limit,
        "merge_maps" => Editor::MergeMaps,
        _ => return None,
    })
}

fn conv_of(name: &str) -> Option<Conv> {
    Some(match name {
        "Concat" => Conv::Concat,
        "Split" => Conv::Split,
        "SHA256" => Conv::Sha256,
        "Int" => Conv::Int,
        "Double" => Conv::Double,
        "String" => Conv::String,
        "ParseJSON" => Conv::ParseJson,
        "IsMatch" => Conv::IsMatch,
        "IsString" => Conv::IsString,
        "IsInt" => Conv::IsInt,
        "IsDouble" => Conv::IsDouble,
        "IsBool" => Conv::IsBool,
        "IsMap" => Conv::IsMap,
        "IsList" => Conv::IsList,
        "TraceID" => Conv::TraceId,
        "SpanID" => Conv::SpanId,
        "Len" => Conv::Len,
        _ => return None,
    })
}

/// A compiled converter call.
#[derive(Clone, Debug)]
pub struct ConvCall {
    pub f: Conv,
    pub args: Vec<CExpr>,
    pub regex: Option<Regex>,
    /// indexes applied to the result (`ParseJSON(body)["a"]`)
    pub keys: Vec<Key>,
}

/// The hash a `replace_*` editor may apply to each replacement, with its format string.
#[derive(Clone, Debug)]
pub struct ReplaceFn {
    pub format: Option<String>,
}

/// A compiled editor call.
#[derive(Clone, Debug)]
pub struct EditorCall {
    pub f: Editor,
    pub target: CPath,
    pub args: Vec<CExpr>,
    pub regex: Option<Regex>,
    /// `key` mode of `replace_all_patterns`
    pub key_mode: bool,
    pub strings: Vec<String>,
    pub int: i64,
    pub hash: Option<ReplaceFn>,
}

fn arity(inv: &Invocation, min: usize, max: usize) -> Result<(), CompileError> {
    let n = inv.args.len();
    if n < min || n > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(CompileError::new(
            inv.pos,
            format!("{} takes {want} arguments, got {n}", inv.name),
        ));
    }
    Ok(())
}

fn lit_str(e: &Expr, what: &str) -> Result<String, CompileError> {
    match e {
        Expr::Literal(Literal::Str(s)) => Ok(s.clone()),
        _ => Err(CompileError::new(
            expr_pos(e),
            format!("{what} must be a string literal"),
        )),
    }
}

fn lit_int(e: &Expr, what: &str) -> Result<i64, CompileError> {
    match e {
        Expr::Literal(Literal::Int(i)) => Ok(*i),
        _ => Err(CompileError::new(
            expr_pos(e),
            format!("{what} must be an integer literal"),
        )),
    }
}

fn lit_strings(e: &Expr, what: &str) -> Result<Vec<String>, CompileError> {
    match e {
        Expr::List(items) => items.iter().map(|i| lit_str(i, what)).collect(),
        _ => Err(CompileError::new(
            expr_pos(e),
            format!("{what} must be a list of string literals"),
        )),
    }
}

fn regex(e: &Expr, pos: usize) -> Result<Regex, CompileError> {
    let p = lit_str(e, "the pattern")?;
    Regex::new(&p).map_err(|err| CompileError::new(pos, format!("invalid pattern {p:?}: {err}")))
}

/// A glob (`*`, `?`, `[...]`, `{a,b}`) as an anchored regular expression, as `replace_match`
/// matches whole strings.
pub fn glob_regex(glob: &str) -> Result<Regex, regex::Error> {
    let mut re = String::from("^(?s:");
    let mut in_class = false;
    let mut alt_depth = 0usize;
    for c in glob.chars() {
        if in_class {
            if c == ']' {
                in_class = false;
            }
            if c == '\\' {
                re.push_str("\\\\");
            } else {
                re.push(c);
            }
            continue;
        }
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                in_class = true;
                re.push('[');
            }
            '{' => {
                alt_depth += 1;
                re.push_str("(?:");
            }
            '}' if alt_depth > 0 => {
                alt_depth -= 1;
                re.push(')');
            }
            ',' if alt_depth > 0 => re.push('|'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str(")$");
    Regex::new(&re)
}

/// Optional `function` and `replacementFormat` arguments of the `replace_*` editors; only
/// `SHA256` is supported as the function.
fn replace_fn(inv: &Invocation, from: usize) -> Result<Option<ReplaceFn>, CompileError> {
    let Some(f) = inv.args.get(from) else {
        return Ok(None);
    };
    match f {
        Expr::Enum(name, _) if name == "SHA256" => {}
        other => {
            return Err(CompileError::new(
                expr_pos(other),
                "the function argument of a replace editor must be SHA256",
            ));
        }
    }
    let format = inv
        .args
        .get(from + 1)
        .map(|e| lit_str(e, "the replacement format"))
        .transpose()?;
    if let Some(fmt) = &format
        && fmt.matches("%s").count() != 1
    {
        return Err(CompileError::new(
            inv.pos,
            "the replacement format must contain %s once",
        ));
    }
    Ok(Some(ReplaceFn { format }))
}

/// Compiles an editor call.
pub fn compile_editor(c: &Compiler, inv: &Invocation) -> Result<EditorCall, CompileError> {
    let Some(f) = editor_of(&inv.name) else {
        let hint = if conv_of(&inv.name).is_some() {
            " (a converter cannot be a statement)"
        } else {
            ""
        };
        return Err(CompileError::new(
            inv.pos,
            format!(
                "unsupported editor {:?}{hint}; supported: {}",
                inv.name,
                EDITORS.join(", ")
            ),
        ));
    };
    let (min, max) = match f {
        Editor::Set | Editor::DeleteKey | Editor::DeleteMatchingKeys | Editor::KeepKeys => (2, 2),
        Editor::TruncateAll => (2, 2),
        Editor::Limit | Editor::MergeMaps => (3, 3),
        Editor::ReplacePattern | Editor::ReplaceMatch | Editor::ReplaceAllMatches => (3, 5),
        Editor::ReplaceAllPatterns => (4, 6),
    };
    arity(inv, min, max)?;
    let target = match &inv.args[0] {
        Expr::Path(p) => c.path(p)?,
        other => {
            return Err(CompileError::new(
                expr_pos(other),
                format!("the first argument of {} must be a path", inv.name),
            ));
        }
    };
    let mut call = EditorCall {
        f,
        target,
        args: Vec::new(),
        regex: None,
        key_mode: false,
        strings: Vec::new(),
        int: 0,
        hash: None,
    };
    match f {
        Editor::Set | Editor::DeleteKey => call.args.push(c.expr(&inv.args[1])?),
        Editor::DeleteMatchingKeys => call.regex = Some(regex(&inv.args[1], inv.pos)?),
        Editor::KeepKeys => call.strings = lit_strings(&inv.args[1], "the keys")?,
        Editor::ReplacePattern => {
            call.regex = Some(regex(&inv.args[1], inv.pos)?);
            call.args.push(c.expr(&inv.args[2])?);
            call.hash = replace_fn(inv, 3)?;
        }
        Editor::ReplaceMatch | Editor::ReplaceAllMatches => {
            let g = lit_str(&inv.args[1], "the pattern")?;
            call.regex = Some(glob_regex(&g).map_err(|e| {
                CompileError::new(inv.pos, format!("invalid glob pattern {g:?}: {e}"))
            })?);
            call.args.push(c.expr(&inv.args[2])?);
            call.hash = replace_fn(inv, 3)?;
        }
        Editor::ReplaceAllPatterns => {
            call.key_mode = match lit_str(&inv.args[1], "the mode")?.as_str() {
                "key" => true,
                "value" => false,
                m => {
                    return Err(CompileError::new(
                        expr_pos(&inv.args[1]),
                        format!("invalid mode {m:?}, must be \"key\" or \"value\""),
                    ));
                }
            };
            call.regex = Some(regex(&inv.args[2], inv.pos)?);
            call.args.push(c.expr(&inv.args[3])?);
            call.hash = replace_fn(inv, 4)?;
        }
        Editor::TruncateAll => {
            call.int = lit_int(&inv.args[1], "the limit")?;
            if call.int < 0 {
                return Err(CompileError::new(inv.pos, "the limit cannot be negative"));
            }
        }
        Editor::Limit => {
            call.int = lit_int(&inv.args[1], "the limit")?;
            call.strings = lit_strings(&inv.args[2], "the priority keys")?;
            if call.int < 1 {
                return Err(CompileError::new(inv.pos, "the limit must be at least 1"));
            }
            if call.strings.len() as i64 > call.int {
                return Err(CompileError::new(
                    inv.pos,
                    "there cannot be more priority keys than the limit",
                ));
            }
        }
        Editor::MergeMaps => {
            call.args.push(c.expr(&inv.args[1])?);
            let s = lit_str(&inv.args[2], "the strategy")?;
            if !["insert", "update", "upsert"].contains(&s.as_str()) {
                return Err(CompileError::new(
                    expr_pos(&inv.args[2]),
                    format!("invalid strategy {s:?}, must be insert, update or upsert"),
                ));
            }
            call.strings = vec![s];
        }
    }
    Ok(call)
}

/// Compiles a converter call.
pub fn compile_converter(
    c: &Compiler,
    inv: &Invocation,
    keys: &[Key],
) -> Result<ConvCall, CompileError> {
    let Some(f) = conv_of(&inv.name) else {
        return Err(CompileError::new(
            inv.pos,
            format!(
                "unsupported converter {:?}; supported: {}",
                inv.name,
                CONVERTERS.join(", ")
            ),
        ));
    };
    let (min, max) = match f {
        Conv::Concat | Conv::Split | Conv::IsMatch => (2, 2),
        _ => (1, 1),
    };
    arity(inv, min, max)?;
    let mut call = ConvCall {
        f,
        args: Vec::new(),
        regex: None,
        keys: keys.to_vec(),
    };
    match f {
        Conv::IsMatch => {
            call.args.push(c.expr(&inv.args[0])?);
            call.regex = Some(regex(&inv.args[1], inv.pos)?);
        }
        Conv::TraceId | Conv::SpanId => {
            let want = if f == Conv::TraceId { 16 } else { 8 };
            match &inv.args[0] {
                Expr::Literal(Literal::Bytes(b)) if b.len() == want => {
                    call.args.push(CExpr::Lit(Value::Bytes(b.clone())))
                }
                _ => {
                    return Err(CompileError::new(
                        inv.pos,
                        format!("{} takes a {want}-byte literal such as 0x0102...", inv.name),
                    ));
                }
            }
        }
        _ => {
            for a in &inv.args {
                call.args.push(c.expr(a)?);
            }
        }
    }
    Ok(call)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()))
}

fn index(v: Value, keys: &[Key]) -> Result<Value, EvalError> {
    let mut v = v;
    for k in keys {
        v = match (v, k) {
            (Value::Map(m), Key::Str(s)) => m
                .into_iter()
                .find(|(mk, _)| mk == s)
                .map_or(Value::Nil, |(_, v)| v),
            (Value::List(l), Key::Int(i)) => {
                match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                    Some(v) => v.clone(),
                    None => return Err(EvalError(format!("index {i} out of range"))),
                }
            }
            (Value::Nil, _) => Value::Nil,
            (other, k) => {
                return Err(EvalError(format!(
                    "a {} cannot be indexed with {k:?}",
                    other.kind()
                )));
            }
        };
    }
    Ok(v)
}

impl ConvCall {
    /// Computes the converter's value.
    pub fn eval(&self, tx: &mut Tx<'_>) -> Result<Value, EvalError> {
        let v = self.compute(tx)?;
        if self.keys.is_empty() {
            Ok(v)
        } else {
            index(v, &self.keys)
        }
    }

    fn compute(&self, tx: &mut Tx<'_>) -> Result<Value, EvalError> {
        let arg = |i: usize, tx: &mut Tx<'_>| self.args[i].eval(tx);
        Ok(match self.f {
            Conv::Concat => {
                let Value::List(vals) = arg(0, tx)? else {
                    return Err(EvalError("Concat expects a list of values".into()));
                };
                let Value::Str(delim) = arg(1, tx)? else {
                    return Err(EvalError("Concat expects a string delimiter".into()));
                };
                let parts: Vec<String> = vals
                    .iter()
                    .map(|v| v.to_string_like().unwrap_or_else(|| "<nil>".into()))
                    .collect();
                Value::Str(parts.join(&delim))
            }
            Conv::Split => {
                let (Value::Str(s), Value::Str(d)) = (arg(0, tx)?, arg(1, tx)?) else {
                    return Err(EvalError(
                        "Split expects a string and a string delimiter".into(),
                    ));
                };
                if s.is_empty() {
                    Value::List(Vec::new())
                } else {
                    Value::List(s.split(d.as_str()).map(|p| Value::Str(p.into())).collect())
                }
            }
            Conv::Sha256 => match arg(0, tx)? {
                Value::Str(s) => Value::Str(sha256_hex(&s)),
                other => {
                    return Err(EvalError(format!(
                        "SHA256 expects a string, got {}",
                        other.kind()
                    )));
                }
            },
            Conv::Int => match arg(0, tx)? {
                Value::Int(i) => Value::Int(i),
                Value::Double(d) => Value::Int(d.trunc() as i64),
                Value::Bool(b) => Value::Int(i64::from(b)),
                Value::Str(s) => s.parse::<i64>().map_or(Value::Nil, Value::Int),
                _ => Value::Nil,
            },
            Conv::Double => match arg(0, tx)? {
                Value::Int(i) => Value::Double(i as f64),
                Value::Double(d) => Value::Double(d),
                Value::Bool(b) => Value::Double(if b { 1.0 } else { 0.0 }),
                Value::Str(s) => s.parse::<f64>().map_or(Value::Nil, Value::Double),
                _ => Value::Nil,
            },
            Conv::String => arg(0, tx)?.to_string_like().map_or(Value::Nil, Value::Str),
            Conv::ParseJson => match arg(0, tx)? {
                Value::Str(s) => match serde_json::from_str::<serde_json::Value>(&s) {
                    Ok(j @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                        Value::from_json(&j)
                    }
                    Ok(_) => return Err(EvalError("ParseJSON: not a JSON object or array".into())),
                    Err(e) => return Err(EvalError(format!("ParseJSON: {e}"))),
                },
                other => {
                    return Err(EvalError(format!(
                        "ParseJSON expects a string, got {}",
                        other.kind()
                    )));
                }
            },
            Conv::IsMatch => {
                let re = self
                    .regex
                    .as_ref()
                    .ok_or_else(|| EvalError("no pattern".into()))?;
                match arg(0, tx)?.to_string_like() {
                    Some(s) => Value::Bool(re.is_match(&s)),
                    None => Value::Bool(false),
                }
            }
            Conv::IsString => Value::Bool(matches!(arg(0, tx)?, Value::Str(_))),
            Conv::IsInt => Value::Bool(matches!(arg(0, tx)?, Value::Int(_))),
            Conv::IsDouble => Value::Bool(matches!(arg(0, tx)?, Value::Double(_))),
            Conv::IsBool => Value::Bool(matches!(arg(0, tx)?, Value::Bool(_))),
            Conv::IsMap => Value::Bool(matches!(arg(0, tx)?, Value::Map(_))),
            Conv::IsList => Value::Bool(matches!(arg(0, tx)?, Value::List(_))),
            Conv::TraceId | Conv::SpanId => arg(0, tx)?,
            Conv::Len => match arg(0, tx)? {
                Value::Str(s) => Value::Int(s.chars().count() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                Value::Bytes(b) => Value::Int(b.len() as i64),
                other => return Err(EvalError(format!("Len does not take a {}", other.kind()))),
            },
        })
    }
}

/// Replaces with `$1`-style expansion, optionally hashing each replacement.
fn replace(re: &Regex, s: &str, repl: &str, hash: &Option<ReplaceFn>, all: bool) -> String {
    let limit = if all { 0 } else { 1 };
    match hash {
        None => re.replacen(s, limit, repl).into_owned(),
        Some(h) => re
            .replacen(s, limit, |caps: &regex::Captures<'_>| {
                let mut expanded = String::new();
                caps.expand(repl, &mut expanded);
                let hashed = sha256_hex(&expanded);
                match &h.format {
                    Some(f) => f.replacen("%s", &hashed, 1),
                    None => hashed,
                }
            })
            .into_owned(),
    }
}

fn whole_match(re: &Regex, s: &str, repl: &str, hash: &Option<ReplaceFn>) -> Option<String> {
    if !re.is_match(s) {
        return None;
    }
    Some(match hash {
        None => repl.to_string(),
        Some(h) => {
            let hashed = sha256_hex(repl);
            match &h.format {
                Some(f) => f.replacen("%s", &hashed, 1),
                None => hashed,
            }
        }
    })
}

impl EditorCall {
    fn target_map(&self, tx: &mut Tx<'_>) -> Result<Vec<(String, Value)>, EvalError> {
        match tx.get(self.target.field, &self.target.keys)? {
            Value::Map(m) => Ok(m),
            other => Err(EvalError(format!("expected a map, got {}", other.kind()))),
        }
    }

    fn put(&self, tx: &mut Tx<'_>, v: Value) -> Result<(), EvalError> {
        tx.set(self.target.field, &self.target.keys, v)
    }

    fn replacement(&self, tx: &mut Tx<'_>) -> Result<String, EvalError> {
        match self.args[0].eval(tx)? {
            Value::Str(s) => Ok(s),
            other => Err(EvalError(format!(
                "the replacement must be a string, got {}",
                other.kind()
            ))),
        }
    }

    /// Runs the editor on an item.
    pub fn run(&self, tx: &mut Tx<'_>) -> Result<(), EvalError> {
        let re = self.regex.as_ref();
        match self.f {
            Editor::Set => {
                let v = self.args[0].eval(tx)?;
                // no field takes nil: set does nothing then
                if v != Value::Nil {
                    self.put(tx, v)?;
                }
            }
            Editor::DeleteKey => {
                let Value::Str(k) = self.args[0].eval(tx)? else {
                    return Err(EvalError("delete_key expects a string key".into()));
                };
                let mut m = self.target_map(tx)?;
                m.retain(|(mk, _)| *mk != k);
                self.put(tx, Value::Map(m))?;
            }
            Editor::DeleteMatchingKeys => {
                let mut m = self.target_map(tx)?;
                if let Some(re) = re {
                    m.retain(|(k, _)| !re.is_match(k));
                }
                self.put(tx, Value::Map(m))?;
            }
            Editor::KeepKeys => {
                let mut m = self.target_map(tx)?;
                m.retain(|(k, _)| self.strings.contains(k));
                self.put(tx, Value::Map(m))?;
            }
            Editor::ReplacePattern | Editor::ReplaceMatch => {
                let repl = self.replacement(tx)?;
                if let (Value::Str(s), Some(re)) =
                    (tx.get(self.target.field, &self.target.keys)?, re)
                {
                    let new = if self.f == Editor::ReplacePattern {
                        Some(replace(re, &s, &repl, &self.hash, true))
                    } else {
                        whole_match(re, &s, &repl, &self.hash)
                    };
                    if let Some(new) = new
                        && new != s
                    {
                        self.put(tx, Value::Str(new))?;
                    }
                }
            }
            Editor::ReplaceAllPatterns | Editor::ReplaceAllMatches => {
                let repl = self.replacement(tx)?;
                let Some(re) = re else { return Ok(()) };
                let mut m = self.target_map(tx)?;
                for (k, v) in m.iter_mut() {
                    if self.f == Editor::ReplaceAllMatches {
                        if let Value::Str(s) = v
                            && let Some(new) = whole_match(re, s, &repl, &self.hash)
                        {
                            *s = new;
                        }
                    } else if self.key_mode {
                        *k = replace(re, k, &repl, &self.hash, true);
                    } else if let Value::Str(s) = v {
                        *s = replace(re, s, &repl, &self.hash, true);
                    }
                }
                self.put(tx, Value::Map(m))?;
            }
            Editor::TruncateAll => {
                let mut m = self.target_map(tx)?;
                let limit = self.int as usize;
                for (_, v) in m.iter_mut() {
                    if let Value::Str(s) = v
                        && s.len() > limit
                    {
                        let mut end = limit;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.truncate(end);
                    }
                }
                self.put(tx, Value::Map(m))?;
            }
            Editor::Limit => {
                let m = self.target_map(tx)?;
                let limit = self.int as usize;
                if m.len() <= limit {
                    return Ok(());
                }
                let present = m.iter().filter(|(k, _)| self.strings.contains(k)).count();
                let mut room = limit.saturating_sub(present);
                let kept: Vec<(String, Value)> = m
                    .into_iter()
                    .filter(|(k, _)| {
                        if self.strings.contains(k) {
                            true
                        } else if room > 0 {
                            room -= 1;
                            true
                        } else {
                            false
                        }
                    })
                    .collect();
                self.put(tx, Value::Map(kept))?;
            }
            Editor::MergeMaps => {
                let Value::Map(src) = self.args[0].eval(tx)? else {
                    return Err(EvalError("merge_maps expects a map source".into()));
                };
                let mut m = self.target_map(tx)?;
                let strategy = self.strings[0].as_str();
                for (k, v) in src {
                    match (m.iter().position(|(mk, _)| *mk == k), strategy) {
                        (None, "insert" | "upsert") => m.push((k, v)),
                        (Some(i), "update" | "upsert") => m[i].1 = v,
                        _ => {}
                    }
                }
                self.put(tx, Value::Map(m))?;
            }
        }
        Ok(())
    }
}

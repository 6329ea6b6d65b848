//! `${env:NAME}` and `${env:NAME:-default}` references (also `${NAME}`) in a config text, resolved
//! as the Collector resolves them: after the YAML is parsed, inside the values, so that whatever
//! a variable holds it stays one value and can never change the YAML around it (add keys, end a
//! quoted string, start a comment). `$$` is a literal `$`.
//!
//! How: [`mask`] replaces each reference in the text by a placeholder of the same length made of
//! private-use characters, which YAML reads as ordinary text in every context (plain, quoted,
//! flow, block scalars, keys), so lines and columns of every later error stay those of the file;
//! [`resolve`] then replaces the placeholders inside the parsed values. A scalar that is one
//! reference and nothing else, unless written in quotes of its own, takes the type of a number
//! or boolean in its canonical spelling (`400`, `0.5`, `true`), as the Collector types it; any
//! other value is a string, exactly as the variable holds it. `keypath::parse` then gives each
//! setting what it takes, from the variables' text that [`resolve`] returns ([`Originals`]): a
//! text setting given a typed value gets its text; a setting that takes a sequence or mapping
//! and is given the text of one (`exporters: ${env:EXPORTERS}` with `[otlp, debug]`) gets it as
//! YAML reads it, as the Collector's confmap does. References in comments vanish with the
//! comments.

use serde_yaml::Value;

/// A reference problem, with the 1-based line of the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong, naming the variable.
    pub message: String,
}

/// First and last characters of a placeholder (Unicode private use: no config holds them).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// One reference found by [`mask`].
#[derive(Debug, Clone)]
struct Reference {
    /// What stood between `${` and `}`; `None` for a `${` without its `}` on the line.
    body: Option<String>,
    /// 1-based line.
    line: usize,
    /// Written between quotes of its own (`"${env:X}"`, `'${env:X}'`) or after YAML's string
    /// tag (`!!str ${env:X}`): the value is text even when it looks like a number.
    quoted: bool,
}

/// A config text with its references replaced by placeholders.
#[derive(Debug, Clone)]
pub struct Masked {
    /// The text to parse.
    pub text: String,
    refs: Vec<Reference>,
}

/// Replaces every `${...}` by a placeholder and every `$$` by `$`. A `${` without its `}` on
/// the line gets a placeholder too: an error of [`resolve`] if it reaches a value (in a comment
/// it vanishes).
pub fn mask(text: &str) -> Masked {
    let mut out = String::with_capacity(text.len());
    let mut refs = Vec::new();
    // the placeholder characters written in the file itself would be taken for references:
    // each becomes an unterminated reference, an error once it reaches a value
    let reserved = text.contains([OPEN, CLOSE]);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let cleaned;
        let line = if reserved && line.contains([OPEN, CLOSE]) {
            cleaned = line.replace([OPEN, CLOSE], "${");
            cleaned.as_str()
        } else {
            line
        };
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            let Some(body_start) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let end = body_start
                .find(['}', '\n'])
                .filter(|&e| body_start[e..].starts_with('}'));
            let Some(end) = end else {
                out.push_str(&placeholder(refs.len(), 2));
                refs.push(Reference {
                    body: None,
                    line: i + 1,
                    quoted: false,
                });
                rest = body_start;
                continue;
            };
            let body = &body_start[..end];
            let quote_before = out.chars().last().filter(|c| matches!(c, '"' | '\''));
            // text by quotes of its own, or by YAML's string tag (`!!str ${env:X}`)
            let str_tag = out.ends_with([' ', '\t'])
                && out
                    .trim_end_matches([' ', '\t'])
                    .rsplit([' ', '\t', ':', '[', ',', '{', '-'])
                    .next()
                    .is_some_and(|t| t == "!!str" || t == "!<tag:yaml.org,2002:str>");
            let quoted = str_tag
                || (quote_before.is_some()
                    && body_start[end + 1..].starts_with(quote_before.unwrap_or(' ')));
            out.push_str(&placeholder(refs.len(), body.chars().count() + 3));
            refs.push(Reference {
                body: Some(body.to_string()),
                line: i + 1,
                quoted,
            });
            rest = &body_start[end + 1..];
        }
        out.push_str(rest);
    }
    Masked { text: out, refs }
}

/// The placeholder of reference `index`: OPEN, the index, CLOSE padding to `width` characters
/// (at least one CLOSE).
fn placeholder(index: usize, width: usize) -> String {
    let mut p = format!("{OPEN}{index}{CLOSE}");
    while p.chars().count() < width {
        p.push(CLOSE);
    }
    p
}

/// What each unquoted reference that is a whole scalar held, by reference index: the text a
/// text setting reads instead of a typed value, and the YAML a setting that takes a sequence or
/// mapping reads instead of the text.
pub type Originals = std::collections::BTreeMap<usize, String>;

/// The reference index of the placeholder that `s` (a part of a [`Masked`] text) starts
/// with; `None` when `s` does not start with one.
pub fn placeholder_at(s: &str) -> Option<usize> {
    placeholder_index(s.strip_prefix(OPEN)?).map(|(i, _)| i)
}

/// Replaces the placeholders in `value` (keys included) by the variables' values from
/// `lookup`. Returns the text of every unquoted whole-scalar reference, or every error (a
/// variable not set without a default, an invalid name, an unterminated `${`).
pub fn resolve(
    value: &mut Value,
    masked: &Masked,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Originals, Vec<EnvError>> {
    let mut errors = Vec::new();
    let mut originals = Originals::new();
    walk(value, masked, lookup, &mut errors, &mut originals);
    errors.sort_by_key(|e| e.line);
    errors.dedup();
    if errors.is_empty() {
        Ok(originals)
    } else {
        Err(errors)
    }
}

fn walk(
    v: &mut Value,
    m: &Masked,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
    originals: &mut Originals,
) {
    match v {
        Value::String(s) => {
            if let Some(new) = expand_scalar(s, m, lookup, errors, originals) {
                *v = new;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, m, lookup, errors, originals);
            }
        }
        Value::Mapping(map) => {
            let entries = std::mem::take(map);
            // lines of the references that made keys, for a duplicate found later
            let mut ref_lines: Vec<(Value, usize)> = Vec::new();
            for (mut k, mut val) in entries {
                let mut from_ref = None;
                if let Value::String(s) = &k
                    && s.contains(OPEN)
                {
                    from_ref = first_reference(s, m);
                    // a key is text: a reference in it is never typed
                    if let Some(text) = expand_text(s, m, lookup, errors) {
                        k = Value::String(text);
                    }
                }
                walk(&mut val, m, lookup, errors, originals);
                if map.contains_key(&k) {
                    // two keys equal once resolved: an error, as a literal duplicate is
                    let name = k.as_str().unwrap_or("?").to_string();
                    let line = from_ref
                        .map(|r| r.line)
                        .or_else(|| ref_lines.iter().find(|(key, _)| *key == k).map(|(_, l)| *l));
                    errors.push(EnvError {
                        line: line.unwrap_or(0),
                        message: format!(
                            "key {name:?} appears twice once its environment references are resolved"
                        ),
                    });
                    continue;
                }
                if let Some(r) = from_ref {
                    ref_lines.push((k.clone(), r.line));
                }
                map.insert(k, val);
            }
        }
        Value::Tagged(t) => walk(&mut t.value, m, lookup, errors, originals),
        _ => {}
    }
}

/// The value of a string scalar with references: typed when it is one reference alone (its
/// text then kept in `originals` when unquoted).
fn expand_scalar(
    s: &str,
    m: &Masked,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
    originals: &mut Originals,
) -> Option<Value> {
    if !s.contains(OPEN) {
        return None;
    }
    if let Some(i) = whole_reference(s)
        && let Some(r) = m.refs.get(i)
    {
        let text = value_of(r, lookup, errors)?;
        if r.quoted {
            return Some(Value::String(text));
        }
        let v = typed(&text);
        originals.insert(i, text);
        return Some(v);
    }
    expand_text(s, m, lookup, errors).map(Value::String)
}

/// The reference index at the start of `after` (the text after an OPEN) and the text after
/// the placeholder's CLOSE characters.
fn placeholder_index(after: &str) -> Option<(usize, &str)> {
    let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let i = after[..digits].parse().ok()?;
    Some((i, after[digits..].trim_start_matches(CLOSE)))
}

/// The reference of the first placeholder in `s`.
fn first_reference<'m>(s: &str, m: &'m Masked) -> Option<&'m Reference> {
    let (i, _) = placeholder_index(&s[s.find(OPEN)? + OPEN.len_utf8()..])?;
    m.refs.get(i)
}

/// The index of the placeholder when `s` is one placeholder and nothing else.
fn whole_reference(s: &str) -> Option<usize> {
    let inner = s.strip_prefix(OPEN)?.trim_end_matches(CLOSE);
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) || !s.ends_with(CLOSE) {
        return None;
    }
    inner.parse().ok()
}

/// `s` with every placeholder replaced by its value (a string); `None` after an error.
fn expand_text(
    s: &str,
    m: &Masked,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut ok = true;
    while let Some(pos) = rest.find(OPEN) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + OPEN.len_utf8()..];
        let found = placeholder_index(after).and_then(|(i, tail)| Some((m.refs.get(i)?, tail)));
        let Some((r, tail)) = found else {
            out.push(OPEN);
            rest = after;
            continue;
        };
        match value_of(r, lookup, errors) {
            Some(v) => out.push_str(&v),
            None => ok = false,
        }
        rest = tail;
    }
    out.push_str(rest);
    ok.then_some(out)
}

/// What [`process`] answers for a variable whose value is not UTF-8: one private-use character
/// (a real value that is exactly this character would be taken for it).
const NOT_UTF8: &str = "\u{E002}";

/// The process environment as a lookup: a variable that is set but not valid UTF-8 is an error
/// of [`resolve`] naming it, neither "not set" nor its default.
pub fn process(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.into_string().unwrap_or_else(|_| NOT_UTF8.to_string()))
}

/// A reference's value, or `None` (and an error) when it has none.
fn value_of(
    r: &Reference,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
) -> Option<String> {
    let Some(body) = &r.body else {
        errors.push(EnvError {
            line: r.line,
            message: "unterminated ${ reference".into(),
        });
        return None;
    };
    let name_default = body.strip_prefix("env:").unwrap_or(body);
    let (name, default) = match name_default.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (name_default, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        errors.push(EnvError {
            line: r.line,
            message: format!("invalid environment reference ${{{body}}}"),
        });
        return None;
    }
    match (lookup(name), default) {
        (Some(v), _) if v == NOT_UTF8 => {
            errors.push(EnvError {
                line: r.line,
                message: format!("environment variable {name} is not valid UTF-8"),
            });
            None
        }
        (Some(v), _) if !v.is_empty() || default.is_none() => Some(v),
        (_, Some(d)) => Some(d.to_string()),
        (None, None) => {
            errors.push(EnvError {
                line: r.line,
                message: format!(
                    "environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"
                ),
            });
            None
        }
        (Some(v), None) => Some(v),
    }
}

/// A whole-scalar value: a number or boolean in its canonical spelling keeps that type (so a
/// text setting given it reads it back exactly; `1e3`, `+1`, `.inf`, `True`, `007` stay text),
/// anything else is the string itself.
fn typed(text: &str) -> Value {
    if text == "true" || text == "false" {
        return Value::Bool(text == "true");
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        && let Ok(Value::Number(n)) = serde_yaml::from_str::<Value>(text)
        && n.to_string() == text
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        Some(
            match name {
                "HOST" => "tempo",
                "EMPTY" => "",
                "TOKEN" => "Bearer abc #def",
                "COLON" => "x: y",
                "QUOTE" => "a\"b'c",
                "NL" => "one\nevil: injected",
                "NUM" => "400",
                "FLOAT" => "0.5",
                "BOOL" => "true",
                "SCI" => "1e3",
                "INJ" => "abc, X-Evil: injected",
                "BS" => "C:\\new\\temp",
                "LIST" => "[1,2]",
                "MAP" => "{k: v}",
                "QUOTED" => "\"q\"",
                "PIPE" => "|",
                "STAR" => "*anchor",
                "SPACES" => "  x  ",
                "CTRL" => "a\u{7f}b\u{2028}c",
                _ => return None,
            }
            .to_string(),
        )
    }

    fn load(text: &str) -> Result<Value, Vec<EnvError>> {
        let m = mask(text);
        let mut v: Value = serde_yaml::from_str(&m.text).unwrap_or_else(|e| panic!("{e}: {text}"));
        resolve(&mut v, &m, &env).map(|_| v)
    }

    fn read(text: &str) -> Value {
        load(text).unwrap_or_else(|e| panic!("{e:?}: {text}"))
    }

    #[test]
    fn expands_and_defaults() {
        assert_eq!(read("a: ${env:HOST}:4317\n")["a"], "tempo:4317");
        assert_eq!(read("a: ${HOST}\n")["a"], "tempo");
        assert_eq!(read("a: ${env:NOPE:-http://x:1}\n")["a"], "http://x:1");
        assert_eq!(read("a: ${env:EMPTY:-d}\n")["a"], "d");
        assert_eq!(
            read("a: $$HOME $5 $${env:HOST}\n")["a"],
            "$HOME $5 ${env:HOST}"
        );
        // a reference in a comment is not resolved (and not an error)
        assert_eq!(read("a: 1 # ${env:NOPE} ${bad-name} ${\n")["a"], 1);
    }

    #[test]
    fn a_value_stays_one_value_whatever_it_holds() {
        // whole values, quoted or not, in block and flow style: exact strings; canonical
        // numbers and booleans typed
        let v = read(
            "a: ${env:TOKEN}\nb: \"${env:COLON}\"\nc: ${env:NUM}\nd: '${env:BOOL}'\ne: ${env:NL}\nf: ${env:SCI}\ng: ${env:FLOAT}\nh: ${env:LIST}\ni: ${env:MAP}\nj: ${env:QUOTED}\nk: ${env:PIPE}\nl: ${env:STAR}\nm: ${env:SPACES}\nn: ${env:CTRL}\n",
        );
        assert_eq!(v["a"], "Bearer abc #def");
        assert_eq!(v["b"], "x: y");
        assert_eq!(v["c"], 400);
        // quotes of its own say text
        assert_eq!(v["d"], "true");
        assert_eq!(v["e"], "one\nevil: injected");
        assert_eq!(v["f"], "1e3");
        assert_eq!(v["g"], 0.5);
        // text here; a setting that takes a sequence or mapping reads it as YAML
        // (`keypath::parse`)
        assert_eq!(v["h"], "[1,2]");
        assert_eq!(v["i"], "{k: v}");
        assert_eq!(v["j"], "\"q\"");
        assert_eq!(v["k"], "|");
        assert_eq!(v["l"], "*anchor");
        assert_eq!(v["m"], "  x  ");
        assert_eq!(v["n"], "a\u{7f}b\u{2028}c");
        assert_eq!(
            v.as_mapping().map(|m| m.len()),
            Some(14),
            "no key added: {v:?}"
        );
        // parts of values, in every style the trials used
        let v = read(
            "h: {X-Desc: Bearer\n  ${env:INJ}}\ns: [a\n  ${env:INJ}]\np: pre ${env:SPACES}/path\nq: \"first\n  ${env:BS} last\"\nr: 'it''s ${env:QUOTE}'\nt: &anc ${env:LIST}\nu: !!str ${env:NUM}\nw: |\n  line ${env:TOKEN}\n  ${env:NL}\nx: ${env:EMPTY:-}${env:STAR}\n",
        );
        assert_eq!(v["h"]["X-Desc"], "Bearer abc, X-Evil: injected");
        assert!(v["h"].get("X-Evil").is_none(), "{v:?}");
        assert_eq!(v["s"].as_sequence().map(Vec::len), Some(1));
        assert_eq!(v["s"][0], "a abc, X-Evil: injected");
        assert_eq!(v["p"], "pre   x  /path");
        assert_eq!(v["q"], "first C:\\new\\temp last");
        assert_eq!(v["r"], "it's a\"b'c");
        assert_eq!(v["t"], "[1,2]");
        assert_eq!(v["w"], "line Bearer abc #def\none\nevil: injected\n");
        assert_eq!(v["x"], "*anchor");
        // a reference in a key is text
        let v = read("${env:NUM}: v\n${env:COLON}: w\n");
        assert_eq!(v["400"], "v");
        assert_eq!(v["x: y"], "w");
        // quoted, a number stays text (a label value, a file name); unquoted it is typed
        let v =
            read("a: \"${env:NUM}\"\nb: ${env:NUM}\nc: { x: '${env:FLOAT}', y: ${env:FLOAT} }\n");
        assert_eq!(v["a"], "400");
        assert_eq!(v["b"], 400);
        assert_eq!(v["c"]["x"], "0.5");
        assert_eq!(v["c"]["y"], 0.5);
    }

    #[test]
    fn whole_references_keep_their_text() {
        let m = mask(
            "a: ${env:NUM}\nb: ${env:LIST}\nc: ${env:COLON}\nd: ${env:TOKEN}\ne: '${env:MAP}'\n",
        );
        let mut v: Value = serde_yaml::from_str(&m.text).unwrap_or_default();
        let originals = resolve(&mut v, &m, &env).unwrap_or_default();
        assert_eq!(v["c"], "x: y");
        // by reference index: the unquoted whole scalars (a quoted one is always text)
        let want: Originals = [
            (0, "400"),
            (1, "[1,2]"),
            (2, "x: y"),
            (3, "Bearer abc #def"),
        ]
        .into_iter()
        .map(|(i, t)| (i, t.to_string()))
        .collect();
        assert_eq!(originals, want);
        let at_b = m
            .text
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("b: "))
            .unwrap_or("");
        assert_eq!(placeholder_at(at_b), Some(1));
    }

    #[test]
    fn keys_equal_once_resolved_are_an_error_not_an_overwrite() {
        let errs =
            load("h:\n  X-Dup: original\n  ${env:HOST}: from-var\n  tempo: again\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 3);
        assert!(
            errs[0].message.contains("\"tempo\" appears twice"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_placeholder_characters_in_the_file_are_no_references() {
        let errs = load("a: \"\u{E000}0 literal\"\nb: ${env:HOST}\n").unwrap_err();
        assert_eq!(errs[0].line, 1, "{errs:?}");
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_named_not_taken_for_unset() {
        let m = mask("a: ${env:K:-dflt}\n");
        let mut v: Value = serde_yaml::from_str(&m.text).unwrap();
        let errs = resolve(&mut v, &m, &|_| Some(NOT_UTF8.to_string())).unwrap_err();
        assert_eq!(errs[0].message, "environment variable K is not valid UTF-8");
    }

    #[test]
    fn placeholders_keep_lines_and_columns() {
        let m = mask("a: ${env:HOST}\nb: [${X}, x]\n");
        let lines: Vec<&str> = m.text.lines().collect();
        assert_eq!(lines[0].chars().count(), "a: ${env:HOST}".len());
        assert_eq!(lines[1].chars().count(), "b: [${X}, x]".len());
        assert!(lines[1].ends_with(", x]"), "{lines:?}");
    }

    #[test]
    fn missing_variable_is_an_error_with_line() {
        let errs =
            load("a: 1\nb: ${env:SUMO_OTLP_ENDPOINT}\nc: ${env:bad-name}\nd: x ${env:HOST\n")
                .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("SUMO_OTLP_ENDPOINT"));
        assert_eq!(errs[1].line, 3);
        assert!(errs[1].message.contains("invalid environment reference"));
        assert_eq!(errs[2].line, 4);
        assert!(errs[2].message.contains("unterminated"));
    }
}

//! `${env:NAME}` and `${env:NAME:-default}` interpolation (also `${NAME}`), done on the raw
//! text so that YAML error locations stay right. `$$` escapes a dollar sign.
//!
//! A value is inserted so that it stays one value, whatever it holds (the Collector expands
//! after parsing, so a value never changes the YAML around it; a text expansion has to quote).
//! The text is scanned with the YAML state carried from line to line (quoted scalars, flow
//! collections and block scalars may span lines):
//!
//! - inside a double-quoted scalar the value is escaped as a double-quoted string (`"`, `\`,
//!   line breaks); inside a single-quoted one, `'` is doubled (a line break is an error);
//! - inside a block scalar (`|`, `>`) it is inserted as written (a line break is an error);
//! - as a whole plain scalar (`key: ${env:X}`, `- ${env:X}`, `{ key: ${env:X} }`, or alone on
//!   the line after `key:`) it is inserted as written when YAML reads it back as itself
//!   (`400`, `true`, `tempo:4317`), so numbers and booleans keep their type as in the
//!   Collector (text fields such as headers and credentials take them as text), and
//!   otherwise as a double-quoted string: `Bearer abc #def` stays whole instead of losing
//!   ` #def` to a comment;
//! - as part of a plain scalar (`http://${env:HOST}:4318`, `Bearer ${env:TOKEN}`) it is
//!   inserted as written when it cannot change the text around it (no `#`, tab, line break,
//!   `: `, and no `,[]{}` inside `{ }` or `[ ]`); otherwise it is an error naming the variable
//!   and asking for double quotes.
//!
//! References in comments are left alone.

/// An interpolation problem, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong, naming the variable.
    pub message: String,
}

/// The YAML state at a point of the text, carried across lines.
#[derive(Debug, Default, Clone)]
struct State {
    /// inside a `"..."` scalar
    dq: bool,
    /// inside a `'...'` scalar
    sq: bool,
    /// open `{` / `[` (flow collections)
    depth: usize,
    /// inside a block scalar whose key line has this indentation
    block: Option<usize>,
    /// the last code line ended where a value is still to come (`key:`, `-`): a scalar alone
    /// on the next line is a whole value, not the continuation of a plain one
    value_pending: bool,
}

/// Where a reference stands.
#[derive(Debug, PartialEq)]
enum Context {
    DoubleQuoted,
    SingleQuoted,
    Block,
    /// whole: the reference is the entire plain scalar
    Plain {
        flow: bool,
        whole: bool,
        starts: bool,
    },
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a scalar may begin after `before` (the line so far): at the line's start, after
/// `key:` or a sequence's `-` and a blank, or after `{`, `[`, `,` in flow.
fn scalar_starts(before: &str, flow: bool) -> bool {
    let b = before.trim_end_matches([' ', '\t']);
    let blank = b.len() < before.len();
    let dash_or_q = b
        .strip_suffix('-')
        .or_else(|| b.strip_suffix('?'))
        .is_some_and(|h| {
            h.is_empty() || h.ends_with([' ', '\t']) || (flow && h.ends_with(['[', ',', '{']))
        });
    b.is_empty()
        || (blank && (b.ends_with(':') || dash_or_q))
        || (flow && b.ends_with(['{', '[', ',']))
}

/// Expands references using `lookup`; returns every error found.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut st = State::default();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(parent) = st.block {
            if body.trim().is_empty() || indent_of(body) > parent {
                expand_line(line, lineno, &mut st, true, lookup, &mut out, &mut errors);
                continue;
            }
            st.block = None;
        }
        expand_line(line, lineno, &mut st, false, lookup, &mut out, &mut errors);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Scans one line, updating `st` and writing the expanded line to `out`.
fn expand_line(
    line: &str,
    lineno: usize,
    st: &mut State,
    in_block: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<EnvError>,
) {
    let continues_plain = !in_block
        && !st.dq
        && !st.sq
        && st.depth == 0
        && !st.value_pending
        && !line.trim().is_empty()
        && !line.trim_start().starts_with('#');
    let bytes = line.as_bytes();
    let mut i = 0;
    // where the code of this line ends (a comment or the line end), for the next line's state
    let mut code_end = line.trim_end_matches(['\n', '\r']).len();
    while i < line.len() {
        let c = bytes[i];
        let before = &line[..i];
        if !in_block && !st.dq && !st.sq {
            // a comment: left as it is
            if c == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) {
                code_end = code_end.min(i);
                out.push_str(&line[i..]);
                break;
            }
            let flow = st.depth > 0;
            match c {
                b'"' | b'\'' if scalar_starts(before, flow) => {
                    if c == b'"' {
                        st.dq = true;
                    } else {
                        st.sq = true;
                    }
                }
                b'{' | b'[' if flow || scalar_starts(before, flow) => st.depth += 1,
                b'}' | b']' if flow => st.depth -= 1,
                _ => {}
            }
        } else if st.dq && !in_block {
            if c == b'\\' && i + 1 < line.len() {
                // an escape: copy both
                let n = line[i + 1..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&line[i..i + 1 + n]);
                i += 1 + n;
                continue;
            }
            if c == b'"' {
                st.dq = false;
            }
        } else if st.sq && !in_block && c == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                out.push_str("''");
                i += 2;
                continue;
            }
            st.sq = false;
        }
        if c != b'$' {
            let n = line[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&line[i..i + n]);
            i += n;
            continue;
        }
        // `$$`: a literal dollar sign
        if bytes.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'{') {
            out.push('$');
            i += 1;
            continue;
        }
        let Some(end) = line[i + 2..].find('}') else {
            errors.push(EnvError {
                line: lineno,
                message: "unterminated ${ reference".into(),
            });
            out.push_str(&line[i..]);
            break;
        };
        let body = &line[i + 2..i + 2 + end];
        let after = &line[i + 3 + end..];
        i += 3 + end;
        let Some(value) = resolve(body, lineno, lookup, errors) else {
            continue;
        };
        let ctx = if in_block {
            Context::Block
        } else if st.dq {
            Context::DoubleQuoted
        } else if st.sq {
            Context::SingleQuoted
        } else {
            let flow = st.depth > 0;
            let starts =
                scalar_starts(before, flow) && !(continues_plain && before.trim().is_empty());
            let ends = {
                let a = after.trim_start_matches([' ', '\t']);
                let blank = a.len() < after.len();
                a.is_empty()
                    || a.starts_with(['\n', '\r'])
                    || (blank && a.starts_with('#'))
                    || (flow && a.starts_with([',', '}', ']']))
            };
            Context::Plain {
                flow,
                whole: starts && ends,
                starts,
            }
        };
        match insertion(&ctx, after, &value) {
            Ok(t) => out.push_str(&t),
            Err(why) => {
                let name = body.strip_prefix("env:").unwrap_or(body);
                let name = name.split_once(":-").map_or(name, |(n, _)| n);
                errors.push(EnvError {
                    line: lineno,
                    message: format!(
                        "the value of {name} {why}; write the whole value that holds ${{env:{name}}} in double quotes"
                    ),
                });
            }
        }
    }
    if !in_block && !st.dq && !st.sq {
        let code = line[..code_end].trim_end();
        st.value_pending = code.ends_with(':')
            || code.ends_with(" -")
            || code.trim() == "-"
            || code.is_empty() && st.value_pending;
        // a block scalar begins after `key: |` / `- >-` (indicators and a comment allowed)
        let t = code.trim_end();
        let last = t.rsplit([' ', '\t']).next().unwrap_or("");
        if st.depth == 0
            && (last.starts_with('|') || last.starts_with('>'))
            && last[1..]
                .chars()
                .all(|c| matches!(c, '+' | '-' | '1'..='9'))
            && scalar_starts(&t[..t.len() - last.len()], false)
        {
            st.block = Some(indent_of(line));
            st.value_pending = false;
        }
    }
}

/// The value a reference stands for, or `None` (and an error) when it has none.
fn resolve(
    body: &str,
    lineno: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
) -> Option<String> {
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
            line: lineno,
            message: format!("invalid environment reference ${{{body}}}"),
        });
        return None;
    }
    match (lookup(name), default) {
        (Some(v), _) if !v.is_empty() || default.is_none() => Some(v),
        (_, Some(d)) => Some(d.to_string()),
        (None, None) => {
            errors.push(EnvError {
                line: lineno,
                message: format!(
                    "environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"
                ),
            });
            None
        }
        (Some(v), None) => Some(v),
    }
}

/// Characters YAML's reader takes as line breaks (YAML 1.1 counts NEL, LS and PS too).
const BREAKS: [char; 5] = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];

/// `value` as the inside of a double-quoted YAML scalar.
fn double_quoted_inside(value: &str) -> String {
    // a JSON string is a YAML double-quoted scalar; its escapes are YAML's
    let q = serde_json::to_string(value).unwrap_or_default();
    q[1..q.len() - 1]
        .replace('\u{85}', "\\u0085")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The text that stands for `value` in `ctx`, `after` being the rest of the line, or why it
/// cannot stand there.
fn insertion(ctx: &Context, after: &str, value: &str) -> Result<String, &'static str> {
    match *ctx {
        Context::DoubleQuoted => Ok(double_quoted_inside(value)),
        Context::SingleQuoted => {
            if value.contains(BREAKS) {
                return Err("holds a line break, which a single-quoted YAML string cannot");
            }
            Ok(value.replace('\'', "''"))
        }
        Context::Block => {
            if value.contains(BREAKS) {
                return Err("holds a line break, which would end the block scalar's indentation");
            }
            Ok(value.to_string())
        }
        Context::Plain {
            flow,
            whole,
            starts,
        } => {
            if whole {
                if reads_back_as_itself(value, flow) {
                    return Ok(value.to_string());
                }
                return Ok(format!("\"{}\"", double_quoted_inside(value)));
            }
            let breaks = value.contains(BREAKS)
                || value.contains(['#', '\t'])
                || value.contains(": ")
                || value.ends_with(':')
                || (value.ends_with(' ') && after.starts_with('#'))
                || (flow && value.contains([',', '[', ']', '{', '}']))
                || (starts && value.starts_with(INDICATORS));
            if breaks {
                Err("would change the plain YAML text it stands in")
            } else {
                Ok(value.to_string())
            }
        }
    }
}

/// Characters that give a plain scalar another meaning when they start it (YAML 1.2, 5.3).
const INDICATORS: [char; 19] = [
    '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
];

/// Whether `value`, written as a plain scalar, is read back by YAML as one scalar that
/// prints as `value` again (`400`, `true`, `tempo:4317`; not `a #b`, `x: y`, `[1]`, ``).
fn reads_back_as_itself(value: &str, flow: bool) -> bool {
    if value.is_empty()
        || value.contains(BREAKS)
        || value.contains(['#', '\t'])
        || value.starts_with(INDICATORS)
        || value.trim() != value
        || (flow && value.contains([',', '[', ']', '{', '}']))
    {
        return false;
    }
    match serde_yaml::from_str::<serde_yaml::Value>(value) {
        Ok(serde_yaml::Value::String(s)) => s == value,
        // a number or boolean only in its canonical spelling, so that a text setting given
        // the value reads it back exactly (`1e3`, `+1`, `.inf`, `True` are inserted as text)
        Ok(serde_yaml::Value::Number(n)) => n.to_string() == value,
        Ok(serde_yaml::Value::Bool(_)) => value == "true" || value == "false",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("tempo".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_defaults() {
        assert_eq!(
            interpolate("a: ${env:HOST}:4317\n", &env).unwrap(),
            "a: tempo:4317\n"
        );
        assert_eq!(interpolate("a: ${HOST}\n", &env).unwrap(), "a: tempo\n");
        assert_eq!(
            interpolate("a: ${env:NOPE:-http://x:1}\n", &env).unwrap(),
            "a: http://x:1\n"
        );
        assert_eq!(interpolate("a: ${env:EMPTY:-d}\n", &env).unwrap(), "a: d\n");
        assert_eq!(
            interpolate("a: $$HOME $5\n", &env).unwrap(),
            "a: $HOME $5\n"
        );
        assert_eq!(
            interpolate("a: 1 # ${env:NOPE}\n", &env).unwrap(),
            "a: 1 # ${env:NOPE}\n"
        );
    }

    #[test]
    fn a_value_stays_one_value_whatever_it_holds() {
        let env = |name: &str| -> Option<String> {
            Some(
                match name {
                    "TOKEN" => "Bearer abc #def",
                    "COLON" => "x: y",
                    "QUOTE" => "a\"b'c",
                    "NL" => "one\nevil: injected",
                    "NUM" => "400",
                    "BOOL" => "true",
                    "HOST" => "tempo",
                    "LIST" => "a,b",
                    "INJ" => "v1,X-Inj: v2",
                    "BS" => "C:\\temp\\new",
                    "LEADHASH" => "#tok",
                    "TABHASH" => "abc\t#def",
                    "TRAIL" => "foo ",
                    "APOS" => "x'y",
                    "LS" => "a\u{2028}b",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let read = |text: &str| -> serde_yaml::Value {
            let t = interpolate(text, &env).unwrap_or_else(|e| panic!("{e:?}"));
            serde_yaml::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
        };
        let refused = |text: &str| -> Vec<EnvError> { interpolate(text, &env).expect_err(text) };
        // a whole plain scalar: exact strings, typed numbers and booleans
        let v = read(
            "a: ${env:TOKEN}\nb: ${env:COLON}\nc: ${env:NUM}\nd: ${env:BOOL}\ne: ${env:NL}\nf: ${env:LS} # note\n",
        );
        assert_eq!(v["a"], "Bearer abc #def");
        assert_eq!(v["b"], "x: y");
        assert_eq!(v["c"], 400);
        assert_eq!(v["d"], true);
        assert_eq!(v["e"], "one\nevil: injected");
        assert_eq!(v["f"], "a\u{2028}b");
        assert!(v.get("evil").is_none(), "no key injected");
        // alone on the line after its key
        assert_eq!(read("a:\n  ${env:TOKEN}\n")["a"], "Bearer abc #def");
        // in flow mappings and sequences, also over several lines
        let v = read(
            "m: { a: ${env:TOKEN}, b: ${env:LIST}, c: ${env:NUM} }\ns: [${env:COLON}, ${env:HOST}]\n",
        );
        assert_eq!(v["m"]["a"], "Bearer abc #def");
        assert_eq!(v["m"]["b"], "a,b");
        assert_eq!(v["m"]["c"], 400);
        assert_eq!(v["s"][0], "x: y");
        assert_eq!(v["s"][1], "tempo");
        let v = read("h: {\n  X-A: ${env:INJ},\n  X-B: static\n}\n");
        assert_eq!(v["h"]["X-A"], "v1,X-Inj: v2");
        assert!(v["h"].get("X-Inj").is_none(), "no key injected: {v:?}");
        // inside quotes, also over several lines: escaped for that style
        let v = read(
            "a: \"${env:QUOTE} ${env:NL}\"\nb: '${env:QUOTE}'\nc: \"first\n  ${env:BS}\"\nd: 'it''s ${env:APOS}'\n",
        );
        assert_eq!(v["a"], "a\"b'c one\nevil: injected");
        assert_eq!(v["b"], "a\"b'c");
        assert_eq!(v["c"], "first C:\\temp\\new");
        assert_eq!(v["d"], "it's x'y");
        // a block scalar's content is taken as written
        let v = read("a: |\n  line ${env:TOKEN}\n  ${env:TOKEN}\nb: ${env:HOST}\n");
        assert_eq!(v["a"], "line Bearer abc #def\nBearer abc #def\n");
        assert_eq!(v["b"], "tempo");
        // part of a plain scalar: as written when harmless ('s in plain text is no quote)...
        assert_eq!(
            read("a: http://${env:HOST}:4318\n")["a"],
            "http://tempo:4318"
        );
        assert_eq!(read("a: it's ${env:APOS}\n")["a"], "it's x'y");
        assert_eq!(read("a: Bearer ${env:NUM}\n")["a"], "Bearer 400");
        // ...an error when it would change that text
        for bad in [
            "a: x\nb: Token ${env:TOKEN}\n",
            "b: Bearer ${env:LEADHASH}\n",
            "b: Bearer ${env:TABHASH}\n",
            "b: ${env:TRAIL}#frag\n",
            "b: it's ${env:TOKEN}\n",
            "b: first\n  ${env:TOKEN}\n",
            "b: '${env:NL}'\n",
        ] {
            let errs = refused(bad);
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert!(errs[0].message.contains("double quotes"), "{bad}: {errs:?}");
        }
        let errs = refused("a: x\nb: Token ${env:TOKEN}\n");
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("TOKEN"), "{errs:?}");
    }

    #[test]
    fn missing_variable_is_an_error_with_line() {
        let errs = interpolate(
            "a: 1\nb: ${env:SUMO_OTLP_ENDPOINT}\nc: ${env:bad-name}\n",
            &env,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("SUMO_OTLP_ENDPOINT"));
        assert_eq!(errs[1].line, 3);
    }
}

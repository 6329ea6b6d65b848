//! `${env:NAME}` and `${env:NAME:-default}` interpolation (also `${NAME}`), done on the raw
//! text line by line so that YAML error locations stay right. `$$` escapes a dollar sign.
//!
//! A value is inserted so that it stays one value, whatever it holds (the Collector expands
//! after parsing, so a value never changes the YAML around it; a text expansion has to quote):
//!
//! - inside a double-quoted scalar it is escaped as a double-quoted string (`"`, `\`, line
//!   breaks); inside a single-quoted one, `'` is doubled (a line break there is an error);
//! - as a whole plain scalar (`key: ${env:X}`, `- ${env:X}`, `{ key: ${env:X} }`) it is
//!   inserted as written when YAML reads it back as itself (`400`, `true`, `tempo:4317`), so
//!   numbers and booleans keep their type as in the Collector, and otherwise as a
//!   double-quoted string: `Bearer abc #def` stays whole instead of losing ` #def` to a comment;
//! - as part of a plain scalar (`http://${env:HOST}:4318`) it is inserted as written when it
//!   cannot end the scalar there (no line break, `: `, ` #`, and no `,[]{}` inside `{ }` or
//!   `[ ]`); otherwise it is an error naming the variable and asking for double quotes.

/// An interpolation problem, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong, naming the variable.
    pub message: String,
}

/// Expands references using `lookup`; returns every error found.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // comments are left alone
        let (code, comment) = split_comment(line);
        let mut rest = code;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
                continue;
            }
            if let Some(body_start) = after.strip_prefix('{') {
                match body_start.find('}') {
                    Some(end) => {
                        let body = &body_start[..end];
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
                                line: i + 1,
                                message: format!("invalid environment reference ${{{body}}}"),
                            });
                        } else {
                            let value = match (lookup(name), default) {
                                (Some(v), _) if !v.is_empty() || default.is_none() => Some(v),
                                (_, Some(d)) => Some(d.to_string()),
                                (None, None) => {
                                    errors.push(EnvError {
                                        line: i + 1,
                                        message: format!("environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"),
                                    });
                                    None
                                }
                                (Some(v), None) => Some(v),
                            };
                            if let Some(v) = value {
                                let at = code.len() - rest.len() + pos;
                                let after_ref = &body_start[end + 1..];
                                match insertion(&code[..at], after_ref, &v) {
                                    Ok(text) => out.push_str(&text),
                                    Err(why) => errors.push(EnvError {
                                        line: i + 1,
                                        message: format!("the value of {name} {why}; write the reference in double quotes (\"${{env:{name}}}\")"),
                                    }),
                                }
                            }
                        }
                        rest = &body_start[end + 1..];
                    }
                    None => {
                        errors.push(EnvError {
                            line: i + 1,
                            message: "unterminated ${ reference".into(),
                        });
                        out.push_str(&rest[pos..]);
                        rest = "";
                    }
                }
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Where a reference stands on its line.
#[derive(Debug, PartialEq)]
enum Context {
    /// Inside a `"..."` scalar.
    DoubleQuoted,
    /// Inside a `'...'` scalar.
    SingleQuoted,
    /// In plain text; `flow`: inside `{ }` or `[ ]`.
    Plain { flow: bool },
}

/// The context at the end of `before` (the line up to the reference).
fn context(before: &str) -> Context {
    let (mut sq, mut dq, mut escaped, mut depth) = (false, false, false, 0usize);
    for c in before.chars() {
        if dq {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => dq = false,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => sq = !sq,
            '"' if !sq => dq = true,
            '{' | '[' if !sq => depth += 1,
            '}' | ']' if !sq => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if dq {
        Context::DoubleQuoted
    } else if sq {
        Context::SingleQuoted
    } else {
        Context::Plain { flow: depth > 0 }
    }
}

/// The text that stands for `value` between `before` and `after` on a line (see the module
/// doc), or why it cannot stand there.
fn insertion(before: &str, after: &str, value: &str) -> Result<String, &'static str> {
    match context(before) {
        Context::DoubleQuoted => {
            // a JSON string is a YAML double-quoted scalar; its escapes are YAML's
            let quoted = serde_json::to_string(value).unwrap_or_default();
            Ok(quoted[1..quoted.len() - 1].to_string())
        }
        Context::SingleQuoted => {
            if value.contains(['\n', '\r']) {
                return Err("holds a line break, which a single-quoted YAML string cannot");
            }
            Ok(value.replace('\'', "''"))
        }
        Context::Plain { flow } => {
            // the reference begins a scalar: at the start of the line, after `key:` or a
            // sequence's `-` and blanks, or after `{`, `[` or `,` in flow
            let b = before.trim_end_matches([' ', '\t']);
            let blank = b.len() < before.len();
            let dash_item = b.strip_suffix('-').is_some_and(|h| {
                h.is_empty() || h.ends_with([' ', '\t']) || (flow && h.ends_with(['[', ',']))
            });
            let starts_scalar = b.is_empty()
                || (blank && (b.ends_with(':') || dash_item))
                || (flow && b.ends_with(['{', '[', ',']));
            let ends_scalar = {
                let a = after.trim_start_matches([' ', '\t']);
                a.is_empty()
                    || a.starts_with(['\n', '\r'])
                    || (flow && a.starts_with([',', '}', ']']))
            };
            if starts_scalar && ends_scalar {
                if reads_back_as_itself(value, flow) {
                    return Ok(value.to_string());
                }
                return Ok(serde_json::to_string(value).unwrap_or_default());
            }
            let breaks = value.contains(['\n', '\r'])
                || value.contains(": ")
                || value.contains(" #")
                || value.ends_with(':')
                || (flow && value.contains([',', '[', ']', '{', '}']))
                || (starts_scalar && value.starts_with(INDICATORS));
            if breaks {
                Err("would end the plain YAML text it stands in")
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
        || value.contains(['\n', '\r'])
        || value.starts_with(INDICATORS)
        || value.trim() != value
        || (flow && value.contains([',', '[', ']', '{', '}']))
    {
        return false;
    }
    match serde_yaml::from_str::<serde_yaml::Value>(value) {
        Ok(serde_yaml::Value::String(s)) => s == value,
        Ok(serde_yaml::Value::Number(n)) => n.to_string() == value || value.parse::<f64>().is_ok(),
        Ok(serde_yaml::Value::Bool(_)) => true,
        _ => false,
    }
}

/// Splits a YAML line at a ` #` comment that is outside quotes.
fn split_comment(line: &str) -> (&str, &str) {
    let (mut sq, mut dq) = (false, false);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !dq => sq = !sq,
            b'"' if !sq => dq = !dq,
            b'#' if !sq && !dq && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => {
                return (&line[..i], &line[i..]);
            }
            _ => {}
        }
    }
    (line, "")
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
                    _ => return None,
                }
                .to_string(),
            )
        };
        let read = |text: &str| -> serde_yaml::Value {
            serde_yaml::from_str(&interpolate(text, &env).unwrap()).unwrap()
        };
        // a whole plain scalar: exact strings, typed numbers and booleans
        let v =
            read("a: ${env:TOKEN}\nb: ${env:COLON}\nc: ${env:NUM}\nd: ${env:BOOL}\ne: ${env:NL}\n");
        assert_eq!(v["a"], "Bearer abc #def");
        assert_eq!(v["b"], "x: y");
        assert_eq!(v["c"], 400);
        assert_eq!(v["d"], true);
        assert_eq!(v["e"], "one\nevil: injected");
        assert!(v.get("evil").is_none(), "no key injected");
        // in flow mappings and sequences
        let v = read(
            "m: { a: ${env:TOKEN}, b: ${env:LIST}, c: ${env:NUM} }\ns: [${env:COLON}, ${env:HOST}]\n",
        );
        assert_eq!(v["m"]["a"], "Bearer abc #def");
        assert_eq!(v["m"]["b"], "a,b");
        assert_eq!(v["m"]["c"], 400);
        assert_eq!(v["s"][0], "x: y");
        assert_eq!(v["s"][1], "tempo");
        // inside quotes: escaped for that style
        let v = read("a: \"${env:QUOTE} ${env:NL}\"\nb: '${env:QUOTE}'\n");
        assert_eq!(v["a"], "a\"b'c one\nevil: injected");
        assert_eq!(v["b"], "a\"b'c");
        // part of a plain scalar: as written when harmless, an error when it would break it
        assert_eq!(
            read("a: http://${env:HOST}:4318\n")["a"],
            "http://tempo:4318"
        );
        let errs = interpolate("a: x\nb: Token ${env:TOKEN}\n", &env).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2);
        assert!(
            errs[0].message.contains("TOKEN") && errs[0].message.contains("double quotes"),
            "{errs:?}"
        );
        assert!(interpolate("a: '${env:NL}'\n", &env).is_err());
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

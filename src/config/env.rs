//! `${env:NAME}` and `${env:NAME:-default}` interpolation (also `${NAME}`), done on the raw
//! text line by line so that YAML error locations stay right. `$$` escapes a dollar sign.

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
                            match (lookup(name), default) {
                                (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                                (_, Some(d)) => out.push_str(d),
                                (None, None) => errors.push(EnvError {
                                    line: i + 1,
                                    message: format!("environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"),
                                }),
                                (Some(v), None) => out.push_str(&v),
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

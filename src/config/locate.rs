//! Finds the line of a key path in block-style YAML, so errors found after parsing (unknown
//! keys, bad values, undefined components) can still name a line. Best effort: flow-style
//! mappings resolve to the nearest enclosing key found.

/// 1-based line of the last key of `path` that could be found.
pub fn find(text: &str, path: &[&str]) -> Option<usize> {
    let mut found = None;
    let mut start = 0usize;
    let mut min_indent: i64 = -1;
    let lines: Vec<&str> = text.lines().collect();
    'outer: for key in path {
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = (line.len() - trimmed.len()) as i64;
            if indent <= min_indent && i > start {
                // left the parent block
                break;
            }
            let t = trimmed.trim_start_matches("- ");
            let matches = t.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
                || t.strip_prefix('"')
                    .and_then(|r| r.strip_prefix(key))
                    .is_some_and(|r| r.starts_with("\":"))
                || line.contains(&format!("{key}:")) && line.contains('{');
            if matches {
                found = Some(i + 1);
                start = i + 1;
                min_indent = indent;
                continue 'outer;
            }
        }
        break;
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_nested_keys() {
        let t =
            "receivers:\n  otlp:\n    protocols: {}\nexporters:\n  otlphttp/a:\n    endpont: x\n";
        assert_eq!(
            super::find(t, &["exporters", "otlphttp/a", "endpont"]),
            Some(6)
        );
        assert_eq!(super::find(t, &["exporters", "otlphttp/a"]), Some(5));
        assert_eq!(super::find(t, &["exporters", "nope"]), Some(4));
    }
}

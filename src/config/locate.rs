//! Finds the line of a key path in block-style YAML, so errors found after parsing (unknown
//! keys, bad values, undefined components) can still name a line. Best effort: flow-style
//! mappings resolve to the nearest enclosing key found.

/// 1-based line of the last key of `path` that could be found. A key written in a flow
/// mapping (`grpc: { endpoint: x }`) is looked for on the same line first, after its parent.
pub fn find(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Option<usize> = None;
    // where the last match ended: line index and byte offset after its `key:`
    let mut at: Option<(usize, usize)> = None;
    let mut min_indent: i64 = -1;
    'outer: for key in path {
        if let Some((li, col)) = at
            && let Some(c) = flow_key(&lines[li][col..], key)
        {
            found = Some(li + 1);
            at = Some((li, col + c));
            continue;
        }
        let start = at.map_or(0, |(li, _)| li + 1);
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = (line.len() - trimmed.len()) as i64;
            if indent <= min_indent {
                // left the parent block
                break;
            }
            let t = trimmed.trim_start_matches("- ");
            let block = t.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
                || t.strip_prefix('"')
                    .and_then(|r| r.strip_prefix(key))
                    .is_some_and(|r| r.starts_with("\":"));
            let end = if block {
                Some(line.len() - t.len() + key.len() + 1)
            } else {
                flow_key(line, key)
            };
            if let Some(end) = end {
                found = Some(i + 1);
                at = Some((i, end.min(line.len())));
                min_indent = indent;
                continue 'outer;
            }
        }
        break;
    }
    found
}

/// The byte offset just after `key:` where `key` starts an entry of a flow mapping in `text`
/// (after `{`, `,` or a blank), if it does.
fn flow_key(text: &str, key: &str) -> Option<usize> {
    if !text.contains('{') && !text.contains(',') {
        return None;
    }
    let needle = format!("{key}:");
    let mut from = 0;
    while let Some(p) = text[from..].find(&needle) {
        let p = from + p;
        let before = text[..p].trim_end_matches([' ', '\t', '"']);
        if before.ends_with(['{', ',']) {
            return Some(p + needle.len());
        }
        from = p + needle.len();
    }
    None
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

    #[test]
    fn finds_keys_in_flow_mappings_on_their_own_line() {
        let t = "receivers:\n  otlp:\n    protocols:\n      grpc: { endpoint: a }\n      http: { endpoint: b }\nservice:\n  telemetry: { metrics: { address: x } }\n  pipelines:\n    metrics: { receivers: [otlp] }\n";
        let f = |p: &[&str]| super::find(t, p);
        assert_eq!(
            f(&["receivers", "otlp", "protocols", "grpc", "endpoint"]),
            Some(4)
        );
        assert_eq!(
            f(&["receivers", "otlp", "protocols", "http", "endpoint"]),
            Some(5)
        );
        assert_eq!(f(&["service", "telemetry", "metrics", "address"]), Some(7));
        assert_eq!(f(&["service", "pipelines", "metrics"]), Some(9));
    }
}

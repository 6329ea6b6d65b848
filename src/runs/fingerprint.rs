//! Exception fingerprints: two occurrences of "the same" exception (same type, same message
//! apart from order numbers, ids and hex, same innermost stack frames) get the same
//! fingerprint, so a run's exceptions collapse into a few groups and a gate can tell a new
//! kind of failure from another instance of a known one. The hash is FNV-1a (stable across
//! processes and Rust versions, unlike `DefaultHasher`), so fingerprints persist and compare
//! between runs.

/// How many innermost frames take part in the fingerprint.
pub const TOP_FRAMES: usize = 3;

/// Masks variable parts of a message: every token (run of letters, digits, `_`) containing a
/// digit, and every hex-looking token of 6+ characters, becomes `<*>`.
pub fn mask(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut tok = String::new();
    let flush = |tok: &mut String, out: &mut String| {
        if tok.is_empty() {
            return;
        }
        let has_digit = tok.chars().any(|c| c.is_ascii_digit());
        let hexish = tok.len() >= 6 && tok.chars().all(|c| c.is_ascii_hexdigit());
        if has_digit || hexish {
            out.push_str("<*>");
        } else {
            out.push_str(tok);
        }
        tok.clear();
    };
    for c in msg.chars() {
        if c.is_alphanumeric() || c == '_' {
            tok.push(c);
        } else {
            flush(&mut tok, &mut out);
            out.push(c);
        }
    }
    flush(&mut tok, &mut out);
    // bound the stored message
    if out.len() > 512 {
        let mut end = 512;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// The innermost `n` frames of a stack trace, normalized (no line numbers, no directories).
/// Understands Python tracebacks (innermost last), and Java/JS/.NET `at ...` frames and Go
/// `pkg.func(...)` lines (innermost first).
pub fn top_frames(stack: &str, n: usize) -> Vec<String> {
    let mut frames = Vec::new();
    let python = stack.contains("Traceback (most recent call last)");
    for line in stack.lines() {
        let t = line.trim();
        if python {
            // File "/x/y/generate.py", line 320, in charge_card
            if let Some(rest) = t.strip_prefix("File \"") {
                let file = rest.split('"').next().unwrap_or("");
                let file = file.rsplit('/').next().unwrap_or(file);
                let func = t.rsplit_once(", in ").map(|(_, f)| f).unwrap_or("?");
                frames.push(format!("{func} ({file})"));
            }
        } else if let Some(rest) = t.strip_prefix("at ") {
            // Java: com.x.Y.m(Y.java:42); JS: fn (file.js:1:2); .NET: Ns.T.M() in f.cs:line 3
            let name = rest
                .split(['(', ' '])
                .next()
                .unwrap_or(rest)
                .trim()
                .to_string();
            if !name.is_empty() {
                frames.push(name);
            }
        }
    }
    if python {
        frames.reverse();
    }
    frames.truncate(n);
    frames
}

/// FNV-1a 64.
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Fingerprint of (type, masked message, top frames), as 16 hex digits.
pub fn fingerprint(ty: &str, masked: &str, frames: &[String]) -> String {
    let mut parts: Vec<&str> = vec![ty, masked];
    parts.extend(frames.iter().map(|s| s.as_str()));
    format!("{:016x}", fnv64(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_ids_numbers_and_hex() {
        assert_eq!(
            mask("card declined by issuer for order ord-0000012-abcdef"),
            "card declined by issuer for order ord-<*>-<*>"
        );
        assert_eq!(
            mask("no exchange rate for currency 'XTS' (order ord-0000031-1f2e3d)"),
            "no exchange rate for currency 'XTS' (order ord-<*>-<*>)"
        );
        assert_eq!(
            mask("user 550e8400-e29b-41d4-a716-446655440000 gone"),
            "user <*>-<*>-<*>-<*>-<*> gone"
        );
    }

    #[test]
    fn python_and_java_frames() {
        let py = "Traceback (most recent call last):\n  File \"/a/b/generate.py\", line 343, in _throw_and_catch\n    _RAISERS[type(exc)](exc)\n  File \"/a/b/generate.py\", line 320, in charge_card\n    raise exc\npayments.gateway.PaymentDeclinedError: card declined";
        assert_eq!(
            top_frames(py, 3),
            vec![
                "charge_card (generate.py)",
                "_throw_and_catch (generate.py)"
            ]
        );
        let java = "java.lang.IllegalStateException: x\n\tat com.a.B.c(B.java:10)\n\tat com.a.D.e(D.java:20)\n\tat com.a.F.g(F.java:30)\n\tat com.a.H.i(H.java:40)";
        assert_eq!(
            top_frames(java, 3),
            vec!["com.a.B.c", "com.a.D.e", "com.a.F.g"]
        );
    }

    #[test]
    fn same_shape_same_fingerprint() {
        let a = fingerprint("E", &mask("order 12 failed"), &[]);
        let b = fingerprint("E", &mask("order 99 failed"), &[]);
        let c = fingerprint("F", &mask("order 99 failed"), &[]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

//! Secrets never printed: one place that masks credentials before anything leaves the process
//! as text — log lines (failed sends, shutdown), `validate` output and the zpages config view.
//!
//! What is masked (replaced by [`MASK`]):
//! - URL userinfo (`https://user:pass@host` -> `https://***@host`);
//! - the path segment after a secret path prefix: Sumo Logic's `/receiver/v1/otlp/<token>`
//!   by default, plus the prefixes set with [`set_secret_path_prefixes`]
//!   (`service.telemetry.logs.secret_path_prefixes`);
//! - query values whose key names a credential (`token`, `api_key`, `password`, ...);
//! - in a config tree: every value under a secret-bearing key (`headers`, `bearer_token`,
//!   `password`, `token`, `api_key`, `secret`, `authorization`, ...), and URL credentials in
//!   every string.

use parking_lot::RwLock;

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// Path prefixes whose next segment is a credential, always applied.
pub const DEFAULT_SECRET_PATH_PREFIXES: &[&str] = &["/receiver/v1/otlp/"];

/// Secret values shorter than this are not searched for in free text (replacing "1" or "on"
/// everywhere would garble messages; real credentials are longer).
pub const MIN_SECRET_LEN: usize = 4;

static EXTRA_PREFIXES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds configured secret path prefixes (each should start and end with `/`; missing slashes
/// are added). Replaces the previously configured list; the defaults always apply.
pub fn set_secret_path_prefixes(prefixes: &[String]) {
    let norm = prefixes
        .iter()
        .filter(|p| !p.trim_matches('/').is_empty())
        .map(|p| format!("/{}/", p.trim_matches('/')))
        .collect();
    *EXTRA_PREFIXES.write() = norm;
}

/// True for a config key (or header name) whose value is a credential.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &["headers", "authorization"];
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "token",
        "secret",
        "api_key",
        "apikey",
        "credential",
        "private_key",
        "access_key",
        "cookie",
    ];
    EXACT.contains(&k.as_str()) || PARTS.iter().any(|p| k.contains(p))
}

/// True for a URL query parameter whose value is a credential (the config keys of
/// [`is_secret_key`] plus `key`, `sig`, `signature`, `code`).
pub fn is_secret_query_param(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "key" | "sig" | "signature" | "code"
    ) || is_secret_key(name)
}

/// Masks one URL (or `host:port` endpoint). Never fails: an unparseable string is masked as
/// far as its shape allows, so an invalid URL in an error message is still safe to print.
pub fn url(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => (&s[..i + 3], &s[i + 3..]),
        None => ("", s),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{MASK}{}", &authority[at..]),
        None => authority.to_string(),
    };
    let (path, query_frag) = match tail.find(['?', '#']) {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(scheme);
    out.push_str(&authority);
    out.push_str(&mask_path(path));
    out.push_str(&mask_query(query_frag));
    out
}

fn mask_path(path: &str) -> String {
    let extra = EXTRA_PREFIXES.read();
    let prefixes = DEFAULT_SECRET_PATH_PREFIXES
        .iter()
        .copied()
        .chain(extra.iter().map(|s| s.as_str()));
    let mut out = path.to_string();
    for p in prefixes {
        let mut from = 0;
        while let Some(i) = out[from..].find(p) {
            let seg_start = from + i + p.len();
            let seg_end = out[seg_start..]
                .find('/')
                .map(|j| seg_start + j)
                .unwrap_or(out.len());
            if seg_end > seg_start && &out[seg_start..seg_end] != MASK {
                out.replace_range(seg_start..seg_end, MASK);
            }
            from = seg_start + MASK.len().min(out.len() - seg_start);
        }
    }
    out
}

fn mask_query(q: &str) -> String {
    let Some(rest) = q.strip_prefix('?') else {
        return q.to_string();
    };
    let (query, frag) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_query_param(k) => format!("{k}={MASK}"),
            _ => kv.to_string(),
        })
        .collect();
    format!("?{}{frag}", parts.join("&"))
}

/// Masks every URL found in free text (error messages, reqwest errors that quote the URL).
pub fn text(s: &str) -> String {
    if !s.contains("://") && !s.contains('@') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map(|j| j + 1)
            .unwrap_or(0);
        let end = rest[i + 3..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '`' | ','))
            .map(|j| i + 3 + j)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces every occurrence of the given secret values (and masks URLs) in `s`.
pub fn text_with(s: &str, secrets: &[String]) -> String {
    let mut out = text(s);
    for v in secrets {
        if v.len() >= MIN_SECRET_LEN {
            out = out.replace(v.as_str(), MASK);
        }
    }
    out
}

/// A copy of a config tree with secrets masked: values under secret-bearing keys become
/// [`MASK`] (a mapping such as `headers` keeps its keys, each value masked), and every other
/// string has its URL credentials masked.
pub fn config(v: &serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, val)| {
                    let secret = k.as_str().is_some_and(is_secret_key);
                    let val = if secret { mask_all(val) } else { config(val) };
                    (k.clone(), val)
                })
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.iter().map(config).collect()),
        Value::String(s) => Value::String(text(s)),
        Value::Tagged(t) => config(&t.value),
        other => other.clone(),
    }
}

fn mask_all(v: &serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, val)| (k.clone(), mask_all(val)))
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.iter().map(mask_all).collect()),
        Value::Null => Value::Null,
        _ => Value::String(MASK.into()),
    }
}

/// Every secret value in a config tree: strings under secret-bearing keys, and the userinfo
/// and secret path segments of URLs. Used to scrub messages that may quote them (a serde
/// error echoing a `headers` value written as a string, an invalid URL).
pub fn secrets_in(v: &serde_yaml::Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(v, false, &mut out);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn collect(v: &serde_yaml::Value, secret: bool, out: &mut Vec<String>) {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let s = secret || k.as_str().is_some_and(is_secret_key);
                collect(val, s, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| collect(x, secret, out)),
        Value::Tagged(t) => collect(&t.value, secret, out),
        Value::String(s) if secret => {
            out.push(s.clone());
            // `Bearer xyz`: the token alone may be quoted too
            if let Some((_, tok)) = s.split_once(' ') {
                out.push(tok.trim().to_string());
            }
        }
        Value::String(s) => url_secrets(s, out),
        Value::Number(n) if secret => out.push(n.to_string()),
        _ => {}
    }
}

/// The parts of a URL that [`url`] masks, as they appear in it.
fn url_secrets(s: &str, out: &mut Vec<String>) {
    let masked = url(s);
    if masked == s {
        return;
    }
    // walk both strings: every differing run in the original is a secret
    let (a, b) = (s.as_bytes(), masked.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        // b has MASK here; the secret runs in a until the byte that follows MASK in b
        let after = j + MASK.len();
        let next = b.get(after).copied();
        let end = match next {
            Some(c) => a[i..].iter().position(|&x| x == c).map(|p| i + p),
            None => Some(a.len()),
        }
        .unwrap_or(a.len());
        if let Some(sec) = s.get(i..end)
            && !sec.is_empty()
        {
            out.push(sec.to_string());
        }
        i = end;
        j = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_masked() {
        assert_eq!(
            url("https://user:s3cret@example.com:443/v1/traces"),
            "https://***@example.com:443/v1/traces"
        );
        assert_eq!(url("alice:pw@collector:4317"), "***@collector:4317");
        assert_eq!(
            url("http://localhost:4318/v1/logs"),
            "http://localhost:4318/v1/logs"
        );
    }

    #[test]
    fn sumo_token_masked() {
        let u = "https://endpoint4.collection.sumologic.com/receiver/v1/otlp/ZaVnC4dhaV0xZmE2==/v1/traces";
        let m = url(u);
        assert_eq!(
            m,
            "https://endpoint4.collection.sumologic.com/receiver/v1/otlp/***/v1/traces"
        );
        assert!(!m.contains("ZaVnC4dhaV0"));
    }

    #[test]
    fn query_credentials_masked() {
        assert_eq!(
            url("https://h/push?api_key=abc123&tenant=t1"),
            "https://h/push?api_key=***&tenant=t1"
        );
    }

    #[test]
    fn urls_in_text() {
        let msg = "error sending request for url (https://u:p4ssw0rd@h/receiver/v1/otlp/TOKEN123/v1/logs): connection refused";
        let m = text(msg);
        assert!(!m.contains("p4ssw0rd") && !m.contains("TOKEN123"), "{m}");
        assert!(m.contains("connection refused") && m.contains("https://***@h/"));
    }

    #[test]
    fn config_tree_masked_and_secrets_collected() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "exporters:\n  otlphttp/a:\n    endpoint: https://me:pw1234@h/receiver/v1/otlp/TKN99999/x\n    headers: { Authorization: Bearer abcdefgh, X-Scope-OrgID: tenant }\n    basic_auth: { username: bob, password: hunter22 }\n  otlp: { endpoint: 'h:4317', headers: 'Authorization: Bearer zzzzzzzz' }\n",
        )
        .unwrap();
        let masked = serde_yaml::to_string(&config(&v)).unwrap();
        for s in [
            "pw1234", "TKN99999", "abcdefgh", "hunter22", "zzzzzzzz", "tenant",
        ] {
            assert!(!masked.contains(s), "{s} in {masked}");
        }
        assert!(masked.contains("h:4317") && masked.contains("Authorization"));
        let secrets = secrets_in(&v);
        for s in [
            "me:pw1234",
            "TKN99999",
            "Bearer abcdefgh",
            "abcdefgh",
            "hunter22",
        ] {
            assert!(secrets.iter().any(|x| x == s), "{s} not in {secrets:?}");
        }
        let echoed = "invalid type: string \"Authorization: Bearer zzzzzzzz\", expected a map";
        assert!(!text_with(echoed, &secrets).contains("zzzzzzzz"));
    }

    #[test]
    fn ordinary_keys_stay_visible() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "processors:\n  attributes:\n    actions: [{ key: env, value: prod, action: upsert }]\nexporters:\n  otlp:\n    tls: { key_file: /etc/k.pem }\n",
        )
        .unwrap();
        let masked = serde_yaml::to_string(&config(&v)).unwrap();
        assert!(
            masked.contains("key: env") && masked.contains("value: prod"),
            "{masked}"
        );
        assert!(masked.contains("/etc/k.pem"), "{masked}");
        assert_eq!(url("https://h/p?key=abc&x=1"), "https://h/p?key=***&x=1");
    }

    #[test]
    fn configured_prefixes() {
        set_secret_path_prefixes(&["hooks".to_string()]);
        assert_eq!(url("https://h/hooks/abc/x"), "https://h/hooks/***/x");
        set_secret_path_prefixes(&[]);
        assert_eq!(url("https://h/hooks/abc/x"), "https://h/hooks/abc/x");
    }
}

//! The `bearertokenauth` extension, in the shape of the Collector-contrib extension of that
//! name:
//! ```yaml
//! extensions:
//!   bearertokenauth:
//!     scheme: Bearer          # default; "" sends and expects the bare token
//!     header: Authorization   # default
//!     token: s3cret           # or tokens: [a, b], or filename: /run/secrets/otlp-token
//! ```
//! As a server it accepts a request whose `header` is `<scheme> <token>` for any configured
//! token (constant-time comparison); as a client it sends the first token. `filename` wins
//! over `token`/`tokens`, as in the Collector; the file holds one token per line and is
//! re-read whenever its size, modification time or inode changes (checked on each use, so a
//! rotated token is in force from the next request on).

use super::auth::{AuthError, ClientAuthenticator, ServerAuthenticator, ct_eq};
use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::Deserialize;
use std::os::unix::fs::MetadataExt;

/// The extension's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Prefix of the header value, followed by one space. Default `Bearer`.
    pub scheme: String,
    /// The header carrying the credential. Default `Authorization`.
    pub header: String,
    /// One static token.
    #[serde(deserialize_with = "crate::config::common::opt_text")]
    pub token: Option<String>,
    /// Several accepted tokens (a client sends the first).
    #[serde(deserialize_with = "crate::config::common::text_list")]
    pub tokens: Vec<String>,
    /// A file with one token per line, re-read when it changes.
    pub filename: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheme: "Bearer".into(),
            header: "Authorization".into(),
            token: None,
            tokens: vec![],
            filename: None,
        }
    }
}

impl Config {
    /// Exactly one source of tokens, a valid header name.
    pub fn validate(&self) -> Result<(), String> {
        if self.token.is_some() && !self.tokens.is_empty() {
            return Err("set either token or tokens, not both".into());
        }
        if self.filename.is_none()
            && self.tokens.is_empty()
            && self.token.as_deref().unwrap_or("").is_empty()
        {
            return Err("one of token, tokens or filename is required".into());
        }
        if self.tokens.iter().any(|t| t.is_empty()) {
            return Err("tokens must not contain an empty token".into());
        }
        HeaderName::from_bytes(self.header.as_bytes())
            .map_err(|_| format!("header {:?} is not a valid header name", self.header))?;
        // each token is sent or compared as `<scheme> <token>`: one that cannot be a header
        // value (a newline, a control character) would fail every request it is sent with;
        // the token itself is never quoted in the message
        for (i, t) in self.token.iter().chain(&self.tokens).enumerate() {
            if http::HeaderValue::from_str(&format!("{} {t}", self.scheme)).is_err() {
                let which = if self.token.is_some() {
                    "token".to_string()
                } else {
                    format!("tokens[{i}]")
                };
                return Err(format!(
                    "{which} holds a character a header value cannot (a control character such as a newline)"
                ));
            }
        }
        Ok(())
    }
}

/// The file's identity: a change in any part means "read it again".
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

struct FileTokens {
    path: String,
    state: Mutex<(FileStamp, Vec<String>)>,
}

impl FileTokens {
    fn load(path: &str) -> Result<(FileStamp, Vec<String>), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("filename {path}: {e}"))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("filename {path}: {e}"))?;
        let tokens = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        Ok((stamp(&meta), tokens))
    }

    /// The current tokens, re-read if the file changed. A file that vanished or cannot be
    /// read keeps the last tokens in force (a rotation writes a new file, then renames it).
    fn current(&self) -> Vec<String> {
        let mut st = self.state.lock();
        if let Ok(meta) = std::fs::metadata(&self.path)
            && stamp(&meta) != st.0
        {
            match Self::load(&self.path) {
                Ok(loaded) => {
                    tracing::info!(file = %self.path, tokens = loaded.1.len(), "bearertokenauth: token file re-read");
                    *st = loaded;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "bearertokenauth: token file unreadable; keeping the previous tokens")
                }
            }
        }
        st.1.clone()
    }
}

fn stamp(m: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        len: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ino: m.ino(),
    }
}

enum Source {
    Static(Vec<String>),
    File(FileTokens),
}

/// A built `bearertokenauth` extension (both roles).
pub struct BearerTokenAuth {
    scheme: String,
    header: HeaderName,
    source: Source,
}

impl BearerTokenAuth {
    /// Validates and, with `filename`, reads the token file once (it must exist at start).
    pub fn new(cfg: &Config) -> Result<BearerTokenAuth, String> {
        cfg.validate()?;
        let header = HeaderName::from_bytes(cfg.header.as_bytes())
            .map_err(|_| format!("header {:?} is not a valid header name", cfg.header))?;
        let source = match (&cfg.filename, &cfg.token) {
            (Some(f), _) => Source::File(FileTokens {
                path: f.clone(),
                state: Mutex::new(FileTokens::load(f)?),
            }),
            (None, Some(t)) => Source::Static(vec![t.clone()]),
            (None, None) => Source::Static(cfg.tokens.clone()),
        };
        Ok(BearerTokenAuth {
            scheme: cfg.scheme.clone(),
            header,
            source,
        })
    }

    fn tokens(&self) -> Vec<String> {
        match &self.source {
            Source::Static(t) => t.clone(),
            Source::File(f) => f.current(),
        }
    }

    fn value_for(&self, token: &str) -> String {
        if self.scheme.is_empty() {
            token.to_string()
        } else {
            format!("{} {token}", self.scheme)
        }
    }
}

impl ServerAuthenticator for BearerTokenAuth {
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let presented = headers
            .get(&self.header)
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AuthError::Missing(self.header.to_string()))?;
        // every token is compared, so the time taken does not tell which one came close
        let ok = self.tokens().iter().fold(false, |acc, t| {
            acc | ct_eq(presented, self.value_for(t).as_bytes())
        });
        if ok { Ok(()) } else { Err(AuthError::Invalid) }
    }

    fn challenge(&self) -> HeaderValue {
        let scheme = if self.scheme.is_empty() {
            "Bearer"
        } else {
            &self.scheme
        };
        HeaderValue::from_str(&format!("{scheme} realm=\"watchtower\""))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"watchtower\""))
    }
}

impl ClientAuthenticator for BearerTokenAuth {
    fn credential(&self) -> Result<(HeaderName, HeaderValue), AuthError> {
        let tokens = self.tokens();
        let t = tokens
            .first()
            .ok_or_else(|| AuthError::Unavailable("no token configured".into()))?;
        let mut v = HeaderValue::from_str(&self.value_for(t))
            .map_err(|_| AuthError::Unavailable("the token is not a valid header value".into()))?;
        v.set_sensitive(true);
        Ok((self.header.clone(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn static_tokens_scheme_and_header() {
        let a = BearerTokenAuth::new(&Config {
            tokens: vec!["one".into(), "two".into()],
            ..Config::default()
        })
        .unwrap();
        assert_eq!(
            a.authenticate(&headers("authorization", "Bearer two")),
            Ok(())
        );
        assert_eq!(
            a.authenticate(&headers("authorization", "Bearer three")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.authenticate(&headers("authorization", "two")),
            Err(AuthError::Invalid)
        );
        assert!(matches!(
            a.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing(_))
        ));
        let (k, v) = a.credential().unwrap();
        assert_eq!(
            (k.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer one")
        );

        let custom = BearerTokenAuth::new(&Config {
            scheme: String::new(),
            header: "X-Api-Key".into(),
            token: Some("k".into()),
            ..Config::default()
        })
        .unwrap();
        assert_eq!(custom.authenticate(&headers("x-api-key", "k")), Ok(()));
        assert!(custom.authenticate(&headers("authorization", "k")).is_err());
    }

    #[test]
    fn file_is_re_read_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "first\n").unwrap();
        let a = BearerTokenAuth::new(&Config {
            filename: Some(f.to_string_lossy().into()),
            token: Some("ignored".into()),
            ..Config::default()
        })
        .unwrap();
        assert_eq!(
            a.authenticate(&headers("authorization", "Bearer first")),
            Ok(())
        );
        assert!(
            a.authenticate(&headers("authorization", "Bearer ignored"))
                .is_err()
        );
        // rotate the way secret managers do: write a new file, rename it over the old one
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "second\nthird\n").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert!(
            a.authenticate(&headers("authorization", "Bearer first"))
                .is_err()
        );
        assert_eq!(
            a.authenticate(&headers("authorization", "Bearer third")),
            Ok(())
        );
        assert_eq!(a.credential().unwrap().1.to_str().unwrap(), "Bearer second");
        // a vanished file keeps the last tokens
        std::fs::remove_file(&f).unwrap();
        assert_eq!(
            a.authenticate(&headers("authorization", "Bearer second")),
            Ok(())
        );
    }

    #[test]
    fn config_errors() {
        let both = Config {
            token: Some("a".into()),
            tokens: vec!["b".into()],
            ..Config::default()
        };
        assert!(both.validate().unwrap_err().contains("not both"));
        assert!(
            Config::default()
                .validate()
                .unwrap_err()
                .contains("required")
        );
        let missing_file = Config {
            filename: Some("/nonexistent/token".into()),
            ..Config::default()
        };
        assert!(BearerTokenAuth::new(&missing_file).is_err());
        let newline = Config {
            tokens: vec!["ok".into(), "s3cret\nX-Evil: 1".into()],
            ..Config::default()
        };
        let e = newline.validate().unwrap_err();
        assert!(
            e.starts_with("tokens[1] holds") && !e.contains("s3cret"),
            "{e}"
        );
    }
}

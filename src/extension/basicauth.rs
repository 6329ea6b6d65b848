//! The `basicauth` extension (HTTP Basic, RFC 7617), in the shape of the Collector-contrib
//! extension of that name:
//! ```yaml
//! extensions:
//!   basicauth/server:
//!     htpasswd:
//!       file: /etc/watchtower/htpasswd    # and/or
//!       inline: |
//!         alice:$2y$10$...                # bcrypt (htpasswd -B)
//!         bob:{SHA}...                    # SHA-1 (htpasswd -s)
//!         carol:plain-password            # plain text
//!   basicauth/client:
//!     client_auth: { username: svc, password: s3cret }
//! ```
//! `file` is read at start; `inline` entries win over the file's for the same user. MD5
//! (`$apr1$`) and `crypt` hashes are refused at start with a message naming the user.
//! Plain and SHA-1 entries are compared in constant time; bcrypt costs CPU per request by
//! design (keep its cost low for high request rates), and is run off the async worker.

use super::auth::{AuthError, ClientAuthenticator, ServerAuthenticator, ct_eq};
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::HashMap;

/// The extension's settings: `htpasswd` for the server role, `client_auth` for the client.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub htpasswd: Option<Htpasswd>,
    pub client_auth: Option<ClientAuth>,
}

/// Where the accepted users come from.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Htpasswd {
    /// An htpasswd file (`user:hash` per line).
    pub file: Option<String>,
    /// htpasswd lines written in the config.
    pub inline: Option<String>,
}

/// The credential an exporter sends.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    #[serde(deserialize_with = "crate::config::common::text")]
    pub username: String,
    #[serde(default, deserialize_with = "crate::config::common::text")]
    pub password: String,
}

impl Config {
    /// At least one role; a server's entries must parse.
    pub fn validate(&self) -> Result<(), String> {
        if self.htpasswd.is_none() && self.client_auth.is_none() {
            return Err("one of htpasswd (server) or client_auth (client) is required".into());
        }
        if let Some(h) = &self.htpasswd {
            if h.file.is_none() && h.inline.is_none() {
                return Err("htpasswd needs file or inline".into());
            }
            if let Some(i) = &h.inline {
                parse(i).map_err(|e| format!("htpasswd.inline: {e}"))?;
            }
        }
        if let Some(c) = &self.client_auth
            && c.username.contains(':')
        {
            return Err("client_auth.username must not contain ':' (RFC 7617)".into());
        }
        Ok(())
    }
}

/// One stored password.
#[derive(Clone, Debug, PartialEq)]
enum Stored {
    Plain(String),
    /// base64 of the SHA-1 digest (`{SHA}` entries).
    Sha1(String),
    Bcrypt(String),
}

impl Stored {
    fn verify(&self, password: &str) -> bool {
        match self {
            Stored::Plain(p) => ct_eq(p.as_bytes(), password.as_bytes()),
            Stored::Sha1(b64) => {
                use sha1::Digest;
                let digest = sha1::Sha1::digest(password.as_bytes());
                let mine = base64::engine::general_purpose::STANDARD.encode(digest);
                ct_eq(mine.as_bytes(), b64.as_bytes())
            }
            Stored::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        }
    }
}

fn parse(text: &str) -> Result<HashMap<String, Stored>, String> {
    let mut users = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| "every line must be user:password-hash".to_string())?;
        let stored = if let Some(s) = hash.strip_prefix("{SHA}") {
            Stored::Sha1(s.to_string())
        } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
            Stored::Bcrypt(hash.to_string())
        } else if hash.starts_with("$apr1$")
            || hash.starts_with("$1$")
            || hash.starts_with("$5$")
            || hash.starts_with("$6$")
        {
            return Err(format!(
                "user {user:?}: this hash type is not supported; use bcrypt (htpasswd -B), SHA-1 (htpasswd -s) or a plain password"
            ));
        } else {
            Stored::Plain(hash.to_string())
        };
        users.insert(user.to_string(), stored);
    }
    Ok(users)
}

/// The server role: checks `Authorization: Basic ...` against the htpasswd entries.
pub struct BasicAuthServer {
    users: HashMap<String, Stored>,
}

impl BasicAuthServer {
    /// Reads `htpasswd.file` (if any) and parses both sources.
    pub fn new(cfg: &Config) -> Result<BasicAuthServer, String> {
        cfg.validate()?;
        let h = cfg.htpasswd.clone().unwrap_or_default();
        let mut users = HashMap::new();
        if let Some(f) = &h.file {
            let text = std::fs::read_to_string(f).map_err(|e| format!("htpasswd.file {f}: {e}"))?;
            users.extend(parse(&text).map_err(|e| format!("htpasswd.file {f}: {e}"))?);
        }
        if let Some(i) = &h.inline {
            users.extend(parse(i).map_err(|e| format!("htpasswd.inline: {e}"))?);
        }
        Ok(BasicAuthServer { users })
    }
}

impl ServerAuthenticator for BasicAuthServer {
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AuthError::Missing("Authorization".into()))?;
        let (scheme, b64) = value.split_once(' ').ok_or(AuthError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::Invalid);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| AuthError::Invalid)?;
        let text = String::from_utf8(decoded).map_err(|_| AuthError::Invalid)?;
        let (user, password) = text.split_once(':').ok_or(AuthError::Invalid)?;
        match self.users.get(user) {
            Some(stored) if stored.verify(password) => Ok(()),
            _ => Err(AuthError::Invalid),
        }
    }

    fn challenge(&self) -> HeaderValue {
        HeaderValue::from_static("Basic realm=\"watchtower\", charset=\"UTF-8\"")
    }

    fn is_costly(&self) -> bool {
        self.users.values().any(|s| matches!(s, Stored::Bcrypt(_)))
    }
}

/// The client role: `Authorization: Basic base64(username:password)`.
pub struct BasicAuthClient {
    value: HeaderValue,
}

impl BasicAuthClient {
    /// Precomputes the header value.
    pub fn new(c: &ClientAuth) -> Result<BasicAuthClient, String> {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        let mut value = HeaderValue::from_str(&format!("Basic {b64}"))
            .map_err(|_| "client_auth: not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok(BasicAuthClient { value })
    }
}

impl ClientAuthenticator for BasicAuthClient {
    fn credential(&self) -> Result<(HeaderName, HeaderValue), AuthError> {
        Ok((http::header::AUTHORIZATION, self.value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[test]
    fn plain_sha1_and_bcrypt_entries() {
        let bc = bcrypt::hash("bc-pass", 4).unwrap();
        let inline = format!(
            "plain:pw1\n# comment\nsha:{{SHA}}{}\nbc:{bc}\n",
            // htpasswd -s for "sha-pass"
            {
                use sha1::Digest;
                base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b"sha-pass"))
            }
        );
        let s = BasicAuthServer::new(&Config {
            htpasswd: Some(Htpasswd {
                inline: Some(inline),
                file: None,
            }),
            client_auth: None,
        })
        .unwrap();
        assert_eq!(s.authenticate(&basic("plain", "pw1")), Ok(()));
        assert_eq!(s.authenticate(&basic("sha", "sha-pass")), Ok(()));
        assert_eq!(s.authenticate(&basic("bc", "bc-pass")), Ok(()));
        for (u, p) in [
            ("plain", "pw2"),
            ("sha", "x"),
            ("bc", "x"),
            ("nobody", "pw1"),
        ] {
            assert_eq!(s.authenticate(&basic(u, p)), Err(AuthError::Invalid), "{u}");
        }
        let mut bearer = HeaderMap::new();
        bearer.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer x"),
        );
        assert_eq!(s.authenticate(&bearer), Err(AuthError::Invalid));
        assert!(matches!(
            s.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing(_))
        ));
    }

    #[test]
    fn client_header_and_unsupported_hashes() {
        let c = BasicAuthClient::new(&ClientAuth {
            username: "svc".into(),
            password: "pw".into(),
        })
        .unwrap();
        let (k, v) = c.credential().unwrap();
        assert_eq!(k, http::header::AUTHORIZATION);
        assert_eq!(v.to_str().unwrap(), "Basic c3ZjOnB3");
        let e = Config {
            htpasswd: Some(Htpasswd {
                inline: Some("u:$apr1$abc$def".into()),
                file: None,
            }),
            client_auth: None,
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("\"u\"") && e.contains("bcrypt"), "{e}");
    }
}

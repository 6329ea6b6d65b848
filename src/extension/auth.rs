//! Authenticators in the Collector's shape: an authenticator extension (`bearertokenauth`,
//! `basicauth`) is defined under `extensions:`, listed in `service.extensions`, and named by
//! the components that use it: a receiver protocol's or the runs API's
//! `auth: { authenticator: <id> }` checks incoming requests (server role); an exporter's
//! `auth: { authenticator: <id> }` attaches its credential to outgoing requests (client role),
//! as the Collector's `configauth` does.
//!
//! gRPC metadata travels as HTTP/2 headers, so both roles work on an `http::HeaderMap` and
//! serve both transports.

use crate::config::{Config, ExtensionConfig, component_type};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `auth: { authenticator: <extension id> }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthRef {
    pub authenticator: String,
}

/// Why a request was not authenticated, or a credential could not be produced. Messages
/// never include the credential that was presented.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The request has no credential header.
    #[error("missing or empty {0} header")]
    Missing(String),
    /// A credential was presented and is not accepted.
    #[error("invalid credentials")]
    Invalid,
    /// The credential cannot be sent (for example a token file that holds no token).
    #[error("no credential available: {0}")]
    Unavailable(String),
}

/// The server role: checks the credential of an incoming request.
pub trait ServerAuthenticator: Send + Sync {
    /// `Ok` when the request's headers carry an accepted credential.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError>;
    /// The `WWW-Authenticate` value of a 401 answer (RFC 9110 section 11.6.1).
    fn challenge(&self) -> HeaderValue;
    /// True when a check may take milliseconds of CPU (bcrypt): [`check`] then runs it with
    /// `block_in_place`, so the worker's other tasks move on meanwhile.
    fn is_costly(&self) -> bool {
        false
    }
}

/// Runs `auth` on `headers`; a costly check leaves the async worker (on a multi-thread
/// runtime) so that it does not stall the other requests the worker serves.
pub fn check(auth: &dyn ServerAuthenticator, headers: &HeaderMap) -> Result<(), AuthError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi = Handle::try_current()
        .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if multi && auth.is_costly() {
        tokio::task::block_in_place(|| auth.authenticate(headers))
    } else {
        auth.authenticate(headers)
    }
}

/// The client role: the header an exporter adds to every request.
pub trait ClientAuthenticator: Send + Sync {
    /// The header to add, computed per request (a token file may have changed).
    fn credential(&self) -> Result<(HeaderName, HeaderValue), AuthError>;
}

/// The authenticators of one configuration, by extension id.
#[derive(Clone, Default)]
pub struct Authenticators {
    server: BTreeMap<String, Arc<dyn ServerAuthenticator>>,
    client: BTreeMap<String, Arc<dyn ClientAuthenticator>>,
}

impl Authenticators {
    /// Builds every authenticator extension listed in `service.extensions`.
    pub fn build(cfg: &Config) -> Result<Authenticators, String> {
        let mut a = Authenticators::default();
        for id in &cfg.service.extensions {
            match cfg.extensions.get(id) {
                Some(ExtensionConfig::BearerTokenAuth(c)) => {
                    let t = Arc::new(
                        super::bearertokenauth::BearerTokenAuth::new(c)
                            .map_err(|e| format!("extensions.{id}: {e}"))?,
                    );
                    a.server.insert(id.clone(), t.clone());
                    a.client.insert(id.clone(), t);
                }
                Some(ExtensionConfig::BasicAuth(c)) => {
                    if c.htpasswd.is_some() {
                        let s = super::basicauth::BasicAuthServer::new(c)
                            .map_err(|e| format!("extensions.{id}: {e}"))?;
                        a.server.insert(id.clone(), Arc::new(s));
                    }
                    if let Some(ca) = &c.client_auth {
                        let cl = super::basicauth::BasicAuthClient::new(ca)
                            .map_err(|e| format!("extensions.{id}: {e}"))?;
                        a.client.insert(id.clone(), Arc::new(cl));
                    }
                }
                _ => {}
            }
        }
        Ok(a)
    }

    /// True when no authenticator is configured (as in `validate`, which builds none).
    pub fn is_empty(&self) -> bool {
        self.server.is_empty() && self.client.is_empty()
    }

    /// The server authenticator `r` names, if any.
    pub fn server(
        &self,
        r: Option<&AuthRef>,
    ) -> Result<Option<Arc<dyn ServerAuthenticator>>, String> {
        let Some(r) = r else { return Ok(None) };
        self.server.get(&r.authenticator).cloned().map(Some).ok_or_else(|| {
            format!(
                "auth.authenticator {:?} is not a server authenticator listed in service.extensions",
                r.authenticator
            )
        })
    }

    /// The client authenticator `r` names, if any.
    pub fn client(
        &self,
        r: Option<&AuthRef>,
    ) -> Result<Option<Arc<dyn ClientAuthenticator>>, String> {
        let Some(r) = r else { return Ok(None) };
        self.client.get(&r.authenticator).cloned().map(Some).ok_or_else(|| {
            format!(
                "auth.authenticator {:?} is not a client authenticator listed in service.extensions",
                r.authenticator
            )
        })
    }
}

/// Which role a reference needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// Every `auth` reference in `cfg` with its path and role.
fn references(cfg: &Config) -> Vec<(String, &AuthRef, Role)> {
    use crate::config::{ExporterConfig, ReceiverConfig};
    let mut v = Vec::new();
    for (id, rc) in &cfg.receivers {
        let ReceiverConfig::Otlp(o) = rc;
        if let Some(r) = o.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref()) {
            v.push((
                format!("receivers.{id}.protocols.grpc.auth"),
                r,
                Role::Server,
            ));
        }
        if let Some(r) = o.protocols.http.as_ref().and_then(|h| h.auth.as_ref()) {
            v.push((
                format!("receivers.{id}.protocols.http.auth"),
                r,
                Role::Server,
            ));
        }
    }
    for (id, ec) in &cfg.exporters {
        let r = match ec {
            ExporterConfig::Otlp(c) => c.auth.as_ref(),
            ExporterConfig::OtlpHttp(c) => c.auth.as_ref(),
            _ => None,
        };
        if let Some(r) = r {
            v.push((format!("exporters.{id}.auth"), r, Role::Client));
        }
    }
    for (id, x) in &cfg.extensions {
        let r = match x {
            ExtensionConfig::Runs(c) => c.auth.as_ref(),
            ExtensionConfig::Zpages(c) => c.auth.as_ref(),
            _ => None,
        };
        if let Some(r) = r {
            v.push((format!("extensions.{id}.auth"), r, Role::Server));
        }
        // calls to the peers carry peer_auth's credential, by default auth's
        if let ExtensionConfig::Runs(c) = x {
            match (&c.peer_auth, &c.auth) {
                (Some(p), _) => v.push((format!("extensions.{id}.peer_auth"), p, Role::Client)),
                (None, Some(a)) if !c.peers.is_empty() => v.push((
                    format!("extensions.{id}.peer_auth (unset: auth's, sent to the peers)"),
                    a,
                    Role::Client,
                )),
                _ => {}
            }
        }
    }
    v
}

/// Checks that every `auth.authenticator` names an authenticator extension that is defined,
/// listed in `service.extensions` and can play the role asked of it. Returns (path, message).
pub fn check_references(cfg: &Config) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    for (path, r, role) in references(cfg) {
        let id = &r.authenticator;
        let msg = match cfg.extensions.get(id) {
            None => Some(format!(
                "authenticator {id:?} is not defined in extensions (use a bearertokenauth or basicauth extension)"
            )),
            Some(_) if !cfg.service.extensions.contains(id) => Some(format!(
                "authenticator {id:?} is not listed in service.extensions"
            )),
            Some(ExtensionConfig::BearerTokenAuth(_)) => None,
            Some(ExtensionConfig::BasicAuth(c)) => match role {
                Role::Server if c.htpasswd.is_none() => Some(format!(
                    "authenticator {id:?} has no htpasswd, so it cannot check requests"
                )),
                Role::Client if c.client_auth.is_none() => Some(format!(
                    "authenticator {id:?} has no client_auth, so it has no credential to send"
                )),
                _ => None,
            },
            Some(_) => Some(format!(
                "{id:?} is a {} extension, not an authenticator (bearertokenauth, basicauth)",
                component_type(id)
            )),
        };
        if let Some(m) = msg {
            errs.push((format!("{path}.authenticator"), m));
        }
    }
    errs
}

/// Constant-time equality of two byte strings (the length is not hidden).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Wraps `routes` so that every request must pass `auth` first: a refusal is a 401 with
/// `WWW-Authenticate` and a JSON error, logged (without the credential) under `component`.
pub fn protect(
    routes: axum::Router,
    auth: Arc<dyn ServerAuthenticator>,
    component: &'static str,
) -> axum::Router {
    use axum::response::IntoResponse;
    routes.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let auth = auth.clone();
            async move {
                match check(auth.as_ref(), req.headers()) {
                    Ok(()) => next.run(req).await,
                    Err(e) => {
                        tracing::info!(component, reason = "unauthenticated", message = %e, "request refused");
                        let mut resp = (
                            http::StatusCode::UNAUTHORIZED,
                            [(http::header::CONTENT_TYPE, "application/json")],
                            serde_json::json!({ "error": e.to_string() }).to_string(),
                        )
                            .into_response();
                        resp.headers_mut()
                            .insert(http::header::WWW_AUTHENTICATE, auth.challenge());
                        resp
                    }
                }
            }
        },
    ))
}

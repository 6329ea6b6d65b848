//! Binding and TLS for every listener (OTLP gRPC, OTLP HTTP, admin): plain or TLS (rustls,
//! ALPN h2 + http/1.1), HTTP/1 and HTTP/2 (h2c prior knowledge for gRPC) on the same port.
//! The accept loop, with its timeouts and limits, is [`crate::listener::serve`].

use crate::config::common::ServerTls;
use crate::listener::config::ListenerSettings;
use crate::listener::metrics::ListenerMetrics;
use axum::Router;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Loads a rustls server config from PEM files (`tls.cert_file`: the certificate chain,
/// `tls.key_file`: a PKCS#1, PKCS#8 or SEC1 private key), parsed by `rustls-pki-types`.
/// Errors name the file and the problem.
pub fn tls_acceptor(tls: &ServerTls) -> Result<TlsAcceptor, String> {
    crate::install_crypto_provider();
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("tls.key_file {}: no private key found", tls.key_file),
        e => format!("tls.key_file {}: {e}", tls.key_file),
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Mutual TLS: every client must present a certificate chaining to a CA in `ca_file`
/// (rustls' WebPKI verifier; a handshake without one fails).
fn client_verifier(
    ca_file: &str,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let err = |e: &dyn std::fmt::Display| format!("tls.client_ca_file {ca_file}: {e}");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| err(&e))? {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    if roots.is_empty() {
        return Err(err(&"no certificate found"));
    }
    rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| err(&e))
}

/// Binds `endpoint` (host:port).
pub async fn bind(endpoint: &str) -> Result<TcpListener, String> {
    TcpListener::bind(endpoint)
        .await
        .map_err(|e| format!("cannot listen on {endpoint}: {e}"))
}

/// Serves `app` on `listener` until `shutdown` turns true, then waits up to `grace` for open
/// connections to finish. Uses the built-in HTTP listener limits
/// ([`ListenerSettings::http_defaults`]); [`crate::listener::serve`] takes explicit ones.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let settings =
        ListenerSettings::http_defaults("http", crate::listener::config::DEFAULT_MAX_CONNECTIONS);
    crate::listener::serve(
        listener,
        tls,
        app,
        settings,
        Arc::new(ListenerMetrics::default()),
        shutdown,
        grace,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_are_read_as_pem_and_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
        std::fs::write(path("c.pem"), cert.cert.pem()).unwrap();
        std::fs::write(path("k.pem"), cert.key_pair.serialize_pem()).unwrap();
        let tls = |c: &str, k: &str| ServerTls {
            cert_file: path(c),
            key_file: path(k),
            client_ca_file: None,
        };
        assert!(tls_acceptor(&tls("c.pem", "k.pem")).is_ok());
        // a key file holding only a certificate
        let err = tls_acceptor(&tls("c.pem", "c.pem")).err().unwrap();
        assert!(
            err.contains("no private key found") && err.contains("c.pem"),
            "{err}"
        );
        let err = tls_acceptor(&tls("missing.pem", "k.pem")).err().unwrap();
        assert!(
            err.starts_with("tls.cert_file") && err.contains("missing.pem"),
            "{err}"
        );
    }
}

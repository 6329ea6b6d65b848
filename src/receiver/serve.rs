//! Binding and TLS for every listener (OTLP gRPC, OTLP HTTP, admin): plain or TLS (rustls,
//! ALPN h2 + http/1.1), HTTP/1 and HTTP/2 (h2c prior knowledge for gRPC) on the same port.
//! The accept loop, with its timeouts and limits, is [`crate::listener::serve`].

use crate::config::common::ServerTls;
use crate::listener::config::ListenerSettings;
use crate::listener::metrics::ListenerMetrics;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Loads a rustls server config from PEM files.
pub fn tls_acceptor(tls: &ServerTls) -> Result<TlsAcceptor, String> {
    crate::install_crypto_provider();
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&tls.cert_file)
            .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&tls.key_file)
            .map_err(|e| format!("tls.key_file {}: {e}", tls.key_file))?,
    ))
    .map_err(|e| format!("tls.key_file {}: {e}", tls.key_file))?
    .ok_or_else(|| format!("tls.key_file {}: no private key found", tls.key_file))?;
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
    let file = std::fs::File::open(ca_file).map_err(|e| err(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
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

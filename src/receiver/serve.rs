//! One accept loop for every listener (OTLP gRPC, OTLP HTTP, admin): plain or TLS (rustls,
//! ALPN h2 + http/1.1), HTTP/1 and HTTP/2 (h2c prior knowledge for gRPC) on the same port,
//! and graceful shutdown that stops accepting and lets open requests finish.

use crate::config::common::ServerTls;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

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
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Binds `endpoint` (host:port).
pub async fn bind(endpoint: &str) -> Result<TcpListener, String> {
    TcpListener::bind(endpoint)
        .await
        .map_err(|e| format!("cannot listen on {endpoint}: {e}"))
}

/// Serves `app` on `listener` until `shutdown` turns true, then waits up to `grace` for open
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(1024)
        .adaptive_window(true);
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let builder = builder.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move { app.oneshot(req.map(axum::body::Body::new)).await }
                });
                match &tls {
                    None => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned();
                        let fut = graceful.watch(conn);
                        tokio::spawn(async move {
                            let _ = fut.await;
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let Ok(Ok(tls_stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                                return;
                            };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc).into_owned();
                            let _ = watcher.watch(conn).await;
                        });
                    }
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
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

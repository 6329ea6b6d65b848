//! Timeouts and limits on every listener (OTLP gRPC and HTTP, health_check with the runs
//! API, self-metrics): one accept loop that caps connections (`tracker`), drives each
//! connection through hyper-util's connection builder with a timer (HTTP/1 header timeout,
//! HTTP/2 keepalive PINGs, `max_concurrent_streams`), closes it gracefully (GOAWAY) when idle
//! or too old (`conn`), bounds body reads in time (`body`) and stalled writes
//! (`write_timeout`). The file-descriptor limit is raised at start (`fd_limit`).
//! Settings and defaults are in `config`; docs/listeners.md lists them.

pub(crate) mod body;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod fd_limit;
pub(crate) mod metrics;
pub(crate) mod tracker;
pub(crate) mod write_timeout;

use self::body::{BodyLimits, TimedBody};
use self::config::{BODY_RATE_WINDOW, ListenerSettings};
use self::conn::{CloseReason, ConnState};
use self::metrics::{CloseLabels, ListenerMetrics};
use self::tracker::{Admission, Tracker};
use self::write_timeout::WriteTimeoutIo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Descriptors kept aside for destinations, queue files and the runtime when comparing the
/// connection caps with the open-file limit.
const FD_RESERVE: u64 = 256;

/// The sum of `max_connections` over every listener `cfg` opens.
pub fn connection_budget(cfg: &crate::config::Config) -> u64 {
    use crate::config::{ExtensionConfig, ReceiverConfig};
    let mut total = 0u64;
    for (id, rc) in &cfg.receivers {
        let ReceiverConfig::Otlp(oc) = rc;
        if !cfg
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.contains(id))
        {
            continue;
        }
        total += oc
            .protocols
            .grpc
            .as_ref()
            .map_or(0, |g| g.max_connections as u64);
        total += oc
            .protocols
            .http
            .as_ref()
            .map_or(0, |h| h.max_connections as u64);
    }
    for id in &cfg.service.extensions {
        if let Some(ExtensionConfig::HealthCheck(h)) = cfg.extensions.get(id) {
            total += h.max_connections as u64;
        }
    }
    if !cfg.service.telemetry.metrics.endpoint().is_empty() {
        total += config::DEFAULT_ADMIN_MAX_CONNECTIONS as u64;
    }
    total
}

/// At process start: raises the open-file limit (logged) and warns when the listeners' caps
/// do not fit under it, since `accept` would then fail before a cap applies.
pub fn prepare_process(cfg: &crate::config::Config) {
    let Some(soft) = fd_limit::raise_and_log() else {
        return;
    };
    let budget = connection_budget(cfg);
    if budget + FD_RESERVE > soft {
        tracing::warn!(
            open_file_limit = soft,
            max_connections_total = budget,
            "the listeners' max_connections add up to more than the open-file limit allows; lower them or raise the limit (ulimit -n)"
        );
    }
}

/// How long a TLS handshake may take at most (less when `read_header_timeout` is shorter).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest HTTP/2 frame a client may send us (`SETTINGS_MAX_FRAME_SIZE`, RFC 9113 6.5.2),
/// in bytes. HTTP/2's default, 16 KiB, cuts a typical OTLP request (tens of KiB) into several
/// DATA frames, each one more frame to parse and flow-control and often one more read; 64 KiB
/// carries most requests in one frame. A frame is buffered whole before it is handled, so this
/// is also what one connection can make the server hold for a frame in flight.
pub const H2_MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The largest header block (gRPC metadata) an HTTP/2 request may carry
/// (`SETTINGS_MAX_HEADER_LIST_SIZE`, RFC 9113 6.5.2, counted as RFC 9113 defines it: names,
/// values and 32 bytes per field), in bytes. hyper's default of 16 KiB refused requests whose
/// metadata holds one large token (a JWT with many claims); 64 KiB carries those. A larger
/// block is refused by the HTTP/2 layer before the request reaches the receiver: an HTTP 431
/// or, far over, the connection is closed.
pub const H2_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// The hyper-util builder for these settings (timer set, so hyper's own timeouts apply).
fn builder(s: &ListenerSettings) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    // half_close: a client that sends a whole request and shuts down its write side (or
    // leaves) gets its request handled; without it hyper drops the handler at the EOF,
    // mid-request, and a request received whole could vanish uncounted
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.read_header_timeout)
        .half_close(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.max_concurrent_streams)
        .max_frame_size(H2_MAX_FRAME_SIZE)
        .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
        .adaptive_window(true)
        .keep_alive_interval(s.keepalive_time)
        .keep_alive_timeout(s.keepalive_timeout);
    b
}

/// Everything one listener's connections share.
struct Shared {
    settings: ListenerSettings,
    builder: Builder<TokioExecutor>,
    app: Router,
    metrics: Arc<ListenerMetrics>,
    /// Grace for connections still open when the listener shuts down.
    shutdown_grace: Duration,
}

/// Serves `app` on `listener` with `settings` until `shutdown` turns true, then closes every
/// connection gracefully and waits up to `grace` for them.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    settings: ListenerSettings,
    metrics: Arc<ListenerMetrics>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let tracker = Tracker::new(settings.max_connections);
    let labels = ListenerMetrics::labels(&settings.name);
    let shared = Arc::new(Shared {
        builder: builder(&settings),
        settings,
        app,
        metrics,
        shutdown_grace: grace,
    });
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    let mut last_accept_log: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _peer)) => s,
                    Err(e) => {
                        // out of descriptors: free one by closing the longest-idle connection
                        let shed = tracker.shed_idle();
                        if last_accept_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            last_accept_log = Some(tokio::time::Instant::now());
                            tracing::warn!(listener = %shared.settings.name, error = %e, closed_idle = shed, "accept failed (logged at most every 10 s)");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let guard = match tracker.admit() {
                    Admission::Admitted(g) | Admission::AdmittedEvicting(g) => g,
                    Admission::Refused => {
                        shared.metrics.refused.get_or_create(&labels).inc();
                        if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            last_refusal_log = Some(tokio::time::Instant::now());
                            tracing::warn!(listener = %shared.settings.name, max_connections = shared.settings.max_connections, "connection refused: max_connections reached and no connection is idle");
                        }
                        drop(stream);
                        continue;
                    }
                };
                shared.metrics.accepted.get_or_create(&labels).inc();
                shared.metrics.open.get_or_create(&labels).set(tracker.open() as i64);
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                let stop = shutdown.clone();
                let tracker = tracker.clone();
                let labels = labels.clone();
                tokio::spawn(async move {
                    let state = guard.state.clone();
                    match tls {
                        None => run_conn(stream, &shared, state, stop).await,
                        Some(acceptor) => {
                            let limit = shared.settings.read_header_timeout.map_or(TLS_HANDSHAKE_TIMEOUT, |t| t.min(TLS_HANDSHAKE_TIMEOUT));
                            if let Ok(Ok(s)) = tokio::time::timeout(limit, acceptor.accept(stream)).await {
                                run_conn(s, &shared, state, stop).await;
                            }
                        }
                    }
                    drop(guard);
                    shared.metrics.open.get_or_create(&labels).set(tracker.open() as i64);
                });
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    // connections see the same shutdown signal and close themselves within `grace`
    let end = tokio::time::Instant::now() + grace + Duration::from_millis(100);
    while tracker.open() > 0 && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves one connection until it ends, closing it gracefully when [`conn::wait_close`]
/// says so and forcibly after the grace period.
async fn run_conn<IO>(
    io: IO,
    shared: &Arc<Shared>,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let s = &shared.settings;
    let io = TokioIo::new(WriteTimeoutIo::new(io, s.write_timeout));
    let limits = BodyLimits {
        read_timeout: s.read_timeout,
        min_rate: s.min_body_rate,
        window: BODY_RATE_WINDOW,
    };
    let app = shared.app.clone();
    let svc_state = state.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = svc_state.begin();
        let http1 = req.version() < http::Version::HTTP_2;
        let conn = http1.then(|| svc_state.clone());
        let app = app.clone();
        async move {
            let req = req.map(|b| axum::body::Body::new(TimedBody::new(b, limits, conn)));
            let res = app.oneshot(req).await;
            drop(guard);
            res
        }
    });
    let conn = shared.builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let age_deadline = s
        .max_connection_age
        .map(|a| state.accepted + conn::jittered(a));
    let count_close = |reason: CloseReason| {
        shared
            .metrics
            .closed
            .get_or_create(&CloseLabels {
                listener: s.name.clone(),
                reason: reason.as_str().into(),
            })
            .inc();
    };
    let reason = tokio::select! {
        _ = conn.as_mut() => {
            // hyper itself closes an HTTP/1 connection whose body was abandoned
            if let Some(r) = state.close_requested() {
                count_close(r);
            }
            return;
        }
        r = conn::wait_close(&state, s.idle_timeout, s.read_header_timeout, age_deadline, &mut stop) => r,
    };
    count_close(reason);
    conn.as_mut().graceful_shutdown();
    let grace = match reason {
        CloseReason::Shutdown => shared.shutdown_grace,
        CloseReason::BodyTimeout => Duration::from_secs(1),
        _ => s.max_connection_age_grace,
    };
    let _ = tokio::time::timeout(grace, conn).await;
}

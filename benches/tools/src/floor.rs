//! `watchtower-bench floor`: the cost floor of the sidecar benchmark. An OTLP endpoint built
//! from the gateway's HTTP libraries alone (hyper's HTTP/2 and HTTP/1.1 servers over a
//! current-thread tokio runtime, the gateway's HTTP/2 frame size and flow-control settings)
//! that reads every request body whole and answers success, doing nothing else: no
//! validation, no queue, no export. Run under the same load as the gateway, its CPU is what
//! the kernel and the libraries cost for that traffic, so the gateway's own share is the
//! difference (BENCHMARKS.md, "Sidecar").

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::net::SocketAddr;
use std::process::ExitCode;

/// `watchtower-bench floor` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Listen address (`127.0.0.1:0` for a free port; the address is printed as
    /// `floor listening <addr>`); HTTP/2 (OTLP/gRPC) and HTTP/1.1 (OTLP/HTTP) are told apart
    /// per connection.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub listen: SocketAddr,
}

/// The answer to one request: an empty `Export*ServiceResponse` as a gRPC message with
/// `grpc-status: 0` for `application/grpc`, an empty protobuf body otherwise.
async fn answer(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>, hyper::Error>
{
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let _body = req.into_body().collect().await?.to_bytes();
    if grpc {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok(hyper::body::Frame::data(Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ]))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ]));
        let mut resp = http::Response::new(BodyExt::boxed(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok(resp)
    } else {
        let mut resp = http::Response::new(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed(),
        );
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(resp)
    }
}

/// Serves until killed.
pub fn main(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cannot listen on {}: {e}", args.listen);
                return ExitCode::from(1);
            }
        };
        if let Ok(addr) = listener.local_addr() {
            use std::io::Write;
            println!("floor listening {addr}");
            let _ = std::io::stdout().flush();
        }
        let mut b = Builder::new(TokioExecutor::new());
        b.http2()
            .timer(TokioTimer::new())
            .max_frame_size(watchtower::listener::H2_MAX_FRAME_SIZE)
            .adaptive_window(true);
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let b = b.clone();
            tokio::spawn(async move {
                let _ = b
                    .serve_connection(TokioIo::new(sock), hyper::service::service_fn(answer))
                    .await;
            });
        }
    })
}

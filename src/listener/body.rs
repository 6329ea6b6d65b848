//! Request body limits in time: `read_timeout` (the whole body within a deadline from the
//! start of the request) and `min_body_rate` (at least `rate x window` bytes in every
//! [`BODY_RATE_WINDOW`](super::config::BODY_RATE_WINDOW) while the body is being read), so a
//! client trickling a body (slowloris on the body) cannot hold a request open. The check
//! only runs while the body is polled: time a handler spends not reading is not charged to
//! the client, because data buffered meanwhile arrives at once on the next poll.

use super::conn::{CloseReason, ConnState};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A body that was not received in time.
#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("request body not received within read_timeout ({0:?})")]
    ReadTimeout(Duration),
    #[error("request body slower than min_body_rate ({rate} bytes/s over {window:?})")]
    TooSlow { rate: u64, window: Duration },
}

/// The limits a [`TimedBody`] applies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub read_timeout: Option<Duration>,
    pub min_rate: u64,
    pub window: Duration,
}

/// Wraps a request body with [`BodyLimits`]. On a timeout it yields a [`BodyTimeout`] error
/// and, for HTTP/1 (`conn` set), asks the connection to close.
pub struct TimedBody<B> {
    inner: B,
    limits: BodyLimits,
    deadline: Option<Pin<Box<Sleep>>>,
    window: Option<Pin<Box<Sleep>>>,
    window_bytes: u64,
    conn: Option<Arc<ConnState>>,
    done: bool,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, limits: BodyLimits, conn: Option<Arc<ConnState>>) -> Self {
        let deadline = limits.read_timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        TimedBody {
            inner,
            limits,
            deadline,
            window: None,
            window_bytes: 0,
            conn,
            done: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let required = this
            .limits
            .min_rate
            .saturating_mul(this.limits.window.as_secs().max(1));
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.window_bytes += d.len() as u64;
                }
                // data flowed: a window that ended with enough bytes starts over
                if let Some(w) = this.window.as_mut()
                    && w.is_elapsed()
                    && this.window_bytes >= required
                {
                    w.as_mut().reset(Instant::now() + this.limits.window);
                    this.window_bytes = 0;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let mut err = None;
                if let Some(d) = this.deadline.as_mut()
                    && d.as_mut().poll(cx).is_ready()
                {
                    err = this.limits.read_timeout.map(BodyTimeout::ReadTimeout);
                }
                // the window starts the first time the body makes the server wait, so a body
                // that arrives whole costs no timer
                if this.limits.min_rate > 0 && this.window.is_none() {
                    this.window = Some(Box::pin(tokio::time::sleep(this.limits.window)));
                }
                if err.is_none()
                    && let Some(w) = this.window.as_mut()
                    && w.as_mut().poll(cx).is_ready()
                {
                    if this.window_bytes >= required {
                        w.as_mut().reset(Instant::now() + this.limits.window);
                        this.window_bytes = 0;
                        // register the new deadline with the waker
                        let _ = w.as_mut().poll(cx);
                    } else {
                        err = Some(BodyTimeout::TooSlow {
                            rate: this.limits.min_rate,
                            window: this.limits.window,
                        });
                    }
                }
                match err {
                    Some(e) => {
                        this.done = true;
                        if let Some(c) = this.conn.as_ref() {
                            c.request_close(CloseReason::BodyTimeout);
                        }
                        Poll::Ready(Some(Err(Box::new(e))))
                    }
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::StreamBody;

    type TestBody = Pin<Box<dyn Body<Data = Bytes, Error = std::convert::Infallible> + Send>>;

    /// A body fed by a channel, one chunk at a time.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, TestBody) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
        });
        (tx, Box::pin(StreamBody::new(stream)))
    }

    const WINDOW: Duration = Duration::from_secs(10);

    fn limits(read_timeout: Option<u64>, rate: u64) -> BodyLimits {
        BodyLimits {
            read_timeout: read_timeout.map(Duration::from_secs),
            min_rate: rate,
            window: WINDOW,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_fails_after_one_window_and_closes_the_http1_connection() {
        let (tx, inner) = channel_body();
        let conn = ConnState::new(1);
        let body = TimedBody::new(inner, limits(None, 100), Some(conn.clone()));
        tokio::spawn(async move {
            // 1 byte per second: 10 bytes per window, 1000 required
            for _ in 0..100 {
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let start = Instant::now();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("min_body_rate"), "{err}");
        assert!(
            start.elapsed() <= WINDOW + Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(conn.close_requested(), Some(CloseReason::BodyTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_above_the_rate_is_read_whole_across_windows() {
        let (tx, inner) = channel_body();
        let body = TimedBody::new(inner, limits(None, 100), None);
        tokio::spawn(async move {
            // 200 bytes/s for 35 s
            for _ in 0..35 {
                let _ = tx.send(Bytes::from(vec![b'x'; 200])).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 35 * 200);
    }

    #[tokio::test(start_paused = true)]
    async fn read_timeout_bounds_the_whole_body() {
        let (tx, inner) = channel_body();
        let body = TimedBody::new(inner, limits(Some(5), 0), None);
        tokio::spawn(async move {
            for _ in 0..100 {
                if tx.send(Bytes::from(vec![b'x'; 10_000])).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let start = Instant::now();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("read_timeout"), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_elsewhere_is_not_charged_to_the_client() {
        let (tx, inner) = channel_body();
        let mut body = std::pin::pin!(TimedBody::new(inner, limits(None, 100), None));
        tx.send(Bytes::from(vec![b'x'; 10])).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.data_ref().map(|d| d.len()), Some(10));
        // the handler does something else for a minute while the client sends 2 KiB
        tx.send(Bytes::from(vec![b'x'; 2048])).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tx);
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), 2048);
    }
}

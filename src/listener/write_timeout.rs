//! `write_timeout` as a stall limit on the socket: a write (or flush) that makes no progress
//! for this long fails with `TimedOut`, which closes the connection. A client that stops
//! reading its responses therefore cannot pin a connection and its buffers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An I/O stream whose writes time out when stalled.
pub struct WriteTimeoutIo<T> {
    inner: T,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> WriteTimeoutIo<T> {
    pub fn new(inner: T, timeout: Option<Duration>) -> Self {
        WriteTimeoutIo {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }

    /// Called when the inner write returned Pending: starts or checks the stall timer.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(t) = self.timeout else {
            return Poll::Pending;
        };
        if !self.armed {
            let at = Instant::now() + t;
            match self.timer.as_mut() {
                Some(s) => s.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        match self.timer.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client did not read for write_timeout ({t:?})"),
            )),
            _ => Poll::Pending,
        }
    }

    fn progress<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(v) => {
                self.armed = false;
                Poll::Ready(v)
            }
            Poll::Pending => match self.stalled(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeoutIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeoutIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_write_after_the_timeout() {
        // a 64-byte pipe that nobody reads
        let (a, _b) = tokio::io::duplex(64);
        let mut w = WriteTimeoutIo::new(a, Some(Duration::from_secs(3)));
        let start = Instant::now();
        let err = w.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = b.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        let mut w = WriteTimeoutIo::new(a, Some(Duration::from_secs(3)));
        w.write_all(&[0u8; 1024]).await.unwrap();
    }
}

//! Admission control and framing checks for OTLP/gRPC: the request body is wrapped so every
//! message is checked when its 5-byte length prefix arrives (gRPC over HTTP/2,
//! "Length-Prefixed-Message"), before the message is buffered:
//!
//! - a compressed-flag other than 0/1, or 1 without a supported `grpc-encoding`, is bad data
//!   (INVALID_ARGUMENT), as is a stream that ends inside a message;
//! - a message announcing more than `max_recv_msg_size_mib` is too large (RESOURCE_EXHAUSTED
//!   without `RetryInfo`);
//! - otherwise the message is charged to the receiver's budget for the length it announces:
//!   a reader reserves a buffer of that size at once, so charging the bytes as they trickle in
//!   would let half-sent messages commit memory unaccounted. A message that does not fit is
//!   refused by admission control (RESOURCE_EXHAUSTED with `RetryInfo`).
//!
//! The first refused message ends the body with an error and leaves its `Refused` in the
//! request's `ChargeState`; the service answers that refusal from the table in
//! [`crate::receiver::refusal`] instead of a generic body error.

use crate::receiver::admission::{Budget, Charge, Transport};
use crate::receiver::refusal::{RefusalKind, Refused};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What one request has been charged, and why it was refused, if it was.
pub(crate) struct Charged {
    /// Bytes held for this request, released when the state is dropped.
    pub(crate) charge: Charge,
    /// The refusal a message met (admission, too large, bad framing).
    pub(crate) refused: Option<Refused>,
}

/// Shared between the body wrapper and the service future that outlives it.
pub(crate) type ChargeState = Arc<Mutex<Charged>>;

/// A new, empty state for one request.
pub(crate) fn state(budget: &Budget) -> ChargeState {
    Arc::new(Mutex::new(Charged {
        charge: budget.none(),
        refused: None,
    }))
}

/// A request body that checks each message's prefix and charges it to a budget.
pub(crate) struct ChargedBody<B> {
    inner: Pin<Box<B>>,
    budget: Arc<Budget>,
    state: ChargeState,
    framing: Framing,
    /// messages announcing more than this many bytes are refused as too large
    max_message: usize,
    /// whether the request names a supported `grpc-encoding` (compressed-flag 1 allowed)
    compressed: bool,
}

/// One message's length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prefix {
    /// the compressed-flag byte
    flag: u8,
    /// the payload length it announces (bytes, prefix excluded)
    len: usize,
}

/// Where the body is in the gRPC message framing.
#[derive(Default)]
struct Framing {
    /// prefix bytes seen of the current message (0..5)
    prefix: [u8; 5],
    prefix_len: usize,
    /// payload bytes of the current message still to come
    remaining: usize,
}

impl Framing {
    /// Walks `data`; returns the prefixes of messages whose prefix completed in it.
    fn prefixes(&mut self, mut data: &[u8]) -> Vec<Prefix> {
        let mut found = Vec::new();
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                found.push(Prefix {
                    flag: self.prefix[0],
                    len,
                });
                self.remaining = len;
                self.prefix_len = 0;
            }
        }
        found
    }

    /// Walks `data`; returns the announced lengths (prefix included) of messages whose
    /// prefix completed in it.
    #[cfg(test)]
    fn feed(&mut self, data: &[u8]) -> Vec<usize> {
        self.prefixes(data).iter().map(|p| p.len + 5).collect()
    }

    /// True inside a message (its prefix or payload not complete).
    fn mid_message(&self) -> bool {
        self.prefix_len > 0 || self.remaining > 0
    }
}

impl<B> ChargedBody<B> {
    /// Wraps `inner`; charges go to `budget` and are kept in `state` (released when the
    /// last holder of `state` drops it). `max_message` is the receiver's message size limit
    /// (bytes); `compressed` says whether the request has a supported `grpc-encoding`.
    pub(crate) fn new(
        inner: B,
        budget: Arc<Budget>,
        state: ChargeState,
        max_message: usize,
        compressed: bool,
    ) -> Self {
        ChargedBody {
            inner: Box::pin(inner),
            budget,
            state,
            framing: Framing::default(),
            max_message,
            compressed,
        }
    }

    /// The refusal of a message with prefix `p`, if it is refused; charges it otherwise.
    fn check(&self, p: Prefix) -> Result<(), Refused> {
        match p.flag {
            0 => {}
            1 if self.compressed => {}
            1 => {
                return Err(Refused::new(
                    RefusalKind::BadData,
                    "a message has the compressed-flag set but the request has no grpc-encoding",
                ));
            }
            f => {
                return Err(Refused::new(
                    RefusalKind::BadData,
                    format!("a message has compressed-flag {f} (gRPC allows 0 or 1)"),
                ));
            }
        }
        if p.len > self.max_message {
            return Err(too_large(self.max_message));
        }
        self.state
            .lock()
            .charge
            .grow(&self.budget, p.len + 5, Transport::Grpc)?;
        Ok(())
    }

    /// Keeps `r` for the service and ends the body with it.
    fn refuse(&self, r: Refused) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let e = FrameRefused(r.message.clone());
        self.state.lock().refused = Some(r);
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

/// The refusal of a message over `max_recv_msg_size_mib` (`max` bytes).
pub(crate) fn too_large(max: usize) -> Refused {
    Refused::new(
        RefusalKind::TooLarge,
        format!("request larger than max_recv_msg_size_mib ({max} bytes)"),
    )
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a refused message ends the body with (its refusal is in the [`ChargeState`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FrameRefused(String);

impl<B> Body for ChargedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    for p in this.framing.prefixes(d) {
                        if let Err(r) = this.check(p) {
                            return this.refuse(r);
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) if this.framing.mid_message() => this.refuse(Refused::new(
                RefusalKind::BadData,
                "the request ends inside a gRPC message (its length prefix announces more bytes than were sent)",
            )),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        // a stream cut inside a message is polled to its end, to be refused there
        self.inner.is_end_stream() && !self.framing.mid_message()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    #[test]
    fn messages_are_charged_at_their_prefix_for_the_length_announced() {
        let mut f = Framing::default();
        // a prefix split across frames, announcing 4 MiB
        assert!(f.feed(&[0, 0, 0x40]).is_empty());
        assert_eq!(f.feed(&[0, 0, 1, 2, 3]), vec![(4 << 20) + 5]);
        assert!(f.feed(&vec![0; (4 << 20) - 3]).is_empty());
        // the next message starts in the same frame as the end of this one
        assert_eq!(f.feed(&[9, 0, 0, 0, 0, 2, 0, 0, 0, 1, 7]), vec![5, 6]);
    }
}

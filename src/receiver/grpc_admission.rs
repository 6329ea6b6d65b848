//! Admission control for OTLP/gRPC: the request body is wrapped so every message is charged
//! to the receiver's budget when its 5-byte length prefix arrives (gRPC over HTTP/2,
//! "Length-Prefixed-Message"), for the length it announces: tonic reserves a buffer of that
//! size at once, so charging the bytes as they trickle in would let half-sent messages
//! commit memory unaccounted. The first message that does not fit ends the body with an
//! error, and the service answers RESOURCE_EXHAUSTED with `RetryInfo` instead of the decode
//! error tonic would report.

use crate::receiver::admission::{Budget, Charge, Transport};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What one request has been charged, and whether a frame was refused.
pub struct Charged {
    pub charge: Charge,
    pub refused: Option<String>,
}

/// Shared between the body wrapper and the service future that outlives it.
pub type ChargeState = Arc<Mutex<Charged>>;

/// A new, empty state for one request.
pub fn state(budget: &Budget) -> ChargeState {
    Arc::new(Mutex::new(Charged {
        charge: budget.none(),
        refused: None,
    }))
}

/// A request body that charges its DATA frames to a budget.
pub struct ChargedBody<B> {
    inner: Pin<Box<B>>,
    budget: Arc<Budget>,
    state: ChargeState,
    framing: Framing,
    /// messages announcing more than this are left to tonic's size limit (a permanent
    /// RESOURCE_EXHAUSTED without RetryInfo), not charged
    max_message: usize,
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
    /// Walks `data`; returns the announced lengths (prefix included) of messages whose
    /// prefix completed in it.
    fn feed(&mut self, mut data: &[u8]) -> Vec<usize> {
        let mut announced = Vec::new();
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
                announced.push(len + 5);
                self.remaining = len;
                self.prefix_len = 0;
            }
        }
        announced
    }
}

impl<B> ChargedBody<B> {
    /// Wraps `inner`; charges go to `budget` and are kept in `state` (released when the
    /// last holder of `state` drops it). `max_message` is the receiver's message size limit.
    pub fn new(inner: B, budget: Arc<Budget>, state: ChargeState, max_message: usize) -> Self {
        ChargedBody {
            inner: Box::pin(inner),
            budget,
            state,
            framing: Framing::default(),
            max_message,
        }
    }
}

/// The error a refused frame ends the body with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FrameRefused(String);

impl<B> Body for ChargedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    for len in this.framing.feed(d) {
                        if len > this.max_message + 5 {
                            continue;
                        }
                        match this.budget.try_charge(len, Transport::Grpc) {
                            Ok(c) => this.state.lock().charge.merge(c),
                            Err(e) => {
                                let m = e.to_string();
                                this.state.lock().refused = Some(m.clone());
                                return Poll::Ready(Some(Err(Box::new(FrameRefused(m)))));
                            }
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

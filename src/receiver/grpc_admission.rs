//! Admission control for OTLP/gRPC: the request body is wrapped so every DATA frame is
//! charged to the receiver's budget as it arrives, before tonic buffers it into a message;
//! the first frame that does not fit ends the body with an error, and the service answers
//! RESOURCE_EXHAUSTED with `RetryInfo` instead of the decode error tonic would report.

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
}

impl<B> ChargedBody<B> {
    pub fn new(inner: B, budget: Arc<Budget>, state: ChargeState) -> Self {
        ChargedBody {
            inner: Box::pin(inner),
            budget,
            state,
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
                    match this.budget.try_charge(d.len(), Transport::Grpc) {
                        Ok(c) => this.state.lock().charge.merge(c),
                        Err(e) => {
                            let m = e.to_string();
                            this.state.lock().refused = Some(m.clone());
                            return Poll::Ready(Some(Err(Box::new(FrameRefused(m)))));
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

//! Deadlines on futures, with the shard loop's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ringlb_uring::rt::Sleep as Timer;

/// The limit elapsed before the operation finished (the operation was dropped, which cancels it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// `fut` with a deadline; see [`within`]. Written by hand rather than as an `async fn` over
    /// a race of two futures: it holds `fut` once, which keeps every session's state small.
    pub struct Within<F> {
        #[pin]
        fut: F,
        limit: Option<Duration>,
        timer: Option<Timer>,
    }
}

/// Runs `fut`, giving up after `limit` (`None` = no limit, as HAProxy's unset timeouts). The
/// timer starts at the first poll (one entry in the shard's timer map per wait).
pub fn within<F: Future>(limit: Option<Duration>, fut: F) -> Within<F> {
    Within {
        fut,
        limit,
        timer: None,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        let timer = this.timer.get_or_insert_with(|| Timer::new(limit));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

//! Deadlines on futures, with glommio's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use glommio::timer::Timer;

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
/// timer starts at the first poll (one entry in glommio's timer tree per wait).
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

/// Keeps the current executor waking up every few milliseconds while alive. glommio wakes a
/// task waiting for the other end of a shared channel to connect only when its own executor
/// runs (`Reactor::process_shared_channels`): an executor with no timer and no I/O pending
/// could sleep through the peer's connection and stall the start (seen under CPU contention).
pub struct KeepAwake(std::rc::Rc<std::cell::Cell<bool>>);

impl KeepAwake {
    /// How often the executor looks while a `KeepAwake` lives.
    const EVERY: Duration = Duration::from_millis(5);

    pub fn start() -> KeepAwake {
        let on = std::rc::Rc::new(std::cell::Cell::new(true));
        let o = on.clone();
        glommio::spawn_local(async move {
            while o.get() {
                glommio::timer::sleep(KeepAwake::EVERY).await;
            }
        })
        .detach();
        KeepAwake(on)
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

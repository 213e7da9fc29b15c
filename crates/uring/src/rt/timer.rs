//! Timers: an ordered map of deadlines on the runtime; the loop's wait ends at the first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::with_current;

/// Completes `dur` after it was made. Dropping it removes its timer.
pub struct Sleep {
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

/// Waits `dur`.
pub fn sleep(dur: Duration) -> Sleep {
    Sleep::new(dur)
}

impl Sleep {
    pub fn new(dur: Duration) -> Sleep {
        let now = Instant::now();
        Sleep {
            deadline: now
                .checked_add(dur)
                .unwrap_or(now + Duration::from_secs(86400 * 365)),
            key: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            if let Some(key) = this.key.take() {
                with_current(|rt| rt.remove_timer(key));
            }
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => {
                with_current(|rt| rt.timer_waker(key, cx.waker()));
            }
            None => {
                this.key = with_current(|rt| rt.add_timer(this.deadline, cx.waker().clone()));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            with_current(|rt| rt.remove_timer(key));
        }
    }
}

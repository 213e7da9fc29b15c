//! Deadlines on futures, with glommio's timers.

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use glommio::timer::Timer;

/// The limit elapsed before the operation finished (the operation was dropped, which cancels it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `fut`, giving up after `limit` (`None` = no limit, as HAProxy's unset timeouts).
/// A timer is armed per call: one BTreeMap insert in glommio's timer wheel.
pub async fn within<T>(
    limit: Option<Duration>,
    fut: impl Future<Output = T>,
) -> Result<T, Elapsed> {
    match limit {
        None => Ok(fut.await),
        Some(d) => {
            future::or(async { Ok(fut.await) }, async {
                Timer::new(d).await;
                Err(Elapsed)
            })
            .await
        }
    }
}

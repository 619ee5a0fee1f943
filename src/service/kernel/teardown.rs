//! Work a stopped network leaves for later: deleting its retired bridge,
//! which waits in the kernel for an RCU barrier (tens of milliseconds)
//! while holding the kernel's RTNL lock that every start needs. So it
//! begins once the kernel driver has started or stopped nothing for
//! [`QUIET`], one at a time, and at the latest [`LONGEST_WAIT`] after the
//! stop. Nothing of it shows under the network's names meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::Notify;

/// How long the kernel driver must have been idle before a teardown
/// begins.
const QUIET: Duration = Duration::from_millis(50);

/// A teardown begins this long after its stop whatever else happens.
const LONGEST_WAIT: Duration = Duration::from_millis(500);

/// One network's teardown, pending or under way.
struct Teardown {
    /// Makes it begin at once.
    urgent: Arc<Notify>,
    done: Shared<BoxFuture<'static, ()>>,
}

impl Teardown {
    fn finished(&self) -> bool {
        self.done.peek().is_some()
    }

    /// Makes it begin now; the future ends when it is done.
    fn hurry(&self) -> Shared<BoxFuture<'static, ()>> {
        self.urgent.notify_one();
        self.done.clone()
    }
}

/// The teardowns in the background, by network name, and what the driver
/// is doing.
#[derive(Default)]
pub(super) struct Teardowns {
    pending: std::sync::Mutex<HashMap<String, Teardown>>,
    activity: Arc<Activity>,
}

impl Teardowns {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Teardown>> {
        // Each change is one insert or retain: a poisoned map is whole.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks a start, stop or update under way until the guard drops.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.activity.begin()
    }

    /// Runs `work` for `network` in the background, once the driver is
    /// quiet.
    pub(super) fn schedule(
        &self,
        network: String,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let urgent = Arc::new(Notify::new());
        let task_urgent = Arc::clone(&urgent);
        let activity = Arc::clone(&self.activity);
        let task = tokio::spawn(async move {
            let _turn = tokio::select! {
                () = task_urgent.notified() => None,
                () = tokio::time::sleep(LONGEST_WAIT) => None,
                turn = activity.quiet_turn() => Some(turn),
            };
            work.await;
        });
        let done = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        let mut pending = self.pending();
        // Finished ones are forgotten here, so the map stays small.
        pending.retain(|_, teardown| !teardown.finished());
        pending.insert(network, Teardown { urgent, done });
    }

    /// Has the teardown of `network` done now.
    pub(super) async fn settle(&self, network: &str) {
        let pending = self.pending().get(network).map(Teardown::hurry);
        if let Some(pending) = pending {
            pending.await;
        }
        self.pending().retain(|_, teardown| !teardown.finished());
    }

    /// Has every teardown done now.
    pub(super) async fn settle_all(&self) {
        let pending: Vec<_> = self.pending().values().map(Teardown::hurry).collect();
        futures_util::future::join_all(pending).await;
        self.pending().clear();
    }
}

/// When the kernel driver last started or stopped a network, and how many
/// of those are under way.
#[derive(Default)]
struct Activity {
    busy: AtomicUsize,
    last: std::sync::Mutex<Option<Instant>>,
    /// Held by the background teardown that runs.
    turn: tokio::sync::Mutex<()>,
}

/// One start, stop or update under way.
pub(super) struct Busy<'a>(&'a Activity);

impl Activity {
    fn begin(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map_or(Duration::MAX, |last| last.elapsed())
    }

    /// The turn to tear a network down, once nothing else happens.
    async fn quiet_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        let turn = self.turn.lock().await;
        loop {
            let idle = self.idle_for();
            if idle >= QUIET {
                return turn;
            }
            tokio::time::sleep(QUIET - idle).await;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn teardowns_wait_for_quiet_but_not_forever() {
        let teardowns = Teardowns::default();
        let done = Arc::new(AtomicUsize::new(0));
        let busy = teardowns.busy();
        for name in ["a", "b"] {
            let done = Arc::clone(&done);
            teardowns.schedule(name.into(), async move {
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        tokio::time::sleep(LONGEST_WAIT / 2).await;
        assert_eq!(done.load(Ordering::SeqCst), 0, "busy: nothing begins");
        teardowns.settle("a").await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "settled: done at once");
        tokio::time::sleep(LONGEST_WAIT).await;
        assert_eq!(
            done.load(Ordering::SeqCst),
            2,
            "begun after the longest wait"
        );
        drop(busy);
    }
}

//! Whether the run was cancelled (Ctrl-C, SIGTERM, SIGHUP), and a way for a
//! task to stop waiting on work it cannot interrupt. A remote-cache download
//! runs on a blocking thread and may take minutes against a server that
//! drips its answer; a cancelled run must not wait for it. The flag alone
//! was enough for the work vp controls (it signals the task's processes);
//! the event wakes the tasks waiting on anything else.

use std::cell::Cell;
use std::future::Future;

/// One per run, on the event-loop thread.
#[derive(Default)]
pub(crate) struct Cancellation {
    cancelled: Cell<bool>,
    event: event_listener::Event,
}

impl Cancellation {
    pub(crate) fn get(&self) -> bool {
        self.cancelled.get()
    }

    /// Cancels the run and wakes every task waiting in [`Self::unless`].
    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
        self.event.notify(usize::MAX);
    }

    /// `work`'s output, or `None` once the run is cancelled (at once if it
    /// already is). `work` is dropped then: blocking work on a thread runs
    /// on to its end, and its result is thrown away.
    pub(crate) async fn unless<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let cancelled = async {
            loop {
                let listener = self.event.listen();
                // Checked after listening: a cancel in between still wakes it.
                if self.cancelled.get() {
                    return None;
                }
                listener.await;
            }
        };
        futures_lite::future::or(cancelled, async { Some(work.await) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn work_that_never_ends_is_abandoned_when_the_run_is_cancelled() {
        let c = Cancellation::default();
        let got = smol::block_on(async {
            futures_lite::future::zip(c.unless(std::future::pending::<()>()), async {
                async_io::Timer::after(Duration::from_millis(20)).await;
                c.cancel();
            })
            .await
        });
        assert_eq!(got.0, None);
        assert!(c.get());
    }

    #[test]
    fn work_that_ends_first_gives_its_output() {
        let c = Cancellation::default();
        assert_eq!(smol::block_on(c.unless(async { 7 })), Some(7));
        c.cancel();
        assert_eq!(smol::block_on(c.unless(async { 7 })), None);
    }
}

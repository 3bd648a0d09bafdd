//! When a run lets the store's lock go. A vp takes RocksDB's lock with its
//! first miss (`cache/store/access.rs`); kept until it exits, a `vp run
//! dev` whose build missed would keep every other vp on the workspace from
//! storing anything for as long as the dev server runs, and a `vp run
//! --watch` for as long as it watches. So the lock is let go when the run
//! has nothing to write:
//!
//! - no cached command is between the start of its lookup and the end of
//!   its record (it writes, and a `vp run` nested in it must find the lock
//!   held by its parent, see docs/caching.md);
//! - and a command that is not cached is running (a dev server), or is
//!   about to start (a `vp run` nested in it then uses the cache as any
//!   other vp), or the run waits for the next edit (`--watch`).
//!
//! The next write takes the lock again (reopening read-write costs a few
//! `fsync`s, which is why a run of cached tasks keeps it between them).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cache::{Release, Store};

/// How long a release after a cached command's end waits for the next
/// cached command to start (a chain of tasks beside a dev server), before
/// it lets the lock go: taking it again costs RocksDB's `fsync`s, and
/// another vp could take it in between and keep the chain waiting.
const SETTLE: Duration = Duration::from_millis(200);

/// How long a release waits for a thread that still reads or writes
/// through the writable instance (an upload reading a blob) to finish.
const IN_USE_WAIT: Duration = Duration::from_secs(5);

/// One per run session, shared by its batches (event-loop thread).
#[derive(Default)]
pub(crate) struct LockUse {
    commands: Arc<Commands>,
    /// The release started when a cached command ended, on its pool
    /// thread: awaited before the batch ends, so no release is still
    /// closing RocksDB when vp exits.
    pending: RefCell<Option<blocking::Task<()>>>,
}

/// What the event loop and a release's pool thread both read: a release
/// asks again, under the store's upgrade lock, before it lets go.
#[derive(Default)]
struct Commands {
    /// Cached commands between the start of their lookup and the end of
    /// their record.
    caching: AtomicUsize,
    /// Commands running that are not cached.
    uncached: AtomicUsize,
    /// Whether the release after a cached command is on its pool thread,
    /// and whether another cached command ended meanwhile: that thread then
    /// asks again before it ends. Decided under one lock, so that no
    /// command's end falls between the thread's last look and its end.
    after_cached: Mutex<AfterCached>,
}

#[derive(Default)]
struct AfterCached {
    running: bool,
    asked_again: bool,
}

/// When a release may let the lock go, asked on the pool thread right
/// before it does.
#[derive(Clone, Copy)]
enum Rule {
    /// No cached command needs it: an uncached command is about to start,
    /// or the run waits for an edit.
    NoCachedCommand,
    /// After a cached command: no other cached command needs it, and an
    /// uncached one still runs (a run of cached commands only keeps it to
    /// its end).
    OnlyUncachedCommands,
}

impl Commands {
    fn allow(&self, rule: Rule) -> bool {
        let caching = self.caching.load(Ordering::SeqCst);
        match rule {
            Rule::NoCachedCommand => caching == 0,
            Rule::OnlyUncachedCommands => caching == 0 && self.uncached.load(Ordering::SeqCst) > 0,
        }
    }

    fn after_cached(&self) -> std::sync::MutexGuard<'_, AfterCached> {
        self.after_cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets the lock go if `rule` allows it, once no thread reads or writes
    /// through the writable instance (waited for up to [`IN_USE_WAIT`]).
    /// Best effort: a store that cannot reopen read-only keeps the lock, as
    /// it did before. Blocking.
    fn release(&self, store: &Store, rule: Rule) {
        let started = std::time::Instant::now();
        while let Ok(Release::InUse) = store.release_lock(&|| self.allow(rule)) {
            if started.elapsed() > IN_USE_WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl LockUse {
    /// A cached command's store work begins; the lock is let go only after
    /// the returned guard is dropped.
    pub(crate) fn caching(self: &Rc<Self>, store: &Arc<Store>) -> Caching {
        self.commands.caching.fetch_add(1, Ordering::SeqCst);
        Caching {
            uses: Rc::clone(self),
            store: Arc::clone(store),
        }
    }

    /// A command that is not cached is about to start: lets the lock go
    /// first when no cached command needs it (so that a `vp run` nested in
    /// the command finds it free), and counts the command until the
    /// returned guard is dropped.
    pub(crate) async fn uncached_command(self: &Rc<Self>, store: Option<&Arc<Store>>) -> Uncached {
        self.commands.uncached.fetch_add(1, Ordering::SeqCst);
        if let Some(store) = store {
            self.release_now(store).await;
        }
        Uncached {
            uses: Rc::clone(self),
        }
    }

    /// The run waits for something other than its own work (the next edit
    /// in watch mode): lets the lock go when no cached command needs it,
    /// and forgets that another vp kept it too long (`Store::forget_busy`):
    /// the next cycle waits for it again.
    pub(crate) async fn idle(&self, store: &Arc<Store>) {
        store.forget_busy();
        self.settle().await;
        self.release_now(store).await;
    }

    /// Waits for a release still on its pool thread (the end of a batch).
    pub(crate) async fn settle(&self) {
        let pending = self.pending.borrow_mut().take();
        if let Some(pending) = pending {
            pending.await;
        }
    }

    /// Lets the lock go on a pool thread (flushing and closing RocksDB take
    /// a while) if this run holds it and no cached command needs it.
    async fn release_now(&self, store: &Arc<Store>) {
        if !self.commands.allow(Rule::NoCachedCommand) || !store.is_writable() {
            return;
        }
        let (store, commands) = (Arc::clone(store), Arc::clone(&self.commands));
        blocking::unblock(move || commands.release(&store, Rule::NoCachedCommand)).await;
    }

    /// After the last cached command of a run that still runs uncached
    /// ones: lets the lock go on a pool thread after [`SETTLE`], unless a
    /// cached command started meanwhile. One such release at a time; a
    /// command that ends while it is under way has it ask again.
    fn release_after_cached(&self, store: &Arc<Store>) {
        if !self.commands.allow(Rule::OnlyUncachedCommands) || !store.is_writable() {
            return;
        }
        {
            let mut after = self.commands.after_cached();
            if after.running {
                after.asked_again = true;
                return;
            }
            after.running = true;
        }
        let (store, commands) = (Arc::clone(store), Arc::clone(&self.commands));
        let task = blocking::unblock(move || {
            loop {
                std::thread::sleep(SETTLE);
                commands.after_cached().asked_again = false;
                commands.release(&store, Rule::OnlyUncachedCommands);
                let mut after = commands.after_cached();
                if !after.asked_again {
                    after.running = false;
                    break;
                }
            }
        });
        // A release before it has ended (its thread cleared `running`).
        let earlier = self.pending.borrow_mut().replace(task);
        if let Some(earlier) = earlier {
            earlier.detach();
        }
    }
}

/// See [`LockUse::caching`].
pub(crate) struct Caching {
    uses: Rc<LockUse>,
    store: Arc<Store>,
}

impl Drop for Caching {
    fn drop(&mut self) {
        self.uses.commands.caching.fetch_sub(1, Ordering::SeqCst);
        // The last cached command is done while uncached ones run on: a
        // dev server whose build missed.
        self.uses.release_after_cached(&self.store);
    }
}

/// See [`LockUse::uncached_command`].
pub(crate) struct Uncached {
    uses: Rc<LockUse>,
}

impl Drop for Uncached {
    fn drop(&mut self) {
        self.uses.commands.uncached.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cache::{LockWait, open_for_test};

    #[track_caller]
    fn let_go_soon(store: &Store) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.is_writable() {
            assert!(Instant::now() < deadline, "the lock was never let go");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_lock_is_let_go_only_when_no_cached_command_needs_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open_for_test(
            &tmp.path().join("cache"),
            Duration::from_secs(5),
        ));
        store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("writable");
        let uses = Rc::new(LockUse::default());

        // A dev server starts while a cached build still runs: kept.
        let build = uses.caching(&store);
        let server = smol::block_on(uses.uncached_command(Some(&store)));
        assert!(store.is_writable(), "the build needs it");

        // A chain of cached tasks beside the server: the next one starts
        // before the settling time is over, so the lock is kept.
        drop(build);
        let next = uses.caching(&store);
        std::thread::sleep(SETTLE * 2);
        assert!(store.is_writable(), "let go between two cached tasks");
        smol::block_on(uses.settle());
        assert!(store.is_writable());

        // The chain is stored: only the server is left.
        drop(next);
        let_go_soon(&store);
        smol::block_on(uses.settle());

        // The next cached command takes it again, and an uncached command
        // started beside it does not take it away.
        let again = uses.caching(&store);
        store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("writable again");
        let second = smol::block_on(uses.uncached_command(Some(&store)));
        assert!(store.is_writable());
        drop((second, server));
        // Nothing uncached runs when it is done: kept for the next one.
        drop(again);
        std::thread::sleep(SETTLE * 2);
        assert!(store.is_writable());
        // Until the run waits for an edit.
        smol::block_on(uses.idle(&store));
        assert!(!store.is_writable());
    }
}

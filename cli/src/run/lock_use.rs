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
/// through the writable instance (an upload reading a blob) before the
/// command or watch cycle that asked for it goes on; the release then goes
/// on in the background.
const IN_USE_PATIENCE: Duration = Duration::from_millis(500);

/// One per run session, shared by its batches (event-loop thread).
#[derive(Default)]
pub(crate) struct LockUse {
    commands: Arc<Commands>,
    /// The background release's pool thread: awaited before the batch
    /// ends, so no release is still closing RocksDB when vp exits.
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
    /// The release in the background (after a cached command, or one a
    /// thread reading through the writable instance held up).
    background: Mutex<Background>,
    /// Called by the background release after each attempt (tests).
    #[cfg(test)]
    after_attempt: Mutex<Option<Box<dyn Fn() + Send>>>,
}

/// Whether the background release runs, and what was asked of it since it
/// last looked: a command that ends while it runs has it try again instead
/// of starting a second one. Decided under one lock, so that no request
/// falls between the thread's last look and its end.
#[derive(Default)]
struct Background {
    running: bool,
    asked: Option<Asked>,
    /// The batch is ending (`LockUse::settle`): a release held up by a
    /// thread reading through the writable instance gives up, instead of
    /// keeping vp from exiting, or a watch from its next cycle.
    closing: bool,
}

/// A request to the background release: when it may let the lock go, and
/// how long it waits first.
#[derive(Clone, Copy)]
struct Asked {
    rule: Rule,
    pause: Duration,
}

impl Asked {
    /// One request for two: the rule that allows a release when either
    /// does, and the longer pause.
    fn and(self, other: Option<Asked>) -> Asked {
        let Some(other) = other else { return self };
        Asked {
            rule: self.rule.either(other.rule),
            pause: self.pause.max(other.pause),
        }
    }
}

/// When a release may let the lock go, asked on the pool thread right
/// before it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// No cached command needs it: an uncached command is about to start,
    /// or the run waits for an edit.
    NoCachedCommand,
    /// After a cached command: no other cached command needs it, and an
    /// uncached one still runs (a run of cached commands only keeps it to
    /// its end).
    OnlyUncachedCommands,
}

impl Rule {
    /// The rule that allows a release when either does.
    fn either(self, other: Rule) -> Rule {
        match other {
            Rule::NoCachedCommand => Rule::NoCachedCommand,
            Rule::OnlyUncachedCommands => self,
        }
    }
}

impl Commands {
    fn allow(&self, rule: Rule) -> bool {
        let caching = self.caching.load(Ordering::SeqCst);
        match rule {
            Rule::NoCachedCommand => caching == 0,
            Rule::OnlyUncachedCommands => caching == 0 && self.uncached.load(Ordering::SeqCst) > 0,
        }
    }

    fn background(&self) -> std::sync::MutexGuard<'_, Background> {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets the lock go if `rule` allows it, once no thread reads or writes
    /// through the writable instance, waiting for that until `give_up`
    /// (asked with the time waited so far) says so. Whether a thread still
    /// held it up. Best effort: a store that cannot reopen read-only keeps
    /// the lock, as it did before. Blocking.
    fn release(&self, store: &Store, rule: Rule, give_up: &dyn Fn(Duration) -> bool) -> bool {
        let started = std::time::Instant::now();
        while let Ok(Release::InUse) = store.release_lock(&|| self.allow(rule)) {
            if give_up(started.elapsed()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Clears `running` when the background release's thread panics, so that
/// the next request starts a new one.
struct ResetOnPanic(Arc<Commands>);

impl Drop for ResetOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.background().running = false;
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

    /// Waits for the background release (the end of a batch), which gives
    /// up meanwhile if a thread holds the writable instance up.
    pub(crate) async fn settle(&self) {
        let pending = self.pending.borrow_mut().take();
        if let Some(pending) = pending {
            self.commands.background().closing = true;
            pending.await;
            self.commands.background().closing = false;
        }
    }

    /// Lets the lock go on a pool thread (flushing and closing RocksDB take
    /// a while) if this run holds it and no cached command needs it. A
    /// thread that reads through the writable instance for longer than
    /// [`IN_USE_PATIENCE`] leaves the release to the background.
    async fn release_now(&self, store: &Arc<Store>) {
        let rule = Rule::NoCachedCommand;
        if !self.commands.allow(rule) || !store.is_writable() {
            return;
        }
        let (held_up, commands) = (Arc::clone(store), Arc::clone(&self.commands));
        let in_use = blocking::unblock(move || {
            commands.release(&held_up, rule, &|waited| waited > IN_USE_PATIENCE)
        })
        .await;
        if in_use {
            self.release_in_background(store, rule, Duration::ZERO);
        }
    }

    /// Lets the lock go on a pool thread after `pause`, if `rule` allows
    /// it then, waiting for as long as a thread reads through the writable
    /// instance and the rule allows (until the batch ends). One such
    /// release at a time: asked while it runs, it tries again.
    fn release_in_background(&self, store: &Arc<Store>, rule: Rule, pause: Duration) {
        if !self.commands.allow(rule) || !store.is_writable() {
            return;
        }
        {
            let mut background = self.commands.background();
            background.asked = Some(Asked { rule, pause }.and(background.asked));
            if background.running {
                return;
            }
            background.running = true;
        }
        let (store, commands) = (Arc::clone(store), Arc::clone(&self.commands));
        let task = blocking::unblock(move || {
            let _reset = ResetOnPanic(Arc::clone(&commands));
            loop {
                // Ends only under the lock that requests take.
                let asked = {
                    let mut background = commands.background();
                    match background.asked.take() {
                        Some(asked) => asked,
                        None => {
                            background.running = false;
                            break;
                        }
                    }
                };
                std::thread::sleep(asked.pause);
                commands.release(&store, asked.rule, &|_| commands.background().closing);
                #[cfg(test)]
                if let Some(hook) = &*commands
                    .after_attempt
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                {
                    hook();
                }
            }
        });
        // An earlier one has cleared `running`: it is done with RocksDB.
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
        self.uses
            .release_in_background(&self.store, Rule::OnlyUncachedCommands, SETTLE);
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
        let store = writable_store(&tmp);
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

    fn writable_store(tmp: &tempfile::TempDir) -> Arc<Store> {
        let store = Arc::new(open_for_test(
            &tmp.path().join("cache"),
            Duration::from_secs(5),
        ));
        store
            .prepare_to_write(LockWait::UpToTimeout)
            .expect("writable");
        store
    }

    /// A writable store, a cached build under way and a dev server started
    /// beside it (the lock is kept for the build).
    fn build_beside_a_server() -> (
        tempfile::TempDir,
        Arc<Store>,
        Rc<LockUse>,
        Caching,
        Uncached,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = writable_store(&tmp);
        let uses = Rc::new(LockUse::default());
        let build = uses.caching(&store);
        let server = smol::block_on(uses.uncached_command(Some(&store)));
        (tmp, store, uses, build, server)
    }

    /// Review: a cached command that ended after the background release had
    /// looked, before its thread was done, started no release of its own,
    /// and the lock stayed held for as long as the dev server ran.
    #[test]
    fn a_command_that_ends_while_the_release_runs_has_it_try_again() {
        let (_tmp, store, uses, build, server) = build_beside_a_server();
        let (entered, wait_entered) = std::sync::mpsc::channel::<()>();
        let (go_on, wait_go_on) = std::sync::mpsc::channel::<()>();
        let wait_go_on = Mutex::new(wait_go_on);
        let first = std::sync::atomic::AtomicBool::new(true);
        *uses.commands.after_attempt.lock().expect("hook") = Some(Box::new(move || {
            if first.swap(false, Ordering::SeqCst) {
                let _ = entered.send(());
                let _ = wait_go_on.lock().expect("channel").recv();
            }
        }));

        drop(build);
        // The next cached command starts before the release looks: it is
        // refused, and the thread is held right after its attempt.
        let next = uses.caching(&store);
        wait_entered.recv().expect("the release tried");
        assert!(store.is_writable());
        // The command ends now, while the release is still under way.
        drop(next);
        go_on.send(()).expect("hook waits");
        let_go_soon(&store);
        smol::block_on(uses.settle());
        drop(server);
    }

    /// Review: the release after a cached command let go of the lock even
    /// when the uncached command beside it had ended meanwhile: a run of
    /// cached commands only keeps it to its end.
    #[test]
    fn the_lock_is_kept_when_the_uncached_command_ends_during_the_settling_time() {
        let (_tmp, store, uses, build, server) = build_beside_a_server();
        drop(build);
        drop(server);
        std::thread::sleep(SETTLE * 2);
        smol::block_on(uses.settle());
        assert!(store.is_writable());
    }

    /// Review: a release held up by a thread reading through the writable
    /// instance kept the end of the batch (vp's exit, a watch's next cycle)
    /// waiting for as long as that thread read.
    #[test]
    fn the_end_of_a_batch_does_not_wait_for_a_release_held_up_by_a_reader() {
        let (_tmp, store, uses, build, server) = build_beside_a_server();
        let upload = store.hold_writer();
        drop(build);
        std::thread::sleep(SETTLE * 2);
        let began = Instant::now();
        smol::block_on(uses.settle());
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        assert!(store.is_writable(), "the reader still holds it");
        // Once the reader is done, the next release lets it go.
        drop(upload);
        smol::block_on(uses.idle(&store));
        assert!(!store.is_writable());
        drop(server);
    }
}

//! Which RocksDB instance a store reads and writes through. Opening
//! RocksDB read-write takes its lock and writes a new `MANIFEST`, `OPTIONS`
//! file and write-ahead log with five `fsync`s, on every open (measured on
//! an `echo hi` hit: most of its wall time on a busy disk). A run whose
//! tasks all hit writes nothing that cannot wait (see `journal.rs`), so the
//! store starts read-only when it can and opens read-write on the first
//! write: before a miss executes (the runner asks, so a nested `vp run` in
//! that task still finds the lock held by its parent) or when a hit must
//! rewrite its entry.
//!
//! A run's store also lets the lock go when the runner says it has nothing
//! to write for a while ([`Access::release`]): while it runs only commands
//! that are not cached (a dev server), or waits for the next edit in watch
//! mode. Every other vp on the workspace would otherwise wait for the lock
//! and run its misses without the cache for as long as this one runs.
//! Instances are shared (`Arc`) so that a release never closes one a
//! thread is still reading or writing through: it is closed when the last
//! of them lets it go.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rocksdb::DB;

use super::layout::CacheDir;
use super::open::{
    OpenOptions, StoreNotice, WhenUnusable, Writable, cf_descriptors, open_writable, read_options,
};
use crate::cache::error::CacheError;

pub(super) enum Access {
    /// Opened read-write for as long as it is open: this process holds
    /// RocksDB's lock (`vp cache stats`, `prune`, `clean`).
    Writable(Arc<DB>),
    /// A run's store: read-only until the first write, read-write from
    /// then on, and read-only again once the runner lets the lock go.
    ReadMostly(Box<ReadMostly>),
    /// Opened read-only for good (a dry run): every write is refused.
    ReadOnly(Arc<DB>),
}

pub(super) struct ReadMostly {
    view: RwLock<View>,
    upgrade: Upgrade,
    /// Whether this store was ever open for writing: it may have grown,
    /// even if it let the lock go since (see `Store::prune_if_needed`).
    wrote: std::sync::atomic::AtomicBool,
}

/// The instance a run's store reads and writes through now.
enum View {
    /// Read-only: another vp may hold the lock; writes open read-write.
    Reading(Arc<DB>),
    /// Read-write: this process holds the lock; reads go here too, so a
    /// run reads what it wrote.
    Writing(Arc<DB>),
}

/// How a read-mostly store opens read-write, and what happened when it did.
pub(super) struct Upgrade {
    options: OpenOptions,
    /// Held while opening or releasing (one at a time); remembers a failed
    /// attempt, so later writes fail at once instead of waiting again.
    attempt: Mutex<Option<Failed>>,
    /// What the user should hear about, taken by the runner.
    notices: Mutex<Vec<StoreNotice>>,
    /// Woken when a notice is queued: a wait for another vp's lock is
    /// announced as it begins, while the write that waits is still blocked
    /// on a pool thread (see `Access::listen_for_notices`).
    queued: event_listener::Event,
}

/// Whether opening read-write may wait for another vp's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockWait {
    /// Up to the store's lock timeout, saying so: a write that cannot be
    /// done later (storing a run).
    UpToTimeout,
    /// Not at all: a write that can be left for a later run (refreshed
    /// stamps, forgetting a broken blob), or an attempt made where waiting
    /// would block others (the event loop's thread), which the caller then
    /// makes again where it may wait. Finding the lock held this way is
    /// not remembered: a later write still waits for it.
    No,
}

/// What [`Access::release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// The lock is let go.
    Released,
    /// This store did not hold it (read-only, or never releasable).
    NotHeld,
    /// The caller needs it after all.
    Needed,
    /// A thread still reads or writes through the writable instance: ask
    /// again in a moment.
    InUse,
}

/// Why the store could not be opened read-write.
#[derive(Clone, Copy, Debug)]
enum Failed {
    /// Another vp kept the lock past the timeout.
    Busy { holder: Option<u32> },
    /// The store was deleted under this vp (by `vp cache clean`).
    Removed,
    /// The open failed otherwise (the error was returned the first time).
    Broken,
}

impl Access {
    /// A run's store opened read-only.
    pub(super) fn read_mostly(read_only: DB, options: OpenOptions) -> Self {
        Self::run_store(View::Reading(Arc::new(read_only)), options)
    }

    /// A run's store that had to open read-write (the first run, hits to
    /// fold in, a store to repair): it can still let the lock go later.
    pub(super) fn writing(db: DB, options: OpenOptions) -> Self {
        Self::run_store(View::Writing(Arc::new(db)), options)
    }

    fn run_store(view: View, options: OpenOptions) -> Self {
        let wrote = matches!(view, View::Writing(_));
        Self::ReadMostly(Box::new(ReadMostly {
            wrote: std::sync::atomic::AtomicBool::new(wrote),
            view: RwLock::new(view),
            upgrade: Upgrade {
                options,
                attempt: Mutex::new(None),
                notices: Mutex::new(Vec::new()),
                queued: event_listener::Event::new(),
            },
        }))
    }

    /// The instance reads go to: the writable one while it is open, so a
    /// run reads what it wrote.
    pub(super) fn reader(&self) -> Arc<DB> {
        match self {
            Self::Writable(db) | Self::ReadOnly(db) => Arc::clone(db),
            Self::ReadMostly(m) => match &*m.view() {
                View::Reading(db) | View::Writing(db) => Arc::clone(db),
            },
        }
    }

    /// Whether writes go straight to RocksDB (no upgrade needed).
    pub(super) fn is_writable(&self) -> bool {
        match self {
            Self::Writable(_) => true,
            Self::ReadMostly(m) => matches!(*m.view(), View::Writing(_)),
            Self::ReadOnly(_) => false,
        }
    }

    /// The writable instance if it is open now; never opens it.
    pub(super) fn writer_if_open(&self) -> Option<Arc<DB>> {
        match self {
            Self::Writable(db) => Some(Arc::clone(db)),
            Self::ReadMostly(m) => m.writable(),
            Self::ReadOnly(_) => None,
        }
    }

    /// Whether this store was open for writing at some point: always for
    /// one that holds the lock for good, never for a read-only one.
    pub(super) fn was_writable(&self) -> bool {
        match self {
            Self::Writable(_) => true,
            Self::ReadMostly(m) => m.wrote.load(std::sync::atomic::Ordering::SeqCst),
            Self::ReadOnly(_) => false,
        }
    }

    /// Lets RocksDB's lock go, for another vp to write while this run has
    /// nothing to write. The read-write instance flushes what it holds into
    /// table files first (a read-only open then replays no log: with large
    /// outputs just stored, that replay took half a second), reads go to a
    /// read-only instance opened on the same files, and the read-write one
    /// closes. A later write opens read-write again. `still_idle` is asked
    /// once no upgrade can start and no thread can take the writable
    /// instance: the caller may need the lock after all. Blocking.
    pub(super) fn release(
        &self,
        db_dir: &Path,
        still_idle: &dyn Fn() -> bool,
    ) -> Result<Release, CacheError> {
        let Self::ReadMostly(m) = self else {
            return Ok(Release::NotHeld);
        };
        // No upgrade meanwhile: it would open read-write beside this.
        let _attempt = m
            .upgrade
            .attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let open_err = |source| CacheError::Open {
            dir: db_dir.to_path_buf(),
            source,
        };
        // The flush first, outside the view's lock: the event loop asks
        // whether the store is writable, and would wait for it. A write
        // made after it is still in the log, which the read-only open
        // replays.
        {
            let Some(writable) = m.writable() else {
                return Ok(Release::NotHeld);
            };
            if !still_idle() {
                return Ok(Release::Needed);
            }
            // Another clone than this one: a thread reads or writes through
            // it, and a release retried while it does need not flush.
            if Arc::strong_count(&writable) > 2 {
                return Ok(Release::InUse);
            }
            let families: Vec<_> = super::db::COLUMN_FAMILIES
                .iter()
                .filter_map(|name| writable.cf_handle(name))
                .collect();
            writable
                .flush_cfs_opt(&families, &rocksdb::FlushOptions::default())
                .map_err(open_err)?;
        }
        // Held until the swap: a thread that asks whether the store is
        // writable meanwhile waits for the answer that holds after it.
        let mut view = m.view.write().unwrap_or_else(PoisonError::into_inner);
        let View::Writing(writable) = &*view else {
            return Ok(Release::NotHeld);
        };
        if !still_idle() {
            return Ok(Release::Needed);
        }
        // A clone is a thread reading or writing through it (clones are
        // taken under the view's lock, which this holds).
        if Arc::strong_count(writable) > 1 {
            return Ok(Release::InUse);
        }
        let read_only =
            DB::open_cf_descriptors_read_only(&read_options(), db_dir, cf_descriptors(), false)
                .map_err(open_err)?;
        let closing = std::mem::replace(&mut *view, View::Reading(Arc::new(read_only)));
        drop(view);
        // Closes it, and the lock goes with it.
        drop(closing);
        Ok(Release::Released)
    }

    /// The writable instance, opening it on first use (and waiting for
    /// another vp's lock as `wait` says); `on_open` runs on a newly opened
    /// instance before any other thread can write through it. Blocking.
    pub(super) fn writer(
        &self,
        home: &CacheDir,
        dir: &Path,
        on_open: &dyn Fn(&DB),
        wait: LockWait,
    ) -> Result<Arc<DB>, CacheError> {
        let m = match self {
            Self::Writable(db) => return Ok(Arc::clone(db)),
            Self::ReadOnly(_) => {
                return Err(CacheError::ReadOnly {
                    dir: dir.to_path_buf(),
                });
            }
            Self::ReadMostly(m) => m,
        };
        let upgrade = &m.upgrade;
        if let Some(db) = m.writable() {
            return Ok(db);
        }
        let mut attempt = match wait {
            LockWait::UpToTimeout => upgrade
                .attempt
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            // Another thread of this vp is opening it, maybe waiting out
            // another vp's lock: not waiting means not waiting for that
            // thread either.
            LockWait::No => match upgrade.attempt.try_lock() {
                Ok(attempt) => attempt,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(CacheError::Busy {
                        dir: dir.to_path_buf(),
                        holder: None,
                    });
                }
            },
        };
        // Another thread may have opened it while this one waited.
        if let Some(db) = m.writable() {
            return Ok(db);
        }
        match *attempt {
            Some(Failed::Busy { holder }) => {
                return Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Some(Failed::Removed) => {
                return Err(CacheError::Removed {
                    dir: dir.to_path_buf(),
                });
            }
            Some(Failed::Broken) => {
                return Err(CacheError::ReadOnly {
                    dir: dir.to_path_buf(),
                });
            }
            None => {}
        }
        let mut notify = |n: StoreNotice| {
            upgrade
                .notices
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(n);
            upgrade.queued.notify(usize::MAX);
        };
        // The store this one read may have been deleted meanwhile (`vp
        // cache clean` needs no lock from a reader): never create a new one
        // in its place, which would be a database without vp's marker.
        let still_there = matches!(CacheDir::find(dir), Ok(Some(ref h)) if h == home)
            && home.db().join("CURRENT").is_file();
        if !still_there {
            *attempt = Some(Failed::Removed);
            return Err(CacheError::Removed {
                dir: dir.to_path_buf(),
            });
        }
        let no_wait = OpenOptions {
            lock_timeout: std::time::Duration::ZERO,
            ..upgrade.options.clone()
        };
        let options = match wait {
            LockWait::UpToTimeout => &upgrade.options,
            LockWait::No => &no_wait,
        };
        match open_writable(home, dir, options, WhenUnusable::SetAside, &mut notify) {
            Ok(Writable::Ready(db)) => {
                on_open(&db);
                let db = Arc::new(db);
                // The read-only instance closes once no thread reads
                // through it any more.
                *m.view.write().unwrap_or_else(PoisonError::into_inner) =
                    View::Writing(Arc::clone(&db));
                m.wrote.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(db)
            }
            Ok(Writable::Busy { holder }) => {
                if wait == LockWait::UpToTimeout {
                    *attempt = Some(Failed::Busy { holder });
                }
                Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                })
            }
            // The lock was free when this store opened, so the parent took
            // it since; its task caches this run's work.
            Ok(Writable::HeldByAncestor { holder, .. }) => {
                *attempt = Some(Failed::Busy {
                    holder: Some(holder),
                });
                Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder: Some(holder),
                })
            }
            Err(e) => {
                *attempt = Some(Failed::Broken);
                Err(e)
            }
        }
    }

    /// Forgets that another vp kept the lock past the timeout, so that the
    /// next write waits for it again: between watch cycles, where the
    /// holder (a dev server, another watch) may be long gone by the next
    /// edit. Within a batch the failure stays, so a run waits once, not
    /// once per task.
    pub(super) fn forget_busy(&self) {
        if let Self::ReadMostly(m) = self {
            // Called on the event loop: an attempt under way (a persistent
            // task's write waiting for another vp's lock) is not waited for;
            // it leaves its own outcome.
            let mut attempt = match m.upgrade.attempt.try_lock() {
                Ok(attempt) => attempt,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            if matches!(*attempt, Some(Failed::Busy { .. })) {
                *attempt = None;
            }
        }
    }

    /// A listener woken by the next notice of opening read-write, `None`
    /// for a store that never opens read-write later (it has no notices
    /// to give). Listen before taking the notices, so that one queued in
    /// between still wakes it.
    pub(super) fn listen_for_notices(&self) -> Option<event_listener::EventListener> {
        match self {
            Self::ReadMostly(m) => Some(m.upgrade.queued.listen()),
            Self::Writable(_) | Self::ReadOnly(_) => None,
        }
    }

    /// Notices of opening read-write since the last call.
    pub(super) fn take_notices(&self) -> Vec<StoreNotice> {
        match self {
            Self::ReadMostly(m) => std::mem::take(
                &mut *m
                    .upgrade
                    .notices
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
            Self::Writable(_) | Self::ReadOnly(_) => Vec::new(),
        }
    }
}

impl ReadMostly {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The read-write instance, while it is open.
    fn writable(&self) -> Option<Arc<DB>> {
        match &*self.view() {
            View::Writing(db) => Some(Arc::clone(db)),
            View::Reading(_) => None,
        }
    }
}

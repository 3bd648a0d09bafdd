//! Which RocksDB instance a store reads and writes through. Opening
//! RocksDB read-write takes its lock and writes a new `MANIFEST`, `OPTIONS`
//! file and write-ahead log with five `fsync`s, on every open (measured on
//! an `echo hi` hit: most of its wall time on a busy disk). A run whose
//! tasks all hit writes nothing that cannot wait (see `journal.rs`), so the
//! store starts read-only when it can and opens read-write on the first
//! write: before a miss executes (the runner asks, so a nested `vp run` in
//! that task still finds the lock held by its parent) or when a hit must
//! rewrite its entry.

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use rocksdb::DB;

use super::layout::CacheDir;
use super::open::{OpenOptions, StoreNotice, WhenUnusable, Writable, open_writable};
use crate::cache::error::CacheError;

pub(super) enum Access {
    /// Opened read-write: this process holds RocksDB's lock.
    Writable(DB),
    /// Opened read-only; opens read-write on the first write.
    ReadMostly(Box<ReadMostly>),
    /// Opened read-only for good (a dry run): every write is refused.
    ReadOnly(DB),
}

pub(super) struct ReadMostly {
    read_only: DB,
    writable: OnceLock<DB>,
    upgrade: Upgrade,
}

/// How a read-mostly store opens read-write, and what happened when it did.
pub(super) struct Upgrade {
    options: OpenOptions,
    /// Held while opening (one attempt at a time); remembers a failed
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
    pub(super) fn read_mostly(read_only: DB, options: OpenOptions) -> Self {
        Self::ReadMostly(Box::new(ReadMostly {
            read_only,
            writable: OnceLock::new(),
            upgrade: Upgrade {
                options,
                attempt: Mutex::new(None),
                notices: Mutex::new(Vec::new()),
                queued: event_listener::Event::new(),
            },
        }))
    }

    /// The instance reads go to: the writable one once it is open, so a run
    /// reads what it wrote.
    pub(super) fn reader(&self) -> &DB {
        match self {
            Self::Writable(db) | Self::ReadOnly(db) => db,
            Self::ReadMostly(m) => m.writable.get().unwrap_or(&m.read_only),
        }
    }

    /// Whether writes go straight to RocksDB (no upgrade needed).
    pub(super) fn is_writable(&self) -> bool {
        match self {
            Self::Writable(_) => true,
            Self::ReadMostly(m) => m.writable.get().is_some(),
            Self::ReadOnly(_) => false,
        }
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
    ) -> Result<&DB, CacheError> {
        let (writable, upgrade) = match self {
            Self::Writable(db) => return Ok(db),
            Self::ReadOnly(_) => {
                return Err(CacheError::ReadOnly {
                    dir: dir.to_path_buf(),
                });
            }
            Self::ReadMostly(m) => (&m.writable, &m.upgrade),
        };
        if let Some(db) = writable.get() {
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
        if let Some(db) = writable.get() {
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
        };
        let options = match wait {
            LockWait::UpToTimeout => &upgrade.options,
            LockWait::No => &no_wait,
        };
        match open_writable(home, dir, options, WhenUnusable::SetAside, &mut notify) {
            Ok(Writable::Ready(db)) => {
                on_open(&db);
                // Cannot fail: `attempt` is held and `writable` was empty.
                let _ = writable.set(db);
                writable.get().ok_or_else(|| CacheError::ReadOnly {
                    dir: dir.to_path_buf(),
                })
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
            Ok(Writable::HeldByAncestor { holder }) => {
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

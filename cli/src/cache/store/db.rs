//! The `Store` handle and its low-level layout: four column families and the
//! keys and records inside them. Everything above this file goes through
//! these helpers, so the on-disk layout is written down in one place.
//!
//! - `tasks`:   task id → `TaskRecord` (last used entry + its spawn
//!   fingerprint, for explaining the next miss)
//! - `entries`: `EntryKey` (spawn key ++ variant) → `CacheEntry`
//! - `blobs`:   content hash → zstd-compressed bytes
//! - `meta`:    `schema` → version; `e`+entry key → `EntryMeta`;
//!   `b`+blob hash → compressed length (a blob and its `b` record are always
//!   written and deleted in the same batch); `o`+directory → the task that
//!   owns it as its output directory; `t`+task id → its own state files
//!   (`state.rs`); `p`+absolute program path → its stamp and content hash
//!   (`memo.rs`, for the remote cache's portable key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rocksdb::{ColumnFamily, DB, IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};

use super::access::{Access, LockWait};
use super::open::StoreNotice;
use crate::cache::codec;
use crate::cache::digest::Digest;
use crate::cache::entry::{CacheEntry, EntryKey};
use crate::cache::error::CacheError;
use crate::cache::fingerprint::SpawnFingerprint;

pub(crate) const CF_TASKS: &str = "tasks";
pub(crate) const CF_ENTRIES: &str = "entries";
pub(crate) const CF_BLOBS: &str = "blobs";
pub(crate) const CF_META: &str = "meta";
pub(crate) const COLUMN_FAMILIES: [&str; 4] = [CF_TASKS, CF_ENTRIES, CF_BLOBS, CF_META];

pub(crate) const META_SCHEMA: &[u8] = b"schema";
const META_ENTRY: u8 = b'e';
const META_BLOB: u8 = b'b';
/// `o` + workspace-relative directory → id of the task whose stored run
/// created or emptied it (its output directory).
const META_OUTPUT_DIR: u8 = b'o';

/// How many entries one spawn key keeps (switching between a few branches
/// keeps hitting; beyond that the least recently used variant goes).
pub(crate) const MAX_VARIANTS: usize = 8;

/// The last entry a task used (stored or hit), for miss explanations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) entry: EntryKey,
    pub(crate) spawn: SpawnFingerprint,
}

/// Bookkeeping for LRU eviction and `vp cache stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    pub(crate) created_ms: i64,
    pub(crate) last_used_ms: i64,
    pub(crate) hits: u64,
    /// Encoded size of the entry itself (its blobs are counted separately).
    pub(crate) size: u64,
}

/// An open cache. `Send + Sync`: the runner calls it from blocking threads,
/// several tasks at a time.
pub(crate) struct Store {
    /// The RocksDB instance(s): read-only until the first write when the
    /// store could start that way (`access.rs`).
    pub(super) access: Access,
    /// The latest pointer of each task from the hit journal, for a store
    /// that has not folded it in (`journal.rs`); answers `task_record`
    /// before the database.
    pub(super) journaled: Mutex<super::journal::Journaled>,
    /// The cache directory as the user named it (messages).
    pub(super) dir: PathBuf,
    /// The proven cache directory the store lives in.
    pub(super) home: super::layout::CacheDir,
    /// Shared while recording or marking a hit (a blob seen as present must
    /// stay present until the batch referencing it is written); exclusive
    /// while pruning deletes blobs.
    pub(super) gc: RwLock<()>,
}

/// Options for reading entries and blobs: a hit reads its entry once, a
/// restore each blob once, so they do not fill RocksDB's block cache.
/// Filling it kept a second copy of the entry alive until the process
/// ended, 4.2 MB for an entry of 50,000 inputs (docs/benchmarks.md). The
/// value is then pinned in the block RocksDB read for it, so `get_once`
/// decodes it there without a copy either. The small `meta` and `tasks`
/// records are read with the default options: they share blocks, and the
/// cache serves the next record of the same block.
pub(super) fn read_once() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.fill_cache(false);
    options
}

pub(super) fn entry_meta_key(key: EntryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + EntryKey::LEN);
    k.push(META_ENTRY);
    k.extend_from_slice(&key.to_bytes());
    k
}

pub(super) fn output_dir_key(dir: &crate::cache::paths::RelPath) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + dir.as_bytes().len());
    k.push(META_OUTPUT_DIR);
    k.extend_from_slice(dir.as_bytes());
    k
}

/// Whether forgetting a broken blob may take the store's lock.
#[derive(Clone, Copy)]
enum Forget {
    /// A restore: the task runs next, and its record needs the lock anyway.
    TakingTheLock,
    /// An upload: only through a writable instance already open.
    IfWritable,
}

pub(super) fn blob_meta_key(blob: &Digest) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + Digest::LEN);
    k.push(META_BLOB);
    k.extend_from_slice(blob.as_bytes());
    k
}

impl Store {
    pub(super) fn new(access: Access, dir: &Path, home: super::layout::CacheDir) -> Self {
        Self {
            access,
            journaled: Mutex::new(BTreeMap::new()),
            dir: dir.to_path_buf(),
            home,
            gc: RwLock::new(()),
        }
    }

    #[allow(dead_code, reason = "for the runner's messages")]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instance reads go to. Held, it stays open (see
    /// `Access::release`): hold it no longer than a read.
    pub(super) fn reader(&self) -> Arc<DB> {
        self.access.reader()
    }

    /// The writable instance, held as a thread reading through it holds it
    /// (an upload): a release waits for it.
    #[cfg(test)]
    pub(crate) fn hold_writer(&self) -> Arc<DB> {
        self.writer().expect("writable")
    }

    /// The writable instance, opened on first use; opening it folds the hit
    /// journal in before anything else writes. Blocking (may wait for
    /// another vp's lock). Held, it keeps the lock (see `Access::release`).
    pub(super) fn writer(&self) -> Result<Arc<DB>, CacheError> {
        self.writer_waiting(LockWait::UpToTimeout)
    }

    /// [`Store::writer`], for a write that does not wait for another vp's
    /// lock ([`LockWait::No`]): `CacheError::Busy` at once while it is held.
    pub(super) fn writer_now(&self) -> Result<Arc<DB>, CacheError> {
        self.writer_waiting(LockWait::No)
    }

    /// Lets RocksDB's lock go while this run has nothing to write, so that
    /// another vp can store its runs meanwhile (`Access::release`); the
    /// next write takes it again. `still_idle` is asked once no write of
    /// this store can start opening. Blocking.
    pub(crate) fn release_lock(
        &self,
        still_idle: &dyn Fn() -> bool,
    ) -> Result<super::access::Release, CacheError> {
        self.access.release(&self.home.db(), still_idle)
    }

    /// See `Access::forget_busy`.
    pub(crate) fn forget_busy(&self) {
        self.access.forget_busy();
    }

    fn writer_waiting(&self, wait: LockWait) -> Result<Arc<DB>, CacheError> {
        self.access
            .writer(&self.home, &self.dir, &|db| self.fold_journal(db), wait)
    }

    /// Opens the store for writing now, if it is not yet: before a command
    /// whose run will be recorded executes. `Ok(true)` when this call
    /// opened it (the caller may look again: a vp that held the lock may
    /// have stored what this one was about to run). Blocking; waits for
    /// another vp's lock as `wait` says (with [`LockWait::No`], a held lock
    /// is `CacheError::Busy` at once, and the caller may ask again waiting).
    pub(crate) fn prepare_to_write(&self, wait: LockWait) -> Result<bool, CacheError> {
        if self.access.is_writable() {
            return Ok(false);
        }
        self.writer_waiting(wait).map(|_| true)
    }

    /// What the user should hear about opening for writing (waiting for a
    /// lock, a store set aside), since the last call.
    pub(crate) fn take_notices(&self) -> Vec<StoreNotice> {
        self.access.take_notices()
    }

    /// A listener woken when the next such notice is queued (see
    /// `Access::listen_for_notices`); `None` when none can come.
    pub(crate) fn listen_for_notices(&self) -> Option<event_listener::EventListener> {
        self.access.listen_for_notices()
    }

    /// Whether writes go to the database now (else a hit is journaled).
    pub(crate) fn is_writable(&self) -> bool {
        self.access.is_writable()
    }

    /// A column family of the writable instance (opening it): for building
    /// a batch that `write` then writes.
    pub(super) fn cf(&self, name: &'static str) -> Result<WriteCf, CacheError> {
        let db = self.writer()?;
        cf_of(&db, &self.dir, name)?;
        Ok(WriteCf { db, name })
    }

    pub(super) fn db_err(
        &self,
        op: &'static str,
    ) -> impl FnOnce(rocksdb::Error) -> CacheError + '_ {
        move |source| CacheError::Db {
            dir: self.dir.clone(),
            op,
            source,
        }
    }

    pub(super) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        let db = self.reader();
        db.get_cf(cf_of(&db, &self.dir, cf)?, key)
            .map_err(self.db_err("read"))
    }

    /// Looks up a value read once per process (an entry), without filling
    /// the block cache ([`read_once`]), and hands it to `read` where RocksDB
    /// holds it, without a copy; `read` should not keep it (decode it, or
    /// check it).
    pub(super) fn get_once<T>(
        &self,
        cf: &'static str,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, CacheError> {
        let db = self.reader();
        let value = db
            .get_pinned_cf_opt(cf_of(&db, &self.dir, cf)?, key, &read_once())
            .map_err(self.db_err("read"))?;
        Ok(value.map(|v| read(&v)))
    }

    pub(super) fn write(&self, batch: WriteBatch) -> Result<(), CacheError> {
        self.writer()?.write(batch).map_err(self.db_err("write"))
    }

    /// The task whose stored run owns `dir` (see `META_OUTPUT_DIR`). A read
    /// error counts as "nobody": the listing difference then counts.
    pub(super) fn output_dir_owner(&self, dir: &crate::cache::paths::RelPath) -> Option<Vec<u8>> {
        self.get(CF_META, &output_dir_key(dir)).ok().flatten()
    }

    pub(crate) fn task_record(&self, task: &str) -> Result<Option<TaskRecord>, CacheError> {
        // An unreadable record only loses a miss explanation: treat as absent.
        let stored: Option<TaskRecord> = self
            .get(CF_TASKS, task.as_bytes())?
            .and_then(|b| codec::decode("task record", &b).ok());
        let journaled = self.journaled_records().get(task).cloned();
        Ok(match (journaled, stored) {
            // The journal's, unless the database's is newer (a run stored
            // or hit after that journaled hit).
            (Some((noted, at_ms)), Some(stored)) => {
                let stored_is_newer = stored.entry != noted.entry
                    && self
                        .entry_meta(stored.entry)?
                        .is_some_and(|m| m.last_used_ms > at_ms);
                Some(if stored_is_newer { stored } else { noted })
            }
            (Some((noted, _)), None) => Some(noted),
            (None, stored) => stored,
        })
    }

    pub(crate) fn entry(&self, key: EntryKey) -> Result<Option<CacheEntry>, CacheError> {
        Ok(self
            .get_once(CF_ENTRIES, &key.to_bytes(), |b| {
                codec::decode("cache entry", b).ok()
            })?
            .flatten())
    }

    pub(super) fn entry_meta(&self, key: EntryKey) -> Result<Option<EntryMeta>, CacheError> {
        Ok(self
            .get(CF_META, &entry_meta_key(key))?
            .and_then(|b| codec::decode("entry metadata", &b).ok()))
    }

    /// The compressed size of a stored blob, `None` when it is not stored.
    pub(super) fn blob_len(&self, blob: &Digest) -> Result<Option<u64>, CacheError> {
        Ok(self
            .get(CF_META, &blob_meta_key(blob))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_le_bytes))
    }

    /// A blob's original bytes, checked against its hash. A blob that is
    /// missing or fails the check is forgotten on the spot (blob and size
    /// record deleted), so the next run that produces the same content
    /// writes it again instead of deduplicating against the broken copy.
    pub(crate) fn blob(&self, blob: &Digest) -> Result<Vec<u8>, CacheError> {
        self.checked_blob(blob, Forget::TakingTheLock)
    }

    /// [`Store::blob`] for an upload to the remote cache, which runs after
    /// the task's record, when the run may have let the lock go: a broken
    /// blob is forgotten only if the store is open for writing anyway
    /// (taking the lock back here, nothing would let it go again while a
    /// dev server runs). The next restore that finds it broken forgets it.
    pub(crate) fn blob_to_send(&self, blob: &Digest) -> Result<Vec<u8>, CacheError> {
        self.checked_blob(blob, Forget::IfWritable)
    }

    fn checked_blob(&self, blob: &Digest, forget: Forget) -> Result<Vec<u8>, CacheError> {
        match self.get_once(CF_BLOBS, blob.as_bytes(), |stored| intact(stored, blob))? {
            Some(Some(bytes)) => Ok(bytes),
            found => {
                self.forget_blob(blob, forget);
                let (dir, blob) = (self.dir.clone(), blob.to_string());
                Err(match found {
                    None => CacheError::MissingBlob { dir, blob },
                    Some(_) => CacheError::CorruptBlob { dir, blob },
                })
            }
        }
    }

    /// Deletes a blob and its size record, if the writable instance finds it
    /// missing or damaged too: a read-only view may predate what another vp
    /// stored since. Best effort: if even this write fails the store is
    /// failing as a whole, and the caller is already reporting an error for
    /// this blob.
    fn forget_blob(&self, blob: &Digest, forget: Forget) {
        // Not waiting for another vp's lock: a blob left is forgotten by
        // the next restore that finds it broken.
        let writer = match forget {
            Forget::TakingTheLock => self.writer_now().ok(),
            Forget::IfWritable => self.access.writer_if_open(),
        };
        let Some(db) = writer else { return };
        let (Ok(blobs), Ok(meta)) = (
            cf_of(&db, &self.dir, CF_BLOBS),
            cf_of(&db, &self.dir, CF_META),
        ) else {
            return;
        };
        if let Ok(Some(stored)) = db.get_pinned_cf_opt(blobs, blob.as_bytes(), &read_once())
            && intact(&stored, blob).is_some()
        {
            return;
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(blobs, blob.as_bytes());
        batch.delete_cf(meta, blob_meta_key(blob));
        let _ = db.write(batch);
    }

    /// Adds a blob and its size record to `batch`; returns the compressed size.
    pub(super) fn put_blob(
        &self,
        batch: &mut WriteBatch,
        blob: &Digest,
        bytes: &[u8],
    ) -> Result<u64, CacheError> {
        let compressed = zstd::bulk::compress(bytes, 3).map_err(|e| CacheError::Io {
            op: "compress an output for",
            path: self.dir.clone(),
            source: e,
        })?;
        let len = compressed.len() as u64;
        batch.put_cf(&*self.cf(CF_BLOBS)?, blob.as_bytes(), compressed);
        batch.put_cf(&*self.cf(CF_META)?, blob_meta_key(blob), len.to_le_bytes());
        Ok(len)
    }

    /// Entries stored under one spawn key, with their metadata (`None` when
    /// it does not decode). Scans the small `e` records of `meta`, not
    /// `entries`: iterating `entries` reads and decompresses the blocks
    /// that hold the entries themselves (4 MB for a task with 50,000
    /// inputs) only to learn their keys, and left them in the block cache
    /// for the rest of the run. An entry and its `e` record are written and
    /// deleted in one batch; an entry without one is not offered (a miss)
    /// and `prune` still counts it.
    pub(super) fn variants(
        &self,
        spawn: &Digest,
    ) -> Result<Vec<(EntryKey, Option<EntryMeta>)>, CacheError> {
        let mut prefix = Vec::with_capacity(1 + Digest::LEN);
        prefix.push(META_ENTRY);
        prefix.extend_from_slice(spawn.as_bytes());
        let mut out = Vec::new();
        self.scan_meta(&prefix, "scan entries", |rest, v| {
            if let Some(variant) = Digest::from_slice(rest) {
                let key = EntryKey {
                    spawn: *spawn,
                    variant,
                };
                out.push((key, codec::decode("entry metadata", v).ok()));
            }
        })?;
        Ok(out)
    }

    /// Calls `each` with every `meta` record whose key starts with
    /// `prefix`: the key's rest and the value, in key order. `what` names
    /// the scan in a read error.
    pub(super) fn scan_meta(
        &self,
        prefix: &[u8],
        what: &'static str,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), CacheError> {
        let db = self.reader();
        let handle = cf_of(&db, &self.dir, CF_META)?;
        let iter = db.iterator_cf(
            handle,
            IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(self.db_err(what))?;
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            each(rest, &v);
        }
        Ok(())
    }
}

/// A stored blob's original bytes, if they decompress and match its hash.
fn intact(stored: &[u8], blob: &Digest) -> Option<Vec<u8>> {
    zstd::stream::decode_all(stored)
        .ok()
        .filter(|bytes| Digest::of_content(bytes) == *blob)
}

/// A column family of `db`.
/// A column family of the writable instance (`Store::cf`), for a batch to
/// name. It keeps that instance open while it lives, so the handle stays
/// valid even if the runner lets the lock go meanwhile.
pub(super) struct WriteCf {
    db: Arc<DB>,
    name: &'static str,
}

impl std::ops::Deref for WriteCf {
    type Target = ColumnFamily;

    fn deref(&self) -> &ColumnFamily {
        // `Store::cf` found it in this very instance, and an open instance
        // never drops a column family (vp never drops one).
        self.db
            .cf_handle(self.name)
            .expect("a column family found in an open instance stays there")
    }
}

pub(super) fn cf_of<'a>(
    db: &'a DB,
    dir: &Path,
    name: &'static str,
) -> Result<&'a ColumnFamily, CacheError> {
    db.cf_handle(name)
        .ok_or_else(|| CacheError::MissingColumnFamily {
            dir: dir.to_path_buf(),
            name,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }
}

//! Keeping the cache bounded and inspectable: `prune` evicts least recently
//! used entries until the stored bytes fit a bound and sweeps blobs no entry
//! references (mark and sweep, under the store's exclusive gc lock);
//! `stats` counts what is stored; `clean` deletes the whole store.

use std::collections::HashMap;
use std::path::Path;

use rocksdb::{IteratorMode, WriteBatch};

use super::db::{
    CF_BLOBS, CF_ENTRIES, CF_META, CF_TASKS, COLUMN_FAMILIES, EntryMeta, Store, blob_meta_key,
    cf_of, entry_meta_key,
};
use super::layout::{CacheDir, dir_size};
use super::open::{self, OpenOptions, Opened, StoreNotice, WhenUnusable};
use crate::cache::codec;
use crate::cache::digest::Digest;
use crate::cache::entry::{CacheEntry, EntryKey};
use crate::cache::error::CacheError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PruneReport {
    pub(crate) removed_entries: usize,
    pub(crate) removed_blobs: usize,
    pub(crate) freed_bytes: u64,
    pub(crate) remaining_bytes: u64,
    pub(crate) remaining_entries: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub(crate) entries: usize,
    pub(crate) tasks: usize,
    pub(crate) blobs: usize,
    /// Compressed bytes of all blobs.
    pub(crate) blob_bytes: u64,
    /// Encoded bytes of all entries.
    pub(crate) entry_bytes: u64,
    pub(crate) hits: u64,
    /// Bytes the store's files take on disk (includes RocksDB overhead and
    /// space not yet compacted away).
    pub(crate) disk_bytes: u64,
}

/// Everything prune needs to know, read in one pass.
struct Census {
    /// Entry key → (last use, encoded size, blobs it references).
    entries: Vec<(EntryKey, i64, u64, Vec<Digest>)>,
    blob_sizes: HashMap<Digest, u64>,
    /// `meta` records of entries that no longer exist.
    orphan_metas: Vec<EntryKey>,
}

const BATCH_OPS: usize = 512;

impl Store {
    fn census(&self) -> Result<Census, CacheError> {
        let mut metas: HashMap<EntryKey, EntryMeta> = HashMap::new();
        let mut blob_sizes = HashMap::new();
        // Pruning writes: read what the writable instance sees.
        let db = self.writer()?;
        for item in db.iterator_cf(cf_of(&db, &self.dir, CF_META)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.db_err("scan metadata"))?;
            match k.split_first() {
                Some((b'e', rest)) => {
                    if let (Some(key), Ok(m)) = (
                        EntryKey::from_bytes(rest),
                        codec::decode::<EntryMeta>("entry metadata", &v),
                    ) {
                        metas.insert(key, m);
                    }
                }
                Some((b'b', rest)) => {
                    if let (Some(d), Ok(len)) =
                        (Digest::from_slice(rest), <[u8; 8]>::try_from(&v[..]))
                    {
                        blob_sizes.insert(d, u64::from_le_bytes(len));
                    }
                }
                _ => {}
            }
        }
        let mut entries = Vec::new();
        for item in db.iterator_cf(cf_of(&db, &self.dir, CF_ENTRIES)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.db_err("scan entries"))?;
            let Some(key) = EntryKey::from_bytes(&k) else {
                continue;
            };
            // An entry that cannot be decoded references nothing and goes first.
            let blobs = codec::decode::<CacheEntry>("cache entry", &v)
                .map(|e| e.blobs().map(|(d, _)| d).collect())
                .unwrap_or_default();
            let used = metas.remove(&key).map_or(0, |m| m.last_used_ms);
            entries.push((key, used, v.len() as u64, blobs));
        }
        Ok(Census {
            entries,
            blob_sizes,
            orphan_metas: metas.into_keys().collect(),
        })
    }

    /// Evicts least recently used entries until entries + blobs take at most
    /// `max_bytes` (when over, down to 90 % of it, so the next runs do not
    /// prune again at once), and deletes every unreferenced blob. Blocking;
    /// waits for in-flight `record`s.
    pub(crate) fn prune(&self, max_bytes: u64) -> Result<PruneReport, CacheError> {
        let _gc = self
            .gc
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut census = self.census()?;
        let mut refs: HashMap<Digest, usize> = HashMap::new();
        for (_, _, _, blobs) in &census.entries {
            for b in blobs {
                *refs.entry(*b).or_default() += 1;
            }
        }
        let total: u64 = census.entries.iter().map(|e| e.2).sum::<u64>()
            + census.blob_sizes.values().sum::<u64>();
        let mut report = PruneReport::default();
        let mut batch = WriteBatch::default();

        // Sweep: blobs nothing references (left by replaced variants or by
        // entries evicted earlier).
        let unreferenced: Vec<Digest> = census
            .blob_sizes
            .keys()
            .filter(|b| !refs.contains_key(*b))
            .copied()
            .collect();
        for b in unreferenced {
            report.freed_bytes += census.blob_sizes.get(&b).copied().unwrap_or(0);
            report.removed_blobs += 1;
            self.delete_blob(&mut batch, &b)?;
            batch = self.flush_if_large(batch)?;
        }
        for key in &census.orphan_metas {
            batch.delete_cf(&*self.cf(CF_META)?, entry_meta_key(*key));
        }

        let target = if total - report.freed_bytes > max_bytes {
            max_bytes / 10 * 9
        } else {
            u64::MAX
        };
        census.entries.sort_by_key(|e| e.1);
        let mut kept = census.entries.len();
        for (key, _, size, blobs) in &census.entries {
            if total - report.freed_bytes <= target {
                break;
            }
            // The entry and the blobs only it used go in the same batch: a
            // crash leaves either both or neither.
            batch.delete_cf(&*self.cf(CF_ENTRIES)?, key.to_bytes());
            batch.delete_cf(&*self.cf(CF_META)?, entry_meta_key(*key));
            report.freed_bytes += size;
            report.removed_entries += 1;
            kept -= 1;
            for b in blobs {
                let Some(n) = refs.get_mut(b) else { continue };
                *n -= 1;
                if *n == 0 {
                    refs.remove(b);
                    report.freed_bytes += census.blob_sizes.get(b).copied().unwrap_or(0);
                    report.removed_blobs += 1;
                    self.delete_blob(&mut batch, b)?;
                }
            }
            batch = self.flush_if_large(batch)?;
        }
        self.write(batch)?;
        if report.removed_entries > 0 || report.removed_blobs > 0 {
            // Deletions only free disk space once compacted away.
            self.compact()?;
        }
        report.remaining_bytes = total - report.freed_bytes;
        report.remaining_entries = kept;
        Ok(report)
    }

    /// Prunes only when the store's files exceed `max_bytes` (a cheap check
    /// of RocksDB's size properties, so it can run after every `vp run`).
    pub(crate) fn prune_if_needed(
        &self,
        max_bytes: u64,
    ) -> Result<Option<PruneReport>, CacheError> {
        // A run that wrote nothing leaves pruning to the next one that does.
        // The size is read through whichever instance is open: one that let
        // the lock go since takes it again only to prune, and only if it is
        // free (waiting for another vp only to prune would hold up the run's
        // end, or a watch's next cycle; the next run that writes prunes).
        if !self.access.was_writable() || self.approximate_disk_bytes()? <= max_bytes {
            return Ok(None);
        }
        if self.writer_now().is_err() {
            return Ok(None);
        }
        let report = self.prune(max_bytes)?;
        if report.removed_entries == 0 && report.removed_blobs == 0 {
            // The live data fits, the files do not: overwritten values are
            // still on disk. Compact now, or every run would prune again.
            self.compact()?;
        }
        Ok(Some(report))
    }

    fn compact(&self) -> Result<(), CacheError> {
        let db = self.writer()?;
        for name in COLUMN_FAMILIES {
            db.compact_range_cf(cf_of(&db, &self.dir, name)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn approximate_disk_bytes(&self) -> Result<u64, CacheError> {
        let mut total = 0;
        let db = self.reader();
        for name in COLUMN_FAMILIES {
            let cf = cf_of(&db, &self.dir, name)?;
            for prop in [
                "rocksdb.total-sst-files-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                total += db
                    .property_int_value_cf(cf, prop)
                    .map_err(self.db_err("read its size"))?
                    .unwrap_or(0);
            }
        }
        Ok(total)
    }

    fn delete_blob(&self, batch: &mut WriteBatch, blob: &Digest) -> Result<(), CacheError> {
        batch.delete_cf(&*self.cf(CF_BLOBS)?, blob.as_bytes());
        batch.delete_cf(&*self.cf(CF_META)?, blob_meta_key(blob));
        Ok(())
    }

    fn flush_if_large(&self, batch: WriteBatch) -> Result<WriteBatch, CacheError> {
        if batch.len() < BATCH_OPS {
            return Ok(batch);
        }
        self.write(batch)?;
        Ok(WriteBatch::default())
    }

    pub(crate) fn stats(&self) -> Result<CacheStats, CacheError> {
        let mut s = CacheStats::default();
        let db = self.reader();
        let cf = |name| cf_of(&db, &self.dir, name);
        for item in db.iterator_cf(cf(CF_META)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.db_err("scan metadata"))?;
            match k.first() {
                Some(b'e') => {
                    if let Ok(m) = codec::decode::<EntryMeta>("entry metadata", &v) {
                        s.hits += m.hits;
                    }
                }
                Some(b'b') => {
                    s.blobs += 1;
                    s.blob_bytes += <[u8; 8]>::try_from(&v[..]).map_or(0, u64::from_le_bytes);
                }
                _ => {}
            }
        }
        for item in db.iterator_cf(cf(CF_ENTRIES)?, IteratorMode::Start) {
            let (_, v) = item.map_err(self.db_err("scan entries"))?;
            s.entries += 1;
            s.entry_bytes += v.len() as u64;
        }
        for item in db.iterator_cf(cf(CF_TASKS)?, IteratorMode::Start) {
            item.map_err(self.db_err("scan tasks"))?;
            s.tasks += 1;
        }
        s.disk_bytes = dir_size(&self.home.db());
        Ok(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CleanOutcome {
    Removed { freed_bytes: u64 },
    NothingThere,
}

/// Deletes what vp keeps in `dir` (the store, a set-aside copy, the last
/// run's details), and only if `dir` carries vp's marker. Takes the store's
/// lock first so a running vp's cache is never deleted under it.
pub(crate) fn clean(
    dir: &Path,
    options: &OpenOptions,
    notify: &mut dyn FnMut(StoreNotice),
) -> Result<CleanOutcome, CacheError> {
    let Some(home) = CacheDir::find(dir)? else {
        return Ok(CleanOutcome::NothingThere);
    };
    if home.db().exists() {
        // Opening read-write proves no other vp holds it. A store that
        // cannot be opened at all (damaged beyond setting aside, made by
        // something else in our directory) is still removed when nobody
        // holds its lock: `cache clean` is how a user starts over.
        let opened = match open::open_exclusive(dir, options, WhenUnusable::Report, notify) {
            Err(CacheError::Open { .. } | CacheError::Unusable { .. })
                if !open::lock_is_held(&home.db()) =>
            {
                None
            }
            other => Some(other?),
        };
        match opened {
            None => {}
            Some(Opened::Ready(store)) => drop(store),
            Some(Opened::Busy { holder }) => {
                return Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Some(Opened::HeldByAncestor { holder, .. }) => {
                return Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder: Some(holder),
                });
            }
        }
    }
    let freed_bytes = home.remove()?;
    Ok(CleanOutcome::Removed { freed_bytes })
}

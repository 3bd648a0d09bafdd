//! Turning a result downloaded from the remote cache into a local entry, so
//! that the ordinary local lookup and restore serve it: the remote code
//! never writes the workspace, only the store. The caller has verified the
//! artifact (signature, every blob's hash, the entry's variant) and replaced
//! the entry's input stamps with this machine's.

use std::collections::HashMap;

use rocksdb::WriteBatch;

use super::db::{CF_ENTRIES, CF_META, EntryMeta, Store, entry_meta_key, output_dir_key};
use crate::cache::clock::Timestamp;
use crate::cache::codec;
use crate::cache::digest::Digest;
use crate::cache::entry::{CacheEntry, EntryKey, OutputState};
use crate::cache::error::CacheError;
use crate::cache::fingerprint::SpawnFingerprint;

pub(crate) struct ImportRequest<'a> {
    /// The task the entry is for (owner of its output directories).
    pub(crate) task: &'a str,
    /// The local fingerprint: the entry is stored under its key, where the
    /// next `lookup` of the same command looks.
    pub(crate) spawn: &'a SpawnFingerprint,
    pub(crate) entry: CacheEntry,
    /// Verified content of every blob the entry references.
    pub(crate) blobs: &'a HashMap<Digest, Vec<u8>>,
}

impl Store {
    /// Stores a downloaded entry and its blobs in ONE batch (the same crash
    /// safety as `record`). The task's pointer is left alone: the lookup
    /// that follows moves it, and meanwhile it still names the previous run,
    /// which a hit needs to find superseded outputs. Blocking.
    pub(crate) fn import(&self, req: ImportRequest<'_>) -> Result<EntryKey, CacheError> {
        // As `record`: reads below go to the writable instance.
        self.writer()?;
        let mut entry = req.entry;
        let _gc = self
            .gc
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = WriteBatch::default();
        let mut written: HashMap<Digest, u64> = HashMap::new();
        let mut put = |store: &Self, batch: &mut WriteBatch, blob: &Digest| {
            if let Some(&len) = written.get(blob) {
                return Ok(len);
            }
            let len = match store.blob_len(blob)? {
                Some(len) => len,
                None => {
                    let bytes = req.blobs.get(blob).ok_or_else(|| CacheError::MissingBlob {
                        dir: store.dir.clone(),
                        blob: blob.to_string(),
                    })?;
                    store.put_blob(batch, blob, bytes)?
                }
            };
            written.insert(*blob, len);
            Ok::<u64, CacheError>(len)
        };
        // `stored` sizes are this store's compressed sizes (eviction counts
        // them), not the uploader's.
        for state in entry.outputs.values_mut() {
            if let OutputState::File { blob, stored, .. } = state {
                *stored = put(self, &mut batch, blob)?;
            }
        }
        if let Some(log) = &mut entry.log {
            log.stored = put(self, &mut batch, &log.blob)?;
        }
        let key = EntryKey {
            spawn: req.spawn.key(),
            variant: entry.variant(),
        };
        let encoded = codec::encode(&entry);
        let now = Timestamp::now_coarse().as_millis();
        let meta = EntryMeta {
            created_ms: now,
            last_used_ms: now,
            hits: self.entry_meta(key)?.map_or(0, |m| m.hits),
            size: encoded.len() as u64,
        };
        batch.put_cf(&*self.cf(CF_ENTRIES)?, key.to_bytes(), &encoded);
        for dir in &entry.owned_dirs {
            batch.put_cf(
                &*self.cf(CF_META)?,
                output_dir_key(dir),
                req.task.as_bytes(),
            );
        }
        batch.put_cf(
            &*self.cf(CF_META)?,
            entry_meta_key(key),
            codec::encode(&meta),
        );
        self.drop_excess_variants(&mut batch, key)?;
        self.write(batch)?;
        Ok(key)
    }
}

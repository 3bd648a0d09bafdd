//! The content hash of a program outside the workspace (a system `node`),
//! memoised in the `meta` column family under `p` + its absolute path, keyed
//! by its stat stamp (size, mtime, ctime, inode): the portable key needs the
//! program by content, and a 100 MB binary must be hashed once, not per run.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rocksdb::WriteBatch;

use super::db::{CF_META, Store, cf_of};
use crate::cache::clock::Timestamp;
use crate::cache::codec;
use crate::cache::digest::{self, Digest};
use crate::cache::entry::Stamp;
use crate::cache::error::CacheError;

/// `p` + absolute program path → `(Stamp, Digest)`.
const META_PROGRAM: u8 = b'p';

fn memo_key(abs: &Path) -> Vec<u8> {
    let bytes = abs.as_os_str().as_bytes();
    let mut k = Vec::with_capacity(1 + bytes.len());
    k.push(META_PROGRAM);
    k.extend_from_slice(bytes);
    k
}

impl Store {
    /// The content hash of the file at `abs` (symlinks followed), from the
    /// memo when its stamp is unchanged. Blocking.
    pub(crate) fn program_digest(&self, abs: &Path) -> Result<Digest, CacheError> {
        let stat = |what| CacheError::io(what, abs);
        let before = Stamp::of(&fs::metadata(abs).map_err(stat("stat the program"))?);
        let key = memo_key(abs);
        if let Some(bytes) = self.get(CF_META, &key)?
            && let Ok((stamp, digest)) = codec::decode::<(Stamp, Digest)>("program memo", &bytes)
            && stamp == before
        {
            return Ok(digest);
        }
        let hashed_at = Timestamp::now_coarse();
        let (digest, _) = digest::hash_file(abs).map_err(stat("hash the program"))?;
        let after = Stamp::of(&fs::metadata(abs).map_err(stat("stat the program"))?);
        // Memoise only a stamp that proves the content: unchanged while we
        // hashed, and older than the hash (git's racy-clean rule), so a
        // same-tick rewrite is never remembered as the old content.
        let racy = after.mtime >= hashed_at || after.ctime >= hashed_at;
        // Only into a store open for writing: opening it for a memo could
        // wait for another vp's lock, or take the lock back after the run
        // let it go (an upload after the task's record); the next run that
        // writes memoises it.
        if after == before
            && !racy
            && let Some(db) = self.access.writer_if_open()
        {
            let mut batch = WriteBatch::default();
            batch.put_cf(
                cf_of(&db, &self.dir, CF_META)?,
                key,
                codec::encode(&(after, digest)),
            );
            db.write(batch).map_err(self.db_err("write"))?;
        }
        Ok(digest)
    }
}

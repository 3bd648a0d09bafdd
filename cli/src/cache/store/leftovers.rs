//! What a task's runs that were not stored left behind.
//!
//! A stored run's outputs are in its entry, so a later hit knows them:
//! it writes over them or removes them (`superseded`). A run that failed,
//! was refused ("not cached") or was cancelled leaves outputs no entry
//! records: `next build` that fails leaves chunks of the failed build in
//! `.next`. A hit after it would restore an earlier build beside those
//! files, where a real build removes them. So vp remembers, per task (in
//! `meta` under `u` + task id), every output such a run left that was not
//! the task's own state when it started, and a lookup misses while one of
//! them is there and the entry it would use does not make it
//! ("'x' was left by a run that was not stored"). A stored run or a hit
//! written to the store forgets them. A hit on a store still read-only
//! (`journal.rs`) does not: the next lookup may then miss once more than
//! needed, never hit wrongly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use super::db::{CF_META, Store};
use crate::cache::codec;
use crate::cache::error::CacheError;
use crate::cache::paths::RelPath;

/// Key prefix of a task's leftovers in `meta` (`e`, `b`, `o`, `p`, `t` and
/// `schema` are taken).
const META_LEFTOVERS: u8 = b'u';

pub(super) fn leftovers_key(task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + task.len());
    k.push(META_LEFTOVERS);
    k.extend_from_slice(task.as_bytes());
    k
}

impl Store {
    /// The outputs the task's unstored runs left, since its last stored
    /// run or hit. Unreadable counts as none: the same as before vp
    /// remembered them.
    pub(crate) fn leftovers(&self, task: &str) -> Result<BTreeSet<RelPath>, CacheError> {
        Ok(self
            .get(CF_META, &leftovers_key(task))?
            .and_then(|bytes| {
                codec::decode::<BTreeSet<RelPath>>("outputs of unstored runs", &bytes).ok()
            })
            .unwrap_or_default())
    }

    /// Adds what an unstored run left (`outputs`: absolute paths, those
    /// outside the workspace skipped) to what earlier ones left.
    pub(crate) fn remember_leftovers(
        &self,
        task: &str,
        workspace_root: &Path,
        outputs: &[PathBuf],
    ) -> Result<(), CacheError> {
        let mut left = self.leftovers(task)?;
        let before = left.len();
        left.extend(
            outputs
                .iter()
                .filter_map(|abs| RelPath::from_abs(workspace_root, abs))
                .filter(|rel| !rel.is_root()),
        );
        if left.len() == before {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, leftovers_key(task), codec::encode(&left));
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::cache::store::open::{OpenOptions, Opened, open};

    #[test]
    fn leftovers_add_up_and_skip_what_is_outside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        let store = match open(
            &root.join("cache"),
            &OpenOptions {
                lock_timeout: Duration::ZERO,
            },
            &mut |_| {},
        ) {
            Ok(Opened::Ready(s)) => s,
            _ => panic!("store"),
        };
        assert!(store.leftovers("t").expect("read").is_empty());
        store
            .remember_leftovers("t", &root, &[root.join("out/a.js"), "/elsewhere/b".into()])
            .expect("write");
        store
            .remember_leftovers("t", &root, &[root.join("out/c.js"), root.clone()])
            .expect("write");
        let left: Vec<String> = store
            .leftovers("t")
            .expect("read")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(left, ["out/a.js", "out/c.js"]);
        assert!(store.leftovers("other").expect("read").is_empty());
    }
}

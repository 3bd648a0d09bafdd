//! A tool's own incremental state (`*.tsbuildinfo`, `.eslintcache`, a
//! bundler's cache file): files a task reads at its start and rewrites.
//!
//! Read-then-rewritten is what "the task modified its own input" looks like,
//! and that rule keeps a run out of the cache. For a state file it would keep
//! every run after the first edit out, forever. The rule that needs no list
//! of tools: a file whose content, when the task starts, is exactly what this
//! task left there last time is the task's own state, not an input. vp
//! remembers, per task, the content of every such file after each run (in
//! `meta` under `t` + task id; stored or not, so a state file that existed
//! before vp converges after one run), and before the next run checks which
//! still hold it. A file the user (or another tool) changed no longer
//! matches and is still a modified input.
//!
//! A hit may also write over what the task's last run left in one (a type
//! error makes `vue-tsc -b` fail after it rewrote its build info; the
//! revert that follows hits), but only while the file is untouched since
//! that run, and only when the run started from content vp put there (what
//! the task's last used entry restored or recorded) or that such a run
//! left, untouched since (`OwnState::replaceable`): a run that started
//! from the user's edit (`sed -i` over it) leaves a result that keeps the
//! edit, and that stays the user's however many runs rewrite it. (An edit
//! made while a run is going, between its start and its read or after its
//! last write, is not told apart from the run's own writing: the same
//! window a stored run's outputs have.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::db::{CF_META, Store};
use crate::cache::codec;
use crate::cache::digest::{self, Digest};
use crate::cache::entry::{OutputState, Stamp};
use crate::cache::error::CacheError;
use crate::cache::paths::RelPath;

/// Key prefix of a task's state record in `meta` (`e`, `b` and `schema`
/// are taken).
const META_TASK_STATE: u8 = b't';

/// State files larger than this are not checked (hashing them before every
/// run would cost more than re-running without the cache once).
const MAX_STATE_FILE: u64 = 256 << 20;

fn state_key(task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + task.len());
    k.push(META_TASK_STATE);
    k.extend_from_slice(task.as_bytes());
    k
}

/// What the task's last traced run left in one state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LeftInFile {
    content: Digest,
    /// The file's stamp right after that run, when the run started from
    /// content vp or the task made there (`OwnState::replaceable`): a hit
    /// may replace the file while it still has this stamp and content.
    /// `None` when the run started from someone else's content, or from a
    /// result of a run that did (an edit stays the user's however many runs
    /// rewrite it).
    replaceable: Option<Stamp>,
}

/// The task's state files as a run starts (see `Store::own_state`).
#[derive(Debug, Default, Clone)]
pub(crate) struct OwnState {
    /// Those holding what the task left there: reading and rewriting one
    /// is not modifying an input.
    pub(crate) files: BTreeSet<PathBuf>,
    /// Of those, the ones whose content vp restored or a run left that
    /// itself started from such content, untouched since: what this run
    /// leaves in them a hit may replace.
    pub(crate) replaceable: BTreeSet<PathBuf>,
}

/// What the task's own runs left in files: the content of each state file
/// after its last traced run, and the outputs of the entry it last used
/// (stored or hit), which a hit restored.
#[derive(Debug, Default)]
pub(crate) struct LeftByTask {
    remembered: BTreeMap<RelPath, LeftInFile>,
    restored: BTreeMap<RelPath, OutputState>,
}

impl LeftByTask {
    /// Whether `content` at `rel` is what one of the task's runs left there.
    pub(crate) fn holds(&self, rel: &RelPath, content: &Digest) -> bool {
        self.remembered
            .get(rel)
            .is_some_and(|r| r.content == *content)
            || self.restored(rel, content)
    }

    /// Whether `content` at `rel` is what the task's last used entry
    /// restored or recorded there.
    fn restored(&self, rel: &RelPath, content: &Digest) -> bool {
        matches!(self.restored.get(rel), Some(OutputState::File { blob, .. }) if blob == content)
    }

    /// Whether the file at `rel`, holding `content` with `stamp`, is
    /// content vp or a replaceable run put there (`OwnState::replaceable`).
    fn replaceable(&self, rel: &RelPath, content: &Digest, stamp: &Stamp) -> bool {
        self.restored(rel, content)
            || self
                .remembered
                .get(rel)
                .is_some_and(|r| r.content == *content && r.replaceable.as_ref() == Some(stamp))
    }
}

impl Store {
    /// What the task's own runs left (see `LeftByTask`). An unreadable
    /// record counts as nothing left: that costs one uncached run, or one
    /// miss, never a wrong hit.
    pub(crate) fn left_by_task(&self, task: &str) -> Result<LeftByTask, CacheError> {
        let remembered = self.left_in_files(task)?;
        if remembered.is_empty() {
            return Ok(LeftByTask::default());
        }
        Ok(LeftByTask {
            remembered,
            restored: self.last_used_outputs(task)?,
        })
    }

    /// What the task's last traced run left in its state files (see
    /// `remember_state`); empty when unreadable.
    fn left_in_files(&self, task: &str) -> Result<BTreeMap<RelPath, LeftInFile>, CacheError> {
        Ok(match self.get(CF_META, &state_key(task))? {
            Some(bytes) => codec::decode::<BTreeMap<RelPath, LeftInFile>>("task state", &bytes)
                .unwrap_or_default(),
            None => BTreeMap::new(),
        })
    }

    /// The state files a hit may write over while they hold what the
    /// task's last traced run left, with that content and the stamp the
    /// file had right after the run (see `LeftInFile::replaceable`).
    pub(crate) fn replaceable_state(
        &self,
        task: &str,
    ) -> Result<BTreeMap<RelPath, (Digest, Stamp)>, CacheError> {
        Ok(self
            .left_in_files(task)?
            .into_iter()
            .filter_map(|(rel, left)| Some((rel, (left.content, left.replaceable?))))
            .collect())
    }

    /// The outputs of the entry the task last used (stored or hit): what vp
    /// left in place. Empty without one.
    pub(crate) fn last_used_outputs(
        &self,
        task: &str,
    ) -> Result<BTreeMap<RelPath, OutputState>, CacheError> {
        Ok(match self.task_record(task)? {
            Some(record) => self
                .entry(record.entry)?
                .map(|e| e.outputs)
                .unwrap_or_default(),
            None => BTreeMap::new(),
        })
    }

    /// The task's state files that hold, right now, what the task left
    /// there: after its last run (recorded by `remember_state`) or as its
    /// last used entry restored them; and which of those a hit may replace
    /// once this run rewrote them (`OwnState`). Blocking: hashes those files.
    pub(crate) fn own_state(
        &self,
        task: &str,
        workspace_root: &Path,
    ) -> Result<OwnState, CacheError> {
        let left = self.left_by_task(task)?;
        let mut own = OwnState::default();
        for rel in left.remembered.keys() {
            let abs = rel.to_abs(workspace_root);
            let Ok(meta) = std::fs::symlink_metadata(&abs) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_STATE_FILE {
                continue;
            }
            let Ok((now, after)) = digest::hash_file_stamped(&abs) else {
                continue;
            };
            if left.holds(rel, &now) {
                if left.replaceable(rel, &now, &Stamp::of(&after)) {
                    own.replaceable.insert(abs.clone());
                }
                own.files.insert(abs);
            }
        }
        Ok(own)
    }

    /// Remembers what the task left in its state files (`files`: absolute
    /// paths the run read before it rewrote or created them). Files that are
    /// gone or outside the workspace are skipped. Of what was remembered
    /// before, the files that were the task's own state when the run
    /// started (`own.files`, see `own_state`) and that it did not rewrite
    /// are kept: their content is still what the task left. A file of
    /// `files` that was in `own.replaceable` is one a hit may replace while
    /// untouched (`LeftInFile::replaceable`). Blocking: hashes `files`.
    pub(crate) fn remember_state(
        &self,
        task: &str,
        workspace_root: &Path,
        files: &[PathBuf],
        own: &OwnState,
    ) -> Result<(), CacheError> {
        let unchanged_own = &own.files;
        let mut left: BTreeMap<RelPath, LeftInFile> = self
            .left_in_files(task)?
            .into_iter()
            .filter(|(rel, _)| {
                let abs = rel.to_abs(workspace_root);
                unchanged_own.contains(&abs) && !files.contains(&abs)
            })
            .collect();
        for abs in files {
            let Some(rel) = RelPath::from_abs(workspace_root, abs) else {
                continue;
            };
            match std::fs::symlink_metadata(abs) {
                Ok(m) if m.is_file() && m.len() <= MAX_STATE_FILE => {}
                _ => continue,
            }
            // The stamp is the handle's, taken after hashing: a write while
            // it was hashed shows in it.
            if let Ok((content, meta)) = digest::hash_file_stamped(abs) {
                let replaceable = own.replaceable.contains(abs).then(|| Stamp::of(&meta));
                left.insert(
                    rel,
                    LeftInFile {
                        content,
                        replaceable,
                    },
                );
            }
        }
        let mut batch = WriteBatch::default();
        if left.is_empty() {
            batch.delete_cf(&*self.cf(CF_META)?, state_key(task));
        } else {
            batch.put_cf(&*self.cf(CF_META)?, state_key(task), codec::encode(&left));
        }
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::time::Duration;

    use crate::cache::store::open::open_for_test;

    #[test]
    fn state_left_by_the_task_is_own_and_a_change_is_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        let store = open_for_test(&root.join("cache"), Duration::ZERO);
        let info = root.join("tsconfig.tsbuildinfo");
        let cache = root.join(".eslintcache");
        let own_of = |task: &str| -> Vec<std::path::PathBuf> {
            store
                .own_state(task, &root)
                .expect("read")
                .files
                .into_iter()
                .collect()
        };
        assert!(own_of("t").is_empty(), "nothing remembered yet");
        fs::write(&info, "{\"version\":1}").expect("write");
        fs::write(&cache, "[]").expect("write");
        let outside = tempfile::tempdir().expect("outside");
        let elsewhere = outside.path().join("state");
        fs::write(&elsewhere, "x").expect("write");
        store
            .remember_state(
                "t",
                &root,
                &[info.clone(), cache.clone(), elsewhere],
                &super::OwnState::default(),
            )
            .expect("remember");
        assert_eq!(own_of("t"), vec![cache.clone(), info.clone()]);
        // The user edits one: it is an input again. Another task has none.
        fs::write(&cache, "[\"edited\"]").expect("write");
        assert_eq!(own_of("t"), vec![info.clone()]);
        assert!(own_of("other").is_empty());
        // A run that only read its state (up to date, it rewrote nothing)
        // keeps what was its own: probe, the next rewrite was taken for a
        // modified input.
        let own = store.own_state("t", &root).expect("read");
        store
            .remember_state("t", &root, &[], &own)
            .expect("remember");
        assert_eq!(own_of("t"), vec![info.clone()]);
        // A hit may replace only what a run left that started from content
        // vp put there (or a run like it): not `info`, which existed before
        // vp and stays someone else's however many runs rewrite it.
        let own = store.own_state("t", &root).expect("read");
        assert!(own.files.contains(&info) && own.replaceable.is_empty());
        store
            .remember_state("t", &root, &[info.clone(), cache.clone()], &own)
            .expect("remember");
        let rel = |p: &std::path::Path| super::RelPath::from_abs(&root, p).expect("inside");
        assert!(store.replaceable_state("t").expect("read").is_empty());
        // From content vp put there (as a restore would), it is.
        let from_vp = super::OwnState {
            files: BTreeSet::from([info.clone()]),
            replaceable: BTreeSet::from([info.clone()]),
        };
        store
            .remember_state("t", &root, std::slice::from_ref(&info), &from_vp)
            .expect("remember");
        let replaceable = store.replaceable_state("t").expect("read");
        assert_eq!(
            replaceable[&rel(&info)].1,
            crate::cache::entry::Stamp::of(&fs::symlink_metadata(&info).expect("stat"))
        );
        // Untouched, the next run starts from replaceable content; once
        // written again, even with the same bytes, it does not.
        assert!(
            store
                .own_state("t", &root)
                .expect("read")
                .replaceable
                .contains(&info)
        );
        std::thread::sleep(Duration::from_millis(20));
        let bytes = fs::read(&info).expect("read");
        fs::remove_file(&info).expect("rm");
        fs::write(&info, bytes).expect("write");
        let own = store.own_state("t", &root).expect("read");
        assert!(own.files.contains(&info) && !own.replaceable.contains(&info));
        // A run that leaves no state, and had none of its own, forgets the
        // record.
        store
            .remember_state("t", &root, &[], &super::OwnState::default())
            .expect("remember");
        assert!(own_of("t").is_empty());
    }
}

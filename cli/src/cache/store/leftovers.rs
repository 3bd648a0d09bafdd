//! What runs that were not stored left behind.
//!
//! A stored run's outputs are in its entry, so a later hit knows them:
//! it writes over them or removes them (`superseded`). A run that failed,
//! was refused ("not cached") or was cancelled leaves outputs no entry
//! records: `next build` that fails leaves chunks of the failed build in
//! `.next`. A hit after it would restore an earlier build beside those
//! files, where a real build removes them.
//!
//! So vp remembers every output such a run left (in `meta`, one record per
//! path under `u` and the workspace root's hash: for the whole workspace,
//! since entries are shared by command, not by task, and a nested `vp run`
//! runs under its parent's task; and per workspace, since checkouts may
//! share a store). A lookup misses while one of them exists in a directory the
//! entry's run owned (made, or emptied: there a real run removes what it
//! does not make) and the entry does not make it ([`in_the_way`]): "'x'
//! was left by a run that was not stored". Elsewhere (a package root that
//! several tasks write into, `dist/` of a tool that never cleans it) a
//! real run leaves such a file too, and so does a hit. A stored run
//! forgets the ones in the directories it owned and those that are gone.

use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use super::db::{CF_META, Store};
use crate::cache::digest::{Digest, Domain};
use crate::cache::entry::CacheEntry;
use crate::cache::error::CacheError;
use crate::cache::paths::RelPath;

/// Key prefix of a leftover's record in `meta` (`e`, `b`, `o`, `p`, `t`
/// and `schema` are taken); then [`WORKSPACE_LEN`] bytes of the workspace
/// root's hash, then the path.
const META_LEFTOVER: u8 = b'u';
const WORKSPACE_LEN: usize = 8;

fn workspace_prefix(workspace_root: &Path) -> Vec<u8> {
    let root = Digest::of(
        Domain::Workspace,
        workspace_root.as_os_str().as_encoded_bytes(),
    );
    let mut k = Vec::with_capacity(1 + WORKSPACE_LEN + 64);
    k.push(META_LEFTOVER);
    k.extend_from_slice(&root.as_bytes()[..WORKSPACE_LEN]);
    k
}

fn leftover_key(workspace_root: &Path, rel: &RelPath) -> Vec<u8> {
    let mut k = workspace_prefix(workspace_root);
    k.extend_from_slice(rel.as_bytes());
    k
}

/// Whether a hit on `entry` would leave `rel`, which a run that was not
/// stored left, beside what it restores where a real run would not: `rel`
/// is below a directory the entry's run owned, and the entry does not make
/// it (as an output, or as a directory above one: a build that emptied
/// `out/` and then failed leaves `out`, which every entry makes again).
pub(super) fn in_the_way(entry: &CacheEntry, rel: &RelPath) -> bool {
    let makes = entry.outputs.contains_key(rel)
        || entry.owned_dirs.contains(rel)
        || writes_under(entry, rel);
    !makes && below_an_owned_dir(entry, rel)
}

/// Whether a directory strictly above `rel` is one `entry`'s run owned:
/// a walk up `rel`'s ancestors, not a scan of every owned directory (a
/// Next.js build owns hundreds).
fn below_an_owned_dir(entry: &CacheEntry, rel: &RelPath) -> bool {
    if rel.is_root() {
        return false;
    }
    let mut dir = rel.parent();
    loop {
        if entry.owned_dirs.contains(&dir) {
            return true;
        }
        if dir.is_root() {
            return false;
        }
        dir = dir.parent();
    }
}

/// Whether `entry` has an output below `dir`.
fn writes_under(entry: &CacheEntry, dir: &RelPath) -> bool {
    if dir.is_root() {
        return !entry.outputs.is_empty();
    }
    // The paths below `dir` sort together, from `dir/` on.
    let mut below = dir.as_bytes().to_vec();
    below.push(b'/');
    entry
        .outputs
        .range(RelPath::from_decoded(below.clone())..)
        .next()
        .is_some_and(|(o, _)| o.as_bytes().starts_with(&below))
}

impl Store {
    /// Every path runs that were not stored left, in the workspace.
    pub(crate) fn leftovers(&self, workspace_root: &Path) -> Result<Vec<RelPath>, CacheError> {
        let mut out = Vec::new();
        self.scan_meta(
            &workspace_prefix(workspace_root),
            "scan what unstored runs left",
            |path, _| {
                // A record that is not a path below the root (never
                // written: a damaged store's) cannot be in the way of a
                // restore, which checks every path it writes.
                if let Ok(rel) = RelPath::from_stored(path)
                    && !rel.is_root()
                {
                    out.push(rel);
                }
            },
        )?;
        Ok(out)
    }

    /// Remembers what a run that was not stored left (`outputs`: absolute
    /// paths, those outside the workspace skipped), and forgets the
    /// remembered paths that are gone: a tool that names a scratch file
    /// anew on every refused run must not grow the records without bound.
    pub(crate) fn remember_leftovers(
        &self,
        workspace_root: &Path,
        outputs: &[PathBuf],
    ) -> Result<(), CacheError> {
        let mut batch = WriteBatch::default();
        for rel in self.leftovers(workspace_root)? {
            if std::fs::symlink_metadata(rel.to_abs(workspace_root)).is_err() {
                batch.delete_cf(&*self.cf(CF_META)?, leftover_key(workspace_root, &rel));
            }
        }
        for rel in outputs
            .iter()
            .filter_map(|abs| RelPath::from_abs(workspace_root, abs))
            .filter(|rel| !rel.is_root())
        {
            batch.put_cf(&*self.cf(CF_META)?, leftover_key(workspace_root, &rel), []);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write(batch)
    }

    /// Adds to a stored run's batch: forget the leftovers below the
    /// directories `entry`'s run owned (it made or emptied them: what is
    /// there now it left there) and those that are gone.
    pub(super) fn forget_leftovers(
        &self,
        batch: &mut WriteBatch,
        entry: &CacheEntry,
        workspace_root: &Path,
    ) -> Result<(), CacheError> {
        for rel in self.leftovers(workspace_root)? {
            let forget = entry.outputs.contains_key(&rel)
                || below_an_owned_dir(entry, &rel)
                || std::fs::symlink_metadata(rel.to_abs(workspace_root)).is_err();
            if forget {
                batch.delete_cf(&*self.cf(CF_META)?, leftover_key(workspace_root, &rel));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;
    use crate::cache::clock::Timestamp;
    use crate::cache::entry::OutputState;
    use crate::cache::programs::Toolchain;
    use crate::cache::store::open::open_for_test;

    fn rel(s: &str) -> RelPath {
        RelPath::from_stored(s.as_bytes()).expect("valid")
    }

    /// An entry whose run owned `owned` and wrote `outputs`.
    fn entry_writing(owned: &[&str], outputs: &[&str]) -> CacheEntry {
        CacheEntry {
            inputs: BTreeMap::new(),
            glob_inputs: BTreeSet::new(),
            tracked_env: BTreeMap::new(),
            env_queries: BTreeMap::new(),
            outputs: outputs
                .iter()
                .map(|o| (rel(o), OutputState::file_of(b"x")))
                .collect(),
            owned_dirs: owned.iter().map(|d| rel(d)).collect(),
            created: BTreeSet::new(),
            looked_first: BTreeSet::new(),
            toolchain: Toolchain::default(),
            log: None,
            duration: Duration::ZERO,
            stat_time: Timestamp(0),
        }
    }

    #[test]
    fn a_leftover_is_in_the_way_below_a_directory_the_run_owned_unless_the_entry_makes_it() {
        let e = entry_writing(
            &[".next", "out"],
            &[
                ".next/static/abc/_buildManifest.js",
                "out/page.js",
                "dist/a.js",
            ],
        );
        for (leftover, in_way) in [
            (".next/static/chunks/1.css", true),
            (".next/static/failed-id", true),
            (".next/server/app/deep/page.js", true), // several levels below
            (".next/static/abc/_buildManifest.js", false), // e makes it
            (".next/static", false),                 // above an output
            (".next", false),
            ("out", false),
            ("out/chunk.js", true),
            ("out-x/chunk.js", false), // a sibling with a longer name
            ("dist/stray.js", false),  // e wrote there but did not own it
            ("build.log", false),      // nor the root
        ] {
            assert_eq!(in_the_way(&e, &rel(leftover)), in_way, "{leftover}");
        }
    }

    #[test]
    fn leftovers_are_remembered_per_workspace_and_forgotten_below_a_stored_runs_owned_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        let store = open_for_test(&root.join("cache"), Duration::ZERO);
        assert!(store.leftovers(&root).expect("read").is_empty());
        for f in ["out/chunk.js", "a/chunk.js"] {
            std::fs::create_dir_all(root.join(f).parent().expect("dir")).expect("mkdir");
            std::fs::write(root.join(f), "x").expect("write");
        }
        store
            .remember_leftovers(
                &root,
                &[
                    root.join("out/chunk.js"),
                    root.join("a/chunk.js"),
                    root.join("gone.js"),
                    "/elsewhere/b".into(),
                    root.clone(),
                ],
            )
            .expect("write");
        let shown = |s: &Store| -> Vec<String> {
            s.leftovers(&root)
                .expect("read")
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(shown(&store), ["a/chunk.js", "gone.js", "out/chunk.js"]);
        // Another checkout sharing the store has none of them.
        assert!(
            store
                .leftovers(&root.join("other"))
                .expect("read")
                .is_empty()
        );
        // The next unstored run forgets what is gone.
        store
            .remember_leftovers(&root, &[root.join("a/chunk.js")])
            .expect("write");
        assert_eq!(shown(&store), ["a/chunk.js", "out/chunk.js"]);
        // A stored run that owned `out/` forgets what is there, and what is gone.
        let mut batch = WriteBatch::default();
        store
            .forget_leftovers(
                &mut batch,
                &entry_writing(&["out"], &["out/page.js"]),
                &root,
            )
            .expect("forget");
        store.write(batch).expect("write");
        assert_eq!(shown(&store), ["a/chunk.js"]);
    }

    #[test]
    fn a_record_that_is_not_a_clean_relative_path_is_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        let store = open_for_test(&root.join("cache"), Duration::ZERO);
        // What a damaged store or another writer could hold under the
        // workspace's prefix: none of it names a path below the root.
        let mut batch = WriteBatch::default();
        for bad in [
            &b"../outside.js"[..],
            b"/etc/passwd",
            b"a/../b",
            b"a//b",
            b"",
        ] {
            let mut k = workspace_prefix(&root);
            k.extend_from_slice(bad);
            batch.put_cf(&*store.cf(CF_META).expect("cf"), k, []);
        }
        store.write(batch).expect("write");
        store
            .remember_leftovers(&root, &[root.join("out/chunk.js")])
            .expect("remembering beside damaged records");
        let read: Vec<String> = store
            .leftovers(&root)
            .expect("read")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(read, ["out/chunk.js"]);
    }
}

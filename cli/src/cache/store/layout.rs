//! The cache directory and the proof that vp made it.
//!
//! vp moves or deletes a directory only when it can prove it created it. The
//! proof is a marker file, `VP-CACHE`, that vp writes *first*, before
//! anything else goes into the directory; everything vp keeps lives beneath
//! it:
//!
//! ```text
//! <cache dir>/VP-CACHE          the marker (magic line + layout version)
//! <cache dir>/db/               the RocksDB store
//! <cache dir>/set-aside/db-<t>  a store that could not be used, kept once
//! <cache dir>/last-run.txt      `vp run --last-details`
//! <cache dir>/last-run.json     `vp run --last-details --json`
//! ```
//!
//! Heuristics such as "it holds a file named `CURRENT`" mistook user
//! directories for caches; a sibling pattern such as `<dir>.old-*` matched
//! a user's `site.old-v1/`. Neither exists any more: a directory without the
//! marker is never touched, and set-aside copies live inside the proven
//! directory.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::error::CacheError;

/// Name of the marker file.
pub(crate) const MARKER: &str = "VP-CACHE";
/// First line of the marker; what follows it is the layout version.
const MAGIC: &str = "vp-cache-dir ";
/// Version of the arrangement described above.
const LAYOUT: u32 = 1;
/// Written in the marker when the directory existed (empty) before vp used
/// it: `clean` then leaves the directory itself in place.
const ADOPTED: &str = "adopted";

const DB_DIR: &str = "db";
const SET_ASIDE_DIR: &str = "set-aside";
const SET_ASIDE_PREFIX: &str = "db-";
const LAST_RUN: &str = "last-run.txt";
const LAST_RUN_JSON: &str = "last-run.json";

/// A directory proven to be vp's cache (its marker is there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheDir {
    root: PathBuf,
    adopted: bool,
}

/// How many times `find` waits 10 ms for a marker another vp is writing.
const MARKER_WRITE_WAITS: usize = 50;

impl CacheDir {
    /// Creates `dir` (or adopts it when it exists and is empty) and writes
    /// the marker; a directory that already has the marker is simply ours.
    /// Anything else is refused.
    pub(crate) fn claim(dir: &Path) -> Result<Self, CacheError> {
        if let Some(ours) = Self::find(dir)? {
            return Ok(ours);
        }
        let created = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let parent = dir.parent().unwrap_or(dir);
                fs::create_dir_all(parent)
                    .map_err(CacheError::io("create the cache directory", parent))?;
                match fs::create_dir(dir) {
                    Ok(()) => true,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(CacheError::io("create the cache directory", dir)(e)),
                }
            }
            Err(e) => return Err(CacheError::io("create the cache directory", dir)(e)),
        };
        if !created && !is_empty(dir)? {
            // Another vp may have claimed it a moment ago.
            return Self::find(dir)?.ok_or_else(|| foreign(dir));
        }
        let mut text = format!("{MAGIC}{LAYOUT}\n");
        if !created {
            text.push_str(ADOPTED);
            text.push('\n');
        }
        text.push_str("This directory is vp's task cache; `vp cache clean` deletes it.\n");
        let marker = dir.join(MARKER);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(mut f) => f
                .write_all(text.as_bytes())
                .map_err(CacheError::io("write", &marker))?,
            // A concurrent vp wrote it first: fine if it is a valid marker.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CacheError::io("write", &marker)(e)),
        }
        Self::find(dir)?.ok_or_else(|| foreign(dir))
    }

    /// `Some` when `dir` is vp's cache, `None` when it does not exist (or
    /// is empty), an error when it exists with anything else in it.
    pub(crate) fn find(dir: &Path) -> Result<Option<Self>, CacheError> {
        let marker = dir.join(MARKER);
        // `claim` creates the marker, then writes it: a vp starting at the
        // same moment may find it empty. Wait for the text a moment before
        // calling it not vp's (and telling the user to delete a live cache).
        let mut read = fs::read_to_string(&marker);
        for _ in 0..MARKER_WRITE_WAITS {
            match &read {
                Ok(text) if text.is_empty() => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    read = fs::read_to_string(&marker);
                }
                _ => break,
            }
        }
        match read {
            Ok(text) => {
                let mut lines = text.lines();
                let layout = lines
                    .next()
                    .and_then(|l| l.strip_prefix(MAGIC))
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match layout {
                    Some(LAYOUT) => Ok(Some(Self {
                        root: dir.to_path_buf(),
                        adopted: lines.next() == Some(ADOPTED),
                    })),
                    Some(other) => Err(CacheError::OtherLayout {
                        dir: dir.to_path_buf(),
                        layout: other,
                    }),
                    None => Err(CacheError::UnreadableMarker {
                        dir: dir.to_path_buf(),
                    }),
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                match fs::metadata(dir) {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CacheError::io("read", dir)(e)),
                    Ok(m) if m.is_dir() && is_empty(dir)? => Ok(None),
                    Ok(_) => Err(foreign(dir)),
                }
            }
            Err(e) => Err(CacheError::io("read", &marker)(e)),
        }
    }

    /// Where RocksDB keeps the store.
    pub(crate) fn db(&self) -> PathBuf {
        self.root.join(DB_DIR)
    }

    /// `vp run --last-details`'s file.
    pub(crate) fn last_run(&self) -> PathBuf {
        self.root.join(LAST_RUN)
    }

    /// `vp run --last-details --json`'s file.
    pub(crate) fn last_run_json(&self) -> PathBuf {
        self.root.join(LAST_RUN_JSON)
    }

    /// Copies of unusable stores kept for inspection (at most one).
    pub(crate) fn set_aside_copies(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.root.join(SET_ASIDE_DIR)) else {
            return Vec::new();
        };
        let mut copies: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .as_encoded_bytes()
                    .starts_with(SET_ASIDE_PREFIX.as_bytes())
            })
            .map(|e| e.path())
            .collect();
        copies.sort();
        copies
    }

    /// Moves the store to `set-aside/db-<unix seconds>`, deleting earlier
    /// copies first so at most one is kept. The caller has closed the DB.
    pub(crate) fn set_aside_db(&self) -> Result<PathBuf, CacheError> {
        for old in self.set_aside_copies() {
            fs::remove_dir_all(&old).map_err(CacheError::io("delete", &old))?;
        }
        let parent = self.root.join(SET_ASIDE_DIR);
        fs::create_dir_all(&parent).map_err(CacheError::io("create", &parent))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut target = parent.join(format!("{SET_ASIDE_PREFIX}{secs}"));
        let mut n = 1;
        while target.exists() {
            target = parent.join(format!("{SET_ASIDE_PREFIX}{secs}-{n}"));
            n += 1;
        }
        let db = self.db();
        fs::rename(&db, &target).map_err(CacheError::io("move aside", &db))?;
        Ok(target)
    }

    /// Deletes what vp keeps here, marker last, then the directory itself if
    /// vp created it and nothing else is in it. Returns the bytes freed.
    /// The caller holds (or has proven free) the store's lock.
    pub(crate) fn remove(&self) -> Result<u64, CacheError> {
        let mut freed = 0;
        for sub in [DB_DIR, SET_ASIDE_DIR] {
            let path = self.root.join(sub);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    freed += dir_size(&path);
                    fs::remove_dir_all(&path).map_err(CacheError::io("delete", &path))?;
                }
                // A damaged store can be anything under vp's own name (a
                // file, a link: removed, never followed).
                Ok(meta) => {
                    freed += meta.len();
                    fs::remove_file(&path).map_err(CacheError::io("delete", &path))?;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("delete", &path)(e)),
            }
        }
        for file in [LAST_RUN, LAST_RUN_JSON, MARKER] {
            let path = self.root.join(file);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::io("delete", &path)(e)),
            }
        }
        if !self.adopted {
            // Files someone else put here stay, and so does their directory.
            let _ = fs::remove_dir(&self.root);
        }
        Ok(freed)
    }
}

fn foreign(dir: &Path) -> CacheError {
    CacheError::ForeignDir {
        dir: dir.to_path_buf(),
    }
}

fn is_empty(dir: &Path) -> Result<bool, CacheError> {
    let mut entries = fs::read_dir(dir).map_err(CacheError::io("read", dir))?;
    Ok(entries.next().is_none())
}

/// Bytes used by the files under `dir` (not following symlinks).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_a_new_directory_and_removes_only_its_own_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("deep/cache");
        let ours = CacheDir::claim(&dir).expect("claim");
        assert!(dir.join(MARKER).is_file());
        assert_eq!(CacheDir::find(&dir).expect("find"), Some(ours.clone()));
        fs::create_dir_all(ours.db()).expect("db");
        fs::write(ours.db().join("CURRENT"), "x").expect("write");
        fs::write(ours.last_run(), "x").expect("write");
        fs::write(ours.last_run_json(), "{}").expect("write");
        fs::write(dir.join("notes.txt"), "the user's").expect("write");
        ours.remove().expect("remove");
        assert!(!ours.db().exists() && !ours.last_run().exists() && !ours.last_run_json().exists());
        assert_eq!(
            fs::read_to_string(dir.join("notes.txt")).expect("kept"),
            "the user's"
        );
        fs::remove_file(dir.join("notes.txt")).expect("rm");
        let ours = CacheDir::claim(&dir).expect("adopt the now empty dir");
        ours.remove().expect("remove");
        assert!(dir.exists(), "an adopted directory is left in place");
    }

    #[test]
    fn a_user_directory_is_never_ours() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Looks like RocksDB, is not vp's: no marker.
        for name in ["CURRENT", "LOCK", "IDENTITY", "vp.pid"] {
            fs::write(tmp.path().join(name), "mine").expect("write");
        }
        let err = CacheDir::claim(tmp.path()).expect_err("refused");
        assert!(matches!(err, CacheError::ForeignDir { .. }), "{err}");
        assert!(matches!(
            CacheDir::find(tmp.path()),
            Err(CacheError::ForeignDir { .. })
        ));
        // A file, not a directory, is not a cache either.
        let file = tmp.path().join("CURRENT");
        assert!(CacheDir::claim(&file).is_err());
        assert_eq!(fs::read_to_string(&file).expect("intact"), "mine");
        // A marker with the wrong magic proves nothing, and is named as
        // what it is (not as a missing marker).
        let other = tmp.path().join("other");
        fs::create_dir(&other).expect("mkdir");
        fs::write(other.join(MARKER), "something else\n").expect("write");
        let err = CacheDir::find(&other).expect_err("refused");
        assert!(matches!(err, CacheError::UnreadableMarker { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("its `VP-CACHE` file is not a marker vp writes"),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(other.join(MARKER)).expect("intact"),
            "something else\n"
        );
    }

    /// Review: `claim` creates the marker, then writes it; a vp starting
    /// at that moment read an empty marker and said the directory was not
    /// vp's, advising to delete it.
    #[test]
    fn a_marker_being_written_is_waited_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let marker = tmp.path().join(MARKER);
        fs::write(&marker, "").expect("create it empty");
        let writer = std::thread::spawn({
            let marker = marker.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(60));
                fs::write(&marker, format!("{MAGIC}{LAYOUT}\n")).expect("write");
            }
        });
        let found = CacheDir::find(tmp.path()).expect("found once written");
        writer.join().expect("writer");
        assert!(found.is_some());
    }

    #[test]
    fn another_layout_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(MARKER), format!("{MAGIC}99\n")).expect("write");
        let err = CacheDir::find(tmp.path()).expect_err("another layout");
        assert!(matches!(err, CacheError::OtherLayout { layout: 99, .. }));
        let text = err.to_string();
        assert!(
            text.contains("made by another version of vp (directory layout 99, this vp uses 1)")
                && text.contains("hint: clean it with the vp that made it"),
            "{text}"
        );
    }

    #[test]
    fn set_aside_keeps_one_copy_inside_the_cache_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("c");
        // A user's sibling that the old `<dir>.old-*` rule would have deleted.
        let sibling = tmp.path().join("c.old-v1");
        fs::create_dir(&sibling).expect("mkdir");
        let ours = CacheDir::claim(&dir).expect("claim");
        for round in 0..3 {
            fs::create_dir_all(ours.db()).expect("db");
            fs::write(ours.db().join("round"), round.to_string()).expect("write");
            let moved = ours.set_aside_db().expect("set aside");
            assert!(moved.starts_with(dir.join(SET_ASIDE_DIR)));
            assert_eq!(ours.set_aside_copies(), vec![moved]);
        }
        ours.remove().expect("clean");
        assert!(sibling.exists(), "a sibling is not vp's");
        assert!(!dir.exists());
    }
}

//! The hit journal: the bookkeeping of hits served by a store opened
//! read-only (see `access.rs`), appended to a small file beside the
//! database and folded into it by the next read-write open. A hit only
//! records that it happened: the task's pointer to the entry it used (which
//! the next run needs: miss explanations, superseded outputs, own state),
//! and the entry's hit count and last use (eviction order). None of it may
//! make a hit wrong if lost: a lost pointer costs a less precise miss
//! explanation or an output the next restore leaves in place, a lost count
//! an earlier eviction.
//!
//! Format: records of `[u32 little-endian length][codec bytes]`, each
//! appended with one `write` to a file opened `O_APPEND`, so concurrent
//! vps never interleave within a record. Reading stops at the first record
//! that is cut short or says it is impossibly long (a crash mid-append);
//! a record that is whole but does not decode is skipped, by every reader
//! alike (loading and folding), so what a read-only store answers is what a
//! fold writes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::sync::{MutexGuard, PoisonError};

use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use super::db::{
    CF_ENTRIES, CF_META, CF_TASKS, EntryMeta, Store, TaskRecord, entry_meta_key, read_once,
};
use crate::cache::codec;
use crate::cache::entry::EntryKey;

/// The journal's file in the database directory (moved or deleted with it).
const FILE: &str = "vp-hits.journal";
/// Taken aside while a read-write open folds it in.
const FOLDING: &str = "vp-hits.journal.folding";
/// Past this size the next open folds the journal in (read-write) rather
/// than load it (every open of a read-only store decodes it): some 450
/// hits of a small task.
const FOLD_AT_BYTES: u64 = 64 << 10;
/// The largest record read back (a spawn fingerprint with a large
/// environment); anything larger is a corrupt length.
const MAX_RECORD: usize = 1 << 20;

/// One hit served without a writable store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct HitNote {
    /// First, so that it can be read alone ([`last_of_each_task`]).
    pub(super) task: String,
    pub(super) record: TaskRecord,
    pub(super) at_ms: i64,
}

fn path(db_dir: &Path) -> PathBuf {
    db_dir.join(FILE)
}

/// Whether the journal should be folded in now: it is large, or a fold was
/// interrupted.
pub(super) fn needs_folding(db_dir: &Path) -> bool {
    db_dir.join(FOLDING).exists()
        || fs::metadata(path(db_dir)).is_ok_and(|m| m.len() > FOLD_AT_BYTES)
}

/// Appends one note. Best effort for the caller: an error loses bookkeeping
/// only.
pub(super) fn append(db_dir: &Path, note: &HitNote) -> std::io::Result<()> {
    let bytes = codec::encode(note);
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut record = Vec::with_capacity(4 + bytes.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&bytes);
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(db_dir))?
        .write_all(&record)
}

/// Each record's bytes, in order, up to the first one that is cut short or
/// says it is impossibly long.
fn records(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_RECORD || len > tail.len() {
            return None;
        }
        let (record, after) = tail.split_at(len);
        rest = after;
        Some(record)
    })
}

/// The notes in `bytes` that decode, oldest first.
fn notes(bytes: &[u8]) -> Vec<HitNote> {
    records(bytes)
        .filter_map(|r| codec::decode::<HitNote>("hit journal record", r).ok())
        .collect()
}

/// The notes in `file` that decode, oldest first.
fn read_file(file: &Path) -> Vec<HitNote> {
    fs::read(file).map_or_else(|_| Vec::new(), |bytes| notes(&bytes))
}

/// The last note of each task in `file` (or every note that decodes, in
/// order, which leaves the same last ones). Only those are decoded whole.
/// A task hit 300 times has 300 notes, each with its whole spawn
/// fingerprint, and decoding all of them was about a twentieth of an
/// `echo hi` hit (docs/benchmarks.md); of the others only the task's name
/// is read (a note's first field). Should a task's last note not decode,
/// its last note that does is wanted, so the file is then decoded note by
/// note instead.
fn last_of_each_task(file: &Path) -> Vec<HitNote> {
    let Ok(bytes) = fs::read(file) else {
        return Vec::new();
    };
    let mut last: BTreeMap<String, &[u8]> = BTreeMap::new();
    for record in records(&bytes) {
        if let Ok(task) = codec::decode::<String>("hit journal record", record) {
            last.insert(task, record);
        }
    }
    last.values()
        .map(|r| codec::decode::<HitNote>("hit journal record", r))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|_| notes(&bytes))
}

/// The latest pointer of each task the journal names, with the time of
/// that hit: what a read-only store answers for `task_record` unless the
/// database holds a newer one.
pub(super) fn latest_records(db_dir: &Path) -> Journaled {
    let mut latest = BTreeMap::new();
    // A fold taken aside holds older notes than the current journal.
    for name in [FOLDING, FILE] {
        for note in last_of_each_task(&db_dir.join(name)) {
            latest.insert(note.task, (note.record, note.at_ms));
        }
    }
    latest
}

/// Takes notes aside for folding: those of an interrupted fold if there
/// are any (the current journal waits for the next fold then), else the
/// current journal's, whose file is renamed so later appends go to a new
/// one. Call [`folded`] once the notes are written to the database.
pub(super) fn take(db_dir: &Path) -> Vec<HitNote> {
    let folding = db_dir.join(FOLDING);
    if folding.exists() {
        return read_file(&folding);
    }
    // A vp that opened the journal just before this rename appends to the
    // renamed file; if that lands after the read below, the note is lost
    // with it, which costs bookkeeping only.
    if fs::rename(path(db_dir), &folding).is_err() {
        return Vec::new();
    }
    read_file(&folding)
}

/// The notes taken by [`take`] are in the database: forget them.
pub(super) fn folded(db_dir: &Path) {
    let _ = fs::remove_file(db_dir.join(FOLDING));
}

/// A task's latest journaled pointer and when that hit was.
pub(super) type Journaled = BTreeMap<String, (TaskRecord, i64)>;

impl Store {
    /// Reads the hit journal of a store opened read-only.
    pub(super) fn load_journal(&self) {
        *self.journaled_records() = latest_records(&self.home.db());
    }

    pub(super) fn journaled_records(&self) -> MutexGuard<'_, Journaled> {
        self.journaled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a hit in the journal instead of the database (see
    /// `journal.rs`); its pointer is answered from memory meanwhile.
    pub(super) fn journal_hit(&self, task: &str, record: TaskRecord, at_ms: i64) {
        let note = HitNote {
            task: task.to_owned(),
            record,
            at_ms,
        };
        // Best effort: a lost note costs bookkeeping only.
        let _ = append(&self.home.db(), &note);
        self.journaled_records()
            .insert(note.task, (note.record, note.at_ms));
    }

    /// Folds the hit journal into a freshly opened writable instance, before
    /// anything else writes through it: each hit's count and last use, and
    /// each task's latest pointer unless the database holds a newer one (a
    /// run stored or hit since). Best effort (bookkeeping only); the notes
    /// stay on disk if the write fails, and a crash between the write and
    /// the removal counts those hits twice.
    pub(super) fn fold_journal(&self, db: &DB) {
        let db_dir = self.home.db();
        let notes = take(&db_dir);
        if notes.is_empty() {
            // A fold taken aside that holds nothing that decodes (an empty
            // journal renamed, a torn one) is done with: left in place, it
            // would send every later open down the read-write path.
            folded(&db_dir);
            return;
        }
        let (Some(meta_cf), Some(tasks_cf), Some(entries_cf)) = (
            db.cf_handle(CF_META),
            db.cf_handle(CF_TASKS),
            db.cf_handle(CF_ENTRIES),
        ) else {
            return;
        };
        let stored_meta = |key: EntryKey| {
            db.get_cf(meta_cf, entry_meta_key(key))
                .ok()
                .flatten()
                .and_then(|b| codec::decode::<EntryMeta>("entry metadata", &b).ok())
        };
        let mut metas: BTreeMap<EntryKey, EntryMeta> = BTreeMap::new();
        let mut pointers: BTreeMap<&str, (&TaskRecord, i64)> = BTreeMap::new();
        for note in &notes {
            let key = note.record.entry;
            // An entry pruned since gets nothing: writing its metadata or a
            // pointer to it would resurrect part of it.
            if !matches!(
                db.get_pinned_cf_opt(entries_cf, key.to_bytes(), &read_once()),
                Ok(Some(_))
            ) {
                continue;
            }
            let meta = match metas.get_mut(&key) {
                Some(m) => m,
                None => {
                    let Some(stored) = stored_meta(key) else {
                        continue;
                    };
                    metas.entry(key).or_insert(stored)
                }
            };
            meta.hits += 1;
            meta.last_used_ms = meta.last_used_ms.max(note.at_ms);
            pointers.insert(&note.task, (&note.record, note.at_ms));
        }
        let mut batch = WriteBatch::default();
        for (task, (record, at_ms)) in pointers {
            let current = db
                .get_cf(tasks_cf, task.as_bytes())
                .ok()
                .flatten()
                .and_then(|b| codec::decode::<TaskRecord>("task record", &b).ok());
            let newer_in_db = current.is_some_and(|c| {
                c.entry != record.entry
                    && stored_meta(c.entry).is_some_and(|m| m.last_used_ms > at_ms)
            });
            if !newer_in_db {
                batch.put_cf(tasks_cf, task.as_bytes(), codec::encode(record));
            }
        }
        for (key, meta) in &metas {
            batch.put_cf(meta_cf, entry_meta_key(*key), codec::encode(meta));
        }
        if db.write(batch).is_ok() {
            folded(&db_dir);
            // What is left is the current journal, when this fold took
            // aside an interrupted one: its notes still answer first.
            *self.journaled_records() = latest_records(&db_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::digest::Digest;
    use crate::cache::entry::EntryKey;
    use crate::cache::fingerprint::{GlobConfig, SpawnFingerprint, SpawnSpec};

    fn note(task: &str, n: u8) -> HitNote {
        let root = Path::new("/ws");
        let spawn = SpawnFingerprint::new(SpawnSpec {
            workspace_root: root,
            package_dir: root,
            cwd: root,
            program: Path::new("/usr/bin/env"),
            args: &[task.into()],
            declared_env: &[],
            untracked_env: &[],
            inputs: GlobConfig::auto(),
            outputs: GlobConfig::auto(),
        });
        HitNote {
            task: task.to_owned(),
            record: TaskRecord {
                entry: EntryKey {
                    spawn: Digest::of_content(&[n]),
                    variant: Digest::of_content(&[n, n]),
                },
                spawn,
            },
            at_ms: i64::from(n),
        }
    }

    #[test]
    fn notes_read_back_in_order_and_the_latest_pointer_wins() {
        let tmp = tempfile::tempdir().expect("tempdir");
        append(tmp.path(), &note("a", 1)).expect("append");
        append(tmp.path(), &note("b", 2)).expect("append");
        append(tmp.path(), &note("a", 3)).expect("append");
        let latest = latest_records(tmp.path());
        assert_eq!(latest.len(), 2);
        assert_eq!(latest["a"].0.entry, note("a", 3).record.entry);
        assert_eq!(latest["a"].1, 3);
        assert_eq!(latest["b"].0.entry, note("b", 2).record.entry);
        let taken = take(tmp.path());
        assert_eq!(
            taken.iter().map(|n| n.at_ms).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // Taken but not folded (the write failed, or vp died): still
        // answered, and taken again before anything newer.
        append(tmp.path(), &note("c", 4)).expect("append");
        assert_eq!(latest_records(tmp.path()).len(), 3);
        assert!(needs_folding(tmp.path()));
        assert_eq!(take(tmp.path()).len(), 3);
        folded(tmp.path());
        assert!(!needs_folding(tmp.path()));
        assert_eq!(
            take(tmp.path()).iter().map(|n| n.at_ms).collect::<Vec<_>>(),
            vec![4]
        );
        folded(tmp.path());
        assert!(latest_records(tmp.path()).is_empty());
        assert!(take(tmp.path()).is_empty());
    }

    #[test]
    fn a_torn_tail_or_an_impossible_length_keeps_the_notes_before_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        append(tmp.path(), &note("a", 1)).expect("append");
        append(tmp.path(), &note("b", 2)).expect("append");
        let file = path(tmp.path());
        let whole = fs::read(&file).expect("read");
        // Cut in the middle of the second record.
        fs::write(&file, &whole[..whole.len() - 3]).expect("write");
        assert_eq!(read_file(&file).len(), 1);
        // The first record whole, then a huge length and garbage.
        let first = 4 + u32::from_le_bytes(whole[..4].try_into().expect("4 bytes")) as usize;
        let mut bad = whole[..first].to_vec();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(b"garbage");
        fs::write(&file, &bad).expect("write");
        assert_eq!(read_file(&file).len(), 1);
        fs::write(&file, b"\x03\x00\x00\x00abc").expect("write");
        assert!(read_file(&file).is_empty());
    }

    /// The latest pointers as reading every note in order gives them.
    fn latest_note_by_note(db_dir: &Path) -> Vec<(String, EntryKey, i64)> {
        let mut latest = BTreeMap::new();
        for name in [FOLDING, FILE] {
            for n in read_file(&db_dir.join(name)) {
                latest.insert(n.task, (n.record.entry, n.at_ms));
            }
        }
        latest.into_iter().map(|(t, (e, at))| (t, e, at)).collect()
    }

    /// `latest_records` answers as reading every note does, and that is
    /// each task's note at time `want`.
    fn answers_as_note_by_note(db_dir: &Path, want: &[(&str, i64)]) {
        let by_note = latest_note_by_note(db_dir);
        let tasks_and_times: Vec<_> = by_note.iter().map(|(t, _, at)| (t.as_str(), *at)).collect();
        assert_eq!(tasks_and_times, want);
        assert_eq!(latest(db_dir), by_note);
    }

    fn latest(db_dir: &Path) -> Vec<(String, EntryKey, i64)> {
        latest_records(db_dir)
            .into_iter()
            .map(|(t, (r, at))| (t, r.entry, at))
            .collect()
    }

    /// Notes in a file as `(task, n)`, each framed as `append` frames it.
    fn framed(notes: &[(&str, u8)]) -> (Vec<u8>, Vec<usize>) {
        let (mut bytes, mut starts) = (Vec::new(), Vec::new());
        for &(task, n) in notes {
            starts.push(bytes.len());
            let body = codec::encode(&note(task, n));
            bytes.extend_from_slice(&u32::try_from(body.len()).expect("small").to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        (bytes, starts)
    }

    /// Spoils the body of the record at `start` after its 2-byte task name
    /// (length 1, one letter): 0xff is no valid length for what follows.
    fn spoil_body(bytes: &mut [u8], start: usize) {
        let len = u32::from_le_bytes(bytes[start..start + 4].try_into().expect("4")) as usize;
        for b in &mut bytes[start + 4 + 2..start + 4 + len] {
            *b = 0xff;
        }
    }

    /// Decoding only each task's last note answers as decoding them all,
    /// and as a fold reads them: across a fold taken aside and the current
    /// journal, and with damage anywhere (a task's last note, or an earlier
    /// one, whose name reads but whose body does not; a name that does not
    /// decode; a torn tail).
    #[test]
    fn the_last_note_of_each_task_answers_as_reading_every_note() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (task, n) in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("a", 6)] {
            append(tmp.path(), &note(task, n)).expect("append");
        }
        answers_as_note_by_note(tmp.path(), &[("a", 6), ("b", 5), ("c", 4)]);

        // Taken aside for a fold, then newer notes: the newer win.
        assert_eq!(take(tmp.path()).len(), 6);
        append(tmp.path(), &note("b", 7)).expect("append");
        append(tmp.path(), &note("d", 8)).expect("append");
        answers_as_note_by_note(tmp.path(), &[("a", 6), ("b", 7), ("c", 4), ("d", 8)]);
        folded(tmp.path());

        let file = path(tmp.path());
        let notes = [("a", 1), ("b", 2), ("c", 3), ("a", 4), ("b", 5)];
        // "a"'s last note keeps its name but loses its body: "a" answers
        // its last note that decodes, the others are untouched.
        let (mut bytes, starts) = framed(&notes);
        spoil_body(&mut bytes, starts[3]);
        fs::write(&file, &bytes).expect("write");
        answers_as_note_by_note(tmp.path(), &[("a", 1), ("b", 5), ("c", 3)]);
        // The same damage in a note that is not its task's last: skipped.
        let (mut bytes, starts) = framed(&notes);
        spoil_body(&mut bytes, starts[1]);
        fs::write(&file, &bytes).expect("write");
        answers_as_note_by_note(tmp.path(), &[("a", 4), ("b", 5), ("c", 3)]);
        // A name that does not decode (not UTF-8): that note is skipped.
        let (mut bytes, starts) = framed(&notes);
        bytes[starts[4] + 4 + 1] = 0xff;
        fs::write(&file, &bytes).expect("write");
        answers_as_note_by_note(tmp.path(), &[("a", 4), ("b", 2), ("c", 3)]);
        // A fold writes the same pointers: it reads the notes that decode.
        let taken: Vec<_> = take(tmp.path()).into_iter().map(|n| n.at_ms).collect();
        assert_eq!(taken, vec![1, 2, 3, 4]);
        folded(tmp.path());

        // A torn tail: the notes before it.
        let (bytes, _) = framed(&[("a", 1), ("a", 2)]);
        fs::write(&file, &bytes[..bytes.len() - 5]).expect("write");
        answers_as_note_by_note(tmp.path(), &[("a", 1)]);
    }

    #[test]
    fn a_large_journal_asks_for_folding() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(!needs_folding(tmp.path()));
        let mut n = 0u8;
        while fs::metadata(path(tmp.path())).map_or(0, |m| m.len()) <= FOLD_AT_BYTES {
            append(tmp.path(), &note("t", n)).expect("append");
            n = n.wrapping_add(1);
        }
        assert!(needs_folding(tmp.path()));
    }
}

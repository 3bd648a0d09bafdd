//! Finding a valid entry for a command about to run. The spawn key selects
//! the candidate entries (newest first); each is validated by stat, hashing
//! only what stat cannot vouch for, with env re-evaluated against the full
//! environment. On a miss, the task's previous entry is compared field by
//! field and file by file so the user sees every difference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use super::db::{CF_ENTRIES, CF_META, CF_TASKS, EntryMeta, Store, TaskRecord, entry_meta_key};
use super::in_place::{InPlace, in_place};
use crate::cache::clock::Timestamp;
use crate::cache::codec;
use crate::cache::collect::{Scope, TaskPaths};
use crate::cache::digest::Digest;
use crate::cache::entry::{CacheEntry, EntryKey, InputState, OutputState, Stamp};
use crate::cache::env::EnvView;
use crate::cache::error::CacheError;
use crate::cache::file_state::{Change, Check, FsView, StatMode};
use crate::cache::fingerprint::{SpawnFingerprint, diff_maps};
use crate::cache::miss::{MissReason, MissReasons};
use crate::cache::paths::RelPath;

pub(crate) struct LookupRequest<'a> {
    pub(crate) task: &'a str,
    pub(crate) spawn: &'a SpawnFingerprint,
    pub(crate) paths: TaskPaths<'a>,
    pub(crate) env: &'a EnvView<'a>,
    /// The task's `PATH`, to check the programs its entries recorded.
    pub(crate) path_var: Option<&'a std::ffi::OsStr>,
}

#[derive(Debug)]
pub(crate) enum LookupOutcome {
    /// Boxed: an entry is large next to a list of reasons.
    Hit(Box<CacheHit>),
    Miss(MissReasons),
}

#[derive(Debug)]
pub(crate) struct CacheHit {
    pub(crate) entry: CacheEntry,
    /// Outputs the task's previous run created, inside directories this
    /// entry owns, that this entry neither has nor read: the previous run
    /// left them, this run would not have. Restore removes each one still
    /// exactly as recorded, so nothing the task did not create (and nobody
    /// changed since) is ever removed.
    pub(crate) superseded: Vec<(RelPath, OutputState)>,
    /// Outputs the lookup found in place with the stored content (see
    /// `in_place`): restoring them needs no second hash.
    pub(crate) in_place: BTreeSet<RelPath>,
}

impl CacheHit {
    /// How long the original run took: the time this hit saved.
    pub(crate) fn saved(&self) -> std::time::Duration {
        self.entry.duration
    }

    /// Whether restoring it would change what is on disk under `root`: an
    /// output missing or holding other content (a hit on an older entry,
    /// `rm -rf dist`), or a file of the previous run that it removes as
    /// superseded. A dry run counts such a hit as writing before the
    /// commands after it. Stops at the first difference.
    pub(crate) fn restore_changes(&self, root: &Path) -> bool {
        let mut abs = PathBuf::new();
        let rewrites = self.entry.outputs.iter().any(|(rel, state)| {
            if self.in_place.contains(rel) {
                return false;
            }
            rel.to_abs_in(root, &mut abs);
            in_place(&abs, state, None, None) != InPlace::Same
        });
        rewrites
            || self.superseded.iter().any(|(rel, state)| {
                !matches!(state, OutputState::Dir { .. })
                    && crate::cache::restore::left_as_recorded(root, rel, state)
            })
    }
}

/// Stop at the first difference (checking candidates) or find them all
/// (explaining a miss).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    FirstDifference,
    Every,
}

/// Whether a hit is written back (a real run) or only reported (a dry run).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marking {
    Mark,
    Peek,
}

/// Per-lookup state shared by every candidate: the file-system memo and the
/// files the explicit input globs match now (walked once, lazily).
struct Validator<'a> {
    store: &'a Store,
    req: &'a LookupRequest<'a>,
    fs: FsView,
    glob_files: Option<Option<BTreeSet<RelPath>>>,
    /// Whether a candidate had its inputs stat'ed ahead. Only the first
    /// does: the answers go to its checks, not into the memo, and stat'ing
    /// every input again for each later candidate (and for the miss
    /// explanation) would multiply the cost of a lookup with many variants.
    /// Later candidates stat as they check, and stop at the first difference.
    stated_ahead: bool,
    /// What vp and the task left in place: the outputs of the task's last
    /// used entry, and its state files as its last traced run left them
    /// (loaded once, for the first output that is not the candidate's own).
    left: Option<Left>,
    /// What runs that were not stored left (`store::leftovers`), read
    /// once per lookup.
    unstored: Vec<RelPath>,
    /// What a hit on the candidate stored under the key would remove as
    /// superseded (`CacheHit::superseded`), once a listing of it gained
    /// names; the hit reuses it.
    superseded: Option<(EntryKey, Vec<(RelPath, OutputState)>)>,
}

struct Verdict {
    reasons: Vec<MissReason>,
    restamped: Vec<(RelPath, crate::cache::entry::Stamp)>,
    /// Outputs already in place with the stored content: restore need not
    /// hash them again.
    in_place: BTreeSet<RelPath>,
}

/// Whether a hit on `entry` brings `path` back as the run left it: it is
/// an output, or a directory the run owned (created, or emptied of what
/// was there), which holds its outputs and nothing else that counts. A
/// directory that only has outputs written into it (`src/beta/` with a
/// generated `meta.json` beside the sources) is not: the sources are not
/// restored.
fn restores(entry: &CacheEntry, path: &RelPath) -> bool {
    entry.outputs.contains_key(path) || entry.owned_dirs.contains(path)
}

/// Whether a hit on `entry` brings back the directory `path`, recorded as
/// `recorded`, with every name in it.
fn restores_listing(entry: &CacheEntry, path: &RelPath, recorded: &InputState) -> bool {
    match recorded {
        InputState::Dir { names, .. } => {
            restores(entry, path) && names.iter().all(|name| restores(entry, &path.join(name)))
        }
        _ => false,
    }
}

/// Whether a hit removes `path` as superseded (`CacheHit::superseded`): a
/// file or symlink the task's previous run made in a directory the hit's
/// run owned, which the hit does not have, still exactly as that run left
/// it. A listing that gained only such names is the recorded one once the
/// hit is restored: going back to an earlier build of a tool that empties
/// and lists its output directory and names its files by content hash
/// (webpack's or tsup's `clean`). A directory is not counted: the hit
/// removes it only if nothing else is left inside.
/// `superseded` is sorted by path ([`Validator::superseded_of`]).
fn removed_as_superseded(
    superseded: &[(RelPath, OutputState)],
    root: &Path,
    path: &RelPath,
) -> bool {
    let Ok(at) = superseded.binary_search_by(|(rel, _)| rel.cmp(path)) else {
        return false;
    };
    let (rel, state) = &superseded[at];
    !matches!(state, OutputState::Dir { .. })
        && crate::cache::restore::left_as_recorded(root, rel, state)
}

impl Validator<'_> {
    /// Whether a name a listing lost is a directory another task's stored
    /// run owns: `tsc -b` lists the package root, and `vite build`, the next
    /// item of the same script, creates `dist/` there; `rm -rf dist` then
    /// takes a name from that listing that the other item's hit brings
    /// back. Whatever this task read inside that directory is an input of
    /// its own and still counts. A name *gained* is never excused this way:
    /// what the task would read inside a directory it did not see is
    /// unknown (`prettier --check .` reads a new `dist/`, `tsc` a generator's
    /// new `src/models/`).
    fn other_tasks_output_dir(&self, dir: &RelPath, name: &[u8]) -> bool {
        self.store
            .output_dir_owner(&dir.join(name))
            .is_some_and(|owner| owner != self.req.task.as_bytes())
    }

    fn glob_files(&mut self) -> Option<&BTreeSet<RelPath>> {
        let req = self.req;
        self.glob_files
            .get_or_insert_with(|| {
                Scope::new(req.paths, &req.spawn.inputs, &[])
                    .ok()
                    .and_then(|scope| scope.glob_files().ok())
            })
            .as_ref()
    }

    /// See `superseded`. Unreadable counts as nothing superseded: a miss,
    /// never a wrong hit.
    fn superseded_of(&mut self, key: EntryKey, entry: &CacheEntry) -> &[(RelPath, OutputState)] {
        if self.superseded.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut found = self
                .store
                .superseded_outputs(self.req.task, key, entry)
                .unwrap_or_default();
            found.sort_by(|(a, _), (b, _)| a.cmp(b));
            self.superseded = Some((key, found));
        }
        self.superseded.as_ref().map_or(&[], |(_, s)| s.as_slice())
    }

    /// Checks `entry` against the workspace now. `key` is where it is
    /// stored, when it is a candidate for a hit (not an entry only
    /// explained).
    fn validate(&mut self, key: Option<EntryKey>, entry: &CacheEntry, mode: Mode) -> Verdict {
        let mut v = Verdict {
            reasons: Vec::new(),
            restamped: Vec::new(),
            in_place: BTreeSet::new(),
        };
        let done = |v: &Verdict| mode == Mode::FirstDifference && !v.reasons.is_empty();

        // Env first: no I/O.
        for (name, recorded) in &entry.tracked_env {
            let now = self.req.env.tracked(name).unwrap_or(None);
            let shown = || String::from_utf8_lossy(name).into_owned();
            match (recorded, now) {
                (None, Some(_)) => v.reasons.push(MissReason::EnvAdded(shown())),
                (Some(_), None) => v.reasons.push(MissReason::EnvRemoved(shown())),
                (Some(a), Some(b)) if *a != b => v.reasons.push(MissReason::EnvChanged(shown())),
                _ => {}
            }
        }
        for (query, recorded) in &entry.env_queries {
            match self.req.env.query(query) {
                Ok(now) => diff_maps(recorded, &now, &mut v.reasons),
                Err(_) => v.reasons.push(MissReason::EnvQueryUnreadable(
                    String::from_utf8_lossy(query.pattern()).into_owned(),
                )),
            }
        }
        if done(&v) {
            return v;
        }
        v.reasons.extend(
            entry
                .toolchain
                .changed(self.req.path_var)
                .into_iter()
                .map(MissReason::ToolChanged),
        );
        if done(&v) {
            return v;
        }

        if !entry.glob_inputs.is_empty() || !self.req.spawn.inputs.globs.is_empty() {
            match self.glob_files() {
                Some(now) => {
                    let added = now.iter().filter(|p| {
                        !entry.glob_inputs.contains(*p) && !entry.outputs.contains_key(*p)
                    });
                    v.reasons
                        .extend(added.map(|p| MissReason::Added(p.clone())));
                }
                None => v.reasons.push(MissReason::InputConfigChanged),
            }
            if done(&v) {
                return v;
            }
        }

        let root = self.req.paths.workspace_root;
        // In the order of `entry.inputs`, as the loop below takes them.
        let mut ahead = if self.stated_ahead {
            Vec::new()
        } else {
            let inputs: Vec<(&RelPath, StatMode)> = entry
                .inputs
                .iter()
                .map(|(rel, recorded)| (rel, StatMode::of(recorded)))
                .collect();
            FsView::stat_ahead(root, &inputs)
        }
        .into_iter();
        self.stated_ahead = true;
        // One buffer for every input's absolute path: a hit of 50,000
        // inputs would otherwise allocate 50,000.
        let mut abs = PathBuf::new();
        for (rel, recorded) in &entry.inputs {
            rel.to_abs_in(root, &mut abs);
            match self
                .fs
                .check_after(&abs, recorded, entry.stat_time, ahead.next())
            {
                Check::Same => {}
                Check::SameRestamped(stamp) => v.restamped.push((rel.clone(), stamp)),
                Check::Changed(Change::Entries {
                    mut added,
                    mut removed,
                }) => {
                    if let Some(key) = key
                        && !added.is_empty()
                    {
                        let superseded = self.superseded_of(key, entry);
                        added.retain(|name| {
                            !removed_as_superseded(superseded, root, &rel.join(name))
                        });
                    }
                    // A name the hit restores (an output, or a directory
                    // the run owned) is back once it has: `rm -rf dist` in
                    // a package a task lists, a generated barrel deleted.
                    removed.retain(|name| {
                        !restores(entry, &rel.join(name)) && !self.other_tasks_output_dir(rel, name)
                    });
                    if added.is_empty() && removed.is_empty() {
                        continue;
                    }
                    Change::Entries { added, removed }.into_reasons(rel, &mut v.reasons);
                    if done(&v) {
                        return v;
                    }
                }
                // A listed directory that is gone, all of whose names the
                // hit restores: once it has, the listing is the recorded one.
                Check::Changed(Change::Removed) if restores_listing(entry, rel, recorded) => {}
                Check::Changed(change) => {
                    change.into_reasons(rel, &mut v.reasons);
                    if done(&v) {
                        return v;
                    }
                }
            }
        }
        // Outputs the task looked at before making them: a hit writes one
        // only over nothing, its own content, or what vp left (`in_place`).
        for rel in &entry.looked_first {
            let Some(stored) = entry.outputs.get(rel) else {
                continue;
            };
            rel.to_abs_in(root, &mut abs);
            let (left, state) = self.left_at(rel);
            match in_place(&abs, stored, left, state) {
                InPlace::Same => {
                    v.in_place.insert(rel.clone());
                }
                InPlace::Absent | InPlace::LeftByVp => {}
                InPlace::Other => {
                    v.reasons.push(MissReason::OutputChanged(rel.clone()));
                    if done(&v) {
                        return v;
                    }
                }
            }
        }
        // What a run that was not stored left (`store::leftovers`): a hit
        // would leave it beside what it restores, unless it makes it.
        for rel in &self.unstored {
            if !super::leftovers::in_the_way(entry, rel) {
                continue;
            }
            rel.to_abs_in(root, &mut abs);
            if std::fs::symlink_metadata(&abs).is_ok() {
                v.reasons.push(MissReason::LeftByUnstoredRun(rel.clone()));
                if done(&v) {
                    return v;
                }
            }
        }
        v
    }

    /// What the task's last used entry (stored or hit) recorded at `rel`,
    /// and, for one of its state files, what its last traced run (failed
    /// too) left there, when a hit may replace that (`store::state`). Read
    /// once per lookup, when first needed.
    fn left_at(&mut self, rel: &RelPath) -> (Option<&OutputState>, Option<(&Digest, &Stamp)>) {
        let (store, task) = (self.store, self.req.task);
        // Unreadable counts as nothing left there: a miss, never a wrong hit.
        let left = self.left.get_or_insert_with(|| Left {
            restored: store.last_used_outputs(task).unwrap_or_default(),
            state: store.replaceable_state(task).unwrap_or_default(),
        });
        let state = left.state.get(rel).map(|(content, stamp)| (content, stamp));
        (left.restored.get(rel), state)
    }
}

/// What the task itself left in place before this lookup (see
/// `Validator::left_at`).
struct Left {
    restored: BTreeMap<RelPath, OutputState>,
    state: BTreeMap<RelPath, (Digest, Stamp)>,
}

impl Store {
    /// Looks for a valid entry. Blocking (stats, maybe hashes, reads). A
    /// hit is marked: its hit count and last use (LRU), the task's pointer
    /// to it, and its refreshed stat stamps are written.
    pub(crate) fn lookup(&self, req: &LookupRequest<'_>) -> Result<LookupOutcome, CacheError> {
        self.find(req, Marking::Mark)
    }

    /// The same lookup, writing nothing (a dry run, on a store opened
    /// read-only): the same candidates, miss reasons and superseded
    /// outputs (read from the store), but a hit is not marked.
    pub(crate) fn peek(&self, req: &LookupRequest<'_>) -> Result<LookupOutcome, CacheError> {
        self.find(req, Marking::Peek)
    }

    fn find(&self, req: &LookupRequest<'_>, marking: Marking) -> Result<LookupOutcome, CacheError> {
        let lookup_start = Timestamp::now_coarse();
        let spawn_key = req.spawn.key();
        let mut candidates = self.variants(&spawn_key)?;
        candidates.sort_by_key(|(_, m)| std::cmp::Reverse(m.map_or(0, |m| m.last_used_ms)));
        let mut validator = Validator {
            store: self,
            req,
            fs: FsView::default(),
            glob_files: None,
            stated_ahead: false,
            left: None,
            unstored: self.leftovers(req.paths.workspace_root)?,
            superseded: None,
        };
        let mut newest: Option<CacheEntry> = None;
        for (key, meta) in candidates {
            let Some(entry) = self.entry(key)? else {
                continue;
            };
            let verdict = validator.validate(Some(key), &entry, Mode::FirstDifference);
            if verdict.reasons.is_empty() {
                let superseded = match validator.superseded.take() {
                    Some((k, superseded)) if k == key => superseded,
                    _ => self.superseded_outputs(req.task, key, &entry)?,
                };
                if marking == Marking::Peek {
                    return Ok(LookupOutcome::Hit(Box::new(CacheHit {
                        entry,
                        superseded,
                        in_place: verdict.in_place,
                    })));
                }
                let entry =
                    self.mark_hit(req, key, meta, entry, verdict.restamped, lookup_start)?;
                return Ok(LookupOutcome::Hit(Box::new(CacheHit {
                    entry,
                    superseded,
                    in_place: verdict.in_place,
                })));
            }
            newest.get_or_insert(entry);
        }
        let reasons = self.explain_miss(req, &mut validator, newest)?;
        Ok(LookupOutcome::Miss(MissReasons::new(reasons)))
    }

    /// See `CacheHit::superseded`. Read before `mark_hit` moves the task's
    /// pointer to the hit entry.
    fn superseded_outputs(
        &self,
        task: &str,
        key: EntryKey,
        hit: &CacheEntry,
    ) -> Result<Vec<(RelPath, OutputState)>, CacheError> {
        if hit.owned_dirs.is_empty() {
            return Ok(Vec::new());
        }
        let previous = match self.task_record(task)? {
            Some(record) if record.entry != key => self.entry(record.entry)?,
            _ => None,
        };
        let Some(previous) = previous else {
            return Ok(Vec::new());
        };
        let owned = |rel: &RelPath| {
            hit.owned_dirs
                .iter()
                .any(|dir| rel.is_within(dir) && rel != dir)
        };
        // Paths the hit needs: its outputs and inputs, and every directory
        // above them.
        let mut needed: BTreeSet<RelPath> = BTreeSet::new();
        for rel in hit.outputs.keys().chain(hit.inputs.keys()) {
            let mut p = rel.clone();
            while !p.is_root() && needed.insert(p.clone()) {
                p = p.parent();
            }
        }
        let mut out: Vec<(RelPath, OutputState)> = Vec::new();
        let mut dirs: BTreeSet<RelPath> = BTreeSet::new();
        for (rel, state) in &previous.outputs {
            if !owned(rel) || needed.contains(rel) {
                continue;
            }
            // Only what the previous run created; a directory is removed
            // only once empty, whoever made it.
            let is_dir = matches!(state, OutputState::Dir { .. });
            if !is_dir && !previous.created.contains(rel) {
                continue;
            }
            out.push((rel.clone(), state.clone()));
            // The directories the previous run implied below an owned one.
            let mut p = rel.parent();
            while !p.is_root() && owned(&p) && !needed.contains(&p) {
                dirs.insert(p.clone());
                p = p.parent();
            }
        }
        for dir in dirs {
            if !previous.outputs.contains_key(&dir) {
                out.push((dir, OutputState::Dir { mode: 0 }));
            }
        }
        Ok(out)
    }

    fn explain_miss(
        &self,
        req: &LookupRequest<'_>,
        validator: &mut Validator<'_>,
        newest_same_key: Option<CacheEntry>,
    ) -> Result<Vec<MissReason>, CacheError> {
        let mut reasons = Vec::new();
        let previous = match self.task_record(req.task)? {
            Some(TaskRecord { entry, spawn }) => {
                reasons.extend(req.spawn.diff(&spawn));
                // Same command: compare against its newest entry; otherwise
                // against the entry the task used last time.
                if entry.spawn == req.spawn.key() {
                    newest_same_key.or(self.entry(entry)?)
                } else {
                    self.entry(entry)?
                }
            }
            // Another task with the identical command may have stored it.
            None if newest_same_key.is_some() => newest_same_key,
            None => return Ok(vec![MissReason::NoPreviousRun]),
        };
        if let Some(entry) = previous {
            reasons.extend(validator.validate(None, &entry, Mode::Every).reasons);
        }
        if reasons.is_empty() {
            reasons.push(MissReason::PreviousRunEvicted);
        }
        Ok(reasons)
    }

    /// Hit bookkeeping in one batch: hit count and last use (LRU), the task's
    /// pointer, and refreshed stat stamps so the next lookup hashes nothing.
    /// On a store still read-only, a hit with no stamps to refresh goes to
    /// the hit journal instead (`journal.rs`).
    fn mark_hit(
        &self,
        req: &LookupRequest<'_>,
        key: EntryKey,
        meta: Option<EntryMeta>,
        mut entry: CacheEntry,
        restamped: Vec<(RelPath, crate::cache::entry::Stamp)>,
        lookup_start: Timestamp,
    ) -> Result<CacheEntry, CacheError> {
        let _gc = self
            .gc
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Timestamp::now_coarse().as_millis();
        let record = TaskRecord {
            entry: key,
            spawn: req.spawn.clone(),
        };
        // A store still read-only stays so for a hit that only counts, and
        // for one whose stamps cannot be refreshed because another vp holds
        // the lock: the next lookup hashes those files again. A hit does not
        // wait for that lock: refreshed stamps only save later hashing.
        if !self.is_writable() && (restamped.is_empty() || self.writer_now().is_err()) {
            self.journal_hit(req.task, record, now);
            return Ok(entry);
        }
        // Read through the writable instance: the entry may have been
        // pruned since the read-only view was taken.
        if self
            .get_once(CF_ENTRIES, &key.to_bytes(), |_| ())?
            .is_none()
        {
            // Pruned since it was read: writing it back could resurrect an
            // entry whose blobs are gone. Restoring will fail and the runner
            // executes the task instead.
            return Ok(entry);
        }
        // The same for its counts (and the journal folded in on opening).
        let meta = self.entry_meta(key)?.or(meta);
        let mut batch = WriteBatch::default();
        let mut meta = meta.unwrap_or(EntryMeta {
            created_ms: now,
            last_used_ms: now,
            hits: 0,
            size: 0,
        });
        meta.hits += 1;
        meta.last_used_ms = now;
        if !restamped.is_empty() {
            for (rel, stamp) in restamped {
                if let Some(InputState::File { stamp: s, .. } | InputState::Dir { stamp: s, .. }) =
                    entry.inputs.get_mut(&rel)
                {
                    *s = stamp;
                }
            }
            // Every stamp was verified after `lookup_start`, so that is the
            // new reference for the racy-clean rule.
            entry.stat_time = lookup_start;
            let encoded = codec::encode(&entry);
            meta.size = encoded.len() as u64;
            batch.put_cf(&*self.cf(CF_ENTRIES)?, key.to_bytes(), encoded);
        }
        batch.put_cf(
            &*self.cf(CF_META)?,
            entry_meta_key(key),
            codec::encode(&meta),
        );
        batch.put_cf(
            &*self.cf(CF_TASKS)?,
            req.task.as_bytes(),
            codec::encode(&record),
        );
        self.write(batch)?;
        Ok(entry)
    }
}

//! Storing a successful run: fingerprint its inputs, archive its outputs as
//! content-addressed blobs (only new ones are compressed and written), and
//! write the entry, its new blobs, its metadata and the task's pointer in
//! ONE `WriteBatch`, so a crash can never leave an entry without its blobs.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use rocksdb::WriteBatch;

use super::db::{
    CF_ENTRIES, CF_META, CF_TASKS, EntryMeta, MAX_VARIANTS, Store, TaskRecord, entry_meta_key,
    output_dir_key,
};
use crate::cache::clock::Timestamp;
use crate::cache::codec;
use crate::cache::collect::{self, NotStorable, OutputPath, TaskPaths};
use crate::cache::digest::Digest;
use crate::cache::entry::{CacheEntry, EntryKey, InputKind, LogChunk, LogRef, OutputState, Stamp};
use crate::cache::env;
use crate::cache::error::CacheError;
use crate::cache::fingerprint::SpawnFingerprint;
use crate::cache::paths::RelPath;
use crate::cache::programs::Toolchain;
use crate::regular_file;
use vp_ipc::EnvQuery;

/// What the runner saw of one successful (exit 0, not cancelled) run, with
/// the tracer's and the bridge's results mapped in.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObservedRun {
    /// Absolute paths the task read, with how (tracer classification).
    pub(crate) inputs: Vec<(PathBuf, InputKind)>,
    /// Absolute paths the task wrote that exist at the end.
    pub(crate) outputs: Vec<PathBuf>,
    /// `ignoreInput` / `ignoreOutput` subtrees reported by tools.
    pub(crate) ignored_inputs: Vec<PathBuf>,
    pub(crate) ignored_outputs: Vec<PathBuf>,
    /// Directories the task removed entries from (the tracer's
    /// classification): with the directories it created, the entry owns them.
    pub(crate) emptied_dirs: Vec<PathBuf>,
    /// Paths that were there before the run and that the task removed
    /// (the tracer's classification). A hit cannot replay a removal, so one
    /// outside the directories the run owns must still be missing for a
    /// hit (`collect::removals`).
    pub(crate) removed: Vec<PathBuf>,
    /// Listed directories, inputs, whose entries the task itself changed
    /// (it wrote into them, or only removed from them: `rm -rf dist/*`):
    /// their stamps changed during the run by the task's doing (see
    /// `collect::collect_inputs`).
    pub(crate) own_listings: Vec<collect::OwnListing>,
    /// Outputs the task looked at before making them (the tracer's
    /// `looked_first`): those among the stored outputs become
    /// `CacheEntry::looked_first`.
    pub(crate) looked_first: Vec<PathBuf>,
    /// Files the task executed (each path as executed, and the real file
    /// it led to), and the `PATH` it had: see `cache::programs`.
    pub(crate) executed: Vec<(PathBuf, PathBuf)>,
    pub(crate) path_var: Option<OsString>,
    /// What tools were served for `getEnv(name, { tracked: true })`
    /// (`None`: unset), untracked names already left out by the bridge.
    pub(crate) tracked_env: BTreeMap<OsString, Option<OsString>>,
    /// What tools were served for `getEnvs(query, { tracked: true })`: the
    /// entry fingerprints exactly these sets.
    pub(crate) env_queries: Vec<(EnvQuery, BTreeMap<OsString, OsString>)>,
    /// stdout/stderr in the order produced.
    pub(crate) log: Vec<LogChunk>,
    /// From `Timestamp::task_start()`, taken right before the spawn.
    pub(crate) started: Timestamp,
    pub(crate) duration: Duration,
    /// Files hashed while the task ran (`cache::prehash`): reused where
    /// their stamps vouch for them.
    pub(crate) prehashed: std::sync::Arc<crate::cache::prehash::Prehashed>,
    /// Stamps of the files the tracer looked at once the task was over.
    pub(crate) end_stamps: std::sync::Arc<crate::trace::EndStamps>,
}

pub(crate) struct RecordRequest<'a> {
    /// Stable id of the task item, e.g. `pkg#build` or `pkg#build[1]` for the
    /// second `&&` command.
    pub(crate) task: &'a str,
    pub(crate) spawn: &'a SpawnFingerprint,
    pub(crate) paths: TaskPaths<'a>,
    pub(crate) run: &'a ObservedRun,
}

#[derive(Debug)]
pub(crate) enum RecordOutcome {
    Stored(StoredSummary),
    /// The run succeeded but must not become a hit.
    NotStored(NotStorable),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredSummary {
    pub(crate) key: EntryKey,
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    /// Compressed bytes of blobs that were not in the store before.
    pub(crate) new_blob_bytes: u64,
}

impl Store {
    /// Stores a successful run. Blocking (hashes, compresses, writes).
    pub(crate) fn record(&self, req: &RecordRequest<'_>) -> Result<RecordOutcome, CacheError> {
        // Open for writing first, so every read below (which blobs are
        // stored already, the task's previous entry) sees the writable
        // instance, not an older read-only view.
        self.writer()?;
        let run = req.run;
        let outputs = match collect::collect_outputs(
            req.paths,
            &req.spawn.outputs,
            &run.outputs,
            &run.ignored_outputs,
            run.started,
        ) {
            Ok(o) => o,
            Err(why) => return Ok(RecordOutcome::NotStored(why)),
        };
        // No later than the first stamp this entry may hold: those taken
        // when the run was over (`EndStamps`) come before the ones below.
        let now = Timestamp::now_coarse();
        let stat_time = run.end_stamps.taken.map_or(now, |taken| now.min(taken));
        // The task's last entry, whatever its command was: what it recorded
        // of each file still holds where the stamp says so. Unreadable or
        // absent, every input is read.
        let previous = match self.task_record(req.task) {
            Ok(Some(record)) => self.entry(record.entry).ok().flatten(),
            _ => None,
        };
        let owned_dirs = collect::owned_dirs(
            req.paths,
            &req.spawn.outputs,
            &run.emptied_dirs,
            &outputs,
            &run.ignored_outputs,
            run.started,
        );
        let removals = collect::removals(req.paths.workspace_root, &run.removed, &owned_dirs);
        let observed: std::borrow::Cow<'_, [(PathBuf, InputKind)]> = if removals.is_empty() {
            std::borrow::Cow::Borrowed(&run.inputs)
        } else {
            std::borrow::Cow::Owned(run.inputs.iter().cloned().chain(removals).collect())
        };
        let collected = match collect::collect_inputs(
            req.paths,
            &req.spawn.inputs,
            &observed,
            &run.ignored_inputs,
            &outputs,
            run.started,
            collect::KnownHashes {
                previous: previous.as_ref(),
                prehashed: &run.prehashed,
                end_stamps: &run.end_stamps,
            },
            &run.own_listings,
        ) {
            Ok(c) => c,
            Err(why) => return Ok(RecordOutcome::NotStored(why)),
        };
        let created = collect::created_outputs(&outputs, run.started);
        let tracked_env = env::served_env(&run.tracked_env);
        let env_queries = run
            .env_queries
            .iter()
            .map(|(q, served)| (q.clone(), env::served_matches(served)))
            .collect();

        // From the first "is this blob stored?" until the batch is written,
        // pruning must not delete blobs.
        let _gc = self
            .gc
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = WriteBatch::default();
        let mut archive = Archive {
            store: self,
            batch: &mut batch,
            written: HashMap::new(),
            new_bytes: 0,
        };
        let mut manifest = BTreeMap::new();
        for out in &outputs {
            match archive.output(out)? {
                Ok(Some(state)) => {
                    manifest.insert(out.rel.clone(), state);
                }
                Ok(None) => {}
                Err(why) => return Ok(RecordOutcome::NotStored(why)),
            }
        }
        let log = if run.log.is_empty() {
            None
        } else {
            Some(archive.log(&run.log)?)
        };
        let new_blob_bytes = archive.new_bytes;
        // Glob matches the run left untouched are kept like outputs the
        // task looked at first: a hit writes them only where nothing else is.
        let untouched = outputs
            .iter()
            .filter(|o| o.untouched)
            .map(|o| o.rel.clone());
        let looked_first = run
            .looked_first
            .iter()
            .filter_map(|abs| RelPath::from_abs(req.paths.workspace_root, abs))
            .chain(untouched)
            .filter(|rel| {
                matches!(
                    manifest.get(rel),
                    Some(OutputState::File { .. } | OutputState::Symlink { .. })
                )
            })
            .collect();

        let entry = CacheEntry {
            inputs: collected.inputs,
            glob_inputs: collected.glob_inputs,
            tracked_env,
            env_queries,
            outputs: manifest,
            owned_dirs,
            created,
            looked_first,
            toolchain: Toolchain::record(
                &run.executed,
                req.paths.workspace_root,
                run.path_var.as_deref(),
            ),
            log,
            duration: run.duration,
            stat_time,
        };
        let key = EntryKey {
            spawn: req.spawn.key(),
            variant: entry.variant(),
        };
        let encoded = codec::encode(&entry);
        let now = Timestamp::now_coarse().as_millis();
        let hits = self.entry_meta(key)?.map_or(0, |m| m.hits);
        let meta = EntryMeta {
            created_ms: now,
            last_used_ms: now,
            hits,
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
        let record = TaskRecord {
            entry: key,
            spawn: req.spawn.clone(),
        };
        batch.put_cf(
            &*self.cf(CF_TASKS)?,
            req.task.as_bytes(),
            codec::encode(&record),
        );
        // What runs that were not stored left where this one writes: it
        // left them there as a real run does, or removed them.
        self.forget_leftovers(&mut batch, &entry, req.paths.workspace_root)?;
        self.drop_excess_variants(&mut batch, key)?;
        self.write(batch)?;
        let summary = StoredSummary {
            key,
            inputs: entry.inputs.len(),
            outputs: entry.outputs.len(),
            new_blob_bytes,
        };
        crate::parallel::drop_later((entry, encoded));
        Ok(RecordOutcome::Stored(summary))
    }

    /// Keeps at most `MAX_VARIANTS` entries per spawn key, dropping the least
    /// recently used. Their blobs are left for `prune` to sweep.
    pub(super) fn drop_excess_variants(
        &self,
        batch: &mut WriteBatch,
        keep: EntryKey,
    ) -> Result<(), CacheError> {
        let mut others: Vec<(EntryKey, i64)> = self
            .variants(&keep.spawn)?
            .into_iter()
            .filter(|(k, _)| *k != keep)
            .map(|(k, m)| (k, m.map_or(0, |m| m.last_used_ms)))
            .collect();
        if others.len() < MAX_VARIANTS {
            return Ok(());
        }
        others.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
        for (k, _) in others.into_iter().skip(MAX_VARIANTS - 1) {
            batch.delete_cf(&*self.cf(CF_ENTRIES)?, k.to_bytes());
            batch.delete_cf(&*self.cf(CF_META)?, entry_meta_key(k));
        }
        Ok(())
    }
}

/// Puts output contents into a batch, each distinct blob once.
struct Archive<'s, 'b> {
    store: &'s Store,
    batch: &'b mut WriteBatch,
    /// Blobs already put into this batch, with their compressed size.
    written: HashMap<Digest, u64>,
    new_bytes: u64,
}

impl Archive<'_, '_> {
    /// Stores `bytes` unless already present; returns the compressed size.
    fn blob(&mut self, blob: &Digest, bytes: &[u8]) -> Result<u64, CacheError> {
        if let Some(&len) = self.written.get(blob) {
            return Ok(len);
        }
        if let Some(len) = self.store.blob_len(blob)? {
            return Ok(len);
        }
        let len = self.store.put_blob(self.batch, blob, bytes)?;
        self.written.insert(*blob, len);
        self.new_bytes += len;
        Ok(len)
    }

    /// `Ok(Ok(None))`: nothing to archive (gone since the run, or a socket
    /// or fifo); `Ok(Err(_))`: the run must not be stored.
    fn output(
        &mut self,
        out: &OutputPath,
    ) -> Result<Result<Option<OutputState>, NotStorable>, CacheError> {
        let unreadable = |e: std::io::Error| NotStorable::OutputUnreadable {
            path: out.rel.clone(),
            error: e.to_string(),
        };
        let meta = match fs::symlink_metadata(&out.abs) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Ok(Err(unreadable(e))),
        };
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Ok(match fs::read_link(&out.abs) {
                Ok(t) => Ok(Some(OutputState::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                })),
                Err(e) => Err(unreadable(e)),
            });
        }
        if ft.is_dir() {
            return Ok(Ok(Some(OutputState::Dir { mode })));
        }
        if !ft.is_file() {
            return Ok(Ok(None));
        }
        // Opened only as a regular file: the path may have been replaced
        // since the `lstat` (a FIFO would block a plain read forever).
        let mut bytes = Vec::new();
        // Reserved fallibly, as `fs::read` does: an output too large to
        // hold in memory is reported unreadable here instead of aborting.
        if let Err(e) = bytes.try_reserve_exact(usize::try_from(meta.len()).unwrap_or(usize::MAX)) {
            return Ok(Err(unreadable(std::io::Error::new(
                ErrorKind::OutOfMemory,
                e,
            ))));
        }
        match regular_file::open(&out.abs).and_then(|mut f| f.read_to_end(&mut bytes)) {
            Ok(_) => {}
            Err(e) if regular_file::is_not_regular(&e) => {
                return Ok(Err(NotStorable::OutputChangedWhileStoring(out.rel.clone())));
            }
            Err(e) => return Ok(Err(unreadable(e))),
        }
        // The file must be the one we stat'ed: a writer still running (a
        // leftover background process) would make the blob a torn copy.
        match fs::symlink_metadata(&out.abs) {
            Ok(after)
                if Stamp::of(&after) == Stamp::of(&meta) && after.len() == bytes.len() as u64 => {}
            _ => return Ok(Err(NotStorable::OutputChangedWhileStoring(out.rel.clone()))),
        }
        let blob = Digest::of_content(&bytes);
        let stored = self.blob(&blob, &bytes)?;
        Ok(Ok(Some(OutputState::File {
            blob,
            mode,
            size: bytes.len() as u64,
            stored,
        })))
    }

    fn log(&mut self, chunks: &[LogChunk]) -> Result<LogRef, CacheError> {
        let bytes = codec::encode(&chunks);
        let blob = Digest::of_content(&bytes);
        let stored = self.blob(&blob, &bytes)?;
        Ok(LogRef { blob, stored })
    }
}

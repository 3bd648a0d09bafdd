//! Turning what a run was seen to do into the inputs and outputs of a cache
//! entry. Inputs: the tracer's classified reads (when `input` is auto) plus
//! files matched by explicit `input` globs, minus `!negatives`, tool
//! `ignoreInput` subtrees and paths vp never fingerprints (outside the
//! workspace, `.git`, the cache itself). Outputs likewise from observed
//! writes and `output` globs. Refuses to produce an entry when an input
//! changed after the task started: that run must not become a hit later.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::clock::Timestamp;
use super::entry::{CacheEntry, InputKind, InputState, Stamp};
use super::file_state;
use super::fingerprint::GlobConfig;
use super::globs::{Exclusions, GlobError, TaskGlobs, package_relative};
use super::paths::{self, RelPath};
use crate::trace::AccessClassification;

/// Where a task lives. All absolute and normalised; `workspace_root` is the
/// directory every stored path is relative to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskPaths<'a> {
    pub(crate) workspace_root: &'a Path,
    pub(crate) package_dir: &'a Path,
    pub(crate) cache_dir: &'a Path,
}

/// Why a successful run is not stored. The runner shows it in the summary
/// (`vp run: pkg#task not cached because ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NotStorable {
    /// An input's mtime or ctime is not older than the task's start: it was
    /// changed while the task ran (by the task or by someone else).
    InputModifiedDuringRun(RelPath),
    InputUnreadable {
        path: RelPath,
        error: String,
    },
    OutputUnreadable {
        path: RelPath,
        error: String,
    },
    /// A directory the task listed and wrote into holds a name the task did
    /// not make, created while it ran (a parallel task's file, new or
    /// replaced): the listing the run left may not be the one it saw.
    EntryAddedDuringRun(RelPath),
    /// An output changed between the end of the run and archiving it.
    OutputChangedWhileStoring(RelPath),
    /// Walking an explicit glob failed.
    GlobWalk {
        error: String,
    },
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InputModifiedDuringRun(p) => {
                write!(f, "its input '{p}' was modified while it ran")
            }
            Self::EntryAddedDuringRun(p) => {
                write!(
                    f,
                    "'{p}' was created or replaced by another process while it ran, in a directory it listed and wrote into (run the two in order: dependsOn)"
                )
            }
            Self::InputUnreadable { path, error } => {
                write!(f, "its input '{path}' could not be read: {error}")
            }
            Self::OutputUnreadable { path, error } => {
                write!(f, "its output '{path}' could not be read: {error}")
            }
            Self::OutputChangedWhileStoring(p) => {
                write!(f, "its output '{p}' changed while it was being stored")
            }
            Self::GlobWalk { error } => {
                write!(f, "its input/output globs could not be walked: {error}")
            }
        }
    }
}

/// Decides which absolute paths the cache may record, and as what.
pub(crate) struct Scope<'a> {
    paths: TaskPaths<'a>,
    cache_rel: Option<RelPath>,
    ignored: Vec<RelPath>,
    globs: TaskGlobs,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(
        paths: TaskPaths<'a>,
        config: &GlobConfig,
        ignored: &[PathBuf],
    ) -> Result<Self, GlobError> {
        Ok(Self {
            paths,
            cache_rel: RelPath::from_abs(paths.workspace_root, paths.cache_dir),
            ignored: ignored
                .iter()
                .filter_map(|p| RelPath::from_abs(paths.workspace_root, p))
                .collect(),
            globs: TaskGlobs::new(&config.globs)?,
        })
    }

    /// The workspace-relative path when `abs` is recorded at all: inside the
    /// workspace, not under `.git` or the cache, and not excluded by a
    /// negative glob. Tool-ignored subtrees are checked separately.
    fn admit(&self, abs: &Path) -> Option<RelPath> {
        let rel = paths::recordable(self.paths.workspace_root, self.cache_rel.as_ref(), abs)?;
        let excluded = Exclusions::of(self.paths.package_dir, &self.globs);
        if excluded.is_some_and(|e| e.excludes(abs)) {
            return None;
        }
        Some(rel)
    }

    fn ignored_by_tool(&self, rel: &RelPath) -> bool {
        self.ignored.iter().any(|i| rel.is_within(i))
    }

    /// Matches of the positive globs on disk, never descending into the
    /// cache or `.git`.
    pub(crate) fn walk_globs(&self) -> Result<Vec<PathBuf>, NotStorable> {
        if self.globs.is_empty() {
            return Ok(Vec::new());
        }
        let cache = paths::normalize(self.paths.cache_dir);
        let skip = |p: &Path| p == cache || p.file_name().is_some_and(|n| n == ".git");
        self.globs
            .walk(self.paths.package_dir, &skip)
            .map_err(|e| NotStorable::GlobWalk {
                error: e.to_string(),
            })
    }

    /// Files matched by the explicit globs now (for re-walking at lookup).
    pub(crate) fn glob_files(&self) -> Result<BTreeSet<RelPath>, NotStorable> {
        Ok(self
            .walk_globs()?
            .into_iter()
            .filter(|p| !p.is_dir())
            .filter_map(|p| self.admit(&p))
            .collect())
    }
}

/// One output to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutputPath {
    pub(crate) rel: RelPath,
    pub(crate) abs: PathBuf,
    /// Matched by an `output` glob, and not touched by the run (its ctime
    /// is older than the task's start): an incremental tool's unchanged
    /// output, or a source a broad glob (`**/*.js`) also matches. A hit
    /// writes it only where it is missing or as vp left it, like an output
    /// the task looked at first: never over a user's edit.
    pub(crate) untouched: bool,
}

/// Observed writes (when `output` is auto) minus ignored subtrees, plus what
/// the explicit `output` globs match (user configuration wins over tool
/// ignores). A file a glob matches that the run did not touch, its ctime
/// older than `started`, is marked `untouched`.
pub(crate) fn collect_outputs(
    paths: TaskPaths<'_>,
    config: &GlobConfig,
    observed: &[PathBuf],
    ignored: &[PathBuf],
    started: Timestamp,
) -> Result<Vec<OutputPath>, NotStorable> {
    let scope = Scope::new(paths, config, ignored).map_err(|e| NotStorable::GlobWalk {
        error: e.to_string(),
    })?;
    let mut out: BTreeMap<RelPath, (PathBuf, bool)> = BTreeMap::new();
    if config.auto {
        for abs in observed {
            if let Some(rel) = scope.admit(abs)
                && !scope.ignored_by_tool(&rel)
                && !rel.is_root()
            {
                out.insert(rel.clone(), (rel.to_abs(paths.workspace_root), false));
            }
        }
    }
    let untouched = |abs: &Path| {
        fs::symlink_metadata(abs)
            .is_ok_and(|m| !m.is_dir() && !file_state::changed_since(&Stamp::of(&m), started))
    };
    for abs in scope.walk_globs()? {
        if let Some(rel) = scope.admit(&abs) {
            let untouched = untouched(&abs);
            out.entry(rel.clone())
                .or_insert_with(|| (rel.to_abs(paths.workspace_root), untouched));
        }
    }
    Ok(out
        .into_iter()
        .map(|(rel, (abs, untouched))| OutputPath {
            rel,
            abs,
            untouched,
        })
        .collect())
}

/// The directories the run owned: those it created, proven by a birth time
/// at or after the run's start, and those it removed entries from
/// (`emptied`, from the trace) strictly inside its package. Only
/// directories of recorded outputs count (an output or an output's ancestor
/// below the workspace root), never one a tool asked vp to ignore, `.git`
/// or the cache.
pub(crate) fn owned_dirs(
    paths: TaskPaths<'_>,
    config: &GlobConfig,
    emptied: &[PathBuf],
    outputs: &[OutputPath],
    ignored: &[PathBuf],
    started: Timestamp,
) -> BTreeSet<RelPath> {
    let Ok(scope) = Scope::new(paths, config, ignored) else {
        return BTreeSet::new();
    };
    let mut candidates: BTreeSet<RelPath> = BTreeSet::new();
    for out in outputs {
        let mut dir = out.rel.clone();
        while !dir.is_root() {
            candidates.insert(dir.clone());
            dir = dir.parent();
        }
    }
    let born_in_run = |rel: &RelPath| {
        fs::symlink_metadata(rel.to_abs(paths.workspace_root))
            .ok()
            .filter(fs::Metadata::is_dir)
            .and_then(|m| Timestamp::birth(&m))
            .is_some_and(|born| born >= started)
    };
    // Emptying counts only for an output directory strictly inside the
    // package: `rm -rf dist` also removes a name from the package directory,
    // which does not make the whole package the run's to clean.
    let package = RelPath::from_abs(paths.workspace_root, paths.package_dir);
    let inside_package = |rel: &RelPath| {
        package
            .as_ref()
            .is_some_and(|pkg| rel.is_within(pkg) && rel != pkg)
    };
    let emptied: BTreeSet<RelPath> = emptied
        .iter()
        .filter_map(|abs| scope.admit(abs))
        .filter(|rel| candidates.contains(rel) && inside_package(rel))
        .collect();
    let mut owned: BTreeSet<RelPath> = candidates.into_iter().filter(born_in_run).collect();
    owned.extend(emptied);
    owned.retain(|rel| !rel.is_root() && !scope.ignored_by_tool(rel));
    owned
}

/// The removals a hit must find still done, as inputs that must be
/// missing: what the task removed (`removed`, absolute) outside the
/// directories the run owns, each subtree once at its top. (Inside an owned
/// directory, `dist/` that Vite empties and refills, a hit leaves the
/// directory as the run did: see `owned_dirs`.) `rm -rf dist` thus misses
/// while `dist` exists and hits once it is gone, instead of a hit that
/// leaves `dist` in place.
pub(crate) fn removals(
    root: &Path,
    removed: &[PathBuf],
    owned: &BTreeSet<RelPath>,
) -> Vec<(PathBuf, InputKind)> {
    let mut tops: Vec<(RelPath, &PathBuf)> = removed
        .iter()
        .filter_map(|abs| Some((RelPath::from_abs(root, abs)?, abs)))
        .filter(|(rel, _)| !owned.iter().any(|dir| rel.is_within(dir) && rel != dir))
        .collect();
    // In path order (a separator before every other byte), so that a
    // directory's subtree follows it at once: `dist`, `dist/x`, `dist-old`.
    tops.sort_by(|(_, a), (_, b)| crate::trace::path_order(a, b));
    let mut out: Vec<(PathBuf, InputKind)> = Vec::new();
    let mut last_top: Option<RelPath> = None;
    for (rel, abs) in tops {
        if last_top.as_ref().is_some_and(|top| rel.is_within(top)) {
            continue;
        }
        out.push((abs.clone(), InputKind::Probe));
        last_top = Some(rel);
    }
    out
}

/// The outputs this run created (a birth time at or after its start): the
/// only ones a later hit may remove as superseded. A file the run merely
/// rewrote in place (a tracked source a generator overwrites) keeps its old
/// birth time and is never removed.
pub(crate) fn created_outputs(outputs: &[OutputPath], started: Timestamp) -> BTreeSet<RelPath> {
    outputs
        .iter()
        .filter(|out| {
            fs::symlink_metadata(&out.abs)
                .ok()
                .filter(|m| !m.is_dir())
                .and_then(|m| Timestamp::birth(&m))
                .is_some_and(|born| born >= started)
        })
        .map(|out| out.rel.clone())
        .collect()
}

/// Whether the task's explicit `input` globs select `abs` (both paths real).
/// Such a file is always fingerprinted strictly: it is never taken as the
/// task's own state (`store::state`), so declaring it is the way to opt out.
pub(crate) fn declared_input(config: &GlobConfig, package_dir: &Path, abs: &Path) -> bool {
    if config.globs.is_empty() {
        return false;
    }
    TaskGlobs::new(&config.globs)
        .is_ok_and(|globs| globs.selects(&package_relative(package_dir, abs)))
}

/// What the entry records about the run's inputs.
#[derive(Debug, Default)]
pub(crate) struct CollectedInputs {
    pub(crate) inputs: BTreeMap<RelPath, InputState>,
    pub(crate) glob_inputs: BTreeSet<RelPath>,
}

/// From this many inputs they are observed (stat'ed and hashed) on every
/// core; below, threads would cost about what they save.
const OBSERVE_SPREAD_MIN: usize = 128;

/// What storing already knows of the inputs' content: hashes taken while
/// the task ran (`prehash.rs`), and the task's previous entry. Either is
/// used only where the file's stamp vouches for it.
#[derive(Clone, Copy)]
pub(crate) struct KnownHashes<'a> {
    pub(crate) previous: Option<&'a CacheEntry>,
    pub(crate) prehashed: &'a super::prehash::Prehashed,
    /// Stamps taken once the run was over: where one vouches for a known
    /// hash, the file is not looked at again.
    pub(crate) end_stamps: &'a crate::trace::EndStamps,
}

impl KnownHashes<'_> {
    /// What is known of `rel` (at `abs`): this run's hash first (newer),
    /// else the previous entry's.
    fn recorded(&self, rel: &RelPath, abs: &Path) -> Option<file_state::Recorded<'_>> {
        self.prehashed.get(abs).or_else(|| {
            let entry = self.previous?;
            Some(file_state::Recorded {
                state: entry.inputs.get(rel)?,
                stat_time: entry.stat_time,
            })
        })
    }
}

/// A listed directory, an input, whose entries the task changed itself
/// (the tracer's `changed_listings`), with the names in it the task made:
/// its outputs there, and what its tools asked vp not to store
/// (`ignoreOutput`). Its listing is recorded as the run left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnListing {
    pub(crate) dir: PathBuf,
    pub(crate) made: BTreeSet<Vec<u8>>,
}

impl OwnListing {
    /// The listing of `dir` for the tracer's `changed_listings`: `made` is
    /// the first name below `dir` of each of `written` (paths the task
    /// wrote, as the tracer classified them, and ignored output subtrees).
    pub(crate) fn of<'a>(dir: &Path, written: impl IntoIterator<Item = &'a Path>) -> Self {
        let made = written
            .into_iter()
            .filter_map(|p| p.strip_prefix(dir).ok()?.iter().next())
            .map(|name| name.as_bytes().to_vec())
            .collect();
        Self {
            dir: dir.to_path_buf(),
            made,
        }
    }

    /// The first of `names` (the listing recorded now) that the task did not
    /// make and that was created at or after `started`: someone else added
    /// it while the task ran, maybe after the task listed the directory.
    /// Without birth times, a name changed since then counts.
    fn added_by_others<'n>(&self, names: &'n [Vec<u8>], started: Timestamp) -> Option<&'n [u8]> {
        names
            .iter()
            .filter(|name| !self.made.contains(*name))
            .find(|name| {
                let abs = self.dir.join(std::ffi::OsStr::from_bytes(name));
                fs::symlink_metadata(&abs).is_ok_and(|m| {
                    Timestamp::birth(&m).unwrap_or_else(|| Timestamp::ctime(&m)) >= started
                })
            })
            .map(Vec::as_slice)
    }
}

/// The listings the task changed itself (`changed_listings` of `c`), with
/// what it made in each: its outputs there (before any output glob or
/// ignore), the subtrees its tools asked vp not to store, and what it
/// changed where nothing is stored (`unstored_changes`: those subtrees, an
/// `output` `!` pattern, a tool's cache).
pub(crate) fn own_listings<'a>(
    c: &'a AccessClassification,
    ignored_outputs: impl IntoIterator<Item = &'a PathBuf> + Clone,
) -> Vec<OwnListing> {
    c.changed_listings
        .iter()
        .map(|dir| {
            let written = c
                .outputs
                .keys()
                .chain(ignored_outputs.clone())
                .chain(&c.unstored_changes)
                .map(PathBuf::as_path);
            OwnListing::of(dir, written)
        })
        .collect()
}

/// Fingerprints every input. `outputs` are the task's own outputs: a file a
/// glob matches but the task produced is not one of its inputs. An input
/// whose stamp `known` vouches for is not read again
/// (`file_state::Recorded`). `own_listings` are listed directories whose
/// entries the task itself changed: their stamps changed during the run by
/// the task's doing, so each name in them the task did not make is checked
/// instead.
#[allow(clippy::too_many_arguments)]
pub(crate) fn collect_inputs(
    paths: TaskPaths<'_>,
    config: &GlobConfig,
    observed: &[(PathBuf, InputKind)],
    ignored: &[PathBuf],
    outputs: &[OutputPath],
    started: Timestamp,
    known: KnownHashes<'_>,
    own_listings: &[OwnListing],
) -> Result<CollectedInputs, NotStorable> {
    let scope = Scope::new(paths, config, ignored).map_err(|e| NotStorable::GlobWalk {
        error: e.to_string(),
    })?;
    // Sorted and merged in bulk, not inserted one by one into a map: a
    // task may read tens of thousands of files.
    let mut wanted: Vec<(RelPath, InputKind)> = Vec::new();
    if config.auto {
        wanted.reserve(observed.len());
        for (abs, kind) in observed {
            if let Some(rel) = scope.admit(abs)
                && !scope.ignored_by_tool(&rel)
            {
                wanted.push((rel, *kind));
            }
        }
    }
    let produced: BTreeSet<&RelPath> = outputs.iter().map(|o| &o.rel).collect();
    let glob_inputs: BTreeSet<RelPath> = scope
        .glob_files()?
        .into_iter()
        .filter(|rel| !produced.contains(rel))
        .collect();
    wanted.extend(
        glob_inputs
            .iter()
            .map(|rel| (rel.clone(), InputKind::ContentRead)),
    );
    // The same path seen several ways (or also globbed): keep the strongest.
    // Stable: the observed paths arrive sorted (by `Path`, nearly the
    // byte order used here), so a merge of runs sorts them in about one pass.
    wanted.sort_by(|(a, ka), (b, kb)| a.cmp(b).then(kb.cmp(ka)));
    wanted.dedup_by(|(later, _), (first, _)| later == first);

    // Hashing is most of a miss's own cost for a task with many inputs.
    let observed = crate::parallel::map(&wanted, OBSERVE_SPREAD_MIN, |(rel, kind)| {
        let abs = rel.to_abs(paths.workspace_root);
        let recorded = known.recorded(rel, &abs);
        if let Some(stamp) = known.end_stamps.get(&abs)
            && let Some(state) = file_state::known_file(*kind, stamp, recorded)
        {
            return Ok(state);
        }
        file_state::observe_since(&abs, *kind, recorded)
    });
    let mut inputs = Vec::with_capacity(wanted.len());
    for ((rel, _), state) in wanted.into_iter().zip(observed) {
        let state = state.map_err(|e| NotStorable::InputUnreadable {
            path: rel.clone(),
            error: e.to_string(),
        })?;
        let own_listing = match &state {
            InputState::Dir { names, .. } => {
                let abs = rel.to_abs(paths.workspace_root);
                own_listings
                    .iter()
                    .find(|l| l.dir == abs)
                    .map(|l| (l, names))
            }
            _ => None,
        };
        if let InputState::File { stamp, .. } | InputState::Dir { stamp, .. } = &state
            && file_state::changed_since(stamp, started)
        {
            match own_listing {
                Some((listing, names)) => {
                    if let Some(name) = listing.added_by_others(names, started) {
                        return Err(NotStorable::EntryAddedDuringRun(rel.join(name)));
                    }
                }
                None => return Err(NotStorable::InputModifiedDuringRun(rel)),
            }
        }
        inputs.push((rel, state));
    }
    // Already in order and distinct: the map is built in one pass.
    let inputs: BTreeMap<RelPath, InputState> = inputs.into_iter().collect();
    Ok(CollectedInputs {
        inputs,
        glob_inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::digest::Digest;
    use crate::cache::entry::Stamp;
    use crate::cache::prehash::Prehashed;
    use std::fs;

    struct Ws {
        _dir: tempfile::TempDir,
        root: PathBuf,
        pkg: PathBuf,
        cache: PathBuf,
    }

    fn ws(files: &[&str]) -> Ws {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        for f in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, f).expect("write");
        }
        let pkg = root.join("pkg");
        let cache = root.join("node_modules/.cache/vp");
        Ws {
            _dir: dir,
            root,
            pkg,
            cache,
        }
    }

    impl Ws {
        /// `collect_inputs` of observed accesses alone: `input` auto, nothing
        /// ignored, no outputs, no previous entry.
        fn auto_inputs(
            &self,
            observed: &[(PathBuf, InputKind)],
            start: Timestamp,
        ) -> Result<CollectedInputs, NotStorable> {
            self.auto_inputs_of(observed, start, &[])
        }

        /// `auto_inputs` where the task changed `own_listings` itself.
        fn auto_inputs_of(
            &self,
            observed: &[(PathBuf, InputKind)],
            start: Timestamp,
            own_listings: &[OwnListing],
        ) -> Result<CollectedInputs, NotStorable> {
            collect_inputs(
                self.paths(),
                &GlobConfig::auto(),
                observed,
                &[],
                &[],
                start,
                KnownHashes {
                    previous: None,
                    prehashed: &Prehashed::default(),
                    end_stamps: &crate::trace::EndStamps::default(),
                },
                own_listings,
            )
        }

        fn paths(&self) -> TaskPaths<'_> {
            TaskPaths {
                workspace_root: &self.root,
                package_dir: &self.pkg,
                cache_dir: &self.cache,
            }
        }
    }

    fn names<V>(m: &BTreeMap<RelPath, V>) -> Vec<String> {
        m.keys().map(ToString::to_string).collect()
    }

    /// Sets `abs`'s mtime a minute back, then waits: the change time is
    /// now, and a run that starts after this finds the file settled.
    fn backdate(abs: &Path) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(abs)
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
        std::thread::sleep(std::time::Duration::from_millis(30));
    }

    /// What a hashing thread would have recorded for `abs` in a run that
    /// starts now: its stamp with a hash no file has, so that seeing the
    /// hash back proves the file was not read.
    fn hashed_while_running(abs: &Path) -> (Timestamp, Stamp, Digest, Prehashed) {
        backdate(abs);
        let start = Timestamp::task_start();
        let stamp = Stamp::of(&std::fs::metadata(abs).expect("stat"));
        let marker = Digest::of_content(b"hashed while running");
        let prehashed = Prehashed::recorded_for_test(
            abs.to_path_buf(),
            InputState::File {
                hash: marker,
                stamp,
            },
            start,
        );
        (start, stamp, marker, prehashed)
    }

    /// The inputs of a run that started at `start` and read `abs`.
    fn collect_read(
        w: &Ws,
        abs: &Path,
        start: Timestamp,
        prehashed: &Prehashed,
        end_stamps: &crate::trace::EndStamps,
    ) -> CollectedInputs {
        collect_inputs(
            w.paths(),
            &GlobConfig::auto(),
            &[(abs.to_path_buf(), InputKind::ContentRead)],
            &[],
            &[],
            start,
            KnownHashes {
                previous: None,
                prehashed,
                end_stamps,
            },
            &[],
        )
        .expect("collects")
    }

    /// A file hashed while the task ran is not read again when its stamp
    /// vouches for the hash, and is when it changed since.
    #[test]
    fn a_file_hashed_during_the_run_is_reused_only_while_its_stamp_holds() {
        let w = ws(&["pkg/src/a.js"]);
        let abs = w.root.join("pkg/src/a.js");
        let (start, _, marker, prehashed) = hashed_while_running(&abs);
        let no_end_stamps = crate::trace::EndStamps::default();
        let collect = |start: Timestamp| collect_read(&w, &abs, start, &prehashed, &no_end_stamps);
        let hash_of = |got: &CollectedInputs| match got.inputs.values().next() {
            Some(InputState::File { hash, .. }) => *hash,
            other => panic!("not a file: {other:?}"),
        };
        assert_eq!(hash_of(&collect(start)), marker);
        // Rewritten since (another size, so another stamp): read again.
        std::fs::write(&abs, "changed content").expect("rewrite");
        backdate(&abs);
        let got = collect(Timestamp::task_start());
        assert_ne!(hash_of(&got), marker);
        let (real, _) = crate::cache::digest::hash_file(&abs).expect("hash");
        assert_eq!(hash_of(&got), real);
    }

    /// A stamp taken once the run was over stands in for a `stat` when it
    /// vouches for the hash taken during the run; any other stamp there
    /// leaves the file to be looked at again.
    #[test]
    fn an_end_of_run_stamp_that_vouches_for_the_hash_spares_the_stat() {
        use crate::trace::{Looked, PathMap};
        let w = ws(&["pkg/src/a.js"]);
        let abs = w.root.join("pkg/src/a.js");
        let (start, stamp, marker, prehashed) = hashed_while_running(&abs);
        let end_stamps = |stamp| {
            let mut looked = PathMap::default();
            looked.insert(abs.clone(), Looked::File(stamp));
            crate::trace::EndStamps::new(Timestamp::now_coarse(), looked)
        };
        let collect = |end_stamps: &crate::trace::EndStamps| {
            collect_read(&w, &abs, start, &prehashed, end_stamps)
        };
        // Removed after the end stamp: a file never looked at again still
        // gets the hash its end stamp vouches for.
        std::fs::remove_file(&abs).expect("remove");
        let got = collect(&end_stamps(stamp));
        assert_eq!(
            got.inputs.values().next(),
            Some(&InputState::File {
                hash: marker,
                stamp
            })
        );
        // An end stamp that differs from the hashed one: looked at again
        // (and found missing).
        let other = Stamp {
            size: stamp.size + 1,
            ..stamp
        };
        let got = collect(&end_stamps(other));
        assert_eq!(got.inputs.values().next(), Some(&InputState::Missing));
    }

    #[test]
    fn scope_drops_outside_vcs_cache_negatives_and_ignored() {
        let w = ws(&[
            "pkg/src/a.js",
            "pkg/src/gen/g.js",
            "pkg/.vite/x",
            ".git/HEAD",
            "node_modules/.cache/vp/CURRENT",
            "pkg/README.md",
        ]);
        let start = Timestamp::task_start();
        let observed: Vec<(PathBuf, InputKind)> = [
            "pkg/src/a.js",
            "pkg/src/gen/g.js",
            "pkg/.vite/x",
            ".git/HEAD",
            "node_modules/.cache/vp/CURRENT",
            "pkg/README.md",
        ]
        .iter()
        .map(|p| (w.root.join(p), InputKind::ContentRead))
        .chain([(PathBuf::from("/etc/hostname"), InputKind::ContentRead)])
        .collect();
        let config = GlobConfig {
            auto: true,
            globs: vec!["!src/gen/**".into()],
        };
        let got = collect_inputs(
            w.paths(),
            &config,
            &observed,
            &[w.pkg.join(".vite")],
            &[],
            start,
            KnownHashes {
                previous: None,
                prehashed: &Prehashed::default(),
                end_stamps: &crate::trace::EndStamps::default(),
            },
            &[],
        )
        .expect("collects");
        assert_eq!(names(&got.inputs), vec!["pkg/README.md", "pkg/src/a.js"]);
    }

    #[test]
    fn strongest_kind_wins() {
        let w = ws(&["pkg/a.js"]);
        let start = Timestamp::task_start();
        let a = w.root.join("pkg/a.js");
        let observed = vec![
            (a.clone(), InputKind::Probe),
            (a.clone(), InputKind::ContentRead),
            (a, InputKind::Probe),
        ];
        let got = w.auto_inputs(&observed, start).expect("collects");
        assert!(matches!(
            got.inputs.values().next(),
            Some(InputState::File { .. })
        ));
    }

    #[test]
    fn explicit_globs_add_inputs_but_not_own_outputs() {
        let w = ws(&["pkg/src/a.ts", "pkg/src/gen.ts", "shared/s.ts"]);
        let start = Timestamp::task_start();
        let config = GlobConfig {
            auto: false,
            globs: vec!["src/**".into(), "../shared/*.ts".into()],
        };
        let outputs = vec![OutputPath {
            rel: RelPath::from_stored(b"pkg/src/gen.ts").expect("valid"),
            abs: w.root.join("pkg/src/gen.ts"),
            untouched: false,
        }];
        // auto is off: the observed read of /etc and of README are ignored.
        let observed = vec![(w.root.join("pkg/README.md"), InputKind::ContentRead)];
        let got = collect_inputs(
            w.paths(),
            &config,
            &observed,
            &[],
            &outputs,
            start,
            KnownHashes {
                previous: None,
                prehashed: &Prehashed::default(),
                end_stamps: &crate::trace::EndStamps::default(),
            },
            &[],
        )
        .expect("collects");
        assert_eq!(names(&got.inputs), vec!["pkg/src/a.ts", "shared/s.ts"]);
        assert_eq!(got.glob_inputs.len(), 2);
    }

    #[test]
    fn input_written_after_start_refuses() {
        let w = ws(&["pkg/a.js"]);
        let start = Timestamp::task_start();
        fs::write(w.root.join("pkg/a.js"), "edited during the run").expect("write");
        let observed = vec![(w.root.join("pkg/a.js"), InputKind::ContentRead)];
        let err = w.auto_inputs(&observed, start).expect_err("refused");
        assert_eq!(
            err,
            NotStorable::InputModifiedDuringRun(RelPath::from_stored(b"pkg/a.js").expect("valid"))
        );
        assert_eq!(
            err.to_string(),
            "its input 'pkg/a.js' was modified while it ran"
        );
    }

    /// A directory the task listed and wrote into (a barrel generator's
    /// `src/components/`) changed during the run by the task's own write:
    /// recorded as the run left it. A name someone else added meanwhile is
    /// not something the task saw: not stored.
    #[test]
    fn a_listing_the_task_wrote_into_is_stored_unless_someone_else_added_to_it() {
        let w = ws(&["pkg/src/A.js"]);
        let dir = w.root.join("pkg/src");
        let start = Timestamp::task_start();
        fs::write(dir.join("index.js"), "export * from './A.js';").expect("write");
        let observed = vec![(dir.clone(), InputKind::Listing)];
        let written = [dir.join("index.js")];
        let own = OwnListing::of(&dir, written.iter().map(PathBuf::as_path));
        assert_eq!(own.made, BTreeSet::from([b"index.js".to_vec()]));
        let collect =
            |own: &OwnListing| w.auto_inputs_of(&observed, start, std::slice::from_ref(own));
        let stored = collect(&own).expect("stored");
        let Some(InputState::Dir { names, .. }) = stored
            .inputs
            .get(&RelPath::from_stored(b"pkg/src").expect("valid"))
        else {
            panic!("a listing: {:?}", stored.inputs);
        };
        assert_eq!(names, &[b"A.js".to_vec(), b"index.js".to_vec()]);

        // Not the task's own: the listing is the plain rule's.
        let err = w.auto_inputs(&observed, start).expect_err("refused");
        assert_eq!(
            err,
            NotStorable::InputModifiedDuringRun(RelPath::from_stored(b"pkg/src").expect("valid"))
        );

        fs::write(dir.join("B.js"), "a parallel task's file").expect("write");
        let err = collect(&own).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "'pkg/src/B.js' was created or replaced by another process while it ran, in a directory it listed and wrote into (run the two in order: dependsOn)"
        );
    }

    /// Probe: `touch -d '+1 day' data.txt` (or a tarball's times, a skewed
    /// clock) made every run "modified while it ran", forever. An mtime is
    /// whatever a tool set; the ctime says when the file really changed.
    #[test]
    fn an_input_with_a_future_mtime_is_not_modified_during_the_run() {
        let w = ws(&["pkg/a.js"]);
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(w.root.join("pkg/a.js"))
            .and_then(|f| f.set_modified(future))
            .expect("set mtime");
        // The run starts after the file was touched.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let start = Timestamp::task_start();
        let observed = vec![(w.root.join("pkg/a.js"), InputKind::ContentRead)];
        let got = w.auto_inputs(&observed, start).expect("stored");
        assert!(matches!(
            got.inputs.values().next(),
            Some(InputState::File { .. })
        ));
    }

    /// Review: sorted by bytes, `dist-old` came between `dist` and
    /// `dist/x`, and `dist/x` stayed an input of its own.
    #[test]
    fn removals_count_each_removed_subtree_once() {
        let root = Path::new("/w");
        let removed: Vec<PathBuf> = ["/w/dist/x", "/w/dist-old", "/w/dist", "/w/dist/y/z", "/w/a"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let got: Vec<PathBuf> = removals(root, &removed, &BTreeSet::new())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            got,
            vec![
                PathBuf::from("/w/a"),
                PathBuf::from("/w/dist"),
                PathBuf::from("/w/dist-old")
            ]
        );
        let owned = BTreeSet::from([RelPath::from_stored(b"dist").expect("valid")]);
        let got: Vec<PathBuf> = removals(root, &removed, &owned)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            got,
            vec![
                PathBuf::from("/w/a"),
                PathBuf::from("/w/dist"),
                PathBuf::from("/w/dist-old")
            ],
            "inside an owned dist, only dist itself (not strictly inside) stays"
        );
    }

    #[test]
    fn probe_of_missing_path_is_recorded() {
        let w = ws(&[]);
        let start = Timestamp::task_start();
        let observed = vec![(w.root.join("pkg/vite.config.ts"), InputKind::Probe)];
        let got = w.auto_inputs(&observed, start).expect("collects");
        assert_eq!(got.inputs.values().next(), Some(&InputState::Missing));
    }

    #[test]
    fn outputs_observed_ignored_and_globbed() {
        let started = Timestamp::task_start();
        let w = ws(&[
            "pkg/dist/a.js",
            "pkg/dist/b.js",
            "pkg/.cache/x",
            "pkg/extra/e.txt",
            "pkg/dist/map.js.map",
        ]);
        let observed: Vec<PathBuf> = [
            "pkg/dist/a.js",
            "pkg/dist/b.js",
            "pkg/.cache/x",
            "pkg/dist/map.js.map",
            "../escape",
        ]
        .iter()
        .map(|p| w.root.join(p))
        .collect();
        let config = GlobConfig {
            auto: true,
            globs: vec!["extra/**".into(), "!dist/*.map".into()],
        };
        let got = collect_outputs(
            w.paths(),
            &config,
            &observed,
            &[w.pkg.join(".cache")],
            started,
        )
        .expect("collects");
        let rels: Vec<String> = got.iter().map(|o| o.rel.to_string()).collect();
        assert_eq!(
            rels,
            vec!["pkg/dist/a.js", "pkg/dist/b.js", "pkg/extra/e.txt"]
        );
    }

    #[test]
    fn auto_off_ignores_observed_outputs() {
        let w = ws(&["pkg/dist/a.js"]);
        let config = GlobConfig {
            auto: false,
            globs: vec![],
        };
        let got = collect_outputs(
            w.paths(),
            &config,
            &[w.root.join("pkg/dist/a.js")],
            &[],
            Timestamp::task_start(),
        )
        .expect("collects");
        assert!(got.is_empty());
    }

    /// Probe: `"output": ["**/*.js"]` archived the package's sources too,
    /// and a hit wrote them back over the user's edits. What the run did
    /// not touch is marked, so a hit never writes it over something else.
    #[test]
    fn a_glob_match_the_run_did_not_touch_is_marked() {
        let w = ws(&["pkg/other.js", "pkg/src/a.js"]);
        let started = Timestamp::task_start();
        fs::create_dir_all(w.pkg.join("dist")).expect("mkdir");
        fs::write(w.pkg.join("dist/a.js"), "built").expect("write");
        let config = GlobConfig {
            auto: false,
            globs: vec!["**/*.js".into()],
        };
        let got = collect_outputs(w.paths(), &config, &[], &[], started).expect("collects");
        let got: Vec<(String, bool)> = got
            .iter()
            .map(|o| (o.rel.to_string(), o.untouched))
            .collect();
        assert_eq!(
            got,
            vec![
                ("pkg/dist/a.js".to_owned(), false),
                ("pkg/other.js".to_owned(), true),
                ("pkg/src/a.js".to_owned(), true),
            ]
        );
    }

    #[test]
    fn bad_glob_refuses_with_message() {
        let w = ws(&[]);
        let config = GlobConfig {
            auto: true,
            globs: vec!["src/[".into()],
        };
        let err = collect_outputs(w.paths(), &config, &[], &[], Timestamp::task_start())
            .expect_err("bad glob");
        assert!(err.to_string().contains("invalid glob `src/[`"), "{err}");
    }

    #[test]
    fn declared_inputs_opt_out_of_own_state() {
        let config = GlobConfig {
            auto: true,
            globs: vec!["*.tsbuildinfo".into(), "!skip.tsbuildinfo".into()],
        };
        let pkg = Path::new("/ws/app");
        assert!(declared_input(
            &config,
            pkg,
            Path::new("/ws/app/tsconfig.tsbuildinfo")
        ));
        assert!(!declared_input(
            &config,
            pkg,
            Path::new("/ws/app/skip.tsbuildinfo")
        ));
        assert!(!declared_input(
            &config,
            pkg,
            Path::new("/ws/app/.eslintcache")
        ));
        assert!(!declared_input(
            &GlobConfig::auto(),
            pkg,
            Path::new("/ws/app/tsconfig.tsbuildinfo")
        ));
    }
}

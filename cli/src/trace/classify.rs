//! Turns an access log into what the cache needs: inputs (content read,
//! existence probed, directory listed, symlink followed), outputs, files
//! the task created and removed (temporaries), pre-existing files it removed,
//! and inputs it modified (a conflict: such a run must not be stored).
//! Pure: the end-of-run file states come from `AccessLog::end_state`
//! (filled by `resolve::snapshot`), so it runs once the tools' reports
//! (`ignoreInput`/`ignoreOutput`) have arrived, whenever that is.
//!
//! Rules, per real path in syscall order (docs/tracing.md):
//! - read, probed or listed before the task changed it → input;
//! - read after the task wrote it → not an input (it reads its own output);
//! - metadata access (stat, listing, readlink) before the task deletes or
//!   rewrites it, or before it writes anything below it (emptying `dist/`)
//!   → not an input;
//! - content read, then written or deleted → `modified_inputs`;
//! - written and present at the end → output; created and gone → temporary;
//! - tool reports are applied first; paths outside the root, in `/proc`,
//!   `/sys`, `/dev`, under a `.git` directory or an excluded dir are only counted;
//! - then per path, once all its events are in: a tool's cache
//!   (`cache::tool_cache`) is neither input nor output; a path an `input`
//!   `!` pattern matches is no input (nor a modified input), and one an
//!   `output` `!` pattern matches no output, while what the task read there
//!   first still counts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use foldhash::fast::RandomState;

use super::log::{AccessLog, Op, PathKind};
use crate::cache::Exclusions;
use crate::cache::paths::{bytes, is_within};

/// What counts, and what the task's own tools asked to ignore.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassifyOptions<'a> {
    /// Workspace root, as a real (canonical) path: only paths under it count.
    pub(crate) root: &'a Path,
    /// Real paths whose subtrees are never inputs or outputs (vp's cache dir).
    pub(crate) excluded_dirs: &'a [PathBuf],
    /// Absolute paths reported with `ignoreInput`: reads in these subtrees are dropped.
    pub(crate) ignored_inputs: &'a [PathBuf],
    /// Absolute paths reported with `ignoreOutput`: writes in these subtrees are dropped.
    pub(crate) ignored_outputs: &'a [PathBuf],
    /// The `!` patterns of the task's `input`: a path they match is no
    /// input, so the task rewriting one is not a modified input either.
    pub(crate) excluded_inputs: Option<Exclusions<'a>>,
    /// The `!` patterns of the task's `output`: a path they match is no
    /// output (what the task read there first still counts, see `MayBe`).
    pub(crate) excluded_outputs: Option<Exclusions<'a>>,
    /// Whether the caches of tools vp knows are dropped
    /// (`cache::tool_cache`).
    pub(crate) tool_caches: ToolCaches,
    /// Real paths of the task's own state files: they held, when the task
    /// started, exactly what the task left there last time (see
    /// `cache::store::state`). Reading and rewriting one is not modifying
    /// an input.
    pub(crate) own_state: &'a BTreeSet<PathBuf>,
}

impl ClassifyOptions<'_> {
    /// What the task's configuration and vp's list of tools' caches say
    /// about `path` (asked once per path, after its events are gathered).
    fn declared(&self, path: &Path) -> Declared {
        if self.tool_caches == ToolCaches::Ignored
            && crate::cache::tool_cache::contains(self.root, path)
        {
            return Declared::ToolCache;
        }
        Declared::Paths(MayBe {
            input: !self.excluded_inputs.is_some_and(|e| e.excludes(path)),
            output: !self.excluded_outputs.is_some_and(|e| e.excludes(path)),
        })
    }
}

/// What may become of one path ([`ClassifyOptions::declared`]).
#[derive(Debug, Clone, Copy)]
enum Declared {
    /// In a tool's cache: neither input nor output, whatever the task did.
    ToolCache,
    /// Anywhere else, as the task's `!` patterns allow.
    Paths(MayBe),
}

/// Whether one path may be an input (no `input` `!` pattern matches it)
/// and an output (no `output` `!` pattern does). Either way, all the task
/// did there decides the rest: a read before a write still makes the
/// write depend on what was there (`looked_first`), and a path the task
/// read and then removed is still a modified input unless `input`
/// excludes it.
#[derive(Debug, Clone, Copy)]
struct MayBe {
    input: bool,
    output: bool,
}

/// What classifying does with the caches of tools vp knows
/// (`cache::tool_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolCaches {
    /// Neither inputs nor outputs, as if the tool had asked with
    /// `ignoreInput` and `ignoreOutput` (`vp run`, `vp build`).
    Ignored,
    /// Classified like any path (`vp trace` shows what the task did).
    Shown,
}

/// How a task depended on an input path. The cache fingerprints each kind differently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub(crate) enum InputAccess {
    /// File content was read (opened for reading, executed, hard-linked):
    /// fingerprint the content.
    ContentRead,
    /// A file's metadata was read (the stat family) but not its bytes: size
    /// and mtime reach the tool and may decide its result (`tsc -b` skips
    /// work when sources are older than its build info), so fingerprint the
    /// content, the portable stand-in for both.
    Metadata,
    /// Only existence and type were checked (access, a stat of a directory
    /// or missing path, a failed open or exec): fingerprint what is there,
    /// `Missing` meaning "must stay missing".
    Probe { found: Found },
    /// The directory's entries were listed: fingerprint the entry names.
    Listing,
    /// A symlink was read or followed: fingerprint its target text.
    Symlink { target: PathBuf },
}

/// What a probed path was, at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Found {
    Missing,
    File,
    Dir,
    /// Socket, fifo or device.
    Other,
}

/// What an output path is at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OutputKind {
    File,
    /// A directory the task created (or `mkdir`ed while it existed) that
    /// holds no other output: restoring means "make sure it exists".
    /// Directories with outputs below them are implied and not listed.
    Dir,
    Symlink,
    /// Socket or fifo: cannot be archived.
    Other,
}

/// Everything the cache needs to know about one run. Paths are absolute,
/// real (symlinks resolved, except a symlink that is itself an input or
/// output) and under the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AccessClassification {
    /// Paths whose state before the run decided its result.
    pub(crate) inputs: BTreeMap<PathBuf, InputAccess>,
    /// Paths the run created or changed and that exist at its end.
    pub(crate) outputs: BTreeMap<PathBuf, OutputKind>,
    /// Paths the run created and removed again: neither input nor output.
    pub(crate) temporaries: BTreeSet<PathBuf>,
    /// Pre-existing paths the run removed (old build artifacts), only
    /// touched by metadata before: not outputs; outside the directories
    /// the run owns, inputs that must stay missing (`cache::collect::removals`).
    pub(crate) deleted: BTreeSet<PathBuf>,
    /// Directories the run removed an entry from that existed before
    /// (emptying `dist/`, deleting a stale file): a cache hit must leave them
    /// as the run did, without entries the run would have removed.
    pub(crate) emptied_dirs: BTreeSet<PathBuf>,
    /// Files the run read, tried to open or stat'ed before it rewrote or
    /// created them, and that exist at the end: candidates for the task's
    /// own state, which the runner remembers for the next run.
    pub(crate) state_files: BTreeSet<PathBuf>,
    /// Files whose content the run read and then changed or removed: the
    /// run modified its own input, so it must not be stored.
    pub(crate) modified_inputs: Vec<PathBuf>,
    /// Paths the run created, wrote or removed where nothing is stored (an
    /// `output` `!` pattern, a tool's cache; `ignoreOutput` subtrees are
    /// passed on whole): names the task itself made, for a listing it
    /// changed (`cache::own_listings`).
    #[serde(skip)]
    pub(crate) unstored_changes: BTreeSet<PathBuf>,
    /// Paths the run created or wrote beside the workspace (below the
    /// directory that holds its root, outside the root) that exist at its
    /// end: `outDir: '../public'`. A hit could not restore them. Hidden
    /// directories there (`~/.cache`, `~/.npm` when the workspace is in the
    /// home directory) are tools' caches and do not count, nor does anything
    /// farther away (`/tmp`), nor a subtree a tool asked vp to ignore, nor
    /// anything when the workspace is right below `/` or a temporary
    /// directory, nor a change of times or mode only.
    pub(crate) written_outside: Vec<PathBuf>,
    /// Why the trace may be incomplete (copied from the log). Non-empty:
    /// do not store the run as auto-tracked.
    pub(crate) untraceable: Vec<String>,
    /// How many distinct paths were ignored by the exclusion rules.
    pub(crate) excluded: usize,
    /// Listed directories, inputs, whose entries the task itself changed
    /// while it ran: it added entries, whether or not it removed some first
    /// (a generator that lists `src/components/` and writes `index.ts`
    /// there, deleting the old one or its stale files first; a linter that
    /// lists the package and writes its cache file beside; Vite emptying
    /// and refilling `dist/`), or it only removed entries (`rm -rf
    /// dist/*`). Their listing is the one the run left; a name someone else
    /// created there while it ran makes the run not stored
    /// (`cache::collect`), and a name the entry restores need not be there
    /// for a hit (`cache::store::lookup`).
    pub(crate) changed_listings: BTreeSet<PathBuf>,
    /// Outputs (files, symlinks) the task made or rewrote after looking at
    /// them, even finding them missing (`test -f .env.local || cp ...`,
    /// `existsSync`, an exclusive create, `sed -i`), and everything below a
    /// directory it made after finding it missing (`test -d config || cp
    /// -r defaults config`): what it wrote depended on what was there, so a
    /// hit writes one only over what vp left (`cache::store::in_place`).
    pub(crate) looked_first: BTreeSet<PathBuf>,
    /// Files the run executed: each path as executed (a `PATH` search's
    /// candidate, a link such as `/usr/bin/node`) with the real file it
    /// led to. Those outside the workspace (a system `node` that
    /// `#!/usr/bin/env node` found on `PATH`, a shell), and the interpreters
    /// their `#!` lines name, are the toolchain: the entry keeps them
    /// (`cache::programs`), so an upgrade, a link repointed, or another
    /// version first on `PATH` (`nvm use`) is a miss.
    pub(crate) programs: BTreeMap<PathBuf, PathBuf>,
}

impl AccessClassification {
    /// Whether the result may be stored: nothing modified its inputs and the
    /// trace is complete.
    pub(crate) fn is_cacheable(&self) -> bool {
        self.modified_inputs.is_empty()
            && self.untraceable.is_empty()
            && self.written_outside.is_empty()
    }
}

/// A per-path event, after symlink expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Content read (open for reading, exec, link source).
    Read,
    /// Existence only.
    Probe,
    /// Metadata (size, times, mode).
    Stat,
    /// Directory entries.
    List,
    /// A symlink's target (readlink, or followed on the way to another path).
    LinkRead,
    /// The task wrote or created this path.
    Create,
    /// The task created this path, which did not exist when the call was
    /// made: reads before it were failed opens, not reads of an input.
    CreateNew,
    /// The task removed this name.
    Delete,
    /// The task created (or wrote) an entry of this directory.
    ChildCreated,
    /// The task removed an entry of this directory.
    ChildRemoved,
    /// The task created or removed something deeper below this directory.
    DescendantChanged,
}

impl Event {
    fn is_read(self) -> bool {
        matches!(
            self,
            Event::Read | Event::Probe | Event::Stat | Event::List | Event::LinkRead
        )
    }
    fn is_own_change(self) -> bool {
        matches!(self, Event::Create | Event::CreateNew | Event::Delete)
    }
}

/// The per-path events one logged operation stands for.
fn events_of(op: Op) -> &'static [Event] {
    match op {
        Op::Read | Op::Exec => &[Event::Read],
        Op::ReadWrite => &[Event::Read, Event::Create],
        Op::Write
        | Op::CreateNew
        | Op::Mkdir
        | Op::RenameTo
        | Op::RenameToNew
        | Op::Link
        | Op::SetMetadata => &[Event::Create],
        Op::Probe => &[Event::Probe],
        Op::Stat => &[Event::Stat],
        Op::ReadLink => &[Event::LinkRead],
        Op::List => &[Event::List],
        Op::Remove | Op::RenameFrom => &[Event::Delete],
    }
}

pub(crate) fn classify(log: &AccessLog, opts: &ClassifyOptions<'_>) -> AccessClassification {
    let state = &log.end_state;
    let mut kept = Kept {
        opts,
        per_path: EventsByPath::with_capacity(log.accesses.len()),
        excluded: HashSet::default(),
    };
    let mut renamed_dirs: Vec<&Path> = Vec::new();
    let mut written_beside: Vec<&Path> = Vec::new();

    // Symlinks that reads went through, with the index of the first such
    // read: a read resolves after the run, so a link the task repointed
    // after reading through it leaves the read's real path unknown.
    let mut links_read_through: HashMap<&[u8], usize, RandomState> = HashMap::default();
    let mut name_changes: Vec<(usize, &Path)> = Vec::new();
    let mut programs: BTreeMap<&Path, &Path> = BTreeMap::new();
    // Whether the access after `index` is the destination of the same
    // `rename` with RENAME_NOREPLACE, and its name existed: the call failed.
    let rename_refused = |index: usize| {
        log.accesses.get(index + 1).is_some_and(|to| {
            to.op == Op::RenameToNew && to.at_call.as_ref().is_some_and(|c| c.existed)
        })
    };
    for (index, access) in log.accesses.iter().enumerate() {
        let pinned = access.at_call.as_ref().and_then(|c| c.real.as_deref());
        // A name made where nothing was (`test -e current || ln -s v1
        // current`) was not repointed: what looked there before found
        // nothing to read through.
        let made_new = access.at_call.as_ref().is_some_and(|c| !c.existed);
        if access.op.changes_name() && !made_new {
            let real = pinned.unwrap_or_else(|| state.resolve(&access.path, false).real);
            name_changes.push((index, real));
        }
        if super::resolve::is_pseudo(&access.path) {
            kept.excluded.insert(bytes(&access.path));
            continue;
        }
        let mut resolution = state.resolve(&access.path, access.follow);
        if let Some(real) = pinned {
            // Where the call really landed, pinned while it was held.
            resolution.real = real;
        }
        if access.op == Op::Exec && state.kind(resolution.real) == PathKind::File {
            programs.insert(access.path.as_path(), resolution.real);
        }
        if !access.op.changes_name() {
            for link in resolution.links {
                links_read_through.entry(bytes(link)).or_insert(index);
            }
        }
        for link in resolution.links {
            kept.push(link, Event::LinkRead);
        }
        let created_new = access.at_call.as_ref().is_some_and(|c| !c.existed);
        let existed = access.at_call.as_ref().is_some_and(|c| c.existed);
        // Times, mode or owner change the file, not its directory's entries.
        let names_change = access.op != Op::SetMetadata;
        // Nor does writing a file that exists in place (`writeFileSync` of a
        // barrel or a cache file the last run left), but it still writes
        // below each directory above: a check of one (`mkdir -p dist`) was
        // the task making room for its output, while a listing stays an
        // input like any other.
        let in_place = existed && matches!(access.op, Op::Write | Op::ReadWrite);
        // An exclusive create that succeeds first found the name free: it
        // looked (`O_EXCL` is how a task makes a file only if missing).
        if matches!(access.op, Op::CreateNew | Op::RenameToNew) && created_new {
            kept.push(resolution.real, Event::Probe);
        }
        for &event in events_of(access.op) {
            // A read-write open that created the file read nothing (Node's
            // `copyFileSync` opens its destination so).
            if event == Event::Read && access.op == Op::ReadWrite && created_new {
                continue;
            }
            let event = match event {
                Event::Create if created_new => Event::CreateNew,
                // `mkdir -p` of a directory that exists, an exclusive create
                // (`cp -n`, `wx`), a `link` or `symlink` onto a name that
                // exists: each fails and changes nothing; it only looked.
                Event::Create
                    if existed
                        && matches!(
                            access.op,
                            Op::Mkdir | Op::CreateNew | Op::RenameToNew | Op::Link
                        ) =>
                {
                    Event::Probe
                }
                // The source of a `mv -n` onto a name that existed: the call
                // failed, and the source stayed where it was.
                Event::Delete if access.op == Op::RenameFrom && rename_refused(index) => {
                    Event::Probe
                }
                other => other,
            };
            let pushed = kept.push(resolution.real, event);
            if pushed == Pushed::Excluded
                && matches!(event, Event::Create | Event::CreateNew)
                && access.op != Op::SetMetadata
            {
                written_beside.push(resolution.real);
            }
            // An output a tool asked vp to ignore (its cache file) is still
            // a name the task made: a directory it listed and then wrote
            // that name into is a listing it changed, not one that changed
            // under it (which would keep the run from being stored).
            if pushed != Pushed::Excluded && event.is_own_change() && names_change {
                // Creating or removing a name changes every directory above
                // it (within the root): their listings and stats are not inputs.
                for (depth, ancestor) in resolution.real.ancestors().skip(1).enumerate() {
                    if !is_within(ancestor, opts.root) {
                        break;
                    }
                    let event = if depth > 0 || in_place {
                        Event::DescendantChanged
                    } else if event == Event::Delete {
                        Event::ChildRemoved
                    } else {
                        Event::ChildCreated
                    };
                    kept.push(ancestor, event);
                }
            }
        }
        let moved_in = access.op == Op::RenameTo || (access.op == Op::RenameToNew && !existed);
        if moved_in && state.kind(resolution.real) == PathKind::Dir {
            renamed_dirs.push(resolution.real);
        }
    }

    let mut out = AccessClassification {
        untraceable: log.untraceable.clone(),
        written_outside: outside_outputs(&written_beside, state, opts),
        ..AccessClassification::default()
    };
    for (index, changed) in &name_changes {
        if links_read_through
            .get(bytes(changed))
            .is_some_and(|first_read| first_read < index)
        {
            out.untraceable.push(format!(
                "it repointed the symlink `{}` after reading through it, so what it read cannot be pinned down",
                changed.display()
            ));
            break;
        }
    }
    let mut inputs: Vec<(PathBuf, InputAccess)> = Vec::new();
    let mut filled_dirs: Vec<PathBuf> = Vec::new();
    kept.per_path.for_each_path(|path, events| {
        let may_be = match opts.declared(path) {
            Declared::ToolCache => {
                // Still a name the task made, in a listing above it.
                if events.iter().any(|e| e.is_own_change()) {
                    out.unstored_changes.insert(path.to_path_buf());
                }
                return;
            }
            Declared::Paths(may_be) => may_be,
        };
        let kind = state.kind(path);
        // Most paths are files: one lookup for them.
        let link_target = match kind {
            PathKind::Symlink => state.looked.link_target(path),
            _ => None,
        };
        if let Some(access) = classify_path(
            path,
            events,
            kind,
            link_target,
            opts.own_state,
            may_be,
            &mut out,
        ) {
            inputs.push((path.to_path_buf(), access));
        } else if may_be.input
            && kind == PathKind::Dir
            && events.contains(&Event::List)
            && events.contains(&Event::ChildCreated)
            && !events.iter().any(|e| e.is_own_change())
        {
            filled_dirs.push(path.to_path_buf());
        }
    });
    // A directory the task listed and then added entries to: what it found
    // there decided what it wrote (a barrel file, a route table), so its
    // listing as the run left it is an input.
    for dir in filled_dirs {
        out.changed_listings.insert(dir.clone());
        inputs.push((dir, InputAccess::Listing));
    }
    // Sorted first, the map is built in one pass (tens of thousands of
    // inputs inserted one by one cost most of the classification). Stable:
    // paths come in the order first met, often nearly sorted already.
    inputs.sort_by(|(a, _), (b, _)| super::log::path_order(a, b));
    out.inputs = inputs.into_iter().collect();

    // A directory renamed into place brings its whole subtree with it.
    for dir in renamed_dirs {
        if let Some(entries) = state.trees.get(dir) {
            for (path, kind) in entries {
                if is_excluded(path, opts)
                    || under_any(path, opts.ignored_outputs)
                    || !matches!(
                        opts.declared(path),
                        Declared::Paths(MayBe { output: true, .. })
                    )
                {
                    continue;
                }
                if let Some(kind) = output_kind(*kind) {
                    out.outputs.entry(path.clone()).or_insert(kind);
                }
            }
        }
    }

    // Below a directory made after finding it missing, every output was
    // made only because it was missing.
    let made_if_missing: Vec<PathBuf> = out
        .looked_first
        .iter()
        .filter(|p| out.outputs.get(*p) == Some(&OutputKind::Dir))
        .cloned()
        .collect();
    for dir in made_if_missing {
        // In `Path` order a directory's subtree follows it at once.
        let below: Vec<PathBuf> = out
            .outputs
            .range(dir.clone()..)
            .map(|(p, _)| p)
            .skip(1)
            .take_while(|p| p.starts_with(&dir))
            .cloned()
            .collect();
        out.looked_first.extend(below);
    }
    out.looked_first.retain(|p| {
        matches!(
            out.outputs.get(p),
            Some(OutputKind::File | OutputKind::Symlink)
        )
    });
    prune_implied_dirs(&mut out.outputs);
    out.modified_inputs.sort();
    out.excluded = kept.excluded.len();
    out.programs = programs
        .into_iter()
        .map(|(run, real)| (run.to_path_buf(), real.to_path_buf()))
        .collect();
    out
}

/// Files what the task did to `path` into `out`; returns how it is an
/// input, if it is one.
fn classify_path(
    path: &Path,
    events: &[Event],
    kind: PathKind,
    link_target: Option<&Path>,
    own_state: &BTreeSet<PathBuf>,
    may_be: MayBe,
    out: &mut AccessClassification,
) -> Option<InputAccess> {
    // A directory has no content: opening one for reading is a probe.
    let content_read = |e: &Event| *e == Event::Read && kind != PathKind::Dir;

    if let Some(first_own) = events.iter().position(|e| e.is_own_change()) {
        // Metadata looked at before the task changed the path (stat before
        // unlink, the old dist/ before rewriting it) is not an input; content
        // read before is: the task modified its own input.
        // A path missing at its first write was missing at every read before
        // it (a `.tsbuildinfo` probed with open(), then written): an output.
        let was_missing = events[first_own] == Event::CreateNew;
        let read_first = events[..first_own].iter().any(content_read);
        // Looked at (read, tried to open, stat'ed) before writing it: a tool
        // checking for its state file, which it may read next time.
        let looked_first = read_first
            || events[..first_own]
                .iter()
                .any(|e| matches!(e, Event::Read | Event::Stat));
        // Only a path that may be both: own state makes a modified input
        // an output, so one that may not be an output would be tracked
        // nowhere (an edit of it would hit), and one that may not be an
        // input is never a modified input anyway.
        if looked_first && kind == PathKind::File && may_be.input && may_be.output {
            out.state_files.insert(path.to_path_buf());
        }
        // Made or rewritten after the task looked at it (even found it
        // missing: `existsSync`, `test -f`, an exclusive create): what it
        // wrote depended on what was there. Not when it removed the path
        // first: it did so whatever was there.
        let decided_on_it =
            events[first_own] != Event::Delete && events[..first_own].iter().any(|e| e.is_read());
        if decided_on_it {
            out.looked_first.insert(path.to_path_buf());
        }
        if read_first && !was_missing && !own_state.contains(path) && may_be.input {
            out.modified_inputs.push(path.to_path_buf());
        }
        if !may_be.output {
            // Made, rewritten or removed where the task's configuration
            // stores nothing; still a name it made, in a listing above.
            out.unstored_changes.insert(path.to_path_buf());
            return None;
        }
        if events[first_own] == Event::Delete
            && let Some(parent) = path.parent()
        {
            out.emptied_dirs.insert(parent.to_path_buf());
        }
        match output_kind(kind) {
            Some(output) => {
                out.outputs.insert(path.to_path_buf(), output);
            }
            None if matches!(events[first_own], Event::Create | Event::CreateNew) => {
                out.temporaries.insert(path.to_path_buf());
            }
            None => {
                out.deleted.insert(path.to_path_buf());
            }
        }
        return None;
    }

    // A directory the task writes into: its listing is the task's own doing
    // when the task adds entries, and its existence is implied by the
    // outputs below it. Content reads cannot happen on a directory. A
    // directory it listed and only removed entries from (`rm -rf dist/*`,
    // `find -name '*.tmp' -delete`) keeps its listing, as the run left it:
    // a new entry there misses, since the task would have removed it too.
    let children_created = events.contains(&Event::ChildCreated);
    let children_removed = events.contains(&Event::ChildRemoved);
    let below_changed =
        children_created || children_removed || events.contains(&Event::DescendantChanged);
    let counts = |e: &&Event| match e {
        Event::List => !children_created,
        Event::Probe | Event::Stat | Event::Read | Event::LinkRead => !below_changed,
        _ => false,
    };
    let reads = || events.iter().filter(counts);
    if !may_be.input {
        return None;
    }
    reads().next()?;
    let access = match kind {
        PathKind::Symlink => InputAccess::Symlink {
            target: link_target.map(Path::to_path_buf).unwrap_or_default(),
        },
        PathKind::Missing => InputAccess::Probe {
            found: Found::Missing,
        },
        PathKind::File if reads().any(content_read) => InputAccess::ContentRead,
        PathKind::File if reads().any(|e| *e == Event::Stat) => InputAccess::Metadata,
        PathKind::File => InputAccess::Probe { found: Found::File },
        PathKind::Dir if reads().any(|e| *e == Event::List) => {
            if children_removed {
                out.changed_listings.insert(path.to_path_buf());
            }
            InputAccess::Listing
        }
        PathKind::Dir => InputAccess::Probe { found: Found::Dir },
        PathKind::Other => InputAccess::Probe {
            found: Found::Other,
        },
    };
    Some(access)
}

/// The events classifying keeps, and the paths the exclusion rules left out.
struct Kept<'a, 'o> {
    opts: &'o ClassifyOptions<'o>,
    per_path: EventsByPath<'a>,
    /// Paths excluded, each spelling once (only counted; the tracer's paths
    /// are clean, so spellings are paths).
    excluded: HashSet<&'a [u8], RandomState>,
}

impl<'a> Kept<'a, '_> {
    /// Keeps `event` unless the path is excluded or the tools asked to
    /// ignore it; says which.
    fn push(&mut self, path: &'a Path, event: Event) -> Pushed {
        let opts = self.opts;
        if is_excluded(path, opts) {
            self.excluded.insert(bytes(path));
            return Pushed::Excluded;
        }
        if event.is_read() && under_any(path, opts.ignored_inputs) {
            return Pushed::Ignored;
        }
        if event.is_own_change() && under_any(path, opts.ignored_outputs) {
            return Pushed::Ignored;
        }
        self.per_path.push(path, event);
        Pushed::Kept
    }
}

/// What became of an event offered to [`Kept::push`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pushed {
    Kept,
    /// Below a subtree a tool asked vp to ignore (`ignoreInput`,
    /// `ignoreOutput`): not an input or output, but a change the task
    /// still made to the directories above it.
    Ignored,
    /// A path vp never records (outside the root, the cache, `.git`).
    Excluded,
}

/// Every kept event in syscall order, and each path it happened to once,
/// borrowed from the log: a large log's paths need neither a copy nor a
/// vector of events each.
struct EventsByPath<'a> {
    ids: HashMap<&'a [u8], usize, RandomState>,
    paths: Vec<&'a Path>,
    /// (index into `paths`, event), in the order they were pushed.
    events: Vec<(usize, Event)>,
}

impl<'a> EventsByPath<'a> {
    /// Room for `accesses` events and as many paths: most accesses are one
    /// event on a path of their own, and growing tables of tens of
    /// thousands of entries costs more than the room.
    fn with_capacity(accesses: usize) -> Self {
        Self {
            ids: HashMap::with_capacity_and_hasher(accesses, RandomState::default()),
            paths: Vec::with_capacity(accesses),
            events: Vec::with_capacity(accesses),
        }
    }

    fn push(&mut self, path: &'a Path, event: Event) {
        let paths = &mut self.paths;
        let id = *self.ids.entry(bytes(path)).or_insert_with(|| {
            paths.push(path);
            paths.len() - 1
        });
        self.events.push((id, event));
    }

    /// Calls `f` with each path and its events, in the order pushed
    /// (a counting sort by path: stable, one pass each way).
    fn for_each_path(self, mut f: impl FnMut(&'a Path, &[Event])) {
        let mut starts = vec![0usize; self.paths.len() + 1];
        for &(id, _) in &self.events {
            starts[id + 1] += 1;
        }
        for id in 0..self.paths.len() {
            starts[id + 1] += starts[id];
        }
        let mut next = starts.clone();
        let mut sorted = vec![Event::Read; self.events.len()];
        for &(id, event) in &self.events {
            sorted[next[id]] = event;
            next[id] += 1;
        }
        for (id, path) in self.paths.iter().enumerate() {
            f(path, &sorted[starts[id]..starts[id + 1]]);
        }
    }
}

fn output_kind(kind: PathKind) -> Option<OutputKind> {
    match kind {
        PathKind::Missing => None,
        PathKind::File => Some(OutputKind::File),
        PathKind::Dir => Some(OutputKind::Dir),
        PathKind::Symlink => Some(OutputKind::Symlink),
        PathKind::Other => Some(OutputKind::Other),
    }
}

/// Drops directory outputs that contain another output: restoring the
/// contents recreates them.
fn prune_implied_dirs(outputs: &mut BTreeMap<PathBuf, OutputKind>) {
    let implied: Vec<PathBuf> = outputs
        .iter()
        .filter(|(_, kind)| **kind == OutputKind::Dir)
        .filter(|(dir, _)| {
            outputs
                .range::<PathBuf, _>((std::ops::Bound::Excluded(*dir), std::ops::Bound::Unbounded))
                .next()
                .is_some_and(|(next, _)| is_within(next, dir))
        })
        .map(|(dir, _)| dir.clone())
        .collect();
    for dir in implied {
        outputs.remove(&dir);
    }
}

fn under_any(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|dir| is_within(path, dir))
}

/// See `AccessClassification::written_outside`: of the excluded paths the
/// task created or wrote, those beside the workspace that it left behind,
/// sorted, each once.
fn outside_outputs(
    written: &[&Path],
    state: &super::log::EndState,
    opts: &ClassifyOptions<'_>,
) -> Vec<PathBuf> {
    // A workspace right below `/` (`/app` in a container) has the whole
    // system beside it, and one right below a temporary directory
    // (`/tmp/repro`) every tool's scratch files: neither can be told from
    // an output.
    let Some(beside) = opts
        .root
        .parent()
        .filter(|p| p.parent().is_some() && !is_temp_dir(p))
    else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = written
        .iter()
        .filter(|path| !is_within(path, opts.root) && is_within(path, beside))
        .filter(|path| {
            let below = path.strip_prefix(beside).unwrap_or(path);
            !below
                .components()
                .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
        })
        .filter(|path| !under_any(path, opts.ignored_outputs))
        .filter(|path| state.kind(path) != PathKind::Missing)
        .map(|path| path.to_path_buf())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Whether `dir` is where tools put scratch files: `/tmp`, `/var/tmp`,
/// `/dev/shm` or the temporary directory vp's environment names.
fn is_temp_dir(dir: &Path) -> bool {
    [
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
    ]
    .contains(&dir)
        || std::env::temp_dir() == dir
}

/// Asked for every event of every recorded path: byte comparisons where the
/// paths are clean (`paths::is_within`), components only where they are not.
fn is_excluded(path: &Path, opts: &ClassifyOptions<'_>) -> bool {
    if !is_within(path, opts.root) {
        return true;
    }
    super::resolve::is_pseudo(path)
        || below_git(path, opts.root)
        || under_any(path, opts.excluded_dirs)
}

/// Whether a name between `root` and the end of `path` (which is within
/// `root`) is `.git`.
fn below_git(path: &Path, root: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if !bytes.windows(4).any(|w| w == b".git") {
        return false;
    }
    match path.strip_prefix(root) {
        Ok(relative) => relative
            .components()
            .any(|c| c == Component::Normal(".git".as_ref())),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::log::{Access, EndState, Looked, Resolution};
    use std::time::Duration;

    const ROOT: &str = "/w";

    /// A synthetic log: accesses in order plus the end-of-run kinds.
    #[derive(Default)]
    struct Scenario {
        log: AccessLog,
        own_state: BTreeSet<PathBuf>,
        /// The task's `input` and `output` globs, its package being `ROOT`.
        input_globs: Vec<String>,
        output_globs: Vec<String>,
        /// `vp trace`'s view rather than `vp run`'s.
        tool_caches_shown: bool,
    }

    impl Scenario {
        fn op(mut self, op: Op, path: &str) -> Self {
            self.log.accesses.push(Access {
                at: Duration::ZERO,
                tid: 1,
                path: PathBuf::from(path),
                op,
                follow: true,
                at_call: None,
            });
            self
        }
        fn nofollow(mut self, op: Op, path: &str) -> Self {
            self.log.accesses.push(Access {
                at: Duration::ZERO,
                tid: 1,
                path: PathBuf::from(path),
                op,
                follow: false,
                at_call: None,
            });
            self
        }
        /// A name-changing call, with what the supervisor saw while holding it.
        fn at_call(mut self, op: Op, path: &str, real: &str, existed: bool) -> Self {
            let at_call = Some(crate::trace::log::AtCall {
                real: Some(PathBuf::from(real)),
                existed,
            });
            self.log.accesses.push(Access {
                at: Duration::ZERO,
                tid: 1,
                path: PathBuf::from(path),
                op,
                follow: true,
                at_call,
            });
            self
        }
        fn own_state(mut self, path: &str) -> Self {
            self.own_state.insert(PathBuf::from(path));
            self
        }
        fn input_globs(mut self, globs: &[&str]) -> Self {
            self.input_globs = globs.iter().map(|g| g.to_string()).collect();
            self
        }
        fn output_globs(mut self, globs: &[&str]) -> Self {
            self.output_globs = globs.iter().map(|g| g.to_string()).collect();
            self
        }
        fn seen_by_vp_trace(mut self) -> Self {
            self.tool_caches_shown = true;
            self
        }
        fn exists(mut self, path: &str, kind: PathKind) -> Self {
            // A file's stamp is storing's business, not classifying's.
            let looked = match kind {
                PathKind::Missing => Looked::Missing,
                PathKind::Symlink => Looked::Symlink(PathBuf::new()),
                other => Looked::Kind(other),
            };
            self.log
                .end_state
                .looked
                .insert(PathBuf::from(path), looked);
            self
        }
        fn file(self, path: &str) -> Self {
            self.exists(path, PathKind::File)
        }
        fn dir(self, path: &str) -> Self {
            self.exists(path, PathKind::Dir)
        }
        fn link(mut self, link: &str, target: &str) -> Self {
            self.log
                .end_state
                .looked
                .insert(PathBuf::from(link), Looked::Symlink(PathBuf::from(target)));
            self
        }
        fn resolves(mut self, path: &str, follow: bool, real: &str, links: &[&str]) -> Self {
            self.log.end_state.resolved.insert(
                PathBuf::from(path),
                follow,
                Resolution {
                    real: PathBuf::from(real),
                    links: links.iter().map(PathBuf::from).collect(),
                },
            );
            self
        }
        fn run(&self) -> AccessClassification {
            self.run_with(&[], &[], &[])
        }
        fn run_with(
            &self,
            excluded: &[PathBuf],
            ignored_in: &[PathBuf],
            ignored_out: &[PathBuf],
        ) -> AccessClassification {
            self.run_at(ROOT, excluded, ignored_in, ignored_out)
        }
        fn run_at(
            &self,
            root: &str,
            excluded: &[PathBuf],
            ignored_in: &[PathBuf],
            ignored_out: &[PathBuf],
        ) -> AccessClassification {
            let input_globs = crate::cache::TaskGlobs::new(&self.input_globs).expect("globs");
            let output_globs = crate::cache::TaskGlobs::new(&self.output_globs).expect("globs");
            let opts = ClassifyOptions {
                root: Path::new(root),
                excluded_dirs: excluded,
                ignored_inputs: ignored_in,
                ignored_outputs: ignored_out,
                excluded_inputs: Exclusions::of(Path::new(ROOT), &input_globs),
                excluded_outputs: Exclusions::of(Path::new(ROOT), &output_globs),
                tool_caches: if self.tool_caches_shown {
                    ToolCaches::Shown
                } else {
                    ToolCaches::Ignored
                },
                own_state: &self.own_state,
            };
            classify(&self.log, &opts)
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn inputs(c: &AccessClassification) -> Vec<(&str, &InputAccess)> {
        c.inputs
            .iter()
            .map(|(k, v)| (k.to_str().expect("utf8"), v))
            .collect()
    }

    fn outputs(c: &AccessClassification) -> Vec<&str> {
        c.outputs
            .keys()
            .map(|k| k.to_str().expect("utf8"))
            .collect()
    }

    #[test]
    fn empty_log_is_empty_and_cacheable() {
        let c = Scenario::default().run();
        assert_eq!(c, AccessClassification::default());
        assert!(c.is_cacheable());
    }

    #[test]
    fn cat_a_into_b() {
        let c = Scenario::default()
            .op(Op::Read, "/w/a")
            .op(Op::Write, "/w/b")
            .file("/w/a")
            .file("/w/b")
            .run();
        assert_eq!(inputs(&c), vec![("/w/a", &InputAccess::ContentRead)]);
        assert_eq!(outputs(&c), vec!["/w/b"]);
        assert!(c.is_cacheable());
    }

    /// Review: `mv -n` (RENAME_NOREPLACE) onto a name that exists fails; it
    /// was taken for a move, which made the user's file at the destination
    /// an output, and the source, still there, one too.
    #[test]
    fn a_refused_no_replace_rename_moved_nothing() {
        let c = Scenario::default()
            .at_call(Op::RenameFrom, "/w/new.env", "/w/new.env", true)
            .at_call(Op::RenameToNew, "/w/.env", "/w/.env", true)
            .at_call(Op::RenameFrom, "/w/a.tmp", "/w/a.tmp", true)
            .at_call(Op::RenameToNew, "/w/a.txt", "/w/a.txt", false)
            .file("/w/new.env")
            .file("/w/.env")
            .file("/w/a.txt")
            .run();
        assert_eq!(outputs(&c), vec!["/w/a.txt"], "only the move that happened");
        assert!(c.looked_first.contains(&p("/w/a.txt")), "made only if free");
        assert_eq!(
            c.deleted,
            BTreeSet::from([p("/w/a.tmp")]),
            "the one moved away"
        );
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/.env", &InputAccess::Probe { found: Found::File }),
                ("/w/new.env", &InputAccess::Probe { found: Found::File }),
            ],
            "the refused move only looked at both names"
        );
    }

    /// Review: an exclusive create of a name that exists (`cp -n` onto the
    /// user's `.env.local`, `wx`, `set -C`) fails; it was taken for a write,
    /// which made the user's file an output, archived and uploaded.
    #[test]
    fn a_failed_exclusive_create_or_link_only_looked() {
        let c = Scenario::default()
            .at_call(Op::CreateNew, "/w/.env.local", "/w/.env.local", true)
            .at_call(Op::Link, "/w/current", "/w/current", true)
            .at_call(Op::CreateNew, "/w/new.txt", "/w/new.txt", false)
            .file("/w/.env.local")
            .link("/w/current", "v1")
            .file("/w/new.txt")
            .run();
        assert_eq!(outputs(&c), vec!["/w/new.txt"]);
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/.env.local", &InputAccess::Probe { found: Found::File }),
                (
                    "/w/current",
                    &InputAccess::Symlink {
                        target: PathBuf::from("v1")
                    }
                ),
            ]
        );
    }

    #[test]
    fn executed_files_are_the_programs_and_failed_execs_are_not() {
        let c = Scenario::default()
            .op(Op::Exec, "/w/node_modules/.bin/tool")
            .op(Op::Exec, "/home/u/.nvm/bin/node")
            .op(Op::Exec, "/usr/bin/node")
            .link("/usr/bin/node", "/opt/node/bin/node")
            .resolves(
                "/usr/bin/node",
                true,
                "/opt/node/bin/node",
                &["/usr/bin/node"],
            )
            .file("/opt/node/bin/node")
            .file("/w/node_modules/.bin/tool")
            .run();
        let programs: Vec<(&str, &str)> = c
            .programs
            .iter()
            .filter_map(|(run, real)| Some((run.to_str()?, real.to_str()?)))
            .collect();
        // The PATH search's failed attempt is no program; a link leads to
        // its target.
        assert_eq!(
            programs,
            vec![
                ("/usr/bin/node", "/opt/node/bin/node"),
                ("/w/node_modules/.bin/tool", "/w/node_modules/.bin/tool")
            ]
        );
        assert_eq!(
            inputs(&c),
            vec![("/w/node_modules/.bin/tool", &InputAccess::ContentRead)],
            "inside the workspace an executed file is a content input too"
        );
    }

    #[test]
    fn probe_kinds_come_from_the_end_state() {
        let c = Scenario::default()
            .op(Op::Probe, "/w/missing")
            .op(Op::Read, "/w/also-missing")
            .op(Op::Exec, "/w/node_modules/.bin/node")
            .op(Op::Probe, "/w/f")
            .op(Op::Probe, "/w/d")
            .op(Op::Read, "/w/d2")
            .file("/w/f")
            .dir("/w/d")
            .dir("/w/d2")
            .run();
        let missing = InputAccess::Probe {
            found: Found::Missing,
        };
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/also-missing", &missing),
                ("/w/d", &InputAccess::Probe { found: Found::Dir }),
                // Opening a directory for reading is not a content read.
                ("/w/d2", &InputAccess::Probe { found: Found::Dir }),
                ("/w/f", &InputAccess::Probe { found: Found::File }),
                ("/w/missing", &missing),
                ("/w/node_modules/.bin/node", &missing),
            ]
        );
    }

    /// Issue: `tsc -b` with everything up to date only stats its sources and
    /// compares mtimes; fingerprinting those by existence made an edit a hit.
    #[test]
    fn a_stated_file_is_a_metadata_input_but_a_stated_dir_or_missing_path_is_a_probe() {
        let c = Scenario::default()
            .op(Op::Stat, "/w/src/a.ts")
            .op(Op::Stat, "/w/src")
            .op(Op::Stat, "/w/nope.ts")
            .op(Op::Probe, "/w/src/b.ts")
            .op(Op::Stat, "/w/src/c.ts")
            .op(Op::Read, "/w/src/c.ts")
            .file("/w/src/a.ts")
            .file("/w/src/b.ts")
            .file("/w/src/c.ts")
            .dir("/w/src")
            .run();
        assert_eq!(
            inputs(&c),
            vec![
                (
                    "/w/nope.ts",
                    &InputAccess::Probe {
                        found: Found::Missing
                    }
                ),
                ("/w/src", &InputAccess::Probe { found: Found::Dir }),
                ("/w/src/a.ts", &InputAccess::Metadata),
                // `access` learns existence only.
                ("/w/src/b.ts", &InputAccess::Probe { found: Found::File }),
                ("/w/src/c.ts", &InputAccess::ContentRead),
            ]
        );
        assert!(c.is_cacheable());
    }

    /// Issue: `tsc -b` opens its `.tsbuildinfo` before it exists, then writes
    /// it; a failed open looked like "read its input, then modified it".
    #[test]
    fn a_file_missing_at_its_first_write_was_never_an_input() {
        let c = Scenario::default()
            .op(Op::Read, "/w/node_modules/.tmp/app.tsbuildinfo")
            .at_call(
                Op::Write,
                "/w/node_modules/.tmp/app.tsbuildinfo",
                "/w/node_modules/.tmp/app.tsbuildinfo",
                false,
            )
            .file("/w/node_modules/.tmp/app.tsbuildinfo")
            .run();
        assert!(c.modified_inputs.is_empty(), "{:?}", c.modified_inputs);
        assert_eq!(outputs(&c), vec!["/w/node_modules/.tmp/app.tsbuildinfo"]);
        // The same file existing at the write: a real read of an input.
        let c = Scenario::default()
            .op(Op::Read, "/w/state.json")
            .at_call(Op::Write, "/w/state.json", "/w/state.json", true)
            .file("/w/state.json")
            .run();
        assert_eq!(c.modified_inputs, vec![PathBuf::from("/w/state.json")]);
    }

    /// `tsc` (TypeScript 7) tries to open its `.tsbuildinfo`, tries to write
    /// it before `node_modules/.tmp` exists (ENOENT), makes the directory,
    /// then writes it: never an input.
    #[test]
    fn a_write_into_a_missing_directory_leaves_the_path_missing() {
        let mut s = Scenario::default().op(Op::Read, "/w/node_modules/.tmp/app.tsbuildinfo");
        s.log.accesses.push(Access {
            at: Duration::ZERO,
            tid: 1,
            path: PathBuf::from("/w/node_modules/.tmp/app.tsbuildinfo"),
            op: Op::Write,
            follow: true,
            at_call: Some(crate::trace::log::AtCall {
                real: None,
                existed: false,
            }),
        });
        let c = s
            .op(Op::Mkdir, "/w/node_modules/.tmp")
            .at_call(
                Op::Write,
                "/w/node_modules/.tmp/app.tsbuildinfo",
                "/w/node_modules/.tmp/app.tsbuildinfo",
                false,
            )
            .file("/w/node_modules/.tmp/app.tsbuildinfo")
            .dir("/w/node_modules/.tmp")
            .run();
        assert!(c.modified_inputs.is_empty(), "{:?}", c.modified_inputs);
        assert_eq!(outputs(&c), vec!["/w/node_modules/.tmp/app.tsbuildinfo"]);
    }

    /// Outputs the task decided on: looked at, even found missing, before
    /// making them; not a blind write, not a rewrite after removing the old
    /// file, not the implicit read of a read-write open that created it.
    #[test]
    fn outputs_made_after_looking_are_looked_first() {
        let c = Scenario::default()
            .op(Op::Probe, "/w/.env.local")
            .at_call(Op::Write, "/w/.env.local", "/w/.env.local", false)
            .at_call(Op::CreateNew, "/w/.env.x", "/w/.env.x", false)
            .op(Op::Stat, "/w/dist/index.html")
            .op(Op::Remove, "/w/dist/index.html")
            .at_call(Op::Write, "/w/dist/index.html", "/w/dist/index.html", false)
            .at_call(Op::ReadWrite, "/w/copied.png", "/w/copied.png", false)
            .at_call(Op::Write, "/w/blind.txt", "/w/blind.txt", false)
            .op(Op::Stat, "/w/config")
            .at_call(Op::Mkdir, "/w/config", "/w/config", false)
            .at_call(
                Op::Write,
                "/w/config/settings.json",
                "/w/config/settings.json",
                false,
            )
            .file("/w/.env.local")
            .file("/w/.env.x")
            .dir("/w/dist")
            .file("/w/dist/index.html")
            .file("/w/copied.png")
            .file("/w/blind.txt")
            .dir("/w/config")
            .file("/w/config/settings.json")
            .run();
        let looked: Vec<&str> = c.looked_first.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(
            looked,
            vec!["/w/.env.local", "/w/.env.x", "/w/config/settings.json"]
        );
    }

    /// Probe: `test -e current || ln -s defaults current` was "not cached:
    /// it repointed the symlink after reading through it"; it only made the
    /// link where nothing was.
    #[test]
    fn making_a_link_where_nothing_was_is_not_repointing_it() {
        let c = Scenario::default()
            .op(Op::Stat, "/w/current")
            .at_call(Op::Link, "/w/current", "/w/current", false)
            .resolves("/w/current", true, "/w/defaults", &["/w/current"])
            .link("/w/current", "defaults")
            .dir("/w/defaults")
            .run();
        assert!(c.untraceable.is_empty(), "{:?}", c.untraceable);
        assert!(c.is_cacheable());
    }

    /// Issue: write paths resolved after the run filed a write through a
    /// symlink the task repointed later under the link's new target.
    #[test]
    fn a_write_is_filed_where_it_landed_at_the_call() {
        let c = Scenario::default()
            .at_call(
                Op::Write,
                "/w/dist/link/y.txt",
                "/w/dist/inner/y.txt",
                false,
            )
            .resolves(
                "/w/dist/link/y.txt",
                true,
                "/w/dist/other/y.txt",
                &["/w/dist/link"],
            )
            .file("/w/dist/inner/y.txt")
            .run();
        assert_eq!(outputs(&c), vec!["/w/dist/inner/y.txt"]);
        assert!(c.is_cacheable());
    }

    /// Issue: a tool's incremental state (`.tsbuildinfo`, `.eslintcache`)
    /// is read and rewritten on every run after the first: uncacheable
    /// forever. When it held what the task left there, it is own state.
    #[test]
    fn a_state_file_the_task_left_is_an_output_not_a_modified_input() {
        let scenario = || {
            Scenario::default()
                .op(Op::Read, "/w/src/a.ts")
                .op(Op::Read, "/w/tsconfig.tsbuildinfo")
                .at_call(
                    Op::Write,
                    "/w/tsconfig.tsbuildinfo",
                    "/w/tsconfig.tsbuildinfo",
                    true,
                )
                .file("/w/src/a.ts")
                .file("/w/tsconfig.tsbuildinfo")
        };
        let strange = scenario().run();
        assert_eq!(
            strange.modified_inputs,
            vec![PathBuf::from("/w/tsconfig.tsbuildinfo")]
        );
        assert_eq!(
            strange.state_files.iter().collect::<Vec<_>>(),
            vec![&PathBuf::from("/w/tsconfig.tsbuildinfo")]
        );
        let own = scenario().own_state("/w/tsconfig.tsbuildinfo").run();
        assert!(own.is_cacheable(), "{:?}", own.modified_inputs);
        assert_eq!(outputs(&own), vec!["/w/tsconfig.tsbuildinfo"]);
        assert_eq!(
            inputs(&own),
            vec![("/w/src/a.ts", &InputAccess::ContentRead)]
        );
    }

    /// Review: `chmod +x bin/*` after listing `bin/` does not change the
    /// listing, and `mkdir -p` of an existing directory changes nothing.
    #[test]
    fn metadata_changes_and_existing_mkdir_keep_the_listing_an_input() {
        let c = Scenario::default()
            .op(Op::List, "/w/bin")
            .at_call(Op::SetMetadata, "/w/bin/tool", "/w/bin/tool", true)
            .at_call(Op::Mkdir, "/w/src", "/w/src", true)
            .op(Op::List, "/w/src")
            .file("/w/bin/tool")
            .dir("/w/bin")
            .dir("/w/src")
            .run();
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/bin", &InputAccess::Listing),
                ("/w/src", &InputAccess::Listing)
            ]
        );
        assert_eq!(outputs(&c), vec!["/w/bin/tool"]);
    }

    #[test]
    fn a_stat_before_rewriting_an_output_is_not_an_input() {
        let c = Scenario::default()
            .op(Op::Stat, "/w/dist/index.html")
            .op(Op::Write, "/w/dist/index.html")
            .file("/w/dist/index.html")
            .dir("/w/dist")
            .run();
        assert!(inputs(&c).is_empty(), "{:?}", inputs(&c));
        assert_eq!(outputs(&c), vec!["/w/dist/index.html"]);
        assert!(c.is_cacheable());
    }

    #[test]
    fn content_read_wins_over_probe_and_listing_over_probe() {
        let c = Scenario::default()
            .op(Op::Probe, "/w/a")
            .op(Op::Read, "/w/a")
            .op(Op::Probe, "/w/a")
            .op(Op::Probe, "/w/src")
            .op(Op::List, "/w/src")
            .file("/w/a")
            .dir("/w/src")
            .run();
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/a", &InputAccess::ContentRead),
                ("/w/src", &InputAccess::Listing)
            ]
        );
    }

    #[test]
    fn reading_own_output_is_not_an_input() {
        let c = Scenario::default()
            .op(Op::Write, "/w/out.js")
            .op(Op::Probe, "/w/out.js")
            .op(Op::Read, "/w/out.js")
            .file("/w/out.js")
            .run();
        assert!(c.inputs.is_empty());
        assert_eq!(outputs(&c), vec!["/w/out.js"]);
        assert!(c.modified_inputs.is_empty());
    }

    #[test]
    fn write_read_delete_is_a_temporary() {
        let tmp = "/w/node_modules/.vite-temp/vite.config.js.timestamp-1-abc.mjs";
        let c = Scenario::default()
            .op(Op::Mkdir, "/w/node_modules/.vite-temp")
            .op(Op::Write, tmp)
            .op(Op::Probe, tmp)
            .op(Op::Read, tmp)
            .op(Op::Remove, tmp)
            .dir("/w/node_modules/.vite-temp")
            .run();
        assert!(c.inputs.is_empty(), "{:?}", c.inputs);
        assert_eq!(c.temporaries, BTreeSet::from([p(tmp)]));
        // The empty directory left behind is an output.
        assert_eq!(outputs(&c), vec!["/w/node_modules/.vite-temp"]);
        assert!(c.is_cacheable());
    }

    #[test]
    fn emptying_and_rewriting_dist_has_no_dist_inputs() {
        // The sequence vite's emptyOutDir produced: probe, remove the old files, then write the new ones.
        let c = Scenario::default()
            .op(Op::Read, "/w/index.html")
            .op(Op::Probe, "/w/dist")
            .op(Op::Probe, "/w/dist")
            .op(Op::List, "/w/dist")
            .op(Op::Probe, "/w/dist/assets")
            .op(Op::Remove, "/w/dist/assets")
            .op(Op::Probe, "/w/dist/assets")
            .op(Op::List, "/w/dist/assets")
            .op(Op::Probe, "/w/dist/assets/index-OLD.js")
            .op(Op::Remove, "/w/dist/assets/index-OLD.js")
            .op(Op::Remove, "/w/dist/assets")
            .op(Op::Probe, "/w/dist/index.html")
            .op(Op::Remove, "/w/dist/index.html")
            .op(Op::Mkdir, "/w/dist")
            .op(Op::Mkdir, "/w/dist/assets")
            .op(Op::Mkdir, "/w/dist/assets")
            .op(Op::Write, "/w/dist/assets/index-NEW.js")
            .op(Op::Write, "/w/dist/index.html")
            .file("/w/index.html")
            .dir("/w/dist")
            .dir("/w/dist/assets")
            .file("/w/dist/assets/index-NEW.js")
            .file("/w/dist/index.html")
            .run();
        assert_eq!(
            inputs(&c),
            vec![("/w/index.html", &InputAccess::ContentRead)]
        );
        // dist/ and dist/assets/ are implied by the files in them.
        assert_eq!(
            outputs(&c),
            vec!["/w/dist/assets/index-NEW.js", "/w/dist/index.html"]
        );
        assert_eq!(
            c.deleted,
            BTreeSet::from([p("/w/dist/assets/index-OLD.js")])
        );
        assert!(c.modified_inputs.is_empty());
        assert!(c.is_cacheable());
    }

    #[test]
    fn listing_a_directory_the_task_adds_to_is_an_input_as_the_run_left_it() {
        // A barrel generator: it lists `gen/` and writes `gen/index.ts`.
        let c = Scenario::default()
            .op(Op::List, "/w/gen")
            .op(Op::Probe, "/w")
            .op(Op::Write, "/w/gen/index.ts")
            .op(Op::List, "/w/gen")
            .dir("/w/gen")
            .dir("/w")
            .file("/w/gen/index.ts")
            .run();
        assert_eq!(inputs(&c), vec![("/w/gen", &InputAccess::Listing)]);
        assert_eq!(c.changed_listings, BTreeSet::from([p("/w/gen")]));
        assert_eq!(outputs(&c), vec!["/w/gen/index.ts"]);
    }

    #[test]
    fn rewriting_a_file_in_place_leaves_its_directory_as_it_was() {
        // The barrel exists: the write changes no name, so the listing is
        // a plain input, checked as any other. The check of `/w` made room
        // for the output (`mkdir -p`), as before a write that creates.
        let c = Scenario::default()
            .op(Op::List, "/w/gen")
            .op(Op::Probe, "/w")
            .at_call(Op::Write, "/w/gen/index.ts", "/w/gen/index.ts", true)
            .dir("/w/gen")
            .dir("/w")
            .file("/w/gen/index.ts")
            .run();
        assert_eq!(inputs(&c), vec![("/w/gen", &InputAccess::Listing)]);
        assert!(c.changed_listings.is_empty());
        assert_eq!(outputs(&c), vec!["/w/gen/index.ts"]);
    }

    #[test]
    fn a_directory_the_task_emptied_and_refilled_is_an_input_too() {
        // A generator that deletes its old result before listing: the
        // next source file must still be seen.
        let c = Scenario::default()
            .op(Op::List, "/w/dist")
            .at_call(Op::Remove, "/w/dist/a-1.js", "/w/dist/a-1.js", true)
            .op(Op::Write, "/w/dist/b-2.js")
            .dir("/w/dist")
            .file("/w/dist/b-2.js")
            .run();
        assert_eq!(inputs(&c), vec![("/w/dist", &InputAccess::Listing)]);
        assert_eq!(c.changed_listings, BTreeSet::from([p("/w/dist")]));
        assert_eq!(c.emptied_dirs, BTreeSet::from([p("/w/dist")]));
    }

    #[test]
    fn listing_a_directory_the_task_only_removes_from_is_an_input() {
        let c = Scenario::default()
            .op(Op::List, "/w/dist")
            .op(Op::Remove, "/w/dist/main.aaa.js")
            .dir("/w/dist")
            .run();
        assert_eq!(inputs(&c), vec![("/w/dist", &InputAccess::Listing)]);
        assert_eq!(
            c.changed_listings,
            BTreeSet::from([p("/w/dist")]),
            "its stamps changed by the task's own removals"
        );
        assert_eq!(c.deleted, BTreeSet::from([p("/w/dist/main.aaa.js")]));
    }

    #[test]
    fn deep_writes_drop_ancestor_probes_but_keep_their_listings() {
        // Writing into an existing dist/assets/ does not change the root's
        // entries, so listing the root still counts; probing it does not.
        let c = Scenario::default()
            .op(Op::List, "/w")
            .op(Op::Probe, "/w/dist")
            .op(Op::Write, "/w/dist/assets/a.js")
            .dir("/w")
            .dir("/w/dist")
            .file("/w/dist/assets/a.js")
            .run();
        assert_eq!(inputs(&c), vec![("/w", &InputAccess::Listing)]);
    }

    #[test]
    fn content_read_then_modified_is_a_conflict() {
        let c = Scenario::default()
            .op(Op::Read, "/w/src/a.ts")
            .op(Op::Write, "/w/src/a.ts")
            .op(Op::ReadWrite, "/w/db.sqlite")
            .op(Op::Read, "/w/consumed")
            .op(Op::Remove, "/w/consumed")
            .file("/w/src/a.ts")
            .file("/w/db.sqlite")
            .run();
        assert_eq!(
            c.modified_inputs,
            vec![p("/w/consumed"), p("/w/db.sqlite"), p("/w/src/a.ts")]
        );
        assert!(!c.is_cacheable());
        assert!(c.inputs.is_empty());
        assert_eq!(c.deleted, BTreeSet::from([p("/w/consumed")]));
    }

    #[test]
    fn read_write_of_own_file_is_fine() {
        let c = Scenario::default()
            .op(Op::Write, "/w/x")
            .op(Op::ReadWrite, "/w/x")
            .file("/w/x")
            .run();
        assert!(c.modified_inputs.is_empty());
        assert_eq!(outputs(&c), vec!["/w/x"]);
    }

    #[test]
    fn atomic_write_through_rename() {
        let c = Scenario::default()
            .op(Op::Write, "/w/out.json.tmp")
            .op(Op::RenameFrom, "/w/out.json.tmp")
            .op(Op::RenameTo, "/w/out.json")
            .file("/w/out.json")
            .run();
        assert_eq!(c.temporaries, BTreeSet::from([p("/w/out.json.tmp")]));
        assert_eq!(outputs(&c), vec!["/w/out.json"]);
    }

    #[test]
    fn renamed_directory_brings_its_tree() {
        let mut s = Scenario::default()
            .op(Op::Mkdir, "/w/dist.tmp")
            .op(Op::Write, "/w/dist.tmp/a.js")
            .op(Op::RenameFrom, "/w/dist.tmp")
            .op(Op::RenameTo, "/w/dist")
            .dir("/w/dist");
        s.log.end_state.trees.insert(
            p("/w/dist"),
            vec![
                (p("/w/dist/a.js"), PathKind::File),
                (p("/w/dist/sub"), PathKind::Dir),
                (p("/w/dist/sub/b.js"), PathKind::File),
            ],
        );
        let c = s.run();
        assert_eq!(outputs(&c), vec!["/w/dist/a.js", "/w/dist/sub/b.js"]);
        assert_eq!(
            c.temporaries,
            BTreeSet::from([p("/w/dist.tmp"), p("/w/dist.tmp/a.js")])
        );
    }

    #[test]
    fn symlinks_record_link_and_target() {
        let c = Scenario::default()
            .op(Op::Read, "/w/node_modules/pkg/index.js")
            .nofollow(Op::ReadLink, "/w/current")
            .resolves(
                "/w/node_modules/pkg/index.js",
                true,
                "/w/packages/pkg/index.js",
                &["/w/node_modules/pkg"],
            )
            .link("/w/node_modules/pkg", "../packages/pkg")
            .link("/w/current", "v2")
            .file("/w/packages/pkg/index.js")
            .run();
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/current", &InputAccess::Symlink { target: p("v2") }),
                (
                    "/w/node_modules/pkg",
                    &InputAccess::Symlink {
                        target: p("../packages/pkg")
                    }
                ),
                ("/w/packages/pkg/index.js", &InputAccess::ContentRead),
            ]
        );
    }

    #[test]
    fn symlink_out_of_the_root_keeps_the_link_only() {
        let c = Scenario::default()
            .op(Op::Read, "/w/shared.js")
            .resolves(
                "/w/shared.js",
                true,
                "/elsewhere/shared.js",
                &["/w/shared.js"],
            )
            .link("/w/shared.js", "/elsewhere/shared.js")
            .file("/elsewhere/shared.js")
            .run();
        assert_eq!(
            inputs(&c),
            vec![(
                "/w/shared.js",
                &InputAccess::Symlink {
                    target: p("/elsewhere/shared.js")
                }
            )]
        );
        assert_eq!(c.excluded, 1);
    }

    #[test]
    fn exclusions_are_counted_not_classified() {
        let c = Scenario::default()
            .op(Op::Read, "/usr/lib/libc.so.6")
            .op(Op::Read, "/usr/lib/libc.so.6")
            .op(Op::Read, "/proc/12/maps")
            .op(Op::Read, "/sys/fs/cgroup/cpu.max")
            .op(Op::Read, "/dev/null")
            .op(Op::Read, "/w/.git/HEAD")
            .op(Op::Write, "/w/sub/.git/index")
            .op(Op::Write, "/w/node_modules/.cache/vp/db")
            .op(Op::Read, "/w2/other")
            .file("/usr/lib/libc.so.6")
            .file("/w/.git/HEAD")
            .run_with(&[p("/w/node_modules/.cache/vp")], &[], &[]);
        assert!(c.inputs.is_empty() && c.outputs.is_empty(), "{c:?}");
        assert_eq!(c.excluded, 8);
    }

    #[test]
    fn tool_reports_apply_before_the_overlap_check() {
        let s = Scenario::default()
            .op(Op::Read, "/w/.tool-state/deps/x.js")
            .op(Op::Write, "/w/.tool-state/deps/x.js")
            .op(Op::Read, "/w/src/a.js")
            .file("/w/.tool-state/deps/x.js")
            .file("/w/src/a.js");
        let vite = p("/w/.tool-state");

        let c = s.run();
        assert_eq!(c.modified_inputs, vec![p("/w/.tool-state/deps/x.js")]);

        // ignoreInput: the read is dropped, so only an output remains.
        let c = s.run_with(&[], std::slice::from_ref(&vite), &[]);
        assert!(c.modified_inputs.is_empty());
        assert_eq!(outputs(&c), vec!["/w/.tool-state/deps/x.js"]);
        assert_eq!(inputs(&c), vec![("/w/src/a.js", &InputAccess::ContentRead)]);

        // ignoreOutput: the write is dropped, the read is a plain input.
        let c = s.run_with(&[], &[], std::slice::from_ref(&vite));
        assert!(c.modified_inputs.is_empty());
        assert!(c.outputs.is_empty());
        assert_eq!(c.inputs.len(), 2);

        // Both: nothing under the subtree counts.
        let c = s.run_with(
            &[],
            std::slice::from_ref(&vite),
            std::slice::from_ref(&vite),
        );
        assert_eq!(inputs(&c), vec![("/w/src/a.js", &InputAccess::ContentRead)]);
        assert!(c.outputs.is_empty());
    }

    #[test]
    fn ignored_outputs_do_not_hide_their_parents_listing() {
        let c = Scenario::default()
            .op(Op::List, "/w/cache")
            .op(Op::Write, "/w/cache/x")
            .dir("/w/cache")
            .file("/w/cache/x")
            .run_with(&[], &[], &[p("/w/cache/x")]);
        assert_eq!(inputs(&c), vec![("/w/cache", &InputAccess::Listing)]);
        // The ignored name is still the task's own: the listing it changed
        // is not one that changed under it.
        assert_eq!(c.changed_listings, BTreeSet::from([p("/w/cache")]));
        assert!(c.outputs.is_empty());
    }

    /// Issue: Next.js 16's Turbopack reads, deletes and replaces the files
    /// of its database in `.next/cache` on every build, so no build after
    /// an edit was stored ("it modified its input").
    #[test]
    fn a_tools_cache_is_neither_input_nor_output() {
        let s = Scenario::default()
            .op(Op::List, "/w/.next")
            .op(Op::Read, "/w/.next/cache/turbopack/00000001.sst")
            .op(Op::Remove, "/w/.next/cache/turbopack/00000001.sst")
            .op(Op::Write, "/w/.next/cache/turbopack/00000002.sst")
            .op(Op::Read, "/w/app/page.js")
            .op(Op::Write, "/w/.next/server/page.js")
            .dir("/w/.next")
            .file("/w/.next/cache/turbopack/00000002.sst")
            .file("/w/app/page.js")
            .file("/w/.next/server/page.js");
        let c = s.run();
        assert!(c.is_cacheable(), "{:?}", c.modified_inputs);
        assert_eq!(
            inputs(&c),
            vec![
                ("/w/.next", &InputAccess::Listing),
                ("/w/app/page.js", &InputAccess::ContentRead)
            ]
        );
        assert_eq!(outputs(&c), vec!["/w/.next/server/page.js"]);
        assert!(c.deleted.is_empty(), "{:?}", c.deleted);
        // The names the task made in a listing it changed include the cache's.
        assert!(
            c.unstored_changes
                .contains(&p("/w/.next/cache/turbopack/00000002.sst"))
        );
        // `vp trace` shows what the task did there.
        let shown = s.seen_by_vp_trace().run();
        assert_eq!(
            shown.modified_inputs,
            vec![p("/w/.next/cache/turbopack/00000001.sst")]
        );
    }

    /// Issue: `"input": [{ "auto": true }, "!.next/cache/**"]` still kept
    /// the run from being stored when the task rewrote a file there: the
    /// user's exclusion applied to the stored inputs only, after the check.
    #[test]
    fn the_tasks_exclusions_drop_reads_and_writes_like_a_tools_ignores() {
        let s = Scenario::default()
            .op(Op::Read, "/w/state/db.bin")
            .op(Op::Write, "/w/state/db.bin")
            .op(Op::Write, "/w/dist/a.js")
            .op(Op::Write, "/w/dist/a.js.map")
            .file("/w/state/db.bin")
            .file("/w/dist/a.js")
            .file("/w/dist/a.js.map");
        let c = s.run();
        assert_eq!(
            c.modified_inputs,
            vec![p("/w/state/db.bin")],
            "without globs"
        );
        // Excluded from the inputs: what the task wrote there is an output.
        let c = s.input_globs(&["!state/**"]).run();
        assert!(c.is_cacheable(), "{:?}", c.modified_inputs);
        assert!(inputs(&c).is_empty(), "{:?}", c.inputs);
        assert_eq!(
            outputs(&c),
            vec!["/w/dist/a.js", "/w/dist/a.js.map", "/w/state/db.bin"]
        );
    }

    #[test]
    fn an_output_exclusion_drops_writes_but_not_the_read_of_an_input() {
        let s = Scenario::default()
            .op(Op::Read, "/w/state/db.bin")
            .op(Op::Write, "/w/state/db.bin")
            .op(Op::List, "/w/dist")
            .op(Op::Write, "/w/dist/a.js")
            .op(Op::Write, "/w/dist/a.js.map")
            .dir("/w/dist")
            .file("/w/state/db.bin")
            .file("/w/dist/a.js")
            .file("/w/dist/a.js.map")
            .output_globs(&["!**/*.map", "!state/**"]);
        let c = s.run();
        assert_eq!(outputs(&c), vec!["/w/dist/a.js"]);
        // What it read and rewrote is still an input it modified: not
        // stored, since a hit would stand for a run that read another one.
        assert_eq!(c.modified_inputs, vec![p("/w/state/db.bin")]);
        // Review: nor is it ever the task's own state, which would make it
        // neither input nor output, so an edit of it would hit.
        assert!(c.state_files.is_empty(), "{:?}", c.state_files);
        // The map is still a name the task made in the listing it changed.
        assert_eq!(c.changed_listings, BTreeSet::from([p("/w/dist")]));
        assert!(c.unstored_changes.contains(&p("/w/dist/a.js.map")));
    }

    /// Review: dropping an excluded output's events one by one left the
    /// read of a file the task then removed, so it became an input that
    /// must be missing, and a later run with the file back could hit; and
    /// a `stat` before rewriting (webpack's `compareBeforeEmit`) became an
    /// input. The path's events are classified whole, then the exclusion
    /// applies.
    #[test]
    fn an_output_exclusion_keeps_what_the_task_did_before() {
        let c = Scenario::default()
            .op(Op::Read, "/w/state/old.bin")
            .op(Op::Remove, "/w/state/old.bin")
            .op(Op::Stat, "/w/dist/a.js.map")
            .op(Op::Write, "/w/dist/a.js.map")
            .exists("/w/state/old.bin", PathKind::Missing)
            .file("/w/dist/a.js.map")
            .output_globs(&["!state/**", "!**/*.map"])
            .run();
        assert_eq!(c.modified_inputs, vec![p("/w/state/old.bin")]);
        assert!(inputs(&c).is_empty(), "{:?}", c.inputs);
        assert!(c.outputs.is_empty() && c.deleted.is_empty(), "{c:?}");
    }

    /// Review: an `input` exclusion dropped the read, so a hit wrote the
    /// file over whatever was there; what the task wrote after reading it
    /// is still written only over what vp left (`looked_first`).
    #[test]
    fn an_input_exclusion_keeps_the_read_before_the_write() {
        let c = Scenario::default()
            .op(Op::Read, "/w/state/db.bin")
            .op(Op::Write, "/w/state/db.bin")
            .file("/w/state/db.bin")
            .input_globs(&["!state/**"])
            .run();
        assert!(c.is_cacheable(), "{:?}", c.modified_inputs);
        assert_eq!(outputs(&c), vec!["/w/state/db.bin"]);
        assert_eq!(c.looked_first, BTreeSet::from([p("/w/state/db.bin")]));
        // Never a modified input, so no state to remember (and hash).
        assert!(c.state_files.is_empty(), "{:?}", c.state_files);
    }

    #[test]
    fn files_left_beside_the_workspace_are_written_outside() {
        let s = Scenario::default()
            .op(Op::Write, "/home/u/public/index.html")
            .op(Op::Mkdir, "/home/u/public")
            .op(Op::Write, "/home/u/public/gone.tmp")
            .op(Op::Write, "/home/u/.cache/tool/x")
            .op(Op::Write, "/home/u/other/.vite/y")
            .op(Op::Write, "/home/u/tooling/z")
            .op(Op::Write, "/tmp/scratch")
            .op(Op::Write, "/home/u/proj/dist/a.js")
            .dir("/home/u/public")
            .file("/home/u/public/index.html")
            .file("/home/u/.cache/tool/x")
            .file("/home/u/other/.vite/y")
            .file("/home/u/tooling/z")
            .file("/tmp/scratch")
            .file("/home/u/proj/dist/a.js");
        let c = s.run_at("/home/u/proj", &[], &[], &[p("/home/u/tooling")]);
        assert_eq!(
            c.written_outside,
            vec![p("/home/u/public"), p("/home/u/public/index.html")],
            "not what is gone, hidden, ignored, far away, or inside"
        );
        assert_eq!(outputs(&c), vec!["/home/u/proj/dist/a.js"]);
        // Right below `/`, the whole system is beside the workspace; right
        // below a temporary directory, every tool's scratch files.
        assert!(s.run_at("/proj", &[], &[], &[]).written_outside.is_empty());
        let tmp = Scenario::default()
            .op(Op::Write, "/tmp/tsx-0/cache.json")
            .file("/tmp/tsx-0/cache.json");
        assert!(
            tmp.run_at("/tmp/repro", &[], &[], &[])
                .written_outside
                .is_empty()
        );
        assert_eq!(
            tmp.run_at("/tmp/e2e/ws", &[], &[], &[]).written_outside,
            Vec::<PathBuf>::new(),
            "/tmp/tsx-0 is not beside /tmp/e2e/ws"
        );
        // Only times or mode changed: no file was left there.
        let touched = Scenario::default()
            .op(Op::SetMetadata, "/home/u/shared.txt")
            .file("/home/u/shared.txt");
        assert!(
            touched
                .run_at("/home/u/proj", &[], &[], &[])
                .written_outside
                .is_empty()
        );
    }

    #[test]
    fn failed_write_of_missing_path_is_a_temporary_not_an_output() {
        // CONTINUE gives no result: a write that failed leaves nothing behind.
        let c = Scenario::default().op(Op::Write, "/w/readonly/x").run();
        assert!(c.outputs.is_empty());
        assert_eq!(c.temporaries, BTreeSet::from([p("/w/readonly/x")]));
    }

    #[test]
    fn created_symlink_is_a_symlink_output() {
        let c = Scenario::default()
            .nofollow(Op::Link, "/w/bin/tool")
            .link("/w/bin/tool", "../lib/tool.js")
            .run();
        assert_eq!(c.outputs.get(&p("/w/bin/tool")), Some(&OutputKind::Symlink));
    }

    #[test]
    fn untraceable_reasons_make_it_uncacheable() {
        let mut s = Scenario::default();
        s.log
            .untraceable
            .push("a process made 32-bit system calls".to_owned());
        let c = s.run();
        assert!(!c.is_cacheable());
        assert_eq!(c.untraceable.len(), 1);
    }

    #[test]
    fn root_itself_can_be_an_input() {
        let c = Scenario::default().op(Op::List, "/w").dir("/w").run();
        assert_eq!(inputs(&c), vec![("/w", &InputAccess::Listing)]);
    }

    #[test]
    fn unresolved_paths_default_to_themselves() {
        let state = EndState::default();
        let r = state.resolve(Path::new("/w/x"), true);
        assert_eq!(r.real, p("/w/x"));
        assert!(r.links.is_empty());
        assert_eq!(state.kind(Path::new("/w/x")), PathKind::Missing);
    }
}

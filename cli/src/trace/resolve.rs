//! After the traced tree exited: resolves every recorded path through
//! symlinks and `..` the way the kernel would, and records what each real
//! path is now (file, directory, symlink, missing). The supervisor only sees
//! the path a tool asked for and never the result, so this is where
//! "missing", "is a directory" and "via symlink X" come from. Blocking
//! (lstat/readlink): run it through `blocking::unblock`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::log::{
    AccessLog, EndStamps, EndState, Looked as Entry, Op, PathKind, PathMap, Resolution, Resolutions,
};

/// Symlink chains longer than this are loops (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// Fills `log.end_state` for every recorded path except those under
/// `/proc`, `/sys` and `/dev` (pseudo files: never inputs, and stat'ing
/// `/proc/<pid>` of exited processes is pointless).
pub(crate) fn snapshot(mut log: AccessLog) -> AccessLog {
    // Before the first `lstat`: see `EndStamps::taken`.
    let taken = crate::cache::Timestamp::now_coarse();
    let mut fs = Lstat::default();
    fs.prefetch(log.accesses.iter().flat_map(|access| {
        let pinned = access.at_call.as_ref().and_then(|c| c.real.as_deref());
        std::iter::once(access.path.as_path()).chain(pinned)
    }));
    let mut resolver = Resolver::default();
    let mut resolved = Resolutions::default();
    let mut trees = PathMap::default();
    // A directory renamed into place: what arrived with it.
    let mut list_tree = |fs: &mut Lstat, real: &Path, op: Op| {
        if op == Op::RenameTo && fs.kind(real) == PathKind::Dir && !trees.contains_key(real) {
            let mut entries = Vec::new();
            walk(real, &mut entries);
            trees.insert(real.to_path_buf(), entries);
        }
    };
    for access in &log.accesses {
        if is_pseudo(&access.path) {
            continue;
        }
        if let Some(real) = access.at_call.as_ref().and_then(|c| c.real.as_ref()) {
            // Looked at (the memo is the end state's kinds), listed if renamed.
            fs.look(real);
            list_tree(&mut fs, real, access.op);
        }
        if resolved.contains(&access.path, access.follow) {
            continue;
        }
        match resolver.resolve(&mut fs, &access.path, access.follow) {
            Leads::Itself => {
                // The walk looked at its parents; the memo must hold the
                // path itself too, whether followed or not.
                fs.look(&access.path);
                list_tree(&mut fs, &access.path, access.op);
            }
            Leads::Elsewhere(resolution) => {
                fs.look(&resolution.real);
                list_tree(&mut fs, &resolution.real, access.op);
                resolved.insert(access.path.clone(), access.follow, resolution);
            }
        }
    }
    log.end_state = EndState {
        resolved,
        trees,
        looked: EndStamps::new(taken, fs.cache),
    };
    log
}

/// Lists everything below `dir` (unreadable parts are skipped: they
/// cannot be archived either, and the cache reports that when it tries).
fn walk(dir: &Path, out: &mut Vec<(PathBuf, PathKind)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => PathKind::Symlink,
            Ok(t) if t.is_dir() => PathKind::Dir,
            Ok(t) if t.is_file() => PathKind::File,
            Ok(_) => PathKind::Other,
            Err(_) => continue,
        };
        out.push((path.clone(), kind));
        if kind == PathKind::Dir {
            walk(&path, out);
        }
    }
}

pub(crate) fn is_pseudo(path: &Path) -> bool {
    matches!(
        crate::cache::paths::first_name(path),
        Some(b"proc" | b"sys" | b"dev")
    )
}

/// Memoised `lstat` + `readlink`: a build touches thousands of paths under
/// the same few directories.
#[derive(Default)]
struct Lstat {
    cache: PathMap<Entry>,
}

/// From this many distinct paths, `Lstat::prefetch` spreads them over every
/// core (the same threshold as a hit's `stat`s, `cache::file_state`).
const PREFETCH_MIN: usize = 1024;

impl Lstat {
    /// What `path` is, from the memo or a new `lstat`. (A path already in
    /// the memo, nearly every one after `prefetch`, costs one lookup: the
    /// methods below answer in values, so a hit returns before inserting.)
    fn get(&mut self, path: &Path) -> Entry {
        if let Some(entry) = self.cache.get(path) {
            return entry.clone();
        }
        let entry = lstat(path);
        self.cache.insert(path.to_path_buf(), entry.clone());
        entry
    }

    /// Puts what `path` is into the memo (the end state is the memo).
    fn look(&mut self, path: &Path) {
        if !self.cache.contains_key(path) {
            self.cache.insert(path.to_path_buf(), lstat(path));
        }
    }

    /// Looks at `paths` on every core ahead of the walk, which then finds
    /// them in the memo: most of a large log's end-of-run cost is one
    /// `lstat` per distinct path. Paths with `..` are left to the walk,
    /// which never asks for them as written.
    fn prefetch<'a>(&mut self, paths: impl Iterator<Item = &'a Path>) {
        let mut todo: Vec<&Path> = paths
            .filter(|p| !is_pseudo(p))
            .filter(|p| !crate::cache::paths::has_parent_name(p.as_os_str().as_bytes()))
            .collect();
        // Too few even before removing repeats: not worth sorting them.
        if !crate::parallel::spreads(todo.len(), PREFETCH_MIN) {
            return;
        }
        // Stable: a tool that walks a tree records its paths nearly in
        // order, and a merge of runs sorts those in about one pass.
        todo.sort_by(|a, b| super::log::path_order(a, b));
        todo.dedup_by(|a, b| a.as_os_str() == b.as_os_str());
        if !crate::parallel::spreads(todo.len(), PREFETCH_MIN) {
            return;
        }
        // The keys are copied on every core too: tens of thousands of them.
        let entries = crate::parallel::map(&todo, PREFETCH_MIN, |p| (p.to_path_buf(), lstat(p)));
        self.cache.extend(entries);
    }

    fn is_symlink(&mut self, path: &Path) -> bool {
        self.kind(path) == PathKind::Symlink
    }

    fn kind(&mut self, path: &Path) -> PathKind {
        if let Some(entry) = self.cache.get(path) {
            return entry.kind();
        }
        let entry = lstat(path);
        let kind = entry.kind();
        self.cache.insert(path.to_path_buf(), entry);
        kind
    }
}

/// What `path` itself is now (a symlink is not followed).
fn lstat(path: &Path) -> Entry {
    match fs::symlink_metadata(path) {
        Err(_) => Entry::Missing,
        Ok(meta) if meta.file_type().is_symlink() => match fs::read_link(path) {
            Ok(target) => Entry::Symlink(target),
            Err(_) => Entry::Missing,
        },
        Ok(meta) if meta.is_dir() => Entry::Kind(PathKind::Dir),
        Ok(meta) if meta.is_file() => Entry::File(crate::cache::Stamp::of(&meta)),
        Ok(_) => Entry::Kind(PathKind::Other),
    }
}

/// Where a walk stands after some components: the real path so far, the
/// symlinks passed, and whether a component was missing (the rest is then
/// appended lexically).
#[derive(Debug, Clone)]
struct Walk {
    real: PathBuf,
    links: Vec<PathBuf>,
    missing: bool,
}

impl Walk {
    fn root() -> Self {
        Self {
            real: PathBuf::from("/"),
            links: Vec::new(),
            missing: false,
        }
    }

    /// Walks `todo` on from here like the kernel: a symlink met on the way
    /// is replaced by its target (relative targets against the link's
    /// directory), `..` goes to the parent of what was resolved so far, and
    /// once a component is missing the rest is appended lexically.
    fn walk(mut self, fs: &mut Lstat, mut todo: VecDeque<OsString>, follow_last: bool) -> Self {
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                self.real.pop();
                continue;
            }
            let candidate = self.real.join(&name);
            let last = todo.is_empty();
            if self.missing || (last && !follow_last) {
                self.real = candidate;
                continue;
            }
            match fs.get(&candidate) {
                Entry::Symlink(target) if self.links.len() < MAX_LINKS => {
                    self.links.push(candidate);
                    if target.is_absolute() {
                        self.real = PathBuf::from("/");
                    }
                    for component in components(&target).into_iter().rev() {
                        todo.push_front(component);
                    }
                }
                Entry::Missing => {
                    self.missing = true;
                    self.real = candidate;
                }
                _ => self.real = candidate,
            }
        }
        self
    }
}

impl From<Walk> for Resolution {
    fn from(end: Walk) -> Self {
        Resolution {
            real: end.real,
            links: end.links,
        }
    }
}

/// Resolves `path` like the kernel (see `Walk::walk`).
fn resolve(fs: &mut Lstat, path: &Path, follow_last: bool) -> Resolution {
    Walk::root().walk(fs, components(path), follow_last).into()
}

/// Where one recorded path leads, as `Resolver::resolve` answers.
#[derive(Debug, PartialEq, Eq)]
enum Leads {
    /// To itself: no symlink, no `..` on the way (most paths a tool
    /// records are already real), so nothing needs keeping.
    Itself,
    Elsewhere(Resolution),
}

/// `resolve` for a log: a build touches thousands of paths in the same few
/// directories, so each directory is walked once and a path continues from
/// its parent's walk. The same answers as `resolve` (the walk of a path is
/// its parent's walk, every component followed, then its last name).
#[derive(Default)]
struct Resolver {
    /// Each directory's index in `walks`.
    dirs: PathMap<usize>,
    /// Each directory as recorded, and its walk.
    walks: Vec<(PathBuf, Walk)>,
    /// The directory of the previous path: a log lists most of a
    /// directory's paths in a row, and comparing bytes is cheaper than
    /// hashing them.
    last: Option<usize>,
}

impl Resolver {
    /// The walk of the directory `parent`, walked now if it is new.
    fn walk_of(&mut self, fs: &mut Lstat, parent: &Path) -> &Walk {
        let same_as_last = self
            .last
            .filter(|&at| self.walks[at].0.as_os_str() == parent.as_os_str());
        let at = match same_as_last.or_else(|| self.dirs.get(parent).copied()) {
            Some(at) => at,
            None => {
                let walk = Walk::root().walk(fs, components(parent), true);
                self.walks.push((parent.to_path_buf(), walk));
                self.dirs.insert(parent.to_path_buf(), self.walks.len() - 1);
                self.walks.len() - 1
            }
        };
        self.last = Some(at);
        &self.walks[at].1
    }

    fn resolve(&mut self, fs: &mut Lstat, path: &Path, follow_last: bool) -> Leads {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Leads::of(path, resolve(fs, path, follow_last));
        };
        let base = self.walk_of(fs, parent);
        // The last name ends the walk unless it is a symlink to follow
        // (`Walk::walk`): most names of a log are not, and need no queue,
        // no copy of the parent's walk, and (when the parent is real) not
        // even the joined path.
        let real_parent = base.links.is_empty()
            && base.real.as_os_str() == parent.as_os_str()
            && crate::cache::paths::is_clean(path.as_os_str().as_bytes());
        let follows_link = |fs: &mut Lstat, candidate: &Path| {
            !base.missing && follow_last && base.links.len() < MAX_LINKS && fs.is_symlink(candidate)
        };
        if real_parent {
            if !follows_link(fs, path) {
                return Leads::Itself;
            }
        } else {
            let candidate = base.real.join(name);
            if !follows_link(fs, &candidate) {
                return Leads::Elsewhere(Resolution {
                    real: candidate,
                    links: base.links.clone(),
                });
            }
        }
        let walk = base
            .clone()
            .walk(fs, VecDeque::from([name.to_os_string()]), follow_last);
        Leads::of(path, walk.into())
    }
}

impl Leads {
    fn of(path: &Path, resolution: Resolution) -> Self {
        if resolution.links.is_empty() && resolution.real.as_os_str() == path.as_os_str() {
            Leads::Itself
        } else {
            Leads::Elsewhere(resolution)
        }
    }
}

/// Normal components and `..`, without root and `.`.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::log::Access;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    fn access(path: &Path, op: Op, follow: bool) -> Access {
        Access {
            at: Duration::ZERO,
            tid: 1,
            path: path.to_path_buf(),
            op,
            follow,
            at_call: None,
        }
    }

    /// The per-directory resolver answers exactly like the plain walk, on
    /// paths through directory links, file links, `..` after a link,
    /// missing parts, dangling links and a link loop.
    #[test]
    fn the_directory_memo_resolves_like_the_plain_walk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        fs::create_dir_all(root.join("packages/pkg/src")).expect("mkdir");
        fs::write(root.join("packages/pkg/src/a.js"), "a").expect("write");
        fs::create_dir_all(root.join("node_modules/@s")).expect("mkdir");
        symlink("../packages/pkg", root.join("node_modules/pkg")).expect("symlink");
        symlink(root.join("packages"), root.join("node_modules/@s/abs")).expect("symlink");
        symlink("src/a.js", root.join("packages/pkg/main.js")).expect("symlink");
        symlink("nowhere", root.join("packages/pkg/dangling")).expect("symlink");
        symlink("loop2", root.join("loop1")).expect("symlink");
        symlink("loop1", root.join("loop2")).expect("symlink");
        let paths = [
            "node_modules/pkg/src/a.js",
            "node_modules/pkg/main.js",
            "node_modules/pkg/../x",
            "node_modules/pkg/src/../main.js",
            "node_modules/@s/abs/pkg/src/a.js",
            "node_modules/@s/abs/../node_modules/pkg/main.js",
            "packages/pkg/dangling",
            "packages/pkg/dangling/deeper",
            "packages/nope/src/a.js",
            "packages/nope/../pkg/src/a.js",
            "loop1/x",
            "loop1",
            "",
            // Written in ways `Path` would not print them.
            "packages//pkg/src/a.js",
            "packages/./pkg/src/a.js",
            "packages/pkg/.",
            "packages/pkg/src/..",
            "node_modules//pkg/main.js",
        ];
        let mut resolver = Resolver::default();
        let mut memo = Lstat::default();
        for rel in paths {
            let path = root.join(rel);
            for follow in [true, false] {
                let plain = Leads::of(&path, resolve(&mut Lstat::default(), &path, follow));
                let memoised = resolver.resolve(&mut memo, &path, follow);
                assert_eq!(memoised, plain, "{rel} (follow {follow})");
            }
        }
        // Relative paths (never recorded so) resolve against `/` both ways.
        for rel in ["rel/x", "x", ".", "a/../b"] {
            let path = Path::new(rel);
            for follow in [true, false] {
                let plain = Leads::of(path, resolve(&mut Lstat::default(), path, follow));
                assert_eq!(resolver.resolve(&mut memo, path, follow), plain, "{rel}");
            }
        }
        assert_eq!(
            resolver.resolve(&mut memo, Path::new("/"), true),
            Leads::Itself
        );
    }

    #[test]
    fn resolves_symlinked_dirs_files_and_dotdot() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        fs::create_dir_all(root.join("packages/pkg")).expect("mkdir");
        fs::write(root.join("packages/pkg/index.js"), "x").expect("write");
        fs::create_dir_all(root.join("node_modules")).expect("mkdir");
        symlink("../packages/pkg", root.join("node_modules/pkg")).expect("symlink");
        symlink("index.js", root.join("packages/pkg/main.js")).expect("symlink");

        let via_link = root.join("node_modules/pkg/main.js");
        let dotdot = root.join("node_modules/../packages/pkg/index.js");
        let missing = root.join("node_modules/pkg/nope/../x.js");
        let log = AccessLog {
            accesses: vec![
                access(&via_link, Op::Read, true),
                access(&via_link, Op::ReadLink, false),
                access(&dotdot, Op::Probe, true),
                access(&missing, Op::Probe, true),
                access(Path::new("/proc/1/maps"), Op::Read, true),
            ],
            ..AccessLog::default()
        };
        let state = snapshot(log).end_state;

        let r = state.resolve(&via_link, true);
        assert_eq!(r.real, root.join("packages/pkg/index.js"));
        assert_eq!(
            r.links,
            vec![
                root.join("node_modules/pkg"),
                root.join("packages/pkg/main.js")
            ]
        );
        assert_eq!(state.kind(r.real), PathKind::File);
        assert_eq!(
            state.looked.link_target(&root.join("node_modules/pkg")),
            Some(Path::new("../packages/pkg"))
        );

        let r = state.resolve(&via_link, false);
        assert_eq!(r.real, root.join("packages/pkg/main.js"));
        assert_eq!(state.kind(r.real), PathKind::Symlink);
        assert_eq!(
            state.looked.link_target(r.real),
            Some(Path::new("index.js"))
        );

        assert_eq!(
            state.resolve(&dotdot, true).real,
            root.join("packages/pkg/index.js")
        );
        let r = state.resolve(&missing, true);
        assert_eq!(r.real, root.join("packages/pkg/x.js"));
        assert_eq!(state.kind(r.real), PathKind::Missing);
        assert!(!state.resolved.contains(Path::new("/proc/1/maps"), true));
    }

    /// The end stamps hold a stamp for each regular file looked at, and
    /// none for a directory, a symlink or a missing path.
    #[test]
    fn end_stamps_are_kept_for_regular_files_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        fs::create_dir(root.join("dir")).expect("mkdir");
        fs::write(root.join("dir/a.txt"), "a").expect("write");
        symlink("dir/a.txt", root.join("link")).expect("symlink");
        let paths = ["dir/a.txt", "dir", "link", "missing"];
        let log = AccessLog {
            accesses: paths
                .iter()
                .map(|p| access(&root.join(p), Op::Stat, false))
                .collect(),
            ..AccessLog::default()
        };
        let stamps = snapshot(log).end_state.looked;
        let file = root.join("dir/a.txt");
        let meta = fs::metadata(&file).expect("stat");
        assert_eq!(stamps.get(&file), Some(&crate::cache::Stamp::of(&meta)));
        for other in &paths[1..] {
            assert_eq!(stamps.get(&root.join(other)), None, "{other}");
        }
        assert!(stamps.taken.is_some());
    }

    /// `rm -rf dist; mv tmp dist`: both calls were pinned to `dist` while
    /// held, and what arrived with the rename is listed at the end.
    #[test]
    fn a_directory_renamed_into_place_is_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        fs::create_dir_all(root.join("dist/sub")).expect("mkdir");
        fs::write(root.join("dist/a.js"), "a").expect("write");
        fs::write(root.join("dist/sub/b.js"), "b").expect("write");
        let dist = root.join("dist");
        let pinned = |op, existed| Access {
            at_call: Some(crate::trace::log::AtCall {
                real: Some(dist.clone()),
                existed,
            }),
            ..access(&dist, op, false)
        };
        let log = AccessLog {
            accesses: vec![
                pinned(Op::Remove, true),
                access(&root.join("tmp"), Op::RenameFrom, false),
                pinned(Op::RenameTo, false),
            ],
            ..AccessLog::default()
        };
        let state = snapshot(log).end_state;
        let mut listed = state.trees.get(&dist).cloned().expect("dist is listed");
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            vec![
                (root.join("dist/a.js"), PathKind::File),
                (root.join("dist/sub"), PathKind::Dir),
                (root.join("dist/sub/b.js"), PathKind::File),
            ]
        );
    }

    #[test]
    fn symlink_loops_end() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        symlink("b", root.join("a")).expect("symlink");
        symlink("a", root.join("b")).expect("symlink");
        let mut fs = Lstat::default();
        let r = resolve(&mut fs, &root.join("a"), true);
        assert_eq!(r.links.len(), MAX_LINKS);
    }
}

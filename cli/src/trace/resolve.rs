//! After the traced tree exited: resolves every recorded path through
//! symlinks and `..` the way the kernel would, and records what each real
//! path is now (file, directory, symlink, missing). The supervisor only sees
//! the path a tool asked for and never the result, so this is where
//! "missing", "is a directory" and "via symlink X" come from. Blocking
//! (lstat/readlink): run it through `blocking::unblock`.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::log::{AccessLog, EndState, Op, PathKind, Resolution};

/// Symlink chains longer than this are loops (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// Fills `log.end_state` for every recorded path except those under
/// `/proc`, `/sys` and `/dev` (pseudo files: never inputs, and stat'ing
/// `/proc/<pid>` of exited processes is pointless).
pub(crate) fn snapshot(mut log: AccessLog) -> AccessLog {
    let mut fs = Lstat::default();
    let mut state = EndState::default();
    for access in &log.accesses {
        if is_pseudo(&access.path) {
            continue;
        }
        if let Some(real) = access.at_call.as_ref().and_then(|c| c.real.as_ref())
            && !state.kinds.contains_key(real)
        {
            let kind = fs.kind(real);
            if let (PathKind::Symlink, Some(Entry::Symlink(target))) = (kind, fs.get(real)) {
                state.link_targets.insert(real.clone(), target);
            }
            if access.op == Op::RenameTo && kind == PathKind::Dir && !state.trees.contains_key(real)
            {
                let mut entries = Vec::new();
                walk(real, &mut entries);
                state.trees.insert(real.clone(), entries);
            }
            state.kinds.insert(real.clone(), kind);
        }
        let key = (access.path.clone(), access.follow);
        if state.resolved.contains_key(&key) {
            continue;
        }
        let resolution = resolve(&mut fs, &access.path, access.follow);
        for link in &resolution.links {
            if let Some(Entry::Symlink(target)) = fs.get(link) {
                state.link_targets.insert(link.clone(), target);
                state.kinds.insert(link.clone(), PathKind::Symlink);
            }
        }
        let kind = fs.kind(&resolution.real);
        if let (PathKind::Symlink, Some(Entry::Symlink(target))) = (kind, fs.get(&resolution.real))
        {
            state.link_targets.insert(resolution.real.clone(), target);
        }
        if access.op == Op::RenameTo
            && kind == PathKind::Dir
            && !state.trees.contains_key(&resolution.real)
        {
            let mut entries = Vec::new();
            walk(&resolution.real, &mut entries);
            state.trees.insert(resolution.real.clone(), entries);
        }
        state.kinds.insert(resolution.real.clone(), kind);
        state.resolved.insert(key, resolution);
    }
    log.end_state = state;
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
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|root| path.starts_with(root))
}

#[derive(Debug, Clone)]
enum Entry {
    Missing,
    Symlink(PathBuf),
    Kind(PathKind),
}

/// Memoised `lstat` + `readlink`: a build touches thousands of paths under
/// the same few directories.
#[derive(Default)]
struct Lstat {
    cache: HashMap<PathBuf, Entry>,
}

impl Lstat {
    fn get(&mut self, path: &Path) -> Option<Entry> {
        if let Some(entry) = self.cache.get(path) {
            return Some(entry.clone());
        }
        let entry = match fs::symlink_metadata(path) {
            Err(_) => Entry::Missing,
            Ok(meta) if meta.file_type().is_symlink() => match fs::read_link(path) {
                Ok(target) => Entry::Symlink(target),
                Err(_) => Entry::Missing,
            },
            Ok(meta) if meta.is_dir() => Entry::Kind(PathKind::Dir),
            Ok(meta) if meta.is_file() => Entry::Kind(PathKind::File),
            Ok(_) => Entry::Kind(PathKind::Other),
        };
        self.cache.insert(path.to_path_buf(), entry.clone());
        Some(entry)
    }

    fn kind(&mut self, path: &Path) -> PathKind {
        match self.get(path) {
            Some(Entry::Kind(kind)) => kind,
            Some(Entry::Symlink(_)) => PathKind::Symlink,
            Some(Entry::Missing) | None => PathKind::Missing,
        }
    }
}

/// Walks `path` component by component like the kernel: a symlink met on
/// the way is replaced by its target (relative targets against the link's
/// directory), `..` goes to the parent of what was resolved so far, and once
/// a component is missing the rest is appended lexically.
fn resolve(fs: &mut Lstat, path: &Path, follow_last: bool) -> Resolution {
    let mut links = Vec::new();
    let mut real = PathBuf::from("/");
    let mut todo: VecDeque<OsString> = components(path);
    let mut missing = false;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            real.pop();
            continue;
        }
        let candidate = real.join(&name);
        let last = todo.is_empty();
        if missing || (last && !follow_last) {
            real = candidate;
            continue;
        }
        match fs.get(&candidate) {
            Some(Entry::Symlink(target)) if links.len() < MAX_LINKS => {
                links.push(candidate);
                if target.is_absolute() {
                    real = PathBuf::from("/");
                }
                for component in components(&target).into_iter().rev() {
                    todo.push_front(component);
                }
            }
            Some(Entry::Missing) => {
                missing = true;
                real = candidate;
            }
            _ => real = candidate,
        }
    }
    Resolution { real, links }
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
        assert_eq!(state.kind(&r.real), PathKind::File);
        assert_eq!(
            state.link_targets.get(&root.join("node_modules/pkg")),
            Some(&PathBuf::from("../packages/pkg"))
        );

        let r = state.resolve(&via_link, false);
        assert_eq!(r.real, root.join("packages/pkg/main.js"));
        assert_eq!(state.kind(&r.real), PathKind::Symlink);
        assert_eq!(
            state.link_targets.get(&r.real),
            Some(&PathBuf::from("index.js"))
        );

        assert_eq!(
            state.resolve(&dotdot, true).real,
            root.join("packages/pkg/index.js")
        );
        let r = state.resolve(&missing, true);
        assert_eq!(r.real, root.join("packages/pkg/x.js"));
        assert_eq!(state.kind(&r.real), PathKind::Missing);
        assert!(
            !state
                .resolved
                .contains_key(&(PathBuf::from("/proc/1/maps"), true))
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

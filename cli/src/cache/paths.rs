//! Workspace-relative paths as the cache stores them (`RelPath`), and the
//! lexical path arithmetic the rest of the cache needs: normalising `..`,
//! deciding whether an observed absolute path is inside the workspace, and
//! showing a path relative to a package. Paths are bytes, not `String`: Linux
//! file names need not be UTF-8 and a cache must not choke on them.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A path relative to the workspace root: components joined by `/`, never
/// starting or ending with `/`, no `.` or `..` components. The empty path is
/// the workspace root itself.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub(crate) struct RelPath(#[serde(deserialize_with = "super::codec::bytes")] Vec<u8>);

/// Why a stored path cannot be used to write into the workspace.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum UnsafePath {
    #[error("`{0}` is absolute")]
    Absolute(String),
    #[error("`{0}` has an empty, `.` or `..` component")]
    BadComponent(String),
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
}

impl RelPath {
    /// The workspace root.
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    /// Checks bytes read back from the store before they are trusted as a
    /// place to write: a corrupt or hostile entry must not reach outside the
    /// workspace.
    pub(crate) fn from_stored(bytes: &[u8]) -> Result<Self, UnsafePath> {
        let shown = || String::from_utf8_lossy(bytes).into_owned();
        if bytes.contains(&0) {
            return Err(UnsafePath::Nul(shown()));
        }
        if bytes.first() == Some(&b'/') {
            return Err(UnsafePath::Absolute(shown()));
        }
        if bytes.is_empty() {
            return Ok(Self::root());
        }
        if bytes
            .split(|&b| b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..")
        {
            return Err(UnsafePath::BadComponent(shown()));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A path as an entry's decoding rebuilt it (`codec::path_keyed`),
    /// unchecked as serde's own decoding of a `RelPath` is: a path read
    /// back is checked with `from_stored` before anything is written there.
    pub(in crate::cache) fn from_decoded(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The workspace-relative form of `abs`, or `None` when `abs` (after
    /// resolving `.` and `..` lexically) is outside `root`. `root` must be an
    /// absolute, normalised path.
    pub(crate) fn from_abs(root: &Path, abs: &Path) -> Option<Self> {
        let (a, r) = (bytes(abs), bytes(root));
        if is_clean(a) && is_clean(r) && a.starts_with(b"/") && !has_parent_name(a) {
            // Clean, without `..`: the relative form is the bytes after the root's.
            if !is_within(abs, root) {
                return None;
            }
            let rest = if r == b"/" { &a[1..] } else { &a[r.len()..] };
            return Some(Self(rest.strip_prefix(b"/").unwrap_or(rest).to_vec()));
        }
        let abs = normalize(abs);
        let rest = abs.strip_prefix(root).ok()?;
        Some(Self::from_relative_components(rest))
    }

    fn from_relative_components(rest: &Path) -> Self {
        let mut out = Vec::new();
        for comp in rest.components() {
            if let Component::Normal(name) = comp {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name.as_bytes());
            }
        }
        Self(out)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn to_abs(&self, root: &Path) -> PathBuf {
        let mut abs = PathBuf::with_capacity(root.as_os_str().len() + 1 + self.0.len());
        self.to_abs_in(root, &mut abs);
        abs
    }

    /// `to_abs` into a buffer the caller reuses across many paths.
    pub(crate) fn to_abs_in(&self, root: &Path, abs: &mut PathBuf) {
        let s = abs.as_mut_os_string();
        s.clear();
        s.push(root.as_os_str());
        if !self.0.is_empty() {
            abs.push(OsStr::from_bytes(&self.0));
        }
    }

    pub(crate) fn join(&self, name: &[u8]) -> Self {
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        Self(out)
    }

    /// The directory holding this path (the root's parent is the root).
    pub(crate) fn parent(&self) -> Self {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Self(self.0[..i].to_vec()),
            None => Self::root(),
        }
    }

    pub(crate) fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// Component-wise prefix test: `a/b` is inside `a`, `ab` is not.
    pub(crate) fn is_within(&self, dir: &Self) -> bool {
        dir.0.is_empty()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.get(dir.0.len()) == Some(&b'/'))
    }

    pub(crate) fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// This path as seen from `base` (both workspace-relative), with `..`
    /// where needed: what a user standing in the package directory would type.
    pub(crate) fn relative_to(&self, base: &Self) -> String {
        let mine: Vec<&[u8]> = self.components().collect();
        let theirs: Vec<&[u8]> = base.components().collect();
        let common = mine.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let mut parts: Vec<String> = Vec::new();
        parts.extend(std::iter::repeat_n("..".to_string(), theirs.len() - common));
        parts.extend(mine[common..].iter().map(|c| readable_name(c)));
        if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        }
    }
}

/// A file name as a message shows it: lossy UTF-8, with control characters
/// escaped (`\n`), so that a name with a line break cannot break a message
/// across lines or forge one.
pub(crate) fn readable_name(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&String::from_utf8_lossy(&self.0))
        }
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({self})")
    }
}

/// Resolves `.` and `..` without touching the file system (symlinks are not
/// followed: the tracer reports the path string a process used, and that is
/// the name the cache fingerprints). `..` above the root stays at the root.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                // A relative path climbing above its start keeps its `..`s.
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// Whether a path is written the one way `Path` would print its
/// components: no repeated separator, no `.` component, no trailing
/// separator (except the root `/` itself). The tracer's resolved paths and
/// canonicalised directories are clean; the fast comparisons below rely on
/// it and fall back to `Path`'s own where a path is not.
/// (Post-run work asks these several times for each of tens of thousands
/// of recorded paths; splitting paths into components was most of it.)
pub(crate) fn is_clean(path: &[u8]) -> bool {
    if path.len() > 1 && path.ends_with(b"/") {
        return false;
    }
    if path.is_empty() || path == b"." || path.starts_with(b"./") || path.ends_with(b"/.") {
        return false;
    }
    !path
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"//" || (w == b"/." && path.get(i + 2) == Some(&b'/')))
}

/// Whether a name of `path` is `..` (which only a walk of the file system
/// can resolve where symlinks are involved), without splitting `path` into
/// components.
pub(crate) fn has_parent_name(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').any(|name| name == b"..")
}

/// `path.starts_with(dir)` (component-wise), without splitting either into
/// components when both are clean: `dir` itself or a path below it.
/// Classifying a large log asks this several times per recorded path.
pub(crate) fn is_within(path: &Path, dir: &Path) -> bool {
    let (p, d) = (bytes(path), bytes(dir));
    if !is_clean(p) || !is_clean(d) {
        return path.starts_with(dir);
    }
    if d == b"/" {
        return p.starts_with(b"/");
    }
    p.starts_with(d) && (p.len() == d.len() || p[d.len()] == b'/')
}

/// The first name after the root of an absolute path (`proc` for
/// `/proc/1/maps`, also for `//proc` or `/./proc`), as `Path::components`
/// would give it; `None` for a relative path or `/` itself.
pub(crate) fn first_name(path: &Path) -> Option<&[u8]> {
    let p = bytes(path);
    if !p.starts_with(b"/") {
        return None;
    }
    p.split(|b| *b == b'/')
        .find(|name| !name.is_empty() && *name != b".")
}

/// True when a workspace-relative path must never be fingerprinted or
/// archived: anything under a `.git` directory (version-control state changes
/// on every commit and is never a build input or output).
pub(crate) fn is_vcs_path(path: &RelPath) -> bool {
    path.components().any(|c| c == b".git")
}

/// The workspace-relative form of `abs` when the cache may record it at
/// all: inside `root`, not under a `.git` directory, and not in vp's cache
/// directory (`cache_rel`, relative to `root`). Storing (`collect::Scope`)
/// and hashing during the run (`prehash.rs`) share this rule.
pub(crate) fn recordable(root: &Path, cache_rel: Option<&RelPath>, abs: &Path) -> Option<RelPath> {
    let rel = RelPath::from_abs(root, abs)?;
    if is_vcs_path(&rel) || cache_rel.is_some_and(|c| rel.is_within(c)) {
        return None;
    }
    Some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probe: a file name with a line break broke a miss reason in two.
    #[test]
    fn control_characters_in_names_are_escaped_in_messages() {
        assert_eq!(readable_name(b"a\nb.js"), "a\\nb.js");
        assert_eq!(readable_name(b"plain.js"), "plain.js");
        let p = RelPath::from_stored(b"src/a\tb.js").expect("valid");
        assert_eq!(p.relative_to(&RelPath::root()), "src/a\\tb.js");
    }

    #[test]
    fn recordable_is_inside_the_root_outside_git_and_the_cache() {
        let root = Path::new("/w");
        let cache = RelPath::from_abs(root, Path::new("/w/node_modules/.cache/vp"));
        let rec =
            |abs: &str| recordable(root, cache.as_ref(), Path::new(abs)).map(|r| r.to_string());
        assert_eq!(rec("/w/src/a.js").as_deref(), Some("src/a.js"));
        assert_eq!(rec("/w/src/../b.js").as_deref(), Some("b.js"));
        assert_eq!(rec("/etc/hostname"), None);
        assert_eq!(rec("/w/.git/HEAD"), None);
        assert_eq!(rec("/w/pkg/.git/config"), None);
        assert_eq!(rec("/w/node_modules/.cache/vp/CURRENT"), None);
        assert_eq!(
            rec("/w/node_modules/.cache/other").as_deref(),
            Some("node_modules/.cache/other")
        );
        assert_eq!(
            recordable(root, None, Path::new("/w/x"))
                .map(|r| r.to_string())
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn from_abs_keeps_inside_and_rejects_outside() {
        let root = Path::new("/ws");
        assert_eq!(
            RelPath::from_abs(root, Path::new("/ws/a/b.js")).map(|p| p.to_string()),
            Some("a/b.js".into())
        );
        assert_eq!(
            RelPath::from_abs(root, Path::new("/ws")).map(|p| p.is_root()),
            Some(true)
        );
        assert_eq!(
            RelPath::from_abs(root, Path::new("/ws/a/../../etc/passwd")),
            None
        );
        assert_eq!(RelPath::from_abs(root, Path::new("/wsx/a")), None);
        assert_eq!(
            RelPath::from_abs(root, Path::new("/ws/pkg/./x/../y")).map(|p| p.to_string()),
            Some("pkg/y".into())
        );
    }

    #[test]
    fn from_stored_refuses_escapes() {
        assert!(RelPath::from_stored(b"dist/a.js").is_ok());
        assert!(matches!(
            RelPath::from_stored(b"/etc/passwd"),
            Err(UnsafePath::Absolute(_))
        ));
        assert!(matches!(
            RelPath::from_stored(b"dist/../../x"),
            Err(UnsafePath::BadComponent(_))
        ));
        assert!(matches!(
            RelPath::from_stored(b"dist//x"),
            Err(UnsafePath::BadComponent(_))
        ));
        assert!(matches!(
            RelPath::from_stored(b"./x"),
            Err(UnsafePath::BadComponent(_))
        ));
        assert!(matches!(
            RelPath::from_stored(b"x\0y"),
            Err(UnsafePath::Nul(_))
        ));
        assert!(RelPath::from_stored(b"").is_ok_and(|p| p.is_root()));
    }

    #[test]
    fn parent_name_and_within() {
        let p = RelPath::from_stored(b"src/lib/a.js").expect("valid");
        assert_eq!(p.parent().to_string(), "src/lib");
        assert_eq!(p.file_name(), b"a.js");
        assert!(p.is_within(&RelPath::from_stored(b"src").expect("valid")));
        assert!(!p.is_within(&RelPath::from_stored(b"sr").expect("valid")));
        assert!(p.is_within(&RelPath::root()));
        assert_eq!(
            RelPath::from_stored(b"a").expect("valid").parent(),
            RelPath::root()
        );
    }

    #[test]
    fn relative_display() {
        let p = RelPath::from_stored(b"packages/a/src/x.js").expect("valid");
        assert_eq!(
            p.relative_to(&RelPath::from_stored(b"packages/a").expect("valid")),
            "src/x.js"
        );
        assert_eq!(
            p.relative_to(&RelPath::from_stored(b"packages/b").expect("valid")),
            "../a/src/x.js"
        );
        assert_eq!(p.relative_to(&RelPath::root()), "packages/a/src/x.js");
        assert_eq!(RelPath::root().relative_to(&RelPath::root()), ".");
    }

    /// A reused buffer ends up holding exactly what `to_abs` returns,
    /// whatever it held before (longer, shorter, the root alone).
    #[test]
    fn to_abs_in_a_reused_buffer_equals_to_abs() {
        let mut buf = PathBuf::from("/a/much/longer/path/than/any/below.txt");
        for (root, rel) in [
            ("/ws", &b"src/x.js"[..]),
            ("/ws", b""),
            ("/ws/", b"a"),
            ("/", b"a/b"),
            ("/other/root", b"packages/app/index.html"),
        ] {
            let p = RelPath::from_stored(rel).expect("valid");
            p.to_abs_in(Path::new(root), &mut buf);
            // The root itself for the root path, no trailing `/`.
            let expected = if rel.is_empty() {
                PathBuf::from(root)
            } else {
                Path::new(root).join(OsStr::from_bytes(rel))
            };
            assert_eq!(
                buf.as_os_str().as_bytes(),
                expected.as_os_str().as_bytes(),
                "{root} {rel:?}"
            );
            assert_eq!(buf, p.to_abs(Path::new(root)));
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let raw = b"dir/\xffname";
        let p = RelPath::from_stored(raw).expect("valid");
        assert_eq!(
            p.to_abs(Path::new("/ws")).as_os_str().as_bytes(),
            b"/ws/dir/\xffname"
        );
    }

    #[test]
    fn normalize_relative_and_absolute() {
        assert_eq!(
            normalize(Path::new("../../a/./b/../c")),
            PathBuf::from("../../a/c")
        );
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
        assert_eq!(normalize(Path::new("./")), PathBuf::new());
    }

    #[test]
    fn vcs_paths() {
        assert!(is_vcs_path(
            &RelPath::from_stored(b".git/HEAD").expect("valid")
        ));
        assert!(is_vcs_path(
            &RelPath::from_stored(b"sub/.git/index").expect("valid")
        ));
        assert!(!is_vcs_path(
            &RelPath::from_stored(b".github/x.yml").expect("valid")
        ));
    }

    /// The fast comparisons answer as `Path`'s component-wise ones, on
    /// clean paths and on every unclean spelling (which take the slow way).
    #[test]
    fn within_and_first_name_agree_with_components() {
        let paths = [
            "/",
            "//",
            "/w",
            "/w/",
            "/w//a",
            "/w/./a",
            "/w/.",
            "./w",
            "w",
            "w/a",
            "/wa",
            "/w/a",
            "/w/a/b",
            "/w/.git",
            "/w/a/.gitignore",
            "/proc",
            "/proc/1",
            "//proc/1",
            "/./proc",
            "/../proc",
            "/process",
            "/sys/x",
            "/dev",
            "/devx",
            "",
        ];
        for p in paths {
            for d in paths {
                let (pp, dd) = (Path::new(p), Path::new(d));
                assert_eq!(is_within(pp, dd), pp.starts_with(dd), "{p:?} within {d:?}");
            }
            // After the root: `Normal("proc")`, or `..` for `/../proc`.
            let expected = p.starts_with('/').then(|| {
                Path::new(p)
                    .components()
                    .nth(1)
                    .map(|c| c.as_os_str().as_encoded_bytes())
            });
            let expected = expected.flatten();
            assert_eq!(first_name(Path::new(p)), expected, "{p:?}");
        }
    }
}

//! Where the cache is and how big it may grow, resolved once with the
//! precedence flag > environment > default: `--cache-dir` / `VP_CACHE_DIR`
//! (clap reads both; empty means not set), `--max-size` /
//! `VP_CACHE_MAX_SIZE`, and `VP_CACHE_LOCK_TIMEOUT`.

use std::path::{Path, PathBuf};

use super::paths::normalize;
use super::size::{DEFAULT_MAX_SIZE, SizeError, parse_size};
use super::store::open::OpenOptions;

/// Where the cache lives when neither `--cache-dir` nor `VP_CACHE_DIR` says:
/// inside the workspace, so deleting the workspace deletes its cache, and
/// under `node_modules` so that every tool already ignores it.
pub(crate) fn default_cache_dir(workspace_root: &Path) -> PathBuf {
    workspace_root
        .join("node_modules")
        .join(".cache")
        .join("vp")
}

/// The cache directory the user asked for with `--cache-dir` or
/// `VP_CACHE_DIR` (clap hands over both as `cli_dir`). An empty value means
/// "not set", as for most tools' path variables: `VP_CACHE_DIR= vp run` and
/// `--cache-dir "$UNSET"` use the default instead of failing.
pub(crate) fn requested_dir(cli_dir: Option<&Path>) -> Option<&Path> {
    cli_dir.filter(|d| !d.as_os_str().is_empty())
}

#[derive(Clone, Debug)]
pub(crate) struct CacheSettings {
    /// Absolute, normalised.
    pub(crate) dir: PathBuf,
    pub(crate) max_size: u64,
    pub(crate) open: OpenOptions,
}

impl CacheSettings {
    /// `cli_dir` is `--cache-dir` (or `VP_CACHE_DIR` via clap), relative to
    /// `cwd`, empty meaning unset; `cli_max_size` is `--max-size`; `env` looks up variables.
    pub(crate) fn resolve(
        cli_dir: Option<&Path>,
        cli_max_size: Option<&str>,
        workspace_root: &Path,
        cwd: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SizeError> {
        let dir = match requested_dir(cli_dir) {
            Some(d) => normalize(&cwd.join(d)),
            None => default_cache_dir(workspace_root),
        };
        let max_size = match cli_max_size
            .map(str::to_string)
            .or_else(|| env("VP_CACHE_MAX_SIZE"))
        {
            Some(text) => parse_size(&text)?,
            None => DEFAULT_MAX_SIZE,
        };
        Ok(Self {
            dir,
            max_size,
            open: OpenOptions::from_env(&env),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let root = Path::new("/ws");
        let none = |_: &str| None;
        let s =
            CacheSettings::resolve(None, None, root, Path::new("/ws/pkg"), none).expect("resolves");
        assert_eq!(s.dir, PathBuf::from("/ws/node_modules/.cache/vp"));
        assert_eq!(s.max_size, DEFAULT_MAX_SIZE);

        let env = |k: &str| (k == "VP_CACHE_MAX_SIZE").then(|| "1MiB".to_string());
        let s = CacheSettings::resolve(
            Some(Path::new("../c")),
            None,
            root,
            Path::new("/ws/pkg"),
            env,
        )
        .expect("resolves");
        assert_eq!(s.dir, PathBuf::from("/ws/c"));
        assert_eq!(s.max_size, 1 << 20);
        let s = CacheSettings::resolve(None, Some("2KiB"), root, root, env).expect("resolves");
        assert_eq!(s.max_size, 2048, "the flag wins over the environment");
    }

    #[test]
    fn empty_dir_means_the_default() {
        let root = Path::new("/ws");
        let s = CacheSettings::resolve(Some(Path::new("")), None, root, root, |_: &str| None)
            .expect("an empty VP_CACHE_DIR is not an error");
        assert_eq!(s.dir, PathBuf::from("/ws/node_modules/.cache/vp"));
    }

    #[test]
    fn bad_size_is_an_error() {
        let env = |_: &str| Some("lots".to_string());
        assert!(
            CacheSettings::resolve(None, None, Path::new("/ws"), Path::new("/ws"), env).is_err()
        );
    }
}

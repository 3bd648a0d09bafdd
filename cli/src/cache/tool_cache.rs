//! The cache directories of tools vp knows. No tool's result depends on
//! its cache, only its speed, and each run rewrites it: as an input it kept
//! every run from being stored, and as an output it would be archived and
//! restored for nothing. So what a task does in one is neither input nor
//! output (`trace::classify`), and its name in a listed directory is not
//! part of the listing (`file_state`): `rm -rf .next/cache` is no edit.
//!
//! A tool that speaks to vp says the same with `ignoreInput` and
//! `ignoreOutput` (Vite, for `node_modules/.vite`); a user can, with `!`
//! patterns in a task's `input` and `output`. This list is for tools that
//! do not speak to vp. Each entry, and what it was measured on:
//!
//! - `.next/cache`, Next.js's build caches (Turbopack's and webpack's, the
//!   fetch and image caches). Next.js 16's Turbopack keeps a database
//!   there whose files every build reads, deletes and replaces, so no
//!   `next build` after an edit was stored. Next.js documents it as a
//!   cache to keep between builds; nothing else reads it.
//! - `node_modules/.cache`, the directory the `find-cache-dir` convention
//!   gives each tool (`node_modules/.cache/<tool>`): webpack 5's
//!   filesystem cache, babel-loader, terser-webpack-plugin, Prettier's
//!   `--cache`. Webpack 5.113 rewrites its `*.pack` files after each
//!   edit, so every other build was not stored. (vp's own cache, there by
//!   default, is left out before this list is asked.)
//! - `.angular/cache`, the Angular CLI's build cache (on by default for
//!   local builds). Angular 20.3 keeps an LMDB database there whose lock
//!   file each build reads and rewrites: the first build after an edit
//!   was not stored ("it modified its input
//!   `.angular/cache/20.3.43/app/angular-compiler.db-lock`"), the one
//!   after it missed again, and every entry archived the 1.5 MB cache.
//! - `node_modules/.vite`, Vite's dependency optimizer cache, which Vite
//!   8.3+ declares itself with `ignoreInput`/`ignoreOutput`. Vite 7 and
//!   older cannot; Astro 5.18 (on Vite 6.4) fills it while it builds, and
//!   its first build after the cache was made was not stored ("its input
//!   `node_modules/.vite/deps/_metadata.json` was modified while it ran").

use std::path::Path;

/// Each cache as (name of the directory holding it, its own name).
const TOOL_CACHES: &[(&[u8], &[u8])] = &[
    (b".next", b"cache"),
    (b".angular", b"cache"),
    (b"node_modules", b".cache"),
    (b"node_modules", b".vite"),
];

/// Whether `path`, below `root` (both absolute and clean), is in a tool's
/// cache (the cache directory itself included). Only names below `root`
/// count: a workspace inside a directory named `.next/cache` is no cache.
pub(crate) fn contains(root: &Path, path: &Path) -> bool {
    // On bytes: classifying asks this of every path a task touched.
    let root = root.as_os_str().as_encoded_bytes();
    let Some(below) = path.as_os_str().as_encoded_bytes().strip_prefix(root) else {
        return false;
    };
    if !(root.ends_with(b"/") || below.is_empty() || below.starts_with(b"/")) {
        return false;
    }
    // Every cache on the list has a name starting with `.` on the way to
    // it: most paths (sources, packages) are out with one short scan.
    if !(below.starts_with(b".") || below.windows(2).any(|w| w == b"/.")) {
        return false;
    }
    let mut parent: &[u8] = b"";
    for name in below.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        if is_entry(parent, name) {
            return true;
        }
        parent = name;
    }
    false
}

/// Whether the entry `name` of the directory `dir` is a tool's cache.
pub(crate) fn is_entry_of(dir: &Path, name: &[u8]) -> bool {
    dir.file_name()
        .is_some_and(|parent| is_entry(parent.as_encoded_bytes(), name))
}

fn is_entry(parent: &[u8], name: &[u8]) -> bool {
    TOOL_CACHES.iter().any(|&(p, n)| p == parent && n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_cache_and_everything_below_it() {
        let root = Path::new("/ws");
        for path in [
            "/ws/.next/cache",
            "/ws/.next/cache/turbopack/v16/00000001.sst",
            "/ws/apps/web/.next/cache/webpack/client-production/0.pack",
            "/ws/node_modules/.cache/webpack/default-production/0.pack",
            "/ws/packages/ui/node_modules/.cache/babel-loader/x.json.gz",
            "/ws/node_modules/.vite/deps/_metadata.json",
            "/ws/apps/shop/.angular/cache/20.3.43/shop/angular-compiler.db-lock",
        ] {
            assert!(contains(root, Path::new(path)), "{path}");
        }
        for path in [
            "/ws/.next",
            "/ws/.next/server/app/page.js",
            "/ws/.next/cached/x",
            "/ws/src/cache/x",
            "/ws/.nextcache/x",
            "/ws/node_modules/.vite-temp/vite.config.js.timestamp-1.mjs",
            "/ws/node_modules/react/index.js",
            "/ws/src/.cache/x",
            "/elsewhere/.next/cache/x",
            "/ws.next/cache/x",
        ] {
            assert!(!contains(root, Path::new(path)), "{path}");
        }
        // Above the root, the names are the workspace's location.
        assert!(!contains(
            Path::new("/srv/.next/cache/ws"),
            Path::new("/srv/.next/cache/ws/src/a.js")
        ));
    }

    /// `contains` rejects a path without a `/.` at once.
    #[test]
    fn every_cache_has_a_hidden_name_on_the_way() {
        for (dir, name) in TOOL_CACHES {
            assert!(dir.starts_with(b".") || name.starts_with(b"."));
        }
        assert!(contains(Path::new("/"), Path::new("/.next/cache/x")));
    }

    #[test]
    fn the_cache_as_an_entry_of_its_directory() {
        assert!(is_entry_of(Path::new("/ws/app/.next"), b"cache"));
        assert!(!is_entry_of(Path::new("/ws/app/.next"), b"server"));
        assert!(!is_entry_of(Path::new("/ws/app"), b"cache"));
    }
}

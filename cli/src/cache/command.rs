//! `vp cache clean|prune|stats|path`: the user's window into the store.
//! Resolves where the cache is (flag, `VP_CACHE_DIR`, else the workspace
//! root's `node_modules/.cache/vp`), then reports on stdout; waiting and
//! set-aside notices go to stderr.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::settings::CacheSettings;
use super::size::format_size;
use super::store::Store;
use super::store::evict::{self, CleanOutcome};
use super::store::open::{self, Opened};
use crate::args::{CacheArgs, CacheCommand};

pub(crate) fn run(args: CacheArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let env = |k: &str| std::env::var(k).ok();
    execute(
        args,
        &cwd,
        &env,
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
}

/// The nearest directory at or above `start` that is a workspace root
/// (`pnpm-workspace.yaml`, or a `package.json` with `workspaces`), else the
/// nearest directory with a `package.json`.
fn find_workspace_root(start: &Path) -> Option<PathBuf> {
    let mut nearest_package = None;
    for dir in start.ancestors() {
        if dir.join("pnpm-workspace.yaml").is_file() {
            return Some(dir.to_path_buf());
        }
        let manifest = dir.join("package.json");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let has_workspaces = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .is_some_and(|v| v.get("workspaces").is_some());
            if has_workspaces {
                return Some(dir.to_path_buf());
            }
            nearest_package.get_or_insert_with(|| dir.to_path_buf());
        }
    }
    nearest_package
}

fn execute(
    args: CacheArgs,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let max_size = match &args.command {
        CacheCommand::Prune { max_size } => max_size.as_deref(),
        _ => None,
    };
    let root = match &args.cache_dir {
        Some(_) => cwd.to_path_buf(),
        None => find_workspace_root(cwd).with_context(|| {
            format!(
                "no workspace found at or above `{}`\n(hint: run `vp cache` inside a workspace, or pass `--cache-dir`)",
                cwd.display()
            )
        })?,
    };
    let settings = CacheSettings::resolve(args.cache_dir.as_deref(), max_size, &root, cwd, env)?;
    let dir = &settings.dir;
    let mut notify = |n: open::StoreNotice| {
        let _ = writeln!(err, "vp: {n}");
    };
    match args.command {
        CacheCommand::Path => writeln!(out, "{}", dir.display())?,
        CacheCommand::Clean => match evict::clean(dir, &settings.open, &mut notify)? {
            CleanOutcome::Removed { freed_bytes } => {
                writeln!(
                    out,
                    "removed the cache at `{}` ({})",
                    dir.display(),
                    format_size(freed_bytes)
                )?;
            }
            CleanOutcome::NothingThere => writeln!(out, "no cache at `{}`", dir.display())?,
        },
        CacheCommand::Prune { .. } => {
            let Some(store) = open_existing(dir, &settings, &mut notify)? else {
                writeln!(out, "no cache at `{}`", dir.display())?;
                return Ok(ExitCode::SUCCESS);
            };
            let r = store.prune(settings.max_size)?;
            writeln!(
                out,
                "removed {} {} and {} {} ({}); {} {} left, {} of {}",
                r.removed_entries,
                plural(r.removed_entries, "entry", "entries"),
                r.removed_blobs,
                plural(r.removed_blobs, "blob", "blobs"),
                format_size(r.freed_bytes),
                r.remaining_entries,
                plural(r.remaining_entries, "entry", "entries"),
                format_size(r.remaining_bytes),
                format_size(settings.max_size),
            )?;
        }
        CacheCommand::Stats => {
            let Some(store) = open_existing(dir, &settings, &mut notify)? else {
                writeln!(out, "no cache at `{}`", dir.display())?;
                return Ok(ExitCode::SUCCESS);
            };
            let s = store.stats()?;
            writeln!(out, "cache:    {}", dir.display())?;
            writeln!(
                out,
                "entries:  {} ({} for {} {})",
                s.entries,
                format_size(s.entry_bytes),
                s.tasks,
                plural(s.tasks, "task", "tasks")
            )?;
            writeln!(
                out,
                "blobs:    {} ({} compressed)",
                s.blobs,
                format_size(s.blob_bytes)
            )?;
            writeln!(out, "hits:     {}", s.hits)?;
            writeln!(
                out,
                "on disk:  {} (bound {})",
                format_size(s.disk_bytes),
                format_size(settings.max_size)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store only if there is one: inspecting must not create it.
fn open_existing(
    dir: &Path,
    settings: &CacheSettings,
    notify: &mut dyn FnMut(open::StoreNotice),
) -> anyhow::Result<Option<Store>> {
    if !dir.exists() {
        return Ok(None);
    }
    match open::open(dir, &settings.open, notify)? {
        Opened::Ready(store) => Ok(Some(store)),
        Opened::Busy { holder } => Err(super::error::CacheError::Busy {
            dir: dir.to_path_buf(),
            holder,
        }
        .into()),
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in(
        cwd: &Path,
        command: CacheCommand,
        cache_dir: Option<PathBuf>,
    ) -> (anyhow::Result<ExitCode>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let env = |_: &str| None;
        let r = execute(
            CacheArgs { cache_dir, command },
            cwd,
            &env,
            &mut out,
            &mut err,
        );
        (
            r,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn path_defaults_to_workspace_root() {
        let ws = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            ws.path().join("pnpm-workspace.yaml"),
            "packages: ['packages/*']\n",
        )
        .expect("write");
        let pkg = ws.path().join("packages/a");
        std::fs::create_dir_all(&pkg).expect("mkdir");
        std::fs::write(pkg.join("package.json"), "{}").expect("write");
        let (r, out, _) = run_in(&pkg, CacheCommand::Path, None);
        assert!(r.is_ok());
        assert_eq!(
            out.trim(),
            ws.path()
                .join("node_modules/.cache/vp")
                .display()
                .to_string()
        );
    }

    #[test]
    fn stats_prune_clean_lifecycle() {
        let ws = tempfile::tempdir().expect("tempdir");
        let dir = ws.path().join("c");
        let (_, out, _) = run_in(ws.path(), CacheCommand::Stats, Some(dir.clone()));
        assert!(out.starts_with("no cache at"), "{out}");
        assert!(!dir.exists(), "stats must not create a cache");
        drop(
            open::open(
                &dir,
                &open::OpenOptions {
                    lock_timeout: std::time::Duration::ZERO,
                },
                &mut |_| {},
            )
            .expect("create"),
        );
        let (r, out, _) = run_in(ws.path(), CacheCommand::Stats, Some(dir.clone()));
        assert!(r.is_ok());
        assert!(out.contains("entries:  0"), "{out}");
        let (r, out, _) = run_in(
            ws.path(),
            CacheCommand::Prune {
                max_size: Some("1MiB".into()),
            },
            Some(dir.clone()),
        );
        assert!(r.is_ok());
        assert!(out.starts_with("removed 0 entries and 0 blobs"), "{out}");
        let (r, out, _) = run_in(ws.path(), CacheCommand::Clean, Some(dir.clone()));
        assert!(r.is_ok());
        assert!(out.starts_with("removed the cache at"), "{out}");
        assert!(!dir.exists());
    }

    #[test]
    fn bad_max_size_is_an_error() {
        let ws = tempfile::tempdir().expect("tempdir");
        let (r, _, _) = run_in(
            ws.path(),
            CacheCommand::Prune {
                max_size: Some("huge".into()),
            },
            Some(ws.path().join("c")),
        );
        assert!(
            r.expect_err("bad size")
                .to_string()
                .starts_with("invalid size `huge`")
        );
    }

    #[test]
    fn workspace_root_search() {
        let ws = tempfile::tempdir().expect("tempdir");
        let root = ws.path().join("mono");
        let pkg = root.join("packages/a");
        std::fs::create_dir_all(pkg.join("src")).expect("mkdir");
        std::fs::write(
            root.join("package.json"),
            r#"{"workspaces": ["packages/*"]}"#,
        )
        .expect("write");
        std::fs::write(pkg.join("package.json"), "{}").expect("write");
        assert_eq!(find_workspace_root(&pkg.join("src")), Some(root.clone()));
        // Without a workspace marker, the nearest package wins.
        std::fs::write(root.join("package.json"), "{}").expect("write");
        let found = find_workspace_root(&pkg.join("src")).expect("a package");
        assert!(
            found == pkg || !found.starts_with(&root),
            "{}",
            found.display()
        );
    }
}

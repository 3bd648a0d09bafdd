//! `vp cache clean|prune|stats|path|remote-check`: the user's window into
//! the store and the remote cache.
//! Resolves where the cache is (flag, `VP_CACHE_DIR`, else the workspace
//! root's `node_modules/.cache/vp`), then reports on stdout; waiting and
//! set-aside notices go to stderr.

use std::io::{self, Write};
use std::path::Path;

use anyhow::Context as _;

use super::settings::{CacheSettings, requested_dir};
use super::size::format_size;
use super::store::Store;
use super::store::evict::{self, CleanOutcome};
use super::store::open::{self, Opened, WhenUnusable};
use crate::args::{CacheArgs, CacheCommand};
use crate::remote::{RemoteConfig, RemoteInputs, RemoteSession, check_connection};
use crate::workspace::WorkspaceError;

/// The local half of `vp cache stats`.
fn local_stats(out: &mut dyn Write, store: &Store, settings: &CacheSettings) -> anyhow::Result<()> {
    let s = store.stats()?;
    writeln!(out, "cache:    {}", settings.dir.display())?;
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
    Ok(())
}

/// The remote cache as a run here would use it: vp's environment and the
/// root `vite-task.json` of the workspace around `cwd`, if there is one.
fn remote_config(cwd: &Path) -> anyhow::Result<Option<RemoteConfig>> {
    let env: Vec<_> = std::env::vars_os().collect();
    let ws = crate::workspace::Workspace::load(cwd).ok();
    let file = ws
        .as_ref()
        .and_then(|ws| ws.packages[0].task_config.as_ref())
        .and_then(|c| c.remote_cache.as_ref());
    Ok(RemoteConfig::resolve(&RemoteInputs {
        env: &env,
        file,
        flag: None,
    })?)
}

pub(crate) fn run(args: CacheArgs) -> anyhow::Result<u8> {
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

fn execute(
    args: CacheArgs,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let max_size = match &args.command {
        CacheCommand::Prune { max_size } => max_size.as_deref(),
        _ => None,
    };
    let root = match requested_dir(args.cache_dir.as_deref()) {
        Some(_) => cwd.to_path_buf(),
        None => crate::workspace::find_root(cwd).map_err(|e| match e {
            WorkspaceError::NoWorkspace { .. } => anyhow::anyhow!(
                "no workspace found at or above `{}`\n(hint: run `vp cache` inside a workspace, or pass `--cache-dir`)",
                cwd.display()
            ),
            e => anyhow::Error::new(e),
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
                return Ok(0);
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
            match open_existing(dir, &settings, &mut notify)? {
                Some(store) => local_stats(out, &store, &settings)?,
                None => writeln!(out, "no cache at `{}`", dir.display())?,
            }
            match remote_config(cwd)? {
                Some(config) => writeln!(out, "{config}")?,
                None => writeln!(out, "remote cache: off (VP_REMOTE_CACHE_URL is not set)")?,
            }
        }
        CacheCommand::RemoteCheck => {
            let Some(config) = remote_config(cwd)? else {
                anyhow::bail!(
                    "no remote cache is configured\n(hint: set VP_REMOTE_CACHE_URL, VP_REMOTE_CACHE_TOKEN and VP_REMOTE_CACHE_TEAM; see docs/remote-cache.md)"
                );
            };
            let url = config.url.clone();
            let session = RemoteSession::new(config);
            match check_connection(&session) {
                Ok(check) => writeln!(
                    out,
                    "remote cache at {url}: status `{}`, token accepted",
                    check.status
                )?,
                Err(e) => anyhow::bail!(
                    "the remote cache at {url} failed the check: {e}\n(hint: check VP_REMOTE_CACHE_URL, VP_REMOTE_CACHE_TOKEN and VP_REMOTE_CACHE_TEAM)"
                ),
            }
        }
    }
    Ok(0)
}

/// Opens the store only if there is one: inspecting must not create it.
fn open_existing(
    dir: &Path,
    settings: &CacheSettings,
    notify: &mut dyn FnMut(open::StoreNotice),
) -> anyhow::Result<Option<Store>> {
    match super::store::layout::CacheDir::find(dir)? {
        Some(home) if home.db().exists() => {}
        _ => return Ok(None),
    }
    // Read-write: `prune` writes, and `stats` should not read around a
    // running vp's lock. Neither replaces a store it cannot use: that is a
    // run's repair, not something a user asked for here.
    match open::open_exclusive(dir, &settings.open, WhenUnusable::Report, notify)? {
        Opened::Ready(store) => Ok(Some(store)),
        Opened::Busy { holder } => Err(super::error::CacheError::Busy {
            dir: dir.to_path_buf(),
            holder,
        }
        .into()),
        Opened::HeldByAncestor { holder, .. } => Err(super::error::CacheError::Busy {
            dir: dir.to_path_buf(),
            holder: Some(holder),
        }
        .into()),
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn run_in(
        cwd: &Path,
        command: CacheCommand,
        cache_dir: Option<PathBuf>,
    ) -> (anyhow::Result<u8>, String, String) {
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

    fn create_store(dir: &Path) {
        drop(
            open::open(
                dir,
                &open::OpenOptions::waiting(std::time::Duration::ZERO),
                &mut |_| {},
            )
            .expect("create"),
        );
    }

    #[test]
    fn stats_prune_clean_lifecycle() {
        let ws = tempfile::tempdir().expect("tempdir");
        let dir = ws.path().join("c");
        let (_, out, _) = run_in(ws.path(), CacheCommand::Stats, Some(dir.clone()));
        assert!(out.starts_with("no cache at"), "{out}");
        assert!(!dir.exists(), "stats must not create a cache");
        create_store(&dir);
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

    /// Probe: `vp cache stats` on a store it could not open moved the
    /// store aside and started a new one, as a run does: a command that
    /// inspects must leave the store as it found it, and say what is wrong.
    #[test]
    fn inspecting_an_unusable_store_reports_it_and_leaves_it() {
        let ws = tempfile::tempdir().expect("tempdir");
        let dir = ws.path().join("c");
        create_store(&dir);
        let current = dir.join("db/CURRENT");
        std::fs::write(&current, b"\x00\x01garbage").expect("write");
        let listing = |d: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(d)
                .expect("read")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing(&dir.join("db"));
        for command in [
            CacheCommand::Stats,
            CacheCommand::Prune {
                max_size: Some("1MiB".into()),
            },
        ] {
            let (r, out, err) = run_in(ws.path(), command, Some(dir.clone()));
            let message = r.expect_err("unusable store").to_string();
            assert!(message.contains("cannot be used"), "{message}");
            assert!(message.contains("left as it is"), "{message}");
            assert!(message.contains("vp cache clean"), "{message}");
            assert!(out.is_empty() && err.is_empty(), "{out}{err}");
            assert!(!dir.join("set-aside").exists(), "nothing moved aside");
            assert_eq!(listing(&dir.join("db")), before);
            assert_eq!(std::fs::read(&current).expect("read"), b"\x00\x01garbage");
        }
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
    fn clean_uses_the_package_when_an_ancestor_workspace_does_not_list_it() {
        // A stray pnpm-workspace.yaml above the project must not move the
        // cache (and what `vp cache clean` deletes) to the ancestor.
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join("pnpm-workspace.yaml"),
            "packages: ['work/*']\n",
        )
        .expect("write");
        let project = home.path().join("projects/site");
        std::fs::create_dir_all(&project).expect("mkdir");
        std::fs::write(project.join("package.json"), "{}").expect("write");
        let (r, out, _) = run_in(&project, CacheCommand::Path, None);
        assert!(r.is_ok());
        assert_eq!(
            out.trim(),
            project.join("node_modules/.cache/vp").display().to_string()
        );
    }

    #[test]
    fn empty_cache_dir_means_the_default() {
        let ws = tempfile::tempdir().expect("tempdir");
        std::fs::write(ws.path().join("package.json"), "{}").expect("write");
        let (r, out, _) = run_in(ws.path(), CacheCommand::Path, Some(PathBuf::new()));
        assert!(r.is_ok());
        assert_eq!(
            out.trim(),
            ws.path()
                .join("node_modules/.cache/vp")
                .display()
                .to_string()
        );
    }
}

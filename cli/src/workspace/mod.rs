//! Finding the workspace and loading it into typed form.
//!
//! `Workspace::load` finds the root (`discover`; `find_root` alone for the
//! commands that need only the root), expands the package globs, reads every
//! `package.json` (`manifest`) and `vite-task.json` (`task_config`). The graph
//! module consumes the result; nothing here runs anything.

mod discover;
mod error;
mod manifest;
mod task_config;

use std::path::{Path, PathBuf};

pub(crate) use error::WorkspaceError;
pub(crate) use task_config::{GlobEntry, RemoteCacheFile, TaskConfigFile, TaskDefinition};

/// A loaded workspace: its root and every package in it (the root package is
/// always `packages[0]`).
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) packages: Vec<Package>,
}

/// One package of the workspace.
#[derive(Debug)]
pub(crate) struct Package {
    /// `name` from package.json; packages without one are named after their
    /// directory relative to the root (`.` for an unnamed root).
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    /// Directory relative to the workspace root, `""` for the root.
    pub(crate) rel_dir: String,
    /// Names of workspace packages this one depends on (any dependency kind).
    pub(crate) workspace_deps: Vec<String>,
    /// Whether it depends on `next` (any dependency kind): Next.js inlines
    /// `NEXT_PUBLIC_*` values into what it builds (`run::env`).
    pub(crate) uses_next: bool,
    pub(crate) scripts: Vec<(String, String)>,
    pub(crate) task_config: Option<TaskConfigFile>,
}

/// The root of the workspace containing `cwd`, found exactly as
/// [`Workspace::load`] finds it but without expanding the package globs: the
/// one place that decides which workspace a directory belongs to (`vp run`,
/// `vp build`, `vp cache`, `vp trace`).
pub(crate) fn find_root(cwd: &Path) -> Result<PathBuf, WorkspaceError> {
    discover::find_root(cwd).map(|root| root.dir)
}

impl Workspace {
    /// Finds the workspace containing `cwd` and loads all of it.
    pub(crate) fn load(cwd: &Path) -> Result<Workspace, WorkspaceError> {
        discover::load(cwd)
    }

    /// The package whose directory is the deepest ancestor of `path`.
    pub(crate) fn package_containing(&self, path: &Path) -> Option<usize> {
        self.packages
            .iter()
            .enumerate()
            .filter(|(_, p)| path.starts_with(&p.dir))
            .max_by_key(|(_, p)| p.dir.components().count())
            .map(|(i, _)| i)
    }

    pub(crate) fn package_by_name(&self, name: &str) -> Option<usize> {
        self.packages.iter().position(|p| p.name == name)
    }
}

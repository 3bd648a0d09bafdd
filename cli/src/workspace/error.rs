//! Why a workspace could not be loaded: one error type for discovery,
//! `package.json` and `vite-task.json`, each variant saying which file is
//! wrong, where, and what to do. Its own module so that the readers of those
//! files and the discovery that calls them do not import each other.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkspaceError {
    #[error("`{path}:{line}:{column}`: {message} (at key `{key}`)")]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error(
        "two packages are named `{name}`: `{first}` and `{second}`\n(hint: package names must be unique within a workspace)"
    )]
    DuplicatePackage {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{path}`: {message}")]
    InvalidManifest { path: PathBuf, message: String },
    #[error("`{path}`: invalid package glob `{glob}`: {message}")]
    InvalidPackageGlob {
        path: PathBuf,
        glob: String,
        message: String,
    },
    #[error(
        "no package.json found in `{cwd}` or any of its parents\n(hint: run vp inside a JavaScript project)"
    )]
    NoWorkspace { cwd: PathBuf },
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}:{line}:{column}`: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

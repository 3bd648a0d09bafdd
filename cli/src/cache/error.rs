//! Errors of the cache as a library. None of them should fail a task run:
//! the runner reports them and carries on without the cache.

use std::io;
use std::path::PathBuf;

use super::codec::DecodeError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    #[error("cannot open the cache at `{dir}`: {source}")]
    Open {
        dir: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("the cache at `{dir}` failed to {op}: {source}")]
    Db {
        dir: PathBuf,
        op: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("cannot {op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to use `{dir}` as the cache: it is not empty and has no `VP-CACHE` marker, so vp cannot prove it made it\n(hint: pass another `--cache-dir` or `VP_CACHE_DIR`; if it is a cache of a vp older than the marker, delete it yourself)"
    )]
    ForeignDir { dir: PathBuf },
    #[error(
        "refusing to use `{dir}` as the cache: its `VP-CACHE` file is not a marker vp writes, so vp cannot prove it made the directory\n(hint: pass another `--cache-dir` or `VP_CACHE_DIR`; if you know the directory is vp's cache, delete it yourself)"
    )]
    UnreadableMarker { dir: PathBuf },
    #[error(
        "the cache at `{dir}` was made by another version of vp (directory layout {layout}, this vp uses 1)\n(hint: clean it with the vp that made it, or pass another `--cache-dir`)"
    )]
    OtherLayout { dir: PathBuf, layout: u32 },
    #[error("the cache at `{dir}` has no column family `{name}`")]
    MissingColumnFamily { dir: PathBuf, name: &'static str },
    #[error("the cache at `{dir}` is missing blob {blob} (hint: `vp cache clean` starts over)")]
    MissingBlob { dir: PathBuf, blob: String },
    #[error("the cache at `{dir}` has a corrupt blob {blob} (hint: `vp cache clean` starts over)")]
    CorruptBlob { dir: PathBuf, blob: String },
    #[error(
        "the cache at `{dir}` cannot be used ({reason}); it was left as it is\n(hint: the next `vp run` moves it aside and starts a new one; `vp cache clean` removes it)"
    )]
    Unusable { dir: PathBuf, reason: String },
    #[error("the cache at `{dir}` is in use by another vp{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { dir: PathBuf, holder: Option<u32> },
    #[error(
        "the cache at `{dir}` could not be opened for writing (an earlier error in this run said why), so this result is not stored"
    )]
    ReadOnly { dir: PathBuf },
    #[error(
        "the cache at `{dir}` was removed while this vp was using it (by `vp cache clean`?), so this result is not stored; the next run starts a new cache"
    )]
    Removed { dir: PathBuf },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl CacheError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

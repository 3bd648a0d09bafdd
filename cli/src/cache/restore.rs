//! Putting a hit's outputs back and handing its log to the runner for
//! replay. Only files that differ are rewritten (written to a temp file in
//! the same directory, then renamed over), modes and symlinks are kept, and
//! every path is checked to stay inside the workspace: no absolute paths, no
//! `..`, and no writing through a symlink that leads out of it. In
//! directories the run owned, outputs of the task's previous run that this
//! run would not have left are removed, but only while they are exactly as
//! vp recorded them. A file that shares its inode with another name is
//! replaced, never chmod'ed in place.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::codec;
use super::digest::{self, Digest};
use super::entry::{LogChunk, OutputState};
use super::error::CacheError;
use super::paths::{RelPath, UnsafePath};
use super::store::Store;
use super::store::lookup::CacheHit;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreError {
    #[error("refusing to restore a cached output: {0}")]
    UnsafePath(#[from] UnsafePath),
    #[error(
        "refusing to restore '{path}': '{through}' is a symlink that leads outside the workspace"
    )]
    Escapes { path: RelPath, through: RelPath },
    #[error("cannot restore '{path}': '{blocker}' is in the way ({what})")]
    Conflict {
        path: RelPath,
        blocker: RelPath,
        what: &'static str,
    },
    #[error("cannot restore '{path}': {source}")]
    Io {
        path: RelPath,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

#[derive(Debug, Default)]
pub(crate) struct RestoreReport {
    /// Outputs written (created or replaced).
    pub(crate) written: usize,
    /// Outputs already identical on disk.
    pub(crate) unchanged: usize,
    /// Outputs of the task's previous run removed because this run would
    /// not have left them (see `CacheHit::superseded`).
    pub(crate) removed: usize,
    /// The run's stdout/stderr in original order, for replay.
    pub(crate) log: Vec<LogChunk>,
}

impl Store {
    /// The log of a hit, for replay.
    pub(crate) fn read_log(&self, hit: &CacheHit) -> Result<Vec<LogChunk>, CacheError> {
        match hit.entry.log {
            None => Ok(Vec::new()),
            Some(log) => Ok(codec::decode("task log", &self.blob(&log.blob)?)?),
        }
    }

    /// Restores every output of `hit` under `workspace_root` and reads its
    /// log. Blocking. Stops at the first error: the runner then executes the
    /// task instead (a partial restore is overwritten by that run).
    pub(crate) fn restore(
        &self,
        hit: &CacheHit,
        workspace_root: &Path,
    ) -> Result<RestoreReport, RestoreError> {
        let mut r = Restorer {
            store: self,
            root: workspace_root.to_path_buf(),
            canonical_root: None,
            tmp_seq: 0,
            tmp_tag: temp_tag(),
            in_place: &hit.in_place,
        };
        let mut report = RestoreReport::default();
        let mut dir_modes = Vec::new();
        for (stored_rel, state) in &hit.entry.outputs {
            // Re-validate: entries come from disk and may be corrupt.
            let rel = RelPath::from_stored(stored_rel.as_bytes())?;
            if rel.is_root() {
                continue;
            }
            let wrote = match state {
                OutputState::Dir { mode } => {
                    r.ensure_dir(&rel, &rel)?;
                    dir_modes.push((rel.clone(), *mode));
                    false
                }
                OutputState::File {
                    blob, mode, size, ..
                } => {
                    r.ensure_dir(&rel.parent(), &rel)?;
                    r.file(&rel, blob, *mode, *size)?
                }
                OutputState::Symlink { target } => {
                    r.ensure_dir(&rel.parent(), &rel)?;
                    r.symlink(&rel, target)?
                }
            };
            if wrote {
                report.written += 1
            } else {
                report.unchanged += 1
            }
        }
        // Modes of directories last: a read-only directory would refuse the
        // files that go into it. Deepest first for the same reason.
        for (rel, mode) in dir_modes.into_iter().rev() {
            let abs = rel.to_abs(workspace_root);
            let current = fs::symlink_metadata(&abs).map_err(|source| RestoreError::Io {
                path: rel.clone(),
                source,
            })?;
            // A symlink standing for the directory (allowed inside the
            // workspace) is not vp's to chmod: that would change its target.
            if current.is_dir() && current.permissions().mode() & 0o7777 != mode {
                fs::set_permissions(&abs, Permissions::from_mode(mode)).map_err(|source| {
                    RestoreError::Io {
                        path: rel.clone(),
                        source,
                    }
                })?;
            }
        }
        // What the previous run left in directories this run owns, files
        // first, then directories deepest first (they must be empty).
        let mut superseded: Vec<&(RelPath, OutputState)> = hit.superseded.iter().collect();
        superseded.sort_by(|(a, sa), (b, sb)| {
            let is_dir = |s: &OutputState| matches!(s, OutputState::Dir { .. });
            is_dir(sa).cmp(&is_dir(sb)).then_with(|| b.cmp(a))
        });
        for (rel, state) in superseded {
            if r.remove_superseded(rel, state)? {
                report.removed += 1;
            }
        }
        report.log = self.read_log(hit)?;
        Ok(report)
    }
}

struct Restorer<'a> {
    store: &'a Store,
    root: PathBuf,
    canonical_root: Option<PathBuf>,
    tmp_seq: u64,
    /// Random, per restore: two tasks of one run restoring the same output
    /// at once (both wrote it) must not share temp names, or one's
    /// `create_new` fails and the other renames a file away from under it.
    tmp_tag: u64,
    /// Outputs the lookup just found in place with the stored content.
    in_place: &'a BTreeSet<RelPath>,
}

/// A random tag for one restore's temp names (the time, should the system
/// have no randomness to give: still distinct per restore in practice).
fn temp_tag() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

impl Restorer<'_> {
    fn canonical_root(&mut self, path: &RelPath) -> Result<PathBuf, RestoreError> {
        if let Some(c) = &self.canonical_root {
            return Ok(c.clone());
        }
        let c = self
            .root
            .canonicalize()
            .map_err(|source| RestoreError::Io {
                path: path.clone(),
                source,
            })?;
        self.canonical_root = Some(c.clone());
        Ok(c)
    }

    /// Creates `dir` component by component, never following a symlink that
    /// leaves the workspace (`for_path` names the output in errors).
    fn ensure_dir(&mut self, dir: &RelPath, for_path: &RelPath) -> Result<(), RestoreError> {
        let io = |source| RestoreError::Io {
            path: for_path.clone(),
            source,
        };
        let mut cur = RelPath::root();
        for comp in dir.components() {
            cur = cur.join(comp);
            let abs = cur.to_abs(&self.root);
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    let root = self.canonical_root(for_path)?;
                    match abs.canonicalize() {
                        Ok(target) if target.starts_with(&root) && target.is_dir() => {}
                        Ok(target) if target.starts_with(&root) => {
                            return Err(RestoreError::Conflict {
                                path: for_path.clone(),
                                blocker: cur,
                                what: "a symlink to a file",
                            });
                        }
                        _ => {
                            return Err(RestoreError::Escapes {
                                path: for_path.clone(),
                                through: cur,
                            });
                        }
                    }
                }
                Ok(_) => {
                    return Err(RestoreError::Conflict {
                        path: for_path.clone(),
                        blocker: cur,
                        what: "a file",
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound => match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists && abs.is_dir() => {}
                    Err(e) => return Err(io(e)),
                },
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// Removes `rel` if it is exactly what the previous run left (see
    /// [`left_as_recorded`]); a directory only once it is empty. Anything
    /// else (a file the user changed or put there) stays. Returns whether
    /// something was removed.
    fn remove_superseded(
        &mut self,
        rel: &RelPath,
        state: &OutputState,
    ) -> Result<bool, RestoreError> {
        // Re-validate: entries come from disk and may be corrupt.
        let rel = RelPath::from_stored(rel.as_bytes())?;
        if !left_as_recorded(&self.root, &rel, state) {
            return Ok(false);
        }
        let abs = rel.to_abs(&self.root);
        if let OutputState::Dir { .. } = state {
            // Not empty: something vp does not know of is inside.
            return Ok(fs::remove_dir(&abs).is_ok());
        }
        match fs::remove_file(&abs) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RestoreError::Io { path: rel, source }),
        }
    }

    fn temp_path(&mut self, abs: &Path) -> PathBuf {
        self.tmp_seq += 1;
        let mut name = std::ffi::OsString::from(".");
        name.push(abs.file_name().unwrap_or_default());
        name.push(format!(
            ".vp-restore-{}-{:016x}-{}",
            std::process::id(),
            self.tmp_tag,
            self.tmp_seq
        ));
        abs.with_file_name(name)
    }

    /// Returns whether the file had to be written.
    fn file(
        &mut self,
        rel: &RelPath,
        blob: &Digest,
        mode: u32,
        size: u64,
    ) -> Result<bool, RestoreError> {
        let abs = rel.to_abs(&self.root);
        let io = |source| RestoreError::Io {
            path: rel.clone(),
            source,
        };
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => {
                return Err(RestoreError::Conflict {
                    path: rel.clone(),
                    blocker: rel.clone(),
                    what: "a directory",
                });
            }
            Ok(m)
                if m.is_file()
                    && m.len() == size
                    && (self.in_place.contains(rel)
                        || digest::hash_file(&abs).is_ok_and(|(h, _)| h == *blob)) =>
            {
                if m.permissions().mode() & 0o7777 == mode {
                    return Ok(false);
                }
                // Only the mode differs. A chmod changes the inode, which
                // other hard links (maybe outside the workspace) share:
                // then replace the name instead, below.
                if m.nlink() == 1 {
                    fs::set_permissions(&abs, Permissions::from_mode(mode)).map_err(io)?;
                    return Ok(false);
                }
            }
            _ => {}
        }
        let bytes = self.store.blob(blob)?;
        let tmp = self.temp_path(&abs);
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            // The umask must not change the recorded mode.
            f.set_permissions(Permissions::from_mode(mode))?;
            drop(f);
            fs::rename(&tmp, &abs)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(true)
    }

    fn symlink(&mut self, rel: &RelPath, target: &[u8]) -> Result<bool, RestoreError> {
        let abs = rel.to_abs(&self.root);
        let io = |source| RestoreError::Io {
            path: rel.clone(),
            source,
        };
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => {
                return Err(RestoreError::Conflict {
                    path: rel.clone(),
                    blocker: rel.clone(),
                    what: "a directory",
                });
            }
            Ok(m)
                if m.file_type().is_symlink()
                    && fs::read_link(&abs).is_ok_and(|t| t.as_os_str().as_bytes() == target) =>
            {
                return Ok(false);
            }
            _ => {}
        }
        let tmp = self.temp_path(&abs);
        let made = symlink(std::ffi::OsStr::from_bytes(target), &tmp)
            .and_then(|()| fs::rename(&tmp, &abs));
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(true)
    }
}

/// Whether `rel` (below `root`) is still exactly what a run left there, as
/// `state` records it: a file with the recorded content and no other hard
/// link, a symlink with the recorded target, a directory. Never through a
/// symlink: every directory above it must be a real one. What a hit removes
/// as superseded, and what a lookup may therefore ignore in a listing.
pub(crate) fn left_as_recorded(root: &Path, rel: &RelPath, state: &OutputState) -> bool {
    let mut dir = RelPath::root();
    for comp in rel.parent().components() {
        dir = dir.join(comp);
        match fs::symlink_metadata(dir.to_abs(root)) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    let abs = rel.to_abs(root);
    let Ok(meta) = fs::symlink_metadata(&abs) else {
        return false;
    };
    match state {
        OutputState::File { blob, size, .. } => {
            meta.is_file()
                && meta.nlink() == 1
                && meta.len() == *size
                && digest::hash_file(&abs).is_ok_and(|(h, _)| h == *blob)
        }
        OutputState::Symlink { target } => {
            meta.file_type().is_symlink()
                && fs::read_link(&abs).is_ok_and(|t| t.as_os_str().as_bytes() == target.as_slice())
        }
        OutputState::Dir { .. } => meta.is_dir(),
    }
}

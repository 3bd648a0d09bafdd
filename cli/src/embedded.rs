//! Shared objects embedded in the `vp` binary (built by `cli/build.rs`) and
//! their materialization as files children can load: the Node addon
//! (`bridge/addon.rs`) and the in-process tracer library
//! (`trace/in_process.rs`). Each is written once per content hash (temp
//! file + rename, so concurrent `vp` processes never see a partial file).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One embedded shared object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded {
    /// What it is, for messages ("Node addon").
    pub(crate) what: &'static str,
    /// Its file name, which carries vp's version and the content hash.
    pub(crate) file_name: &'static str,
    pub(crate) bytes: &'static [u8],
}

/// Why an embedded file could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmbeddedError {
    #[error("cannot create the directory `{dir}` for vp's {what}")]
    CreateDir {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write vp's {what} to `{path}`")]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `$XDG_CACHE_HOME/vp/addon`, else `~/.cache/vp/addon`, else the system
/// temp dir. (Not /tmp first: it is often mounted noexec, and dlopen needs
/// an executable mapping.)
pub(crate) fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("vp").join("addon")
}

/// Writes `object` into `dir` unless an identical one is already there;
/// returns its path. Blocking: call it once per `vp` invocation.
pub(crate) fn materialize(dir: &Path, object: &Embedded) -> Result<PathBuf, EmbeddedError> {
    let path = dir.join(object.file_name);
    // The name carries the content hash and files only appear by rename,
    // so a file of the right size is the right file.
    if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == object.bytes.len() as u64) {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|source| EmbeddedError::CreateDir {
        what: object.what,
        dir: dir.to_path_buf(),
        source,
    })?;
    let write_error = |path: PathBuf, source: io::Error| EmbeddedError::Write {
        what: object.what,
        path,
        source,
    };
    // Unique per writer (process and thread): concurrent writers never
    // share a temp file, and the last rename wins with identical content.
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|e| write_error(path.clone(), io::Error::other(e.to_string())))?;
    let temp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        object.file_name,
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    let written = write_file(&temp, object.bytes).and_then(|()| fs::rename(&temp, &path));
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(write_error(path, source));
    }
    Ok(path)
}

fn write_file(temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(temp)?;
    file.write_all(bytes)?;
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT: Embedded = Embedded {
        what: "test object",
        file_name: "vp-test-object.so",
        bytes: b"\x7fELF not really, but bytes to write",
    };

    #[test]
    fn materialize_writes_once_and_reuses_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = materialize(dir.path(), &OBJECT).expect("written");
        assert_eq!(fs::read(&first).expect("readable"), OBJECT.bytes);
        let mtime = fs::metadata(&first)
            .and_then(|m| m.modified())
            .expect("mtime");
        let second = materialize(dir.path(), &OBJECT).expect("reused");
        assert_eq!(first, second);
        assert_eq!(
            fs::metadata(&second)
                .and_then(|m| m.modified())
                .expect("mtime"),
            mtime
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn a_truncated_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(OBJECT.file_name), b"partial").expect("seed");
        let path = materialize(dir.path(), &OBJECT).expect("rewritten");
        assert_eq!(
            fs::metadata(path).expect("meta").len(),
            OBJECT.bytes.len() as u64
        );
    }

    #[test]
    fn concurrent_materializations_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| materialize(dir.path(), &OBJECT)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for path in paths {
            assert_eq!(
                fs::read(path.expect("written")).expect("read"),
                OBJECT.bytes
            );
        }
    }

    #[test]
    fn an_unwritable_dir_is_a_clear_error() {
        let err = materialize(Path::new("/proc/vp-cannot-write-here"), &OBJECT).expect_err("fails");
        assert!(
            err.to_string().contains("/proc/vp-cannot-write-here"),
            "{err}"
        );
    }
}

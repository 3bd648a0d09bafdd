//! The Node addon embedded in the `vp` binary (built by `cli/build.rs`) and
//! its materialization as a file children can `require()`: written once per
//! content hash (temp file + rename, so concurrent `vp` processes never see
//! a partial file). The runner passes the path to every `BridgeSession`,
//! which exports it as `VP_RUN_NODE_CLIENT_PATH`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const ADDON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vp-bridge.node"));
const ADDON_HASH: &str = env!("VP_BRIDGE_ADDON_HASH");

/// Why the addon could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AddonError {
    #[error("cannot create the addon directory `{dir}`")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the node addon to `{path}`")]
    Write {
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

/// The file name for this build of the addon.
pub(crate) fn file_name() -> String {
    format!("vp-bridge-{}-{ADDON_HASH}.node", env!("CARGO_PKG_VERSION"))
}

/// Writes the embedded addon into `dir` unless an identical one is already
/// there; returns its path. Blocking: call it once per `vp` invocation
/// (e.g. through `blocking::unblock`).
pub(crate) fn materialize(dir: &Path) -> Result<PathBuf, AddonError> {
    let path = dir.join(file_name());
    // The name carries the content hash and files only appear by rename,
    // so a file of the right size is the right file.
    if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == ADDON.len() as u64) {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|source| AddonError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    // Unique per writer (process and thread): concurrent writers never
    // share a temp file, and the last rename wins with identical content.
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| AddonError::Write {
        path: path.clone(),
        source: io::Error::other(e.to_string()),
    })?;
    let temp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        file_name(),
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    let written = write_file(&temp).and_then(|()| fs::rename(&temp, &path));
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(AddonError::Write { path, source });
    }
    Ok(path)
}

fn write_file(temp: &Path) -> io::Result<()> {
    let mut file = fs::File::create(temp)?;
    file.write_all(ADDON)?;
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materialize_writes_once_and_reuses_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = materialize(dir.path()).expect("written");
        assert_eq!(fs::read(&first).expect("readable"), ADDON);
        let mtime = fs::metadata(&first)
            .and_then(|m| m.modified())
            .expect("mtime");
        let second = materialize(dir.path()).expect("reused");
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
        fs::write(dir.path().join(file_name()), b"partial").expect("seed");
        let path = materialize(dir.path()).expect("rewritten");
        assert_eq!(fs::metadata(path).expect("meta").len(), ADDON.len() as u64);
    }

    #[test]
    fn concurrent_materializations_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| materialize(dir.path())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        for path in paths {
            assert_eq!(fs::read(path.expect("written")).expect("read"), ADDON);
        }
    }

    #[test]
    fn an_unwritable_dir_is_a_clear_error() {
        let err = materialize(Path::new("/proc/vp-cannot-write-here")).expect_err("fails");
        assert!(
            err.to_string().contains("/proc/vp-cannot-write-here"),
            "{err}"
        );
    }

    #[test]
    fn the_embedded_addon_is_a_shared_object() {
        assert!(
            ADDON.starts_with(b"\x7fELF"),
            "embedded addon is not an ELF file"
        );
    }
}

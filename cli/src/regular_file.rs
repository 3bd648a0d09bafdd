//! Reading a path only when it holds a regular file. vp reads files that
//! others own: a workspace's configuration, the inputs and outputs of its
//! tasks. A path that holds a file when vp looks at it may hold something
//! else when vp opens it, or may never have held a file: a FIFO, whose
//! plain open waits for a writer forever, or a link to a device such as
//! `/dev/zero`, whose reads never end. Every read of such a path goes
//! through here, so that vp neither hangs nor reads forever: anything but a
//! regular file is an error, [`NotRegular`] once opened (told apart by
//! [`is_not_regular`]), or the open's own (a socket cannot be opened:
//! `ENXIO`), which each caller reports in its own terms. Opening is not free of effects:
//! a FIFO's read end, even opened without blocking, releases a writer
//! waiting for a reader. So callers that can `lstat` first and skip what
//! is no file do so; this is the guard for a path swapped after that look.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The path was opened and holds something other than a regular file.
#[derive(Debug, thiserror::Error)]
#[error("not a regular file")]
pub(crate) struct NotRegular;

/// Whether `e` is [`open`]'s refusal of something other than a regular
/// file (as opposed to a failure of the open or the read).
pub(crate) fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotRegular>())
}

/// Opens `path` (symlinks followed) for reading if it is a regular file.
/// The open does not block (`O_NONBLOCK`, which changes nothing for a
/// regular file's reads) and never makes a terminal vp's own (`O_NOCTTY`),
/// and the handle's own type is checked before anything reads it.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    open_sized(path).map(|(file, _)| file)
}

/// [`open`], and the file's length when the handle's type was checked:
/// what a reader that wants to know where the end is expected needs.
pub(crate) fn open_sized(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegular));
    }
    Ok((file, meta.len()))
}

/// Whether `path` (symlinks followed) is a regular file with an execute
/// bit: what `exec` and a `PATH` search take for a program.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `fs::read_to_string` for a path that must hold a regular file of text
/// (`package.json`, `vite-task.json`, `pnpm-workspace.yaml`), without the
/// UTF-8 byte-order mark some editors start it with: Node and npm skip one.
pub(crate) fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text)?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Test helpers: paths that are no regular files.
#[cfg(test)]
pub(crate) mod special {
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    /// Makes a FIFO at `path`.
    pub(crate) fn fifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    /// A FIFO and a link to `/dev/zero` in `dir`.
    pub(crate) fn fifo_and_endless_device(dir: &Path) -> [PathBuf; 2] {
        let (f, zero) = (dir.join("fifo"), dir.join("zero"));
        fifo(&f);
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        [f, zero]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a link to `/dev/zero` and a directory are refused at once,
    /// not waited on or read; a file, through a link too, reads as itself.
    #[test]
    fn only_regular_files_are_read() {
        use std::sync::mpsc;
        use std::time::Duration;

        let dir = tempfile::tempdir().expect("tempdir");
        let [fifo, zero] = special::fifo_and_endless_device(dir.path());
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for p in [fifo, zero, sub] {
                let got = read_to_string(&p).map_err(|e| (e.kind(), is_not_regular(&e)));
                tx.send((p, got)).expect("send");
            }
        });
        for _ in 0..3 {
            let (p, got) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("refused at once, not waited on or read");
            assert_eq!(
                got,
                Err((io::ErrorKind::InvalidInput, true)),
                "{}",
                p.display()
            );
        }

        let file = dir.path().join("file");
        std::fs::write(&file, "text").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert_eq!(read_to_string(&link).expect("read"), "text");
        // A failure of the open itself is not a refusal.
        let missing = read_to_string(&dir.path().join("missing")).expect_err("missing");
        assert!(!is_not_regular(&missing));
    }
}

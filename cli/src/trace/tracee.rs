//! Reading from a thread stopped in a notified system call: path strings and
//! words from its memory (`process_vm_readv`, page-bounded so a string ending
//! just before an unmapped page still reads), its cwd and open fds (through
//! `/proc/<tid>`), and turning what it named into an absolute path.
//! Used by the supervisor only; every function here is fast and non-blocking.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, PathBuf};

const PAGE: usize = 4096;
/// Longest path the kernel accepts, NUL included.
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// Reads `len` bytes at `addr` in thread `tid` into `out`.
fn read_exact(tid: u32, addr: u64, out: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: `local` points at `out`, valid for `out.len()` writes; the
    // remote side is another process and the kernel checks it.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != out.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Reads one little-endian `u64` from the tracee.
pub(crate) fn read_u64(tid: u32, addr: u64) -> io::Result<u64> {
    let mut word = [0u8; 8];
    read_exact(tid, addr, &mut word)?;
    Ok(u64::from_le_bytes(word))
}

/// Reads a NUL-terminated string at `addr` into `buf` (cleared first). Reads
/// never cross a page boundary (a single large read would fail if the string
/// ends just before an unmapped page), and the first read is short because
/// almost every path is: the kernel copies whatever length is asked for.
pub(crate) fn read_cstr(tid: u32, addr: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    const FIRST: usize = 256;
    buf.clear();
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    let mut chunk = [0u8; PAGE];
    let mut at = addr;
    let mut want = FIRST;
    loop {
        let len = want.min(PAGE - (at as usize % PAGE));
        let piece = &mut chunk[..len];
        read_exact(tid, at, piece)?;
        // std's NUL search is optimised even in a debug build of vp.
        if let Ok(cstr) = std::ffi::CStr::from_bytes_until_nul(piece) {
            buf.extend_from_slice(cstr.to_bytes());
            return Ok(());
        }
        buf.extend_from_slice(piece);
        if buf.len() >= PATH_MAX {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        at += len as u64;
        want = PAGE;
    }
}

/// The current directory of thread `tid`.
pub(crate) fn cwd(tid: u32) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{tid}/cwd"))
}

/// The path an fd of thread `tid` refers to; `None` for pipes, sockets and
/// other objects without a path.
pub(crate) fn fd_path(tid: u32, fd: i32) -> io::Result<Option<PathBuf>> {
    let link = std::fs::read_link(format!("/proc/{tid}/fd/{fd}"))?;
    let bytes = link.as_os_str().as_bytes();
    if !bytes.starts_with(b"/") {
        return Ok(None);
    }
    // An unlinked file shows as "/path (deleted)": the name it had is what
    // the tool touched.
    let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    Ok(Some(PathBuf::from(OsStr::from_bytes(bytes))))
}

/// Makes `raw` (what the tool passed) absolute against `base` (its cwd or
/// dirfd, fetched only when needed) and rewrites `/proc/self` and
/// `/proc/thread-self` to the thread's own `/proc/<tid>` entries.
pub(crate) fn absolute(
    tid: u32,
    raw: &[u8],
    base: impl FnOnce() -> io::Result<Option<PathBuf>>,
) -> io::Result<Option<PathBuf>> {
    let joined = if raw.starts_with(b"/") {
        PathBuf::from(OsStr::from_bytes(raw))
    } else {
        match base()? {
            Some(base) => base.join(OsStr::from_bytes(raw)),
            None => return Ok(None),
        }
    };
    Ok(Some(normalize(rewrite_proc_self(tid, joined))))
}

fn rewrite_proc_self(tid: u32, path: PathBuf) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    // Hot path: almost no path is under /proc; don't format anything for them.
    if !bytes.starts_with(b"/proc/") {
        return path;
    }
    let replace = |prefix: &[u8], with: String| -> Option<PathBuf> {
        let rest = bytes.strip_prefix(prefix)?;
        if !rest.is_empty() && !rest.starts_with(b"/") {
            return None;
        }
        let mut out = with.into_bytes();
        out.extend_from_slice(rest);
        Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
    };
    replace(b"/proc/self", format!("/proc/{tid}"))
        .or_else(|| replace(b"/proc/thread-self", format!("/proc/{tid}/task/{tid}")))
        .unwrap_or(path)
}

/// Drops `.` components and repeated or trailing slashes; keeps `..`, whose
/// meaning depends on symlinks and is settled by `resolve.rs`.
pub(crate) fn normalize(path: PathBuf) -> PathBuf {
    // Hot path: most paths tools pass are already clean.
    let bytes = path.as_os_str().as_bytes();
    let clean = !bytes.windows(2).any(|w| w == b"//" || w == b"/.")
        && !bytes.ends_with(b"/")
        && !bytes.starts_with(b".");
    if clean {
        return path;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_base() -> io::Result<Option<PathBuf>> {
        panic!("absolute paths need no base")
    }

    #[test]
    fn reads_own_strings_across_pages() {
        // Put a string so it straddles a page boundary of this very process.
        let mut block = vec![b'x'; PAGE * 3];
        let start = block.as_ptr() as usize;
        let boundary = (start / PAGE + 1) * PAGE;
        let begin = boundary - start - 10;
        block[begin + 20] = 0;
        let mut buf = Vec::new();
        read_cstr(std::process::id(), (start + begin) as u64, &mut buf).expect("read own memory");
        assert_eq!(buf, vec![b'x'; 20]);
    }

    #[test]
    fn null_and_unterminated_strings_fail() {
        let mut buf = Vec::new();
        assert!(read_cstr(std::process::id(), 0, &mut buf).is_err());
        let block = vec![b'y'; PATH_MAX * 2];
        let err =
            read_cstr(std::process::id(), block.as_ptr() as u64, &mut buf).expect_err("too long");
        assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn reads_words() {
        let word: u64 = 0x0123_4567_89ab_cdef;
        assert_eq!(
            read_u64(std::process::id(), &word as *const u64 as u64).expect("read"),
            word
        );
    }

    #[test]
    fn relative_paths_join_the_base() {
        let p = absolute(7, b"./a//b/", || Ok(Some(PathBuf::from("/w/pkg")))).expect("ok");
        assert_eq!(p, Some(PathBuf::from("/w/pkg/a/b")));
        let p = absolute(7, b"../x", || Ok(Some(PathBuf::from("/w/pkg")))).expect("ok");
        assert_eq!(p, Some(PathBuf::from("/w/pkg/../x")));
        assert_eq!(absolute(7, b"x", || Ok(None)).expect("ok"), None);
        assert_eq!(
            absolute(7, b"/w/.git/./HEAD", no_base).expect("ok"),
            Some(PathBuf::from("/w/.git/HEAD"))
        );
        assert_eq!(
            absolute(7, b"/w/.hidden", no_base).expect("ok"),
            Some(PathBuf::from("/w/.hidden"))
        );
        assert_eq!(
            absolute(7, b"/", no_base).expect("ok"),
            Some(PathBuf::from("/"))
        );
    }

    #[test]
    fn proc_self_is_rewritten() {
        assert_eq!(
            absolute(42, b"/proc/self/maps", no_base).expect("ok"),
            Some(PathBuf::from("/proc/42/maps"))
        );
        assert_eq!(
            absolute(42, b"/proc/self", no_base).expect("ok"),
            Some(PathBuf::from("/proc/42"))
        );
        assert_eq!(
            absolute(42, b"/proc/thread-self/fd", no_base).expect("ok"),
            Some(PathBuf::from("/proc/42/task/42/fd"))
        );
        assert_eq!(
            absolute(42, b"/proc/selfish", no_base).expect("ok"),
            Some(PathBuf::from("/proc/selfish"))
        );
    }

    #[test]
    fn fd_paths_of_own_process() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        use std::os::fd::AsRawFd;
        let fd = file.as_file().as_raw_fd();
        let path = fd_path(std::process::id(), fd)
            .expect("readlink")
            .expect("has a path");
        assert_eq!(path, file.path().canonicalize().expect("canonical"));
        let (r, _w) = std::io::pipe().expect("pipe");
        assert_eq!(
            fd_path(std::process::id(), r.as_raw_fd()).expect("readlink"),
            None
        );
    }
}

//! Handing a child process an fd at a number it is told of: the bridge's
//! broker socket (at a fixed high number), the in-process tracer's log (at
//! its own number) and the guard's socket (fd 3 of the guard). One
//! implementation, because all run between `fork` and `exec`, where only
//! async-signal-safe calls are allowed.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// A `SOCK_SEQPACKET` pair, both ends close-on-exec: the socket vp shares
/// with a child (the bridge's broker, the tracer's handshake, the guard).
/// The child's copy is installed without the flag by [`place`].
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// Runs in the forked child before `exec`: installs `raw` as `target`
/// without `FD_CLOEXEC` (`raw == target` only clears the flag). Only
/// async-signal-safe calls (dup2, fcntl).
pub(crate) fn place(raw: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: plain fd syscalls on descriptors valid in this process.
    let rc = unsafe {
        if raw == target {
            libc::fcntl(raw, libc::F_SETFD, 0)
        } else {
            libc::dup2(raw, target)
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, OwnedFd};

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD on an fd this test owns.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    fn open_cloexec() -> OwnedFd {
        std::fs::File::open("/dev/null").expect("open").into()
    }

    #[test]
    fn in_place_clears_close_on_exec_and_elsewhere_duplicates_without_it() {
        let fd = open_cloexec();
        assert!(cloexec(fd.as_raw_fd()));
        place(fd.as_raw_fd(), fd.as_raw_fd()).expect("in place");
        assert!(!cloexec(fd.as_raw_fd()));

        let source = open_cloexec();
        let target = open_cloexec();
        place(source.as_raw_fd(), target.as_raw_fd()).expect("dup2");
        assert!(!cloexec(target.as_raw_fd()));
        assert!(cloexec(source.as_raw_fd()), "the source keeps its flag");
    }

    #[test]
    fn a_bad_fd_is_an_error() {
        assert!(place(-1, -1).is_err());
    }
}

//! Thin wrappers over the seccomp listener ioctls (receive a notification,
//! check it is still valid, let the call continue, ask for synchronous
//! wake-ups) and a blocking poll of the listener. The supervisor is the
//! only caller; `recv` does not block once `wait` reported POLLIN.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6+, not in the libc crate):
/// the kernel wakes the supervisor on the CPU of the notifying thread, which
/// hides most of the wake-up latency (measured: wall overhead within noise).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// What a poll of the listener says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// A notification is waiting: `recv` will not block.
    Pending,
    /// No thread uses the filter any more: the traced tree is gone.
    HungUp,
    /// Nothing to act on (the poll woke without news).
    Idle,
}

/// Waits until a notification is pending or the traced tree is gone.
/// Blocking; a thread sleeping here is woken on the notifying thread's CPU.
pub(crate) fn wait(listener: BorrowedFd<'_>) -> io::Result<Readiness> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(if pfd.revents & libc::POLLIN != 0 {
        Readiness::Pending
    } else if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Readiness::HungUp
    } else {
        Readiness::Idle
    })
}

/// Receives one notification. Call only after `wait` said `Pending`
/// (the ioctl blocks otherwise). ENOENT means the caller died meanwhile.
pub(crate) fn recv(listener: BorrowedFd<'_>) -> io::Result<libc::seccomp_notif> {
    // SAFETY: all-zero is a valid seccomp_notif, and the kernel requires it zeroed.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a properly sized, writable seccomp_notif.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(req)
    }
}

/// Whether the notification is still pending (its thread alive and waiting).
/// Checked after reading the thread's memory, so a recycled pid cannot slip
/// a stranger's path into the log.
pub(crate) fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 through the pointer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// Lets the notified system call run as if the filter had allowed it.
/// Failure (ENOENT: the thread was killed meanwhile) needs no handling.
pub(crate) fn send_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: `resp` is a valid seccomp_notif_resp the kernel only reads.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Asks for synchronous wake-ups; an older kernel says EINVAL/ENOTTY and the
/// tracer simply runs a little slower.
pub(crate) fn set_sync_wake_up(listener: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: this ioctl takes its flags by value.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

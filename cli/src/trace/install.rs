//! The child side: a `pre_exec` hook that sets no_new_privs, installs the
//! filter with a new listener and hands the listener to the runner over the
//! handshake socket. It runs between `fork` and `exec`, so it only makes raw
//! system calls on memory prepared by the parent: no allocation, no locks.
//! When the filter cannot be installed the hook reports why and lets the
//! command run untraced; it fails the spawn only if the report itself
//! cannot be sent (the runner is then gone anyway).

use std::io;
use std::os::fd::RawFd;

use super::handshake::{self, Status};

/// Builds the hook. `program` is the filter from `filter::program()`,
/// `socket` the child's end of the handshake socketpair (kept open by the
/// parent until the spawn returns; CLOEXEC, so the program never sees it).
pub(crate) fn hook(
    program: Vec<libc::sock_filter>,
    socket: RawFd,
) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
    move || {
        // SAFETY: called in the forked child before exec; touches only
        // `program` (owned by the closure) and raw fds.
        unsafe { install(&program, socket) }
    }
}

fn errno() -> i32 {
    // `last_os_error` reads errno without allocating.
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// # Safety
/// Must run in a single-threaded child after `fork`.
unsafe fn install(program: &[libc::sock_filter], socket: RawFd) -> io::Result<()> {
    // Unprivileged processes may only install a filter under no_new_privs
    // (it also stops setuid programs from gaining privileges under the filter).
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return handshake::send_from_child(socket, Status::NoNewPrivsFailed, errno(), None);
    }
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, alive for the whole call.
    let listener = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if listener < 0 {
        // EBUSY: an ancestor already has a listener (vp inside vp, some
        // sandboxes). The command still runs, untraced.
        return handshake::send_from_child(socket, Status::SeccompFailed, errno(), None);
    }
    let listener = listener as RawFd;
    let sent = handshake::send_from_child(socket, Status::Installed, 0, Some(listener));
    // The runner holds its own copy now; ours must not leak into the program.
    // SAFETY: `listener` is our fd.
    unsafe { libc::close(listener) };
    sent
}

//! The few raw socket calls the client needs, over `libc` only: checking the
//! inherited broker fd, creating the private stream and passing it with
//! `SCM_RIGHTS`, and sending without `SIGPIPE`. Used by `client.rs`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What is wrong with an inherited fd, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdCheck {
    Ok,
    Closed,
    NotASocket,
    WrongType(i32),
}

/// Checks that `fd` is an open `AF_UNIX` `SOCK_SEQPACKET` socket, without
/// touching its state (no reads, no flag changes).
pub(crate) fn check_broker(fd: RawFd) -> FdCheck {
    // SAFETY: fstat writes into a zeroed stat buffer we own; any fd number is
    // acceptable (an invalid one yields EBADF).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return FdCheck::Closed;
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return FdCheck::NotASocket;
    }
    match sockopt_int(fd, libc::SO_TYPE) {
        Some(libc::SOCK_SEQPACKET) => {}
        Some(other) => return FdCheck::WrongType(other),
        None => return FdCheck::NotASocket,
    }
    match sockopt_int(fd, libc::SO_DOMAIN) {
        Some(libc::AF_UNIX) => FdCheck::Ok,
        _ => FdCheck::NotASocket,
    }
}

/// An integer `SOL_SOCKET` option of `fd` (`SO_TYPE`, `SO_DOMAIN`), `None`
/// when `fd` is not a socket. The runner's broker checks the streams
/// clients send with it, the client checks the broker fd with it.
pub fn sockopt_int(fd: RawFd, opt: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value/len point at a c_int-sized buffer we own.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// A connected `SOCK_STREAM` pair, both ends close-on-exec (a client's
/// private stream must not leak into programs it runs).
pub(crate) fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both fds are fresh and owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `data` as one message on `sock` with `fd` attached (`SCM_RIGHTS`).
pub(crate) fn send_with_fd(sock: RawFd, data: &[u8], fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call, and CMSG_* are used on the buffer sized by CMSG_SPACE.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), raw);
    }
    loop {
        // SAFETY: msg is fully initialised above.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            // The broker fd is shared with other processes; if one of them
            // made it non-blocking, wait for room instead of failing.
            io::ErrorKind::WouldBlock => wait_writable(sock)?,
            _ => return Err(err),
        }
    }
}

/// Writes all of `data` to a stream socket without raising `SIGPIPE` when
/// the runner has gone away (an error is returned instead).
pub(crate) fn send_all(sock: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: data is a valid readable slice for its length.
        let n = unsafe { libc::send(sock, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    wait_writable(sock)?;
                    continue;
                }
                _ => return Err(err),
            }
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn wait_writable(sock: RawFd) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: sock,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd we own.
    let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// The calling process's id (not cached: correct right after `fork`).
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_check_tells_the_fd_kinds_apart() {
        let (a, _b) = stream_pair().expect("socketpair");
        assert_eq!(
            check_broker(a.as_raw_fd()),
            FdCheck::WrongType(libc::SOCK_STREAM)
        );
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        assert_eq!(check_broker(file.as_raw_fd()), FdCheck::NotASocket);
        assert_eq!(check_broker(-1), FdCheck::Closed);
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: fresh fds from socketpair.
        let (s, _t) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        assert_eq!(check_broker(s.as_raw_fd()), FdCheck::Ok);
    }
}

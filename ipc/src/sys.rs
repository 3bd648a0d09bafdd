//! The few raw socket calls of the IPC channel, over `libc` only: checking
//! the inherited broker fd, creating the private stream, passing fds with
//! `SCM_RIGHTS` (both directions: the runner receives with the same code the
//! client sends with), and sending without `SIGPIPE`. Used by `client.rs`
//! and, through the crate's exports, by the runner's broker and tracer.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

/// The most fds one message carries with [`send_with_fds`].
pub const MAX_SENT_FDS: usize = 4;

/// A control buffer with room for [`MAX_SENT_FDS`] fds, aligned for
/// `cmsghdr` (`CMSG_SPACE(16)` is 32 bytes on 64-bit Linux).
#[repr(C, align(8))]
struct SendControl([u8; 64]);

/// Sends `data` as one message on `sock` with `fds` attached (`SCM_RIGHTS`),
/// without raising `SIGPIPE`; returns the bytes sent.
///
/// The one fd-passing sender of vp: the client hands the runner its private
/// stream with it, and a traced child sends the seccomp listener from its
/// `pre_exec` hook. Hence no allocation and only async-signal-safe calls
/// (`sendmsg`, `poll`): it must work between `fork` and `exec`.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    if fds.len() > MAX_SENT_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut control = SendControl([0; 64]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = std::mem::size_of_val(fds) as u32;
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_* are arithmetic on the buffer set just above, which
        // holds CMSG_SPACE of at most MAX_SENT_FDS fds.
        unsafe {
            msg.msg_controllen = libc::CMSG_SPACE(payload) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: msg is fully initialised above.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
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

/// One message received with [`recv_with_fds`].
#[derive(Debug)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Every fd that arrived, owned (closed on drop), close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The data or the fds did not fit (`MSG_TRUNC` / `MSG_CTRUNC`).
    pub truncated: bool,
}

/// Receives one message into `buf` with up to `max_fds` attached fds; the
/// receiving side of [`send_with_fds`] (the runner's broker and tracer
/// handshake). Retries on `EINTR`; a non-blocking socket gives
/// `WouldBlock`. Every fd that arrived is owned by the result, even when
/// the message was truncated, so none leaks.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8], max_fds: usize) -> io::Result<Received> {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((max_fds * std::mem::size_of::<RawFd>()) as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the buffers it points at outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let len = loop {
        // SAFETY: msg is initialised; MSG_CMSG_CLOEXEC keeps received fds
        // out of the programs the receiver starts.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    Ok(Received {
        len,
        fds: take_fds(&msg),
        truncated: msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
    })
}

/// Takes ownership of every fd in the control messages. Walked by hand (not
/// via a helper that refuses truncated buffers) so fds that did arrive are
/// always closed.
fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: msg was filled by recvmsg; CMSG_* walk within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = data.offset_from(cmsg.cast::<u8>()) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    fds
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
    use std::os::fd::AsRawFd;

    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
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
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn fds_pass_with_their_message() {
        let (a, b) = seqpacket_pair();
        let (x, _y) = stream_pair().expect("socketpair");
        let sent =
            send_with_fds(a.as_raw_fd(), b"hello", &[x.as_raw_fd(), x.as_raw_fd()]).expect("send");
        assert_eq!(sent, 5);
        let mut buf = [0u8; 16];
        let got = recv_with_fds(b.as_raw_fd(), &mut buf, 4).expect("recv");
        assert_eq!(&buf[..got.len], b"hello");
        assert_eq!(got.fds.len(), 2);
        assert!(!got.truncated);
        assert_eq!(
            sockopt_int(got.fds[0].as_raw_fd(), libc::SO_TYPE),
            Some(libc::SOCK_STREAM)
        );
    }

    #[test]
    fn too_many_fds_are_closed_not_leaked_and_flagged() {
        let (a, b) = seqpacket_pair();
        let (x, _y) = stream_pair().expect("socketpair");
        send_with_fds(a.as_raw_fd(), b"hi", &[x.as_raw_fd(); 3]).expect("send");
        let mut buf = [0u8; 1];
        let got = recv_with_fds(b.as_raw_fd(), &mut buf, 1).expect("recv");
        assert!(got.truncated, "data and fds were cut");
        // The control buffer is rounded up to 8 bytes: room for 2 fds.
        assert!(got.fds.len() < 3, "{got:?}");
        assert!(send_with_fds(a.as_raw_fd(), b"", &[0; MAX_SENT_FDS + 1]).is_err());
    }

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
        let (s, _t) = seqpacket_pair();
        assert_eq!(check_broker(s.as_raw_fd()), FdCheck::Ok);
    }
}

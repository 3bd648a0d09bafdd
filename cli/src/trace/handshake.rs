//! The one message a traced child sends the runner before `exec`: whether
//! the filter is installed and, if so, the listener fd (SCM_RIGHTS) or, if
//! not, the errno of the failed step. Eight bytes: status `u32` LE, errno
//! `i32` LE. `install.rs` sends it (async-signal-safe), `spawn.rs` receives it,
//! both through `vp_ipc`'s one fd-passing pair.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use async_io::Async;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Status {
    Installed = 0,
    NoNewPrivsFailed = 1,
    SeccompFailed = 2,
}

const LEN: usize = 8;

/// Sends the status from the forked child. Allocation-free.
pub(crate) fn send_from_child(
    socket: RawFd,
    status: Status,
    errno: i32,
    fd: Option<RawFd>,
) -> io::Result<()> {
    let mut payload = [0u8; LEN];
    payload[..4].copy_from_slice(&(status as u32).to_le_bytes());
    payload[4..].copy_from_slice(&errno.to_le_bytes());
    let fds = match &fd {
        Some(fd) => std::slice::from_ref(fd),
        None => &[],
    };
    match vp_ipc::send_with_fds(socket, &payload, fds)? {
        LEN => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::EMSGSIZE)),
    }
}

/// What the runner learnt from the child.
#[derive(Debug)]
pub(crate) enum Handshake {
    /// The filter is in place; serve this listener.
    Installed(OwnedFd),
    /// The filter could not be installed; the command runs untraced.
    Refused { status: Status, errno: i32 },
    /// The child end closed without a message: the child died (or failed an
    /// earlier pre_exec hook) before reaching ours.
    Closed,
}

/// Waits for the child's message on the loop.
pub(crate) async fn receive(socket: &Async<OwnedFd>) -> io::Result<Handshake> {
    socket
        .read_with(|fd| receive_now(fd.as_fd().as_raw_fd()))
        .await
}

fn receive_now(fd: RawFd) -> io::Result<Handshake> {
    let mut payload = [0u8; LEN];
    let got = vp_ipc::recv_with_fds(fd, &mut payload, 1)?;
    let len = got.len;
    let received = got.fds.into_iter().next();
    if len == 0 {
        return Ok(Handshake::Closed);
    }
    if len != LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tracer handshake of {len} bytes, expected {LEN}"),
        ));
    }
    let status = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let errno = i32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
    match (status, received) {
        (0, Some(listener)) => Ok(Handshake::Installed(listener)),
        (1, _) => Ok(Handshake::Refused {
            status: Status::NoNewPrivsFailed,
            errno,
        }),
        (2, _) => Ok(Handshake::Refused {
            status: Status::SeccompFailed,
            errno,
        }),
        (0, None) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "tracer handshake without the listener fd",
        )),
        (status, _) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tracer handshake with unknown status {status}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        crate::child_fd::seqpacket_pair().expect("socketpair")
    }

    #[test]
    fn installed_carries_an_fd() {
        let (parent, child) = pair();
        let file = tempfile::tempfile().expect("temp file");
        send_from_child(
            child.as_raw_fd(),
            Status::Installed,
            0,
            Some(file.as_raw_fd()),
        )
        .expect("send");
        match receive_now(parent.as_raw_fd()).expect("receive") {
            Handshake::Installed(fd) => assert_ne!(fd.as_raw_fd(), file.as_raw_fd()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refusal_carries_errno() {
        let (parent, child) = pair();
        send_from_child(child.as_raw_fd(), Status::SeccompFailed, libc::EBUSY, None).expect("send");
        match receive_now(parent.as_raw_fd()).expect("receive") {
            Handshake::Refused {
                status: Status::SeccompFailed,
                errno,
            } => assert_eq!(errno, libc::EBUSY),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn closed_socket_is_reported() {
        let (parent, child) = pair();
        drop(child);
        assert!(matches!(
            receive_now(parent.as_raw_fd()).expect("receive"),
            Handshake::Closed
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        let (parent, child) = pair();
        nix::unistd::write(&child, b"abc").expect("write");
        assert!(receive_now(parent.as_raw_fd()).is_err());
        nix::unistd::write(&child, &[9, 0, 0, 0, 0, 0, 0, 0]).expect("write");
        assert!(receive_now(parent.as_raw_fd()).is_err());
    }
}

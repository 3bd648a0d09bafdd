//! The broker socket: the `SOCK_SEQPACKET` pair created per task, placing its
//! child end at a fixed fd in the child, and receiving clients' Hello
//! datagrams with their private stream attached (`SCM_RIGHTS`). Used by
//! `session.rs`; the wire rules are in docs/protocol.md.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use vp_ipc::{MAX_HELLO_FRAME, PROTOCOL_VERSION, Request};

/// Most fds a Hello datagram may carry before we call it malformed; room
/// for a few extra so a bad client's fds are received and closed, not leaked.
const MAX_FDS: usize = 8;

/// A `SOCK_SEQPACKET` pair, both ends close-on-exec (the child's copy is
/// re-installed without it by [`place_fd`]).
pub(super) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    // The same nix call the tracer uses for its handshake pair.
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)
}

/// The fd number the broker gets in children: [`vp_ipc::PREFERRED_BROKER_FD`],
/// lowered when the soft `RLIMIT_NOFILE` would make it invalid.
pub(super) fn child_fd_number() -> RawFd {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    let highest = RawFd::try_from(soft.saturating_sub(1)).unwrap_or(RawFd::MAX);
    vp_ipc::PREFERRED_BROKER_FD.min(highest).max(10)
}

/// Runs in the forked child before `exec`: installs `end` as `target`
/// without `FD_CLOEXEC`. Only async-signal-safe calls (dup2, fcntl).
pub(super) fn place_fd(end: &OwnedFd, target: RawFd) -> io::Result<()> {
    let raw = end.as_raw_fd();
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

/// One message read from the broker.
#[derive(Debug)]
pub(super) enum BrokerMsg {
    /// Every holder of the child end closed it: no new clients can come.
    Eof,
    /// A datagram with the fds it carried (already owned: closed on drop).
    Datagram {
        data: Vec<u8>,
        fds: Vec<OwnedFd>,
        truncated: bool,
    },
}

/// Receives one datagram (non-blocking socket: `WouldBlock` when none).
pub(super) fn recv(sock: RawFd) -> io::Result<BrokerMsg> {
    let mut data = vec![0u8; MAX_HELLO_FRAME];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the buffers it points at outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg is initialised; MSG_CMSG_CLOEXEC keeps received fds
        // out of the children we spawn.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let fds = take_fds(&msg);
    if n == 0 && fds.is_empty() && peer_hung_up(sock) {
        return Ok(BrokerMsg::Eof);
    }
    data.truncate(n);
    Ok(BrokerMsg::Datagram {
        data,
        fds,
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

/// An empty read is EOF only if the peer is gone; a live client could also
/// have sent an empty datagram.
fn peer_hung_up(sock: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd we own, zero timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc > 0 && pfd.revents & libc::POLLHUP != 0
}

/// A validated Hello: the client's identity and its private stream.
#[derive(Debug)]
pub(super) struct Accepted {
    pub(super) label: String,
    pub(super) stream: OwnedFd,
}

/// A Hello that was refused: why, and the stream (if one came) so the
/// client can be told before it is closed.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) reason: String,
    pub(super) stream: Option<OwnedFd>,
}

/// Checks a broker datagram: exactly one fd, a complete Hello frame, the
/// protocol version this runner speaks, the task's token.
pub(super) fn accept(
    data: &[u8],
    mut fds: Vec<OwnedFd>,
    truncated: bool,
    token: &str,
) -> Result<Accepted, Refused> {
    let fd_count = fds.len();
    let stream = fds.pop();
    let refuse = |reason: String, stream: Option<OwnedFd>| Err(Refused { reason, stream });
    if truncated {
        return refuse(
            format!(
                "hello on the broker was larger than {MAX_HELLO_FRAME} bytes or carried too many fds"
            ),
            stream,
        );
    }
    if fd_count != 1 {
        return refuse(
            format!("hello on the broker carried {fd_count} fds instead of exactly one stream"),
            stream,
        );
    }
    let hello = match vp_ipc::decode_frame::<Request>(data) {
        Ok(hello) => hello,
        Err(e) => return refuse(format!("bad hello on the broker: {e}"), stream),
    };
    let Request::Hello {
        protocol,
        token: sent,
        pid,
        client,
    } = hello
    else {
        return refuse(
            "first message on the broker was not a hello".to_owned(),
            stream,
        );
    };
    let label = format!("{} (pid {pid})", printable(&client));
    if protocol != PROTOCOL_VERSION {
        return refuse(
            format!(
                "{label} speaks protocol version {protocol}; this vp speaks version {PROTOCOL_VERSION}"
            ),
            stream,
        );
    }
    if sent != token {
        return refuse(
            format!(
                "{label} sent a wrong task token (hint: it inherited the bridge of another task or vp)"
            ),
            stream,
        );
    }
    match stream {
        Some(stream) => Ok(Accepted { label, stream }),
        None => refuse(format!("{label} sent a hello without its stream"), None),
    }
}

/// Client names come from other programs: keep them to one short line.
fn printable(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(80)
        .collect();
    if clean.is_empty() {
        "unnamed client".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(token: &str, protocol: u32) -> Vec<u8> {
        vp_ipc::encode_frame(&Request::Hello {
            protocol,
            token: token.into(),
            pid: 7,
            client: "tool\nx".into(),
        })
        .expect("encodes")
    }

    fn an_fd() -> OwnedFd {
        let (a, _b) = seqpacket_pair().expect("socketpair");
        a
    }

    #[test]
    fn a_good_hello_is_accepted_with_a_clean_label() {
        let got =
            accept(&hello("tok", PROTOCOL_VERSION), vec![an_fd()], false, "tok").expect("accepted");
        assert_eq!(got.label, "tool?x (pid 7)");
    }

    #[test]
    fn bad_hellos_are_refused_with_a_reason() {
        let cases: Vec<(Vec<u8>, Vec<OwnedFd>, bool, &str)> = vec![
            (
                hello("nope", PROTOCOL_VERSION),
                vec![an_fd()],
                false,
                "wrong task token",
            ),
            (
                hello("tok", 99),
                vec![an_fd()],
                false,
                "protocol version 99",
            ),
            (hello("tok", PROTOCOL_VERSION), vec![], false, "0 fds"),
            (
                hello("tok", PROTOCOL_VERSION),
                vec![an_fd(), an_fd()],
                false,
                "2 fds",
            ),
            (b"garbage!".to_vec(), vec![an_fd()], false, "bad hello"),
            (
                hello("tok", PROTOCOL_VERSION),
                vec![an_fd()],
                true,
                "larger than",
            ),
            (
                vp_ipc::encode_frame(&Request::DisableCache).expect("encodes"),
                vec![an_fd()],
                false,
                "not a hello",
            ),
        ];
        for (data, fds, truncated, want) in cases {
            let err = accept(&data, fds, truncated, "tok").expect_err("refused");
            assert!(
                err.reason.contains(want),
                "{:?} should mention {want:?}",
                err.reason
            );
        }
    }

    #[test]
    fn child_fd_is_high_and_valid() {
        let fd = child_fd_number();
        assert!(fd > 3 && fd <= vp_ipc::PREFERRED_BROKER_FD, "{fd}");
    }

    #[test]
    fn recv_reports_eof_once_the_peer_is_gone() {
        let (ours, theirs) = seqpacket_pair().expect("socketpair");
        drop(theirs);
        assert!(matches!(recv(ours.as_raw_fd()), Ok(BrokerMsg::Eof)));
    }

    #[test]
    fn an_empty_datagram_from_a_live_peer_is_not_eof() {
        let (ours, theirs) = seqpacket_pair().expect("socketpair");
        // SAFETY: sending an empty message on a socket we own.
        let rc = unsafe { libc::send(theirs.as_raw_fd(), std::ptr::null(), 0, 0) };
        assert_eq!(rc, 0);
        match recv(ours.as_raw_fd()) {
            Ok(BrokerMsg::Datagram { data, fds, .. }) => assert!(data.is_empty() && fds.is_empty()),
            other => panic!("expected an empty datagram, got {other:?}"),
        }
    }
}

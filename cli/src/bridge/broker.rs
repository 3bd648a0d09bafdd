//! The broker socket: the `SOCK_SEQPACKET` pair created per task, placing its
//! child end at a fixed fd in the child, and receiving clients' Hello
//! datagrams with their private stream attached (`SCM_RIGHTS`). Used by
//! `session.rs`; the wire rules are in docs/protocol.md.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use vp_ipc::{
    MAX_HELLO_FRAME, PROTOCOL_VERSIONS, Request, SPEAKS_VERSIONS, UNSUPPORTED_VERSION_PREFIX,
};

/// Most fds a Hello datagram may carry before we call it malformed; room
/// for a few extra so a bad client's fds are received and closed, not leaked.
const MAX_FDS: usize = 8;

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
    let got = vp_ipc::recv_with_fds(sock, &mut data, MAX_FDS)?;
    if got.len == 0 && got.fds.is_empty() && peer_hung_up(sock) {
        return Ok(BrokerMsg::Eof);
    }
    data.truncate(got.len);
    Ok(BrokerMsg::Datagram {
        data,
        fds: got.fds,
        truncated: got.truncated,
    })
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
    /// The pid the client gave in its Hello.
    pub(super) pid: u32,
    pub(super) stream: OwnedFd,
}

/// A Hello that was refused: why, and the stream (only one that passed
/// [`check_stream`]) so the client can be told before it is closed.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) reason: String,
    pub(super) stream: Option<OwnedFd>,
    pub(super) kind: RefusalKind,
}

/// Whether a refused Hello breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefusalKind {
    /// A broken or foreign client: recorded as a protocol error, which makes
    /// the run not cacheable.
    ProtocolError,
    /// A well-formed Hello with the task's token asking for a protocol
    /// version this runner does not speak: the documented first step of
    /// version negotiation, after which the client retries with a lower
    /// version on a new stream. Not a protocol error by itself.
    UnsupportedVersion {
        /// The pid the client gave, to match its retry.
        pid: u32,
        /// The version it asked for.
        version: u32,
        /// `"<client> (pid <n>)"`.
        label: String,
    },
}

/// Checks a broker datagram: exactly one fd that is a unix stream socket, a
/// complete Hello frame, the task's token, a protocol version this runner
/// speaks. The token is checked before the version (a Hello is encoded the
/// same in every version), so a wrong token is always a protocol error.
pub(super) fn accept(
    data: &[u8],
    mut fds: Vec<OwnedFd>,
    truncated: bool,
    token: &str,
) -> Result<Accepted, Refused> {
    let fd_count = fds.len();
    // Whatever the client sent as its stream is only written to (and made
    // non-blocking) once it is known to be a unix stream socket: it could be
    // one of the client's files or pipes, whose file description it shares.
    let (stream, not_a_stream) = match fds.pop() {
        Some(fd) => match check_stream(&fd) {
            Ok(()) => (Some(fd), None),
            Err(what) => (None, Some(what)),
        },
        None => (None, None),
    };
    let refuse = |reason: String, stream: Option<OwnedFd>| {
        Err(Refused {
            reason,
            stream,
            kind: RefusalKind::ProtocolError,
        })
    };
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
    if let Some(what) = not_a_stream {
        return refuse(
            format!(
                "{label} sent {what} as its private stream instead of a unix stream socket (hint: send one end of a new socketpair(AF_UNIX, SOCK_STREAM))"
            ),
            None,
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
    if !PROTOCOL_VERSIONS.contains(&protocol) {
        return Err(Refused {
            reason: unsupported_version_message(protocol, &label),
            stream,
            kind: RefusalKind::UnsupportedVersion {
                pid,
                version: protocol,
                label,
            },
        });
    }
    match stream {
        Some(stream) => Ok(Accepted { label, pid, stream }),
        None => refuse(format!("{label} sent a hello without its stream"), None),
    }
}

/// The `Error` answer to a Hello with a version this runner does not speak,
/// in the form docs/protocol.md specifies (clients read the list at the end).
fn unsupported_version_message(version: u32, label: &str) -> String {
    let speaks = PROTOCOL_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("{UNSUPPORTED_VERSION_PREFIX} {version} from {label}; {SPEAKS_VERSIONS}{speaks}")
}

/// `Ok` when `fd` is an `AF_UNIX` `SOCK_STREAM` socket; otherwise what it is
/// instead ("a regular file", "a unix SOCK_DGRAM socket", ...). Only reads
/// the fd's metadata: nothing is read from, written to or changed on it.
pub(super) fn check_stream(fd: &OwnedFd) -> Result<(), String> {
    let raw = fd.as_raw_fd();
    // SAFETY: fstat writes into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(raw, &mut st) } != 0 {
        return Err(format!(
            "an fd that cannot be inspected ({})",
            io::Error::last_os_error()
        ));
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => None,
        libc::S_IFREG => Some("a regular file"),
        libc::S_IFDIR => Some("a directory"),
        libc::S_IFIFO => Some("a pipe"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        _ => Some("an fd that is not a socket"),
    };
    if let Some(kind) = kind {
        return Err(kind.to_owned());
    }
    let domain = vp_ipc::sockopt_int(raw, libc::SO_DOMAIN);
    if domain != Some(libc::AF_UNIX) {
        return Err(match domain {
            Some(libc::AF_INET) => "an IPv4 socket".to_owned(),
            Some(libc::AF_INET6) => "an IPv6 socket".to_owned(),
            Some(other) => format!("a socket of address family {other}"),
            None => "a socket of unknown address family".to_owned(),
        });
    }
    match vp_ipc::sockopt_int(raw, libc::SO_TYPE) {
        Some(libc::SOCK_STREAM) => Ok(()),
        Some(libc::SOCK_SEQPACKET) => Err("a unix SOCK_SEQPACKET socket".to_owned()),
        Some(libc::SOCK_DGRAM) => Err("a unix SOCK_DGRAM socket".to_owned()),
        Some(other) => Err(format!("a unix socket of type {other}")),
        None => Err("a unix socket of unknown type".to_owned()),
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
    use vp_ipc::PROTOCOL_VERSION;

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

    /// One end of a unix stream pair: what a client sends as its stream.
    fn an_fd() -> OwnedFd {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        OwnedFd::from(a)
    }

    #[test]
    fn a_good_hello_is_accepted_with_a_clean_label() {
        let got =
            accept(&hello("tok", PROTOCOL_VERSION), vec![an_fd()], false, "tok").expect("accepted");
        assert_eq!(got.label, "tool?x (pid 7)");
    }

    #[test]
    fn an_unsupported_version_is_negotiation_not_a_protocol_error() {
        let err = accept(&hello("tok", 99), vec![an_fd()], false, "tok").expect_err("refused");
        assert_eq!(
            err.kind,
            RefusalKind::UnsupportedVersion {
                pid: 7,
                version: 99,
                label: "tool?x (pid 7)".into()
            }
        );
        assert!(err.stream.is_some(), "the client must be told");
        assert_eq!(
            err.reason,
            format!(
                "unsupported protocol version 99 from tool?x (pid 7); this vp speaks versions: {PROTOCOL_VERSION}"
            )
        );
        assert_eq!(
            vp_ipc::refused_version_list(&err.reason),
            Some(PROTOCOL_VERSIONS.to_vec())
        );
    }

    #[test]
    fn a_wrong_token_is_a_protocol_error_whatever_the_version() {
        for version in [PROTOCOL_VERSION, 99] {
            let err =
                accept(&hello("nope", version), vec![an_fd()], false, "tok").expect_err("refused");
            assert_eq!(err.kind, RefusalKind::ProtocolError, "version {version}");
            assert!(err.reason.contains("wrong task token"), "{}", err.reason);
        }
    }

    #[test]
    fn only_a_unix_stream_socket_is_accepted_as_a_stream() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = std::fs::File::create(dir.path().join("f")).expect("create");
        let (pipe_read, _pipe_write) = std::io::pipe().expect("pipe");
        let (seqpacket, _peer) = crate::child_fd::seqpacket_pair().expect("socketpair");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let cases: Vec<(OwnedFd, &str)> = vec![
            (OwnedFd::from(file), "a regular file"),
            (OwnedFd::from(pipe_read), "a pipe"),
            (seqpacket, "a unix SOCK_SEQPACKET socket"),
            (OwnedFd::from(udp), "an IPv4 socket"),
            (
                OwnedFd::from(std::fs::File::open(dir.path()).expect("open dir")),
                "a directory",
            ),
        ];
        for (fd, what) in cases {
            assert_eq!(check_stream(&fd), Err(what.to_owned()));
            let err = accept(&hello("tok", PROTOCOL_VERSION), vec![fd], false, "tok")
                .expect_err("refused");
            assert_eq!(err.kind, RefusalKind::ProtocolError);
            assert!(
                err.reason.contains(what) && err.reason.contains("instead of a unix stream socket"),
                "{}",
                err.reason
            );
            assert!(err.stream.is_none(), "{what} must never be written to");
        }
        assert_eq!(check_stream(&an_fd()), Ok(()));
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
        let (ours, theirs) = crate::child_fd::seqpacket_pair().expect("socketpair");
        drop(theirs);
        assert!(matches!(recv(ours.as_raw_fd()), Ok(BrokerMsg::Eof)));
    }

    #[test]
    fn an_empty_datagram_from_a_live_peer_is_not_eof() {
        let (ours, theirs) = crate::child_fd::seqpacket_pair().expect("socketpair");
        // SAFETY: sending an empty message on a socket we own.
        let rc = unsafe { libc::send(theirs.as_raw_fd(), std::ptr::null(), 0, 0) };
        assert_eq!(rc, 0);
        match recv(ours.as_raw_fd()) {
            Ok(BrokerMsg::Datagram { data, fds, .. }) => assert!(data.is_empty() && fds.is_empty()),
            other => panic!("expected an empty datagram, got {other:?}"),
        }
    }
}

//! The client against a minimal runner written from docs/protocol.md alone
//! (blocking, one thread): checks the handshake as specified and how the
//! client maps every kind of answer, including wrong and missing ones.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use vp_ipc::{CallError, Client, EnvQuery, PROTOCOL_VERSION, Request, Response};

/// What the fake runner answers to each non-Hello request.
type Script = fn(&Request) -> Option<Response>;

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for two descriptors.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair");
    // SAFETY: fresh fds from socketpair.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Receives one Hello datagram with its fd, per section 3 of the spec.
fn recv_hello(broker: RawFd) -> Option<(Request, UnixStream)> {
    let mut data = vec![0u8; 65536];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: plain recvmsg into buffers we own.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(broker, &mut msg, 0);
        if n <= 0 {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "hello must carry an fd");
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        let hello =
            vp_ipc::decode_frame::<Request>(&data[..n as usize]).expect("hello is one frame");
        Some((hello, UnixStream::from(OwnedFd::from_raw_fd(fd))))
    }
}

/// Serves every connection of one client, in order, with `script`.
fn fake_runner(broker: OwnedFd, token: &'static str, script: Script) -> JoinHandle<Vec<Request>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some((hello, mut stream)) = recv_hello(broker.as_raw_fd()) {
            let Request::Hello {
                protocol,
                token: sent,
                ..
            } = &hello
            else {
                panic!("first message must be a hello: {hello:?}");
            };
            assert_eq!(*protocol, PROTOCOL_VERSION);
            if sent != token {
                let refusal = Response::Error {
                    message: "wrong task token".into(),
                };
                vp_ipc::write_frame(&mut stream, &refusal).expect("answer");
                continue;
            }
            vp_ipc::write_frame(&mut stream, &Response::Ack).expect("ack");
            while let Ok(Some(request)) = vp_ipc::read_frame::<Request>(&mut stream) {
                let answer = script(&request);
                seen.push(request);
                match answer {
                    Some(answer) => vp_ipc::write_frame(&mut stream, &answer).expect("answer"),
                    None => break,
                }
            }
        }
        seen
    })
}

fn honest(request: &Request) -> Option<Response> {
    Some(match request {
        Request::GetEnv { name, .. } if name == b"SET" => Response::Env {
            value: Some(vec![0xff, b'v']),
        },
        Request::GetEnv { .. } => Response::Env { value: None },
        Request::GetEnvs { .. } => Response::Envs {
            map: BTreeMap::from([
                (b"K1".to_vec(), b"1".to_vec()),
                (b"K2".to_vec(), b"2".to_vec()),
            ]),
        },
        _ => Response::Ack,
    })
}

#[test]
fn requests_and_answers_map_to_the_client_api() {
    let (runner, child) = seqpacket_pair();
    let server = fake_runner(runner, "tok", honest);
    let client = Client::from_fd(child.as_raw_fd(), "tok", "spec-test").expect("valid broker");
    client.ignore_input("/in").expect("ack");
    client.ignore_output("/out").expect("ack");
    client.disable_cache().expect("ack");
    let value = client.get_env("SET", true).expect("env");
    assert_eq!(
        value,
        Some(OsString::from(
            std::os::unix::ffi::OsStrExt::from_bytes(&[0xff, b'v']) as &OsStr
        ))
    );
    assert_eq!(client.get_env("UNSET", false).expect("env"), None);
    let map = client
        .get_envs(EnvQuery::Prefix(b"K".to_vec()), true)
        .expect("envs");
    assert_eq!(map.len(), 2);
    drop(client);
    drop(child);
    let seen = server.join().expect("runner thread");
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen[0],
        Request::IgnoreInput {
            path: b"/in".to_vec()
        }
    );
    assert_eq!(
        seen[4],
        Request::GetEnv {
            name: b"UNSET".to_vec(),
            tracked: false
        }
    );
}

#[test]
fn a_refused_hello_is_a_rejection() {
    let (runner, child) = seqpacket_pair();
    let server = fake_runner(runner, "tok", honest);
    let client = Client::from_fd(child.as_raw_fd(), "other", "spec-test").expect("valid broker");
    match client.disable_cache() {
        Err(CallError::Rejected(message)) => assert_eq!(message, "wrong task token"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    drop(client);
    drop(child);
    assert!(server.join().expect("runner thread").is_empty());
}

#[test]
fn a_mismatched_answer_is_reported_not_trusted() {
    let (runner, child) = seqpacket_pair();
    let server = fake_runner(runner, "tok", |_| Some(Response::Ack));
    let client = Client::from_fd(child.as_raw_fd(), "tok", "spec-test").expect("valid broker");
    let err = client
        .get_env("X", true)
        .expect_err("Ack is no answer to GetEnv");
    assert!(
        matches!(
            err,
            CallError::UnexpectedAnswer {
                request: "GetEnv",
                ..
            }
        ),
        "{err}"
    );
    drop(client);
    drop(child);
    server.join().expect("runner thread");
}

#[test]
fn an_error_answer_becomes_a_rejection_and_the_connection_survives() {
    let (runner, child) = seqpacket_pair();
    let server = fake_runner(runner, "tok", |request| {
        Some(match request {
            Request::GetEnvs { .. } => Response::Error {
                message: "invalid env glob `[`".into(),
            },
            _ => Response::Ack,
        })
    });
    let client = Client::from_fd(child.as_raw_fd(), "tok", "spec-test").expect("valid broker");
    let err = client
        .get_envs(EnvQuery::Glob(b"[".to_vec()), true)
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "the vp runner refused the request: invalid env glob `[`"
    );
    client
        .ignore_input("/after")
        .expect("same connection still answers");
    drop(client);
    drop(child);
    assert_eq!(server.join().expect("runner thread").len(), 2);
}

#[test]
fn a_runner_closing_without_answer_is_an_error_and_the_next_call_reconnects() {
    let (runner, child) = seqpacket_pair();
    // Closes the connection instead of answering the first request.
    let server = fake_runner(runner, "tok", |request| match request {
        Request::DisableCache => None,
        _ => Some(Response::Ack),
    });
    let client = Client::from_fd(child.as_raw_fd(), "tok", "spec-test").expect("valid broker");
    assert!(matches!(client.disable_cache(), Err(CallError::Closed)));
    client.ignore_input("/x").expect("a fresh connection works");
    drop(client);
    drop(child);
    assert_eq!(server.join().expect("runner thread").len(), 2);
}

//! Serving one client's private stream: read a frame, record what it says,
//! answer. Recording happens before answering, so when a client's call
//! returns the runner already knows (a tool may exit right after). A
//! protocol error (oversized, truncated or undecodable frame, a second
//! Hello) is recorded, answered with an `Error` when possible, and closes
//! this connection only. Spawned per client by `session.rs`.

use std::cell::RefCell;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Component, PathBuf};

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use vp_ipc::{FrameError, HEADER_LEN, Request, Response};

use super::env_answer::EnvSource;
use super::report::{BridgeReport, TrackedQuery};

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client closed its stream at a frame boundary.
    Cleanly,
    /// The client broke the protocol; the text says how.
    ProtocolError(String),
}

/// Serves `stream` until the client closes it or breaks the protocol. The
/// Hello was already validated; this sends its `Ack` first.
pub(super) async fn serve(
    mut stream: Async<UnixStream>,
    label: &str,
    env: &EnvSource,
    report: &RefCell<BridgeReport>,
) -> Ended {
    if send(&mut stream, &Response::Ack).await.is_err() {
        // The client died right after its Hello; it never got to say anything.
        return Ended::Cleanly;
    }
    loop {
        let request = match read_request(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => return Ended::Cleanly,
            Err(err) => {
                let message = err.to_string();
                // Best effort: the client may already be gone.
                let _ = send(
                    &mut stream,
                    &Response::Error {
                        message: message.clone(),
                    },
                )
                .await;
                return Ended::ProtocolError(message);
            }
        };
        if matches!(request, Request::Hello { .. }) {
            let message = "hello sent twice on one connection".to_owned();
            let _ = send(
                &mut stream,
                &Response::Error {
                    message: message.clone(),
                },
            )
            .await;
            return Ended::ProtocolError(message);
        }
        let answer = handle(request, label, env, &mut report.borrow_mut());
        if send(&mut stream, &answer).await.is_err() {
            // Recorded already; the client exited without reading the answer.
            return Ended::Cleanly;
        }
    }
}

/// Applies one request to the report and builds its answer.
fn handle(request: Request, label: &str, env: &EnvSource, report: &mut BridgeReport) -> Response {
    match request {
        Request::Hello { .. } => Response::Error {
            message: "hello sent twice on one connection".to_owned(),
        },
        Request::IgnoreInput { path } => match absolute_path(path) {
            Ok(path) => {
                report.ignored_inputs.insert(path);
                Response::Ack
            }
            Err(message) => Response::Error { message },
        },
        Request::IgnoreOutput { path } => match absolute_path(path) {
            Ok(path) => {
                report.ignored_outputs.insert(path);
                Response::Ack
            }
            Err(message) => Response::Error { message },
        },
        Request::DisableCache => {
            report
                .cache_disabled_by
                .get_or_insert_with(|| label.to_owned());
            Response::Ack
        }
        Request::GetEnv { name, tracked } => {
            let name = OsString::from_vec(name);
            let value = env.get(&name).map(|v| v.to_owned());
            if tracked && !env.is_untracked(&name) {
                report.tracked_envs.insert(name, value.clone());
            } else {
                report.untracked_env_reads.insert(name);
            }
            Response::Env {
                value: value.map(OsString::into_vec),
            }
        }
        Request::GetEnvs { query, tracked } => match env.query(&query) {
            Ok(matches) => {
                let map = matches
                    .iter()
                    .map(|(k, v)| (k.clone().into_vec(), v.clone().into_vec()))
                    .collect();
                if tracked {
                    if !report.env_queries.iter().any(|q| q.query == query) {
                        report.env_queries.push(TrackedQuery { query, matches });
                    }
                } else {
                    report.untracked_env_reads.extend(matches.into_keys());
                }
                Response::Envs { map }
            }
            Err(err) => Response::Error {
                message: err.to_string(),
            },
        },
    }
}

/// Paths must be absolute (clients resolve them against their own cwd,
/// which the runner cannot know reliably). `.` components and trailing
/// slashes are dropped so the same directory is recorded once.
fn absolute_path(bytes: Vec<u8>) -> Result<PathBuf, String> {
    let path = PathBuf::from(OsString::from_vec(bytes));
    if !path.is_absolute() {
        return Err(format!(
            "path `{}` is not absolute (hint: resolve it against the tool's working directory before sending)",
            path.display()
        ));
    }
    Ok(path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

/// Reads one request; `Ok(None)` at a clean end of stream.
async fn read_request(stream: &mut Async<UnixStream>) -> Result<Option<Request>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(stream, &mut header).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            got,
            want: HEADER_LEN,
        });
    }
    let len = vp_ipc::body_len(header)?;
    let mut body = vec![0u8; len];
    let got = read_full(stream, &mut body).await?;
    if got < len {
        return Err(FrameError::Truncated { got, want: len });
    }
    vp_ipc::decode_body(&body).map(Some)
}

async fn read_full(stream: &mut Async<UnixStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn send(stream: &mut Async<UnixStream>, answer: &Response) -> std::io::Result<()> {
    let frame = vp_ipc::encode_frame(answer).map_err(std::io::Error::other)?;
    stream.write_all(&frame).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::rc::Rc;

    use vp_ipc::EnvQuery;

    use super::*;

    fn env() -> EnvSource {
        let full: BTreeMap<OsString, OsString> =
            [("NODE_ENV", "prod"), ("HOME", "/root"), ("VITE_X", "1")]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
        EnvSource::new(Rc::new(full), Rc::new(|n: &OsStr| n == "HOME"))
    }

    #[test]
    fn config_wins_over_a_tool_asking_to_track() {
        let mut report = BridgeReport::default();
        let answer = handle(
            Request::GetEnv {
                name: b"HOME".to_vec(),
                tracked: true,
            },
            "t",
            &env(),
            &mut report,
        );
        assert_eq!(
            answer,
            Response::Env {
                value: Some(b"/root".to_vec())
            }
        );
        assert!(report.tracked_envs.is_empty());
        assert!(report.untracked_env_reads.contains(OsStr::new("HOME")));
    }

    #[test]
    fn tracked_gets_record_absent_values_too() {
        let mut report = BridgeReport::default();
        let answer = handle(
            Request::GetEnv {
                name: b"NOPE".to_vec(),
                tracked: true,
            },
            "t",
            &env(),
            &mut report,
        );
        assert_eq!(answer, Response::Env { value: None });
        assert_eq!(report.tracked_envs.get(OsStr::new("NOPE")), Some(&None));
    }

    #[test]
    fn tracked_queries_are_recorded_once() {
        let mut report = BridgeReport::default();
        for _ in 0..2 {
            let answer = handle(
                Request::GetEnvs {
                    query: EnvQuery::Glob(b"*".to_vec()),
                    tracked: true,
                },
                "t",
                &env(),
                &mut report,
            );
            let Response::Envs { map } = answer else {
                panic!("expected Envs, got {answer:?}");
            };
            let names: Vec<&[u8]> = map.keys().map(Vec::as_slice).collect();
            assert_eq!(names, [b"NODE_ENV".as_slice(), b"VITE_X"]);
        }
        assert_eq!(report.env_queries.len(), 1);
    }

    #[test]
    fn relative_paths_are_refused_and_not_recorded() {
        let mut report = BridgeReport::default();
        let answer = handle(
            Request::IgnoreInput {
                path: b"dist".to_vec(),
            },
            "t",
            &env(),
            &mut report,
        );
        assert!(
            matches!(answer, Response::Error { ref message } if message.contains("not absolute"))
        );
        assert!(report.ignored_inputs.is_empty());
        handle(
            Request::IgnoreOutput {
                path: b"/w/./dist/".to_vec(),
            },
            "t",
            &env(),
            &mut report,
        );
        assert!(report.ignored_outputs.contains(&PathBuf::from("/w/dist")));
    }

    #[test]
    fn the_first_disable_wins() {
        let mut report = BridgeReport::default();
        handle(Request::DisableCache, "a (pid 1)", &env(), &mut report);
        handle(Request::DisableCache, "b (pid 2)", &env(), &mut report);
        assert_eq!(report.cache_disabled_by.as_deref(), Some("a (pid 1)"));
    }
}

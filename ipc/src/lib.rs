//! `vp-ipc`: the protocol between the `vp` task runner and the tools it runs.
//!
//! A process started by `vp` inherits a socket (the *broker*) whose fd number
//! and a per-task token are in `VP_IPC_FD` / `VP_IPC_TOKEN`. Through it a tool
//! tells the runner what its cache should know: "reads under this directory
//! are not inputs" ([`Client::ignore_input`]), "writes there are not outputs"
//! ([`Client::ignore_output`]), "don't cache this run"
//! ([`Client::disable_cache`]), and it can read (and have tracked) variables
//! of the runner's full environment ([`Client::get_env`], [`Client::get_envs`]).
//!
//! This crate holds the message types ([`Request`], [`Response`]), the
//! framing ([`encode_frame`], [`read_frame`], ...) shared with vp's server,
//! and [`Client`], a blocking client with no runtime and only `libc` below
//! it. The wire format is specified in `docs/protocol.md`.
//!
//! Outside vp every constructor returns [`Unavailable`]; treat that as "no
//! runner" and carry on, so a tool behaves the same with or without vp:
//!
//! ```no_run
//! use vp_ipc::{Client, EnvQuery};
//!
//! let client = Client::from_env("my-tool").ok();
//! if let Some(client) = &client {
//!     client.ignore_output("node_modules/.cache/my-tool")?;
//!     let mode = client.get_env("NODE_ENV", true)?;
//!     let public = client.get_envs(EnvQuery::Prefix(b"PUBLIC_".to_vec()), true)?;
//!     println!("{mode:?} {}", public.len());
//! }
//! # Ok::<(), vp_ipc::CallError>(())
//! ```
#![warn(missing_docs)]

mod client;
mod env_match;
mod frame;
mod message;
mod sys;

pub use client::{CallError, Client, ENV_FD, ENV_NODE_CLIENT_PATH, ENV_TOKEN, Unavailable};
pub use env_match::{EnvGlobError, EnvNameMatcher, GlobProblem};
pub use frame::{
    FrameError, HEADER_LEN, MAX_FRAME_LEN, MAX_HELLO_FRAME, body_len, decode_body, decode_frame,
    encode_frame, read_frame, write_frame,
};
pub use message::{
    EnvQuery, PROTOCOL_VERSION, PROTOCOL_VERSIONS, Request, Response, SPEAKS_VERSIONS,
    UNSUPPORTED_VERSION_PREFIX, refused_version_list,
};
pub use sys::{MAX_SENT_FDS, Received, recv_with_fds, send_with_fds, sockopt_int};

/// Fd number the runner prefers for the broker in its children. Far above
/// 3, which Node's `child_process.fork()` uses for its own IPC channel.
/// Clients must read the actual number from [`ENV_FD`], never assume this.
pub const PREFERRED_BROKER_FD: i32 = 1023;

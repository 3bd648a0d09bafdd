//! The protocol's messages: what a client asks ([`Request`]) and what the
//! runner answers ([`Response`]). Both ends (vp's server in `cli/src/bridge`
//! and [`crate::Client`]) use these exact types, so they are the contract.
//!
//! Paths, env names and env values are raw bytes: Linux paths and
//! environment entries need not be UTF-8. The byte-level encoding of every
//! variant is specified in `docs/protocol.md`; the tests in `frame.rs` pin it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the protocol spoken by this crate, sent in [`Request::Hello`].
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from a client to the runner. Every request gets exactly one
/// [`Response`].
///
/// The variant order is part of the wire format (the variant index is the
/// tag): never reorder, only append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message of every connection, sent over the broker together with
    /// the client's private stream. Answered with [`Response::Ack`] or
    /// [`Response::Error`] on that stream.
    Hello {
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`]).
        protocol: u32,
        /// The per-task token from `VP_IPC_TOKEN`, proving the client was
        /// started by this task.
        token: String,
        /// The client's process id, shown to the user next to its reports.
        pid: u32,
        /// A short human name for the client (`"node vite.js"`, `"esbuild"`).
        client: String,
    },
    /// Reads under this absolute path (the whole subtree) are not inputs.
    IgnoreInput {
        /// Absolute path, raw bytes.
        path: Vec<u8>,
    },
    /// Writes under this absolute path (the whole subtree) are not outputs.
    IgnoreOutput {
        /// Absolute path, raw bytes.
        path: Vec<u8>,
    },
    /// This run must not be stored in the cache.
    DisableCache,
    /// Read one variable from the runner's full environment.
    GetEnv {
        /// Variable name, raw bytes.
        name: Vec<u8>,
        /// Whether the value (or its absence) becomes part of the cache entry.
        tracked: bool,
    },
    /// Read every variable matching a query from the runner's full environment.
    GetEnvs {
        /// Which names to match.
        query: EnvQuery,
        /// Whether the whole match-set becomes part of the cache entry.
        tracked: bool,
    },
}

/// Which environment variable names a [`Request::GetEnvs`] selects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EnvQuery {
    /// A glob over the name (`*`, `?`, `[abc]`), e.g. `VITE_*`. Must be UTF-8.
    Glob(Vec<u8>),
    /// Names starting with these bytes, e.g. `VITE_`.
    Prefix(Vec<u8>),
}

/// The runner's answer to one [`Request`].
///
/// The variant order is part of the wire format: never reorder, only append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request was recorded (Hello, IgnoreInput, IgnoreOutput, DisableCache).
    Ack,
    /// Answer to [`Request::GetEnv`]: `None` when the variable is not set.
    Env {
        /// The value, raw bytes.
        value: Option<Vec<u8>>,
    },
    /// Answer to [`Request::GetEnvs`]: every matching name and its value.
    Envs {
        /// Name → value, sorted by name.
        map: BTreeMap<Vec<u8>, Vec<u8>>,
    },
    /// The request was refused; the message says why, for a human.
    Error {
        /// What went wrong, lowercase, no trailing period.
        message: String,
    },
}

impl EnvQuery {
    /// The query's text (glob or prefix), as bytes.
    pub fn pattern(&self) -> &[u8] {
        match self {
            EnvQuery::Glob(p) | EnvQuery::Prefix(p) => p,
        }
    }
}

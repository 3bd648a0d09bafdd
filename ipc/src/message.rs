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

/// Every protocol version this crate speaks, highest first. The runner
/// accepts a Hello with any of them (and names them when it refuses one);
/// the client offers them in this order (version negotiation,
/// `docs/protocol.md` section 7).
pub const PROTOCOL_VERSIONS: &[u32] = &[PROTOCOL_VERSION];

/// How the runner's `Error` answer to a Hello with a version it does not
/// speak begins. The message ends with [`SPEAKS_VERSIONS`] and the
/// comma-separated versions it does speak, e.g. `unsupported protocol
/// version 2 from esbuild (pid 12); this vp speaks versions: 1`.
pub const UNSUPPORTED_VERSION_PREFIX: &str = "unsupported protocol version";

/// Introduces the runner's list of versions at the end of an
/// unsupported-version refusal.
pub const SPEAKS_VERSIONS: &str = "this vp speaks versions: ";

/// The versions a runner's unsupported-version refusal lists, or `None` when
/// `message` is not such a refusal.
pub fn refused_version_list(message: &str) -> Option<Vec<u32>> {
    if !message.starts_with(UNSUPPORTED_VERSION_PREFIX) {
        return None;
    }
    let list = message
        .rfind(SPEAKS_VERSIONS)
        .map(|at| &message[at + SPEAKS_VERSIONS.len()..])
        .unwrap_or("");
    Some(
        list.split(',')
            .filter_map(|v| v.trim().parse::<u32>().ok())
            .collect(),
    )
}

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
    ///
    /// Its encoding is the same in every protocol version (variant 0 with
    /// these four fields), so any runner can read any client's Hello and
    /// answer it, also when the version is one it does not speak.
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

/// Which environment variable names a [`Request::GetEnvs`] selects; compile it
/// with [`EnvQuery::matcher`], the one rule every party applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EnvQuery {
    /// A glob over the whole name (`*`, `?`, `[a-z]`, `{a,b}`, `\x`), e.g.
    /// `VITE_*`; bytes, like names.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_refusal_lists_the_runners_versions() {
        assert_eq!(
            refused_version_list(
                "unsupported protocol version 3 from esbuild (pid 12); this vp speaks versions: 2, 1"
            ),
            Some(vec![2, 1])
        );
        assert_eq!(
            refused_version_list("unsupported protocol version 3"),
            Some(vec![])
        );
        assert_eq!(refused_version_list("wrong task token"), None);
    }
}

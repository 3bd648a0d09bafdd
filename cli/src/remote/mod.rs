//! The remote cache: sharing task results between machines through a
//! server that speaks the Turborepo remote-cache API v8 (Vercel, or the
//! open-source `turborepo-remote-cache`). `config` resolves the settings,
//! `client` is the HTTP client and the per-run `RemoteSession`, `sign` the
//! optional HMAC tags, `artifact` the two artifact formats, and `transfer`
//! the two operations the runner calls: `fetch_run` after a local miss and
//! `upload_run` after a stored run. Blocking throughout: the runner calls it
//! through `blocking::unblock`. See `docs/remote-cache.md`.

// Until `run/` calls it (the next phase), the binary uses none of this; the
// allow also keeps the cache items only this module uses from warning.
#![allow(dead_code, reason = "run/ wires the remote cache in the next phase")]

mod artifact;
mod client;
mod config;
mod sign;
mod transfer;

#[cfg(test)]
mod server_tests;

// The runner's API; `run/` wires it in the next phase.
#[allow(unused_imports, reason = "the runner's API (run/ wires it)")]
pub(crate) use self::{
    client::{RemoteError, RemoteSession, SessionError, TransferStats},
    config::{RemoteConfig, RemoteConfigError, RemoteInputs, RemoteMode},
    transfer::{
        ConnectionCheck, FetchOutcome, FetchRequest, Fetched, Rejection, RemoteMiss, UploadOutcome,
        UploadRequest, UploadSkipped, check_connection, fetch_run, upload_run,
    },
};

//! The remote cache: sharing task results between machines through a
//! server that speaks the Turborepo remote-cache API v8 (Vercel, or the
//! open-source `turborepo-remote-cache`). `config` resolves the settings,
//! `client` is the HTTP client and the per-run `RemoteSession`, `sign` the
//! optional HMAC tags, `artifact` the two artifact formats, and `transfer`
//! the two operations the runner calls: `fetch_run` after a local miss and
//! `upload_run` after a stored run. Blocking throughout: the runner calls it
//! through `blocking::unblock`. See `docs/remote-cache.md`.

mod artifact;
mod client;
mod config;
mod sign;
mod transfer;

#[cfg(test)]
mod server_tests;

// What `run/` and `vp cache` call.
pub(crate) use self::{
    client::{RemoteError, RemoteSession, SessionError, TransferStats},
    config::{RemoteConfig, RemoteInputs, RemoteMode},
    transfer::{
        FetchOutcome, FetchRequest, RemoteMiss, UploadOutcome, UploadRequest, UploadSkipped,
        check_connection, fetch_run, upload_run,
    },
};

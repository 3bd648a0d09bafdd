//! The task cache: fingerprints, the RocksDB store, output archiving and
//! restoring, eviction, and `vp cache`. The runner (`run/`) builds a
//! `SpawnFingerprint` before a command runs, calls `Store::lookup`, and on a
//! hit `Store::restore`; after a successful miss it maps tracer and bridge
//! results into an `ObservedRun` and calls `Store::record`. Everything here
//! is synchronous; see `docs/caching.md` for the semantics. For the remote
//! cache (`remote/`) it also computes the portable key (`portable`) and
//! imports downloaded results (`Store::import`).

mod clock;
mod codec;
mod collect;
pub(crate) mod command;
mod digest;
mod entry;
mod env;
mod error;
mod file_state;
mod fingerprint;
mod globs;
mod miss;
pub(crate) mod paths;
mod portable;
pub(crate) mod prehash;
mod programs;
mod restore;
mod settings;
mod size;
mod store;
pub(crate) mod tool_cache;

// What the runner, the remote cache and `vp cache` use.
pub(crate) use self::{
    clock::Timestamp,
    codec::{decode as decode_persisted, encode as encode_persisted},
    collect::{NotStorable, TaskPaths, declared_input, own_listings},
    digest::Digest,
    entry::{CacheEntry, EntryKey, InputKind, InputState, LogChunk, Stamp, Stream},
    env::{EnvView, query_selects},
    error::CacheError,
    file_state::observe,
    fingerprint::{GlobConfig, SpawnFingerprint, SpawnSpec},
    globs::{Exclusions, TaskGlobs, first_outside as first_glob_outside},
    miss::{MissReason, MissReasons},
    paths::{RelPath, UnsafePath},
    portable::{NotPortable, PortableKey},
    settings::{CacheSettings, default_cache_dir, requested_dir},
    size::{format_size, parse_size},
    store::Store,
    store::access::{LockWait, Release},
    store::import::ImportRequest,
    store::layout::CacheDir,
    store::lookup::{LookupOutcome, LookupRequest},
    store::nesting::{CachedBy, Kin, OuterCaching},
    store::open::{Opened, StoreNotice, open},
    store::read_only::{ReadOnly, open_read_only},
    store::record::{ObservedRun, RecordOutcome, RecordRequest, StoredSummary},
    store::state::OwnState,
};
#[cfg(test)]
pub(crate) use self::{entry::OutputState, store::open::open_for_test};

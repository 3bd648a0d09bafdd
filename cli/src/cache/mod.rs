//! The task cache: fingerprints, the RocksDB store, output archiving and
//! restoring, eviction, and `vp cache`. The runner (`run/`) builds a
//! `SpawnFingerprint` before a command runs, calls `Store::lookup`, and on a
//! hit `Store::restore`; after a successful miss it maps tracer and bridge
//! results into an `ObservedRun` and calls `Store::record`. Everything here
//! is synchronous; see `docs/caching.md` for the semantics.

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
mod paths;
mod restore;
mod settings;
mod size;
mod store;

pub(crate) use clock::Timestamp;
pub(crate) use collect::{NotStorable, TaskPaths};
pub(crate) use entry::{InputKind, LogChunk, Stream};
pub(crate) use env::{EnvQuery, EnvView, is_secret_name};
pub(crate) use error::CacheError;
pub(crate) use fingerprint::{GlobConfig, SpawnFingerprint, SpawnSpec};
pub(crate) use miss::{MissReason, MissReasons};
pub(crate) use paths::RelPath;
pub(crate) use restore::{RestoreError, RestoreReport};
pub(crate) use settings::{CacheSettings, default_cache_dir};
pub(crate) use size::{DEFAULT_MAX_SIZE, format_size, parse_size};
pub(crate) use store::Store;
pub(crate) use store::evict::{CacheStats, PruneReport};
pub(crate) use store::lookup::{CacheHit, LookupOutcome, LookupRequest};
pub(crate) use store::open::{OpenOptions, Opened, StoreNotice, open};
pub(crate) use store::record::{ObservedRun, RecordOutcome, RecordRequest, StoredSummary};

//! [`BridgeReport`]: everything a task's tools said over the bridge, built
//! up by the connections of one `BridgeSession` and handed to the runner
//! when the task is over. It is plain data: `run::admit` decides from it
//! whether the run may be stored, the cache records its env fields, and
//! `vp run -v` shows it through `report::bridge_facts`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;

use vp_ipc::EnvQuery;

/// A tracked `GetEnvs` query and the match-set that was served for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackedQuery {
    pub(crate) query: EnvQuery,
    /// Name → value served (untracked names already excluded).
    pub(crate) matches: BTreeMap<OsString, OsString>,
}

/// What the tools of one task execution reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BridgeReport {
    /// Every client that connected, as `"<name> (pid <n>)"`, in order.
    pub(crate) clients: Vec<String>,
    /// Absolute paths whose subtrees are not inputs.
    pub(crate) ignored_inputs: BTreeSet<PathBuf>,
    /// Absolute paths whose subtrees are not outputs.
    pub(crate) ignored_outputs: BTreeSet<PathBuf>,
    /// The first client that asked not to cache this run.
    pub(crate) cache_disabled_by: Option<String>,
    /// Tracked `GetEnv` names → value served (`None`: the variable was unset).
    pub(crate) tracked_envs: BTreeMap<OsString, Option<OsString>>,
    /// Tracked `GetEnvs` queries with their match-sets, each query once.
    pub(crate) env_queries: Vec<TrackedQuery>,
    /// Names served but not tracked (asked with `tracked: false`, or
    /// untracked by configuration, which wins over the tool).
    pub(crate) untracked_env_reads: BTreeSet<OsString>,
    /// Broken clients (bad frame, wrong token, a stream that is not a unix
    /// stream socket, ...). Any entry
    /// makes the run not cacheable; each line says why.
    pub(crate) protocol_errors: Vec<String>,
    /// Clients still connected when the drain after the task's end timed
    /// out (a daemonized grandchild); whatever they say later is lost.
    pub(crate) lingering_clients: Vec<String>,
    /// Hellos refused because they asked for a protocol version this vp
    /// does not speak (the first step of version negotiation, not an error
    /// by itself), as `"<client> (pid <n>) asked for protocol version <v>"`.
    pub(crate) version_refusals: Vec<String>,
    /// Clients refused a version that never connected afterwards with one
    /// this vp speaks: what they meant to report is unknown, so the run is
    /// not cacheable.
    pub(crate) unnegotiated_clients: Vec<String>,
}

//! Observing a process tree's file accesses with seccomp user notification.
//! `spawn_traced` starts a command with the filter and a supervisor task
//! (`Trace`) on the event loop; `Trace::finish` yields the ordered
//! `AccessLog`; `classify` turns it into inputs, outputs, temporaries and
//! conflicts for the cache. `vp trace` (`command.rs`) shows the result.
//! Used by `run/` (spawn path) and `cache/` (classification).

mod classify;
pub(crate) mod command;
mod decode;
mod filter;
mod handshake;
mod in_process;
mod install;
mod log;
mod notify;
mod report;
mod resolve;
mod spawn;
mod supervisor;
mod tracee;

#[allow(unused_imports)]
pub(crate) use classify::{
    AccessClassification, ClassifyOptions, Found, InputAccess, OutputKind, ToolCaches, classify,
};
#[allow(unused_imports)]
pub(crate) use in_process::{
    SWITCH_VAR as IN_PROCESS_SWITCH, library_for_run as in_process_library,
};
#[allow(unused_imports)]
pub(crate) use log::{
    Access, AccessLog, CallCounts, EndStamps, Looked, Op, PathKind, PathMap, path_order,
};
#[allow(unused_imports)]
pub(crate) use spawn::{
    ChildStdio, InProcess, Reads, SpawnError, Trace, TraceOutcome, spawn_traced,
};

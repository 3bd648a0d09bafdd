//! The runner's side of the bridge: per task execution a
//! [`BridgeSession`] hands the child an inherited broker fd, serves every
//! client that connects (answering env requests from vp's full
//! environment), and returns a [`BridgeReport`] of what the task's tools
//! said. `addon` embeds the Node addon children load.
//! Used by `run/` (spawn path) and, for `vp run -v`, `report/`.

mod addon;
mod broker;
mod connection;
mod env_answer;
mod report;
mod session;

#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod transport_tests;

pub(crate) use addon::ADDON;
#[allow(unused_imports)]
pub(crate) use env_answer::UntrackedPolicy;
#[allow(unused_imports)]
pub(crate) use report::{BridgeReport, TrackedQuery};
#[allow(unused_imports)]
pub(crate) use session::{BridgeContext, BridgeSession, DEFAULT_DRAIN_TIMEOUT};

//! The third stage of a command: may what was observed be stored?
//!
//! Every rule lives in [`admit`], a pure function of the [`Observation`] and
//! the task's declared globs: no I/O, no clock, so each rule has a unit test
//! with a hand-built observation. What it returns is either the run in the
//! shape the store records, or the one [`NotCached`] reason the user reads.
//! (The store adds its own checks that need the file system — an input
//! changed while the task ran, an output unreadable — as
//! `NotCached::Store`.)

use std::path::Path;

use super::execute::{Observation, Traced};
use super::task::TaskSpec;
use crate::bridge::BridgeReport;
use crate::cache;
use crate::events::NotCached;
use crate::trace;

/// A run [`admit`] accepted, in the form `cache::Store::record` takes. Only
/// `admit` builds one, so nothing reaches the store unchecked.
#[derive(Debug)]
pub(crate) struct AdmittedRun(cache::ObservedRun);

impl AdmittedRun {
    pub(crate) fn observed(&self) -> &cache::ObservedRun {
        &self.0
    }
}

/// Where the workspace is, to name paths in reasons as the user sees them.
pub(crate) struct Roots<'a> {
    /// As the user spelled it.
    pub(crate) root: &'a Path,
    /// With symlinks resolved, as the tracer reports paths.
    pub(crate) real_root: &'a Path,
}

/// Decides whether the observed run of one command of `spec` is stored.
pub(crate) fn admit(
    obs: &Observation,
    spec: &TaskSpec,
    roots: &Roots<'_>,
) -> Result<AdmittedRun, NotCached> {
    if obs.cancelled {
        return Err(NotCached::Cancelled);
    }
    if obs.exit_code != 0 {
        return Err(NotCached::Failed {
            code: obs.exit_code,
        });
    }
    if let Some(veto) = obs.bridge.as_ref().and_then(bridge_veto) {
        return Err(veto);
    }
    let mut run = cache::ObservedRun {
        path_var: spec.path_var().map(std::ffi::OsStr::to_os_string),
        log: obs.log.clone(),
        started: obs.started,
        duration: obs.duration,
        prehashed: std::sync::Arc::clone(&obs.prehashed),
        end_stamps: std::sync::Arc::clone(&obs.end_stamps),
        ..Default::default()
    };
    if let Some(r) = &obs.bridge {
        run.ignored_inputs = r.ignored_inputs.iter().cloned().collect();
        run.ignored_outputs = r.ignored_outputs.iter().cloned().collect();
        run.tracked_env = r.tracked_envs.clone();
        run.env_queries = r
            .env_queries
            .iter()
            .map(|q| (q.query.clone(), q.matches.clone()))
            .collect();
    }
    let needs_trace = spec.inputs.auto || spec.outputs.auto;
    match &obs.trace {
        Traced::Off => {}
        Traced::Untraced { reason } if needs_trace => {
            return Err(NotCached::Untraced {
                reason: reason.clone(),
            });
        }
        Traced::Untraced { .. } => {}
        Traced::Classified(c) => {
            if let Some(p) = c.modified_inputs.first() {
                return Err(NotCached::ModifiedInput {
                    path: workspace_relative(roots, p),
                });
            }
            if let Some(why) = c.untraceable.first()
                && needs_trace
            {
                return Err(NotCached::PartlyTraced { why: why.clone() });
            }
            // Declared outputs are the user's word on what a hit restores.
            if let Some(first) = c.written_outside.first()
                && spec.outputs.auto
            {
                return Err(NotCached::WroteOutside {
                    path: first.clone(),
                    more: c.written_outside.len() - 1,
                });
            }
            if spec.inputs.auto {
                run.removed = c.deleted.iter().cloned().collect();
                let ignored_outputs = obs.bridge.as_ref().map(|r| &r.ignored_outputs);
                run.own_listings = cache::own_listings(c, ignored_outputs.into_iter().flatten());
                run.executed = c.programs.clone().into_iter().collect();
                run.inputs = c
                    .inputs
                    .iter()
                    .map(|(p, access)| (p.clone(), input_kind(access)))
                    .collect();
            }
            run.emptied_dirs = c.emptied_dirs.iter().cloned().collect();
            run.looked_first = c.looked_first.iter().cloned().collect();
            if spec.outputs.auto {
                run.outputs = c
                    .outputs
                    .iter()
                    .filter(|(_, k)| **k != trace::OutputKind::Other)
                    .map(|(p, _)| p.clone())
                    .collect();
            }
        }
    }
    Ok(AdmittedRun(run))
}

/// Why the bridge forbids storing the run: something it could not trust
/// outranks a tool's request.
pub(crate) fn bridge_veto(report: &BridgeReport) -> Option<NotCached> {
    if let Some(first) = report.protocol_errors.first() {
        return Some(NotCached::BridgeProtocol {
            first: first.clone(),
            more: report.protocol_errors.len() - 1,
        });
    }
    if let Some(first) = report.unnegotiated_clients.first() {
        return Some(NotCached::BridgeVersion {
            first: first.clone(),
            more: report.unnegotiated_clients.len() - 1,
        });
    }
    if let Some(who) = &report.cache_disabled_by {
        return Some(NotCached::ToolAsked { by: who.clone() });
    }
    if !report.lingering_clients.is_empty() {
        return Some(NotCached::LingeringClients {
            clients: report.lingering_clients.clone(),
        });
    }
    None
}

/// How the store fingerprints an input the tracer saw.
fn input_kind(access: &trace::InputAccess) -> cache::InputKind {
    match access {
        // A stat'ed file is fingerprinted by content: size and mtime reached
        // the tool (see `InputAccess::Metadata`).
        trace::InputAccess::ContentRead | trace::InputAccess::Metadata => {
            cache::InputKind::ContentRead
        }
        trace::InputAccess::Listing => cache::InputKind::Listing,
        trace::InputAccess::Probe { .. } | trace::InputAccess::Symlink { .. } => {
            cache::InputKind::Probe
        }
    }
}

fn workspace_relative(roots: &Roots<'_>, p: &Path) -> String {
    p.strip_prefix(roots.real_root)
        .or_else(|_| p.strip_prefix(roots.root))
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;

//! [`BridgeReport`]: everything a task's tools said over the bridge, built
//! up by the connections of one `BridgeSession` and handed to the runner
//! when the task is over. The cache consumes the fields; `vp run -v` prints
//! [`BridgeReport::render`]. Values of env variables are never rendered
//! (they may be secrets), only names.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
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

impl BridgeReport {
    /// Why this run must not be stored, if a tool asked for that or the
    /// bridge saw something it could not trust.
    pub(crate) fn uncacheable_reason(&self) -> Option<String> {
        if let Some(first) = self.protocol_errors.first() {
            let more = self.protocol_errors.len() - 1;
            return Some(if more == 0 {
                format!("bridge protocol error: {first}")
            } else {
                format!("bridge protocol error: {first} (and {more} more)")
            });
        }
        if let Some(first) = self.unnegotiated_clients.first() {
            let more = self.unnegotiated_clients.len() - 1;
            return Some(if more == 0 {
                format!("bridge version mismatch: {first}")
            } else {
                format!("bridge version mismatch: {first} (and {more} more)")
            });
        }
        if let Some(who) = &self.cache_disabled_by {
            return Some(format!("{who} asked not to cache this run"));
        }
        if !self.lingering_clients.is_empty() {
            return Some(format!(
                "{} kept talking to vp after the task ended",
                self.lingering_clients.join(", ")
            ));
        }
        None
    }

    /// Human lines for `vp run -v`, one fact per line, no trailing newline.
    pub(crate) fn render(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for refusal in &self.version_refusals {
            lines.push(format!("bridge: {refusal}, which this vp does not speak"));
        }
        for client in &self.clients {
            lines.push(format!("bridge: {client} connected"));
        }
        for path in &self.ignored_inputs {
            lines.push(format!("bridge: ignore input {}", path.display()));
        }
        for path in &self.ignored_outputs {
            lines.push(format!("bridge: ignore output {}", path.display()));
        }
        if let Some(who) = &self.cache_disabled_by {
            lines.push(format!("bridge: cache disabled by {who}"));
        }
        for (name, value) in &self.tracked_envs {
            let state = if value.is_some() { "set" } else { "unset" };
            lines.push(format!("bridge: tracked env {} ({state})", show(name)));
        }
        for tracked in &self.env_queries {
            lines.push(format!(
                "bridge: tracked env query {} matched {}",
                show_query(&tracked.query),
                list_names(tracked.matches.keys())
            ));
        }
        if !self.untracked_env_reads.is_empty() {
            lines.push(format!(
                "bridge: read untracked env {}",
                list_names(self.untracked_env_reads.iter())
            ));
        }
        for err in &self.protocol_errors {
            lines.push(format!("bridge: protocol error: {err}"));
        }
        for client in &self.unnegotiated_clients {
            lines.push(format!("bridge: {client}"));
        }
        for client in &self.lingering_clients {
            lines.push(format!(
                "bridge: {client} was still connected after the task ended"
            ));
        }
        lines
    }
}

fn show(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

pub(crate) fn show_query(query: &EnvQuery) -> String {
    let text = String::from_utf8_lossy(query.pattern());
    match query {
        EnvQuery::Glob(_) => format!("glob `{text}`"),
        EnvQuery::Prefix(_) => format!("prefix `{text}`"),
    }
}

/// `nothing`, or up to 8 names then `and N more`.
fn list_names<'a>(names: impl ExactSizeIterator<Item = &'a OsString>) -> String {
    const SHOWN: usize = 8;
    let total = names.len();
    if total == 0 {
        return "nothing".to_owned();
    }
    let mut text = names
        .take(SHOWN)
        .map(|n| show(n))
        .collect::<Vec<_>>()
        .join(", ");
    if total > SHOWN {
        text.push_str(&format!(" and {} more", total - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_report_renders_nothing_and_is_cacheable() {
        let report = BridgeReport::default();
        assert!(report.render().is_empty());
        assert_eq!(report.uncacheable_reason(), None);
    }

    #[test]
    fn render_lists_every_fact_without_env_values() {
        let mut report = BridgeReport {
            clients: vec!["node vite.js (pid 4)".into()],
            cache_disabled_by: Some("node vite.js (pid 4)".into()),
            ..BridgeReport::default()
        };
        report.ignored_inputs.insert("/w/node_modules/.vite".into());
        report.ignored_outputs.insert("/w/.cache".into());
        report
            .tracked_envs
            .insert("NODE_ENV".into(), Some("secret-value".into()));
        report.tracked_envs.insert("MISSING".into(), None);
        report.env_queries.push(TrackedQuery {
            query: EnvQuery::Prefix(b"VITE_".to_vec()),
            matches: (0..10)
                .map(|i| (OsString::from(format!("VITE_{i}")), OsString::from("v")))
                .collect(),
        });
        report.untracked_env_reads.insert("HOME".into());
        report.protocol_errors.push("frame too large".into());
        report.lingering_clients.push("daemon (pid 9)".into());
        let text = report.render().join("\n");
        assert_eq!(
            text,
            "bridge: node vite.js (pid 4) connected\n\
             bridge: ignore input /w/node_modules/.vite\n\
             bridge: ignore output /w/.cache\n\
             bridge: cache disabled by node vite.js (pid 4)\n\
             bridge: tracked env MISSING (unset)\n\
             bridge: tracked env NODE_ENV (set)\n\
             bridge: tracked env query prefix `VITE_` matched VITE_0, VITE_1, VITE_2, VITE_3, VITE_4, VITE_5, VITE_6, VITE_7 and 2 more\n\
             bridge: read untracked env HOME\n\
             bridge: protocol error: frame too large\n\
             bridge: daemon (pid 9) was still connected after the task ended"
        );
        assert!(!text.contains("secret-value"));
    }

    #[test]
    fn a_negotiated_version_is_cacheable_a_failed_negotiation_is_not() {
        let mut report = BridgeReport {
            version_refusals: vec!["future (pid 3) asked for protocol version 99".into()],
            clients: vec!["future (pid 3)".into()],
            ..BridgeReport::default()
        };
        assert_eq!(report.uncacheable_reason(), None);
        assert_eq!(
            report.render(),
            [
                "bridge: future (pid 3) asked for protocol version 99, which this vp does not speak",
                "bridge: future (pid 3) connected"
            ]
        );
        report.unnegotiated_clients = vec![
            "future (pid 3) asked for protocol version 99 and never connected with a version this vp speaks".into(),
        ];
        assert_eq!(
            report.uncacheable_reason().as_deref(),
            Some(
                "bridge version mismatch: future (pid 3) asked for protocol version 99 and never connected with a version this vp speaks"
            )
        );
    }

    #[test]
    fn protocol_errors_outrank_other_reasons() {
        let mut report = BridgeReport {
            cache_disabled_by: Some("vite (pid 1)".into()),
            ..BridgeReport::default()
        };
        assert_eq!(
            report.uncacheable_reason().as_deref(),
            Some("vite (pid 1) asked not to cache this run")
        );
        report.protocol_errors = vec!["a".into(), "b".into()];
        assert_eq!(
            report.uncacheable_reason().as_deref(),
            Some("bridge protocol error: a (and 1 more)")
        );
    }
}

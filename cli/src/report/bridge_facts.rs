//! What `vp run -v` says about a task's bridge: one line per fact its tools
//! reported. Values of env variables are never shown (they may be secrets),
//! only names.

use std::ffi::{OsStr, OsString};

use vp_ipc::EnvQuery;

use crate::bridge::BridgeReport;

/// Human lines, one fact per line, no trailing newline.
pub(crate) fn lines(report: &BridgeReport) -> Vec<String> {
    let mut lines = Vec::new();
    for refusal in &report.version_refusals {
        lines.push(format!("bridge: {refusal}, which this vp does not speak"));
    }
    for client in &report.clients {
        lines.push(format!("bridge: {client} connected"));
    }
    for path in &report.ignored_inputs {
        lines.push(format!("bridge: ignore input {}", path.display()));
    }
    for path in &report.ignored_outputs {
        lines.push(format!("bridge: ignore output {}", path.display()));
    }
    if let Some(who) = &report.cache_disabled_by {
        lines.push(format!("bridge: cache disabled by {who}"));
    }
    for (name, value) in &report.tracked_envs {
        let state = if value.is_some() { "set" } else { "unset" };
        lines.push(format!("bridge: tracked env {} ({state})", show(name)));
    }
    for tracked in &report.env_queries {
        lines.push(format!(
            "bridge: tracked env query {} matched {}",
            show_query(&tracked.query),
            list_names(tracked.matches.keys())
        ));
    }
    if !report.untracked_env_reads.is_empty() {
        lines.push(format!(
            "bridge: read untracked env {}",
            list_names(report.untracked_env_reads.iter())
        ));
    }
    for err in &report.protocol_errors {
        lines.push(format!("bridge: protocol error: {err}"));
    }
    for client in &report.unnegotiated_clients {
        lines.push(format!("bridge: {client}"));
    }
    for client in &report.lingering_clients {
        lines.push(format!(
            "bridge: {client} was still connected after the task ended"
        ));
    }
    lines
}

fn show(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

fn show_query(query: &EnvQuery) -> String {
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
    use crate::bridge::TrackedQuery;

    #[test]
    fn an_empty_report_says_nothing() {
        assert!(lines(&BridgeReport::default()).is_empty());
    }

    #[test]
    fn every_fact_is_listed_without_env_values() {
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
        let text = lines(&report).join("\n");
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
    fn a_version_refusal_is_explained() {
        let report = BridgeReport {
            version_refusals: vec!["future (pid 3) asked for protocol version 99".into()],
            clients: vec!["future (pid 3)".into()],
            ..BridgeReport::default()
        };
        assert_eq!(
            lines(&report),
            [
                "bridge: future (pid 3) asked for protocol version 99, which this vp does not speak",
                "bridge: future (pid 3) connected"
            ]
        );
    }
}

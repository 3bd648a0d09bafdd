//! Unit tests of `run::admit`.

use super::*;
use std::path::PathBuf;
use std::time::Duration;

fn classified(c: trace::AccessClassification) -> Traced {
    Traced::Classified(Box::new(c))
}

use crate::cache::GlobConfig;
use crate::run::env::{EnvPolicy, Framework};

fn spec(inputs: GlobConfig, outputs: GlobConfig) -> TaskSpec {
    TaskSpec {
        label: "app#build".into(),
        items: Vec::new(),
        display: None,
        package_dir: "/w/app".into(),
        cwd: "/w/app".into(),
        header_cwd: "~/app".into(),
        env_policy: EnvPolicy::new("app#build", &[], &[], Framework::Plain).expect("empty policy"),
        child_env: Vec::new(),
        cache_enabled: true,
        uncached_by_default: false,
        inputs,
        outputs,
        interactive: false,
    }
}

fn auto() -> TaskSpec {
    spec(GlobConfig::auto(), GlobConfig::auto())
}

fn declared() -> TaskSpec {
    let globs = |g: &str| GlobConfig {
        auto: false,
        globs: vec![g.into()],
    };
    spec(globs("src/**"), globs("dist/**"))
}

fn observation(trace: Traced) -> Observation {
    Observation {
        exit_code: 0,
        cancelled: false,
        log: vec![cache::LogChunk {
            stream: cache::Stream::Stdout,
            bytes: b"built\n".to_vec(),
        }],
        bridge: None,
        trace,
        started: cache::Timestamp::default(),
        duration: Duration::from_millis(5),
        after_exit: None,
        prehashed: Default::default(),
        end_stamps: Default::default(),
    }
}

fn roots() -> Roots<'static> {
    Roots {
        root: Path::new("/w"),
        real_root: Path::new("/real/w"),
    }
}

fn classification() -> trace::AccessClassification {
    let mut c = trace::AccessClassification::default();
    c.inputs.insert(
        "/real/w/app/src/a.ts".into(),
        trace::InputAccess::ContentRead,
    );
    c.inputs
        .insert("/real/w/app/src".into(), trace::InputAccess::Listing);
    c.outputs
        .insert("/real/w/app/dist/a.js".into(), trace::OutputKind::File);
    c.outputs
        .insert("/real/w/app/.tmp".into(), trace::OutputKind::Other);
    c.emptied_dirs.insert("/real/w/app/dist".into());
    c
}

fn rejected(obs: &Observation, spec: &TaskSpec) -> NotCached {
    admit(obs, spec, &roots()).expect_err("must not be stored")
}

#[test]
fn a_clean_traced_run_is_stored_with_what_the_tracer_saw() {
    let run = admit(
        &observation(classified(classification())),
        &auto(),
        &roots(),
    )
    .expect("stored");
    let run = run.observed();
    assert_eq!(
        run.inputs,
        [
            (PathBuf::from("/real/w/app/src"), cache::InputKind::Listing),
            (
                PathBuf::from("/real/w/app/src/a.ts"),
                cache::InputKind::ContentRead
            ),
        ]
    );
    // `Other` outputs (a directory whose entries are outputs) are not
    // archived themselves.
    assert_eq!(run.outputs, [PathBuf::from("/real/w/app/dist/a.js")]);
    assert_eq!(run.emptied_dirs, [PathBuf::from("/real/w/app/dist")]);
    assert_eq!(run.log.len(), 1);
    assert_eq!(run.duration, Duration::from_millis(5));
}

#[test]
fn a_cancelled_run_is_never_stored() {
    let mut obs = observation(classified(classification()));
    obs.cancelled = true;
    assert_eq!(rejected(&obs, &auto()), NotCached::Cancelled);
}

#[test]
fn a_failed_run_is_never_stored() {
    let mut obs = observation(classified(classification()));
    obs.exit_code = 2;
    assert_eq!(rejected(&obs, &auto()), NotCached::Failed { code: 2 });
}

#[test]
fn a_tool_can_ask_not_to_cache() {
    let mut obs = observation(classified(classification()));
    obs.bridge = Some(BridgeReport {
        cache_disabled_by: Some("vite (pid 4)".into()),
        ..BridgeReport::default()
    });
    assert_eq!(
        rejected(&obs, &auto()),
        NotCached::ToolAsked {
            by: "vite (pid 4)".into()
        }
    );
}

#[test]
fn a_protocol_error_outranks_a_tools_request() {
    let report = BridgeReport {
        cache_disabled_by: Some("vite (pid 1)".into()),
        protocol_errors: vec!["a".into(), "b".into()],
        ..BridgeReport::default()
    };
    assert_eq!(
        bridge_veto(&report),
        Some(NotCached::BridgeProtocol {
            first: "a".into(),
            more: 1
        })
    );
}

#[test]
fn a_client_that_never_agreed_on_a_version_vetoes() {
    let report = BridgeReport {
        version_refusals: vec!["future (pid 3) asked for protocol version 99".into()],
        clients: vec!["future (pid 3)".into()],
        ..BridgeReport::default()
    };
    assert_eq!(bridge_veto(&report), None, "a refusal alone is negotiation");
    let report = BridgeReport {
        unnegotiated_clients: vec!["future (pid 3) never connected".into()],
        ..report
    };
    assert_eq!(
        bridge_veto(&report),
        Some(NotCached::BridgeVersion {
            first: "future (pid 3) never connected".into(),
            more: 0
        })
    );
}

#[test]
fn a_client_still_talking_after_the_end_vetoes() {
    let mut obs = observation(classified(classification()));
    obs.bridge = Some(BridgeReport {
        lingering_clients: vec!["daemon (pid 9)".into()],
        ..BridgeReport::default()
    });
    assert_eq!(
        rejected(&obs, &auto()),
        NotCached::LingeringClients {
            clients: vec!["daemon (pid 9)".into()]
        }
    );
}

#[test]
fn the_bridge_facts_are_recorded() {
    let mut obs = observation(classified(classification()));
    let mut report = BridgeReport::default();
    report
        .ignored_inputs
        .insert("/w/app/node_modules/.vite".into());
    report
        .tracked_envs
        .insert("NODE_ENV".into(), Some("production".into()));
    obs.bridge = Some(report);
    let run = admit(&obs, &auto(), &roots()).expect("stored");
    assert_eq!(
        run.observed().ignored_inputs,
        [PathBuf::from("/w/app/node_modules/.vite")]
    );
    assert_eq!(run.observed().tracked_env.len(), 1);
}

#[test]
fn an_untraced_run_is_stored_only_with_declared_globs() {
    let obs = observation(Traced::Untraced {
        reason: "seccomp is unavailable".into(),
    });
    assert_eq!(
        rejected(&obs, &auto()),
        NotCached::Untraced {
            reason: "seccomp is unavailable".into()
        }
    );
    let run = admit(&obs, &declared(), &roots()).expect("declared globs need no trace");
    assert!(run.observed().inputs.is_empty());
}

#[test]
fn a_partly_traced_run_is_stored_only_with_declared_globs() {
    let mut c = classification();
    c.untraceable.push("an unknown syscall".into());
    let obs = observation(classified(c));
    assert_eq!(
        rejected(&obs, &auto()),
        NotCached::PartlyTraced {
            why: "an unknown syscall".into()
        }
    );
    assert!(admit(&obs, &declared(), &roots()).is_ok());
}

#[test]
fn a_run_that_modified_its_input_is_not_stored_whatever_the_globs() {
    let mut c = classification();
    c.modified_inputs.push("/real/w/app/src/a.ts".into());
    let obs = observation(classified(c));
    let expected = NotCached::ModifiedInput {
        path: "app/src/a.ts".into(),
    };
    assert_eq!(rejected(&obs, &auto()), expected);
    assert_eq!(rejected(&obs, &declared()), expected);
}

/// Probe: `outDir: '../public'` was stored, and a hit after the directory
/// was removed replayed "built" and restored nothing.
#[test]
fn a_run_that_wrote_beside_the_workspace_is_not_stored_unless_outputs_are_declared() {
    let mut c = classification();
    c.written_outside.push("/real/public/index.html".into());
    c.written_outside.push("/real/public/app.js".into());
    let obs = observation(classified(c));
    assert_eq!(
        rejected(&obs, &auto()),
        NotCached::WroteOutside {
            path: "/real/public/index.html".into(),
            more: 1,
        }
    );
    assert!(admit(&obs, &declared(), &roots()).is_ok());
}

#[test]
fn declared_globs_take_nothing_from_the_trace() {
    let run = admit(
        &observation(classified(classification())),
        &declared(),
        &roots(),
    )
    .expect("stored");
    assert!(run.observed().inputs.is_empty());
    assert!(run.observed().outputs.is_empty());
}

#[test]
fn a_path_outside_the_workspace_is_named_in_full() {
    assert_eq!(
        workspace_relative(&roots(), Path::new("/etc/hosts")),
        "/etc/hosts"
    );
    assert_eq!(workspace_relative(&roots(), Path::new("/w/a")), "a");
}

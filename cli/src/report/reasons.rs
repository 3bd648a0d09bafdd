//! vp's decisions in words: why a command missed, why the cache is
//! unavailable, why a run was not stored, how a command failed, and the
//! notices about a task or the run. The runner only sends these as typed
//! values (`crate::events`); this is the one place that phrases them.

use crate::events::{Failure, Miss, NotCached, RunNotice, TaskNotice, Unavailable};

use super::bridge_facts;
use super::format::format_duration;
use crate::cache::{Kin, OuterCaching, format_size};

/// How many miss reasons a header shows before "and N more".
const MISS_REASON_LIMIT: usize = 8;

/// The middle of `○ cache miss: …, executing`; `None` for a first run.
pub(crate) fn miss(m: &Miss) -> Option<String> {
    match m {
        Miss::FirstRun => None,
        Miss::Changed { reasons, base } => {
            Some(reasons.display(base, MISS_REASON_LIMIT).to_string())
        }
        Miss::RestoreFailed { error } => Some(format!(
            "its stored outputs could not be restored ({error})"
        )),
    }
}

/// Why the cache is unavailable, as a clause.
pub(crate) fn unavailable(u: &Unavailable) -> String {
    match u {
        // Told apart as the wait notice tells them (the holder is read
        // from the process tree now: it held the lock a moment ago).
        Unavailable::Locked { holder: Some(pid) } => {
            let kin = Kin::of(*pid);
            let beside = match kin {
                Kin::Parent => " for a task beside the one this vp runs in",
                Kin::Other | Kin::Child => "",
            };
            format!("{} (pid {pid}) holds the cache lock{beside}", kin.holder())
        }
        Unavailable::Locked { holder: None } => "another vp holds the cache lock".to_owned(),
        Unavailable::HeldByAncestor {
            holder,
            why: OuterCaching::Listed,
        } => format!(
            "the vp that started this one (pid {holder}) holds the cache; the outer task caches this run"
        ),
        Unavailable::HeldByAncestor {
            holder,
            why: OuterCaching::Assumed { below },
        } => {
            let var = crate::cache::CachedBy::VAR;
            let whom = if *below == std::process::id() {
                "this vp".to_owned()
            } else {
                format!("the vp above this one with pid {below}")
            };
            format!(
                "the vp that started this one (pid {holder}) holds the cache, and {var} did not \
                 reach {whom} to say whether its task caches this run (removed on the way, or \
                 the vp above predates it); taken as cached by the outer task"
            )
        }
        Unavailable::OpenFailed { dir, error } => format!(
            "the cache at `{}` could not be opened: {error}",
            dir.display()
        ),
        Unavailable::ReadFailed { error } => format!("the cache could not be read: {error}"),
        Unavailable::NotOpened => "caching is off".to_owned(),
    }
}

/// Why a run was not stored, as the end of `app#build not cached because …`.
pub(crate) fn not_cached(n: &NotCached) -> String {
    match n {
        NotCached::Failed { code } => format!("it failed with exit code {code}"),
        NotCached::Cancelled => "the run was cancelled".to_owned(),
        NotCached::ToolAsked { by } => format!("{by} asked not to cache this run"),
        NotCached::BridgeProtocol { first, more } => {
            format!("bridge protocol error: {first}{}", and_more(*more))
        }
        NotCached::BridgeVersion { first, more } => {
            format!("bridge version mismatch: {first}{}", and_more(*more))
        }
        NotCached::LingeringClients { clients } => format!(
            "{} kept talking to vp after the task ended",
            clients.join(", ")
        ),
        NotCached::Untraced { reason } => format!(
            "its file accesses could not be observed ({reason}); declare `input` and `output` globs without `{{\"auto\": true}}` to cache it anyway"
        ),
        NotCached::PartlyTraced { why } => {
            format!("its file accesses could not all be observed ({why})")
        }
        NotCached::ModifiedInput { path } => format!("it modified its input '{path}'"),
        NotCached::WroteOutside { path, more } => format!(
            "it wrote '{}'{} outside the workspace, which a cache hit could not restore (hint: build into the workspace)",
            path.display(),
            and_more(*more)
        ),
        NotCached::Store(why) => why.to_string(),
        NotCached::StoreFailed { error } => format!("the cache could not be written ({error})"),
    }
}

fn and_more(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(" (and {more} more)")
    }
}

/// How a command failed, as the end of `vp: app#build …`.
pub(crate) fn failure(f: &Failure) -> String {
    match f {
        Failure::ProgramNotFound { program } => format!(
            "could not start `{program}`: no such program in node_modules/.bin of the package \
             or its parents, or on PATH\n\
             (hint: install it with your package manager, or fix the command)"
        ),
        Failure::CouldNotStart {
            program,
            cwd,
            error,
        } => format!(
            "could not start `{}` in `{}`: {error}",
            program.display(),
            cwd.display()
        ),
        Failure::Exited { command, code } => {
            format!("failed: `{command}` exited with code {code}")
        }
        Failure::LostTrack { program, error } => {
            format!("lost track of `{}`: {error}", program.display())
        }
    }
}

/// The lines of a task notice (the reporter prefixes each with `vp: `).
pub(crate) fn task_notice(n: &TaskNotice) -> Vec<String> {
    match n {
        TaskNotice::NotCached(why) => vec![format!("not cached: {}", not_cached(why))],
        TaskNotice::BridgeUnavailable { error } => vec![format!(
            "the runner bridge is unavailable for this task: {error}"
        )],
        TaskNotice::BridgeFacts(report) => bridge_facts::lines(report),
        TaskNotice::Stored {
            inputs,
            outputs,
            new_bytes,
        } => vec![format!(
            "cached: {inputs} inputs, {outputs} outputs ({} new)",
            format_size(*new_bytes)
        )],
        TaskNotice::Downloaded { bytes } => vec![format!(
            "downloaded from the remote cache: {}",
            format_size(*bytes)
        )],
        TaskNotice::RemoteMiss(why) => vec![why.to_string()],
        TaskNotice::MissCost(cost) => vec![format!(
            "miss cost: ran {} traced ({} calls notified, {} recorded in-process, {} files hashed meanwhile); then resolving paths {}, classifying {}, storing {}",
            format_duration(cost.ran),
            cost.calls.notified,
            cost.calls.in_process,
            cost.hashed_while_running,
            format_duration(cost.resolved),
            format_duration(cost.classified),
            format_duration(cost.stored)
        )],
    }
}

/// A notice about the whole run (the reporter prefixes it with `vp: `).
pub(crate) fn run_notice(n: &RunNotice) -> String {
    match n {
        RunNotice::Store(notice) => notice.to_string(),
        RunNotice::CacheUnavailable(why) => {
            format!("{}; running without the cache", unavailable(why))
        }
        RunNotice::AddonUnavailable { error } => {
            format!("Node tools cannot talk to vp in this run: {error}")
        }
        RunNotice::InProcessTracerUnavailable { error } => format!(
            "file accesses are traced without the in-process tracer in this run (slower, as complete): {error}"
        ),
        RunNotice::Interrupted { signal } => interrupted(*signal),
        RunNotice::RemoteUnavailable(e) => {
            format!("remote cache unavailable: {e} (tasks run and are cached locally)")
        }
        RunNotice::Uploaded {
            task,
            result: Ok(bytes),
        } => format!(
            "{task}: uploaded to the remote cache ({})",
            format_size(*bytes)
        ),
        RunNotice::Uploaded {
            task,
            result: Err(why),
        } => format!("{task}: {why}"),
        RunNotice::UploadsAbandoned { count } => format!(
            "gave up waiting for {count} upload{} to the remote cache (the results stay cached locally)",
            if *count == 1 { "" } else { "s" }
        ),
        RunNotice::RemoteTransfers(t) => format!(
            "remote cache: {} downloaded, {} uploaded, {} requests in {}",
            format_size(t.downloaded),
            format_size(t.uploaded),
            t.requests,
            format_duration(t.time)
        ),
        RunNotice::CacheSuggested { commands } => format!(
            "tip: scripts are not cached by default; `--cache` would cache {} (or set `\"cache\": {{ \"scripts\": true }}` in the root vite-task.json)",
            if *commands == 1 {
                "this command"
            } else {
                "these commands"
            }
        ),
    }
}

/// What vp says when the first signal arrives.
fn interrupted(signal: i32) -> String {
    match signal {
        libc::SIGINT => {
            "interrupted: waiting for running tasks to stop (press Ctrl-C again to kill them)"
                .to_owned()
        }
        _ => {
            let name = if signal == libc::SIGTERM {
                "SIGTERM"
            } else {
                "SIGHUP"
            };
            format!(
                "received {name}: forwarded it to the running tasks, waiting for them to stop (send it again to kill them)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{NotStorable, RelPath};

    #[test]
    fn every_forwarded_signal_is_named() {
        assert!(interrupted(libc::SIGINT).contains("Ctrl-C again"));
        assert!(interrupted(libc::SIGTERM).starts_with("received SIGTERM"));
        assert!(interrupted(libc::SIGHUP).starts_with("received SIGHUP"));
    }

    #[test]
    fn bridge_reasons_count_the_rest() {
        assert_eq!(
            not_cached(&NotCached::BridgeProtocol {
                first: "a".into(),
                more: 1
            }),
            "bridge protocol error: a (and 1 more)"
        );
        assert_eq!(
            not_cached(&NotCached::BridgeVersion {
                first: "alien (pid 3) asked for protocol version 99".into(),
                more: 0
            }),
            "bridge version mismatch: alien (pid 3) asked for protocol version 99"
        );
        assert_eq!(
            not_cached(&NotCached::LingeringClients {
                clients: vec!["a (pid 1)".into(), "b (pid 2)".into()]
            }),
            "a (pid 1), b (pid 2) kept talking to vp after the task ended"
        );
    }

    #[test]
    fn an_untraced_run_says_how_to_cache_it_anyway() {
        let text = not_cached(&NotCached::Untraced {
            reason: "seccomp is unavailable".into(),
        });
        assert!(text.contains("(seccomp is unavailable)"), "{text}");
        assert!(text.contains(r#"without `{"auto": true}`"#), "{text}");
    }

    #[test]
    fn store_reasons_name_the_path() {
        assert_eq!(
            not_cached(&NotCached::Store(NotStorable::InputModifiedDuringRun(
                RelPath::root().join(b"src").join(b"a.ts")
            ))),
            "its input 'src/a.ts' was modified while it ran"
        );
        assert_eq!(
            not_cached(&NotCached::ModifiedInput {
                path: "node_modules/.tmp/app.tsbuildinfo".into()
            }),
            "it modified its input 'node_modules/.tmp/app.tsbuildinfo'"
        );
    }

    #[test]
    fn a_missing_program_gets_a_hint_and_exit_code_127() {
        let f = Failure::ProgramNotFound {
            program: "vitest".into(),
        };
        assert!(failure(&f).starts_with("could not start `vitest`: no such program"));
        assert!(failure(&f).contains("hint:"));
        assert_eq!(f.exit_code(), 127);
    }

    #[test]
    fn a_first_run_has_no_miss_reason() {
        assert_eq!(miss(&Miss::FirstRun), None);
        assert_eq!(
            miss(&Miss::RestoreFailed {
                error: "disk full".into()
            })
            .as_deref(),
            Some("its stored outputs could not be restored (disk full)")
        );
    }

    #[test]
    fn unavailable_names_the_holder_when_known() {
        assert_eq!(
            unavailable(&Unavailable::Locked { holder: Some(7) }),
            "another vp (pid 7) holds the cache lock"
        );
        assert_eq!(
            run_notice(&RunNotice::CacheUnavailable(Unavailable::Locked {
                holder: None
            })),
            "another vp holds the cache lock; running without the cache"
        );
        // Review: a nested run that gave up waiting for its parent said
        // "another vp", and the user looked in other terminals.
        let parent = std::os::unix::process::parent_id();
        assert!(
            unavailable(&Unavailable::Locked {
                holder: Some(parent)
            })
            .starts_with(&format!("the vp that started this one (pid {parent})")),
        );
    }

    #[test]
    fn the_cache_tip_names_the_flag_and_the_setting() {
        let one = run_notice(&RunNotice::CacheSuggested { commands: 1 });
        assert_eq!(
            one,
            "tip: scripts are not cached by default; `--cache` would cache this command \
             (or set `\"cache\": { \"scripts\": true }` in the root vite-task.json)"
        );
        let two = run_notice(&RunNotice::CacheSuggested { commands: 2 });
        assert!(two.contains("would cache these commands"), "{two}");
    }
}

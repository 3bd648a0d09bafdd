//! Text pieces in the grammar users of vite-task already read.

use std::time::Duration;

use super::reasons;
use crate::events::{CacheStatus, CommandHeader, LeftRunning, Waiting, WaitingFor};

/// `~/packages/a$ node build.js ◉ cache hit, replaying`
pub(crate) fn header_line(h: &CommandHeader) -> String {
    let status = match &h.status {
        CacheStatus::Disabled => " ⊘ cache disabled".to_owned(),
        CacheStatus::Hit { remote: false } => " ◉ cache hit, replaying".to_owned(),
        CacheStatus::Hit { remote: true } => " ◉ cache hit (remote), replaying".to_owned(),
        CacheStatus::Miss(m) => match reasons::miss(m) {
            None => " ○ cache miss, executing".to_owned(),
            Some(why) => format!(" ○ cache miss: {why}, executing"),
        },
        CacheStatus::Unavailable(u) => {
            format!(" ⊘ cache unavailable: {}", reasons::unavailable(u))
        }
    };
    format!("{}$ {}{status}", h.cwd, h.command)
}

/// Where the docs say how to run background processes from a task.
const DAEMON_DOCS: &str = "see \"Background processes\" in docs/config.md";

/// What vp is waiting for after a command's main process exited, and a
/// hint: one sentence each (the reporter prefixes `vp: `).
pub(crate) fn waiting_lines(w: &Waiting) -> [String; 2] {
    let (who, plural) = left_running(&w.processes);
    match w.what {
        WaitingFor::OutputPipes => [
            format!(
                "the main process exited, but {who} started by this task still {} its stdout/stderr open: waiting until {} or {} them, so that no output is lost",
                pick(plural, "holds", "hold"),
                pick(plural, "it exits", "they exit"),
                pick(plural, "closes", "close"),
            ),
            format!(
                "hint: start a background process with its output redirected (`server > server.log 2>&1 &`); {DAEMON_DOCS}"
            ),
        ],
        WaitingFor::TracedProcesses => [
            format!(
                "the main process exited, but {who} started by this task {} still running under the file-access tracer: waiting until {}, as only then is the run complete and cacheable",
                pick(plural, "is", "are"),
                pick(plural, "it exits", "they exit"),
            ),
            format!(
                "hint: a task that leaves a process running should not be cached (`\"cache\": false` runs it untraced); {DAEMON_DOCS}"
            ),
        ],
    }
}

fn pick(plural: bool, one: &'static str, many: &'static str) -> &'static str {
    if plural { many } else { one }
}

/// `pid 42 (`sleep 30`)`, `pids 1 (`a`), 2 (`b`) and 3 more`, or
/// `a process` when none could be identified; and whether it is plural.
fn left_running(processes: &[LeftRunning]) -> (String, bool) {
    const SHOWN: usize = 4;
    let one = |p: &LeftRunning| format!("{} (`{}`)", p.pid, p.command);
    match processes {
        [] => ("a process (vp could not tell which)".to_owned(), false),
        [p] => (format!("pid {}", one(p)), false),
        many => {
            let mut text = format!(
                "pids {}",
                many.iter()
                    .take(SHOWN)
                    .map(one)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if many.len() > SHOWN {
                text.push_str(&format!(" and {} more", many.len() - SHOWN));
            }
            (text, true)
        }
    }
}

/// `850ms`, `1.2s`, `2m03s`
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{MissReason, MissReasons, RelPath};
    use crate::events::{Miss, Unavailable};

    #[test]
    fn header_grammar() {
        let h = |cwd: &str, status| {
            header_line(&CommandHeader {
                cwd: cwd.into(),
                command: "node build.js".into(),
                status,
            })
        };
        assert_eq!(
            h("~/packages/a", CacheStatus::Hit { remote: false }),
            "~/packages/a$ node build.js ◉ cache hit, replaying"
        );
        assert_eq!(
            h("", CacheStatus::Hit { remote: true }),
            "$ node build.js ◉ cache hit (remote), replaying"
        );
        assert_eq!(
            h(
                "",
                CacheStatus::Miss(Miss::Changed {
                    reasons: MissReasons::new(vec![
                        MissReason::Modified(RelPath::root().join(b"test.txt")),
                        MissReason::ArgsChanged
                    ]),
                    base: RelPath::root(),
                })
            ),
            "$ node build.js ○ cache miss: args changed, 'test.txt' modified, executing"
        );
        assert_eq!(
            h("", CacheStatus::Disabled),
            "$ node build.js ⊘ cache disabled"
        );
        assert_eq!(
            h("", CacheStatus::Miss(Miss::FirstRun)),
            "$ node build.js ○ cache miss, executing"
        );
        assert_eq!(
            h("", CacheStatus::Unavailable(Unavailable::NotOpened)),
            "$ node build.js ⊘ cache unavailable: caching is off"
        );
    }

    #[test]
    fn waiting_grammar() {
        let sleep = LeftRunning {
            pid: 42,
            command: "sleep 30".into(),
        };
        let [line, hint] = waiting_lines(&Waiting {
            what: WaitingFor::OutputPipes,
            processes: vec![sleep.clone()],
        });
        assert_eq!(
            line,
            "the main process exited, but pid 42 (`sleep 30`) started by this task still holds its stdout/stderr open: \
             waiting until it exits or closes them, so that no output is lost"
        );
        assert!(
            hint.starts_with("hint: start a background process with its output redirected"),
            "{hint}"
        );
        let five: Vec<_> = (1..=5)
            .map(|pid| LeftRunning {
                pid,
                command: "node".into(),
            })
            .collect();
        let [line, hint] = waiting_lines(&Waiting {
            what: WaitingFor::TracedProcesses,
            processes: five,
        });
        assert_eq!(
            line,
            "the main process exited, but pids 1 (`node`), 2 (`node`), 3 (`node`), 4 (`node`) and 1 more started by this task \
             are still running under the file-access tracer: waiting until they exit, as only then is the run complete and cacheable"
        );
        assert!(hint.contains("\"cache\": false"), "{hint}");
        let [line, _] = waiting_lines(&Waiting {
            what: WaitingFor::OutputPipes,
            processes: vec![],
        });
        assert!(
            line.contains(
                "but a process (vp could not tell which) started by this task still holds"
            ),
            "{line}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m03s");
    }
}

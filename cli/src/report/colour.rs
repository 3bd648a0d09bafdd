//! Colour in one run, decided once where the reporter is made.
//!
//! [`Colours`] holds whether vp's stdout and stderr are terminals and what
//! the user asked for (`NO_COLOR`, `FORCE_COLOR`). The runner reads from it
//! the variable that keeps the tasks' tools coloured although they write to
//! pipes (`FORCE_COLOR=1`); the reporter reads which output to strip of
//! escape sequences (a replay to a non-terminal, so CI logs stay clean).
//! Neither depends on the cache key: both variables are on the untracked
//! pass-through list. docs/caching.md ("Colours") has the measurements.

use std::ffi::OsString;
use std::io::IsTerminal;

use crate::events::{OutputOrigin, OutputStream};

/// Whether each of vp's own output streams is a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Terminals {
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
}

impl Terminals {
    /// vp's own stdout and stderr, as they are now.
    pub(crate) fn detect() -> Terminals {
        Terminals {
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }

    fn of(self, stream: OutputStream) -> bool {
        match stream {
            OutputStream::Stdout => self.stdout,
            OutputStream::Stderr => self.stderr,
        }
    }
}

/// What the user's environment says about colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserChoice {
    /// `NO_COLOR` is set and not empty (it wins over `FORCE_COLOR`), or
    /// `FORCE_COLOR` is `0` or `false`.
    Never,
    /// `FORCE_COLOR` is set to anything else: colour even without a terminal.
    Always,
    /// Neither: colour on terminals only.
    Auto,
}

impl UserChoice {
    fn from_env(env: impl Fn(&str) -> Option<OsString>) -> UserChoice {
        if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return UserChoice::Never;
        }
        match env("FORCE_COLOR") {
            Some(v) if v == "0" || v == "false" => UserChoice::Never,
            Some(_) => UserChoice::Always,
            None => UserChoice::Auto,
        }
    }
}

/// The colour decisions of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Colours {
    terminals: Terminals,
    choice: UserChoice,
}

impl Colours {
    /// For this process: its terminals and its environment.
    pub(crate) fn detect() -> Colours {
        Colours::decide(Terminals::detect(), |name| std::env::var_os(name))
    }

    pub(crate) fn decide(terminals: Terminals, env: impl Fn(&str) -> Option<OsString>) -> Colours {
        Colours {
            terminals,
            choice: UserChoice::from_env(env),
        }
    }

    /// No terminal and no user choice: what tests that capture output use.
    pub(crate) fn plain() -> Colours {
        Colours {
            terminals: Terminals::default(),
            choice: UserChoice::Auto,
        }
    }

    /// Whether vp's stderr (its own lines: headers, notices, the summary) is
    /// a terminal, that is, read by a person rather than a log or a pipe.
    pub(crate) fn stderr_is_terminal(self) -> bool {
        self.terminals.stderr
    }

    /// The variable vp adds to every task's environment, if any. Tools see
    /// pipes, not vp's terminal; `FORCE_COLOR` is what most of them (picocolors,
    /// chalk, Node's own `util.inspect` and `styleText`, tsc 7, oxlint)
    /// read to colour anyway. A `NO_COLOR` or `FORCE_COLOR` the user set
    /// reaches the tools unchanged instead.
    pub(crate) fn child_env(self) -> Option<(&'static str, &'static str)> {
        (self.forces_children()).then_some(("FORCE_COLOR", "1"))
    }

    /// Only when stdout is a terminal: with stdout redirected (`vp run gen >
    /// file`), what lands in the file must be exactly what `gen > file`
    /// writes, and stripping afterwards could alter binary output.
    fn forces_children(self) -> bool {
        self.choice == UserChoice::Auto && self.terminals.stdout
    }

    /// Whether output of `origin` on `stream` is written without its escape
    /// sequences.
    pub(crate) fn strips(self, stream: OutputStream, origin: OutputOrigin) -> bool {
        let terminal = self.terminals.of(stream);
        match origin {
            // A stored log keeps the escape codes of the run that made it
            // (on a terminal, or under FORCE_COLOR); whether they suit this
            // output is decided now.
            OutputOrigin::Replayed => match self.choice {
                UserChoice::Never => true,
                UserChoice::Always => false,
                UserChoice::Auto => !terminal,
            },
            // Live output is what the tools chose, except where vp asked
            // them for colour: with only stderr on a terminal, `vp run gen >
            // file` must still write what `gen > file` would.
            OutputOrigin::Live => self.forces_children() && !terminal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutputOrigin::{Live, Replayed};
    use OutputStream::{Stderr, Stdout};

    const BOTH: Terminals = Terminals {
        stdout: true,
        stderr: true,
    };
    const NONE: Terminals = Terminals {
        stdout: false,
        stderr: false,
    };

    fn with(terminals: Terminals, vars: &[(&str, &str)]) -> Colours {
        Colours::decide(terminals, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn on_a_terminal_tools_are_asked_for_colour_and_replays_keep_it() {
        let c = with(BOTH, &[]);
        assert_eq!(c.child_env(), Some(("FORCE_COLOR", "1")));
        for stream in [Stdout, Stderr] {
            assert!(!c.strips(stream, Replayed));
            assert!(!c.strips(stream, Live));
        }
    }

    #[test]
    fn piped_nothing_is_added_live_passes_and_replays_are_stripped() {
        let c = with(NONE, &[]);
        assert_eq!(c.child_env(), None);
        for stream in [Stdout, Stderr] {
            assert!(c.strips(stream, Replayed));
            assert!(!c.strips(stream, Live));
        }
        assert_eq!(c, Colours::plain());
    }

    #[test]
    fn no_color_wins_over_the_terminal_and_force_color() {
        for vars in [
            &[("NO_COLOR", "1")][..],
            &[("NO_COLOR", "1"), ("FORCE_COLOR", "3")],
            &[("FORCE_COLOR", "0")],
            &[("FORCE_COLOR", "false")],
        ] {
            let c = with(BOTH, vars);
            assert_eq!(c.child_env(), None, "{vars:?}");
            assert!(c.strips(Stdout, Replayed), "{vars:?}");
            assert!(!c.strips(Stdout, Live), "{vars:?}");
        }
        // An empty NO_COLOR is not set (no-color.org).
        assert_eq!(
            with(BOTH, &[("NO_COLOR", "")]).child_env(),
            Some(("FORCE_COLOR", "1"))
        );
    }

    #[test]
    fn a_users_force_color_is_kept_and_keeps_replays_coloured_everywhere() {
        let c = with(NONE, &[("FORCE_COLOR", "2")]);
        assert_eq!(c.child_env(), None);
        assert!(!c.strips(Stdout, Replayed));
        assert!(!c.strips(Stderr, Live));
    }

    #[test]
    fn a_redirected_stdout_gets_exactly_what_the_tool_writes() {
        // `vp run gen > file` on a terminal: vp asks for no colour, so live
        // output is not touched (it may be binary); a replay to the file is
        // stripped (the stripper leaves binary streams alone).
        let c = with(
            Terminals {
                stdout: false,
                stderr: true,
            },
            &[],
        );
        assert_eq!(c.child_env(), None);
        assert!(!c.strips(Stdout, Live) && c.strips(Stdout, Replayed));
        assert!(!c.strips(Stderr, Live) && !c.strips(Stderr, Replayed));
    }

    #[test]
    fn a_redirected_stderr_loses_the_colour_vp_asked_for() {
        // `vp run build 2> log` on a terminal.
        let c = with(
            Terminals {
                stdout: true,
                stderr: false,
            },
            &[],
        );
        assert_eq!(c.child_env(), Some(("FORCE_COLOR", "1")));
        assert!(c.strips(Stderr, Live) && c.strips(Stderr, Replayed));
        assert!(!c.strips(Stdout, Live) && !c.strips(Stdout, Replayed));
    }
}

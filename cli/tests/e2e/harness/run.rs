//! Runs one program to completion and captures its exit status, stdout and stderr, with a
//! timeout so a hung `vp` fails its test instead of hanging the whole suite. Scenarios get a
//! `Run` from `Workspace::vp` / `Workspace::run` and chain `arg`/`env`/`cwd` before `output()`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Long enough for a cold `vite build` on a loaded 2-core machine, short enough to notice a hang.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// A program about to run: built by the `Workspace`, configured by chaining, run by `output()`.
#[must_use = "a Run does nothing until .output() is called"]
pub(crate) struct Run {
    command: Command,
    program: OsString,
    args: Vec<OsString>,
    cwd: PathBuf,
    timeout: Duration,
}

impl Run {
    /// A run of `program` in `cwd` with the current environment and stdin from /dev/null.
    pub(crate) fn new(program: impl AsRef<OsStr>, cwd: &Path) -> Run {
        let mut command = Command::new(program.as_ref());
        command.current_dir(cwd).stdin(Stdio::null());
        Run {
            command,
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: cwd.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.command.arg(arg.as_ref());
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Run {
        self.command.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Run {
        self.command.env_remove(key);
        self
    }

    /// Runs in `dir` instead (absolute, or relative to the current working directory of the run).
    pub(crate) fn cwd(mut self, dir: impl AsRef<Path>) -> Run {
        self.cwd = self.cwd.join(dir.as_ref());
        self.command.current_dir(&self.cwd);
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Run {
        self.timeout = timeout;
        self
    }

    /// The command line, for messages.
    pub(crate) fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for arg in &self.args {
            s.push(' ');
            s.push_str(&arg.to_string_lossy());
        }
        s
    }

    /// Runs to completion. Panics (failing the test) when the program cannot be started or
    /// outlives the timeout; a non-zero exit is NOT a panic, it is in the `Output`.
    #[track_caller]
    pub(crate) fn output(mut self) -> Output {
        let display = self.display();
        // Own process group: on timeout the whole tree is killed, not only `vp`.
        self.command
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = match self.command.spawn() {
            Ok(child) => child,
            Err(err) => panic!(
                "could not start `{display}` in {}: {err} (is the program installed and on PATH?)",
                self.cwd.display()
            ),
        };
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_with_timeout(&mut child, self.timeout);
        let elapsed = started.elapsed();
        let stdout = join(stdout);
        let stderr = join(stderr);
        let Some(status) = status else {
            panic!(
                "`{display}` in {} did not finish within {:?}; it was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                self.cwd.display(),
                self.timeout
            );
        };
        Output {
            command: display,
            cwd: self.cwd,
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            elapsed,
        }
    }
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error ends the capture; what was read so far is still worth showing.
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join(handle: Option<JoinHandle<String>>) -> String {
    handle
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| String::from("<output reader panicked>"))
        })
        .unwrap_or_default()
}

/// Polls with a short, growing interval; `None` means it timed out and the group was killed.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(err) => panic!("waiting for child {} failed: {err}", child.id()),
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                // The group may already be gone; the wait below reaps the child either way.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(20));
    }
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) command: String,
    pub(crate) cwd: PathBuf,
    /// The exit code, `None` when a signal ended the program.
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the program exited 0.
    #[track_caller]
    pub(crate) fn assert_success(&self) -> &Output {
        assert!(self.success(), "expected success\n{self}");
        self
    }

    /// Panics with the whole output unless the program exited with `code`.
    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Panics unless stdout contains `needle`.
    #[track_caller]
    pub(crate) fn assert_stdout_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stdout.contains(needle),
            "expected stdout to contain {needle:?}\n{self}"
        );
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub(crate) fn assert_stderr_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}\n{self}"
        );
        self
    }

    /// stdout followed by stderr, for assertions that do not care which stream a line went to.
    pub(crate) fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => String::from("unknown status"),
        };
        writeln!(f, "command: {} (in {})", self.command, self.cwd.display())?;
        writeln!(f, "status: {status} after {:?}", self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir()
    }

    #[test]
    fn captures_both_streams_and_the_exit_code() {
        let out = Run::new("sh", &tmp())
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.success());
    }

    #[test]
    fn env_and_cwd_reach_the_program() {
        let out = Run::new("sh", &tmp())
            .args(["-c", "printf '%s %s' \"$E2E_X\" \"$(pwd)\""])
            .env("E2E_X", "value")
            .cwd("/")
            .output();
        out.assert_success();
        assert_eq!(out.stdout, "value /");
    }

    #[test]
    fn a_signal_is_reported_as_a_signal() {
        let out = Run::new("sh", &tmp()).args(["-c", "kill -9 $$"]).output();
        assert_eq!(out.code, None);
        assert_eq!(out.signal, Some(9));
    }

    #[test]
    fn a_hung_program_is_killed_with_its_children() {
        let result = std::panic::catch_unwind(|| {
            Run::new("sh", &tmp())
                .args(["-c", "sleep 30 & sleep 30"])
                .timeout(Duration::from_millis(200))
                .output()
        });
        let message = result.expect_err("the timeout must fail the run");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("did not finish within"), "{text}");
    }

    #[test]
    fn a_missing_program_says_so() {
        let result =
            std::panic::catch_unwind(|| Run::new("vp-e2e-no-such-program", &tmp()).output());
        let message = result.expect_err("spawning a missing program must fail");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("could not start `vp-e2e-no-such-program`"),
            "{text}"
        );
    }
}

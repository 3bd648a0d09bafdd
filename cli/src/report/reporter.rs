//! The human reporter: one writer pair, three log modes.

use std::collections::HashMap;
use std::io::Write;

use super::LogMode;
use super::ansi::AnsiStripper;
use super::colour::Colours;
use super::format::{format_duration, header_line, waiting_lines};
use super::json;
use super::plan::TaskInfo;
use super::reasons;
use crate::events::CommandHeader;
use crate::events::{OutputOrigin, OutputStream, RunEvent, RunStats, TaskOutcome};

pub(crate) struct Reporter {
    mode: LogMode,
    verbose: bool,
    labels: Vec<String>,
    out: Box<dyn Write>,
    err: Box<dyn Write>,
    /// Labeled mode: the unfinished last line of each (task, stream).
    partial: HashMap<(usize, OutputStream), Vec<u8>>,
    /// Grouped mode: each task's output in arrival order.
    groups: HashMap<usize, Vec<(OutputStream, Vec<u8>)>>,
    /// Per task: the header lines and the outcome, for `-v` and `--last-details`.
    details: Vec<TaskDetail>,
    /// Which output loses its escape sequences (see `Colours::strips`).
    colours: Colours,
    /// Per (task, stream): the state of a sequence split across chunks.
    strippers: HashMap<(usize, OutputStream), AnsiStripper>,
}

#[derive(Default, Clone)]
struct TaskDetail {
    commands: Vec<String>,
    notices: Vec<String>,
    outcome: Option<String>,
    /// The typed values behind `commands` and `outcome`, for `last-run.json`.
    headers: Vec<CommandHeader>,
    finished: Option<(TaskOutcome, std::time::Duration)>,
}

impl Reporter {
    pub(crate) fn new(
        mode: LogMode,
        verbose: bool,
        labels: Vec<String>,
        out: Box<dyn Write>,
        err: Box<dyn Write>,
    ) -> Reporter {
        let details = vec![TaskDetail::default(); labels.len()];
        Reporter {
            mode,
            verbose,
            labels,
            out,
            err,
            partial: HashMap::new(),
            groups: HashMap::new(),
            details,
            colours: Colours::plain(),
            strippers: HashMap::new(),
        }
    }

    /// A reporter on vp's own stdout and stderr; `colours` says which of
    /// them are terminals (decided once, by the caller).
    pub(crate) fn terminal(
        mode: LogMode,
        verbose: bool,
        labels: Vec<String>,
        colours: Colours,
    ) -> Reporter {
        Reporter::new(
            mode,
            verbose,
            labels,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        )
        .with_colours(colours)
    }

    /// Strips escape sequences as `colours` says (the default, for writers
    /// that are not terminals: replays stripped, live output as it comes).
    pub(crate) fn with_colours(mut self, colours: Colours) -> Reporter {
        self.colours = colours;
        self
    }

    /// Writes one event. Write errors (a closed pipe) are ignored: the run
    /// itself must still finish and report its exit code.
    pub(crate) fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::TaskStarted { task } => {
                self.details[*task].outcome = Some("started, did not finish".to_owned())
            }
            RunEvent::CommandStarted { task, header } => {
                // A sequence left open by the previous command is not
                // continued by this one.
                self.reset_strippers(*task);
                let line = header_line(header);
                self.details[*task].commands.push(line.clone());
                self.details[*task].headers.push(header.clone());
                self.own_line(*task, &line);
            }
            RunEvent::TaskOutput {
                task,
                stream,
                bytes,
                origin,
            } => self.task_output(*task, *stream, *origin, bytes),
            RunEvent::TaskNotice { task, notice } => {
                for message in reasons::task_notice(notice) {
                    let line = format!("vp: {message}");
                    self.details[*task].notices.push(message);
                    self.own_line(*task, &line);
                }
            }
            RunEvent::TaskWaiting { task, waiting } => {
                let [what, hint] = waiting_lines(waiting);
                self.details[*task].notices.push(what.clone());
                for line in [what, hint] {
                    self.now_line(*task, &format!("vp: {line}"));
                }
            }
            RunEvent::TaskFinished {
                task,
                outcome,
                duration,
            } => {
                self.details[*task].finished = Some((outcome.clone(), *duration));
                self.details[*task].outcome = Some(match outcome {
                    TaskOutcome::Succeeded {
                        cache_hits,
                        commands,
                        ..
                    } if *commands > 0 => {
                        format!(
                            "succeeded in {} ({cache_hits}/{commands} from cache)",
                            format_duration(*duration)
                        )
                    }
                    TaskOutcome::Succeeded { .. } => {
                        format!("succeeded in {}", format_duration(*duration))
                    }
                    TaskOutcome::Failed { failure, .. } => reasons::failure(failure),
                    TaskOutcome::Skipped => "not started".to_owned(),
                    TaskOutcome::Cancelled => "cancelled".to_owned(),
                });
                self.flush_partial(*task);
                self.reset_strippers(*task);
                if let TaskOutcome::Failed { failure, .. } = outcome {
                    let message = reasons::failure(failure);
                    let line = format!("vp: {} {message}", self.labels[*task]);
                    self.own_line(*task, &line);
                }
                self.flush_group(*task);
            }
            RunEvent::Notice(notice) => {
                let _ = writeln!(self.err, "vp: {}", reasons::run_notice(notice));
            }
            RunEvent::RunFinished { stats } => self.summary(stats),
        }
        let _ = self.out.flush();
        let _ = self.err.flush();
    }

    /// A line vp itself prints about a task (header, notice): on stderr so a
    /// task's stdout stays exactly what its program printed.
    fn own_line(&mut self, task: usize, line: &str) {
        match self.mode {
            LogMode::Interleaved => {
                let _ = writeln!(self.err, "{line}");
            }
            LogMode::Labeled => {
                let _ = writeln!(self.err, "[{}] {line}", self.labels[task]);
            }
            LogMode::Grouped => {
                let mut bytes = line.as_bytes().to_vec();
                bytes.push(b'\n');
                self.groups
                    .entry(task)
                    .or_default()
                    .push((OutputStream::Stderr, bytes));
            }
        }
    }

    /// A line about a task that must be seen now, also in grouped mode
    /// (where the task's block only appears when it finishes).
    fn now_line(&mut self, task: usize, line: &str) {
        match self.mode {
            LogMode::Interleaved => {
                let _ = writeln!(self.err, "{line}");
            }
            LogMode::Labeled | LogMode::Grouped => {
                let _ = writeln!(self.err, "[{}] {line}", self.labels[task]);
            }
        }
    }

    /// Output of a task, without its escape sequences where they do not
    /// belong, then laid out as the mode says.
    fn task_output(
        &mut self,
        task: usize,
        stream: OutputStream,
        origin: OutputOrigin,
        bytes: &[u8],
    ) {
        if !self.colours.strips(stream, origin) {
            self.output(task, stream, bytes);
            return;
        }
        let mut plain = Vec::with_capacity(bytes.len());
        self.strippers
            .entry((task, stream))
            .or_default()
            .strip(bytes, &mut plain);
        if !plain.is_empty() {
            self.output(task, stream, &plain);
        }
    }

    fn reset_strippers(&mut self, task: usize) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            if let Some(s) = self.strippers.get_mut(&(task, stream)) {
                s.reset();
            }
        }
    }

    fn output(&mut self, task: usize, stream: OutputStream, bytes: &[u8]) {
        match self.mode {
            LogMode::Interleaved => {
                let _ = self.writer(stream).write_all(bytes);
            }
            LogMode::Grouped => self
                .groups
                .entry(task)
                .or_default()
                .push((stream, bytes.to_vec())),
            LogMode::Labeled => {
                let mut buf = self.partial.remove(&(task, stream)).unwrap_or_default();
                buf.extend_from_slice(bytes);
                let mut start = 0;
                while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
                    let line = buf[start..start + nl + 1].to_vec();
                    self.labeled_line(task, stream, &line);
                    start += nl + 1;
                }
                buf.drain(..start);
                if !buf.is_empty() {
                    self.partial.insert((task, stream), buf);
                }
            }
        }
    }

    fn labeled_line(&mut self, task: usize, stream: OutputStream, line: &[u8]) {
        let prefix = format!("[{}] ", self.labels[task]);
        let w = self.writer(stream);
        let _ = w.write_all(prefix.as_bytes());
        let _ = w.write_all(line);
        if !line.ends_with(b"\n") {
            let _ = w.write_all(b"\n");
        }
    }

    fn flush_partial(&mut self, task: usize) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            if let Some(rest) = self.partial.remove(&(task, stream)) {
                self.labeled_line(task, stream, &rest);
            }
        }
    }

    fn flush_group(&mut self, task: usize) {
        if let Some(chunks) = self.groups.remove(&task) {
            let _ = writeln!(self.err, "── {} ──", self.labels[task]);
            for (stream, bytes) in chunks {
                let _ = self.writer(stream).write_all(&bytes);
                let _ = self.writer(stream).flush();
            }
        }
    }

    fn writer(&mut self, stream: OutputStream) -> &mut dyn Write {
        match stream {
            OutputStream::Stdout => &mut *self.out,
            OutputStream::Stderr => &mut *self.err,
        }
    }

    fn summary(&mut self, stats: &RunStats) {
        let interesting = stats.tasks > 1 || !stats.not_cached.is_empty() || self.verbose;
        if !interesting && stats.first_failure.is_none() && !stats.cancelled {
            return;
        }
        if stats.tasks <= 1 && stats.not_cached.is_empty() && !self.verbose {
            // A single failed or cancelled task already said so on its own line.
            return;
        }
        let _ = writeln!(self.err, "---");
        if self.verbose {
            let table = self.details_table();
            let _ = self.err.write_all(table.as_bytes());
        }
        let line = summary_line(stats);
        let _ = writeln!(self.err, "{line}");
        for (label, why) in &stats.not_cached {
            let _ = writeln!(self.err, "vp run: {}", not_cached_line(label, why));
        }
    }

    /// Every task with its commands' cache status and its outcome.
    fn details_table(&self) -> String {
        let mut text = String::new();
        for (label, d) in self.labels.iter().zip(&self.details) {
            text.push_str(&format!(
                "{label}: {}\n",
                d.outcome.as_deref().unwrap_or("not started")
            ));
            for c in &d.commands {
                text.push_str(&format!("    {c}\n"));
            }
            for n in &d.notices {
                text.push_str(&format!("    vp: {n}\n"));
            }
        }
        text
    }

    /// The text `vp run --last-details` shows for this run.
    pub(crate) fn last_details(&self, stats: &RunStats) -> String {
        let mut text = self.details_table();
        text.push_str(&summary_line(stats));
        text.push('\n');
        for (label, why) in &stats.not_cached {
            text.push_str(&format!("vp run: {}\n", not_cached_line(label, why)));
        }
        text
    }
}

impl Reporter {
    /// The machine-readable form of `last_details` (`last-run.json`):
    /// `tasks` describes each task of the run, in the order of the labels.
    pub(crate) fn last_run_json(&self, tasks: &[TaskInfo], stats: &RunStats) -> String {
        let ran: Vec<json::RanTask<'_>> = tasks
            .iter()
            .zip(&self.details)
            .map(|(info, d)| json::RanTask {
                info,
                headers: &d.headers,
                finished: d.finished.as_ref(),
                not_cached: stats
                    .not_cached
                    .iter()
                    .find(|(label, _)| *label == info.id)
                    .map(|(_, why)| reasons::not_cached(why)),
            })
            .collect();
        json::last_run(&ran, stats)
    }
}

/// `app#build not cached because it modified its input 'x'.`
fn not_cached_line(label: &str, why: &crate::events::NotCached) -> String {
    format!("{label} not cached because {}.", reasons::not_cached(why))
}

/// `vp run: 2/3 cache hit (66%), 1.2s saved.` or, without cached commands,
/// `vp run: 3 tasks succeeded in 1.2s.`
pub(crate) fn summary_line(s: &RunStats) -> String {
    let mut line = if s.cached_commands > 0 {
        let pct = s.cache_hits * 100 / s.cached_commands.max(1);
        let remote = if s.remote_hits > 0 {
            format!("; {} remote", s.remote_hits)
        } else {
            String::new()
        };
        format!(
            "vp run: {}/{} cache hit ({pct}%{remote}), {} saved.",
            s.cache_hits,
            s.cached_commands,
            format_duration(s.saved)
        )
    } else {
        format!(
            "vp run: {} of {} tasks succeeded in {}.",
            s.succeeded,
            s.tasks,
            format_duration(s.duration)
        )
    };
    if let Some((label, code)) = &s.first_failure {
        line.push_str(&format!(" {label} failed with exit code {code}"));
        if s.skipped > 0 {
            line.push_str(&format!("; {} not started", s.skipped));
        }
        line.push('.');
    } else if s.cancelled {
        line.push_str(match s.signal {
            Some(libc::SIGTERM) => " Cancelled by SIGTERM.",
            Some(libc::SIGHUP) => " Cancelled by SIGHUP.",
            _ => " Cancelled.",
        });
    }
    line
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::events::{CacheStatus, CommandHeader};

    #[derive(Clone, Default)]
    struct Buf(Rc<RefCell<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(mode: LogMode, events: &[RunEvent]) -> (String, String) {
        run_with(mode, Colours::plain(), events)
    }

    fn run_with(mode: LogMode, colours: Colours, events: &[RunEvent]) -> (String, String) {
        let (out, err) = (Buf::default(), Buf::default());
        let mut r = Reporter::new(
            mode,
            false,
            vec!["a#build".into(), "b#build".into()],
            Box::new(out.clone()),
            Box::new(err.clone()),
        )
        .with_colours(colours);
        for e in events {
            r.report(e);
        }
        let s = |b: Buf| String::from_utf8(b.0.borrow().clone()).expect("the test input is valid");
        (s(out), s(err))
    }

    fn events() -> Vec<RunEvent> {
        let header = |task| RunEvent::CommandStarted {
            task,
            header: CommandHeader {
                cwd: String::new(),
                command: "node x".into(),
                status: CacheStatus::Disabled,
            },
        };
        let out = |task, s: &str| RunEvent::TaskOutput {
            task,
            stream: OutputStream::Stdout,
            bytes: s.as_bytes().to_vec(),
            origin: OutputOrigin::Live,
        };
        let done = |task| RunEvent::TaskFinished {
            task,
            outcome: TaskOutcome::Succeeded {
                cache_hits: 0,
                remote_hits: 0,
                commands: 1,
                saved: Duration::ZERO,
            },
            duration: Duration::ZERO,
        };
        vec![
            header(0),
            header(1),
            out(0, "a1\na"),
            out(1, "b1\n"),
            out(0, "2\n"),
            done(1),
            done(0),
        ]
    }

    #[test]
    fn interleaved_passes_bytes_through() {
        let (out, err) = run(LogMode::Interleaved, &events());
        assert_eq!(out, "a1\nab1\n2\n");
        assert_eq!(
            err,
            "$ node x ⊘ cache disabled\n$ node x ⊘ cache disabled\n"
        );
    }

    /// Vite's coloured `✓ built` line and a hyperlink, cut inside both
    /// sequences, as pipe reads may cut them.
    fn coloured(task: usize, stream: OutputStream, origin: OutputOrigin) -> Vec<RunEvent> {
        [
            "\x1b[3",
            "2m✓\x1b[0m built\n\x1b]8;;https://x",
            ".dev\x1b\\docs\x1b]8;;\x1b",
            "\\\n",
        ]
        .iter()
        .map(|chunk| RunEvent::TaskOutput {
            task,
            stream,
            bytes: chunk.as_bytes().to_vec(),
            origin,
        })
        .collect()
    }

    const COLOURED: &str =
        "\x1b[32m✓\x1b[0m built\n\x1b]8;;https://x.dev\x1b\\docs\x1b]8;;\x1b\\\n";

    fn terminals(stdout: bool, stderr: bool) -> Colours {
        Colours::decide(crate::report::colour::Terminals { stdout, stderr }, |_| {
            None
        })
    }

    #[test]
    fn a_replay_to_a_non_terminal_is_stripped_even_when_split() {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let (out, err) = run(
                LogMode::Interleaved,
                &coloured(0, stream, OutputOrigin::Replayed),
            );
            let written = if stream == OutputStream::Stdout {
                out
            } else {
                err
            };
            assert_eq!(written, "✓ built\ndocs\n", "{stream:?}");
        }
        // Labeled lines are cut after stripping: the prefix is not inside
        // a sequence, and no escape byte is left.
        let (out, _) = run(
            LogMode::Labeled,
            &coloured(1, OutputStream::Stdout, OutputOrigin::Replayed),
        );
        assert_eq!(out, "[b#build] ✓ built\n[b#build] docs\n");
    }

    #[test]
    fn a_replay_to_a_terminal_keeps_its_colours() {
        let (out, _) = run_with(
            LogMode::Interleaved,
            terminals(true, true),
            &coloured(0, OutputStream::Stdout, OutputOrigin::Replayed),
        );
        assert_eq!(out, COLOURED);
        // Only the stream that is a terminal keeps them.
        let (out, err) = run_with(
            LogMode::Grouped,
            terminals(false, true),
            &[
                coloured(0, OutputStream::Stdout, OutputOrigin::Replayed),
                coloured(0, OutputStream::Stderr, OutputOrigin::Replayed),
                vec![RunEvent::TaskFinished {
                    task: 0,
                    outcome: TaskOutcome::Skipped,
                    duration: Duration::ZERO,
                }],
            ]
            .concat(),
        );
        assert_eq!(out, "✓ built\ndocs\n");
        assert_eq!(err, format!("── a#build ──\n{COLOURED}"));
    }

    #[test]
    fn live_output_passes_through_unless_vp_asked_for_the_colour() {
        // Piped: the tools saw no terminal and no FORCE_COLOR from vp, so
        // whatever they wrote is theirs (a `--color` flag) and kept.
        let (out, _) = run(
            LogMode::Interleaved,
            &coloured(0, OutputStream::Stdout, OutputOrigin::Live),
        );
        assert_eq!(out, COLOURED);
        let (out, _) = run_with(
            LogMode::Interleaved,
            terminals(true, true),
            &coloured(0, OutputStream::Stdout, OutputOrigin::Live),
        );
        assert_eq!(out, COLOURED);
        // Only stderr is a terminal: vp set no FORCE_COLOR, so stdout (a
        // file, maybe binary) gets exactly what the tool wrote.
        let (out, _) = run_with(
            LogMode::Interleaved,
            terminals(false, true),
            &coloured(0, OutputStream::Stdout, OutputOrigin::Live),
        );
        assert_eq!(out, COLOURED);
        // Only stdout is a terminal: the redirected stderr does not get the
        // colour vp's FORCE_COLOR caused.
        let (_, err) = run_with(
            LogMode::Interleaved,
            terminals(true, false),
            &coloured(0, OutputStream::Stderr, OutputOrigin::Live),
        );
        assert_eq!(err, "✓ built\ndocs\n");
    }

    #[test]
    fn labeled_prefixes_whole_lines() {
        let (out, _) = run(LogMode::Labeled, &events());
        assert_eq!(out, "[a#build] a1\n[b#build] b1\n[a#build] a2\n");
    }

    #[test]
    fn grouped_prints_blocks_in_finish_order() {
        let (out, err) = run(LogMode::Grouped, &events());
        assert_eq!(out, "b1\na1\na2\n");
        assert!(
            err.starts_with("── b#build ──\n$ node x ⊘ cache disabled\n── a#build ──"),
            "{err}"
        );
    }

    #[test]
    fn waiting_is_shown_at_once_in_every_mode() {
        use crate::events::{LeftRunning, Waiting, WaitingFor};
        let waiting = RunEvent::TaskWaiting {
            task: 1,
            waiting: Waiting {
                what: WaitingFor::OutputPipes,
                processes: vec![LeftRunning {
                    pid: 9,
                    command: "sleep 30".into(),
                }],
            },
        };
        for (mode, prefix) in [
            (LogMode::Interleaved, ""),
            (LogMode::Labeled, "[b#build] "),
            (LogMode::Grouped, "[b#build] "),
        ] {
            let (out, err) = run(mode, std::slice::from_ref(&waiting));
            assert_eq!(out, "");
            assert!(
                err.starts_with(&format!(
                    "{prefix}vp: the main process exited, but pid 9 (`sleep 30`)"
                )),
                "{mode:?}: {err}"
            );
            assert_eq!(err.lines().count(), 2, "{err}");
            assert!(
                err.lines()
                    .nth(1)
                    .is_some_and(|l| l.starts_with(&format!("{prefix}vp: hint: "))),
                "{err}"
            );
        }
    }

    #[test]
    fn a_run_that_was_not_stored_is_named_in_the_summary_and_the_details() {
        use crate::events::NotCached;
        let stats = RunStats {
            tasks: 1,
            succeeded: 1,
            not_cached: vec![(
                "a#build".into(),
                NotCached::ModifiedInput {
                    path: "src/gen.ts".into(),
                },
            )],
            ..Default::default()
        };
        let (_, err) = run(LogMode::Interleaved, &[RunEvent::RunFinished { stats }]);
        assert!(
            err.ends_with(
                "vp run: a#build not cached because it modified its input 'src/gen.ts'.\n"
            ),
            "{err}"
        );
    }

    #[test]
    fn summary_lines() {
        let mut s = RunStats {
            tasks: 3,
            succeeded: 1,
            failed: 1,
            skipped: 1,
            ..Default::default()
        };
        s.first_failure = Some(("a#build".into(), 2));
        s.duration = Duration::from_millis(1500);
        assert_eq!(
            summary_line(&s),
            "vp run: 1 of 3 tasks succeeded in 1.5s. a#build failed with exit code 2; 1 not started."
        );
        let s = RunStats {
            tasks: 2,
            cached_commands: 2,
            cache_hits: 1,
            saved: Duration::from_millis(1200),
            ..Default::default()
        };
        assert_eq!(summary_line(&s), "vp run: 1/2 cache hit (50%), 1.2s saved.");
        let s = RunStats {
            remote_hits: 1,
            ..s
        };
        assert_eq!(
            summary_line(&s),
            "vp run: 1/2 cache hit (50%; 1 remote), 1.2s saved."
        );
    }
}

//! The lines `vp run --watch` prints between its cycles: what it watches,
//! which edit re-runs which tasks (`crate::events::WatchEvent`). On stderr,
//! like every line of vp's own; each cycle's tasks are reported by a
//! `Reporter` of their own.

use std::io::Write;

use crate::events::{PinReason, Unobserved, WatchEvent};

pub(crate) struct WatchReporter {
    verbose: bool,
    err: Box<dyn Write>,
}

impl WatchReporter {
    pub(crate) fn new(verbose: bool, err: Box<dyn Write>) -> WatchReporter {
        WatchReporter { verbose, err }
    }

    /// On vp's own stderr.
    pub(crate) fn terminal(verbose: bool) -> WatchReporter {
        WatchReporter::new(verbose, Box::new(std::io::stderr()))
    }

    /// Writes one event (nothing for the `-v`-only ones without `-v`).
    /// Write errors are ignored: watching goes on.
    pub(crate) fn report(&mut self, event: &WatchEvent) {
        if let Some(line) = line(event, self.verbose) {
            let _ = writeln!(self.err, "vp: {line}");
            let _ = self.err.flush();
        }
    }
}

/// `1 file`, `2 files`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// ` (and 2 more)`, or nothing.
fn and_more(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(" (and {more} more)")
    }
}

fn line(event: &WatchEvent, verbose: bool) -> Option<String> {
    Some(match event {
        WatchEvent::Watching {
            paths,
            tasks,
            dirs,
            left_out,
        } => {
            let mut line = format!(
                "watching {} in {} (Ctrl-C to stop)",
                count(*paths, "file", "files"),
                count(*tasks, "task", "tasks")
            );
            if verbose {
                line.push_str(&format!(
                    "; {} watched",
                    count(*dirs, "directory", "directories")
                ));
            }
            if *left_out > 0 {
                line.push_str(&format!(
                    "; {} not watched (over the bound, or refused by the system): edits there go unseen",
                    count(*left_out, "directory", "directories")
                ));
            }
            line
        }
        WatchEvent::WatchingPackage { task, why } if verbose => {
            let why = match why {
                Unobserved::CacheOff => "its cache is off, so it is not traced",
                Unobserved::CacheUnavailable => "the cache is unavailable",
                Unobserved::NotStored => "its run was not stored",
                Unobserved::DidNotSucceed => "it did not succeed",
            };
            format!("{task}: what it reads is unknown ({why}); watching its package directory")
        }
        WatchEvent::Ignored { path, more } if verbose => {
            format!("changed: {path}{} → nothing to re-run", and_more(*more))
        }
        WatchEvent::WatchingPackage { .. } | WatchEvent::Ignored { .. } => return None,
        WatchEvent::Pinned { task, why } => match why {
            PinReason::Persistent => {
                format!("{task} is persistent: started once, never re-run by an edit")
            }
            PinReason::ToolDisabledCache { by } => format!(
                "{task}: {by} called disableCache(), so no edit re-runs it (restart vp to run it again)"
            ),
        },
        WatchEvent::Changed { path, more, tasks } => {
            format!("changed: {path}{} → {}", and_more(*more), tasks.join(", "))
        }
        WatchEvent::Replanning { path } => {
            format!("changed: {path} → planning the run again")
        }
        WatchEvent::PlanFailed { error } => {
            format!("cannot plan the run: {error}\n(hint: fix it and save; vp keeps watching)")
        }
        WatchEvent::WatcherFailed { error } => {
            format!("the file watcher failed: {error}; edits may have been missed")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let watching = WatchEvent::Watching {
            paths: 214,
            tasks: 3,
            dirs: 40,
            left_out: 0,
        };
        assert_eq!(
            line(&watching, false).as_deref(),
            Some("watching 214 files in 3 tasks (Ctrl-C to stop)")
        );
        assert_eq!(
            line(&watching, true).as_deref(),
            Some("watching 214 files in 3 tasks (Ctrl-C to stop); 40 directories watched")
        );
        let changed = WatchEvent::Changed {
            path: "src/a.ts".into(),
            more: 0,
            tasks: vec!["app#build".into()],
        };
        assert_eq!(
            line(&changed, false).as_deref(),
            Some("changed: src/a.ts → app#build")
        );
        let ignored = WatchEvent::Ignored {
            path: "notes.txt".into(),
            more: 2,
        };
        assert_eq!(line(&ignored, false), None);
        assert_eq!(
            line(&ignored, true).as_deref(),
            Some("changed: notes.txt (and 2 more) → nothing to re-run")
        );
        let one = WatchEvent::Watching {
            paths: 1,
            tasks: 1,
            dirs: 1,
            left_out: 1,
        };
        assert_eq!(
            line(&one, false).as_deref(),
            Some(
                "watching 1 file in 1 task (Ctrl-C to stop); 1 directory not watched (over the bound, or refused by the system): edits there go unseen"
            )
        );
    }

    #[test]
    fn the_writer_gets_prefixed_lines() {
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut r = WatchReporter::new(false, Box::new(Shared(std::rc::Rc::clone(&buf))));
        r.report(&WatchEvent::Pinned {
            task: "app#dev".into(),
            why: PinReason::Persistent,
        });
        r.report(&WatchEvent::Ignored {
            path: "x".into(),
            more: 0,
        });
        assert_eq!(
            String::from_utf8_lossy(&buf.borrow()),
            "vp: app#dev is persistent: started once, never re-run by an edit\n"
        );
    }
}

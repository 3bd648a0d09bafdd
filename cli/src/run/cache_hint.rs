//! The tip after a run of `package.json` scripts that ran uncached only
//! because scripts are uncached by default: when nothing the run showed rules
//! caching out, vp suggests `--cache`, once, after the run's summary.
//!
//! An uncached command is not traced (the tracer costs time and is only worth
//! it when the result may be stored), so "would have been cacheable" is what
//! vp knows without it: every command exited 0, the run was not cancelled,
//! and no tool objected over the bridge, which is always on (`disableCache()`
//! from a dev server, a protocol error, a client still talking at the end).
//! What only the tracer can tell (a command that rewrites its own input) is
//! left to the first `--cache` run, which says so if it does not store.
//! [`CacheHint`] collects the facts while the tasks run; [`CacheHint::notice`]
//! decides at the end of the batch (`session::RunSession::run_batch`, which
//! gives it once per session). docs/caching.md, "The `--cache` tip", has the
//! rules.

use std::cell::Cell;

use crate::events::RunNotice;

/// What one run saw of its uncached commands (event-loop thread only).
#[derive(Debug, Default)]
pub(crate) struct CacheHint {
    /// Commands that ran uncached only because scripts are by default.
    by_default: Cell<usize>,
    /// Something rules caching out or was chosen: a tool objected, or a
    /// command's cache was turned off on purpose (`--no-cache`, `cache: false`).
    ruled_out: Cell<bool>,
}

/// How the run ended, as far as the tip cares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunEnd {
    /// Every task succeeded; none failed, was skipped or was cancelled.
    pub(crate) all_succeeded: bool,
    /// A cached command of the run was not stored (`NotCached`).
    pub(crate) some_not_stored: bool,
    /// vp's stderr, where the tip goes, is a terminal.
    pub(crate) stderr_is_terminal: bool,
}

impl CacheHint {
    /// A command ran with its cache off. `by_default`: off only because it
    /// is a script and scripts are uncached by default (no flag, no `cache`
    /// setting); `objected`: one of its tools forbade caching over the bridge.
    pub(crate) fn ran_uncached(&self, by_default: bool, objected: bool) {
        if by_default && !objected {
            self.by_default.set(self.by_default.get() + 1);
        } else {
            self.ruled_out.set(true);
        }
    }

    /// The tip, when the run earned one: some command ran uncached by
    /// default, nothing ruled caching out, and a person reads stderr (a log
    /// or a pipe is a script or CI, where a tip repeated every run is noise).
    pub(crate) fn notice(&self, end: RunEnd) -> Option<RunNotice> {
        let earned = self.by_default.get() > 0
            && !self.ruled_out.get()
            && end.all_succeeded
            && !end.some_not_stored
            && end.stderr_is_terminal;
        earned.then(|| RunNotice::CacheSuggested {
            commands: self.by_default.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: RunEnd = RunEnd {
        all_succeeded: true,
        some_not_stored: false,
        stderr_is_terminal: true,
    };

    #[test]
    fn scripts_uncached_by_default_get_the_tip_once() {
        let hint = CacheHint::default();
        hint.ran_uncached(true, false);
        hint.ran_uncached(true, false);
        assert_eq!(
            hint.notice(CLEAN),
            Some(RunNotice::CacheSuggested { commands: 2 })
        );
    }

    #[test]
    fn nothing_uncached_by_default_no_tip() {
        assert_eq!(CacheHint::default().notice(CLEAN), None);
    }

    #[test]
    fn a_tool_that_objects_or_a_chosen_no_cache_rules_it_out() {
        let objected = CacheHint::default();
        objected.ran_uncached(true, false);
        objected.ran_uncached(true, true);
        assert_eq!(objected.notice(CLEAN), None);

        let chosen = CacheHint::default();
        chosen.ran_uncached(true, false);
        chosen.ran_uncached(false, false);
        assert_eq!(chosen.notice(CLEAN), None);
    }

    #[test]
    fn a_failed_run_a_refused_store_or_no_terminal_no_tip() {
        let hint = CacheHint::default();
        hint.ran_uncached(true, false);
        for end in [
            RunEnd {
                all_succeeded: false,
                ..CLEAN
            },
            RunEnd {
                some_not_stored: true,
                ..CLEAN
            },
            RunEnd {
                stderr_is_terminal: false,
                ..CLEAN
            },
        ] {
            assert_eq!(hint.notice(end), None, "{end:?}");
        }
    }
}

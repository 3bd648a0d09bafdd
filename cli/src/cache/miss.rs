//! Why a lookup missed, in the words users of vite-task already read:
//! `'src/a.js' modified`, `'b.js' added in 'src'`, `env 'X' changed`, ...
//! The lookup collects *every* difference; `MissReasons::display` shows them
//! relative to the task's package and caps the list with "and N more".

use std::fmt;

use super::paths::RelPath;

/// One difference between this run and the task's previous cached run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MissReason {
    /// The task has never been stored (or the cache was cleaned).
    NoPreviousRun,
    /// The task's previous entry was evicted or could not be read, and
    /// nothing else is known to differ.
    PreviousRunEvicted,
    ArgsChanged,
    ProgramChanged,
    /// A program outside the workspace that the run executed changed, or
    /// another of its name now comes first on `PATH` (`cache::programs`).
    ToolChanged(String),
    WorkingDirectoryChanged,
    InputConfigChanged,
    OutputConfigChanged,
    PlatformChanged,
    /// A variable the user's `untrackedEnv` names is set now and was not
    /// (its presence is in the key, its value never is).
    UntrackedEnvSet(String),
    /// A variable the user's `untrackedEnv` names was set and is not now.
    UntrackedEnvUnset(String),
    /// A stored `getEnvs` query no longer compiles (a vp upgrade changed
    /// the glob rules), so its match-set cannot be compared.
    EnvQueryUnreadable(String),
    EnvChanged(String),
    EnvAdded(String),
    EnvRemoved(String),
    /// A file (or directory, symlink) that was read differs.
    Modified(RelPath),
    /// A path that was missing (or absent from a listing) now exists.
    Added(RelPath),
    /// A path that existed (or was listed) is gone.
    Removed(RelPath),
    /// An output's path holds something vp did not leave there (see
    /// `store::in_place`): a hit would write over it.
    OutputChanged(RelPath),
    /// A run that was not stored (failed, refused, cancelled) left this
    /// output, and the entry does not make it: a hit would leave it beside
    /// what it restores (`store::leftovers`).
    LeftByUnstoredRun(RelPath),
}

impl MissReason {
    /// The text with paths shown relative to `base` (workspace-relative).
    fn write(&self, f: &mut fmt::Formatter<'_>, base: &RelPath) -> fmt::Result {
        match self {
            Self::NoPreviousRun => f.write_str("no previous run"),
            Self::PreviousRunEvicted => f.write_str("previous run no longer in the cache"),
            Self::ArgsChanged => f.write_str("args changed"),
            Self::ProgramChanged => f.write_str("program changed"),
            Self::ToolChanged(p) => write!(f, "program '{p}' changed"),
            Self::WorkingDirectoryChanged => f.write_str("working directory changed"),
            Self::InputConfigChanged => f.write_str("input configuration changed"),
            Self::OutputConfigChanged => f.write_str("output configuration changed"),
            Self::PlatformChanged => f.write_str("platform changed"),
            Self::UntrackedEnvSet(n) => write!(f, "untracked env '{n}' set"),
            Self::UntrackedEnvUnset(n) => write!(f, "untracked env '{n}' unset"),
            Self::EnvQueryUnreadable(q) => write!(f, "env query '{q}' cannot be evaluated"),
            Self::EnvChanged(n) => write!(f, "env '{n}' changed"),
            Self::EnvAdded(n) => write!(f, "env '{n}' added"),
            Self::EnvRemoved(n) => write!(f, "env '{n}' removed"),
            Self::Modified(p) => write!(f, "'{}' modified", p.relative_to(base)),
            Self::OutputChanged(p) => {
                write!(
                    f,
                    "output '{}' holds what vp did not leave there",
                    p.relative_to(base)
                )
            }
            Self::LeftByUnstoredRun(p) => write!(
                f,
                "'{}' was left by a run that was not stored",
                p.relative_to(base)
            ),
            Self::Added(p) => write!(
                f,
                "'{}' added in '{}'",
                name(p),
                p.parent().relative_to(base)
            ),
            Self::Removed(p) => write!(
                f,
                "'{}' removed from '{}'",
                name(p),
                p.parent().relative_to(base)
            ),
        }
    }
}

fn name(p: &RelPath) -> String {
    crate::cache::paths::readable_name(p.file_name())
}

impl MissReason {
    /// The file a reason is about (file reasons are listed in path order).
    pub(crate) fn path(&self) -> Option<&RelPath> {
        match self {
            Self::Modified(p) | Self::Added(p) | Self::Removed(p) | Self::LeftByUnstoredRun(p) => {
                Some(p)
            }
            _ => None,
        }
    }
}

impl MissReason {
    /// This reason alone, with paths relative to `base`, as a header shows
    /// it (the JSON reports give each reason its own text).
    pub(crate) fn display_in<'a>(&'a self, base: &'a RelPath) -> impl fmt::Display + 'a {
        struct In<'a>(&'a MissReason, &'a RelPath);
        impl fmt::Display for In<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, self.1)
            }
        }
        In(self, base)
    }
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, &RelPath::root())
    }
}

/// Every reason for one miss, in a stable order (configuration first, then
/// env, then files), deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MissReasons(Vec<MissReason>);

impl MissReasons {
    pub(crate) fn new(mut reasons: Vec<MissReason>) -> Self {
        // Keep the first of duplicates (a file can be reported both by a
        // glob re-walk and by its own check).
        let mut seen = std::collections::HashSet::new();
        reasons.retain(|r| seen.insert(r.clone()));
        reasons.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.path().cmp(&b.path())));
        Self(reasons)
    }

    pub(crate) fn as_slice(&self) -> &[MissReason] {
        &self.0
    }

    pub(crate) fn is_first_run(&self) -> bool {
        self.0 == [MissReason::NoPreviousRun]
    }

    /// Shows at most `limit` reasons joined by `, `, then "and N more";
    /// paths relative to `base` (the task's package directory).
    pub(crate) fn display<'a>(&'a self, base: &'a RelPath, limit: usize) -> impl fmt::Display + 'a {
        Shown {
            reasons: &self.0,
            base,
            limit: limit.max(1),
        }
    }
}

struct Shown<'a> {
    reasons: &'a [MissReason],
    base: &'a RelPath,
    limit: usize,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reasons.iter().take(self.limit).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            r.write(f, self.base)?;
        }
        let rest = self.reasons.len().saturating_sub(self.limit);
        if rest > 0 {
            write!(f, " and {rest} more")?;
        }
        Ok(())
    }
}

/// The order a user wants to read them in: what changed about the command,
/// then env, then files (by path). Stable, so env reasons keep their order.
fn rank(r: &MissReason) -> u8 {
    match r {
        MissReason::NoPreviousRun | MissReason::PreviousRunEvicted => 0,
        MissReason::PlatformChanged => 1,
        MissReason::ProgramChanged | MissReason::ToolChanged(_) => 2,
        MissReason::ArgsChanged => 3,
        MissReason::WorkingDirectoryChanged => 4,
        MissReason::InputConfigChanged | MissReason::OutputConfigChanged => 5,
        MissReason::UntrackedEnvSet(_)
        | MissReason::UntrackedEnvUnset(_)
        | MissReason::EnvQueryUnreadable(_)
        | MissReason::EnvChanged(_)
        | MissReason::EnvAdded(_)
        | MissReason::EnvRemoved(_) => 6,
        MissReason::Modified(_)
        | MissReason::Added(_)
        | MissReason::Removed(_)
        | MissReason::OutputChanged(_) => 7,
        // After the edits that explain a miss: a failed build can leave
        // hundreds of chunks.
        MissReason::LeftByUnstoredRun(_) => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::from_stored(s.as_bytes()).expect("valid path")
    }

    #[test]
    fn grammar_matches_compat() {
        let base = rel("packages/a");
        let cases = [
            (
                MissReason::Modified(rel("packages/a/test.txt")),
                "'test.txt' modified",
            ),
            (
                MissReason::Added(rel("packages/a/src/b.js")),
                "'b.js' added in 'src'",
            ),
            (
                MissReason::Removed(rel("packages/a/src/c.js")),
                "'c.js' removed from 'src'",
            ),
            (
                MissReason::Added(rel("packages/a/b.js")),
                "'b.js' added in '.'",
            ),
            (
                MissReason::Modified(rel("shared/x.js")),
                "'../../shared/x.js' modified",
            ),
            (
                MissReason::EnvChanged("VITE_MY_VAR".into()),
                "env 'VITE_MY_VAR' changed",
            ),
            (MissReason::EnvAdded("A".into()), "env 'A' added"),
            (MissReason::EnvRemoved("A".into()), "env 'A' removed"),
            (MissReason::ArgsChanged, "args changed"),
            (MissReason::ProgramChanged, "program changed"),
            (
                MissReason::WorkingDirectoryChanged,
                "working directory changed",
            ),
            (
                MissReason::InputConfigChanged,
                "input configuration changed",
            ),
            (
                MissReason::UntrackedEnvSet("DEBUG".into()),
                "untracked env 'DEBUG' set",
            ),
            (
                MissReason::UntrackedEnvUnset("DEBUG".into()),
                "untracked env 'DEBUG' unset",
            ),
        ];
        for (reason, want) in cases {
            let all = MissReasons::new(vec![reason]);
            assert_eq!(all.display(&base, 10).to_string(), want);
        }
    }

    #[test]
    fn caps_with_and_n_more() {
        let reasons: Vec<_> = (0..7)
            .map(|i| MissReason::Modified(rel(&format!("f{i}"))))
            .collect();
        let all = MissReasons::new(reasons);
        assert_eq!(
            all.display(&RelPath::root(), 3).to_string(),
            "'f0' modified, 'f1' modified, 'f2' modified and 4 more"
        );
        assert_eq!(
            all.display(&RelPath::root(), 0)
                .to_string()
                .matches("modified")
                .count(),
            1
        );
    }

    #[test]
    fn orders_config_before_env_before_files_and_dedups() {
        let all = MissReasons::new(vec![
            MissReason::Modified(rel("a")),
            MissReason::EnvAdded("X".into()),
            MissReason::ArgsChanged,
            MissReason::Modified(rel("a")),
        ]);
        assert_eq!(
            all.display(&RelPath::root(), 10).to_string(),
            "args changed, env 'X' added, 'a' modified"
        );
        assert!(!all.is_first_run());
        assert!(MissReasons::new(vec![MissReason::NoPreviousRun]).is_first_run());
    }
}

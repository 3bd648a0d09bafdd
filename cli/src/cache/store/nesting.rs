//! Whether the vp holding the store's lock is one this process runs under,
//! and whether waiting for it can ever end.
//!
//! A task may run `vp run` itself. If its own command is cached, the outer
//! vp holds the lock until that command is over, and the command includes
//! the nested run: waiting would always time out, so the nested run goes
//! without the cache and the outer task's entry covers what it did. If the
//! command is not cached (a `dev` script that builds a package), the outer
//! vp holds the lock only while a cached task runs beside it, and lets it go
//! after (`run/lock_use.rs`): the nested run waits like for any other vp and
//! stores its own results. Being a descendant of the holder does not tell
//! the two apart; the list of vps whose cached commands a process runs in,
//! handed down in [`CachedBy::VAR`], does.

use std::fs;

/// The vps whose cached commands this process runs inside, outermost first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CachedBy {
    pids: Vec<u32>,
    /// A vp that got no list: the variable was removed on the way (`env
    /// -i`, `sudo`, a tool that passes only the variables it knows), or the
    /// vp above it predates the list. Every vp above that one is taken to
    /// cache what it runs, as before the list: a nested run that waits for
    /// its own outer task's lock waits the whole timeout for nothing.
    unknown_above: Option<u32>,
}

impl CachedBy {
    /// The variable each command's processes get it in: pids separated by
    /// spaces, and `?PID` for a vp above which nothing is known. It is set
    /// for every command, empty when no vp above caches it: a missing
    /// variable means that something between removed it.
    pub(crate) const VAR: &'static str = "VP_RUN_CACHED_BY";

    /// Parses the inherited value (`None` when the variable is missing:
    /// nothing is known above this process). Anything that is not a pid is
    /// skipped: a value a user set by hand cannot make a run wait forever,
    /// at worst a nested run waits for the lock timeout.
    pub(crate) fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self {
                pids: Vec::new(),
                unknown_above: Some(std::process::id()),
            };
        };
        let mut out = Self::default();
        for word in value.split_ascii_whitespace() {
            match word.strip_prefix('?') {
                Some(pid) => out.unknown_above = pid.parse().ok().or(out.unknown_above),
                None => out.pids.extend(word.parse::<u32>().ok()),
            }
        }
        out
    }

    /// The value a command started by this process gets: the inherited
    /// list, and this process itself when the command is cached.
    pub(crate) fn for_command(&self, cached: bool) -> String {
        let own = cached.then(std::process::id);
        let words: Vec<String> = self
            .unknown_above
            .map(|pid| format!("?{pid}"))
            .into_iter()
            .chain(self.pids.iter().copied().chain(own).map(|p| p.to_string()))
            .collect();
        words.join(" ")
    }

    /// Whether `holder` holds the lock for a cached command this process
    /// runs inside, and how that is known: it is this process's ancestor (a
    /// listed pid that exited and was reused names some other process), and
    /// it is in the list, or above the vp that got none.
    pub(crate) fn caches_this_process(&self, holder: u32) -> Option<OuterCaching> {
        if !is_ancestor(holder) {
            None
        } else if self.pids.contains(&holder) {
            Some(OuterCaching::Listed)
        } else {
            self.unknown_above
                .filter(|&below| is_ancestor_of(holder, below))
                .map(|below| OuterCaching::Assumed { below })
        }
    }

    #[cfg(test)]
    pub(crate) fn of(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            unknown_above: None,
        }
    }
}

/// How a nested run knows that the vp above it holding the lock caches the
/// command it runs in: what it tells the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OuterCaching {
    /// `VP_RUN_CACHED_BY` names it.
    Listed,
    /// The variable did not reach vp `below` (this one, or one above it):
    /// every vp above that one is taken to cache what it runs.
    Assumed { below: u32 },
}

/// How the vp holding the lock is related to this one: what a wait for it
/// says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kin {
    /// Neither above nor below this process.
    Other,
    /// Above: it started this one, here for a task beside the command this
    /// one runs in (for that command it is never waited for).
    Parent,
    /// Below: a `vp run` in one of this vp's own tasks, which lets the lock
    /// go when its cached commands are done.
    Child,
}

impl Kin {
    pub(crate) fn of(holder: u32) -> Self {
        if is_ancestor(holder) {
            Self::Parent
        } else if is_ancestor_of(std::process::id(), holder) {
            Self::Child
        } else {
            Self::Other
        }
    }

    /// The holder, as a wait notice and a run's header name it.
    pub(crate) fn holder(self) -> &'static str {
        match self {
            Self::Other => "another vp",
            Self::Parent => "the vp that started this one",
            Self::Child => "a vp started by a task of this one",
        }
    }
}

/// Whether `pid` is this process's parent, grandparent, ... (read from
/// `/proc`, which every Linux vp has; any read failure means "no").
pub(super) fn is_ancestor(pid: u32) -> bool {
    is_ancestor_of(pid, std::process::id())
}

/// Whether `pid` is above `of` in the process tree.
fn is_ancestor_of(pid: u32, of: u32) -> bool {
    let mut current = of;
    for _ in 0..64 {
        let Some(parent) = parent_of(current) else {
            return false;
        };
        if parent == pid {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        current = parent;
    }
    false
}

pub(super) fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_command_adds_this_vp_and_an_uncached_one_passes_the_list_on() {
        let inherited = CachedBy::parse(Some("12 34"));
        let me = std::process::id();
        assert_eq!(inherited.for_command(true), format!("12 34 {me}"));
        assert_eq!(inherited.for_command(false), "12 34");
        let none_above = CachedBy::parse(Some(""));
        assert_eq!(none_above, CachedBy::default());
        assert_eq!(none_above.for_command(false), "", "set, and empty");
        assert_eq!(none_above.for_command(true), me.to_string());
        assert_eq!(CachedBy::parse(Some(" 7  x 8\n")), CachedBy::of(&[7, 8]));
        // No variable: nothing is known above this vp, and its commands
        // are told so.
        let unknown = CachedBy::parse(None);
        assert_eq!(unknown.for_command(true), format!("?{me} {me}"));
        assert_eq!(CachedBy::parse(Some(&unknown.for_command(false))), unknown);
    }

    /// Review: with the variable removed on the way (`env -u`, `sudo`, an
    /// older vp above), a nested run waited 10 s for its own outer task's
    /// lock. Every vp above one that got no list counts as caching.
    #[test]
    fn without_a_list_every_vp_above_counts_as_caching() {
        let parent = parent_of(std::process::id()).expect("a parent");
        assert!(CachedBy::parse(None).caches_this_process(parent).is_some());
        // Handed down by a vp that got none: above it, yes; itself, no.
        let by_parent = CachedBy::parse(Some(&format!("?{parent}")));
        assert!(by_parent.caches_this_process(parent).is_none());
        let grandparent = parent_of(parent).expect("a grandparent");
        let by_grandparent = CachedBy::parse(Some(&format!("?{grandparent}")));
        assert!(by_grandparent.caches_this_process(grandparent).is_none());
        assert_eq!(
            by_parent.caches_this_process(grandparent),
            Some(OuterCaching::Assumed { below: parent }),
            "the message names the vp the list did not reach"
        );
    }

    #[test]
    fn only_a_listed_ancestor_holds_the_lock_for_this_process() {
        let parent = parent_of(std::process::id()).expect("a parent");
        assert!(is_ancestor(parent) && !is_ancestor(std::process::id()));
        assert!(
            CachedBy::of(&[parent])
                .caches_this_process(parent)
                .is_some()
        );
        // The parent runs this process in a command it does not cache.
        assert!(CachedBy::default().caches_this_process(parent).is_none());
        // Listed, but not above this process (a reused pid).
        let me = std::process::id();
        assert!(CachedBy::of(&[me]).caches_this_process(me).is_none());
    }

    #[test]
    fn a_holder_is_told_apart_by_where_it_is_in_the_process_tree() {
        let parent = parent_of(std::process::id()).expect("a parent");
        assert_eq!(Kin::of(parent), Kin::Parent);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        assert_eq!(Kin::of(child.id()), Kin::Child);
        let _ = child.kill();
        let _ = child.wait();
        // Orphaned at once: adopted by init or a subreaper, not by this
        // process or one above it.
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 5 >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("run sh");
        let orphan: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pid");
        assert_eq!(Kin::of(orphan), Kin::Other);
        // SAFETY: a plain signal to a process this test started.
        unsafe { libc::kill(i32::try_from(orphan).expect("a pid"), libc::SIGKILL) };
    }
}

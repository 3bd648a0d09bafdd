//! Timestamps in the file system's own clock. Linux stamps mtime/ctime from
//! the *coarse* realtime clock (one tick is 1-10 ms), so "was this file
//! changed after the task started?" is only sound when the start time is read
//! from that same coarse clock: a write after the start then always gets an
//! mtime >= the start, never a tick earlier.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub(crate) struct Timestamp(pub(crate) i64);

impl Timestamp {
    /// Now, by the clock file timestamps are taken from. The runner takes this
    /// right before spawning a task and passes it back when storing the run.
    pub(crate) fn now_coarse() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE
        // exists on every Linux since 2.6.32, and on failure `ts` stays zero,
        // which only makes the "changed since start" check stricter.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &raw mut ts) };
        if rc != 0 {
            return Self::now_fine();
        }
        Self::from_parts(ts.tv_sec, ts.tv_nsec)
    }

    /// The start time of a task: the first coarse-clock value later than the
    /// fine clock at the call. Two rules make "mtime >= start" exact:
    /// - every write before this call is stamped at most the fine time at the
    ///   call (since Linux 6.13 "multigrain" timestamps, a file can carry a
    ///   fine-grained mtime that is *ahead* of the coarse clock, so the end of
    ///   the current coarse tick is not enough: measured here as spurious
    ///   "modified while it ran" for files written just before a task);
    /// - every write after it is stamped at least the coarse clock, which
    ///   never goes back.
    ///
    /// Waits one or two clock ticks (a few ms). Blocking: call it off the
    /// event loop, right before spawning.
    pub(crate) fn task_start() -> Self {
        let before = Self::now_fine();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        loop {
            let now = Self::now_coarse();
            if now > before || std::time::Instant::now() >= deadline {
                // Past the deadline (a clock that does not move), the coarse
                // value errs on the side of not storing, never of a false hit.
                return now;
            }
            std::thread::sleep(std::time::Duration::from_micros(250));
        }
    }

    fn now_fine() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    fn from_parts(sec: i64, nsec: i64) -> Self {
        Self(sec.saturating_mul(1_000_000_000).saturating_add(nsec))
    }

    pub(crate) fn mtime(meta: &Metadata) -> Self {
        Self::from_parts(meta.mtime(), meta.mtime_nsec())
    }

    pub(crate) fn ctime(meta: &Metadata) -> Self {
        Self::from_parts(meta.ctime(), meta.ctime_nsec())
    }

    /// When the file was created (statx birth time), if the file system
    /// records it (ext4, xfs, btrfs, tmpfs do).
    pub(crate) fn birth(meta: &Metadata) -> Option<Self> {
        let d = meta
            .created()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Self(i64::try_from(d.as_nanos()).ok()?))
    }

    /// Milliseconds since the epoch (for last-used bookkeeping).
    pub(crate) fn as_millis(self) -> i64 {
        self.0 / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_after_now_coarse_is_not_older() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..50 {
            let start = Timestamp::now_coarse();
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, b"x").expect("write");
            let meta = std::fs::metadata(&p).expect("stat");
            assert!(
                Timestamp::mtime(&meta) >= start,
                "mtime before the coarse start"
            );
            assert!(
                Timestamp::ctime(&meta) >= start,
                "ctime before the coarse start"
            );
        }
    }

    #[test]
    fn a_write_before_task_start_is_older() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..10 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, b"x").expect("write");
            let start = Timestamp::task_start();
            let meta = std::fs::metadata(&p).expect("stat");
            assert!(
                Timestamp::mtime(&meta) < start,
                "a write before the start looks like one during the run"
            );
            std::fs::write(&p, b"y").expect("write");
            let meta = std::fs::metadata(&p).expect("stat");
            assert!(Timestamp::mtime(&meta) >= start);
        }
    }

    #[test]
    fn millis() {
        assert_eq!(Timestamp(1_500_000_000).as_millis(), 1500);
    }
}

//! Opening the store for a dry run (`vp run --dry-run`): read-only, without
//! taking RocksDB's lock, creating nothing and writing nothing: no cache
//! directory or marker, no pid file, no info log (RocksDB opens no `LOG` in
//! read-only mode), no schema stamp. A store that another vp holds is read
//! as it was when this open took its view, as a real run reads it (see
//! `open::open_read_mostly`): a hit is a hit, and a miss runs either way
//! (a real run then waits for the lock to store it). Only a holder the
//! kernel does not name, which might be the vp that started this one, is
//! not read.

use rocksdb::DB;
use std::fs;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use super::access::Access;
use super::db::Store;
use super::layout::CacheDir;
use super::nesting::{CachedBy, OuterCaching};
use super::open::{cf_descriptors, check_schema, read_options};
use crate::cache::error::CacheError;

/// What a dry run can read.
pub(crate) enum ReadOnly {
    /// The store, opened read-only.
    Ready(Store),
    /// There is no store yet (no cache directory, or no database in it):
    /// every lookup would be a first run.
    Empty,
    /// A process the kernel does not name holds the store's lock.
    Locked { holder: Option<u32> },
    /// The vp that started this one holds it for the cached command this
    /// nested `vp run` runs in.
    HeldByAncestor { holder: u32, why: OuterCaching },
}

/// Opens the store in `dir` read-only, as a process in the cached commands
/// of the vps in `cached_by`. Blocking, never waits.
pub(crate) fn open_read_only(dir: &Path, cached_by: &CachedBy) -> Result<ReadOnly, CacheError> {
    let Some(home) = CacheDir::find(dir)? else {
        return Ok(ReadOnly::Empty);
    };
    let db_dir = home.db();
    if !db_dir.join("CURRENT").is_file() {
        return Ok(ReadOnly::Empty);
    }
    match lock_holder(&db_dir.join("LOCK")) {
        Some(Some(pid)) if let Some(why) = cached_by.caches_this_process(pid) => {
            return Ok(ReadOnly::HeldByAncestor { holder: pid, why });
        }
        Some(None) => return Ok(ReadOnly::Locked { holder: None }),
        Some(Some(_)) | None => {}
    }
    let db = DB::open_cf_descriptors_read_only(&read_options(), &db_dir, cf_descriptors(), false)
        .map_err(|source| CacheError::Open {
        dir: dir.to_path_buf(),
        source,
    })?;
    // `existed`: never stamp a schema (a read-only store cannot, and a dry
    // run must not); a store a real run would set aside is reported as
    // unreadable.
    check_schema(&db, true).map_err(|reason| CacheError::Io {
        op: "read",
        path: dir.to_path_buf(),
        source: std::io::Error::other(reason),
    })?;
    let store = Store::new(Access::ReadOnly(std::sync::Arc::new(db)), dir, home);
    // What a real run would answer: the hits journaled since the last fold.
    store.load_journal();
    Ok(ReadOnly::Ready(store))
}

/// Whether a process holds RocksDB's lock on `lock` (a POSIX record lock on
/// the whole file, `fcntl(F_SETLK)`), asked with `F_GETLK`, which takes no
/// lock and changes nothing: `None` when it is free (or the file is
/// missing), `Some(pid)` naming the holder (`Some(None)` when the kernel
/// does not say who).
///
/// Closing the file it opens releases every POSIX lock this process holds
/// on `lock`: never call it while this process has the store open
/// read-write (only before opening, as `open` and dry runs do).
pub(super) fn lock_holder(lock: &Path) -> Option<Option<u32>> {
    let file = fs::File::open(lock).ok()?;
    // SAFETY: a zeroed `flock` is a valid value of this plain C struct.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    query.l_type = libc::F_WRLCK as libc::c_short;
    query.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the fd is open for the duration of the call and `query` is a
    // valid `flock` the kernel writes into.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut query) };
    if rc != 0 || query.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    Some(u32::try_from(query.l_pid).ok().filter(|&pid| pid > 0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::cache::store::open::{OpenOptions, Opened, open};

    /// Every path under `dir` with its size and modification time.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("read_dir").flatten() {
                let m = e.metadata().expect("metadata");
                if m.is_dir() {
                    stack.push(e.path());
                }
                out.insert(e.path(), (m.len(), m.modified().expect("mtime")));
            }
        }
        out
    }

    #[test]
    fn a_missing_cache_is_empty_and_stays_missing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        assert!(matches!(
            open_read_only(&dir, &CachedBy::default()),
            Ok(ReadOnly::Empty)
        ));
        assert!(!dir.exists(), "a dry run creates no cache directory");
    }

    #[test]
    fn reading_writes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        match open(&dir, &OpenOptions::waiting(Duration::ZERO), &mut |_| {}) {
            Ok(Opened::Ready(store)) => drop(store),
            _ => panic!("the store opens"),
        }
        let before = snapshot(&dir);
        // Past the file system's timestamp granularity, so a rewrite shows.
        std::thread::sleep(Duration::from_millis(20));
        let store = match open_read_only(&dir, &CachedBy::default()) {
            Ok(ReadOnly::Ready(store)) => store,
            Ok(_) => panic!("expected a readable store"),
            Err(e) => panic!("read-only open failed: {e}"),
        };
        assert!(store.task_record("t").expect("read").is_none());
        drop(store);
        assert_eq!(snapshot(&dir), before);
    }

    /// The lock of another process is seen without taking it (within one
    /// process `F_GETLK` never reports the process's own locks).
    #[test]
    fn another_process_holding_the_lock_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lock = tmp.path().join("LOCK");
        fs::write(&lock, "").expect("write");
        assert_eq!(lock_holder(&lock), None);
        assert_eq!(lock_holder(&tmp.path().join("missing")), None);
        // `flock(1)` takes BSD locks, which `F_GETLK` does not see: hold a
        // POSIX lock from a forked child. `locked`: child → parent, "held";
        // `release`: closed by the parent when the child may exit.
        let (mut locked, mut release) = ([0; 2], [0; 2]);
        // SAFETY: each array has room for a pipe's two descriptors.
        unsafe {
            assert_eq!(libc::pipe(locked.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(release.as_mut_ptr()), 0);
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&lock)
            .expect("open");
        // SAFETY: the child only makes async-signal-safe calls, then exits.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: plain syscalls on valid descriptors and buffers.
            unsafe {
                libc::close(release[1]);
                let mut f: libc::flock = std::mem::zeroed();
                f.l_type = libc::F_WRLCK as libc::c_short;
                f.l_whence = libc::SEEK_SET as libc::c_short;
                let ok = libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &f) == 0;
                let byte = [u8::from(ok)];
                libc::write(locked[1], byte.as_ptr().cast(), 1);
                let mut buf = [0u8; 1];
                libc::read(release[0], buf.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        unsafe { libc::read(locked[0], byte.as_mut_ptr().cast(), 1) };
        assert_eq!(byte, [1], "the child took the lock");
        let seen = lock_holder(&lock);
        // SAFETY: closing the release pipe lets the child exit; then reap it.
        unsafe {
            for fd in locked.into_iter().chain(release) {
                libc::close(fd);
            }
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(seen, Some(u32::try_from(child).ok()));
    }
}

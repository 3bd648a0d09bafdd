//! Hashing what a traced task reads while it runs, on a thread of low
//! priority, so that storing a miss finds most inputs already hashed.
//!
//! The tracer's in-process log names each file a task opens for reading
//! as it happens (`trace::InProcess::reads`); this module hashes each one
//! once, through one handle, with the stamp taken after hashing
//! (`digest::hash_if_regular_file`). Storing then trusts such a hash only
//! as it trusts the previous entry's (`file_state::vouches`): the file's
//! stamp must be the one recorded, and not racy against when it was taken.
//! A file changed after it was hashed has a new stamp and is hashed again;
//! one changed during the run keeps the run from being stored at all
//! ("modified during the run"). So a hash from here never stands for
//! content the file did not have when it was stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use super::clock::Timestamp;
use super::entry::{InputState, Stamp};
use super::file_state::Recorded;
use super::paths::{self, RelPath};

/// How long the hasher sleeps when its queue is empty before it looks
/// again (and whether it was told to stop). It never parks on the queue:
/// parking takes a lock in the channel that every sender then takes to wake
/// it, and a thread of the lowest priority, preempted while it holds that
/// lock on a busy machine, would hold up the tracer's threads that offer it
/// paths. Polling takes no lock on either side.
const IDLE_POLL: Duration = Duration::from_millis(2);

/// Paths waiting to be hashed, at most. The senders never wait (a traced
/// call must not): a path that finds the queue full is left to storing.
const QUEUE: usize = 16 << 10;

/// The files hashed while a task ran, by absolute path (byte-keyed, as the
/// tracer's maps: storing looks up every input here).
#[derive(Debug, Default)]
pub(crate) struct Prehashed {
    files: crate::trace::PathMap<(InputState, Timestamp)>,
}

impl Prehashed {
    /// What was recorded of `abs`, for `file_state::observe_since`.
    pub(crate) fn get(&self, abs: &Path) -> Option<Recorded<'_>> {
        self.files.get(abs).map(|(state, stat_time)| Recorded {
            state,
            stat_time: *stat_time,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// For tests elsewhere: what a hashing thread would have recorded.
    #[cfg(test)]
    pub(crate) fn recorded_for_test(abs: PathBuf, state: InputState, stat_time: Timestamp) -> Self {
        let mut out = Self::default();
        out.files.insert(abs, (state, stat_time));
        out
    }
}

/// The hashing thread of one traced command.
#[derive(Debug)]
pub(crate) struct Prehasher {
    stop: Arc<AtomicBool>,
    /// Each file as soon as it is hashed. The thread hands its results over
    /// one by one rather than returning them when joined: it runs at the
    /// lowest priority, and on a machine whose cores are busy with other
    /// tasks it may wait long for a slice in which to see that it was
    /// stopped. Nothing waits for it.
    hashed: Receiver<Hashed>,
    /// For tests, which wait for the thread to drain its queue. Elsewhere
    /// the handle is dropped at once, which detaches the thread.
    #[cfg(test)]
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One file hashed: its absolute path, its state, and the time taken
/// before its stamp (as storing takes its `stat_time`).
type Hashed = (PathBuf, InputState, Timestamp);

/// Starts hashing the paths sent to the returned sender that storing could
/// record: under `root`, not under `.git`, `cache_dir` or a tool's cache.
/// If no thread can be started the sender's other end is gone, and nothing
/// is hashed ahead.
pub(crate) fn start(root: PathBuf, cache_dir: &Path) -> (SyncSender<PathBuf>, Prehasher) {
    let (send, receive) = std::sync::mpsc::sync_channel(QUEUE);
    let (hand_over, hashed) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let cache_rel = RelPath::from_abs(&root, cache_dir);
    let thread = std::thread::Builder::new()
        .name("vp-prehash".to_owned())
        .spawn(move || {
            let scope = Scope { root, cache_rel };
            hash_until_stopped(&scope, &receive, &hand_over, &stopped);
        })
        .ok();
    #[cfg(not(test))]
    drop(thread);
    (
        send,
        Prehasher {
            stop,
            hashed,
            #[cfg(test)]
            thread,
        },
    )
}

/// Which paths are worth hashing ahead: those storing could record.
struct Scope {
    root: PathBuf,
    cache_rel: Option<RelPath>,
}

impl Scope {
    /// (A tool's cache is never an input, and Turbopack's holds files of
    /// megabytes.)
    fn admits(&self, abs: &Path) -> bool {
        paths::recordable(&self.root, self.cache_rel.as_ref(), abs).is_some()
            && !super::tool_cache::contains(&self.root, abs)
    }
}

impl Prehasher {
    /// Stops the thread and returns what it hashed so far, at once: a file
    /// it is hashing now is left to storing, and the thread ends by itself
    /// when it next looks.
    pub(crate) fn finish(self) -> Prehashed {
        self.stop.store(true, Ordering::Release);
        let mut out = Prehashed::default();
        for (path, state, stat_time) in self.hashed.try_iter() {
            out.files.insert(path, (state, stat_time));
        }
        out
    }
}

impl Drop for Prehasher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// `IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT` (linux/ioprio.h).
const IOPRIO_IDLE: libc::c_long = 3 << 13;
/// `IOPRIO_WHO_PROCESS`: one thread, by id.
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

fn hash_until_stopped(
    scope: &Scope,
    paths: &Receiver<PathBuf>,
    hashed: &std::sync::mpsc::Sender<Hashed>,
    stop: &AtomicBool,
) {
    // Only idle CPU and disk: the task itself must not wait for this thread.
    // `SCHED_IDLE` runs it only where nothing else wants the core; nice 19
    // alone still took a share from the task, from vp's tracer threads, and
    // from the end-of-run `lstat`s on every core (measured on a 50,000-file
    // miss: about 4 % of its wall time). Nice 19 stays for a kernel that
    // refuses the policy.
    // SAFETY: priority calls on this thread's own id; failure changes nothing.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param);
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            libc::c_long::from(tid),
            IOPRIO_IDLE,
        );
    }
    let keep_going = || !stop.load(Ordering::Acquire);
    let mut seen = std::collections::HashSet::<PathBuf, foldhash::fast::RandomState>::default();
    while !stop.load(Ordering::Acquire) {
        let path = match paths.try_recv() {
            Ok(path) => path,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if !scope.admits(&path) || !seen.insert(path.clone()) {
            continue;
        }
        // Before the stamp is taken, as storing takes its `stat_time`.
        let stat_time = Timestamp::now_coarse();
        if let Ok(Some((hash, meta))) = super::digest::hash_if_regular_file(&path, &keep_going) {
            let state = InputState::File {
                hash: super::digest::input_digest(hash, &meta),
                stamp: Stamp::of(&meta),
            };
            if hashed.send((path, state, stat_time)).is_err() {
                break; // finished: no one reads the rest
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_each_file_under_the_root_once_and_skips_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::write(root.join("a.txt"), "a").expect("write");
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::create_dir_all(root.join("cache")).expect("mkdir");
        std::fs::write(root.join(".git/HEAD"), "ref").expect("write");
        std::fs::write(root.join("cache/blob"), "vp's own").expect("write");
        std::fs::create_dir_all(root.join(".next/cache")).expect("mkdir");
        std::fs::write(root.join(".next/cache/0.sst"), "Turbopack's").expect("write");
        let outside = tempfile::NamedTempFile::new().expect("outside file");
        let (send, hasher) = start(root.clone(), &root.join("cache"));
        for path in [
            root.join("a.txt"),
            root.join("a.txt"),
            root.join("sub"),
            root.join("missing"),
            root.join(".git/HEAD"),
            root.join("cache/blob"),
            root.join(".next/cache/0.sst"),
            outside.path().to_path_buf(),
        ] {
            send.send(path).expect("hasher listening");
        }
        drop(send);
        // Let the thread drain the channel before it is told to stop.
        while hasher.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let hashed = hasher.finish();
        assert_eq!(hashed.len(), 1, "{hashed:?}");
        let recorded = hashed.get(&root.join("a.txt")).expect("a.txt hashed");
        let (hash, _) = super::super::digest::hash_file(&root.join("a.txt")).expect("hash");
        assert!(
            matches!(recorded.state, InputState::File { hash: h, .. } if *h == hash),
            "{:?}",
            recorded.state
        );
    }

    #[test]
    fn a_fifo_is_not_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let fifo = root.join("pipe");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (send, hasher) = start(root.clone(), &root.join("cache"));
        send.send(fifo).expect("listening");
        send.send(root.join("after.txt")).expect("listening");
        std::fs::write(root.join("after.txt"), "x").expect("write");
        drop(send);
        let started = std::time::Instant::now();
        while hasher.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stuck on the FIFO"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(hasher.finish().get(&root.join("pipe")).is_none());
    }

    /// The task's end does not wait for a large file being hashed, and
    /// gets the files hashed before it.
    #[test]
    fn finish_stops_in_the_middle_of_a_large_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let small = root.join("small.txt");
        std::fs::write(&small, "small").expect("write");
        let big = root.join("big.bin");
        let file = std::fs::File::create(&big).expect("create");
        // Sparse: 64 GiB of zeros the hasher would read for a minute.
        file.set_len(64 << 30).expect("sparse file");
        let (send, hasher) = start(root.clone(), &root.join("cache"));
        send.send(small.clone()).expect("listening");
        send.send(big.clone()).expect("listening");
        std::thread::sleep(Duration::from_millis(50));
        let started = std::time::Instant::now();
        let hashed = hasher.finish();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(hashed.get(&small).is_some(), "{hashed:?}");
        assert!(hashed.get(&big).is_none(), "a partial hash was kept");
    }

    #[test]
    fn finish_stops_a_hasher_whose_sender_lives_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_send, hasher) = start(dir.path().to_path_buf(), &dir.path().join("cache"));
        let started = std::time::Instant::now();
        assert_eq!(hasher.finish().len(), 0);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

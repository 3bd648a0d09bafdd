//! The supervisor: serves one listener on a thread of its own until the
//! traced tree is gone (POLLHUP), turning each notification into log
//! entries and always answering CONTINUE. Every traced thread waits for it
//! on each file system call, so it never waits for anything else: not for
//! the tracee, and not for the event loop (a loop busy with other tasks'
//! output would stall the build; on the loop, a `spawn` that waits for the
//! child's `execve` would even deadlock).

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::decode::{self, EmptyPath, Source, Target};
use super::filter::{AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::in_process::{self, InProcessLog};
use super::log::{Access, AccessLog, AtCall, Op};
use super::notify::{self, Readiness};
use super::tracee;

/// Symlinks followed when resolving a write (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// The thread ids a supervisor has seen, shared with the `Trace` that names
/// the processes still running.
pub(crate) type SeenThreads = Arc<Mutex<HashSet<u32>>>;

pub(crate) struct Supervisor {
    listener: OwnedFd,
    log: AccessLog,
    /// When the supervisor started, on the clock in-process records use.
    started_ns: u64,
    /// What the preload library recorded, read once the tree is gone.
    in_process: Option<std::sync::Arc<InProcessLog>>,
    /// Where each notified read is sent as it happens (`spawn::Reads`).
    reads: Option<super::spawn::Reads>,
    /// With `in_process`: each access's place in the order the library's
    /// records share (`InProcessLog::next_seq`), for merging them.
    seqs: Vec<u64>,
    /// Reused for every path string read from a tracee.
    buf: Vec<u8>,
    /// Every thread id that made a notified call, shared with the `Trace`
    /// (which names the traced processes still running when vp waits).
    seen: SeenThreads,
    last_tid: u32,
}

impl Supervisor {
    pub(crate) fn new(
        listener: OwnedFd,
        in_process: Option<std::sync::Arc<InProcessLog>>,
        reads: Option<super::spawn::Reads>,
    ) -> std::io::Result<Self> {
        // Ask for the 6.6+ synchronous wake-up; older kernels just say no.
        let _ = notify::set_sync_wake_up(listener.as_fd());
        Ok(Self {
            listener,
            log: AccessLog::default(),
            started_ns: in_process::monotonic_ns(),
            in_process,
            reads,
            seqs: Vec::new(),
            buf: Vec::with_capacity(256),
            seen: Arc::default(),
            last_tid: 0,
        })
    }

    /// The thread ids seen so far (growing while the supervisor runs).
    pub(crate) fn seen_threads(&self) -> SeenThreads {
        Arc::clone(&self.seen)
    }

    /// Serves notifications until no thread uses the filter any more.
    /// Blocking: runs on a thread of its own, which sleeps in `poll` on the
    /// listener alone, so the kernel's synchronous wake-up switches straight
    /// from the notifying thread to this one (through the event loop's
    /// epoll the wake-up may land on another core).
    /// Hands the log to `deliver` before the supervisor (and the
    /// in-process log's mapping, megabytes of a large run) is freed.
    pub(crate) fn run(mut self, deliver: impl FnOnce(AccessLog)) {
        loop {
            match notify::wait(self.listener.as_fd()) {
                Ok(Readiness::Pending) => self.serve_one(),
                Ok(Readiness::HungUp) => return deliver(self.finish()),
                Ok(Readiness::Idle) => {}
                Err(err) => {
                    // The tree may still be running: its in-process log
                    // cannot be read, and the run is untraceable anyway.
                    self.log
                        .mark_untraceable(format!("the tracer could not poll its listener: {err}"));
                    if let Some(in_process) = &self.in_process {
                        in_process.end_of_run();
                    }
                    return deliver(std::mem::take(&mut self.log));
                }
            }
        }
    }

    /// The log, with what the tree recorded in-process merged in. Only
    /// once no traced thread is left can nothing more be written there.
    fn finish(&mut self) -> AccessLog {
        if let Some(in_process) = &self.in_process {
            in_process.end_of_run();
            in_process.drain_into(&mut self.log, &self.seqs, self.started_ns);
        }
        std::mem::take(&mut self.log)
    }

    fn serve_one(&mut self) {
        let req = match notify::recv(self.listener.as_fd()) {
            Ok(req) => req,
            // The calling thread was killed between poll and receive.
            Err(err)
                if err.raw_os_error() == Some(libc::ENOENT)
                    || err.kind() == std::io::ErrorKind::Interrupted =>
            {
                return;
            }
            Err(err) => {
                self.log
                    .mark_untraceable(format!("the tracer could not receive a file access: {err}"));
                return;
            }
        };
        self.log.counts.notified += 1;
        let at = Duration::from_nanos(in_process::monotonic_ns().saturating_sub(self.started_ns));
        let tid = req.pid;
        if tid != self.last_tid {
            self.last_tid = tid;
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(tid);
        }
        let data = req.data;
        let nr = data.nr as u32;
        let mut pending: [Option<Access>; 2] = [None, None];
        if data.arch != AUDIT_ARCH_X86_64 {
            self.log.mark_untraceable(format!(
                "a process made 32-bit system calls (arch {:#x}); their file accesses are not decoded",
                data.arch
            ));
        } else if nr & X32_SYSCALL_BIT != 0 {
            self.log.mark_untraceable(
                "a process made x32 system calls; their file accesses are not decoded".to_owned(),
            );
        } else {
            let targets = decode::decode(i64::from(nr), data.args, |ptr| {
                tracee::read_u64(tid, ptr).ok()
            });
            for (slot, target) in pending.iter_mut().zip(targets) {
                if let Some(target) = target {
                    *slot = self.locate(tid, nr, target).map(|path| {
                        let at_call = if target.op.changes_name() {
                            self.resolve_now(&path, target.follow)
                        } else {
                            None
                        };
                        Access {
                            at,
                            tid,
                            path,
                            op: target.op,
                            follow: target.follow,
                            at_call,
                        }
                    });
                }
            }
        }
        // Only trust what was read if the thread is still the one that asked
        // (nothing to check for the many calls that record nothing, such as
        // libuv's `statx(fd, "", AT_EMPTY_PATH)` after each open).
        let listener = self.listener.as_fd();
        if pending.iter().any(Option::is_some) && notify::id_valid(listener, req.id) {
            let added = pending.iter().flatten().count();
            if let Some(reads) = &self.reads {
                for access in pending.iter().flatten() {
                    // A receiver gone only means nothing is hashed ahead.
                    if access.op == Op::Read && !super::spawn::offer(reads, access.path.clone()) {
                        self.reads = None;
                        break;
                    }
                }
            }
            self.log.accesses.extend(pending.into_iter().flatten());
            // Its place in the order, taken as late as possible before the
            // call runs (after the vectors grew): everything recorded
            // in-process before this comes first. A read on another thread
            // that overlaps the call (between here and the call's end) can
            // land on either side, as it could when every call was notified.
            if let Some(in_process) = &self.in_process {
                let seq = in_process.next_seq();
                self.seqs.extend(std::iter::repeat_n(seq, added));
            }
        }
        // Fails only if the thread died meanwhile: nothing to do.
        let _ = notify::send_continue(listener, req.id);
    }

    /// Where a name-changing call will land and whether its target exists,
    /// learned while the thread waits (vp itself is not traced, so these
    /// lookups are plain syscalls). Runs only for writes, removes, renames
    /// and links, a small share of calls.
    fn resolve_now(&mut self, path: &std::path::Path, follow: bool) -> Option<AtCall> {
        use std::io::ErrorKind;
        let mut current = path.to_path_buf();
        // Follow the last component ourselves (canonicalize gives up on a
        // dangling link, whose target is exactly what `open(O_CREAT)` makes).
        for _ in 0..=MAX_LINKS {
            let name = current.file_name()?.to_owned();
            let parent = match std::fs::canonicalize(current.parent()?) {
                Ok(parent) => parent,
                // The call fails (ENOENT): nothing is written, and the path
                // was missing. `tsc` tries its `.tsbuildinfo` before creating
                // the directory; an earlier failed open of it read nothing.
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Some(AtCall {
                        real: None,
                        existed: false,
                    });
                }
                Err(err) => return self.unresolvable(path, &err),
            };
            let real = parent.join(&name);
            match std::fs::symlink_metadata(&real) {
                Ok(meta) if follow && meta.file_type().is_symlink() => {
                    match std::fs::read_link(&real) {
                        Ok(target) => current = parent.join(target),
                        Err(err) => return self.unresolvable(path, &err),
                    }
                }
                Ok(_) => {
                    return Some(AtCall {
                        real: Some(real),
                        existed: true,
                    });
                }
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Some(AtCall {
                        real: Some(real),
                        existed: false,
                    });
                }
                Err(err) => return self.unresolvable(path, &err),
            }
        }
        // A symlink loop: the call fails with ELOOP and writes nothing.
        Some(AtCall {
            real: None,
            existed: false,
        })
    }

    /// Where a write lands could not be learned: the run cannot be pinned down.
    fn unresolvable(&mut self, path: &std::path::Path, err: &std::io::Error) -> Option<AtCall> {
        self.log.mark_untraceable(format!(
            "could not resolve where a write to `{}` lands: {err}",
            path.display()
        ));
        None
    }

    /// The absolute path a target names, or `None` when there is nothing to
    /// record (empty path, bad pointer, fd without a path).
    fn locate(&mut self, tid: u32, nr: u32, target: Target) -> Option<PathBuf> {
        let result = match target.source {
            Source::Fd(fd) => tracee::fd_path(tid, fd),
            Source::Path { dirfd, ptr, empty } => {
                match tracee::read_cstr(tid, ptr, &mut self.buf) {
                    Ok(()) if self.buf.is_empty() => match empty {
                        EmptyPath::Skip => Ok(None),
                        EmptyPath::Dirfd => tracee::fd_path(tid, dirfd),
                    },
                    Ok(()) => tracee::absolute(tid, &self.buf, || {
                        if dirfd == libc::AT_FDCWD {
                            tracee::cwd(tid).map(Some)
                        } else {
                            tracee::fd_path(tid, dirfd)
                        }
                    }),
                    Err(err) => Err(err),
                }
            }
        };
        match result {
            Ok(path) => path,
            Err(err) => {
                match err.raw_os_error() {
                    // A bad pointer or an overlong name makes the call itself
                    // fail; a bad dirfd too; ESRCH: the thread is gone.
                    Some(
                        libc::EFAULT
                        | libc::ENAMETOOLONG
                        | libc::ENOENT
                        | libc::EBADF
                        | libc::ESRCH,
                    ) => {}
                    _ => self.log.mark_untraceable(format!(
                        "could not read the path of system call {nr} made by thread {tid}: {err}"
                    )),
                }
                None
            }
        }
    }
}

//! The guard: a tiny process that kills every task vp started if vp dies
//! before it finishes: SIGKILL, a crash, an abort. It reads registrations
//! on a socket; when the socket reaches end of stream without a release
//! (every copy of vp's end closed: vp is gone), it sends SIGKILL to every
//! registered process group and process, then exits. It is vp's own binary
//! run again, started with vp's first task ([`ensure_started`]): a run in
//! which every task is a cache hit starts no guard.
//!
//! Why not `PR_SET_PDEATHSIG` in the child: it fires when the *thread* that
//! forked exits, and traced tasks are spawned on a `blocking` pool thread
//! that exits after 500 ms idle (measured: the child is killed while vp
//! lives); and it reaches the task's main process only, never the processes
//! that one starts. The group kill reaches every process still in the
//! task's process group: the task, its children and grandchildren, unless
//! one moved itself to another group or session (`setsid`, a daemon).
//!
//! Registrations come from the child itself, in a `pre_exec` hook
//! ([`register_self`]), so there is no moment between fork and
//! registration in which vp's death would leave the child behind: the
//! socket exists from vp's start ([`prepare`]), and the guard, started
//! before the first task is spawned, reads what was sent before it ran. A
//! group stays registered until it is found empty after its command
//! ([`forget_group_if_empty`]). Interactive tasks share vp's process
//! group (and the terminal), so they are registered as single processes:
//! the guard stops such a process and, found through `/proc` parent links,
//! every descendant, then kills them all; they are forgotten once reaped.
//! The guard notes each registered process's start time and never kills a
//! pid (or a group whose leader pid) now belongs to a later process: a
//! reused id is never mistaken for a task.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// vp's end of the guard socket, -1 when there is no guard.
static FD: AtomicI32 = AtomicI32::new(-1);

const ADD_GROUP: u32 = 1;
const FORGET_GROUP: u32 = 2;
const ADD_PROCESS: u32 = 3;
const FORGET_PROCESS: u32 = 4;
const RELEASE: u32 = 5;

/// Most registrations the guard holds at once; later ones are dropped.
const CAPACITY: usize = 1 << 16;

/// What a child registers as in its `pre_exec` hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The child leads its own process group (`process_group(0)`, which
    /// std applies before `pre_exec` hooks): kill the whole group.
    Group,
    /// The child stays in vp's group: kill it alone.
    Process,
}

/// The guard's end of the socket until the guard is started, -1 after (or
/// when there is no socket).
static THEIRS: AtomicI32 = AtomicI32::new(-1);

/// Starts the guard once. A `Once`, not a flag: a second caller waits
/// until the guard runs, so no task is spawned before it.
static START: std::sync::Once = std::sync::Once::new();

/// The argument that makes `vp` the guard ([`serve_if_asked`]). Not a
/// subcommand: clap never sees it.
const GUARD_ARG: &str = "__vp_guard";

/// The guard's end of the socket in the guard process.
const GUARD_FD: RawFd = 3;

/// Makes the socket the tasks register on. Cheap, and done before any
/// thread exists, so that no task can be spawned before it; the guard
/// process itself starts only with the first task ([`ensure_started`]): a
/// run whose every task is a cache hit never pays for it. A failure is
/// said (once, like every way the guard can fail); the tasks then run
/// unguarded.
pub(crate) fn prepare() {
    use std::os::fd::IntoRawFd;
    match crate::child_fd::seqpacket_pair() {
        Ok((ours, theirs)) => {
            FD.store(ours.into_raw_fd(), Ordering::SeqCst);
            THEIRS.store(theirs.into_raw_fd(), Ordering::SeqCst);
        }
        Err(err) => warn_once(&format!("cannot start the process guard ({err})")),
    }
}

/// Starts the guard if it is not running yet: call before spawning a task.
/// The guard is vp's own binary run again (`/proc/self/exe`, which stays
/// the running binary even if an upgrade replaced the file), with the
/// socket's other end as fd 3, in a process group of its own. Started at
/// vp's start instead, as a fork, it took 0.4–0.8 ms of every cache hit
/// (docs/benchmarks.md): the fork copied vp's page tables, and every page
/// vp wrote afterwards was copied again while the guard shared it. Run
/// again, it shares nothing with vp once it has exec'd. A failure is said
/// once; the tasks then run unguarded.
pub(crate) fn ensure_started() {
    START.call_once(start);
}

fn start() {
    let theirs = THEIRS.swap(-1, Ordering::SeqCst);
    if theirs < 0 {
        return;
    }
    let spawned = spawn_guard(theirs);
    // SAFETY: closing our copy of the guard's end once; the guard has its
    // own (or there is none, and its registrations go nowhere).
    unsafe { libc::close(theirs) };
    if let Err(err) = spawned {
        warn_once(&format!(
            "cannot start the process guard (`/proc/self/exe`: {err})"
        ));
    }
}

/// Whether vp has said that its tasks are unguarded.
static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(what: &str) {
    if !WARNED.swap(true, Ordering::SeqCst) {
        eprintln!("vp: warning: {what}; if vp is killed, its tasks keep running");
    }
}

/// `send` from vp itself: a guard that is gone (every copy of its end
/// closed) is said once. That is how vp learns that what it started as the
/// guard was no vp: a program run through a loader (`ld.so ./vp`) or a
/// tool has another `/proc/self/exe`, which exits at once.
fn tell(kind: u32, id: i32) {
    if !send(kind, id) && START.is_completed() {
        warn_once(
            "the process guard is not running (it ended at its start: is vp run through a loader \
             such as ld.so, or under a tool that changes /proc/self/exe?)",
        );
    }
}

fn spawn_guard(theirs: RawFd) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("/proc/self/exe");
    // The environment stays: a build of vp that needs `LD_LIBRARY_PATH` to
    // start needs it as the guard too.
    cmd.arg0("vp guard")
        .arg(GUARD_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of vp's process group: a Ctrl-C, or a kill of vp's whole
        // job, must not take the guard down with vp.
        .process_group(0);
    // SAFETY: the hook makes only async-signal-safe calls (`child_fd`).
    unsafe {
        cmd.pre_exec(move || crate::child_fd::place(theirs, GUARD_FD));
    }
    // Not waited for: it outlives vp, or ends with it.
    cmd.spawn().map(drop)
}

/// In `main`, before anything else: when this process is the guard
/// ([`ensure_started`] ran it with [`GUARD_ARG`]), serves and never
/// returns.
pub(crate) fn serve_if_asked() {
    if std::env::args_os().nth(1).is_some_and(|a| a == GUARD_ARG) && is_guard_socket(GUARD_FD) {
        serve(GUARD_FD)
    }
}

/// Whether `fd` is a `SOCK_SEQPACKET` socket, as only [`ensure_started`]
/// hands the guard. Anything else (a user typing `vp __vp_guard`, an fd 3
/// inherited from elsewhere) is not read as kill orders: clap then refuses
/// the argument.
fn is_guard_socket(fd: RawFd) -> bool {
    vp_ipc::sockopt_int(fd, libc::SO_TYPE) == Some(libc::SOCK_SEQPACKET)
}

/// One registration: a group or a single process, and when the process
/// (the group's leader) started, in clock ticks since boot.
struct Entry {
    kind: u32,
    id: i32,
    started: Option<u64>,
}

/// Field 22 of `/proc/<pid>/stat`: when the process started. `None`
/// when there is no such process.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: starttime is the 20th field after comm.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The guard's life: registrations until vp is gone, then the kills.
fn serve(fd: RawFd) -> ! {
    let mut table: Vec<Entry> = Vec::with_capacity(CAPACITY);
    // SAFETY: plain syscalls on this process's own state.
    unsafe {
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"vp guard".as_ptr());
        // Hold nothing of vp's: not its stdio (a pipe reader would wait
        // for the guard), not an outer vp's bridge.
        close_all_but(fd);
    }
    loop {
        let mut record = [0u8; 8];
        // SAFETY: recv into a buffer we own.
        let n = unsafe { libc::recv(fd, record.as_mut_ptr().cast(), record.len(), 0) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break; // every copy of vp's end is closed: vp is gone
        }
        if n != 8 {
            continue;
        }
        let kind = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let id = i32::from_le_bytes([record[4], record[5], record[6], record[7]]);
        match kind {
            RELEASE => {
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(0) }
            }
            // Never 0, 1 or negative: kill(-1) would reach every process.
            ADD_GROUP | ADD_PROCESS if id > 1 && table.len() < table.capacity() => {
                // The child is alive (it registers before exec): note
                // when it started, to recognise its pid later.
                table.push(Entry {
                    kind,
                    id,
                    started: start_time(id),
                });
            }
            FORGET_GROUP | FORGET_PROCESS => {
                let added = kind - 1;
                table.retain(|e| !(e.kind == added && e.id == id));
            }
            _ => {}
        }
    }
    for entry in table.iter() {
        let now = start_time(entry.id);
        // A pid (or a group's leader pid) that now belongs to a process
        // started at another time was reused: that is not ours. A group
        // whose leader is gone still has only our processes: its id
        // cannot be reused while any member lives.
        if entry.started.is_some() && now.is_some() && now != entry.started {
            continue;
        }
        if entry.kind == ADD_GROUP {
            // SAFETY: kill(2) with a checked target (id > 1).
            unsafe { libc::kill(-entry.id, libc::SIGKILL) };
        } else if now.is_some() {
            kill_tree(entry.id);
        }
    }
    // SAFETY: _exit is always safe.
    unsafe { libc::_exit(0) }
}

/// Kills `root` and its descendants: stops each one found (a stopped
/// process cannot fork), looks again for children of what was stopped,
/// and once no new one appears kills them all.
fn kill_tree(root: i32) {
    let stop = |pid: i32| {
        // SAFETY: kill(2) of a pid > 1.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    };
    let mut victims = vec![root];
    stop(root);
    for _ in 0..64 {
        let found: Vec<i32> = parent_links()
            .into_iter()
            .filter(|(pid, ppid)| victims.contains(ppid) && !victims.contains(pid))
            .map(|(pid, _)| pid)
            .collect();
        if found.is_empty() {
            break;
        }
        found.iter().copied().for_each(stop);
        victims.extend(found);
    }
    for pid in victims {
        // SAFETY: kill(2) of a pid > 1 (the root was checked, the others
        // come from /proc).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `(pid, parent pid)` of every process in `/proc` (pids > 1).
fn parent_links() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid > 1)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// Closes every fd but `keep` (`close_range`, or one by one on kernels
/// before 5.9).
///
/// # Safety
/// Nothing in the process may use any other fd afterwards (the guard's
/// `serve` uses only `keep`).
unsafe fn close_all_but(keep: RawFd) {
    let close_range = |first: u32, last: u32| {
        // SAFETY: close_range only closes descriptors.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) == 0 }
    };
    let keep_u = keep as u32;
    let ok = (keep_u == 0 || close_range(0, keep_u - 1)) && close_range(keep_u + 1, u32::MAX);
    if !ok {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur.min(1 << 16) as RawFd
        } else {
            1024
        };
        for fd in (0..max).filter(|fd| *fd != keep) {
            // SAFETY: closing a descriptor number, open or not.
            unsafe { libc::close(fd) };
        }
    }
}

/// Sends one record to the guard; false when it was not delivered (no
/// guard socket, or the guard's end is closed). Async-signal-safe: a
/// child's `pre_exec` hook calls it.
fn send(kind: u32, id: i32) -> bool {
    let fd = FD.load(Ordering::SeqCst);
    if fd < 0 {
        return false;
    }
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&kind.to_le_bytes());
    record[4..].copy_from_slice(&id.to_le_bytes());
    loop {
        // SAFETY: send of a buffer we own; MSG_NOSIGNAL: a dead guard
        // gives EPIPE, not a SIGPIPE (default again in a `pre_exec`).
        let n = unsafe { libc::send(fd, record.as_ptr().cast(), record.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return true;
        }
        // SAFETY: reading errno right after the failed call.
        if unsafe { *libc::__errno_location() } != libc::EINTR {
            return false;
        }
    }
}

/// For a child's `pre_exec` hook: registers the calling process (the
/// child, before it execs). Async-signal-safe; a missing or dead guard
/// is ignored. vp's end of the socket is close-on-exec, so the task
/// never holds it.
pub(crate) fn register_self(kind: Kind) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    send(
        match kind {
            Kind::Group => ADD_GROUP,
            Kind::Process => ADD_PROCESS,
        },
        pid,
    );
}

/// True when no process is left in process group `pgid` (also when
/// there never was such a group).
pub(crate) fn group_is_empty(pgid: i32) -> bool {
    if pgid <= 1 {
        return true;
    }
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// After a command's process group was waited for: forgets it if no
/// process is left in it (so its id, once reused, is never killed). A
/// group that still has members (a background process) stays
/// registered: it dies with vp unless vp ends normally.
pub(crate) fn forget_group_if_empty(pgid: i32) {
    if pgid > 1 && group_is_empty(pgid) {
        tell(FORGET_GROUP, pgid);
    }
}

/// After a single registered process was reaped: forgets it.
pub(crate) fn forget_process(pid: i32) {
    tell(FORGET_PROCESS, pid);
}

/// vp finishes normally: the guard exits without killing anything.
pub(crate) fn release() {
    tell(RELEASE, 0);
    let fd = FD.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: closing our own end once.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_tell_a_live_process_from_none() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me), "stable for one process");
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn an_empty_or_missing_group_is_empty() {
        assert!(group_is_empty(i32::MAX));
        assert!(group_is_empty(0), "0 and 1 are never groups vp kills");
    }
}

//! In-process recording: the shared-memory log a traced task's dynamically
//! linked programs write their read-only file accesses into, through the
//! preload library (`cli/preload/vp_trace_preload.c`), instead of stopping
//! for a seccomp notification each.
//!
//! Per traced spawn, vp creates the log (a memfd), hands the child its fd,
//! `LD_PRELOAD` and `VP_TRACE_LOG`, and builds the filter to let calls from
//! the library's trampoline page (at an address chosen per spawn) through. Once the
//! traced tree is gone, the supervisor reads the log here and merges its
//! records with the notified accesses, in time order. A record is decoded
//! by the same `decode::decode` as a notification, so both paths agree on
//! what a call means; a record the library should never have written (a
//! call that writes, an unknown number, a torn record) makes the run
//! untraceable rather than silently dropping an access.
//!
//! The layout below is shared with the C library: change both together.

use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::decode::{self, Source};
use super::log::{Access, AccessLog};
use super::tracee;
use crate::embedded::Embedded;

/// Where the library's trampoline page may go: one page, chosen at random
/// per traced spawn, in this range. Above what V8's random placement uses
/// (below 2^46) and below where executables and shared libraries land
/// (0x55.. and 0x7f..); a process that has something there already keeps
/// the library off and is notified as before.
///
/// Random, because the filter allows calls from that page's `syscall`
/// alone: a vp run inside a traced task (whose own filter cannot be
/// installed) hands its children a log and a trampoline of its own, and
/// calls from that other page are still notified to the outer vp.
const TRAMPOLINE_PAGES: std::ops::Range<u64> = (0x4100_0000_0000 / PAGE)..(0x4f00_0000_0000 / PAGE);
const PAGE: u64 = 4096;
/// Offset of the byte after the trampoline's `syscall`: the instruction
/// pointer the kernel reports for calls made there.
const TRAMPOLINE_RETURN_OFFSET: u64 = 25;

const LOG_MAGIC: u64 = u64::from_le_bytes(*b"RACELOG1");
/// Records start at this offset; the header is before it.
const LOG_DATA: usize = 4096;
/// Virtual size of the log. Only written pages use memory; a task that
/// fills it has its further calls notified (counted as dropped).
const CAPACITY: usize = 64 << 20;
/// `struct record` of the C library, without its path bytes.
const RECORD_HEADER: usize = 4 + 4 + 8 + 8 + 8 + 6 * 8 + 2 + 2 + 4;
const HEAD_OFFSET: usize = 24;
const DROPPED_OFFSET: usize = 32;
const SEQ_OFFSET: usize = 40;
/// A record's `len` while its writer fills it in: its call was not made.
const LEN_PENDING: u32 = 0x8000_0000;
/// The `len` that marks the end of a log that filled up.
const LEN_END: u32 = u32::MAX;

/// The preload library, embedded in the binary (built by `cli/build.rs`).
pub(crate) const LIBRARY: Embedded = Embedded {
    what: "in-process tracer library",
    file_name: concat!(
        "vp-trace-preload-",
        env!("CARGO_PKG_VERSION"),
        "-",
        env!("VP_TRACE_PRELOAD_HASH"),
        ".so"
    ),
    bytes: include_bytes!(concat!(env!("OUT_DIR"), "/vp-trace-preload.so")),
};

/// Set to `0` (or `false`, `off`) to leave the library out: every access
/// is then notified. For telling whether a problem comes from it.
pub(crate) const SWITCH_VAR: &str = "VP_TRACE_IN_PROCESS";

/// Whether the switch leaves in-process recording on.
pub(crate) fn enabled_by(switch: Option<&OsStr>) -> bool {
    !switch.is_some_and(|v| {
        let v = v.to_string_lossy();
        let v = v.trim();
        v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("off")
    })
}

/// The library for the traced commands of one vp invocation, written to
/// `dir` if needed: `Ok(None)` when [`SWITCH_VAR`] (`switch`) turns it off,
/// `Err` (for the user) when it cannot be used here. Either way every
/// access is then notified.
pub(crate) fn library_for_run(
    dir: &Path,
    switch: Option<&OsStr>,
) -> Result<Option<std::path::PathBuf>, String> {
    if !enabled_by(switch) {
        return Ok(None);
    }
    let path = crate::embedded::materialize(dir, &LIBRARY).map_err(|e| {
        let mut message = e.to_string();
        if let Some(source) = std::error::Error::source(&e) {
            message.push_str(&format!(": {source}"));
        }
        message
    })?;
    // ld.so would print an error in every traced process, not just skip it.
    if on_noexec_mount(&path) {
        return Err(format!(
            "`{}` is on a file system mounted noexec (set XDG_CACHE_HOME to a directory elsewhere)",
            dir.display()
        ));
    }
    Ok(Some(path))
}

fn on_noexec_mount(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: all-zero is a valid statvfs; the call writes into it.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs we own.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut fs) };
    rc == 0 && fs.f_flag & libc::ST_NOEXEC != 0
}

/// The lowest fd number the log gets (in vp, and so in the child): above
/// the ones programs tend to close or mark close-on-exec at start.
const LOG_FD_FLOOR: libc::c_int = 100;

/// The name of the variable that tells the library where its log is.
pub(crate) const LOG_VAR: &str = "VP_TRACE_LOG";

/// One traced spawn's log, mapped in vp.
pub(crate) struct InProcessLog {
    fd: OwnedFd,
    map: NonNull<u8>,
    nonce: u64,
    /// The trampoline page's address in every process of this tree.
    trampoline: u64,
    /// Set once the traced tree is gone: the tail thread returns.
    run_ended: std::sync::atomic::AtomicBool,
    /// The thread decoding the log while the tree runs (`start_tailing`).
    tail: std::sync::Mutex<Option<std::thread::JoinHandle<Tailed>>>,
}

/// What the tail thread decoded while the tree ran: every record before
/// the offset `upto`, each valid, as accesses with their places. Their
/// times are still the tracee's clock (`drain_into` makes them relative).
/// The drain decodes only what follows, so each record is decoded once.
#[derive(Debug)]
struct Tailed {
    upto: usize,
    accesses: Vec<(u64, Access)>,
}

impl Default for Tailed {
    fn default() -> Self {
        Self {
            upto: LOG_DATA,
            accesses: Vec::new(),
        }
    }
}

// SAFETY: the mapping is owned by this value alone in vp. vp only reads it:
// the header words atomically, a record only once its committed length was
// loaded with acquire (its bytes never change after that), and all of it
// once the traced tree is gone (`drain_into`).
unsafe impl Send for InProcessLog {}
// SAFETY: as above; the tail thread and `drain_into` may run at once.
unsafe impl Sync for InProcessLog {}

impl std::fmt::Debug for InProcessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessLog")
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl InProcessLog {
    /// A fresh, empty log (close-on-exec in vp; the spawn clears the flag
    /// in the child only).
    pub(crate) fn create() -> io::Result<Self> {
        // SAFETY: a static NUL-terminated name; the flags are valid.
        let raw = unsafe {
            libc::memfd_create(
                c"vp-trace-log".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The child gets the same number. Node marks fds 0 to 15 close-on-
        // exec at start (libuv's `uv_disable_stdio_inheritance`), which
        // would keep the log from every program Node starts: move it up.
        // SAFETY: fcntl on the fd we own; a new fd is returned or -1.
        let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, LOG_FD_FLOOR) };
        let fd = if high >= 0 {
            // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
            unsafe { OwnedFd::from_raw_fd(high) }
        } else {
            // Past the fd limit: a low number still serves the first process.
            fd
        };
        // SAFETY: ftruncate and fcntl on the fd we own. Sealed at its size:
        // a traced process that truncated it would make vp's reading fault.
        let sealed = unsafe {
            libc::ftruncate(fd.as_raw_fd(), CAPACITY as libc::off_t) == 0
                && libc::fcntl(
                    fd.as_raw_fd(),
                    libc::F_ADD_SEALS,
                    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
                ) == 0
        };
        if !sealed {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new shared mapping of the whole file; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CAPACITY,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map =
            NonNull::new(map.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let [nonce, page] = [&random[..8], &random[8..]].map(|half| {
            let mut word = [0u8; 8];
            word.copy_from_slice(half);
            u64::from_le_bytes(word)
        });
        let pages = TRAMPOLINE_PAGES.end - TRAMPOLINE_PAGES.start;
        let log = Self {
            fd,
            map,
            nonce,
            trampoline: (TRAMPOLINE_PAGES.start + page % pages) * PAGE,
            run_ended: std::sync::atomic::AtomicBool::new(false),
            tail: std::sync::Mutex::new(None),
        };
        let header = [LOG_MAGIC, log.nonce, CAPACITY as u64, LOG_DATA as u64, 0];
        for (i, word) in header.iter().enumerate() {
            log.word(i * 8).store(*word, Ordering::Relaxed);
        }
        Ok(log)
    }

    /// The fd the child must inherit.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The value of [`LOG_VAR`] for the child: fd, nonce and trampoline
    /// address, in hex.
    pub(crate) fn env_value(&self) -> String {
        format!(
            "{:x}:{:x}:{:x}",
            self.fd.as_raw_fd(),
            self.nonce,
            self.trampoline
        )
    }

    /// The instruction pointer of calls made by this log's trampoline, for
    /// the filter to allow.
    pub(crate) fn allowed_from(&self) -> u64 {
        self.trampoline + TRAMPOLINE_RETURN_OFFSET
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= LOG_DATA);
        // SAFETY: in bounds of the mapping, 8-aligned (the mapping is
        // page-aligned), and only ever accessed atomically by every writer.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The next place in the order of the tree's calls, shared with the
    /// library. The supervisor takes one for each notified call just before
    /// letting it run: a call the library records while a write is held
    /// comes before the write (it saw the old content), one made after the
    /// write returned comes after it. Calls that overlap in time (a read on
    /// one thread racing a write on another) can land either way.
    pub(crate) fn next_seq(&self) -> u64 {
        self.word(SEQ_OFFSET).fetch_add(1, Ordering::SeqCst)
    }

    /// Says the traced tree is gone: the tail thread returns.
    pub(crate) fn end_of_run(&self) {
        self.run_ended.store(true, Ordering::Release);
        // Out of its poll's sleep now: the drain waits for it.
        if let Some(thread) = &*self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            thread.thread().unpark();
        }
    }

    /// Starts the thread that, while the tree runs, decodes every committed
    /// record and sends the path of each read of a file's content to
    /// `reads` (for `cache::prehash`). Without it (the thread cannot be
    /// made) the drain decodes everything and storing hashes it all.
    pub(crate) fn start_tailing(log: &std::sync::Arc<Self>, reads: super::spawn::Reads) {
        let tailed = std::sync::Arc::clone(log);
        let thread = std::thread::Builder::new()
            .name("vp-trace-tail".to_owned())
            .spawn(move || Self::tail(&tailed, &reads));
        if let Ok(thread) = thread {
            *log.tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(thread);
        }
    }

    /// The tail thread: decodes records in log order until the run ends (or
    /// no one else holds the log: the spawn failed). A record still being
    /// written is waited for. It stops early, before the record, at one
    /// that does not decode: the drain then reports it as `read_records`
    /// does. Paths are offered to `reads` until its receiver is gone.
    fn tail(log: &std::sync::Arc<Self>, reads: &super::spawn::Reads) -> Tailed {
        const POLL: std::time::Duration = std::time::Duration::from_millis(2);
        let this: &Self = log;
        let mut out = Tailed::default();
        let mut hashing = true;
        // Each path once: a task that reads a few files again and again
        // must not fill the bounded queue with them. Kept as hashes: a
        // collision only leaves a file for storing to hash, and a set of
        // tens of thousands of copied paths took milliseconds to free
        // before the drain could go on.
        let path_hasher = foldhash::fast::RandomState::default();
        let mut sent = std::collections::HashSet::<u64, foldhash::fast::RandomState>::default();
        loop {
            let ended =
                this.run_ended.load(Ordering::Acquire) || std::sync::Arc::strong_count(log) == 1;
            let head = usize::try_from(this.word(HEAD_OFFSET).load(Ordering::Acquire))
                .unwrap_or(CAPACITY)
                .min(CAPACITY);
            while out.upto + RECORD_HEADER <= head {
                let at = out.upto;
                // SAFETY: in bounds and 4-aligned (records are 8-aligned);
                // every writer stores this word atomically.
                let word = unsafe {
                    (*this
                        .map
                        .as_ptr()
                        .add(at)
                        .cast::<std::sync::atomic::AtomicU32>())
                    .load(Ordering::Acquire)
                };
                if word == 0 || word == LEN_END || word & LEN_PENDING != 0 {
                    break;
                }
                let len = word as usize;
                // Past the head: the drain, which reads up to the head,
                // reports it.
                if !len.is_multiple_of(8) || at + len > head {
                    return out;
                }
                // SAFETY: committed (acquire above): these bytes are final.
                let bytes = unsafe { std::slice::from_raw_parts(this.map.as_ptr().add(at), len) };
                let Ok(Slot::Record(record, _)) = parse_record(bytes, 0) else {
                    return out;
                };
                let first = out.accesses.len();
                if push_accesses(&record, 0, &mut out.accesses).is_err() {
                    out.accesses.truncate(first);
                    return out;
                }
                out.upto = at + len;
                for (_, access) in &out.accesses[first..] {
                    if hashing
                        && access.op == super::log::Op::Read
                        && sent.insert(path_hasher.hash_one(access.path.as_os_str().as_bytes()))
                    {
                        hashing = super::spawn::offer(reads, access.path.clone());
                    }
                }
            }
            if ended {
                return out;
            }
            std::thread::park_timeout(POLL);
        }
    }

    /// Reads the log into `log` once no process can write to it any more
    /// (the supervisor's listener hung up: every traced thread is gone).
    /// `seqs` are the places of `log.accesses` in the order (see
    /// `next_seq`); `started_ns` is the supervisor's start on
    /// `CLOCK_MONOTONIC`, for the records' times.
    pub(crate) fn drain_into(&self, log: &mut AccessLog, seqs: &[u64], started_ns: u64) {
        let head = self.word(HEAD_OFFSET).load(Ordering::Acquire);
        let dropped = self.word(DROPPED_OFFSET).load(Ordering::Relaxed);
        let end = usize::try_from(head).unwrap_or(CAPACITY).min(CAPACITY);
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let tailed = tail
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        let since = Duration::from_nanos(started_ns);
        let mut recorded = tailed.accesses;
        for (_, access) in &mut recorded {
            access.at = access.at.saturating_sub(since);
        }
        // SAFETY: the mapping is CAPACITY bytes, and no writer is left.
        let bytes = unsafe { std::slice::from_raw_parts(self.map.as_ptr(), end) };
        read_records(bytes, tailed.upto, started_ns, log, &mut recorded);
        // Writers take their place after reserving space: nearly sorted.
        recorded.sort_by_key(|(seq, _)| *seq);
        log.counts.in_process = recorded.len() as u64;
        log.counts.in_process_dropped = dropped;
        merge(&mut log.accesses, seqs, recorded);
    }
}

impl Drop for InProcessLog {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, unmapped once.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), CAPACITY);
        }
    }
}

/// Now on `CLOCK_MONOTONIC`, the clock the library stamps records with.
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// One record as the library wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record<'a> {
    tid: u32,
    seq: u64,
    time_ns: u64,
    nr: i64,
    args: [u64; 6],
    path: &'a [u8],
    /// The cwd a relative path is under (empty for absolute paths).
    base: &'a [u8],
}

/// Why a record cannot be read; it makes the run untraceable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum RecordError {
    #[error("the in-process log of file accesses is corrupt")]
    Corrupt,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// What the log holds at one offset.
#[derive(Debug)]
enum Slot<'a> {
    Record(Record<'a>, usize),
    /// A record whose writer died before committing it; its call was not
    /// made. Skipped by its length.
    Pending(usize),
    /// A zero word: space a writer reserved and died before marking (page
    /// faults make that window real). Nothing of it was written (the
    /// length is its first store), and its call was not made; the next
    /// record starts at the next word that is not zero.
    Unmarked,
    /// The log filled up here; later calls were notified.
    End,
}

/// The slot at `at`.
fn parse_record(bytes: &[u8], at: usize) -> Result<Slot<'_>, RecordError> {
    if at + 4 > bytes.len() {
        return Err(RecordError::Corrupt);
    }
    let word = u32_at(bytes, at);
    if word == LEN_END {
        return Ok(Slot::End);
    }
    if word == 0 {
        return Ok(Slot::Unmarked);
    }
    let len = (word & !LEN_PENDING) as usize;
    if !len.is_multiple_of(8) || len < RECORD_HEADER || at + len > bytes.len() {
        return Err(RecordError::Corrupt);
    }
    if word & LEN_PENDING != 0 {
        return Ok(Slot::Pending(len));
    }
    let path_len = u16_at(bytes, at + 80);
    let base_len = u16_at(bytes, at + 82);
    if len < RECORD_HEADER + path_len + base_len {
        return Err(RecordError::Corrupt);
    }
    let mut args = [0u64; 6];
    for (i, arg) in args.iter_mut().enumerate() {
        *arg = u64_at(bytes, at + 32 + i * 8);
    }
    let path_at = at + RECORD_HEADER;
    Ok(Slot::Record(
        Record {
            tid: u32_at(bytes, at + 4),
            seq: u64_at(bytes, at + 8),
            time_ns: u64_at(bytes, at + 16),
            nr: u64_at(bytes, at + 24) as i64,
            args,
            path: &bytes[path_at..path_at + path_len],
            base: &bytes[path_at + path_len..path_at + path_len + base_len],
        },
        len,
    ))
}

/// Decodes the records of `bytes` (the log up to its head) from offset `at`
/// on into `out`, as accesses with their places in the order (unsorted). A
/// record that does not decode marks `log` untraceable and ends the reading.
fn read_records(
    bytes: &[u8],
    mut at: usize,
    started_ns: u64,
    log: &mut AccessLog,
    out: &mut Vec<(u64, Access)>,
) {
    while at < bytes.len() {
        match parse_record(bytes, at) {
            Ok(Slot::Record(record, len)) => {
                if let Err(reason) = push_accesses(&record, started_ns, out) {
                    log.mark_untraceable(reason);
                    break;
                }
                at += len;
            }
            Ok(Slot::Pending(len)) => at += len,
            Ok(Slot::Unmarked) => at += 8,
            Ok(Slot::End) => break,
            Err(err) => {
                log.mark_untraceable(err.to_string());
                break;
            }
        }
    }
}

/// The accesses one record names, decoded like a notification.
fn push_accesses(
    record: &Record<'_>,
    started_ns: u64,
    out: &mut Vec<(u64, Access)>,
) -> Result<(), String> {
    let unexpected = || {
        format!(
            "the in-process tracer recorded a system call it must leave to the supervisor (number {})",
            record.nr
        )
    };
    let targets = decode::decode(record.nr, record.args, |_| None);
    let [Some(target), None] = targets else {
        return Err(unexpected());
    };
    let Source::Path { dirfd, .. } = target.source else {
        return Err(unexpected());
    };
    if target.op.changes_name() || record.path.is_empty() {
        return Err(unexpected());
    }
    let relative = !record.path.starts_with(b"/");
    if relative && (dirfd != libc::AT_FDCWD || !record.base.starts_with(b"/")) {
        return Err(unexpected());
    }
    let base = Path::new(OsStr::from_bytes(record.base));
    let path = tracee::absolute(record.tid, record.path, || Ok(Some(base.to_path_buf())))
        .ok()
        .flatten()
        .ok_or_else(unexpected)?;
    out.push((
        record.seq,
        Access {
            // The tracee's clock: off by its offset in a time namespace,
            // which only the times shown by `vp trace --log` see.
            at: Duration::from_nanos(record.time_ns.saturating_sub(started_ns)),
            tid: record.tid,
            path,
            op: target.op,
            follow: target.follow,
            at_call: None,
        },
    ));
    Ok(())
}

/// Merges `recorded` (sorted by place) into `notified` (in the order the
/// supervisor received them; `seqs[i]` is the place of `notified[i]`, in
/// increasing order): notified first on a tie, which cannot happen.
fn merge(notified: &mut Vec<Access>, seqs: &[u64], recorded: Vec<(u64, Access)>) {
    if recorded.is_empty() {
        return;
    }
    debug_assert_eq!(notified.len(), seqs.len());
    let mut merged = Vec::with_capacity(notified.len() + recorded.len());
    let mut recorded = recorded.into_iter().peekable();
    for (access, seq) in notified.drain(..).zip(seqs) {
        while let Some((_, next)) = recorded.next_if(|(r, _)| r < seq) {
            merged.push(next);
        }
        merged.push(access);
    }
    merged.extend(recorded.map(|(_, access)| access));
    *notified = merged;
}

/// `LD_PRELOAD` for the child: whatever the task had, then the library.
/// Last, so that the task's own wrappers (libfaketime, a test shim) still
/// come first and reach vp's through `RTLD_NEXT`. `None` when the
/// library's path cannot be listed there (ld.so splits on spaces and
/// colons).
pub(crate) fn preload_value(
    library: &Path,
    existing: Option<&OsStr>,
) -> Option<std::ffi::OsString> {
    let bytes = library.as_os_str().as_bytes();
    if bytes
        .iter()
        .any(|b| matches!(b, b' ' | b':' | b'\t' | b'\n'))
    {
        return None;
    }
    let mut value = std::ffi::OsString::new();
    if let Some(existing) = existing.filter(|e| !e.is_empty()) {
        value.push(existing);
        value.push(":");
    }
    value.push(library.as_os_str());
    Some(value)
}

/// `ASAN_OPTIONS` for the child. gcc's AddressSanitizer aborts a program
/// whose first preloaded library is not its runtime; vp's library is a
/// preload, so the check is turned off unless the task set it.
pub(crate) fn asan_options_value(existing: Option<&OsStr>) -> Option<std::ffi::OsString> {
    const NO_ORDER_CHECK: &str = "verify_asan_link_order=0";
    match existing.filter(|e| !e.is_empty()) {
        Some(existing)
            if existing
                .to_string_lossy()
                .contains("verify_asan_link_order") =>
        {
            None
        }
        Some(existing) => {
            let mut value = existing.to_owned();
            value.push(":");
            value.push(NO_ORDER_CHECK);
            Some(value)
        }
        None => Some(NO_ORDER_CHECK.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::log::Op;

    fn abs(path: &str) -> PathBuf {
        PathBuf::from(path)
    }

    /// Builds one record as the C library lays it out; its time is
    /// 1000 + 100 ns per place in the order.
    fn record(tid: u32, seq: u64, nr: i64, args: [u64; 6], path: &[u8], base: &[u8]) -> Vec<u8> {
        let len = (RECORD_HEADER + path.len() + base.len()).div_ceil(8) * 8;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&tid.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(1_000 + seq * 100).to_le_bytes());
        out.extend_from_slice(&nr.to_le_bytes());
        for arg in args {
            out.extend_from_slice(&arg.to_le_bytes());
        }
        out.extend_from_slice(&(path.len() as u16).to_le_bytes());
        out.extend_from_slice(&(base.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(base);
        out.resize(len, 0);
        out
    }

    fn log_of(records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = vec![0u8; LOG_DATA];
        for r in records {
            bytes.extend_from_slice(r);
        }
        bytes
    }

    const CWD: u64 = libc::AT_FDCWD as u64;

    /// The whole log decoded at once, as the drain does without a tail.
    fn read_all(bytes: &[u8], started_ns: u64, log: &mut AccessLog) -> Vec<(u64, Access)> {
        let mut out = Vec::new();
        read_records(bytes, LOG_DATA, started_ns, log, &mut out);
        out.sort_by_key(|(seq, _)| *seq);
        out
    }

    /// `record` as a writer that died before committing it leaves it.
    fn pending(mut record: Vec<u8>) -> Vec<u8> {
        let len = u32::from_le_bytes(record[..4].try_into().expect("4 bytes")) | LEN_PENDING;
        record[..4].copy_from_slice(&len.to_le_bytes());
        record
    }

    /// Appends `records` to a live log as its writers do: the bytes, then
    /// the head past them.
    fn append(log: &InProcessLog, records: &[Vec<u8>]) {
        let mut head = usize::try_from(log.word(HEAD_OFFSET).load(Ordering::Acquire))
            .expect("head fits")
            .max(LOG_DATA);
        for r in records {
            // SAFETY: within the mapping (tests write a few records).
            unsafe {
                std::ptr::copy_nonoverlapping(r.as_ptr(), log.map.as_ptr().add(head), r.len())
            };
            head += r.len();
        }
        log.word(HEAD_OFFSET).store(head as u64, Ordering::Release);
    }

    /// What the tail thread decodes while the tree runs plus what the drain
    /// decodes after it is the log decoded in one pass: the same accesses,
    /// times and order, and a bad record still makes the run untraceable.
    #[test]
    fn the_tail_and_the_drain_decode_the_log_once_between_them() {
        let write = (libc::O_WRONLY | libc::O_TRUNC) as u64;
        let bad = record(
            1,
            4,
            libc::SYS_openat,
            [CWD, 0, write, 0, 0, 0],
            b"/w/out",
            b"",
        );
        let cases = [
            (
                vec![open_read(b"/w/a", b"", 3), open_read(b"b", b"/w", 1)],
                vec![open_read(b"/w/c", b"", 2), open_read(b"/w/a", b"", 5)],
            ),
            (
                vec![open_read(b"/w/a", b"", 1), bad.clone()],
                vec![open_read(b"/w/c", b"", 2)],
            ),
            (
                vec![open_read(b"/w/a", b"", 1)],
                vec![bad, open_read(b"/w/c", b"", 2)],
            ),
            // A record left pending (its writer died) is waited for by the
            // tail and skipped by the drain.
            (
                vec![open_read(b"/w/a", b"", 1)],
                vec![
                    pending(open_read(b"/w/p", b"", 2)),
                    open_read(b"/w/c", b"", 3),
                ],
            ),
        ];
        for (during, after) in cases {
            let log = std::sync::Arc::new(InProcessLog::create().expect("memfd"));
            let (reads, hashed) = std::sync::mpsc::sync_channel(16);
            append(&log, &during);
            InProcessLog::start_tailing(&log, reads);
            // The tail has read the first record once its path arrives.
            hashed
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the tail offers the first read");
            // The first record was decoded by the tail, and only by it: its
            // bytes, spoilt now, would not decode again.
            let first = during[0].len();
            // SAFETY: within the mapping; the tail is past this record.
            unsafe { std::ptr::write_bytes(log.map.as_ptr().add(LOG_DATA + 8), 0xff, first - 8) };
            append(&log, &after);
            log.end_of_run();
            let mut drained = AccessLog::default();
            log.drain_into(&mut drained, &[], 1_000);

            let all: Vec<Vec<u8>> = during.iter().chain(&after).cloned().collect();
            let mut once = AccessLog::default();
            let expected: Vec<Access> = read_all(&log_of(&all), 1_000, &mut once)
                .into_iter()
                .map(|(_, access)| access)
                .collect();
            assert_eq!(drained.accesses, expected);
            assert_eq!(drained.untraceable, once.untraceable);
        }
    }

    fn open_read(path: &[u8], base: &[u8], seq: u64) -> Vec<u8> {
        record(7, seq, libc::SYS_openat, [CWD, 0, 0, 0, 0, 0], path, base)
    }

    #[test]
    fn records_become_accesses_like_notifications() {
        let bytes = log_of(&[
            open_read(b"/w/src/a.js", b"", 5),
            open_read(b"b.js", b"/w/src", 2),
            record(
                8,
                3,
                libc::SYS_statx,
                [CWD, 0, libc::AT_SYMLINK_NOFOLLOW as u64, 0, 0, 0],
                b"/w/link",
                b"",
            ),
            record(
                8,
                4,
                libc::SYS_readlinkat,
                [CWD, 0, 0, 0, 0, 0],
                b"./l",
                b"/w",
            ),
        ]);
        let mut log = AccessLog::default();
        let accesses = read_all(&bytes, 1_000, &mut log);
        assert!(log.untraceable.is_empty(), "{:?}", log.untraceable);
        let seen: Vec<_> = accesses
            .iter()
            .map(|(_, a)| (a.at.as_nanos(), a.path.clone(), a.op, a.follow))
            .collect();
        assert_eq!(
            seen,
            [
                (200, abs("/w/src/b.js"), Op::Read, true),
                (300, abs("/w/link"), Op::Stat, false),
                (400, abs("/w/l"), Op::ReadLink, false),
                (500, abs("/w/src/a.js"), Op::Read, true),
            ]
        );
    }

    #[test]
    fn a_record_that_writes_makes_the_run_untraceable() {
        let write = (libc::O_WRONLY | libc::O_TRUNC) as u64;
        let bytes = log_of(&[record(
            1,
            5,
            libc::SYS_openat,
            [CWD, 0, write, 0, 0, 0],
            b"/w/out",
            b"",
        )]);
        let mut log = AccessLog::default();
        assert!(read_all(&bytes, 0, &mut log).is_empty());
        assert_eq!(log.untraceable.len(), 1, "{:?}", log.untraceable);
        // An unknown number, and a relative path without its cwd, too.
        for bad in [
            record(1, 5, libc::SYS_read, [0; 6], b"/w/x", b""),
            record(1, 5, libc::SYS_openat, [3, 0, 0, 0, 0, 0], b"rel", b""),
            record(1, 5, libc::SYS_openat, [CWD, 0, 0, 0, 0, 0], b"rel", b""),
        ] {
            let mut log = AccessLog::default();
            assert!(read_all(&log_of(&[bad]), 0, &mut log).is_empty());
            assert!(!log.untraceable.is_empty());
        }
    }

    /// The paths `bytes` records, checking nothing made the run untraceable.
    fn paths_read_cleanly(bytes: &[u8]) -> Vec<PathBuf> {
        let mut log = AccessLog::default();
        let read = read_all(bytes, 0, &mut log)
            .into_iter()
            .map(|(_, a)| a.path)
            .collect();
        assert!(log.untraceable.is_empty(), "{:?}", log.untraceable);
        read
    }

    /// A writer that died before committing made no call: its record is
    /// skipped, and the rest is read. So is the end mark of a full log.
    #[test]
    fn pending_records_are_skipped_and_the_end_mark_ends_the_log() {
        let mut pending = open_read(b"/w/never-opened", b"", 1);
        let len = pending.len() as u32;
        pending[..4].copy_from_slice(&(len | LEN_PENDING).to_le_bytes());
        let mut bytes = log_of(&[
            open_read(b"/w/a", b"", 0),
            pending,
            open_read(b"/w/b", b"", 2),
        ]);
        bytes.extend_from_slice(&LEN_END.to_le_bytes());
        bytes.extend_from_slice(&[0xAA; 60]);
        assert_eq!(paths_read_cleanly(&bytes), [abs("/w/a"), abs("/w/b")]);
    }

    /// A writer that died between reserving space and marking it left
    /// zeros; the records after them are read.
    #[test]
    fn unmarked_space_is_skipped_to_the_next_record() {
        let mut bytes = log_of(&[open_read(b"/w/a", b"", 0)]);
        bytes.extend_from_slice(&[0u8; 96]);
        bytes.extend_from_slice(&open_read(b"/w/b", b"", 1));
        bytes.extend_from_slice(&[0u8; 8]);
        assert_eq!(paths_read_cleanly(&bytes), [abs("/w/a"), abs("/w/b")]);
    }

    #[test]
    fn corrupt_logs_are_untraceable_not_truncated_silently() {
        let good = open_read(b"/w/a", b"", 10);
        // A length that runs past the head, or is not a multiple of 8.
        for len in [4096u32, 97] {
            let mut bad = good.clone();
            bad[..4].copy_from_slice(&len.to_le_bytes());
            let mut log = AccessLog::default();
            assert!(read_all(&log_of(&[bad]), 0, &mut log).is_empty());
            assert_eq!(log.untraceable, [RecordError::Corrupt.to_string()]);
        }
        // A header cut short by the head, and a path longer than its record.
        let mut long_path = good.clone();
        long_path[80..82].copy_from_slice(&4000u16.to_le_bytes());
        let mut log = AccessLog::default();
        assert!(read_all(&log_of(&[long_path]), 0, &mut log).is_empty());
        assert_eq!(log.untraceable, [RecordError::Corrupt.to_string()]);
        let mut log = AccessLog::default();
        let cut = log_of(&[good[..20].to_vec()]);
        assert!(read_all(&cut, 0, &mut log).is_empty());
        assert_eq!(log.untraceable, [RecordError::Corrupt.to_string()]);
    }

    fn at(ms: u64, path: &str) -> Access {
        Access {
            at: Duration::from_millis(ms),
            tid: 1,
            path: abs(path),
            op: Op::Read,
            follow: true,
            at_call: None,
        }
    }

    #[test]
    fn merge_follows_the_shared_order() {
        let mut notified = vec![at(1, "/n1"), at(5, "/n5"), at(9, "/n9")];
        // Times disagree with the order (a time namespace): the order wins.
        merge(
            &mut notified,
            &[1, 4, 8],
            vec![
                (0, at(70, "/r0")),
                (5, at(0, "/r5")),
                (6, at(0, "/r6")),
                (12, at(0, "/r12")),
            ],
        );
        let order: Vec<_> = notified
            .iter()
            .map(|a| a.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(order, ["/r0", "/n1", "/n5", "/r5", "/r6", "/n9", "/r12"]);
        // Nothing recorded: the log stays as it is.
        let mut alone = vec![at(1, "/n1")];
        merge(&mut alone, &[0], Vec::new());
        assert_eq!(alone, [at(1, "/n1")]);
    }

    #[test]
    fn preload_puts_the_tasks_own_libraries_first() {
        let ours = Path::new("/c/vp/lib.so");
        assert_eq!(
            preload_value(ours, None).as_deref(),
            Some(OsStr::new("/c/vp/lib.so"))
        );
        assert_eq!(
            preload_value(ours, Some(OsStr::new("/x/a.so"))).as_deref(),
            Some(OsStr::new("/x/a.so:/c/vp/lib.so"))
        );
        assert_eq!(preload_value(Path::new("/my cache/lib.so"), None), None);
    }

    #[test]
    fn asan_keeps_its_options_and_loses_only_the_order_check() {
        assert_eq!(
            asan_options_value(None).as_deref(),
            Some(OsStr::new("verify_asan_link_order=0"))
        );
        assert_eq!(
            asan_options_value(Some(OsStr::new("detect_leaks=0"))).as_deref(),
            Some(OsStr::new("detect_leaks=0:verify_asan_link_order=0"))
        );
        // The task's own choice stands.
        assert_eq!(
            asan_options_value(Some(OsStr::new("verify_asan_link_order=1"))),
            None
        );
    }

    /// The library loads into programs on systems older than the one it
    /// was built on: no symbol version newer than glibc 2.17.
    #[test]
    fn the_library_needs_nothing_newer_than_glibc_2_17() {
        let text = String::from_utf8_lossy(LIBRARY.bytes);
        let versions: Vec<&str> = text
            .match_indices("GLIBC_2.")
            .map(|(at, _)| {
                let rest = &text[at + "GLIBC_2.".len()..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(!versions.is_empty(), "no glibc symbol versions found");
        for minor in versions {
            let minor: u32 = minor.parse().expect("a version number");
            assert!(minor <= 17, "needs GLIBC_2.{minor}");
        }
    }

    #[test]
    fn the_switch_turns_recording_off_only_when_asked() {
        assert!(enabled_by(None));
        assert!(enabled_by(Some(OsStr::new("1"))));
        assert!(enabled_by(Some(OsStr::new(""))));
        for off in ["0", "false", "OFF", " off "] {
            assert!(!enabled_by(Some(OsStr::new(off))), "{off}");
        }
    }

    #[test]
    fn the_library_is_written_once_and_the_switch_skips_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(library_for_run(dir.path(), Some(OsStr::new("0"))), Ok(None));
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        let path = library_for_run(dir.path(), None)
            .expect("usable")
            .expect("on");
        assert_eq!(std::fs::read(&path).expect("written"), LIBRARY.bytes);
        let err = library_for_run(Path::new("/proc/vp-no-such-dir"), None).expect_err("unwritable");
        assert!(err.contains("/proc/vp-no-such-dir"), "{err}");
    }

    #[test]
    fn the_embedded_library_is_a_shared_object() {
        assert!(LIBRARY.bytes.starts_with(b"\x7fELF"));
    }

    #[test]
    fn a_new_log_has_the_header_the_library_checks() {
        let log = InProcessLog::create().expect("memfd");
        assert!(log.raw_fd() >= LOG_FD_FLOOR, "fd {}", log.raw_fd());
        let mut header = [0u8; 40];
        // SAFETY: pread into our buffer from the log's fd.
        let n = unsafe { libc::pread(log.raw_fd(), header.as_mut_ptr().cast(), 40, 0) };
        assert_eq!(n, 40);
        assert_eq!(u64_at(&header, 0), LOG_MAGIC);
        assert_eq!(u64_at(&header, 8), log.nonce);
        assert_eq!(u64_at(&header, 16), CAPACITY as u64);
        assert_eq!(u64_at(&header, 24), LOG_DATA as u64);
        let env = log.env_value();
        assert_eq!(
            env,
            format!("{:x}:{:x}:{:x}", log.raw_fd(), log.nonce, log.trampoline)
        );
        assert_eq!(log.trampoline % PAGE, 0);
        assert!(TRAMPOLINE_PAGES.contains(&(log.trampoline / PAGE)));
        assert_eq!(log.allowed_from(), log.trampoline + 25);
        // Two spawns get two trampolines (a nested vp's is not the outer's).
        let other = InProcessLog::create().expect("memfd");
        assert_ne!((other.nonce, other.trampoline), (log.nonce, log.trampoline));
        // An empty log reads as nothing, and nothing is untraceable.
        let mut access_log = AccessLog::default();
        log.drain_into(&mut access_log, &[], 0);
        assert!(access_log.accesses.is_empty() && access_log.untraceable.is_empty());
    }
}

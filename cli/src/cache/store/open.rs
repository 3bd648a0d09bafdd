//! Opening the store: create it on first use, wait (bounded) for another
//! vp's lock, never wait for the lock of the vp that started this one (a
//! task running `vp run` on its own workspace), and move an unreadable,
//! foreign-schema or corrupt store aside instead of failing. Only a
//! directory proven to be vp's (`layout::CacheDir`) is ever used, moved or
//! deleted. Reports what happened through `StoreNotice`s so the runner can
//! tell the user while it happens (this module never prints).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options};

use super::access::Access;
use super::db::{CF_BLOBS, CF_META, COLUMN_FAMILIES, META_SCHEMA, Store};
use super::layout::CacheDir;
use super::nesting::{CachedBy, Kin, OuterCaching};
use crate::cache::codec::SCHEMA_VERSION;
use crate::cache::error::CacheError;

/// File next to RocksDB's `LOCK` naming the process that holds the store.
const PID_FILE: &str = "vp.pid";
/// How long a waiting vp gives the holder to write its pid file.
const PID_GRACE: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub(crate) struct OpenOptions {
    /// How long to wait for another vp's lock before giving up.
    pub(crate) lock_timeout: Duration,
    /// The vps whose cached commands this process runs inside: their lock
    /// is never waited for.
    pub(crate) cached_by: CachedBy,
}

impl OpenOptions {
    pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

    /// `VP_CACHE_LOCK_TIMEOUT` (seconds, fractions allowed) overrides the
    /// default; `lookup` is the environment (injected for tests), which
    /// also hands down [`CachedBy`].
    pub(crate) fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let lock_timeout = lookup("VP_CACHE_LOCK_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(Self::DEFAULT_LOCK_TIMEOUT, Duration::from_secs_f64);
        Self {
            lock_timeout,
            cached_by: CachedBy::parse(lookup(CachedBy::VAR).as_deref()),
        }
    }

    /// Waits up to `lock_timeout`, as a process that runs in no vp's cached
    /// command.
    #[cfg(test)]
    pub(crate) fn waiting(lock_timeout: Duration) -> Self {
        Self {
            lock_timeout,
            cached_by: CachedBy::default(),
        }
    }
}

/// Something the user should hear about while the store opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreNotice {
    /// Another process holds the lock; vp waits up to `timeout`.
    WaitingForLock {
        dir: PathBuf,
        holder: Option<u32>,
        /// How the holder is related to this vp.
        kin: Kin,
        timeout: Duration,
    },
    /// The store could not be used as is and was renamed; a fresh one is used.
    SetAside {
        dir: PathBuf,
        moved_to: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for StoreNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WaitingForLock {
                dir,
                holder,
                kin,
                timeout,
            } => {
                // What happens after the wait is the caller's to say: a run
                // goes on without the cache, `vp cache stats` fails.
                write!(
                    f,
                    "waiting for the cache lock on `{}` held by {}",
                    dir.display(),
                    kin.holder()
                )?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                if *kin == Kin::Parent {
                    f.write_str(" for a task running beside this one")?;
                }
                write!(f, ", for up to {}s", timeout.as_secs_f64())
            }
            Self::SetAside {
                dir,
                moved_to,
                reason,
            } => write!(
                f,
                "the cache at `{}` could not be used ({reason}); moved it to `{}` and started a new one",
                dir.display(),
                moved_to.display()
            ),
        }
    }
}

pub(crate) enum Opened {
    Ready(Store),
    /// Another vp kept the lock past the timeout: run without the cache.
    Busy {
        holder: Option<u32>,
    },
    /// The vp that (directly or not) started this process holds the lock
    /// for the cached command this nested `vp run` runs in. Waiting could
    /// never succeed; the nested run is cached as part of the outer task.
    HeldByAncestor {
        holder: u32,
        why: OuterCaching,
    },
}

/// Opening is on the path of every `vp run`: do not flush the WAL into a new
/// table file on open (recovery replays it into memory instead; see
/// [`MAX_LOGS_TO_REPLAY`] for the bound), do not recompute statistics, and do
/// not stat every table file. The crate has no setters for these, hence the
/// options string.
///
/// `max_file_opening_threads=1` loads the table files of each column family
/// in the opening thread: RocksDB's default (16) starts and joins 16
/// threads per column family on every open (64 `clone3` for four families,
/// measured), to open the handful of small files a cache has.
const FAST_OPEN: &str = "skip_stats_update_on_db_open=true;\
                         skip_checking_sst_file_sizes_on_db_open=true;max_file_opening_threads=1";

/// How many write-ahead logs an open may leave for the next one to replay.
/// Every run that writes (a hit updates its entry's use count) leaves one
/// small log, and an open that skips the flush keeps them all: without a
/// bound, every later open replays every earlier run's log (measured: 150
/// runs, 150 logs, 980 `openat` per hit). Past the bound, this open flushes
/// what it recovered into a table file, and RocksDB deletes the logs.
const MAX_LOGS_TO_REPLAY: usize = 8;

/// How many bytes of write-ahead log an open may leave for the next one to
/// replay. A run that stores a large entry or large outputs leaves them in
/// its log, and every later open, read-only ones included, reads,
/// checksums and inserts all of it again: a task with 50,000 inputs left a
/// 4.2 MB log that was about a tenth of the CPU of each of its hits
/// (docs/benchmarks.md). Past the bound, the next open is a read-write one
/// that flushes, once.
const MAX_LOG_BYTES_TO_REPLAY: u64 = 1 << 20;

/// The write-ahead logs (`NNNNNN.log`) an open would replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LogBacklog {
    logs: usize,
    bytes: u64,
}

impl LogBacklog {
    /// The store's logs; none when the directory cannot be read (the open
    /// reports that itself).
    fn of(db_dir: &Path) -> Self {
        let Ok(entries) = fs::read_dir(db_dir) else {
            return Self::default();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_suffix(".log")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .fold(Self::default(), |b, e| Self {
                logs: b.logs + 1,
                bytes: b.bytes + e.metadata().map_or(0, |m| m.len()),
            })
    }

    /// Whether the next open should flush it rather than keep it for every
    /// later open to replay again.
    fn too_long(self) -> bool {
        self.logs > MAX_LOGS_TO_REPLAY || self.bytes > MAX_LOG_BYTES_TO_REPLAY
    }
}

/// The tuning string for one open: [`FAST_OPEN`], flushing the recovered
/// logs only when they are too many or too large to keep replaying.
fn open_tuning(backlog: LogBacklog) -> String {
    format!(
        "{FAST_OPEN};avoid_flush_during_recovery={}",
        !backlog.too_long()
    )
}

fn db_options(db_dir: &Path) -> Options {
    // The string is constant and covered by a test; should it ever fail to
    // parse, the defaults are correct, only slower to open.
    let mut o = Options::default()
        .get_options_from_string(open_tuning(LogBacklog::of(db_dir)))
        .unwrap_or_default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_max_total_wal_size(64 << 20);
    o.set_info_logger(warnings_log(db_dir.join(WARNINGS_LOG)));
    o.set_block_based_table_factory(&tables());
    o
}

/// Where RocksDB's warnings and errors go (appended, created on the first).
const WARNINGS_LOG: &str = "vp-rocksdb-warnings.log";

/// RocksDB's default info log renames `LOG` to `LOG.old.<time>`, creates a
/// new one and writes some 800 formatted lines (every option, each with the
/// thread id) on every open: about a third of the CPU of a cache hit,
/// measured. vp keeps only what someone debugging a store needs: warnings
/// and errors, in a file that exists only once there was one. Failures are
/// reported to the caller through RocksDB's own status codes either way.
///
/// Except a held lock: while another vp holds it, every attempt to open
/// (one each 50 ms) logged that `DB::Open()` failed, about 200 lines for
/// each 10 s wait, in a file nothing trims. Waiting for the lock is vp's to
/// report, and it does.
fn warnings_log(path: PathBuf) -> rocksdb::InfoLogger {
    use rocksdb::LogLevel;
    // RocksDB's callback logger passes every message on, whatever its level.
    rocksdb::InfoLogger::new_callback_logger(LogLevel::Warn, move |level, message| {
        use std::io::Write;
        if !matches!(level, LogLevel::Warn | LogLevel::Error | LogLevel::Fatal)
            || is_lock_message(message)
        {
            return;
        }
        // Best effort: a log line that cannot be written changes nothing.
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&path) {
            let _ = writeln!(f, "{level:?}: {}", message.trim_end());
        }
    })
}

/// Table options with one small LRU block cache: `cf_descriptors` shares
/// one among vp's four column families, and the DB options have their own.
/// Left unset, RocksDB builds a 32 MB clock cache for each family on every
/// open and tears them down at exit, a few tenths of a millisecond of a
/// 5 ms `echo hi` hit (docs/benchmarks.md, "Against the goals"). The
/// `default` family, which holds nothing, still gets one: the rocksdb crate
/// opens it with an `Options::default()` of its own. (Tried and not kept:
/// that family and the DB options made from the same set as the four, one
/// `Options::default()` fewer per open; 150 profiled hits took as much CPU
/// as before, and the peak RSS rose by 0.8 MB.) Entries and blobs do not
/// fill the cache (`db::read_once`); the small `meta` and `tasks` records
/// and the scans of `prune` and `vp cache stats` do.
fn tables() -> rocksdb::BlockBasedOptions {
    let mut t = rocksdb::BlockBasedOptions::default();
    t.set_block_cache(&rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    t
}

const BLOCK_CACHE_BYTES: usize = 8 << 20;

/// The column families' options: one set made, then copied. A new
/// `Options` builds a default table factory with its own 32 MB block cache,
/// thrown away as soon as ours replaces it; a copy shares the table factory
/// already set. Each family made anew cost about 1 % of an `echo hi` hit
/// (docs/benchmarks.md).
pub(super) fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    let mut zstd = Options::default();
    zstd.set_block_based_table_factory(&tables());
    zstd.set_compression_type(DBCompressionType::Zstd);
    COLUMN_FAMILIES
        .iter()
        .map(|&name| {
            let mut o = zstd.clone();
            // Blobs are zstd-compressed by us already.
            if name == CF_BLOBS {
                o.set_compression_type(DBCompressionType::None);
            }
            ColumnFamilyDescriptor::new(name, o)
        })
        .collect()
}

/// Whether a RocksDB open error means "somebody else has the LOCK": its
/// lock call failed (another process holds it), or this process holds it
/// already. Not a `LOCK` file that cannot be opened (a read-only directory,
/// another user's store): waiting would never help there.
fn is_lock_error(e: &rocksdb::Error) -> bool {
    e.kind() == rocksdb::ErrorKind::IOError && is_lock_message(e.as_ref())
}

/// Whether RocksDB's message says the store's lock is held (by another
/// process, or by another instance in this one).
fn is_lock_message(message: &str) -> bool {
    message.contains("While lock file") || message.contains("lock hold by current process")
}

/// Errors that mean the files are unusable, as opposed to the environment
/// (permissions, disk full) being wrong. A file of the store that is gone
/// (a `MANIFEST` or table file someone deleted) is damage too: RocksDB
/// calls it an I/O error, but no retry and no permission would bring it back.
fn is_unusable_store(e: &rocksdb::Error, db_dir: &Path) -> bool {
    match e.kind() {
        rocksdb::ErrorKind::Corruption
        | rocksdb::ErrorKind::InvalidArgument
        | rocksdb::ErrorKind::NotSupported => true,
        rocksdb::ErrorKind::IOError => {
            let message = e.to_string();
            message.contains("No such file or directory")
                && message.contains(db_dir.to_string_lossy().as_ref())
        }
        _ => false,
    }
}

/// The pid in the store's pid file, if that process is alive (the file
/// outlives its writer; a dead pid would name the wrong process).
fn read_holder(db_dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(db_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Opens (or creates) the store in `dir`: read-only when it exists and
/// either its lock is free with nothing waiting to be folded in, or
/// another vp holds the lock (see `access.rs` and [`open_read_mostly`]);
/// else read-write, waiting up to `options.lock_timeout` for another vp.
/// Blocking.
pub(crate) fn open(
    dir: &Path,
    options: &OpenOptions,
    notify: &mut dyn FnMut(StoreNotice),
) -> Result<Opened, CacheError> {
    let home = CacheDir::claim(dir)?;
    if let Some(store) = open_read_mostly(&home, dir, options) {
        return Ok(Opened::Ready(store));
    }
    // A run's store, even opened read-write, lets the lock go when the run
    // has nothing to write (`Access::release`).
    let run_store = |db| Access::writing(db, options.clone());
    open_read_write(
        home,
        dir,
        options,
        WhenUnusable::SetAside,
        notify,
        run_store,
    )
}

/// Opens the store read-write, holding its lock for as long as it is open
/// (`vp cache clean`, `prune` and `stats`, which must not share it).
/// Blocking.
pub(crate) fn open_exclusive(
    dir: &Path,
    options: &OpenOptions,
    unusable: WhenUnusable,
    notify: &mut dyn FnMut(StoreNotice),
) -> Result<Opened, CacheError> {
    let exclusive = |db| Access::Writable(Arc::new(db));
    open_read_write(
        CacheDir::claim(dir)?,
        dir,
        options,
        unusable,
        notify,
        exclusive,
    )
}

/// What opening read-write does with a store it cannot use (another
/// schema, a damaged `CURRENT` or `MANIFEST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenUnusable {
    /// Move it aside and start a new one, saying so: what a run does, so
    /// that a damaged cache never stops a build.
    SetAside,
    /// Fail with [`CacheError::Unusable`] and leave it as it is: what the
    /// commands that inspect or maintain the store do, since a user who
    /// asks for statistics has not asked for the cache to be replaced.
    Report,
}

/// Opens read-write; `access` says how the store then holds the instance.
fn open_read_write(
    home: CacheDir,
    dir: &Path,
    options: &OpenOptions,
    unusable: WhenUnusable,
    notify: &mut dyn FnMut(StoreNotice),
    access: impl FnOnce(DB) -> Access,
) -> Result<Opened, CacheError> {
    Ok(
        match open_writable(&home, dir, options, unusable, notify)? {
            Writable::Ready(db) => {
                let store = Store::new(access(db), dir, home);
                store.fold_journal(&store.reader());
                Opened::Ready(store)
            }
            Writable::Busy { holder } => Opened::Busy { holder },
            Writable::HeldByAncestor { holder, why } => Opened::HeldByAncestor { holder, why },
        },
    )
}

/// The read-only fast path, or `None` for the read-write one: no store yet,
/// its lock held by the vp that started this one (a nested run: the
/// read-write path says so) or by a process it cannot name, hits to fold
/// in while the lock is free, or anything unexpected (the read-write path
/// repairs or reports it). Logs too long to keep replaying are flushed
/// first when that can be done at once ([`flush_log_backlog`]).
///
/// Another vp holding the lock does not keep this one from reading: the
/// view is what the store held when it opened (RocksDB serves read-only
/// instances beside a writer), and every hit is checked against the files
/// anyway. Only a write waits for the lock, when there is one to make: a
/// run whose tasks hit is served at once while a `vp run dev` that stored
/// its build holds the lock for as long as the server runs.
fn open_read_mostly(home: &CacheDir, dir: &Path, options: &OpenOptions) -> Option<Store> {
    let db_dir = home.db();
    if !db_dir.join("CURRENT").is_file() {
        return None;
    }
    let holder = super::read_only::lock_holder(&db_dir.join("LOCK"));
    match holder {
        None if super::journal::needs_folding(&db_dir) => return None,
        None => {
            if LogBacklog::of(&db_dir).too_long() {
                flush_log_backlog(&db_dir);
            }
        }
        Some(Some(pid)) if options.cached_by.caches_this_process(pid).is_none() => {}
        Some(_) => return None,
    }
    // A writer may flush its logs into a table file and delete them while
    // this open reads the files, and the view would then lack what they
    // held: a writer's open writes a new `CURRENT`, and a flush of a running
    // writer appends to the `MANIFEST` that `CURRENT` names. A view taken
    // while either changed, or while the lock changed hands, is taken
    // again, a few times while another vp holds the lock (its next write
    // may come at any moment); while the lock is free, once is enough to
    // send the open down the read-write path, as before.
    let mut holder = holder;
    let mut attempts = 0;
    let db = loop {
        let before = ViewMark::of(&db_dir);
        let opened =
            DB::open_cf_descriptors_read_only(&read_options(), &db_dir, cf_descriptors(), false);
        let now = super::read_only::lock_holder(&db_dir.join("LOCK"));
        if let Ok(db) = opened
            && now == holder
            && before.is_some()
            && ViewMark::of(&db_dir) == before
        {
            break db;
        }
        attempts += 1;
        match now {
            Some(Some(pid))
                if attempts < VIEW_ATTEMPTS
                    && options.cached_by.caches_this_process(pid).is_none() =>
            {
                holder = now;
            }
            _ => return None,
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    check_schema(&db, true).ok()?;
    let store = Store::new(Access::read_mostly(db, options.clone()), dir, home.clone());
    store.load_journal();
    Some(store)
}

/// How many times a read-only view is taken beside another vp's lock
/// before the open goes down the read-write path (and waits for the lock).
const VIEW_ATTEMPTS: u32 = 5;

/// What changes when a writer's files change under a read-only open: the
/// `CURRENT` file, and the size of the `MANIFEST` it names.
#[derive(PartialEq, Eq)]
struct ViewMark {
    current: Vec<u8>,
    manifest_len: u64,
}

impl ViewMark {
    fn of(db_dir: &Path) -> Option<Self> {
        let current = fs::read(db_dir.join("CURRENT")).ok()?;
        let name = std::str::from_utf8(&current).ok()?.trim_end();
        let manifest_len = fs::metadata(db_dir.join(name)).ok()?.len();
        Some(Self {
            current,
            manifest_len,
        })
    }
}

/// Flushes the write-ahead logs into table files, so that the opens after
/// this one do not replay them again: one read-write open (its recovery
/// flushes, see [`open_tuning`]), closed at once. Best effort and never
/// waiting: when the lock is taken, or the directory cannot be written (a
/// read-only mount, another user's store, a full disk), the read-only open
/// replays the logs as before, and a later run flushes them. Only a store
/// of this schema is touched (checked read-only first), so a newer vp's
/// store is never written by this one.
fn flush_log_backlog(db_dir: &Path) {
    let ours = DB::open_cf_descriptors_read_only(&read_options(), db_dir, cf_descriptors(), false)
        .is_ok_and(|db| check_schema(&db, true).is_ok());
    if ours {
        // Dropped at once: the lock is held only for the flush.
        let _ = DB::open_cf_descriptors(&db_options(db_dir), db_dir, cf_descriptors());
    }
}

/// Options for a read-only open: the same table loading as a read-write
/// one, no info log (RocksDB opens none read-only).
pub(super) fn read_options() -> Options {
    let mut o = Options::default()
        .get_options_from_string(FAST_OPEN)
        .unwrap_or_default();
    o.set_block_based_table_factory(&tables());
    o
}

/// What opening read-write found.
pub(super) enum Writable {
    Ready(DB),
    /// Another vp kept the lock past the timeout.
    Busy {
        holder: Option<u32>,
    },
    /// The vp that started this one holds the lock for the cached command
    /// this process runs in.
    HeldByAncestor {
        holder: u32,
        why: OuterCaching,
    },
}

/// Whether another process holds the lock of the store in `db_dir` (asked
/// without taking it: see `read_only::lock_holder`).
pub(super) fn lock_is_held(db_dir: &Path) -> bool {
    super::read_only::lock_holder(&db_dir.join("LOCK")).is_some()
}

/// Opens (or creates) the store read-write in `home`, waiting up to
/// `options.lock_timeout` for another vp. Blocking.
pub(super) fn open_writable(
    home: &CacheDir,
    dir: &Path,
    options: &OpenOptions,
    unusable: WhenUnusable,
    notify: &mut dyn FnMut(StoreNotice),
) -> Result<Writable, CacheError> {
    let started = Instant::now();
    // The holder the last notice named (`Some(None)`: one it could not name).
    let mut announced: Option<Option<u32>> = None;
    let mut set_aside_once = false;
    let db_dir = home.db();
    loop {
        // Before every read-write attempt: the store may have been replaced
        // by another vp's while this one waited for the lock.
        if unusable == WhenUnusable::Report
            && let Some(reason) = unusable_reason(&db_dir)
        {
            return Err(CacheError::Unusable {
                dir: dir.to_path_buf(),
                reason,
            });
        }
        let existed = db_dir.exists();
        let problem = match DB::open_cf_descriptors(&db_options(&db_dir), &db_dir, cf_descriptors())
        {
            Ok(db) => match check_schema(&db, existed) {
                Ok(()) => {
                    // Best effort: only used to name the holder in a message.
                    let _ = fs::write(db_dir.join(PID_FILE), std::process::id().to_string());
                    return Ok(Writable::Ready(db));
                }
                Err(reason) => reason,
            },
            Err(e) if is_lock_error(&e) => {
                let holder = read_holder(&db_dir);
                if let Some((pid, why)) =
                    holder.and_then(|pid| Some((pid, options.cached_by.caches_this_process(pid)?)))
                {
                    return Ok(Writable::HeldByAncestor { holder: pid, why });
                }
                if started.elapsed() >= options.lock_timeout {
                    return Ok(Writable::Busy { holder });
                }
                // The holder writes its pid right after taking the lock: give
                // it a moment, so the message can name it.
                let named_or_late = holder.is_some() || started.elapsed() >= PID_GRACE;
                // Again when another vp has taken the lock meanwhile: the
                // wait goes on for a holder the user has not been told of.
                let not_told = match announced {
                    None => true,
                    Some(told) => holder.is_some() && holder != told,
                };
                if named_or_late && not_told {
                    announced = Some(holder);
                    notify(StoreNotice::WaitingForLock {
                        dir: dir.to_path_buf(),
                        holder,
                        kin: holder.map_or(Kin::Other, Kin::of),
                        timeout: options.lock_timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) if is_unusable_store(&e, &db_dir) => e.to_string(),
            Err(source) => {
                return Err(CacheError::Open {
                    dir: dir.to_path_buf(),
                    source,
                });
            }
        };
        if unusable == WhenUnusable::Report {
            return Err(CacheError::Unusable {
                dir: dir.to_path_buf(),
                reason: problem,
            });
        }
        if set_aside_once {
            // A fresh store is unusable too: something else is wrong; say so.
            return Err(CacheError::Io {
                op: "create a usable cache in",
                path: dir.to_path_buf(),
                source: std::io::Error::other(problem),
            });
        }
        let moved_to = home.set_aside_db()?;
        set_aside_once = true;
        notify(StoreNotice::SetAside {
            dir: dir.to_path_buf(),
            moved_to,
            reason: problem,
        });
    }
}

/// Why the existing store in `db_dir` cannot be used, asked read-only so
/// that a store of another schema is not written to (a read-write open
/// writes a new `MANIFEST` and `OPTIONS` file before the schema can be
/// read). Asked before every read-write attempt, and only while no other
/// vp holds the lock: a writer may be creating the store (no schema yet) or
/// compacting it (a file vanishing under a read-only open). `None` when it
/// looks usable, when there is none, or while the lock is held (the
/// read-write open waits, and this is asked again).
fn unusable_reason(db_dir: &Path) -> Option<String> {
    if !db_dir.exists() || lock_is_held(db_dir) {
        return None;
    }
    match DB::open_cf_descriptors_read_only(&read_options(), db_dir, cf_descriptors(), false) {
        Ok(db) => check_schema(&db, true).err(),
        Err(e) if is_unusable_store(&e, db_dir) => Some(e.to_string()),
        Err(_) => None,
    }
}

/// `Ok` when the schema matches (or the store is new and gets stamped),
/// else the reason to set it aside. The DB is dropped (closed) by the caller
/// on `Err`.
pub(super) fn check_schema(db: &DB, existed: bool) -> Result<(), String> {
    let meta = db.cf_handle(CF_META).ok_or("no `meta` column family")?;
    match db.get_cf(meta, META_SCHEMA) {
        Ok(Some(v)) => match <[u8; 4]>::try_from(v.as_slice()).map(u32::from_le_bytes) {
            Ok(SCHEMA_VERSION) => Ok(()),
            Ok(other) => Err(format!(
                "it has schema version {other}, this vp uses {SCHEMA_VERSION}"
            )),
            Err(_) => Err("its schema version record is corrupt".into()),
        },
        Ok(None) if !existed => db
            .put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes())
            .map_err(|e| format!("cannot write the schema version: {e}")),
        Ok(None) => Err("it has no schema version".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Opens the store in `dir` for a test, which expects it ready: waiting up
/// to `lock_timeout` for another opener, with no notices looked at.
#[cfg(test)]
pub(crate) fn open_for_test(dir: &Path, lock_timeout: std::time::Duration) -> Store {
    match open(dir, &OpenOptions::waiting(lock_timeout), &mut |_| {}) {
        Ok(Opened::Ready(s)) => s,
        Ok(Opened::Busy { .. } | Opened::HeldByAncestor { .. }) => panic!("store busy"),
        Err(e) => panic!("cannot open store: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::nesting::parent_of;

    fn quiet() -> impl FnMut(StoreNotice) {
        |_| {}
    }

    /// Opens a store that needs repair (no waiting for a lock): it must
    /// come out ready; returns what the user was told.
    fn open_repaired(dir: &Path) -> Vec<StoreNotice> {
        let mut notices = Vec::new();
        let got = open(dir, &OpenOptions::waiting(Duration::ZERO), &mut |n| {
            notices.push(n)
        })
        .expect("opens");
        assert!(matches!(got, Opened::Ready(_)));
        notices
    }

    /// RocksDB's `MANIFEST-*` files in the store under `dir`.
    fn manifests(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir.join("db"))
            .expect("read dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
            })
            .collect()
    }

    fn open_ready(dir: &Path) -> Store {
        open_for_test(dir, Duration::from_millis(200))
    }

    #[test]
    fn creates_then_reopens() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        let home = CacheDir::find(&dir).expect("ours").expect("exists");
        assert!(home.db().join("CURRENT").exists());
        drop(open_ready(&dir));
        assert!(
            home.set_aside_copies().is_empty(),
            "a healthy store is not set aside"
        );
    }

    /// Read-write opens (`open` takes that path whenever another process
    /// holds the lock; within one process the lock query cannot see it).
    #[test]
    fn second_open_in_same_process_is_busy_after_timeout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let _held = open_ready(&dir);
        let mut notices = Vec::new();
        let opts = OpenOptions::waiting(Duration::from_millis(150));
        let t = Instant::now();
        let got = open_exclusive(&dir, &opts, WhenUnusable::SetAside, &mut |n| {
            notices.push(n)
        })
        .expect("no error");
        assert!(matches!(got, Opened::Busy { holder: Some(pid) } if pid == std::process::id()));
        // Our own pid is not an ancestor: another thread of one process
        // waits like another process would.
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert_eq!(notices.len(), 1);
        let text = notices[0].to_string();
        assert!(text.starts_with("waiting for the cache lock on"), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
    }

    /// Makes a store in `dir` that a newer vp would have made.
    fn stamp_a_newer_schema(dir: &Path) {
        let store = open_ready(dir);
        let db = store.writer().expect("writable");
        let meta = db.cf_handle(CF_META).expect("meta cf");
        db.put_cf(meta, META_SCHEMA, (SCHEMA_VERSION + 1).to_le_bytes())
            .expect("put");
    }

    #[test]
    fn newer_schema_is_set_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        stamp_a_newer_schema(&dir);
        let notices = open_repaired(&dir);
        let [
            StoreNotice::SetAside {
                moved_to, reason, ..
            },
        ] = notices.as_slice()
        else {
            panic!("expected one set-aside notice, got {notices:?}");
        };
        assert!(
            reason.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{reason}"
        );
        assert!(moved_to.exists());
        let home = CacheDir::find(&dir).expect("ours").expect("exists");
        assert_eq!(home.set_aside_copies(), vec![moved_to.clone()]);
    }

    /// Inspecting a newer vp's store must not write to it: a read-write
    /// open writes a new `MANIFEST` before the schema can be read.
    #[test]
    fn a_report_leaves_a_newer_schema_unwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        stamp_a_newer_schema(&dir);
        let before = manifests(&dir);
        let err = open_exclusive(
            &dir,
            &OpenOptions::waiting(Duration::ZERO),
            WhenUnusable::Report,
            &mut quiet(),
        )
        .err()
        .expect("reported");
        assert!(
            matches!(&err, CacheError::Unusable { reason, .. }
                if reason.contains(&format!("schema version {}", SCHEMA_VERSION + 1))),
            "{err}"
        );
        assert_eq!(manifests(&dir), before, "no new MANIFEST");
        let home = CacheDir::find(&dir).expect("ours").expect("exists");
        assert!(home.set_aside_copies().is_empty());
    }

    #[test]
    fn garbage_current_is_set_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        fs::write(dir.join("db/CURRENT"), b"\x00\x01garbage").expect("write");
        let notices = open_repaired(&dir);
        assert!(
            matches!(notices.as_slice(), [StoreNotice::SetAside { .. }]),
            "{notices:?}"
        );
    }

    #[test]
    fn garbage_manifest_is_set_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        for p in manifests(&dir) {
            fs::write(&p, vec![0xAB; 4096]).expect("write");
        }
        let notices = open_repaired(&dir);
        assert_eq!(notices.len(), 1, "{notices:?}");
    }

    /// Probe: a store whose `MANIFEST` someone deleted failed every run with
    /// "cannot open the cache" (RocksDB calls a missing file an I/O error),
    /// and was never set aside.
    #[test]
    fn a_store_missing_its_manifest_is_set_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        for p in manifests(&dir) {
            fs::remove_file(&p).expect("remove");
        }
        let notices = open_repaired(&dir);
        assert!(
            matches!(notices.as_slice(), [StoreNotice::SetAside { reason, .. }] if reason.contains("MANIFEST")),
            "{notices:?}"
        );
    }

    #[test]
    fn foreign_directory_is_refused_not_clobbered() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("my-notes.txt"), "precious").expect("write");
        let err = open(
            tmp.path(),
            &OpenOptions::waiting(Duration::ZERO),
            &mut quiet(),
        )
        .err()
        .expect("refused");
        assert!(matches!(err, CacheError::ForeignDir { .. }));
        assert!(
            err.to_string().contains("has no `VP-CACHE` marker"),
            "{err}"
        );
        assert!(tmp.path().join("my-notes.txt").exists());
    }

    /// Issue: a user directory holding a file named `CURRENT`, `LOCK` or
    /// `IDENTITY` was taken for a broken cache, renamed aside, then deleted.
    #[test]
    fn rocksdb_looking_user_directory_is_left_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("CURRENT"), "my data").expect("write");
        let err = open(
            tmp.path(),
            &OpenOptions::waiting(Duration::ZERO),
            &mut quiet(),
        )
        .err()
        .expect("refused");
        assert!(matches!(err, CacheError::ForeignDir { .. }), "{err}");
        let names: Vec<_> = fs::read_dir(tmp.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["CURRENT"]);
        assert_eq!(
            fs::read_to_string(tmp.path().join("CURRENT")).expect("read"),
            "my data"
        );
    }

    /// A store open read-write in `dir`, whose pid file names this
    /// process's parent (the test runner) as the holder.
    fn held_as_if_by_parent(dir: &Path) -> (Store, u32) {
        let held = open_ready(dir);
        let parent = parent_of(std::process::id()).expect("a parent");
        fs::write(dir.join("db").join(PID_FILE), parent.to_string()).expect("write");
        (held, parent)
    }

    /// Issue: a task running `vp run` on its own workspace waited 10 s for
    /// the lock its parent vp held for that task. The ancestor's lock is
    /// known at once when the ancestor caches the command this process
    /// runs in.
    #[test]
    fn lock_held_by_an_ancestor_for_this_command_is_not_waited_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let (_held, parent) = held_as_if_by_parent(&dir);
        let mut notices = Vec::new();
        let t = Instant::now();
        let options = OpenOptions {
            cached_by: CachedBy::of(&[parent]),
            ..OpenOptions::waiting(Duration::from_secs(5))
        };
        let got = open_exclusive(&dir, &options, WhenUnusable::SetAside, &mut |n| {
            notices.push(n)
        })
        .expect("no error");
        assert!(matches!(
            got,
            Opened::HeldByAncestor { holder, why: OuterCaching::Listed } if holder == parent
        ));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(notices.is_empty(), "no wait message: {notices:?}");
    }

    /// Review: a nested `vp run` in a command its parent does not cache (a
    /// dev script) found the lock held for a cached task running beside it,
    /// was told "the outer task caches this run", and ran uncached. The
    /// parent lets that lock go when its task ends: the nested run waits
    /// for it like for any other vp's.
    #[test]
    fn lock_held_by_an_ancestor_for_another_command_is_waited_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let (_held, parent) = held_as_if_by_parent(&dir);
        let mut notices = Vec::new();
        let got = open_exclusive(
            &dir,
            &OpenOptions::waiting(Duration::from_millis(300)),
            WhenUnusable::SetAside,
            &mut |n| notices.push(n),
        )
        .expect("no error");
        assert!(matches!(got, Opened::Busy { holder: Some(h) } if h == parent));
        assert!(
            matches!(&notices[..], [StoreNotice::WaitingForLock { holder: Some(h), kin: Kin::Parent, .. }] if *h == parent),
            "{notices:?}"
        );
        assert!(
            notices[0].to_string().contains(&format!(
                "held by the vp that started this one (pid {parent}) for a task running beside this one"
            )),
            "{}",
            notices[0]
        );
    }

    /// Review: every 50 ms attempt to open a store another instance holds
    /// logged RocksDB's `DB::Open() failed` to the warnings log, which
    /// nothing trims: about 200 lines per 10 s wait.
    #[test]
    fn waiting_for_the_lock_writes_nothing_to_the_warnings_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let _held = open_ready(&dir);
        let got = open_exclusive(
            &dir,
            &OpenOptions::waiting(Duration::from_millis(300)),
            WhenUnusable::SetAside,
            &mut |_| {},
        )
        .expect("no error");
        assert!(matches!(got, Opened::Busy { .. }));
        let log = dir.join("db").join(WARNINGS_LOG);
        let logged = fs::read_to_string(&log).unwrap_or_default();
        assert!(!logged.contains("lock"), "{logged}");
    }

    /// The pid file outlives its writer: a dead pid must not be named as the
    /// holder of a lock.
    #[test]
    fn only_a_live_holder_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait");
        fs::write(tmp.path().join(PID_FILE), dead.to_string()).expect("write");
        assert_eq!(read_holder(tmp.path()), None);
        fs::write(tmp.path().join(PID_FILE), std::process::id().to_string()).expect("write");
        assert_eq!(read_holder(tmp.path()), Some(std::process::id()));
        fs::write(tmp.path().join(PID_FILE), "not a pid").expect("write");
        assert_eq!(read_holder(tmp.path()), None);
    }

    #[test]
    fn fast_open_options_parse() {
        let many = LogBacklog {
            logs: MAX_LOGS_TO_REPLAY + 1,
            bytes: 0,
        };
        for backlog in [LogBacklog::default(), many] {
            let tuning = open_tuning(backlog);
            assert!(
                Options::default().get_options_from_string(&tuning).is_ok(),
                "{tuning}"
            );
        }
    }

    /// The families' options are copies of one set, so check what RocksDB
    /// itself recorded of them (its `OPTIONS` file): blobs uncompressed (vp
    /// compresses them), the rest zstd, and each with vp's small block
    /// cache, not the 32 MB default.
    #[test]
    fn each_family_keeps_its_compression_and_the_small_block_cache() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        let db = CacheDir::find(&dir).expect("ours").expect("exists").db();
        let newest = fs::read_dir(&db)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-"))
            })
            .max()
            .expect("an OPTIONS file");
        let text = fs::read_to_string(newest).expect("read");
        let section = |name: &str| -> String {
            let head = format!("[CFOptions \"{name}\"]");
            let start = text.find(&head).unwrap_or_else(|| panic!("no {head}"));
            let rest = &text[start + head.len()..];
            let end = rest.find("\n[CFOptions").unwrap_or(rest.len());
            rest[..end].to_string()
        };
        for name in COLUMN_FAMILIES {
            let cf = section(name);
            let want = if name == CF_BLOBS {
                "compression=kNoCompression"
            } else {
                "compression=kZSTD"
            };
            assert!(
                cf.lines().any(|l| l.trim() == want),
                "{name}: {want} missing"
            );
        }
        let ro = DB::open_cf_descriptors_read_only(&read_options(), &db, cf_descriptors(), false)
            .expect("open read-only");
        for name in COLUMN_FAMILIES {
            let cf = ro.cf_handle(name).expect("family");
            assert_eq!(
                ro.property_int_value_cf(&cf, "rocksdb.block-cache-capacity")
                    .expect("property"),
                Some(BLOCK_CACHE_BYTES as u64),
                "{name}"
            );
        }
    }

    /// Each open that writes leaves a write-ahead log; they must not pile up
    /// (each would be replayed by every later open), and what they held
    /// survives the flush that removes them.
    #[test]
    fn write_ahead_logs_stay_bounded_and_keep_their_data() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let db_dir = CacheDir::claim(&dir).expect("claim").db();
        let mut most = 0;
        for i in 0..(3 * MAX_LOGS_TO_REPLAY) {
            let store = open_ready(&dir);
            let db = store.writer().expect("writable");
            let meta = db.cf_handle(CF_META).expect("meta");
            db.put_cf(meta, format!("k{i}"), i.to_le_bytes())
                .expect("put");
            drop(store);
            most = most.max(LogBacklog::of(&db_dir).logs);
        }
        assert!(most <= MAX_LOGS_TO_REPLAY + 1, "{most} logs at once");
        let store = open_ready(&dir);
        let db = store.writer().expect("writable");
        let meta = db.cf_handle(CF_META).expect("meta");
        for i in 0..(3 * MAX_LOGS_TO_REPLAY) {
            let got = db.get_cf(meta, format!("k{i}")).expect("get");
            assert_eq!(got.as_deref(), Some(&i.to_le_bytes()[..]), "k{i}");
        }
    }

    /// One read-write run that stores more than the log may keep for the
    /// next open to replay; returns the value stored under `big`.
    fn write_a_long_log(dir: &Path) -> Vec<u8> {
        let value = vec![7u8; (MAX_LOG_BYTES_TO_REPLAY as usize) + 4096];
        let store = open_ready(dir);
        let db = store.writer().expect("writable");
        db.put_cf(db.cf_handle(CF_META).expect("meta"), b"big", &value)
            .expect("put");
        value
    }

    /// One run that writes a lot (a large entry, large outputs) leaves a
    /// large log; the next open flushes it, so later read-only opens do
    /// not replay it, and nothing it held is lost.
    #[test]
    fn a_large_write_ahead_log_is_flushed_by_the_next_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let db_dir = CacheDir::claim(&dir).expect("claim").db();
        let value = write_a_long_log(&dir);
        let left = LogBacklog::of(&db_dir);
        assert!(left.too_long(), "{left:?}");

        let store = open_ready(&dir);
        assert!(
            !store.is_writable(),
            "the flush does not keep the lock: the store is read-only"
        );
        let after = LogBacklog::of(&db_dir);
        assert!(after.bytes < MAX_LOG_BYTES_TO_REPLAY, "{after:?}");
        let got = store.get(CF_META, b"big").expect("get");
        assert_eq!(got.as_deref(), Some(&value[..]));
    }

    /// A store that cannot be opened read-write (here its `LOCK` cannot be
    /// opened, as in a read-only directory) still serves reads when its
    /// logs are long: the flush is skipped, the logs are replayed, and the
    /// failure is not mistaken for another vp holding the lock.
    #[test]
    fn a_store_that_cannot_flush_its_logs_still_opens_read_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        let db_dir = CacheDir::claim(&dir).expect("claim").db();
        let value = write_a_long_log(&dir);
        fs::remove_file(db_dir.join("LOCK")).expect("rm LOCK");
        fs::create_dir(db_dir.join("LOCK")).expect("LOCK as a directory");

        let started = Instant::now();
        let store = open_ready(&dir);
        assert!(!store.is_writable());
        assert_eq!(
            store.get(CF_META, b"big").expect("get").as_deref(),
            Some(&value[..])
        );
        assert!(LogBacklog::of(&db_dir).too_long(), "nothing was flushed");
        // Writing needs the lock: a clear error at once, not a wait for a
        // holder that does not exist.
        let Err(err) = store.writer() else {
            panic!("opened read-write through a LOCK that is a directory");
        };
        assert!(
            !matches!(err, CacheError::Busy { .. }),
            "not reported as busy: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "no lock wait");
    }

    /// RocksDB's info log is not written on open: no `LOG` file, no
    /// `LOG.old.*` rotation.
    #[test]
    fn opening_writes_no_info_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        drop(open_ready(&dir));
        drop(open_ready(&dir));
        let db_dir = CacheDir::find(&dir).expect("ours").expect("exists").db();
        let names: Vec<String> = fs::read_dir(&db_dir)
            .expect("read db dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with("LOG")), "{names:?}");
    }

    #[test]
    fn lock_timeout_from_env() {
        let o =
            OpenOptions::from_env(|k| (k == "VP_CACHE_LOCK_TIMEOUT").then(|| "0.5".to_string()));
        assert_eq!(o.lock_timeout, Duration::from_millis(500));
        let o = OpenOptions::from_env(|_| Some("soon".to_string()));
        assert_eq!(o.lock_timeout, OpenOptions::DEFAULT_LOCK_TIMEOUT);
    }
}

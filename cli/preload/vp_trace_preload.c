/*
 * vp's in-process tracer: a library vp preloads (LD_PRELOAD) into the
 * dynamically linked programs of a traced task, so that their read-only
 * file accesses are recorded without a seccomp notification each.
 *
 * Why: under user notification every `open` and `stat` stops the calling
 * thread until vp's supervisor has read its path (about 13 us). Node makes
 * two such calls per file it reads, so a build that reads 50,000 files pays
 * more for the notifications than for its own work. This library wraps the
 * libc functions that only read (open without write flags, the stat family,
 * access, readlink, and `syscall()`, through which libuv calls statx).
 * It needs nothing from libc newer than glibc 2.17, so it loads into
 * programs on older systems too. Each
 * wrapper writes the call's number, arguments and path into a shared-memory
 * log vp gave the task, then issues the call from a trampoline page at an
 * address vp chose for this task (at random). vp's seccomp filter lets
 * calls from that one address through without a notification.
 *
 * Completeness does not depend on this library. Whatever it does not
 * handle goes the notified way: writes, renames and removes (the supervisor
 * must see those while they are held), relative paths under another
 * directory fd, paths under /proc, calls made before the library is ready
 * or after the log is full, glibc's internal calls, raw system calls,
 * static programs and programs that drop LD_PRELOAD. A record is committed
 * before its call is made, so a killed process never makes an unrecorded
 * access.
 *
 * The log's layout is defined in cli/src/trace/in_process.rs (the reader);
 * the two must change together. Linux x86_64 only, like the filter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __x86_64__
#error "vp's in-process tracer supports Linux x86_64 only"
#endif

#define EXPORT __attribute__((visibility("default")))

/* ---- the shared log (must match in_process.rs) ---- */

#define LOG_MAGIC 0x31474f4c45434152ULL /* "RACELOG1" little-endian */
#define LOG_DATA 4096                   /* records start here */
#define MAX_PATH_BYTES 4096

struct log_header {
	uint64_t magic;
	uint64_t nonce;    /* also in VP_TRACE_LOG: proves the fd is vp's log */
	uint64_t capacity; /* bytes of the whole mapping */
	uint64_t head;     /* atomic: offset of the next free byte */
	uint64_t dropped;  /* atomic: calls that went the notified way because the log was full */
	uint64_t seq;      /* atomic: the order of calls, shared with vp's supervisor */
};

/* `len` of a record whose writer has not committed it: its call was not
 * made (a record is committed before its call), the reader skips it. A
 * record whose `len` is still 0 is skipped too, word by word. */
#define LEN_PENDING 0x80000000u
/* `len` where the log ends: the first writer that did not fit wrote it. */
#define LEN_END 0xffffffffu

/* One record, 8-byte aligned. `len` is stored at once with LEN_PENDING
 * and again without it last (release): a reader that sees it committed
 * sees the whole record. */
struct record {
	uint32_t len;      /* bytes of the record, padding included */
	uint32_t tid;
	uint64_t seq;      /* from log_header.seq, taken just before the call */
	uint64_t time_ns;  /* CLOCK_MONOTONIC, for display */
	int64_t nr;
	uint64_t args[6];
	uint16_t path_len; /* bytes of the path, no NUL */
	uint16_t base_len; /* bytes of the cwd a relative path is under, else 0 */
	uint32_t reserved;
	/* path bytes, then base bytes, then zero padding to 8 */
};

/* ---- the trampoline ----
 * `long call(long nr, long a1, ..., long a6)`: moves the C arguments into
 * the system call registers and issues `syscall`. The filter allows calls
 * whose instruction pointer is the byte after that `syscall`. */
static const unsigned char TRAMPOLINE_CODE[] = {
	0x48, 0x89, 0xf8,             /* mov rax, rdi */
	0x48, 0x89, 0xf7,             /* mov rdi, rsi */
	0x48, 0x89, 0xd6,             /* mov rsi, rdx */
	0x48, 0x89, 0xca,             /* mov rdx, rcx */
	0x4d, 0x89, 0xc2,             /* mov r10, r8 */
	0x4d, 0x89, 0xc8,             /* mov r8, r9 */
	0x4c, 0x8b, 0x4c, 0x24, 0x08, /* mov r9, [rsp+8] */
	0x0f, 0x05,                   /* syscall (ends at offset 25) */
	0xc3,                         /* ret */
};
typedef long (*trampoline_fn)(long, long, long, long, long, long, long);

static struct log_header *log_header; /* NULL: not ready, everything notified */
static trampoline_fn trampoline;

static long call(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	return trampoline(nr, a1, a2, a3, a4, a5, a6);
}

static long set_errno(long rc)
{
	if (rc < 0 && rc > -4096) {
		errno = (int)-rc;
		return -1;
	}
	return rc;
}

static int parse_hex(const char **s, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;
	for (;; (*s)++, digits++) {
		char c = **s;
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			break;
		if (digits == 16)
			return 0;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return digits > 0;
}

/* The calling thread's id, for `vp trace --log`: asked of the kernel once
 * per thread, not once per record, where it was a system call as dear as a
 * `stat`. A forked child's thread has another id; the fork handler the
 * constructor registers forgets the parent's. Children made without fork
 * handlers (vfork, which shares its parent's memory, clone, _Fork) may
 * show their parent's id, or leave theirs to a parent that had not asked
 * yet. Only what `vp trace --log` shows can be wrong then: vp reads the id
 * for nothing else but a `/proc/self` path, and this library records none
 * (see `record`). */
static __thread __attribute__((tls_model("initial-exec"))) uint32_t cached_tid;

static uint32_t thread_id(void)
{
	if (!cached_tid)
		cached_tid = (uint32_t)call(SYS_gettid, 0, 0, 0, 0, 0, 0);
	return cached_tid;
}

static void forget_thread_id(void) { cached_tid = 0; }

/* VP_TRACE_LOG=<fd>:<nonce>:<trampoline address>, all lower-case hex.
 * Anything unexpected leaves the library off: every call is then notified. */
__attribute__((constructor)) static void vp_trace_init(void)
{
	const char *spec = getenv("VP_TRACE_LOG");
	uint64_t fd, nonce, address;
	if (!spec || !parse_hex(&spec, &fd) || *spec++ != ':' || !parse_hex(&spec, &nonce) ||
	    *spec++ != ':' || !parse_hex(&spec, &address) || *spec != '\0' || fd > 0x7fffffff ||
	    address == 0 || address % 4096 != 0)
		return;

	struct log_header probe;
	if (pread((int)fd, &probe, sizeof probe, 0) != (ssize_t)sizeof probe ||
	    probe.magic != LOG_MAGIC || probe.nonce != nonce || probe.capacity <= LOG_DATA)
		return;
	void *log = mmap(NULL, probe.capacity, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	if (log == MAP_FAILED)
		return;

	/* MAP_FIXED_NOREPLACE fails if anything is mapped there; a kernel older
	 * than 4.17 takes it as a hint, hence the address check. */
	void *page = mmap((void *)address, 4096, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (page == MAP_FAILED) {
		munmap(log, probe.capacity);
		return;
	}
	if (page != (void *)address) {
		munmap(page, 4096);
		munmap(log, probe.capacity);
		return;
	}
	memcpy(page, TRAMPOLINE_CODE, sizeof TRAMPOLINE_CODE);
	if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) {
		munmap(page, 4096);
		munmap(log, probe.capacity);
		return;
	}
	trampoline = (trampoline_fn)page;
	if (pthread_atfork(NULL, NULL, forget_thread_id) != 0) {
		munmap(page, 4096);
		munmap(log, probe.capacity);
		return;
	}
	__atomic_store_n(&log_header, (struct log_header *)log, __ATOMIC_RELEASE);
}

/* Writes one record; returns 0 when the log is full. */
static int commit(struct log_header *h, long nr, const long args[6], const char *path,
                  size_t path_len, const char *base, size_t base_len)
{
	size_t len = (sizeof(struct record) + path_len + base_len + 7) & ~(size_t)7;
	uint64_t at = __atomic_fetch_add(&h->head, len, __ATOMIC_RELAXED);
	if (at < LOG_DATA || at + len > h->capacity) {
		/* The one reservation that crosses the end marks it (records are
		 * 8-aligned, so there is room for the mark); later ones start past
		 * the end. Either way the call goes the notified way. */
		if (at >= LOG_DATA && at < h->capacity)
			__atomic_store_n((uint32_t *)((char *)h + at), LEN_END, __ATOMIC_RELEASE);
		__atomic_fetch_add(&h->dropped, 1, __ATOMIC_RELAXED);
		return 0;
	}
	struct record *r = (struct record *)((char *)h + at);
	/* The length is the record's first store: space left all zero by a
	 * writer that died here is skipped word by word (x86 keeps stores in
	 * order; the fence keeps the compiler from moving later ones up). */
	__atomic_store_n(&r->len, (uint32_t)len | LEN_PENDING, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	r->tid = thread_id();
	r->time_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	r->nr = nr;
	for (int i = 0; i < 6; i++)
		r->args[i] = (uint64_t)args[i];
	r->path_len = (uint16_t)path_len;
	r->base_len = (uint16_t)base_len;
	r->reserved = 0;
	char *bytes = (char *)(r + 1);
	memcpy(bytes, path, path_len);
	if (base_len)
		memcpy(bytes + path_len, base, base_len);
	memset(bytes + path_len + base_len, 0, len - sizeof(struct record) - path_len - base_len);
	r->seq = __atomic_fetch_add(&h->seq, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->len, (uint32_t)len, __ATOMIC_RELEASE);
	return 1;
}

/* A relative path: recorded with the thread's cwd, read into a buffer of
 * the thread's own (not the stack: a signal handler on a small alternate
 * stack may open a file). A handler that interrupts this function on the
 * same thread finds the buffer busy and goes the notified way. */
static __thread __attribute__((tls_model("initial-exec"))) char cwd_buffer[MAX_PATH_BYTES];
static __thread __attribute__((tls_model("initial-exec"))) int cwd_buffer_busy;

static int commit_relative(struct log_header *h, long nr, const long args[6], const char *path,
                           size_t path_len)
{
	if (cwd_buffer_busy)
		return 0;
	cwd_buffer_busy = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	int done = 0;
	long n = call(SYS_getcwd, (long)cwd_buffer, sizeof cwd_buffer, 0, 0, 0, 0);
	/* The kernel's length counts the NUL; "(unreachable)" is not a path. */
	if (n > 1 && cwd_buffer[0] == '/')
		done = commit(h, nr, args, path, path_len, cwd_buffer, (size_t)n - 1);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	cwd_buffer_busy = 0;
	return done;
}

/* Records one call naming `path` (relative paths are under the cwd when
 * `dirfd` is AT_FDCWD). Returns 0 when the call must go the notified way. */
static int record(long nr, const long args[6], int dirfd, const char *path)
{
	struct log_header *h = __atomic_load_n(&log_header, __ATOMIC_ACQUIRE);
	if (!h || !path || path[0] == '\0')
		return 0;
	size_t path_len = strnlen(path, MAX_PATH_BYTES);
	if (path_len >= MAX_PATH_BYTES)
		return 0;
	/* /proc/self means the calling thread's entry: left to the supervisor. */
	if (strncmp(path, "/proc", 5) == 0 && (path[5] == '/' || path[5] == '\0'))
		return 0;
	if (path[0] == '/')
		return commit(h, nr, args, path, path_len, NULL, 0);
	if (dirfd != AT_FDCWD)
		return 0;
	return commit_relative(h, nr, args, path, path_len);
}

/* A call the filter would notify, made in-process when it can be recorded.
 * Returns 1 and sets *rc when it was made. */
static int recorded_call(long nr, long a0, long a1, long a2, long a3, long a4, int dirfd,
                         const char *path, long *rc)
{
	const long args[6] = {a0, a1, a2, a3, a4, 0};
	if (!record(nr, args, dirfd, path))
		return 0;
	*rc = set_errno(call(nr, a0, a1, a2, a3, a4, 0));
	return 1;
}

/* A stat of an fd (`fstat` spelled as statx or newfstatat with an empty
 * path and AT_EMPTY_PATH): the supervisor records nothing for it (the open
 * was recorded), so it needs no record either. */
static int fd_only(const char *path, long flags)
{
	return path && path[0] == '\0' && (flags & AT_EMPTY_PATH) &&
	       __atomic_load_n(&log_header, __ATOMIC_ACQUIRE);
}

/* Flags of an open that only reads: no write access, no creation, no
 * truncation (Linux truncates even a read-only open with O_TRUNC). */
static int read_only_open(int flags)
{
	return (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC | __O_TMPFILE));
}

/* The notified way: the same system call from libc's side of the filter.
 * For every wrapped function this is all glibc does on x86_64 (struct stat
 * is the kernel's own layout there). */
static long raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long rc;
	__asm__ volatile("syscall"
	                 : "=a"(rc)
	                 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
	                 : "rcx", "r11", "memory");
	return rc;
}

/* Makes the call in-process when it can be recorded, else the notified way. */
static long traced_call(long nr, long a0, long a1, long a2, long a3, long a4, int dirfd,
                        const char *path)
{
	long rc;
	if (recorded_call(nr, a0, a1, a2, a3, a4, dirfd, path, &rc))
		return rc;
	return set_errno(raw(nr, a0, a1, a2, a3, a4, 0));
}

/* The mode argument exists only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, last)                                                     \
	mode_t mode = 0;                                                           \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                                   \
		va_list ap;                                                        \
		va_start(ap, last);                                                \
		mode = (mode_t)va_arg(ap, unsigned int);                           \
		va_end(ap);                                                        \
	}

static int open_at(int dirfd, const char *path, int flags, mode_t mode)
{
	if (!read_only_open(flags))
		return (int)set_errno(raw(SYS_openat, dirfd, (long)path, flags, mode, 0, 0));
	return (int)traced_call(SYS_openat, dirfd, (long)path, flags, mode, 0, dirfd, path);
}

EXPORT int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags)
	return open_at(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags)
	return open_at(AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags)
	return open_at(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags)
	return open_at(dirfd, path, flags, mode);
}

static int stat_at(int dirfd, const char *path, void *buf, int flags)
{
	if (fd_only(path, flags))
		return (int)set_errno(call(SYS_newfstatat, dirfd, (long)path, (long)buf, flags, 0, 0));
	return (int)traced_call(SYS_newfstatat, dirfd, (long)path, (long)buf, flags, 0, dirfd, path);
}

EXPORT int stat(const char *path, struct stat *buf) { return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int stat64(const char *path, struct stat64 *buf) { return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int lstat(const char *path, struct stat *buf)
{
	return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int lstat64(const char *path, struct stat64 *buf)
{
	return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int fstatat(int dirfd, const char *path, struct stat *buf, int flags)
{
	return stat_at(dirfd, path, buf, flags);
}
EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags)
{
	return stat_at(dirfd, path, buf, flags);
}

/* Old glibc's stat entry points (what programs built against glibc < 2.33,
 * Node's release binaries among them, call). Versions 0 and 1 are the
 * kernel's layout on x86_64; glibc refuses any other with EINVAL. */
static int xstat_at(int ver, int dirfd, const char *path, void *buf, int flags)
{
	if (ver != 0 && ver != 1) {
		errno = EINVAL;
		return -1;
	}
	return stat_at(dirfd, path, buf, flags);
}

EXPORT int __xstat(int ver, const char *path, struct stat *buf)
{
	return xstat_at(ver, AT_FDCWD, path, buf, 0);
}
EXPORT int __xstat64(int ver, const char *path, struct stat *buf)
{
	return xstat_at(ver, AT_FDCWD, path, buf, 0);
}
EXPORT int __lxstat(int ver, const char *path, struct stat *buf)
{
	return xstat_at(ver, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __lxstat64(int ver, const char *path, struct stat *buf)
{
	return xstat_at(ver, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags)
{
	return xstat_at(ver, dirfd, path, buf, flags);
}
EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat *buf, int flags)
{
	return xstat_at(ver, dirfd, path, buf, flags);
}

static long statx_at(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
	if (fd_only(path, flags))
		return set_errno(call(SYS_statx, dirfd, (long)path, flags, mask, (long)buf, 0));
	return traced_call(SYS_statx, dirfd, (long)path, flags, mask, (long)buf, dirfd, path);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
	return (int)statx_at(dirfd, path, flags, mask, buf);
}

EXPORT int access(const char *path, int mode)
{
	return (int)traced_call(SYS_faccessat, AT_FDCWD, (long)path, mode, 0, 0, AT_FDCWD, path);
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t size)
{
	return traced_call(SYS_readlinkat, AT_FDCWD, (long)path, (long)buf, (long)size, 0, AT_FDCWD,
	                   path);
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	return traced_call(SYS_readlinkat, dirfd, (long)path, (long)buf, (long)size, 0, dirfd, path);
}

/* libuv (Node) calls statx through syscall(); every other number is made
 * as it is. Like glibc's, this reads six arguments whatever the caller
 * passed. */
EXPORT long syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a[6];
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_statx)
		return statx_at((int)a[0], (const char *)a[1], (int)a[2], (unsigned int)a[3],
		                (struct statx *)a[4]);
	return set_errno(raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
}

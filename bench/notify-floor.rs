// The floor of seccomp user notification on this machine, for docs/benchmarks.md: a child makes
// N `stat` calls (statx) that are all notified, and the parent answers each with CONTINUE.
//
//   notify-floor MODE [N]      (N = 200000)
//   bare      the parent only receives and answers (poll, NOTIF_RECV, NOTIF_SEND)
//   readonly  + reads the path from the child's memory (process_vm_readv), as vp does
//   read      + checks the notification is still valid (NOTIF_ID_VALID), as vp does
//   mem       like read, but reads through an open /proc/<pid>/mem instead
//
// Prints microseconds per notified call, measured in the child. Built with plain `rustc -O`
// (no crates), x86_64 Linux only; needs seccomp user notification and pidfd_getfd (5.6+).
use std::time::Instant;
#[repr(C)] struct SockFilter { code: u16, jt: u8, jf: u8, k: u32 }
#[repr(C)] struct SockFprog { len: u16, filter: *const SockFilter }
#[repr(C)] #[derive(Default)] struct SeccompData { nr: i32, arch: u32, ip: u64, args: [u64; 6] }
#[repr(C)] #[derive(Default)] struct Notif { id: u64, pid: u32, flags: u32, data: SeccompData }
#[repr(C)] struct Resp { id: u64, val: i64, error: i32, flags: u32 }
#[repr(C)] struct PollFd { fd: i32, events: i16, revents: i16 }
#[repr(C)] struct IoVec { base: *mut u8, len: usize }
extern "C" {
    fn syscall(n: i64, ...) -> i64; fn fork() -> i32; fn prctl(o: i32, ...) -> i32;
    fn ioctl(fd: i32, req: u64, ...) -> i32; fn poll(p: *mut PollFd, n: u64, t: i32) -> i32;
    fn pipe(f: *mut i32) -> i32; fn read(fd: i32, b: *mut u8, n: usize) -> isize;
    fn write(fd: i32, b: *const u8, n: usize) -> isize; fn waitpid(p: i32, s: *mut i32, o: i32) -> i32;
    fn _exit(c: i32) -> !; fn pread(fd: i32, b: *mut u8, n: usize, off: i64) -> isize;
    fn process_vm_readv(p: i32, l: *const IoVec, ln: u64, r: *const IoVec, rn: u64, f: u64) -> isize;
}
const RECV: u64 = 0xc0502100; const SEND: u64 = 0xc0182101; const ID_VALID: u64 = 0x40082102;
const SET_FLAGS: u64 = 0x40082104;
fn main() {
    let mode = std::env::args().nth(1).unwrap_or("bare".into());
    let n: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mut p = [0i32; 2];
    unsafe { pipe(p.as_mut_ptr()) };
    let pid = unsafe { fork() };
    if pid == 0 {
        let prog = [
            SockFilter { code: 0x20, jt: 0, jf: 0, k: 0 },            // ld nr
            SockFilter { code: 0x15, jt: 0, jf: 1, k: 332 },          // jeq statx
            SockFilter { code: 0x06, jt: 0, jf: 0, k: 0x7fc0_0000 },  // ret USER_NOTIF
            SockFilter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 },  // ret ALLOW
        ];
        let fprog = SockFprog { len: 4, filter: prog.as_ptr() };
        unsafe { prctl(38, 1, 0, 0, 0) };
        let fd = unsafe { syscall(317, 1, 8, &fprog as *const SockFprog) } as i32; // NEW_LISTENER
        unsafe { write(p[1], &fd as *const i32 as *const u8, 4) };
        let t = Instant::now();
        for _ in 0..n { let _ = std::fs::metadata("/etc/hostname"); }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let s = format!("{mode}: {us:.2} us per notified stat\n");
        unsafe { write(2, s.as_ptr(), s.len()); _exit(0) }
    }
    let mut fd = 0i32;
    unsafe { read(p[0], &mut fd as *mut i32 as *mut u8, 4) };
    let pidfd = unsafe { syscall(434, pid, 0) } as i32;
    let l = unsafe { syscall(438, pidfd, fd, 0) } as i32;
    unsafe { ioctl(l, SET_FLAGS, 1u64) };
    let mut buf = [0u8; 256];
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    use std::os::fd::AsRawFd;
    loop {
        let mut pfd = PollFd { fd: l, events: 1, revents: 0 };
        unsafe { poll(&mut pfd, 1, -1) };
        if pfd.revents & 1 == 0 { break; }
        let mut req = Notif::default();
        if unsafe { ioctl(l, RECV, &mut req as *mut Notif) } < 0 { continue; }
        if mode == "read" {
            let lv = IoVec { base: buf.as_mut_ptr(), len: 256 };
            let rv = IoVec { base: req.data.args[1] as *mut u8, len: 256 };
            unsafe { process_vm_readv(req.pid as i32, &lv, 1, &rv, 1, 0) };
            unsafe { ioctl(l, ID_VALID, &req.id as *const u64) };
        }
        if mode == "mem" {
            unsafe { pread(mem.as_raw_fd(), buf.as_mut_ptr(), 256, req.data.args[1] as i64) };
            unsafe { ioctl(l, ID_VALID, &req.id as *const u64) };
        }
        if mode == "readonly" {
            let lv = IoVec { base: buf.as_mut_ptr(), len: 256 };
            let rv = IoVec { base: req.data.args[1] as *mut u8, len: 256 };
            unsafe { process_vm_readv(req.pid as i32, &lv, 1, &rv, 1, 0) };
        }
        let resp = Resp { id: req.id, val: 0, error: 0, flags: 1 };
        unsafe { ioctl(l, SEND, &resp as *const Resp) };
    }
    let mut st = 0;
    unsafe { waitpid(pid, &mut st, 0) };
}

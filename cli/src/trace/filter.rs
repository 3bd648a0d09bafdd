//! The classic-BPF seccomp program installed in every traced child: which
//! system calls are sent to the supervisor (user notification), which one is
//! refused (`io_uring_setup`), and which run untouched. Built in the parent,
//! before `fork`, because the child may not allocate; `install.rs` loads it.

use libc::sock_filter;

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>` (not in the libc crate).
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// x32 system calls are x86_64 calls with this bit set in the number.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// System calls whose path (or fd) the supervisor records. Everything that
/// names a file a tool can read, probe, list, execute, create or remove.
/// `read`/`write`/`mmap` are not here: the open that produced the fd is.
pub(crate) const NOTIFIED: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_chdir,
    libc::SYS_truncate,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_fchownat,
];

// Offsets into `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The 64-bit instruction pointer, as two 32-bit words (little-endian).
const OFFSET_IP_LOW: u32 = 8;
const OFFSET_IP_HIGH: u32 = 12;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
/// io_uring performs opens the filter never sees; refusing the ring makes
/// libuv (Node) and others fall back to plain system calls (measured).
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The filter program. Layout:
///
/// ```text
///   ld arch; jeq X86_64 ? skip : ret NOTIFY      (i386 `int 0x80` and friends)
///   ld nr;   jge X32_BIT ? ret NOTIFY : skip     (x32 numbers)
///   jeq io_uring_setup ? ret ENOSYS : skip
///   jeq NOTIFIED[i] ? → check                    (one test per call)
///   ret ALLOW
/// check:
///   ld ip.low;  jeq LOW  ? skip : → ret NOTIFY   (only with `allowed_from`)
///   ld ip.high; jeq HIGH ? ret ALLOW : → ret NOTIFY
///   ret NOTIFY
/// ```
///
/// Foreign architectures are notified rather than allowed so the supervisor
/// can mark the run untraceable instead of silently missing their opens.
/// `allowed_from` is the instruction pointer of the in-process tracer's
/// trampoline (`in_process.rs`): calls made there were recorded by the
/// library before it made them.
///
/// The instruction pointer is read only for a call that would be notified.
/// Every other call (`read`, `close`, `mmap`, `futex`, …) is then allowed
/// by its number and architecture alone, which the kernel (5.11 and later)
/// finds out once, when the filter is loaded, and remembers in a bitmap:
/// such a call does not run the filter at all (if every other filter on
/// the task, a container runtime's say, allows it by its number too). A
/// program that read the instruction pointer first would run for every
/// system call of the task.
pub(crate) fn program(allowed_from: Option<u64>) -> Vec<sock_filter> {
    let n = NOTIFIED.len();
    // Every jump offset to `check` must fit the 8-bit `jt` field.
    debug_assert!(n < 250, "too many notified system calls for 8-bit jumps");
    let mut prog = Vec::with_capacity(n + 16);
    prog.push(stmt(LD_W_ABS, OFFSET_ARCH));
    prog.push(jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    prog.push(stmt(RET_K, RET_NOTIFY));
    prog.push(stmt(LD_W_ABS, OFFSET_NR));
    prog.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
    prog.push(stmt(RET_K, RET_NOTIFY));
    prog.push(jump(JEQ_K, libc::SYS_io_uring_setup as u32, 0, 1));
    prog.push(stmt(RET_K, RET_ENOSYS));
    for (i, nr) in NOTIFIED.iter().enumerate() {
        // Distance from the instruction after this one to `check`: the
        // remaining tests (n - 1 - i) plus the ALLOW.
        let to_check = u8::try_from(n - i).unwrap_or(u8::MAX);
        prog.push(jump(JEQ_K, *nr as u32, to_check, 0));
    }
    prog.push(stmt(RET_K, RET_ALLOW));
    if let Some(ip) = allowed_from {
        prog.push(stmt(LD_W_ABS, OFFSET_IP_LOW));
        prog.push(jump(JEQ_K, ip as u32, 0, 3));
        prog.push(stmt(LD_W_ABS, OFFSET_IP_HIGH));
        prog.push(jump(JEQ_K, (ip >> 32) as u32, 0, 1));
        prog.push(stmt(RET_K, RET_ALLOW));
    }
    prog.push(stmt(RET_K, RET_NOTIFY));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` uses, so the jump
    /// arithmetic is checked without installing anything. `load` answers
    /// each load by its offset; `None` from it stops the run with `None`.
    fn interpret(prog: &[sock_filter], load: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                LD_W_ABS => acc = load(ins.k)?,
                JEQ_K => pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf }),
                JGE_K => pc += usize::from(if acc >= ins.k { ins.jt } else { ins.jf }),
                RET_K => return Some(ins.k),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run_at(prog, arch, nr, 0x7f00_1234_5678)
    }

    fn run_at(prog: &[sock_filter], arch: u32, nr: u32, ip: u64) -> u32 {
        let load = |offset| match offset {
            OFFSET_ARCH => Some(arch),
            OFFSET_NR => Some(nr),
            OFFSET_IP_LOW => Some(ip as u32),
            OFFSET_IP_HIGH => Some((ip >> 32) as u32),
            other => panic!("unexpected load offset {other}"),
        };
        interpret(prog, load).expect("every load answered")
    }

    #[test]
    fn every_listed_call_is_notified() {
        let prog = program(None);
        for nr in NOTIFIED {
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, *nr as u32),
                RET_NOTIFY,
                "nr {nr}"
            );
        }
    }

    #[test]
    fn other_calls_are_allowed() {
        let prog = program(None);
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_mmap,
            libc::SYS_close,
            libc::SYS_fstat,
        ] {
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, nr as u32),
                RET_ALLOW,
                "nr {nr}"
            );
        }
    }

    /// Every program the tests above check, with and without the
    /// in-process tracer's trampoline.
    fn programs() -> [Vec<sock_filter>; 2] {
        [program(None), program(Some(TRAMPOLINE))]
    }

    const TRAMPOLINE: u64 = 0x4f56_5000_0019;

    #[test]
    fn calls_from_the_trampoline_alone_skip_the_notification() {
        let prog = program(Some(TRAMPOLINE));
        for nr in NOTIFIED {
            let nr = *nr as u32;
            assert_eq!(
                run_at(&prog, AUDIT_ARCH_X86_64, nr, TRAMPOLINE),
                RET_ALLOW,
                "nr {nr}"
            );
            // Same low word, other high word; one byte off; elsewhere.
            for ip in [
                TRAMPOLINE + (1 << 32),
                TRAMPOLINE - 2,
                TRAMPOLINE + 1,
                0x7f00_0000_0019,
            ] {
                assert_eq!(
                    run_at(&prog, AUDIT_ARCH_X86_64, nr, ip),
                    RET_NOTIFY,
                    "nr {nr} ip {ip:#x}"
                );
            }
        }
        // The refusals and the foreign-architecture rule come first.
        assert_eq!(
            run_at(
                &prog,
                AUDIT_ARCH_X86_64,
                libc::SYS_io_uring_setup as u32,
                TRAMPOLINE
            ),
            RET_ENOSYS
        );
        assert_eq!(run_at(&prog, 0x4000_0003, 5, TRAMPOLINE), RET_NOTIFY);
        assert_eq!(
            run_at(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 2, TRAMPOLINE),
            RET_NOTIFY
        );
        // Untouched calls stay allowed from anywhere.
        assert_eq!(
            run_at(&prog, AUDIT_ARCH_X86_64, libc::SYS_read as u32, 0x1000),
            RET_ALLOW
        );
    }

    #[test]
    fn both_programs_notify_and_allow_alike_outside_the_trampoline() {
        for prog in programs() {
            for nr in NOTIFIED {
                assert_eq!(run(&prog, AUDIT_ARCH_X86_64, *nr as u32), RET_NOTIFY);
            }
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, libc::SYS_fstat as u32),
                RET_ALLOW
            );
        }
    }

    /// What the kernel's seccomp action cache asks of a program when it is
    /// loaded: does it allow `nr` whatever the instruction pointer and
    /// arguments are? `None` when the answer depends on them (the program
    /// loads anything but the number and the architecture on the way).
    fn allowed_by_number_alone(prog: &[sock_filter], nr: u32) -> Option<bool> {
        let load = |offset| match offset {
            OFFSET_ARCH => Some(AUDIT_ARCH_X86_64),
            OFFSET_NR => Some(nr),
            _ => None,
        };
        interpret(prog, load).map(|ret| ret == RET_ALLOW)
    }

    #[test]
    fn calls_never_notified_are_allowed_by_their_number_alone() {
        for (prog, trampoline) in [(program(None), false), (program(Some(TRAMPOLINE)), true)] {
            for nr in 0..=(libc::SYS_fchmodat2 as u32 + 16) {
                let notified = NOTIFIED.iter().any(|n| *n as u32 == nr);
                let refused = nr == libc::SYS_io_uring_setup as u32;
                let expected = match (notified, refused) {
                    // The trampoline's calls depend on where they come from.
                    (true, _) if trampoline => None,
                    (true, _) | (_, true) => Some(false),
                    (false, false) => Some(true),
                };
                assert_eq!(allowed_by_number_alone(&prog, nr), expected, "nr {nr}");
            }
        }
    }

    #[test]
    fn io_uring_setup_is_refused_with_enosys() {
        let prog = program(None);
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, libc::SYS_io_uring_setup as u32),
            RET_ENOSYS
        );
    }

    #[test]
    fn foreign_arch_and_x32_are_notified() {
        let prog = program(None);
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        // i386 `read` (3) is harmless on i386 too, but must still be seen.
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 3), RET_NOTIFY);
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 2),
            RET_NOTIFY
        );
    }
}

//! Turns one notified x86_64 system call (number + raw arguments) into the
//! file accesses it names: which argument holds the path, relative to which
//! dirfd, what the operation is, and whether the last symlink is followed.
//! Pure: reading the strings from the tracee is `tracee.rs`'s job, the
//! supervisor glues the two.

use super::log::Op;

/// Where the accessed file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A path string at `ptr` in the tracee, relative to `dirfd` when not absolute.
    Path {
        dirfd: i32,
        ptr: u64,
        empty: EmptyPath,
    },
    /// An open file descriptor of the tracee (`getdents`, `futimens`).
    Fd(i32),
}

/// What an empty path string means for this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmptyPath {
    /// Nothing to record: either the call fails (ENOENT) or it is an
    /// `AT_EMPTY_PATH` re-stat of an fd whose open was already recorded.
    Skip,
    /// The access is to the dirfd itself (`execveat`/`linkat` with
    /// `AT_EMPTY_PATH`, `readlinkat(fd, "")`).
    Dirfd,
}

/// One file access named by a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) source: Source,
    pub(crate) op: Op,
    pub(crate) follow: bool,
}

/// Up to two accesses (rename and link name two paths).
pub(crate) type Targets = [Option<Target>; 2];

const AT_FDCWD: i32 = libc::AT_FDCWD;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;
const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
const RENAME_EXCHANGE: u64 = libc::RENAME_EXCHANGE as u64;
const RENAME_NOREPLACE: u64 = libc::RENAME_NOREPLACE as u64;

/// Decodes a call. `read_u64` reads a word of tracee memory (for `openat2`'s
/// `struct open_how`); it returns `None` when the memory is unreadable.
pub(crate) fn decode(
    nr: i64,
    args: [u64; 6],
    mut read_u64: impl FnMut(u64) -> Option<u64>,
) -> Targets {
    let fd = |i: usize| args[i] as i32;
    let at = |dirfd: i32, ptr: u64, empty: EmptyPath| Source::Path { dirfd, ptr, empty };
    let cwd = |ptr: u64| at(AT_FDCWD, ptr, EmptyPath::Skip);
    let one = |source: Source, op: Op, follow: bool| [Some(Target { source, op, follow }), None];
    let empty_if = |flags: u64, on_empty: EmptyPath| {
        if flags & AT_EMPTY_PATH != 0 {
            on_empty
        } else {
            EmptyPath::Skip
        }
    };

    match nr {
        libc::SYS_open => {
            let (op, follow) = open_op(args[1]);
            one(cwd(args[0]), op, follow)
        }
        libc::SYS_creat => one(cwd(args[0]), Op::Write, true),
        libc::SYS_openat => {
            let (op, follow) = open_op(args[2]);
            one(at(fd(0), args[1], EmptyPath::Skip), op, follow)
        }
        libc::SYS_openat2 => match read_u64(args[2]) {
            // `open_how.flags` is the first field.
            Some(flags) => {
                let (op, follow) = open_op(flags);
                one(at(fd(0), args[1], EmptyPath::Skip), op, follow)
            }
            None => [None, None],
        },
        libc::SYS_access | libc::SYS_chdir => one(cwd(args[0]), Op::Probe, true),
        libc::SYS_stat => one(cwd(args[0]), Op::Stat, true),
        libc::SYS_lstat => one(cwd(args[0]), Op::Stat, false),
        libc::SYS_newfstatat => {
            let flags = args[3];
            // AT_EMPTY_PATH is `fstat`: a re-stat of an fd already recorded when opened.
            one(
                at(fd(0), args[1], EmptyPath::Skip),
                Op::Stat,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        libc::SYS_statx => {
            let flags = args[2];
            one(
                at(fd(0), args[1], EmptyPath::Skip),
                Op::Stat,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        libc::SYS_faccessat => one(at(fd(0), args[1], EmptyPath::Skip), Op::Probe, true),
        libc::SYS_faccessat2 => {
            let flags = args[3];
            one(
                at(fd(0), args[1], EmptyPath::Skip),
                Op::Probe,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        libc::SYS_readlink => one(cwd(args[0]), Op::ReadLink, false),
        libc::SYS_readlinkat => one(at(fd(0), args[1], EmptyPath::Dirfd), Op::ReadLink, false),
        libc::SYS_execve => one(cwd(args[0]), Op::Exec, true),
        libc::SYS_execveat => {
            let flags = args[4];
            one(
                at(fd(0), args[1], empty_if(flags, EmptyPath::Dirfd)),
                Op::Exec,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        libc::SYS_getdents | libc::SYS_getdents64 => one(Source::Fd(fd(0)), Op::List, true),
        libc::SYS_rename => rename(cwd(args[0]), cwd(args[1]), 0),
        libc::SYS_renameat => rename(
            at(fd(0), args[1], EmptyPath::Skip),
            at(fd(2), args[3], EmptyPath::Skip),
            0,
        ),
        libc::SYS_renameat2 => rename(
            at(fd(0), args[1], EmptyPath::Skip),
            at(fd(2), args[3], EmptyPath::Skip),
            args[4],
        ),
        libc::SYS_unlink | libc::SYS_rmdir => one(cwd(args[0]), Op::Remove, false),
        libc::SYS_unlinkat => one(at(fd(0), args[1], EmptyPath::Skip), Op::Remove, false),
        libc::SYS_mkdir => one(cwd(args[0]), Op::Mkdir, false),
        libc::SYS_mkdirat => one(at(fd(0), args[1], EmptyPath::Skip), Op::Mkdir, false),
        libc::SYS_truncate => one(cwd(args[0]), Op::Write, true),
        // A hard link gives the new name the old file's content: the source
        // is read (not followed unless AT_SYMLINK_FOLLOW), the destination created.
        libc::SYS_link => [
            Some(Target {
                source: cwd(args[0]),
                op: Op::Read,
                follow: false,
            }),
            Some(Target {
                source: cwd(args[1]),
                op: Op::Link,
                follow: false,
            }),
        ],
        libc::SYS_linkat => {
            let flags = args[4];
            [
                Some(Target {
                    source: at(fd(0), args[1], empty_if(flags, EmptyPath::Dirfd)),
                    op: Op::Read,
                    follow: flags & AT_SYMLINK_FOLLOW != 0,
                }),
                Some(Target {
                    source: at(fd(2), args[3], EmptyPath::Skip),
                    op: Op::Link,
                    follow: false,
                }),
            ]
        }
        // The symlink's target text is not accessed; only the new name is.
        libc::SYS_symlink => one(cwd(args[1]), Op::Link, false),
        libc::SYS_symlinkat => one(at(fd(1), args[2], EmptyPath::Skip), Op::Link, false),
        // Times, mode and owner. A NULL path in `utimensat`/`futimesat` is
        // the dirfd itself (`futimens`).
        libc::SYS_utime | libc::SYS_utimes | libc::SYS_chmod | libc::SYS_chown => {
            one(cwd(args[0]), Op::SetMetadata, true)
        }
        libc::SYS_lchown => one(cwd(args[0]), Op::SetMetadata, false),
        libc::SYS_futimesat | libc::SYS_fchmodat if args[1] == 0 => {
            one(Source::Fd(fd(0)), Op::SetMetadata, true)
        }
        libc::SYS_futimesat | libc::SYS_fchmodat => {
            one(at(fd(0), args[1], EmptyPath::Skip), Op::SetMetadata, true)
        }
        libc::SYS_utimensat if args[1] == 0 => one(Source::Fd(fd(0)), Op::SetMetadata, true),
        libc::SYS_utimensat => {
            let flags = args[3];
            one(
                at(fd(0), args[1], empty_if(flags, EmptyPath::Dirfd)),
                Op::SetMetadata,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        libc::SYS_fchmodat2 | libc::SYS_fchownat => {
            let flags = if nr == libc::SYS_fchownat {
                args[4]
            } else {
                args[3]
            };
            one(
                at(fd(0), args[1], empty_if(flags, EmptyPath::Dirfd)),
                Op::SetMetadata,
                flags & AT_SYMLINK_NOFOLLOW == 0,
            )
        }
        _ => [None, None],
    }
}

fn rename(from: Source, to: Source, flags: u64) -> Targets {
    // RENAME_EXCHANGE swaps two existing names: both end up with new content.
    let from_op = if flags & RENAME_EXCHANGE != 0 {
        Op::RenameTo
    } else {
        Op::RenameFrom
    };
    [
        Some(Target {
            source: from,
            op: from_op,
            follow: false,
        }),
        Some(Target {
            source: to,
            // Fails if the name exists (`mv -n`): see `Op::RenameToNew`.
            op: if flags & RENAME_NOREPLACE != 0 {
                Op::RenameToNew
            } else {
                Op::RenameTo
            },
            follow: false,
        }),
    ]
}

/// Operation and symlink-following of an `open` with these flags.
pub(crate) fn open_op(flags: u64) -> (Op, bool) {
    let flags = flags as i32;
    let follow = flags & libc::O_NOFOLLOW == 0
        && flags & (libc::O_CREAT | libc::O_EXCL) != (libc::O_CREAT | libc::O_EXCL);
    let op = if flags & libc::O_PATH != 0 {
        Op::Probe
    } else if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        // An unnamed file in the directory: nothing there changes unless a
        // `linkat` names it later (recorded then). The directory was only
        // looked up, as a dirfd's is.
        Op::Probe
    } else if flags & (libc::O_CREAT | libc::O_EXCL) == (libc::O_CREAT | libc::O_EXCL) {
        // Created exclusively: fails if the name exists (see `Op::CreateNew`).
        Op::CreateNew
    } else if flags & libc::O_TRUNC != 0 {
        // Truncated: nothing of an old content survives.
        Op::Write
    } else {
        match flags & libc::O_ACCMODE {
            // Without O_TRUNC the old content stays (O_APPEND adds to it,
            // a plain O_WRONLY overwrites part of it): the result depends
            // on it, as for read-write. A missing file is still just created.
            libc::O_WRONLY => Op::ReadWrite,
            // Read-write without truncation (a database, an incremental
            // build-info file): the old content may be read, then changed.
            libc::O_RDWR => Op::ReadWrite,
            _ if flags & libc::O_CREAT != 0 => Op::Write,
            // A directory opened to be listed or used as a dirfd: the
            // listing itself is recorded by getdents.
            _ if flags & libc::O_DIRECTORY != 0 => Op::Probe,
            _ => Op::Read,
        }
    };
    (op, follow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_memory(_: u64) -> Option<u64> {
        None
    }

    fn only(targets: Targets) -> Target {
        assert!(targets[1].is_none(), "expected one target, got {targets:?}");
        targets[0].expect("one target")
    }

    #[test]
    fn open_flags_decide_the_operation() {
        assert_eq!(open_op(libc::O_RDONLY as u64), (Op::Read, true));
        assert_eq!(
            open_op((libc::O_RDONLY | libc::O_CLOEXEC) as u64),
            (Op::Read, true)
        );
        assert_eq!(
            open_op((libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64),
            (Op::Write, true)
        );
        // `echo >> CHANGELOG`: the result depends on what was there.
        assert_eq!(
            open_op((libc::O_WRONLY | libc::O_APPEND) as u64),
            (Op::ReadWrite, true)
        );
        assert_eq!(open_op(libc::O_RDWR as u64), (Op::ReadWrite, true));
        assert_eq!(
            open_op((libc::O_RDWR | libc::O_TRUNC) as u64),
            (Op::Write, true)
        );
        assert_eq!(
            open_op((libc::O_RDONLY | libc::O_DIRECTORY) as u64),
            (Op::Probe, true)
        );
        assert_eq!(
            open_op((libc::O_PATH | libc::O_NOFOLLOW) as u64),
            (Op::Probe, false)
        );
        assert_eq!(
            open_op((libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64),
            (Op::CreateNew, false)
        );
    }

    #[test]
    fn openat_uses_dirfd_and_flags() {
        let t = only(decode(
            libc::SYS_openat,
            [5, 0x1000, (libc::O_WRONLY | libc::O_TRUNC) as u64, 0, 0, 0],
            no_memory,
        ));
        assert_eq!(
            t.source,
            Source::Path {
                dirfd: 5,
                ptr: 0x1000,
                empty: EmptyPath::Skip
            }
        );
        assert_eq!(t.op, Op::Write);
    }

    #[test]
    fn openat2_reads_flags_from_open_how() {
        let t = only(decode(
            libc::SYS_openat2,
            [AT_FDCWD as u64, 0x1000, 0x2000, 24, 0, 0],
            |ptr| {
                assert_eq!(ptr, 0x2000);
                Some(libc::O_RDWR as u64)
            },
        ));
        assert_eq!(t.op, Op::ReadWrite);
        // Unreadable `open_how`: the call will fail with EFAULT, nothing to record.
        assert_eq!(
            decode(libc::SYS_openat2, [0, 1, 2, 24, 0, 0], no_memory),
            [None, None]
        );
    }

    /// Issue: `tsc -b` bumps the mtime of up-to-date outputs with
    /// `utimensat`; unseen, the file looked like an input modified while the
    /// task ran.
    #[test]
    fn metadata_changes_are_recorded() {
        let t = only(decode(
            libc::SYS_utimensat,
            [AT_FDCWD as u64, 0x1000, 0, 0, 0, 0],
            no_memory,
        ));
        assert_eq!((t.op, t.follow), (Op::SetMetadata, true));
        assert_eq!(
            t.source,
            Source::Path {
                dirfd: AT_FDCWD,
                ptr: 0x1000,
                empty: EmptyPath::Skip
            }
        );
        // futimens(fd): utimensat with a NULL path names the fd.
        let t = only(decode(libc::SYS_utimensat, [7, 0, 0, 0, 0, 0], no_memory));
        assert_eq!(t.source, Source::Fd(7));
        let t = only(decode(
            libc::SYS_utimensat,
            [3, 0x1000, 0, AT_SYMLINK_NOFOLLOW, 0, 0],
            no_memory,
        ));
        assert!(!t.follow);
        for nr in [
            libc::SYS_chmod,
            libc::SYS_utimes,
            libc::SYS_utime,
            libc::SYS_chown,
        ] {
            assert_eq!(
                only(decode(nr, [0x1000, 0, 0, 0, 0, 0], no_memory)).op,
                Op::SetMetadata,
                "nr {nr}"
            );
        }
        assert!(!only(decode(libc::SYS_lchown, [0x1000, 0, 0, 0, 0, 0], no_memory)).follow);
        let t = only(decode(
            libc::SYS_fchownat,
            [3, 0x1000, 0, 0, AT_SYMLINK_NOFOLLOW, 0],
            no_memory,
        ));
        assert!(!t.follow);
        assert!(Op::SetMetadata.changes_name());
    }

    #[test]
    fn stat_family_follow_flags() {
        let nofollow = AT_SYMLINK_NOFOLLOW;
        assert!(only(decode(libc::SYS_stat, [1, 0, 0, 0, 0, 0], no_memory)).follow);
        assert!(!only(decode(libc::SYS_lstat, [1, 0, 0, 0, 0, 0], no_memory)).follow);
        assert!(
            !only(decode(
                libc::SYS_newfstatat,
                [0, 1, 0, nofollow, 0, 0],
                no_memory
            ))
            .follow
        );
        assert!(
            !only(decode(
                libc::SYS_statx,
                [0, 1, nofollow, 0, 0, 0],
                no_memory
            ))
            .follow
        );
        assert!(only(decode(libc::SYS_statx, [0, 1, 0, 0, 0, 0], no_memory)).follow);
    }

    #[test]
    fn empty_paths() {
        let t = only(decode(
            libc::SYS_statx,
            [3, 1, AT_EMPTY_PATH, 0, 0, 0],
            no_memory,
        ));
        assert_eq!(
            t.source,
            Source::Path {
                dirfd: 3,
                ptr: 1,
                empty: EmptyPath::Skip
            }
        );
        let t = only(decode(
            libc::SYS_execveat,
            [3, 1, 0, 0, AT_EMPTY_PATH, 0],
            no_memory,
        ));
        assert_eq!(
            t.source,
            Source::Path {
                dirfd: 3,
                ptr: 1,
                empty: EmptyPath::Dirfd
            }
        );
        assert_eq!(t.op, Op::Exec);
    }

    #[test]
    fn rename_records_both_names() {
        let [from, to] = decode(libc::SYS_renameat2, [1, 10, 2, 20, 0, 0], no_memory);
        assert_eq!(from.map(|t| t.op), Some(Op::RenameFrom));
        assert_eq!(
            to.map(|t| t.source),
            Some(Source::Path {
                dirfd: 2,
                ptr: 20,
                empty: EmptyPath::Skip
            })
        );
        let [from, _] = decode(
            libc::SYS_renameat2,
            [1, 10, 2, 20, RENAME_EXCHANGE, 0],
            no_memory,
        );
        assert_eq!(from.map(|t| t.op), Some(Op::RenameTo));
        let [from, to] = decode(
            libc::SYS_renameat2,
            [1, 10, 2, 20, RENAME_NOREPLACE, 0],
            no_memory,
        );
        assert_eq!(from.map(|t| t.op), Some(Op::RenameFrom));
        assert_eq!(to.map(|t| t.op), Some(Op::RenameToNew), "mv -n");
    }

    #[test]
    fn getdents_names_the_fd() {
        let t = only(decode(libc::SYS_getdents64, [7, 0, 0, 0, 0, 0], no_memory));
        assert_eq!(t.source, Source::Fd(7));
        assert_eq!(t.op, Op::List);
    }

    #[test]
    fn symlink_records_only_the_new_name() {
        let t = only(decode(libc::SYS_symlinkat, [10, 4, 20, 0, 0, 0], no_memory));
        assert_eq!(
            t.source,
            Source::Path {
                dirfd: 4,
                ptr: 20,
                empty: EmptyPath::Skip
            }
        );
        assert_eq!(t.op, Op::Link);
    }

    #[test]
    fn unknown_calls_name_nothing() {
        assert_eq!(decode(libc::SYS_read, [0; 6], no_memory), [None, None]);
        assert_eq!(decode(99_999, [0; 6], no_memory), [None, None]);
    }

    #[test]
    fn an_unnamed_temporary_file_only_looks_up_its_directory() {
        for mode in [libc::O_RDWR, libc::O_WRONLY] {
            assert_eq!(
                open_op((libc::O_TMPFILE | mode) as u64),
                (Op::Probe, true),
                "O_TMPFILE with mode {mode}"
            );
        }
    }
}

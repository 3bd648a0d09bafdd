//! The `vp` binary: parses arguments, dispatches to one command, and is the
//! only place that prints a top-level error and chooses the exit code. For
//! the commands that run tasks it first prepares the [`guard`], which kills
//! the tasks if vp dies without finishing (even by SIGKILL). A vp started
//! as the guard serves as one and does nothing else.

mod args;
mod bridge;
mod cache;
mod child_fd;
mod embedded;
mod error;
mod events;
mod graph;
mod guard;
mod parallel;
mod regular_file;
mod remote;
mod report;
mod run;
mod trace;
mod watch;
mod workspace;

use std::io::Write as _;

use clap::Parser;

fn main() {
    guard::serve_if_asked();
    let cli = args::Cli::parse();
    if matches!(cli.command, args::Command::Run(_) | args::Command::Build(_)) {
        guard::prepare();
    }
    let result = match cli.command {
        args::Command::Run(args) => run::command::run(args),
        args::Command::Build(args) => run::build::build(args),
        args::Command::Trace(args) => trace::command::run(args),
        args::Command::Cache(args) => cache::command::run(args),
    };
    // vp ends normally: whatever its tasks left running is theirs to keep.
    guard::release();
    let code = match result {
        // A run cancelled by a signal already carries 128 + the signal.
        Ok(code) => code,
        Err(err) => {
            error::print(&err);
            error::exit_code(&err)
        }
    };
    exit_now(code)
}

/// Ends vp with `code`, without the C library's exit handlers. By now every
/// task has ended or is the guard's, every line is written, and every store
/// is closed with its command, except one that a remote upload abandoned
/// at its deadline or at Ctrl-C, or a lookup a cancelled run stopped
/// waiting for, still holds on a pool thread; its writes
/// are in RocksDB's write-ahead log either way, and running RocksDB's
/// static destructors under an open database, as `exit` would, is the less
/// safe of the two. What the handlers would do is run those destructors
/// (freeing its option tables, one allocation at a time) and join the idle
/// threads of its thread pools, about 4 % of the CPU of an `echo hi` hit
/// (docs/benchmarks.md). Rust's standard streams are flushed first, as a
/// normal exit would.
fn exit_now(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; nothing is left to clean up.
    unsafe { libc::_exit(i32::from(code)) }
}

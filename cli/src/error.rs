//! How a top-level error reaches the user: one `error:` line, then each cause
//! as a `caused by:` line. The exit code for errors of vp itself (not of a
//! task) is decided here and nowhere else.

/// Exit code when vp itself fails (bad config, unknown task, broken cache...).
/// A failing task exits with the task's own code instead.
pub(crate) const EXIT_VP_ERROR: u8 = 1;

pub(crate) fn print(err: &anyhow::Error) {
    use std::io::Write;
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
}

pub(crate) fn exit_code(_err: &anyhow::Error) -> u8 {
    EXIT_VP_ERROR
}

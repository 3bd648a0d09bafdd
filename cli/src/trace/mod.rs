//! (placeholder: owned by the trace work)
pub(crate) mod command {
    pub(crate) fn run(_args: crate::args::TraceArgs) -> anyhow::Result<std::process::ExitCode> {
        anyhow::bail!("`vp trace` is not built yet")
    }
}

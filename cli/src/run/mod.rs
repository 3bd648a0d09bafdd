//! (placeholder)
pub(crate) mod command {
    pub(crate) fn run(_args: crate::args::RunArgs) -> anyhow::Result<std::process::ExitCode> {
        anyhow::bail!("`vp run` is not built yet")
    }
    pub(crate) fn build(_args: crate::args::BuildArgs) -> anyhow::Result<std::process::ExitCode> {
        anyhow::bail!("`vp build` is not built yet")
    }
}

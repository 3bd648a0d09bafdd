//! (placeholder: owned by the cache work)
pub(crate) mod command {
    pub(crate) fn run(_args: crate::args::CacheArgs) -> anyhow::Result<std::process::ExitCode> {
        anyhow::bail!("`vp cache` is not built yet")
    }
}

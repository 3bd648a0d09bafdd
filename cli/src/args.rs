//! Command-line arguments, as clap parses them. Only `main.rs` and the entry
//! point of each command (`run/command.rs`, `run/build.rs`,
//! `cache/command.rs`, `trace/command.rs`) see these types; each resolves
//! them once into its own settings, and nothing below (the stages of a run,
//! the reporter, the store) knows clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// A task runner for JavaScript/TypeScript workspaces that caches task results
/// and listens to the tools it runs.
#[derive(Debug, Parser)]
#[command(name = "vp", version, about, long_about = None)]
#[command(propagate_version = true, disable_help_subcommand = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a task (or list the tasks when no task is given)
    Run(RunArgs),
    /// Run the project's own `vite build` as a cached task (a drop-in for `vite build`)
    Build(BuildArgs),
    /// Run any command under the file-access tracer and print what it read and wrote
    Trace(TraceArgs),
    /// Inspect and manage the task cache
    Cache(CacheArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogMode {
    /// Children write straight to the terminal as they run
    #[default]
    Interleaved,
    /// Every line is prefixed with `[pkg#task]`
    Labeled,
    /// Each task's output is printed as one block when it ends
    Grouped,
}

impl From<LogMode> for crate::report::LogMode {
    fn from(mode: LogMode) -> Self {
        match mode {
            LogMode::Interleaved => Self::Interleaved,
            LogMode::Labeled => Self::Labeled,
            LogMode::Grouped => Self::Grouped,
        }
    }
}

/// Options shared by everything that executes tasks (`vp run`, `vp build`).
#[derive(Debug, Args, Clone)]
pub(crate) struct ExecOptions {
    /// Cache every selected task, package.json scripts included
    #[arg(long, overrides_with = "no_cache")]
    pub(crate) cache: bool,
    /// Run every selected task without reading or writing the cache
    #[arg(long = "no-cache", overrides_with = "cache")]
    pub(crate) no_cache: bool,
    /// How task output is shown
    #[arg(long, value_enum, default_value_t = LogMode::Interleaved)]
    pub(crate) log: LogMode,
    /// Show every task's cache status and reasons, and what its tools reported to vp
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Where the cache lives (default, also when empty: `node_modules/.cache/vp` at the workspace root)
    #[arg(long, env = "VP_CACHE_DIR", value_name = "DIR", value_parser = cache_dir_parser())]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Use the remote cache (`VP_REMOTE_CACHE_URL`): `read` only downloads; wins over `VP_REMOTE_CACHE_READ_ONLY`
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) remote_cache: Option<RemoteCacheArg>,
    /// Print what each selected task would do (hit, miss and why, disabled) without running anything or writing the cache
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the `--dry-run` plan (or `vp run --last-details`) as JSON on stdout (schema: docs/json.md)
    #[arg(long, requires = "json_source")]
    pub(crate) json: bool,
}

/// `--remote-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RemoteCacheArg {
    /// Neither download nor upload
    Off,
    /// Download only (for untrusted jobs such as pull requests from forks)
    Read,
    /// Download and upload
    Readwrite,
}

impl From<RemoteCacheArg> for crate::remote::RemoteMode {
    fn from(mode: RemoteCacheArg) -> Self {
        match mode {
            RemoteCacheArg::Off => Self::Off,
            RemoteCacheArg::Read => Self::Read,
            RemoteCacheArg::Readwrite => Self::ReadWrite,
        }
    }
}

/// `--json` says how to print something: the plan of `--dry-run`, or the
/// last run of `--last-details`; alone it has nothing to print.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("json_source").args(["dry_run", "last_details"]).multiple(true)))]
pub(crate) struct RunArgs {
    /// The task to run: `task` (in the package of the current directory) or `pkg#task`
    pub(crate) task: Option<String>,
    /// Run the task in every package that has it, dependencies first (with --filter: in the
    /// packages the filter selects)
    #[arg(short, long, conflicts_with_all = ["transitive", "workspace_root"])]
    pub(crate) recursive: bool,
    /// Run the task in the current package and in every package it depends on
    #[arg(short, long, conflicts_with_all = ["workspace_root", "filter"])]
    pub(crate) transitive: bool,
    /// Run the task of the workspace root package
    #[arg(short = 'w', long = "workspace-root", conflicts_with = "filter")]
    pub(crate) workspace_root: bool,
    /// Select packages with a pnpm-style selector (repeatable): `name`, `@scope/*`,
    /// `./dir`, `name...`, `...name`, `name^...`, `!name`
    #[arg(short = 'F', long = "filter", value_name = "SELECTOR")]
    pub(crate) filter: Vec<String>,
    /// Maximum number of tasks running at once
    #[arg(long, env = "VP_RUN_CONCURRENCY_LIMIT", default_value_t = DEFAULT_CONCURRENCY, value_name = "N",
          value_parser = concurrency_limit)]
    pub(crate) concurrency_limit: u32,
    /// Start every selected task at once, ignoring dependency order and the limit
    #[arg(long)]
    pub(crate) parallel: bool,
    /// Print the summary of the previous run and exit
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) last_details: bool,
    /// Run, then re-run what each edit affects (the files the tasks were seen to read) until Ctrl-C
    #[arg(long, conflicts_with_all = ["dry_run", "last_details", "json"])]
    pub(crate) watch: bool,
    #[command(flatten)]
    pub(crate) exec: ExecOptions,
    /// Extra arguments, appended to the last command of the task (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) extra: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("json_source").args(["dry_run"])))]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) exec: ExecOptions,
    /// Arguments for `vite build` (`--mode`, `--outDir`, `-c`, ...), passed through unchanged
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "VITE_ARGS"
    )]
    pub(crate) vite_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// Print the result as JSON
    #[arg(long)]
    pub(crate) json: bool,
    /// Also list every recorded access in order, not only the classification
    #[arg(long)]
    pub(crate) log: bool,
    /// Root of the paths that count (default: the workspace root, else the current directory)
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// Where the cache lives (default, also when empty: `node_modules/.cache/vp` at the workspace root)
    #[arg(long, env = "VP_CACHE_DIR", value_name = "DIR", global = true, value_parser = cache_dir_parser())]
    pub(crate) cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Delete the whole cache
    Clean,
    /// Evict least-recently-used entries until the cache fits the size bound
    Prune {
        /// Size bound, e.g. `2GiB`, `500MB` (default: `VP_CACHE_MAX_SIZE`, else 5GiB)
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
    /// Show entries, stored bytes and hit counts, and the remote cache's settings
    Stats,
    /// Check that the remote cache (`VP_REMOTE_CACHE_URL`) answers and accepts the token
    RemoteCheck,
    /// Print where the cache is
    Path,
}

/// `--cache-dir` / `VP_CACHE_DIR` as given, empty included: clap's path
/// parser rejects an empty value with an error about `--cache-dir` even when
/// it came from `VP_CACHE_DIR=`, but empty means "the default"
/// (`cache::settings::requested_dir`).
fn cache_dir_parser() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// How many tasks run at once when neither the flag nor the environment
/// says.
const DEFAULT_CONCURRENCY: u32 = 4;

/// `--concurrency-limit`'s value, from the flag or `VP_RUN_CONCURRENCY_LIMIT`.
/// Clap names only the flag in its error, so the message names both: a
/// value set in a CI job's environment is easy to forget. Empty is the
/// default, as an empty `VP_CACHE_DIR` is.
fn concurrency_limit(value: &str) -> Result<u32, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(DEFAULT_CONCURRENCY);
    }
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(
            "expected a whole number of tasks, 1 or more (from `--concurrency-limit` or the \
             environment variable VP_RUN_CONCURRENCY_LIMIT)"
                .to_owned(),
        ),
    }
}

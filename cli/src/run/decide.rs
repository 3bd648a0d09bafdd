//! The first stage of a command: what will be done with it.
//!
//! From the task's spec (its `cache` setting, already resolved with
//! `--cache`/`--no-cache` by `command.rs`) and whether the run has a usable
//! store, the [`CacheMode`] of one command; and the concrete process it
//! starts, whose program and arguments are part of its cache key
//! (`fingerprint`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::command_line::CommandItem;
use super::resolve;
use super::spawn::ProcessSpec;
use super::task::TaskSpec;
use crate::cache::{SpawnFingerprint, SpawnSpec};
use crate::events::{Failure, Unavailable};

/// How the cache treats one command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CacheMode<C> {
    /// Caching is off for the task: it runs untraced and nothing is stored.
    Disabled,
    /// The task wants the cache but this run has none: it runs as if
    /// disabled, and the header says why.
    Unavailable(Unavailable),
    /// Look the command up in the store; on a miss, observe and store it.
    LookUp(C),
}

/// The cache mode of a command of a task with `cache_enabled`, in a run
/// whose store is `cache`.
pub(crate) fn decide<C>(cache_enabled: bool, cache: &Result<C, Unavailable>) -> CacheMode<&C> {
    match (cache_enabled, cache) {
        (false, _) => CacheMode::Disabled,
        (true, Ok(c)) => CacheMode::LookUp(c),
        (true, Err(why)) => CacheMode::Unavailable(why.clone()),
    }
}

/// Resolves an item's program to the process to start: a direct command's
/// program from `node_modules/.bin` up to the root then `PATH`; anything
/// with shell syntax through `/bin/sh -c`.
pub(crate) fn process(
    spec: &TaskSpec,
    item: &CommandItem,
    programs: &resolve::ProgramSearch,
) -> Result<ProcessSpec, Failure> {
    let search = spec
        .child_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (program, args): (PathBuf, Vec<OsString>) = match item {
        CommandItem::Direct { argv, .. } => {
            let program = programs.find(&argv[0], &spec.cwd, &search).map_err(|_| {
                Failure::ProgramNotFound {
                    program: argv[0].clone(),
                }
            })?;
            (program, argv[1..].iter().map(OsString::from).collect())
        }
        CommandItem::Shell { script } => {
            (PathBuf::from("/bin/sh"), vec!["-c".into(), script.into()])
        }
    };
    Ok(ProcessSpec {
        program,
        args,
        cwd: spec.cwd.clone(),
        env: spec.child_env.clone(),
        interactive: spec.interactive,
    })
}

/// The cache key of `process` run for `spec`: its program and arguments,
/// working directory, declared env (values from vp's `full_env`), which of
/// its untracked variables are set, and its globs. A real run and a dry run
/// compute it here alike.
pub(crate) fn fingerprint(
    spec: &TaskSpec,
    process: &ProcessSpec,
    workspace_root: &Path,
    full_env: &[(OsString, OsString)],
) -> SpawnFingerprint {
    SpawnFingerprint::new(SpawnSpec {
        workspace_root,
        package_dir: &spec.package_dir,
        cwd: &spec.cwd,
        program: &process.program,
        args: &process.args,
        declared_env: &spec
            .env_policy
            .declared_values(full_env)
            .into_iter()
            .collect::<Vec<_>>(),
        untracked_env: &spec.env_policy.untracked_names(full_env),
        inputs: spec.inputs.clone(),
        outputs: spec.outputs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_task_never_looks_up() {
        assert_eq!(decide(false, &Ok(1)), CacheMode::Disabled);
        assert_eq!(
            decide::<u8>(false, &Err(Unavailable::NotOpened)),
            CacheMode::Disabled
        );
    }

    #[test]
    fn an_enabled_task_looks_up_when_the_store_is_there() {
        assert_eq!(decide(true, &Ok(1)), CacheMode::LookUp(&1));
    }

    #[test]
    fn an_enabled_task_without_a_store_says_why() {
        let why = Unavailable::Locked { holder: Some(42) };
        assert_eq!(
            decide::<u8>(true, &Err(why.clone())),
            CacheMode::Unavailable(why)
        );
    }
}

//! The environment a task's processes see.
//!
//! Strict by default: a child sees only the variables its task declares
//! (`env`, values fingerprinted), a few that tools turn into output and that
//! are therefore declared by default (`NODE_OPTIONS`; `NEXT_PUBLIC_*` in a
//! package that depends on Next.js), its
//! `untrackedEnv` (passed through, names only), and a default pass-through
//! list of variables that describe the machine rather than the build (PATH,
//! HOME, CI, ...). Everything else is stripped, so an undeclared variable
//! cannot change a cached result unseen. A task's own `env` outranks the
//! pass-through list, and its `untrackedEnv` outranks both declarations.
//! Tools may still ask for more over the bridge, which fingerprints what they
//! asked for.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use std::os::unix::ffi::OsStrExt;

use vp_ipc::{EnvNameMatcher, EnvQuery};

/// Passed to every child, never fingerprinted by value: what shells, package
/// managers, terminals and CI set, which no build result should depend on.
pub(crate) const DEFAULT_PASS_THROUGH: &[&str] = &[
    "HOME",
    "USER",
    "TZ",
    "LANG",
    "LC_*",
    "SHELL",
    "PWD",
    "PATH",
    "XDG_RUNTIME_DIR",
    "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS",
    "CI",
    "COREPACK_*",
    "NPM_CONFIG_STORE_DIR",
    "PNPM_HOME",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "COLORTERM",
    "TERM",
    "TERM_PROGRAM",
    "DISPLAY",
    "FORCE_COLOR",
    "NO_COLOR",
    "TMP",
    "TEMP",
    "TMPDIR",
    "VERCEL",
    "VERCEL_*",
    "NEXT_*",
    "GITHUB_*",
    "RUNNER_*",
    "DOCKER_*",
    "BUILDKIT_*",
    "PLAYWRIGHT_*",
    "VSCODE_*",
    "*_TOKEN",
    "VP_*",
];

/// Declared for every task (passed, value fingerprinted) unless its
/// `untrackedEnv` names them: `NODE_OPTIONS` changes what Node does (it can
/// add `--conditions`, another module resolution, or `--require`).
pub(crate) const DEFAULT_DECLARED: &[&str] = &["NODE_OPTIONS"];

/// Declared too for the tasks of a package that depends on Next.js, which
/// inlines these values into the bundles it builds (`NEXT_DEPLOYMENT_ID`
/// into its manifests and every asset URL, for skew protection). Only
/// there: Vercel sets `NEXT_PUBLIC_VERCEL_URL` and the commit per deploy,
/// and a lint or a library build elsewhere must not miss for it.
pub(crate) const NEXT_DECLARED: &[&str] = &["NEXT_PUBLIC_*", "NEXT_DEPLOYMENT_ID"];

/// Which defaults a task declares: by what its package builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framework {
    /// Nothing known to inline env values.
    Plain,
    /// The package depends on `next`.
    Next,
}

/// `DEFAULT_PASS_THROUGH`, compiled once per process rather than per task.
fn default_pass_through() -> &'static NameSet {
    static COMPILED: std::sync::OnceLock<NameSet> = std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        NameSet::new(DEFAULT_PASS_THROUGH, "(defaults)")
            .unwrap_or_else(|e| unreachable!("the built-in list is valid: {e}"))
    })
}

/// `DEFAULT_DECLARED`, with `NEXT_DECLARED` for Next.js, each compiled
/// once per process.
fn default_declared(framework: Framework) -> &'static NameSet {
    static PLAIN: std::sync::OnceLock<NameSet> = std::sync::OnceLock::new();
    static NEXT: std::sync::OnceLock<NameSet> = std::sync::OnceLock::new();
    let (cell, extra) = match framework {
        Framework::Plain => (&PLAIN, &[][..]),
        Framework::Next => (&NEXT, NEXT_DECLARED),
    };
    cell.get_or_init(|| {
        NameSet::new(&[DEFAULT_DECLARED, extra].concat(), "(defaults)")
            .unwrap_or_else(|e| unreachable!("the built-in list is valid: {e}"))
    })
}

#[derive(Debug, thiserror::Error)]
#[error("invalid env pattern `{pattern}` in task `{task}`: {message}")]
pub(crate) struct EnvPatternError {
    task: String,
    pattern: String,
    message: String,
}

/// Which variables a task declares, passes through, or strips.
#[derive(Debug, Clone)]
pub(crate) struct EnvPolicy {
    declared: NameSet,
    user_untracked: NameSet,
    default_declared: &'static NameSet,
    defaults: &'static NameSet,
}

/// Env-name globs from config, matched with the one env-name matcher every
/// part of vp (and the Node addon) uses: `vp_ipc::EnvQuery::matcher`. So a
/// pattern means the same in `env`, in `untrackedEnv` and in a tool's
/// `getEnvs` query.
#[derive(Debug, Clone)]
struct NameSet(Vec<EnvNameMatcher>);

impl NameSet {
    fn new(patterns: &[impl AsRef<str>], task: &str) -> Result<NameSet, EnvPatternError> {
        patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                EnvQuery::Glob(p.as_bytes().to_vec())
                    .matcher()
                    .map_err(|e| EnvPatternError {
                        task: task.to_owned(),
                        pattern: p.to_owned(),
                        message: e.problem.to_string(),
                    })
            })
            .collect::<Result<_, _>>()
            .map(NameSet)
    }

    fn is_match(&self, name: &OsStr) -> bool {
        let name = name.as_bytes();
        self.0.iter().any(|m| m.matches(name))
    }
}

impl EnvPolicy {
    pub(crate) fn new(
        task: &str,
        declared: &[String],
        untracked: &[String],
        framework: Framework,
    ) -> Result<EnvPolicy, EnvPatternError> {
        Ok(EnvPolicy {
            declared: NameSet::new(declared, task)?,
            user_untracked: NameSet::new(untracked, task)?,
            default_declared: default_declared(framework),
            defaults: default_pass_through(),
        })
    }

    /// Named by the task's `env` or by `DEFAULT_DECLARED`.
    fn names_declared(&self, name: &OsStr) -> bool {
        self.declared.is_match(name) || self.default_declared.is_match(name)
    }

    /// Declared: passed to the child, value fingerprinted. `untrackedEnv`
    /// wins over `env` when both match (user config that says "don't track"
    /// is the more specific intent); `env` wins over the pass-through list
    /// (`env: ["NEXT_*"]` tracks what the list would pass untracked).
    pub(crate) fn is_declared(&self, name: &OsStr) -> bool {
        self.names_declared(name) && !self.user_untracked.is_match(name)
    }

    /// Passed through without fingerprinting the value: the task's
    /// `untrackedEnv`, and the default pass-through list where nothing
    /// declares the name.
    pub(crate) fn is_untracked(&self, name: &OsStr) -> bool {
        self.user_untracked.is_match(name)
            || (self.defaults.is_match(name) && !self.names_declared(name))
    }

    /// The variables of `full` the child may see.
    pub(crate) fn child_env(&self, full: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
        full.iter()
            .filter(|(k, _)| self.is_declared(k) || self.is_untracked(k))
            .cloned()
            .collect()
    }

    /// Declared variables and their values (the part of the env that is in
    /// the cache key).
    pub(crate) fn declared_values(
        &self,
        full: &[(OsString, OsString)],
    ) -> BTreeMap<OsString, OsString> {
        full.iter()
            .filter(|(k, _)| self.is_declared(k))
            .cloned()
            .collect()
    }

    /// Names of the user's untracked variables that are set (in the key by
    /// name only).
    pub(crate) fn untracked_names(&self, full: &[(OsString, OsString)]) -> Vec<OsString> {
        let mut names: Vec<OsString> = full
            .iter()
            .filter(|(k, _)| self.user_untracked.is_match(k))
            .map(|(k, _)| k.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn the_default_list_compiles_once_and_matches() {
        let defaults = default_pass_through();
        assert_eq!(defaults.0.len(), DEFAULT_PASS_THROUGH.len());
        assert!(defaults.is_match(OsStr::new("LC_ALL")));
        assert!(defaults.is_match(OsStr::new("NPM_TOKEN")));
        assert!(!defaults.is_match(OsStr::new("SECRET")));
    }

    #[test]
    fn strict_env_keeps_declared_untracked_and_defaults_only() {
        let p = EnvPolicy::new(
            "t",
            &["VITE_*".into(), "NODE_ENV".into()],
            &["DEBUG".into()],
            Framework::Plain,
        )
        .expect("the test input is valid");
        let full = env(&[
            ("PATH", "/bin"),
            ("VITE_A", "1"),
            ("NODE_ENV", "production"),
            ("DEBUG", "x"),
            ("SECRET_THING", "s"),
            ("GITHUB_SHA", "abc"),
            ("NPM_TOKEN", "t"),
        ]);
        let names: Vec<_> = p.child_env(&full).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "VITE_A",
                "NODE_ENV",
                "DEBUG",
                "GITHUB_SHA",
                "NPM_TOKEN"
            ]
        );
        let declared: Vec<_> = p.declared_values(&full).into_keys().collect();
        assert_eq!(declared, ["NODE_ENV", "VITE_A"]);
        assert_eq!(p.untracked_names(&full), ["DEBUG"]);
    }

    #[test]
    fn untracked_wins_over_declared() {
        let p = EnvPolicy::new(
            "t",
            &["APP_*".into()],
            &["APP_BUILD_ID".into()],
            Framework::Plain,
        )
        .expect("the test input is valid");
        assert!(!p.is_declared(OsStr::new("APP_BUILD_ID")));
        assert!(p.is_untracked(OsStr::new("APP_BUILD_ID")));
        assert!(p.is_declared(OsStr::new("APP_URL")));
    }

    /// Probe: `NEXT_PUBLIC_API_URL` and `NODE_OPTIONS` changed what a build
    /// produced, yet were passed through untracked; and a task's own
    /// `env: ["NEXT_*"]` was overruled by the pass-through list.
    #[test]
    fn build_affecting_defaults_are_declared_and_env_outranks_the_pass_through_list() {
        let p = EnvPolicy::new("t", &[], &[], Framework::Next).expect("valid");
        // Probe: `NEXT_DEPLOYMENT_ID=dep-aaa` hit a build made without it,
        // though Next writes it into its manifests and asset URLs.
        for name in ["NODE_OPTIONS", "NEXT_PUBLIC_API_URL", "NEXT_DEPLOYMENT_ID"] {
            assert!(p.is_declared(OsStr::new(name)), "{name}");
            assert!(!p.is_untracked(OsStr::new(name)), "{name}");
        }
        assert!(p.is_untracked(OsStr::new("NEXT_TELEMETRY_DISABLED")));
        let full = env(&[("NODE_OPTIONS", "--conditions=dev"), ("CI", "1")]);
        let declared: Vec<_> = p.declared_values(&full).into_keys().collect();
        assert_eq!(declared, ["NODE_OPTIONS"]);

        // Review: outside a Next.js package, NEXT_PUBLIC_* stays untracked
        // (Vercel sets some per deploy; a lint must not miss for them).
        let plain = EnvPolicy::new("t", &[], &[], Framework::Plain).expect("valid");
        assert!(plain.is_declared(OsStr::new("NODE_OPTIONS")));
        assert!(!plain.is_declared(OsStr::new("NEXT_PUBLIC_VERCEL_URL")));
        assert!(plain.is_untracked(OsStr::new("NEXT_PUBLIC_VERCEL_URL")));

        let p = EnvPolicy::new("t", &["NEXT_*".into(), "CI".into()], &[], Framework::Plain)
            .expect("valid");
        for name in ["NEXT_TELEMETRY_DISABLED", "CI"] {
            assert!(p.is_declared(OsStr::new(name)), "{name}");
            assert!(!p.is_untracked(OsStr::new(name)), "{name}");
        }

        // The task's untrackedEnv still has the last word.
        let p =
            EnvPolicy::new("t", &[], &["NODE_OPTIONS".into()], Framework::Plain).expect("valid");
        assert!(!p.is_declared(OsStr::new("NODE_OPTIONS")));
        assert!(p.is_untracked(OsStr::new("NODE_OPTIONS")));
        let names: Vec<_> = p
            .child_env(&env(&[("NODE_OPTIONS", "--max-old-space-size=4096")]))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, ["NODE_OPTIONS"], "passed through either way");
    }

    #[test]
    fn bad_pattern_is_an_error_naming_the_task() {
        let e = EnvPolicy::new("app#build", &["VITE_[".into()], &[], Framework::Plain)
            .expect_err("the test input is invalid")
            .to_string();
        assert!(e.contains("`VITE_[`") && e.contains("app#build"), "{e}");
        assert!(e.contains("no closing `]`"), "{e}");
    }

    #[test]
    fn config_patterns_mean_what_a_tools_query_means() {
        // One matcher: alternatives and classes work in `env` as in getEnvs.
        let p = EnvPolicy::new(
            "t",
            &["VITE_{A,B}".into(), "X[0-9]".into()],
            &[],
            Framework::Plain,
        )
        .expect("the test input is valid");
        for yes in ["VITE_A", "VITE_B", "X7"] {
            assert!(p.is_declared(OsStr::new(yes)), "{yes}");
        }
        for no in ["VITE_C", "XA", "X10"] {
            assert!(!p.is_declared(OsStr::new(no)), "{no}");
        }
        // Names need not be UTF-8.
        use std::os::unix::ffi::OsStrExt;
        let p = EnvPolicy::new("t", &["A*".into()], &[], Framework::Plain).expect("valid");
        assert!(p.is_declared(OsStr::from_bytes(b"A\xff")));
    }
}

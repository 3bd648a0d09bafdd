//! The pre-run cache key: `SpawnFingerprint` is everything known about a
//! command before it runs (where, what program, which args, declared env,
//! input/output configuration, platform). The runner builds one per `&&` item;
//! its hash selects the stored entries, and a stored copy lets a miss say
//! which of these fields changed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::clock::Timestamp;
use super::codec::{self, SCHEMA_VERSION};
use super::digest::{Digest, Domain};
use super::env::EnvValue;
use super::miss::MissReason;
use super::paths::RelPath;

/// A place that may or may not be inside the workspace. Inside, it is stored
/// relative so that moving the whole workspace keeps its cache valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Location {
    Workspace(RelPath),
    External(Vec<u8>),
}

impl Location {
    pub(crate) fn of(workspace_root: &Path, abs: &Path) -> Self {
        match RelPath::from_abs(workspace_root, abs) {
            Some(rel) => Self::Workspace(rel),
            None => Self::External(super::paths::normalize(abs).as_os_str().as_bytes().to_vec()),
        }
    }
}

/// What program runs. Inside the workspace the tracer fingerprints the
/// program file's content as an input, so its path is enough; outside (a
/// system `node`), size and mtime of the file stand in for its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProgramIdentity {
    pub(crate) location: Location,
    pub(crate) stamp: Option<(u64, Timestamp)>,
}

impl ProgramIdentity {
    /// `resolved` is the absolute path the runner will exec (after PATH lookup).
    pub(crate) fn of(workspace_root: &Path, resolved: &Path) -> Self {
        let location = Location::of(workspace_root, resolved);
        let stamp = match location {
            Location::Workspace(_) => None,
            Location::External(_) => std::fs::metadata(resolved)
                .ok()
                .map(|m| (m.len(), Timestamp::mtime(&m))),
        };
        Self { location, stamp }
    }
}

/// A task's `input` or `output` configuration: `{ "auto": true }` plus globs
/// relative to the package directory (`!` excludes, `..` allowed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GlobConfig {
    pub(crate) auto: bool,
    pub(crate) globs: Vec<String>,
}

impl GlobConfig {
    /// The default when a task configures nothing: observed accesses only.
    pub(crate) fn auto() -> Self {
        Self {
            auto: true,
            globs: Vec::new(),
        }
    }

    /// Order does not matter (negatives apply to the whole set), so it is
    /// normalised away: reordering globs is not a configuration change.
    fn canonical(mut self) -> Self {
        self.globs.sort();
        self.globs.dedup();
        self
    }
}

/// Everything the runner knows before spawning one command. Absolute paths
/// are turned into workspace-relative ones by `SpawnFingerprint::new`.
pub(crate) struct SpawnSpec<'a> {
    pub(crate) workspace_root: &'a Path,
    /// The package directory input/output globs are relative to.
    pub(crate) package_dir: &'a Path,
    pub(crate) cwd: &'a Path,
    /// The resolved absolute program path.
    pub(crate) program: &'a Path,
    pub(crate) args: &'a [OsString],
    /// Declared (`env`) variables after expanding globs against the full env.
    pub(crate) declared_env: &'a [(OsString, OsString)],
    /// Names the user's `untrackedEnv` selects that are set (their presence
    /// is in the key, their values never are).
    pub(crate) untracked_env: &'a [OsString],
    pub(crate) inputs: GlobConfig,
    pub(crate) outputs: GlobConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpawnFingerprint {
    pub(crate) schema: u32,
    pub(crate) platform: String,
    pub(crate) cwd: Location,
    pub(crate) program: ProgramIdentity,
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: BTreeMap<Vec<u8>, EnvValue>,
    pub(crate) untracked_env: BTreeSet<Vec<u8>>,
    pub(crate) package_dir: Location,
    pub(crate) inputs: GlobConfig,
    pub(crate) outputs: GlobConfig,
}

impl SpawnFingerprint {
    pub(crate) fn new(spec: SpawnSpec<'_>) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cwd: Location::of(spec.workspace_root, spec.cwd),
            program: ProgramIdentity::of(spec.workspace_root, spec.program),
            args: spec.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            env: spec
                .declared_env
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), EnvValue::for_declared(k, v)))
                .collect(),
            untracked_env: spec
                .untracked_env
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect(),
            package_dir: Location::of(spec.workspace_root, spec.package_dir),
            inputs: spec.inputs.canonical(),
            outputs: spec.outputs.canonical(),
        }
    }

    /// The cache key: BLAKE3 over the canonical encoding.
    pub(crate) fn key(&self) -> Digest {
        Digest::of(Domain::SpawnKey, &codec::encode(self))
    }

    /// Every field that differs from `previous`, as miss reasons.
    pub(crate) fn diff(&self, previous: &Self) -> Vec<MissReason> {
        let mut out = Vec::new();
        if self.schema != previous.schema || self.platform != previous.platform {
            out.push(MissReason::PlatformChanged);
        }
        if self.program != previous.program {
            out.push(MissReason::ProgramChanged);
        }
        if self.args != previous.args {
            out.push(MissReason::ArgsChanged);
        }
        if self.cwd != previous.cwd {
            out.push(MissReason::WorkingDirectoryChanged);
        }
        if self.inputs != previous.inputs || self.package_dir != previous.package_dir {
            out.push(MissReason::InputConfigChanged);
        }
        if self.outputs != previous.outputs {
            out.push(MissReason::OutputConfigChanged);
        }
        let shown = |n: &Vec<u8>| String::from_utf8_lossy(n).into_owned();
        out.extend(
            self.untracked_env
                .difference(&previous.untracked_env)
                .map(|n| MissReason::UntrackedEnvSet(shown(n))),
        );
        out.extend(
            previous
                .untracked_env
                .difference(&self.untracked_env)
                .map(|n| MissReason::UntrackedEnvUnset(shown(n))),
        );
        diff_maps(&previous.env, &self.env, &mut out);
        out
    }
}

/// Per-name env differences between two maps (any value type).
pub(crate) fn diff_maps<V: PartialEq>(
    before: &BTreeMap<Vec<u8>, V>,
    now: &BTreeMap<Vec<u8>, V>,
    out: &mut Vec<MissReason>,
) {
    let shown = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    for (name, value) in now {
        match before.get(name) {
            None => out.push(MissReason::EnvAdded(shown(name))),
            Some(old) if old != value => out.push(MissReason::EnvChanged(shown(name))),
            Some(_) => {}
        }
    }
    for name in before.keys() {
        if !now.contains_key(name) {
            out.push(MissReason::EnvRemoved(shown(name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Spec {
        cwd: PathBuf,
        program: PathBuf,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
        untracked: Vec<OsString>,
        inputs: GlobConfig,
    }

    fn base() -> Spec {
        Spec {
            cwd: "/ws/packages/a".into(),
            program: "/ws/node_modules/.bin/vite".into(),
            args: vec!["build".into()],
            env: vec![("NODE_ENV".into(), "production".into())],
            untracked: vec!["DEBUG".into()],
            inputs: GlobConfig::auto(),
        }
    }

    fn fp(s: &Spec) -> SpawnFingerprint {
        SpawnFingerprint::new(SpawnSpec {
            workspace_root: Path::new("/ws"),
            package_dir: Path::new("/ws/packages/a"),
            cwd: &s.cwd,
            program: &s.program,
            args: &s.args,
            declared_env: &s.env,
            untracked_env: &s.untracked,
            inputs: s.inputs.clone(),
            outputs: GlobConfig::auto(),
        })
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let a = fp(&base());
        assert_eq!(a.key(), fp(&base()).key());
        let mut s = base();
        s.args.push("--watch".into());
        assert_ne!(a.key(), fp(&s).key());
        assert_eq!(fp(&s).diff(&a), vec![MissReason::ArgsChanged]);
    }

    #[test]
    fn relative_inside_workspace() {
        let a = fp(&base());
        assert_eq!(
            a.cwd,
            Location::Workspace(RelPath::from_stored(b"packages/a").expect("valid"))
        );
        assert_eq!(a.program.stamp, None);
        let external = ProgramIdentity::of(Path::new("/ws"), Path::new("/no/such/node"));
        assert!(matches!(external.location, Location::External(_)));
    }

    #[test]
    fn diff_names_every_field() {
        let a = fp(&base());
        let mut s = base();
        s.cwd = "/ws/packages/a/sub".into();
        s.program = "/ws/node_modules/.bin/tsc".into();
        s.env = vec![
            ("NODE_ENV".into(), "development".into()),
            ("VITE_X".into(), "1".into()),
        ];
        s.untracked = vec![];
        s.inputs = GlobConfig {
            auto: true,
            globs: vec!["src/**".into()],
        };
        let reasons = fp(&s).diff(&a);
        assert_eq!(
            reasons,
            vec![
                MissReason::ProgramChanged,
                MissReason::WorkingDirectoryChanged,
                MissReason::InputConfigChanged,
                MissReason::UntrackedEnvUnset("DEBUG".into()),
                MissReason::EnvChanged("NODE_ENV".into()),
                MissReason::EnvAdded("VITE_X".into()),
            ]
        );
        assert!(
            a.diff(&fp(&s))
                .contains(&MissReason::EnvRemoved("VITE_X".into()))
        );
    }

    #[test]
    fn glob_order_is_not_a_change() {
        let mut s1 = base();
        s1.inputs = GlobConfig {
            auto: false,
            globs: vec!["b/**".into(), "a/**".into()],
        };
        let mut s2 = base();
        s2.inputs = GlobConfig {
            auto: false,
            globs: vec!["a/**".into(), "b/**".into()],
        };
        assert_eq!(fp(&s1).key(), fp(&s2).key());
    }

    #[test]
    fn secret_values_are_not_stored_in_clear() {
        let mut s = base();
        s.env = vec![("NPM_TOKEN".into(), "s3cr3t-value".into())];
        let f = fp(&s);
        let bytes = codec::encode(&f);
        assert!(!bytes.windows(12).any(|w| w == b"s3cr3t-value"));
        let mut s2 = base();
        s2.env = vec![("NPM_TOKEN".into(), "other".into())];
        assert_eq!(
            fp(&s2).diff(&f),
            vec![MissReason::EnvChanged("NPM_TOKEN".into())]
        );
    }
}

//! The remote cache's pre-run key (`PortableKey`): the same on every machine
//! that would produce the same result. It is the `SpawnFingerprint` with
//! everything machine-specific taken out: paths are workspace-relative only
//! (a command whose working or package directory is outside the workspace
//! has no portable key), a program outside the workspace is named by its
//! file name and content hash instead of its absolute path, size and mtime,
//! and every declared env value is a hash. `docs/remote-cache.md` lists the
//! fields; changing them means bumping `PORTABLE_KEY_VERSION`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::codec;
use super::digest::{Digest, Domain};
use super::env::{EnvValue, hash_value};
use super::fingerprint::{GlobConfig, Location, SpawnFingerprint};
use super::paths::RelPath;

/// Bumped whenever the fields below or their encoding change.
pub(crate) const PORTABLE_KEY_VERSION: u32 = 1;

/// The portable key; its hex form is the manifest artifact's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PortableKey(pub(crate) Digest);

impl fmt::Display for PortableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PortableKey {
    /// The id of the result artifact for inputs whose content identity is
    /// `variant` (`CacheEntry::variant`, which holds no stat stamps and no
    /// absolute paths, so it is portable as it is).
    pub(crate) fn result_id(&self, variant: &Digest) -> Digest {
        let mut bytes = Vec::with_capacity(2 * Digest::LEN);
        bytes.extend_from_slice(self.0.as_bytes());
        bytes.extend_from_slice(variant.as_bytes());
        Digest::of(Domain::RemoteResult, &bytes)
    }
}

/// Why a command's results are not shared: its key would contain a path of
/// this machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotPortable {
    #[error("its working directory is outside the workspace")]
    CwdOutsideWorkspace,
    #[error("its package directory is outside the workspace")]
    PackageOutsideWorkspace,
    #[error("its program `{path}` could not be hashed: {error}")]
    ProgramUnreadable { path: String, error: String },
}

#[derive(Serialize)]
enum PortableProgram<'a> {
    /// Inside the workspace the program file is a traced input like any
    /// other, so its relative path is enough (as in the local key).
    Workspace(&'a RelPath),
    /// Outside (a system `node`): the file name (a multi-call binary such as
    /// busybox behaves by `argv[0]`) and the content hash.
    External { name: &'a [u8], content: Digest },
}

#[derive(Serialize)]
struct Portable<'a> {
    version: u32,
    schema: u32,
    platform: &'a str,
    cwd: &'a RelPath,
    program: PortableProgram<'a>,
    args: &'a [Vec<u8>],
    env: BTreeMap<&'a [u8], Digest>,
    untracked_env: &'a BTreeSet<Vec<u8>>,
    package_dir: &'a RelPath,
    inputs: &'a GlobConfig,
    outputs: &'a GlobConfig,
}

impl SpawnFingerprint {
    /// The absolute program path whose content the portable key needs, when
    /// the program lives outside the workspace.
    pub(crate) fn external_program(&self) -> Option<PathBuf> {
        match &self.program.location {
            Location::External(bytes) => Some(PathBuf::from(OsStr::from_bytes(bytes))),
            Location::Workspace(_) => None,
        }
    }

    /// The portable key. `program_content` is the content hash of
    /// `external_program()` (the store memoises it: `Store::program_digest`);
    /// it is ignored for a program inside the workspace.
    pub(crate) fn portable_key(
        &self,
        program_content: Option<Digest>,
    ) -> Result<PortableKey, NotPortable> {
        let Location::Workspace(cwd) = &self.cwd else {
            return Err(NotPortable::CwdOutsideWorkspace);
        };
        let Location::Workspace(package_dir) = &self.package_dir else {
            return Err(NotPortable::PackageOutsideWorkspace);
        };
        let program = match &self.program.location {
            Location::Workspace(rel) => PortableProgram::Workspace(rel),
            Location::External(bytes) => {
                let content = program_content.ok_or_else(|| NotPortable::ProgramUnreadable {
                    path: String::from_utf8_lossy(bytes).into_owned(),
                    error: "no content hash was given".to_owned(),
                })?;
                let name = Path::new(OsStr::from_bytes(bytes))
                    .file_name()
                    .map_or(&bytes[..], |n| n.as_bytes());
                PortableProgram::External { name, content }
            }
        };
        let env = self
            .env
            .iter()
            .map(|(name, value)| {
                let hash = match value {
                    // The same hash a secret-looking name already stores, so
                    // both kinds of value are hashed alike.
                    EnvValue::Plain(v) => hash_value(v),
                    EnvValue::Hashed(d) => *d,
                };
                (name.as_slice(), hash)
            })
            .collect();
        let portable = Portable {
            version: PORTABLE_KEY_VERSION,
            schema: self.schema,
            platform: &self.platform,
            cwd,
            program,
            args: &self.args,
            env,
            untracked_env: &self.untracked_env,
            package_dir,
            inputs: &self.inputs,
            outputs: &self.outputs,
        };
        Ok(PortableKey(Digest::of(
            Domain::RemoteKey,
            &codec::encode(&portable),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::fingerprint::SpawnSpec;
    use std::ffi::OsString;

    fn fp(root: &Path, program: &Path, env_value: &str) -> SpawnFingerprint {
        let args: Vec<OsString> = vec!["build".into()];
        let env: Vec<(OsString, OsString)> = vec![("NODE_ENV".into(), env_value.into())];
        SpawnFingerprint::new(SpawnSpec {
            workspace_root: root,
            package_dir: &root.join("packages/a"),
            cwd: &root.join("packages/a"),
            program,
            args: &args,
            declared_env: &env,
            untracked_env: &[],
            inputs: GlobConfig::auto(),
            outputs: GlobConfig::auto(),
        })
    }

    #[test]
    fn two_workspaces_at_different_paths_share_the_key() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        let a = fp(
            one.path(),
            &one.path().join("node_modules/.bin/vite"),
            "production",
        );
        let b = fp(
            two.path(),
            &two.path().join("node_modules/.bin/vite"),
            "production",
        );
        // The local keys already agree (relative paths); the portable one must.
        assert_eq!(
            a.portable_key(None).expect("portable"),
            b.portable_key(None).expect("portable")
        );
        let c = fp(
            two.path(),
            &two.path().join("node_modules/.bin/vite"),
            "development",
        );
        assert_ne!(
            a.portable_key(None).expect("portable"),
            c.portable_key(None).expect("portable")
        );
    }

    #[test]
    fn an_external_program_is_its_content_not_its_path_or_mtime() {
        let tools1 = tempfile::tempdir().expect("tempdir");
        let tools2 = tempfile::tempdir().expect("tempdir");
        let ws1 = tempfile::tempdir().expect("tempdir");
        let ws2 = tempfile::tempdir().expect("tempdir");
        let node1 = tools1.path().join("node");
        let node2 = tools2.path().join("node");
        std::fs::write(&node1, b"node v22").expect("write");
        std::fs::write(&node2, b"node v22").expect("write");
        let a = fp(ws1.path(), &node1, "production");
        let b = fp(ws2.path(), &node2, "production");
        assert_ne!(a.key(), b.key(), "the local key names the absolute path");
        let content = Digest::of_content(b"node v22");
        assert_eq!(a.external_program(), Some(node1.clone()));
        assert_eq!(
            a.portable_key(Some(content)).expect("portable"),
            b.portable_key(Some(content)).expect("portable")
        );
        let other = Digest::of_content(b"node v24");
        assert_ne!(
            a.portable_key(Some(content)).expect("portable"),
            b.portable_key(Some(other)).expect("portable")
        );
        assert!(matches!(
            a.portable_key(None),
            Err(NotPortable::ProgramUnreadable { .. })
        ));
        // The file name counts: `sh` and `bash` may be one binary.
        let bash = tools1.path().join("bash");
        std::fs::write(&bash, b"node v22").expect("write");
        assert_ne!(
            fp(ws1.path(), &bash, "production")
                .portable_key(Some(content))
                .expect("portable"),
            a.portable_key(Some(content)).expect("portable")
        );
    }

    #[test]
    fn outside_the_workspace_is_not_portable() {
        let root = Path::new("/ws");
        let args: Vec<OsString> = vec![];
        let f = SpawnFingerprint::new(SpawnSpec {
            workspace_root: root,
            package_dir: Path::new("/ws/a"),
            cwd: Path::new("/elsewhere"),
            program: Path::new("/ws/bin/x"),
            args: &args,
            declared_env: &[],
            untracked_env: &[],
            inputs: GlobConfig::auto(),
            outputs: GlobConfig::auto(),
        });
        assert_eq!(f.portable_key(None), Err(NotPortable::CwdOutsideWorkspace));
    }

    #[test]
    fn result_ids_differ_by_variant() {
        let k = PortableKey(Digest::of(Domain::RemoteKey, b"k"));
        let v1 = Digest::of(Domain::EntryVariant, b"1");
        let v2 = Digest::of(Domain::EntryVariant, b"2");
        assert_ne!(k.result_id(&v1), k.result_id(&v2));
        assert_eq!(k.result_id(&v1), k.result_id(&v1));
    }
}

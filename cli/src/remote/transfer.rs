//! Moving one command's result between the local store and the remote
//! cache. `upload_run` turns a stored entry into the two artifacts (the
//! input manifest under the portable key, the result under the result id)
//! and `PUT`s them; `fetch_run` gets the manifest, fingerprints the listed
//! inputs here with the local store's own code (`cache::observe`,
//! `CacheEntry::variant`), gets the result for exactly those values,
//! verifies everything and imports it into the local store. The runner's
//! ordinary lookup then finds it as a local hit and restores it; nothing
//! here writes the workspace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::cache::{
    self, CacheEntry, CacheError, Digest, EntryKey, EnvView, ImportRequest, InputState,
    NotPortable, PortableKey, RelPath, SpawnFingerprint, Store, TaskPaths, Timestamp, UnsafePath,
};

use super::artifact::{
    self, ArtifactError, InputManifest, InputSet, MAX_INPUT_SETS, ManifestKind, ResultArtifact,
};
use super::client::{Download, RemoteError, RemoteSession, SessionError};
use super::sign::SignatureError;

/// Why a downloaded artifact was thrown away. Shown as `remote artifact
/// rejected: …`; the task then runs, and nothing of the artifact is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("the {1} {0}")]
    Signature(SignatureError, &'static str),
    #[error("the {1} is unreadable: {0}")]
    Format(ArtifactError, &'static str),
    #[error("the result's entry does not decode: {0}")]
    Entry(String),
    #[error("the result is for other inputs than the ones asked for")]
    WrongResult,
    #[error("blob {0} does not match its content hash")]
    BlobMismatch(String),
    #[error("blob {0} that the entry needs is not in the result")]
    MissingBlob(String),
    #[error("it names an unsafe path: {0}")]
    UnsafePath(UnsafePath),
    #[error("it would write '{0}', inside a version-control directory")]
    VcsMetadata(String),
}

/// Whether `rel` is inside (or is) a `.git`, `.hg` or `.svn` directory, at
/// any depth (a nested repository or submodule has one too).
fn is_vcs_metadata(rel: &RelPath) -> bool {
    rel.as_bytes()
        .split(|b| *b == b'/')
        .any(|part| matches!(part, b".git" | b".hg" | b".svn"))
}

/// Why `fetch_run` found nothing to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteMiss {
    /// The command's key would hold a path of this machine.
    NotPortable(NotPortable),
    /// No machine uploaded this command yet.
    NoManifest,
    /// Uploads exist for this command, none for the inputs as they are here.
    NoResult,
    /// An input the manifest lists could not be fingerprinted here.
    InputUnreadable {
        path: RelPath,
        error: String,
    },
    Rejected(Rejection),
    /// The server failed now, or earlier in this run.
    Unavailable(SessionError),
    /// A verified result could not be put into the local store.
    NotImported {
        error: String,
    },
}

impl fmt::Display for RemoteMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPortable(why) => write!(f, "not shared remotely: {why}"),
            Self::NoManifest => f.write_str("no remote result for this command"),
            Self::NoResult => f.write_str("no remote result for these inputs"),
            Self::InputUnreadable { path, error } => {
                write!(
                    f,
                    "remote lookup skipped: '{path}' could not be read: {error}"
                )
            }
            Self::Rejected(why) => write!(f, "remote artifact rejected: {why}"),
            Self::Unavailable(SessionError::Failed(e)) => {
                write!(f, "remote cache unavailable: {e}")
            }
            Self::Unavailable(SessionError::Disabled) => {
                f.write_str("remote cache unavailable earlier in this run")
            }
            Self::NotImported { error } => {
                write!(f, "remote result not used: the local cache failed: {error}")
            }
        }
    }
}

/// What a successful fetch put into the local store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub(crate) key: EntryKey,
    /// Artifact bytes downloaded for this command (both levels).
    pub(crate) downloaded: u64,
}

#[derive(Debug)]
pub(crate) enum FetchOutcome {
    /// In the local store now: the runner's lookup will hit it.
    Imported(Fetched),
    Miss(RemoteMiss),
}

pub(crate) struct FetchRequest<'a> {
    pub(crate) task: &'a str,
    pub(crate) spawn: &'a SpawnFingerprint,
    pub(crate) paths: TaskPaths<'a>,
    /// The runner's full environment, as for `Store::lookup`.
    pub(crate) env: &'a EnvView<'a>,
}

pub(crate) struct UploadRequest<'a> {
    pub(crate) spawn: &'a SpawnFingerprint,
    /// The entry `Store::record` just stored (`StoredSummary::key`).
    pub(crate) entry: EntryKey,
}

/// Why `upload_run` sent nothing (or not everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadSkipped {
    /// `--remote-cache=read` or `VP_REMOTE_CACHE_READ_ONLY=1`.
    ReadOnly,
    NotPortable(NotPortable),
    /// The entry is gone from the local store (pruned meanwhile).
    EntryGone,
    TooLarge(ArtifactError),
    Unavailable(SessionError),
}

impl fmt::Display for UploadSkipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadOnly => {
                f.write_str("not uploaded: the remote cache is read-only in this run")
            }
            Self::NotPortable(why) => write!(f, "not uploaded: {why}"),
            Self::EntryGone => f.write_str("not uploaded: the entry left the local cache"),
            Self::TooLarge(why) => write!(f, "not uploaded: the result {why}"),
            Self::Unavailable(SessionError::Failed(e)) => {
                write!(f, "not uploaded: remote cache unavailable: {e}")
            }
            Self::Unavailable(SessionError::Disabled) => {
                f.write_str("not uploaded: remote cache unavailable earlier in this run")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadOutcome {
    /// `bytes` sent; `result_existed`: the server had the result already,
    /// only the manifest was sent.
    Uploaded {
        bytes: u64,
        result_existed: bool,
    },
    Skipped(UploadSkipped),
}

fn portable_key(store: &Store, spawn: &SpawnFingerprint) -> Result<PortableKey, NotPortable> {
    let content = match spawn.external_program() {
        Some(path) => {
            Some(
                store
                    .program_digest(&path)
                    .map_err(|e| NotPortable::ProgramUnreadable {
                        path: path.display().to_string(),
                        error: e.to_string(),
                    })?,
            )
        }
        None => None,
    };
    spawn.portable_key(content)
}

/// Builds and uploads the artifacts of a stored entry. Blocking (reads the
/// store, compresses, two or three requests): run it on a `blocking`
/// thread after the task finished, while other tasks keep running.
pub(crate) fn upload_run(
    session: &RemoteSession,
    store: &Store,
    req: &UploadRequest<'_>,
) -> Result<UploadOutcome, CacheError> {
    let skipped = |why| Ok(UploadOutcome::Skipped(why));
    let config = session.config();
    if !config.mode.can_write() {
        return skipped(UploadSkipped::ReadOnly);
    }
    if session.is_disabled() {
        return skipped(UploadSkipped::Unavailable(SessionError::Disabled));
    }
    let key = match portable_key(store, req.spawn) {
        Ok(k) => k,
        Err(why) => return skipped(UploadSkipped::NotPortable(why)),
    };
    let Some(entry) = store.entry(req.entry)? else {
        return skipped(UploadSkipped::EntryGone);
    };
    let max = config.max_artifact;
    let team = config.team.name();
    let manifest_id = key.to_string();
    let result_id = key.result_id(&entry.variant()).to_string();
    let sign = |id: &str, body: &[u8]| config.signing.as_ref().map(|k| k.tag(id, team, body));

    let mut sent = 0u64;
    // A result this run downloaded and refused is there but useless to
    // every machine: replace it, as the local store heals a broken blob.
    let result_existed = if session.was_rejected(&result_id) {
        false
    } else {
        match session.exists(&result_id) {
            Ok(b) => b,
            Err(e) => return skipped(UploadSkipped::Unavailable(e)),
        }
    };
    if !result_existed {
        let mut blobs: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
        for (blob, _) in entry.blobs() {
            if let std::collections::btree_map::Entry::Vacant(slot) = blobs.entry(blob) {
                match store.blob_to_send(&blob) {
                    Ok(bytes) => {
                        slot.insert(bytes);
                    }
                    // A blob that vanished or broke locally (forgotten now
                    // if the store is open for writing, else by the next
                    // restore that finds it): the entry cannot be shared.
                    Err(CacheError::MissingBlob { .. } | CacheError::CorruptBlob { .. }) => {
                        return skipped(UploadSkipped::EntryGone);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // The programs a run executed are this machine's paths and stamps,
        // which say nothing on another (and need not be shared): the
        // uploaded entry has none, and a downloaded one checks none.
        let shared = cache::CacheEntry {
            toolchain: Default::default(),
            ..entry.clone()
        };
        let result = ResultArtifact {
            entry: cache::encode_persisted(&shared),
            blobs: blobs.into_iter().collect(),
        };
        let body = match artifact::encode_result(&result, max) {
            Ok(b) => b,
            Err(e) => return skipped(UploadSkipped::TooLarge(e)),
        };
        if body.len() as u64 > max {
            return skipped(UploadSkipped::TooLarge(ArtifactError::TooLarge {
                size: body.len() as u64,
                bound: max,
            }));
        }
        // The result first: a manifest must never lead to a result that is
        // not there yet (it would only cost a 404, but a wasted one).
        if let Err(e) = session.put(&result_id, &body, sign(&result_id, &body).as_deref()) {
            return skipped(UploadSkipped::Unavailable(e));
        }
        sent += body.len() as u64;
    }
    // The manifest keeps the input sets of earlier uploads (other branches)
    // behind this one. One that does not verify or decode is replaced: it
    // is not ours to keep. Two machines uploading at once may drop each
    // other's set; the cost is a remote miss, never a wrong hit.
    let previous = match session.get(&manifest_id) {
        Ok(Some(download)) => verify(session, &manifest_id, &download, "input manifest")
            .ok()
            .and_then(|()| artifact::decode_manifest(&download.body, max).ok()),
        Ok(None) => None,
        Err(e) => return skipped(UploadSkipped::Unavailable(e)),
    };
    let merged = InputManifest::merged(InputSet::of(&entry), previous);
    let manifest = match artifact::encode_manifest(&merged, max) {
        Ok(b) => b,
        Err(e) => return skipped(UploadSkipped::TooLarge(e)),
    };
    if let Err(e) = session.put(
        &manifest_id,
        &manifest,
        sign(&manifest_id, &manifest).as_deref(),
    ) {
        return skipped(UploadSkipped::Unavailable(e));
    }
    sent += manifest.len() as u64;
    Ok(UploadOutcome::Uploaded {
        bytes: sent,
        result_existed,
    })
}

/// Downloads, verifies and imports the result for the command's inputs as
/// they are on this machine. Call it after a local miss; on `Imported`, look
/// up locally again: that lookup hits and `Store::restore` writes the
/// workspace, checking every path as for any local hit. Blocking.
pub(crate) fn fetch_run(
    session: &RemoteSession,
    store: &Store,
    req: &FetchRequest<'_>,
) -> Result<FetchOutcome, CacheError> {
    let miss = |why| Ok(FetchOutcome::Miss(why));
    let key = match portable_key(store, req.spawn) {
        Ok(k) => k,
        Err(why) => return miss(RemoteMiss::NotPortable(why)),
    };
    let config = session.config();
    let max = config.max_artifact;
    let manifest_id = key.to_string();
    let Some(download) = (match session.get(&manifest_id) {
        Ok(d) => d,
        Err(e) => return miss(RemoteMiss::Unavailable(e)),
    }) else {
        return miss(RemoteMiss::NoManifest);
    };
    let mut downloaded = download.body.len() as u64;
    if let Err(why) = verify(session, &manifest_id, &download, "input manifest") {
        return miss(RemoteMiss::Rejected(why));
    }
    let manifest = match artifact::decode_manifest(&download.body, max) {
        Ok(m) => m,
        Err(e) => return miss(RemoteMiss::Rejected(Rejection::Format(e, "input manifest"))),
    };
    if let Err(why) = check_manifest_paths(&manifest) {
        return miss(RemoteMiss::Rejected(why));
    }

    // Level two: for each input set, newest first, the inputs as they are
    // here, fingerprinted exactly as the local store records them; the
    // first set whose result the server has wins.
    let stat_time = Timestamp::now_coarse();
    let mut observed = Observed::default();
    let mut unreadable = None;
    let mut found = None;
    // Never more sets than an honest manifest holds: each costs a request.
    for set in manifest.sets.iter().take(MAX_INPUT_SETS) {
        let here = match observed.entry_for(set, req) {
            Ok(Some(here)) => here,
            Ok(None) => continue,
            Err(why) => {
                unreadable.get_or_insert(why);
                continue;
            }
        };
        let variant = here.variant();
        let result_id = key.result_id(&variant).to_string();
        match session.get(&result_id) {
            Ok(Some(download)) => {
                found = Some((here, variant, result_id, download));
                break;
            }
            Ok(None) => {}
            Err(e) => return miss(RemoteMiss::Unavailable(e)),
        }
    }
    let Some((here, variant, result_id, download)) = found else {
        return miss(unreadable.unwrap_or(RemoteMiss::NoResult));
    };
    downloaded += download.body.len() as u64;
    let opened = verify(session, &result_id, &download, "result")
        .and_then(|()| open_result(&download.body, max, &variant));
    let (entry, blobs) = match opened {
        Ok(v) => v,
        Err(why) => {
            // Damaged content is replaced by this run's upload. A
            // signature this machine cannot verify is not: its key may be
            // the wrong one, and replacing results the team's key signed
            // would make every other machine refuse them in turn.
            if !matches!(why, Rejection::Signature(..)) {
                session.note_rejected(&result_id);
            }
            return miss(RemoteMiss::Rejected(why));
        }
    };
    // The remote entry's inputs equal `here` in content (same variant);
    // their stamps are the uploader's. Keep this machine's, so the lookup
    // that follows proves them by stat instead of hashing everything again.
    let entry = CacheEntry {
        inputs: here.inputs,
        stat_time,
        ..entry
    };
    let key = store.import(ImportRequest {
        task: req.task,
        spawn: req.spawn,
        entry,
        blobs: &blobs,
    })?;
    Ok(FetchOutcome::Imported(Fetched { key, downloaded }))
}

fn verify(
    session: &RemoteSession,
    id: &str,
    download: &Download,
    what: &'static str,
) -> Result<(), Rejection> {
    let config = session.config();
    match &config.signing {
        Some(key) => key
            .verify(
                id,
                config.team.name(),
                &download.body,
                download.tag.as_deref(),
            )
            .map_err(|e| Rejection::Signature(e, what)),
        // Without a key there is nothing to check the tag against; the
        // content checks below still hold.
        None => Ok(()),
    }
}

/// Every path must be one vp could have recorded: relative, no `..`.
fn check_manifest_paths(m: &InputManifest) -> Result<(), Rejection> {
    for set in &m.sets {
        for rel in set.inputs.keys().chain(&set.glob_inputs) {
            RelPath::from_stored(rel.as_bytes()).map_err(Rejection::UnsafePath)?;
        }
    }
    Ok(())
}

/// The inputs of a manifest's sets as they are on this machine, each path
/// observed once however many sets list it (sets of one command overlap).
#[derive(Default)]
struct Observed {
    states: HashMap<(RelPath, ManifestKind), InputState>,
}

impl Observed {
    /// An entry holding only this set's inputs as they are here, whose
    /// `variant()` is the one an upload of a run on these inputs has.
    /// `Ok(None)`: the set cannot match here (a query that no longer
    /// compiles was never served).
    fn entry_for(
        &mut self,
        set: &InputSet,
        req: &FetchRequest<'_>,
    ) -> Result<Option<CacheEntry>, RemoteMiss> {
        let root = req.paths.workspace_root;
        let mut inputs = BTreeMap::new();
        for (rel, kind) in &set.inputs {
            let slot = (rel.clone(), *kind);
            let state = match self.states.get(&slot) {
                Some(state) => state.clone(),
                None => {
                    let state =
                        cache::observe(&rel.to_abs(root), kind.input_kind()).map_err(|e| {
                            RemoteMiss::InputUnreadable {
                                path: rel.clone(),
                                error: e.to_string(),
                            }
                        })?;
                    self.states.insert(slot, state.clone());
                    state
                }
            };
            inputs.insert(rel.clone(), state);
        }
        let mut tracked_env = BTreeMap::new();
        for name in &set.tracked_env {
            // A name the user's configuration leaves untracked counts as
            // unset, as in the local lookup.
            tracked_env.insert(name.clone(), req.env.tracked(name).unwrap_or(None));
        }
        let mut env_queries = BTreeMap::new();
        for query in &set.env_queries {
            match req.env.query(query) {
                Ok(matches) => {
                    env_queries.insert(query.clone(), matches);
                }
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(CacheEntry {
            inputs,
            glob_inputs: set.glob_inputs.clone(),
            tracked_env,
            env_queries,
            outputs: BTreeMap::new(),
            owned_dirs: BTreeSet::new(),
            created: BTreeSet::new(),
            looked_first: BTreeSet::new(),
            toolchain: Default::default(),
            log: None,
            duration: std::time::Duration::ZERO,
            stat_time: Timestamp::default(),
        }))
    }
}

/// Decodes a result and checks it against what was asked: the entry's
/// variant, every path, every blob's content hash.
fn open_result(
    body: &[u8],
    max: u64,
    variant: &Digest,
) -> Result<(CacheEntry, HashMap<Digest, Vec<u8>>), Rejection> {
    let result = artifact::decode_result(body, max).map_err(|e| Rejection::Format(e, "result"))?;
    let entry: CacheEntry = cache::decode_persisted("remote entry", &result.entry)
        .map_err(|e| Rejection::Entry(e.to_string()))?;
    // Without a signature the id binds nothing: a server could answer any
    // id with any result. The variant proves it is the one asked for.
    if entry.variant() != *variant {
        return Err(Rejection::WrongResult);
    }
    for rel in entry
        .inputs
        .keys()
        .chain(entry.outputs.keys())
        .chain(&entry.owned_dirs)
        .chain(&entry.created)
        .chain(&entry.looked_first)
        .chain(&entry.glob_inputs)
    {
        RelPath::from_stored(rel.as_bytes()).map_err(Rejection::UnsafePath)?;
    }
    // No task's output is repository metadata, and a result that writes
    // there (a hook under `.git/hooks`) is an attack on whoever restores it,
    // so it is refused even from a server the user trusts.
    if let Some(rel) = entry
        .outputs
        .keys()
        .chain(&entry.owned_dirs)
        .chain(&entry.created)
        .find(|rel| is_vcs_metadata(rel))
    {
        return Err(Rejection::VcsMetadata(rel.to_string()));
    }
    let mut blobs = HashMap::with_capacity(result.blobs.len());
    for (digest, bytes) in result.blobs {
        if Digest::of_content(&bytes) != digest {
            return Err(Rejection::BlobMismatch(digest.short()));
        }
        blobs.insert(digest, bytes);
    }
    for (blob, _) in entry.blobs() {
        if !blobs.contains_key(&blob) {
            return Err(Rejection::MissingBlob(blob.short()));
        }
    }
    Ok((entry, blobs))
}

/// Result of `check_connection` (`vp cache remote-check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionCheck {
    /// The server's `status` field (`enabled`, `disabled`, …).
    pub(crate) status: String,
}

/// Asks the server for its status, then `HEAD`s an artifact that cannot
/// exist so that the token is checked too (the status route of some servers
/// is public). Blocking.
pub(crate) fn check_connection(session: &RemoteSession) -> Result<ConnectionCheck, RemoteError> {
    let flatten = |e: SessionError| match e {
        SessionError::Failed(e) => e,
        SessionError::Disabled => RemoteError::BadResponse {
            url: session.config().url.clone(),
            detail: "an earlier request failed".to_owned(),
        },
    };
    let status = session.status().map_err(flatten)?;
    session.exists(&"0".repeat(64)).map_err(flatten)?;
    Ok(ConnectionCheck { status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_control_directories_are_never_remote_outputs() {
        assert!(is_vcs_metadata(&hostile(b".git/hooks/pre-commit")));
        assert!(is_vcs_metadata(&hostile(b"vendor/lib/.git/config")));
        assert!(is_vcs_metadata(&hostile(b".hg")));
        assert!(!is_vcs_metadata(&hostile(b"dist/.gitignore")));
        assert!(!is_vcs_metadata(&hostile(b"src/git/index.js")));
    }
    use crate::cache::{OutputState, decode_persisted, encode_persisted};

    fn hostile(path: &[u8]) -> RelPath {
        // What a decoded artifact can hold: serde does not run `from_stored`.
        decode_persisted("path", &encode_persisted(&path.to_vec())).expect("decodes")
    }

    fn entry(outputs: BTreeMap<RelPath, OutputState>) -> CacheEntry {
        CacheEntry {
            inputs: BTreeMap::new(),
            glob_inputs: BTreeSet::new(),
            tracked_env: BTreeMap::new(),
            env_queries: BTreeMap::new(),
            outputs,
            owned_dirs: BTreeSet::new(),
            created: BTreeSet::new(),
            looked_first: BTreeSet::new(),
            toolchain: Default::default(),
            log: None,
            duration: std::time::Duration::from_secs(1),
            stat_time: Timestamp::default(),
        }
    }

    fn result(e: &CacheEntry, blobs: Vec<(Digest, Vec<u8>)>) -> Vec<u8> {
        artifact::encode_result(
            &ResultArtifact {
                entry: encode_persisted(e),
                blobs,
            },
            1 << 20,
        )
        .expect("encodes")
    }

    #[test]
    fn a_manifest_path_leading_out_of_the_workspace_is_rejected() {
        let set = InputSet {
            inputs: [(hostile(b"../../etc/passwd"), ManifestKind::ContentRead)]
                .into_iter()
                .collect(),
            glob_inputs: BTreeSet::new(),
            tracked_env: BTreeSet::new(),
            env_queries: BTreeSet::new(),
        };
        let m = InputManifest { sets: vec![set] };
        assert!(matches!(
            check_manifest_paths(&m),
            Err(Rejection::UnsafePath(_))
        ));
    }

    #[test]
    fn a_result_is_checked_against_what_was_asked() {
        let good = entry(
            [(hostile(b"dist/a.js"), OutputState::file_of(b"a"))]
                .into_iter()
                .collect(),
        );
        let variant = good.variant();
        let blobs = vec![(Digest::of_content(b"a"), b"a".to_vec())];
        let (got, by_hash) =
            open_result(&result(&good, blobs.clone()), 1 << 20, &variant).expect("valid");
        assert_eq!(got, good);
        assert_eq!(by_hash.len(), 1);

        // Another result than the one asked for (a server answering any id).
        let other = Digest::of_content(b"another variant");
        assert_eq!(
            open_result(&result(&good, blobs.clone()), 1 << 20, &other),
            Err(Rejection::WrongResult)
        );
        // A blob the entry needs is absent, or does not match its hash.
        assert!(matches!(
            open_result(&result(&good, Vec::new()), 1 << 20, &variant),
            Err(Rejection::MissingBlob(_))
        ));
        let forged = vec![(Digest::of_content(b"a"), b"evil".to_vec())];
        assert!(matches!(
            open_result(&result(&good, forged), 1 << 20, &variant),
            Err(Rejection::BlobMismatch(_))
        ));
        // An output path that would write outside the workspace.
        let evil = entry(
            [(hostile(b"../escape.js"), OutputState::file_of(b"a"))]
                .into_iter()
                .collect(),
        );
        assert!(matches!(
            open_result(&result(&evil, blobs), 1 << 20, &evil.variant()),
            Err(Rejection::UnsafePath(_))
        ));
        // The entry bytes are garbage inside a well-formed artifact.
        let garbage = artifact::encode_result(
            &ResultArtifact {
                entry: vec![0xff; 7],
                blobs: Vec::new(),
            },
            1 << 20,
        )
        .expect("encodes");
        assert!(matches!(
            open_result(&garbage, 1 << 20, &variant),
            Err(Rejection::Entry(_))
        ));
    }

    #[test]
    fn messages_read_as_one_line() {
        let shown = RemoteMiss::Rejected(Rejection::Signature(SignatureError::Missing, "result"))
            .to_string();
        assert_eq!(
            shown,
            "remote artifact rejected: the result is not signed, and a signature key is configured"
        );
        assert_eq!(
            UploadSkipped::ReadOnly.to_string(),
            "not uploaded: the remote cache is read-only in this run"
        );
    }
}

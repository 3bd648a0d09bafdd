//! The post-run half of the cache: a `CacheEntry` is what one successful run
//! left behind — the state of everything it read (`InputState` per path),
//! the env it asked for, the outputs it wrote (`OutputState` per path, file
//! contents as blob hashes), where its log lives, and how long it took.
//! Built by `record`, validated by `lookup`, used by `restore`.

use super::programs::Toolchain;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vp_ipc::EnvQuery;

use super::clock::Timestamp;
use super::digest::Digest;
use super::paths::RelPath;

/// How a process touched an input path (from the tracer's classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum InputKind {
    /// Existence/type only (`stat`, `access`, failed `open`).
    Probe,
    /// The directory's entries were listed (`getdents`).
    Listing,
    /// The file's bytes were read.
    ContentRead,
}

/// The stat fields that prove a file unchanged without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    pub(crate) size: u64,
    pub(crate) mtime: Timestamp,
    pub(crate) ctime: Timestamp,
    pub(crate) ino: u64,
}

impl Stamp {
    pub(crate) fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime: Timestamp::mtime(meta),
            ctime: Timestamp::ctime(meta),
            ino: meta.ino(),
        }
    }
}

/// The recorded state of one input path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InputState {
    /// Must still not exist.
    Missing,
    /// Exists; only its type mattered (a probe).
    Present { is_dir: bool },
    /// A file whose content was read.
    File { hash: Digest, stamp: Stamp },
    /// A directory whose entries were listed: sorted names (for "added in" /
    /// "removed from" reasons) and a hash over names and entry types.
    Dir {
        listing: Digest,
        #[serde(deserialize_with = "super::codec::byte_lists")]
        names: Vec<Vec<u8>>,
        stamp: Stamp,
    },
    /// The path itself is a symlink (probed without being followed, or
    /// dangling).
    Symlink {
        #[serde(deserialize_with = "super::codec::bytes")]
        target: Vec<u8>,
    },
}

/// One recorded output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OutputState {
    /// Content in the `blobs` column family under `blob`; `stored` is the
    /// compressed size (for eviction accounting), `size` the real one.
    File {
        blob: Digest,
        mode: u32,
        size: u64,
        stored: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    Dir {
        mode: u32,
    },
}

#[cfg(test)]
impl OutputState {
    /// A regular file of `content` (mode 0644), as tests record one.
    pub(crate) fn file_of(content: &[u8]) -> Self {
        Self::File {
            blob: super::digest::Digest::of_content(content),
            mode: 0o644,
            size: content.len() as u64,
            stored: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One piece of output, in the order the task produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogChunk {
    pub(crate) stream: Stream,
    pub(crate) bytes: Vec<u8>,
}

/// Reference to the blob holding the encoded `Vec<LogChunk>`. The log is not
/// inline so that validating an entry never decodes megabytes of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRef {
    pub(crate) blob: Digest,
    pub(crate) stored: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CacheEntry {
    #[serde(with = "super::codec::path_keyed::map")]
    pub(crate) inputs: BTreeMap<RelPath, InputState>,
    /// Files matched by explicit `input` globs when stored; the globs are
    /// re-walked on lookup so a newly matching file is noticed.
    #[serde(with = "super::codec::path_keyed::set")]
    pub(crate) glob_inputs: BTreeSet<RelPath>,
    /// Names a tool read with `getEnv(tracked)`: value hash, `None` = unset.
    pub(crate) tracked_env: BTreeMap<Vec<u8>, Option<Digest>>,
    /// `getEnvs(tracked)` queries and their match-sets (name → value hash).
    pub(crate) env_queries: BTreeMap<EnvQuery, BTreeMap<Vec<u8>, Digest>>,
    #[serde(with = "super::codec::path_keyed::map")]
    pub(crate) outputs: BTreeMap<RelPath, OutputState>,
    /// Directories the run owned: it created them, or removed entries from
    /// them (Vite empties `outDir`). A hit leaves these as the run left them:
    /// outputs of the task's previous entry that this run would not have
    /// left there are removed (see `restore`).
    #[serde(with = "super::codec::path_keyed::set")]
    pub(crate) owned_dirs: BTreeSet<RelPath>,
    /// Outputs (files, symlinks) this run created rather than rewrote in
    /// place: only these may be removed by a later hit (see `owned_dirs`).
    #[serde(with = "super::codec::path_keyed::set")]
    pub(crate) created: BTreeSet<RelPath>,
    /// Outputs (files, symlinks) the run made after looking at them, even
    /// finding them missing (`test -f .env.local || cp .env.example
    /// .env.local`, an exclusive create, `sed -i`): what it wrote depended
    /// on what was there. A hit writes one only over nothing, the same
    /// content, or what the task's last stored run or hit left there
    /// (`store::in_place`); any other output it writes as the task would.
    #[serde(with = "super::codec::path_keyed::set")]
    pub(crate) looked_first: BTreeSet<RelPath>,
    /// The programs outside the workspace the run executed (`node` behind
    /// a `#!/usr/bin/env node`), with their stamps and the task's `PATH`.
    pub(crate) toolchain: Toolchain,
    pub(crate) log: Option<LogRef>,
    pub(crate) duration: Duration,
    /// When the inputs were stat'ed (coarse clock): a file whose mtime is not
    /// older than this is "racily clean" and is always re-hashed.
    pub(crate) stat_time: Timestamp,
}

impl CacheEntry {
    /// What distinguishes this entry from other entries of the same spawn
    /// key: the content of its inputs and env, not their stat stamps (a
    /// touched-but-identical file is the same variant).
    pub(crate) fn variant(&self) -> Digest {
        #[derive(Serialize)]
        enum Content<'a> {
            Missing,
            Present(bool),
            File(&'a Digest),
            Dir(&'a Digest),
            Symlink(&'a [u8]),
        }
        let inputs: Vec<(&RelPath, Content<'_>)> = self
            .inputs
            .iter()
            .map(|(p, s)| {
                let c = match s {
                    InputState::Missing => Content::Missing,
                    InputState::Present { is_dir } => Content::Present(*is_dir),
                    InputState::File { hash, .. } => Content::File(hash),
                    InputState::Dir { listing, .. } => Content::Dir(listing),
                    InputState::Symlink { target } => Content::Symlink(target),
                };
                (p, c)
            })
            .collect();
        let encoded = super::codec::encode(&(
            inputs,
            &self.glob_inputs,
            &self.tracked_env,
            &self.env_queries,
        ));
        Digest::of(super::digest::Domain::EntryVariant, &encoded)
    }

    /// Every blob this entry needs to be restored.
    pub(crate) fn blobs(&self) -> impl Iterator<Item = (Digest, u64)> + '_ {
        let outputs = self.outputs.values().filter_map(|o| match o {
            OutputState::File { blob, stored, .. } => Some((*blob, *stored)),
            _ => None,
        });
        outputs.chain(self.log.map(|l| (l.blob, l.stored)))
    }
}

/// Identity of one stored entry: the spawn key followed by a hash of what
/// the inputs were. One spawn key can hold several entries (switching
/// branches back and forth hits both), found by prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct EntryKey {
    pub(crate) spawn: Digest,
    pub(crate) variant: Digest,
}

impl EntryKey {
    pub(crate) const LEN: usize = Digest::LEN * 2;

    pub(crate) fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..Digest::LEN].copy_from_slice(self.spawn.as_bytes());
        out[Digest::LEN..].copy_from_slice(self.variant.as_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        Some(Self {
            spawn: Digest::from_slice(&bytes[..Digest::LEN])?,
            variant: Digest::from_slice(&bytes[Digest::LEN..])?,
        })
    }
}

impl std::fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EntryKey({}/{})",
            self.spawn.short(),
            self.variant.short()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::digest::Domain;

    #[test]
    fn entry_key_round_trip() {
        let k = EntryKey {
            spawn: Digest::of(Domain::SpawnKey, b"a"),
            variant: Digest::of(Domain::EntryVariant, b"b"),
        };
        assert_eq!(EntryKey::from_bytes(&k.to_bytes()), Some(k));
        assert_eq!(EntryKey::from_bytes(&[0; 10]), None);
    }

    #[test]
    fn blobs_lists_outputs_and_log() {
        let d = |s: &[u8]| Digest::of_content(s);
        let mut outputs = BTreeMap::new();
        outputs.insert(
            RelPath::from_stored(b"a").expect("valid"),
            OutputState::File {
                blob: d(b"a"),
                mode: 0o644,
                size: 1,
                stored: 10,
            },
        );
        outputs.insert(
            RelPath::from_stored(b"l").expect("valid"),
            OutputState::Symlink {
                target: b"a".to_vec(),
            },
        );
        let e = CacheEntry {
            inputs: BTreeMap::new(),
            glob_inputs: BTreeSet::new(),
            tracked_env: BTreeMap::new(),
            env_queries: BTreeMap::new(),
            outputs,
            owned_dirs: BTreeSet::new(),
            created: BTreeSet::new(),
            looked_first: BTreeSet::new(),
            toolchain: Toolchain::default(),
            log: Some(LogRef {
                blob: d(b"log"),
                stored: 5,
            }),
            duration: Duration::from_millis(3),
            stat_time: Timestamp(0),
        };
        let blobs: Vec<_> = e.blobs().collect();
        assert_eq!(blobs, vec![(d(b"a"), 10), (d(b"log"), 5)]);
    }
}

//! The two artifact formats vp stores on a remote cache, and their framing.
//! Under the portable key: an `InputManifest` (for each of the last few
//! distinct uploads, which paths, env names and env queries the task read;
//! nothing about their values). Under
//! the result id: a `ResultArtifact` (the entry and every blob it needs,
//! each distinct blob once). Both are framed as
//!
//! `b"vp-remote"`, format version (u16 LE), kind (u8), payload length (u64
//! LE), then the zstd-compressed bincode payload.
//!
//! Decoding never trusts the bytes: a wrong magic, version or kind, a
//! length over the bound (a zstd bomb), truncation or garbage is a typed
//! `ArtifactError`, never a panic or an unbounded allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use vp_ipc::EnvQuery;

use crate::cache::{CacheEntry, Digest, InputKind, InputState, RelPath};

const MAGIC: &[u8; 9] = b"vp-remote";
/// Bumped whenever a payload type changes shape.
pub(crate) const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = MAGIC.len() + 2 + 1 + 8;
/// The decompressed payload may be this many times the artifact limit:
/// outputs compress well, a zstd bomb does not get further than this.
const MAX_EXPANSION: u64 = 4;
/// A manifest lists paths and hashes of a few input sets: this is far more
/// than any real one, and keeps a hostile one from costing gigabytes.
const MANIFEST_MAX: u64 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Manifest = 1,
    Result = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Manifest => "input manifest",
            Self::Result => "result",
        }
    }
}

/// Why an artifact's bytes are not a vp artifact of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArtifactError {
    #[error("it is not a vp artifact (wrong magic bytes)")]
    NotVp,
    #[error("it is in format version {0}, this vp reads version {FORMAT_VERSION}")]
    OtherVersion(u16),
    #[error("it is a {found} where a {expected} was expected")]
    WrongKind {
        found: &'static str,
        expected: &'static str,
    },
    #[error("it is cut short")]
    Truncated,
    #[error("its payload would be {size} bytes, over the bound of {bound}")]
    TooLarge { size: u64, bound: u64 },
    #[error("its payload does not decompress: {0}")]
    Compression(String),
    #[error("its payload does not decode: {0}")]
    Payload(String),
}

/// How a path was read, as the manifest records it (`InputKind` without the
/// serde derive the local store never needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum ManifestKind {
    Probe,
    Listing,
    ContentRead,
}

impl ManifestKind {
    pub(crate) fn input_kind(self) -> InputKind {
        match self {
            Self::Probe => InputKind::Probe,
            Self::Listing => InputKind::Listing,
            Self::ContentRead => InputKind::ContentRead,
        }
    }

    /// The read that reproduces `state` when the path is unchanged: a file's
    /// bytes, a directory's listing, else only what the path is.
    pub(crate) fn of(state: &InputState) -> Self {
        match state {
            InputState::File { .. } => Self::ContentRead,
            InputState::Dir { .. } => Self::Listing,
            InputState::Missing | InputState::Present { .. } | InputState::Symlink { .. } => {
                Self::Probe
            }
        }
    }
}

/// How many input sets a manifest keeps: as many as the local store keeps
/// variants of one command, so switching between a few branches whose
/// tasks read different files still finds each branch's result.
pub(crate) const MAX_INPUT_SETS: usize = 8;

/// What one run of the task read: enough to compute, on any machine, the
/// variant of those inputs as they are there. No values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputSet {
    pub(crate) inputs: BTreeMap<RelPath, ManifestKind>,
    pub(crate) glob_inputs: BTreeSet<RelPath>,
    pub(crate) tracked_env: BTreeSet<Vec<u8>>,
    pub(crate) env_queries: BTreeSet<EnvQuery>,
}

impl InputSet {
    pub(crate) fn of(entry: &CacheEntry) -> Self {
        Self {
            inputs: entry
                .inputs
                .iter()
                .map(|(p, s)| (p.clone(), ManifestKind::of(s)))
                .collect(),
            glob_inputs: entry.glob_inputs.clone(),
            tracked_env: entry.tracked_env.keys().cloned().collect(),
            env_queries: entry.env_queries.keys().cloned().collect(),
        }
    }
}

/// Level one, under the portable key: the distinct input sets of the most
/// recent uploads, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputManifest {
    pub(crate) sets: Vec<InputSet>,
}

impl InputManifest {
    /// `newest` in front of what `previous` held (a set already there moves
    /// to the front), at most `MAX_INPUT_SETS`.
    pub(crate) fn merged(newest: InputSet, previous: Option<Self>) -> Self {
        let mut sets = vec![newest];
        for set in previous.map(|p| p.sets).unwrap_or_default() {
            if sets.len() == MAX_INPUT_SETS {
                break;
            }
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        Self { sets }
    }
}

/// The result (level two): the entry (encoded as the local store encodes
/// it) and the content of every blob it references, each once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResultArtifact {
    pub(crate) entry: Vec<u8>,
    pub(crate) blobs: Vec<(Digest, Vec<u8>)>,
}

fn encode(kind: Kind, payload: &impl Serialize, max: u64) -> Result<Vec<u8>, ArtifactError> {
    let raw = crate::cache::encode_persisted(payload);
    let bound = max.saturating_mul(MAX_EXPANSION);
    if raw.len() as u64 > bound {
        return Err(ArtifactError::TooLarge {
            size: raw.len() as u64,
            bound,
        });
    }
    frame(kind, &raw)
}

/// Header and compressed payload around an encoded payload.
fn frame(kind: Kind, raw: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    let compressed =
        zstd::bulk::compress(raw, 3).map_err(|e| ArtifactError::Compression(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&compressed);
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(
    expected: Kind,
    bytes: &[u8],
    max: u64,
) -> Result<T, ArtifactError> {
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            ArtifactError::Truncated
        } else {
            ArtifactError::NotVp
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(ArtifactError::NotVp);
    }
    let header = bytes.get(..HEADER_LEN).ok_or(ArtifactError::Truncated)?;
    let version = u16::from_le_bytes([header[9], header[10]]);
    if version != FORMAT_VERSION {
        return Err(ArtifactError::OtherVersion(version));
    }
    let found = match header[11] {
        1 => Kind::Manifest,
        2 => Kind::Result,
        _ => return Err(ArtifactError::Payload("unknown artifact kind".to_owned())),
    };
    if found != expected {
        return Err(ArtifactError::WrongKind {
            found: found.name(),
            expected: expected.name(),
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[12..20]);
    let size = u64::from_le_bytes(len);
    let bound = max.saturating_mul(MAX_EXPANSION);
    if size > bound {
        return Err(ArtifactError::TooLarge { size, bound });
    }
    let decoder = zstd::stream::read::Decoder::new(&bytes[HEADER_LEN..])
        .map_err(|e| ArtifactError::Compression(e.to_string()))?;
    // `size` is bounded above, so this allocation is too; reading one byte
    // more than announced tells a lying header from an honest one.
    let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26));
    decoder
        .take(size + 1)
        .read_to_end(&mut raw)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ArtifactError::Truncated,
            _ => ArtifactError::Compression(e.to_string()),
        })?;
    if raw.len() as u64 != size {
        return Err(if (raw.len() as u64) < size {
            ArtifactError::Truncated
        } else {
            ArtifactError::Payload("the payload is longer than its header says".to_owned())
        });
    }
    crate::cache::decode_persisted("remote artifact", &raw)
        .map_err(|e| ArtifactError::Payload(e.to_string()))
}

pub(crate) fn encode_manifest(m: &InputManifest, max: u64) -> Result<Vec<u8>, ArtifactError> {
    encode(Kind::Manifest, m, max.min(MANIFEST_MAX))
}

pub(crate) fn decode_manifest(bytes: &[u8], max: u64) -> Result<InputManifest, ArtifactError> {
    decode(Kind::Manifest, bytes, max.min(MANIFEST_MAX))
}

pub(crate) fn encode_result(r: &ResultArtifact, max: u64) -> Result<Vec<u8>, ArtifactError> {
    encode(Kind::Result, r, max)
}

pub(crate) fn decode_result(bytes: &[u8], max: u64) -> Result<ResultArtifact, ArtifactError> {
    decode(Kind::Result, bytes, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    fn rel(s: &str) -> RelPath {
        RelPath::from_stored(s.as_bytes()).expect("valid")
    }

    fn manifest() -> InputManifest {
        InputManifest { sets: vec![set()] }
    }

    fn set() -> InputSet {
        InputSet {
            inputs: [
                (rel("src/a.js"), ManifestKind::ContentRead),
                (rel("src"), ManifestKind::Listing),
            ]
            .into_iter()
            .collect(),
            glob_inputs: BTreeSet::new(),
            tracked_env: [b"NODE_ENV".to_vec()].into_iter().collect(),
            env_queries: [EnvQuery::Prefix(b"VITE_".to_vec())].into_iter().collect(),
        }
    }

    #[test]
    fn round_trips() {
        let m = manifest();
        let bytes = encode_manifest(&m, MAX).expect("encodes");
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(decode_manifest(&bytes, MAX).expect("decodes"), m);
        let r = ResultArtifact {
            entry: vec![1, 2, 3],
            blobs: vec![(Digest::of_content(b"x"), b"x".to_vec())],
        };
        let bytes = encode_result(&r, MAX).expect("encodes");
        assert_eq!(decode_result(&bytes, MAX).expect("decodes"), r);
        assert_eq!(
            decode_manifest(&bytes, MAX),
            Err(ArtifactError::WrongKind {
                found: "result",
                expected: "input manifest"
            })
        );
    }

    #[test]
    fn merging_keeps_the_newest_first_distinct_and_bounded() {
        let mut sets: Vec<InputSet> = (0..10)
            .map(|i| {
                let mut s = set();
                s.tracked_env.insert(format!("V{i}").into_bytes());
                s
            })
            .collect();
        let mut m: Option<InputManifest> = None;
        for s in &sets {
            m = Some(InputManifest::merged(s.clone(), m));
        }
        let m = m.expect("merged");
        assert_eq!(m.sets.len(), MAX_INPUT_SETS);
        assert_eq!(m.sets[0], sets[9]);
        assert_eq!(m.sets[MAX_INPUT_SETS - 1], sets[2]);
        // Uploading an old set again moves it to the front, once.
        let again = InputManifest::merged(sets[5].clone(), Some(m));
        assert_eq!(again.sets[0], sets[5]);
        assert_eq!(again.sets.iter().filter(|s| **s == sets[5]).count(), 1);
        assert_eq!(again.sets.len(), MAX_INPUT_SETS);
        sets.clear();
    }

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        assert_eq!(decode_manifest(b"", MAX), Err(ArtifactError::Truncated));
        assert_eq!(
            decode_manifest(b"vp-re", MAX),
            Err(ArtifactError::Truncated)
        );
        assert_eq!(
            decode_manifest(b"<html>not found</html>", MAX),
            Err(ArtifactError::NotVp)
        );
        let bytes = encode_manifest(&manifest(), MAX).expect("encodes");
        for cut in [HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 3, bytes.len() - 1] {
            assert!(decode_manifest(&bytes[..cut], MAX).is_err(), "cut at {cut}");
        }
        let mut version = bytes.clone();
        version[9] = 9;
        assert_eq!(
            decode_manifest(&version, MAX),
            Err(ArtifactError::OtherVersion(9))
        );
        // Every single flipped byte after the header is an error or (for a
        // flip zstd does not notice) a different manifest, never a panic.
        for i in HEADER_LEN..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x55;
            let _ = decode_manifest(&flipped, MAX);
        }
        let mut random = MAGIC.to_vec();
        random.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        random.push(1);
        random.extend_from_slice(&100u64.to_le_bytes());
        random.extend((0..200u32).map(|i| (i * 7919 % 251) as u8));
        assert!(matches!(
            decode_manifest(&random, MAX),
            Err(ArtifactError::Compression(_) | ArtifactError::Truncated)
        ));
    }

    #[test]
    fn a_header_announcing_too_much_is_refused_before_decompressing() {
        let mut bytes = encode_manifest(&manifest(), MAX).expect("encodes");
        bytes[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_manifest(&bytes, MAX),
            Err(ArtifactError::TooLarge { .. })
        ));
        let big = ResultArtifact {
            entry: vec![0; 2000],
            blobs: Vec::new(),
        };
        assert!(matches!(
            encode_result(&big, 100),
            Err(ArtifactError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_huge_length_inside_the_payload_is_an_error_not_an_allocation() {
        // bincode varint: 0xfd then a u64; the entry "has" 2^52 bytes.
        let mut raw = vec![0xfd];
        raw.extend_from_slice(&(1u64 << 52).to_le_bytes());
        raw.extend_from_slice(b"only a few bytes follow");
        let bytes = frame(Kind::Result, &raw).expect("frames");
        assert!(matches!(
            decode_result(&bytes, MAX),
            Err(ArtifactError::Payload(_))
        ));
    }

    #[test]
    fn a_header_announcing_less_than_the_payload_is_refused() {
        let mut bytes = encode_manifest(&manifest(), MAX).expect("encodes");
        let announced = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        bytes[12..20].copy_from_slice(&(announced - 1).to_le_bytes());
        assert!(matches!(
            decode_manifest(&bytes, MAX),
            Err(ArtifactError::Payload(_))
        ));
    }
}

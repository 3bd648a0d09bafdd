//! The one binary encoding of everything the cache persists (bincode 2 over
//! serde, standard config). Canonical for our types: maps are `BTreeMap`s and
//! sets `BTreeSet`s, so equal values encode to equal bytes and a key hash is
//! stable across runs.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod path_keyed;

/// Bumped whenever the layout of any persisted type or of the store changes,
/// and whenever what a stored hash means changes (a file's content hash, a
/// listing's hash): a miss reuses recorded hashes whose stamps still hold,
/// so a hash computed another way would otherwise live on. And whenever
/// runs start recording inputs they did not record before (6: the listing
/// of a directory the task wrote into): an older entry would keep hitting
/// without them. (7: a tool's cache is no entry of a listing, and no
/// longer an output: an older entry would restore Turbopack's files; and a
/// task's remembered state records a stamp per file. 8: an entry's paths are
/// front-coded, `path_keyed`.) A store with another version is set aside,
/// never read; and the remote cache's keys hold it, so machines on other
/// versions never read each other's results.
pub(crate) const SCHEMA_VERSION: u32 = 8;

#[derive(Debug, thiserror::Error)]
#[error("cannot decode a stored {what}: {source}")]
pub(crate) struct DecodeError {
    pub(crate) what: &'static str,
    #[source]
    pub(crate) source: bincode::error::DecodeError,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails for types serde cannot express (maps of
    // unknown length, custom serializer errors); none of the cache's types
    // are such, so a failure here is a bug in this module, not bad input.
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("cache types always encode")
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|source| DecodeError { what, source })?;
    Ok(value)
}

/// At most this much is reserved before a collection's elements are read:
/// a corrupt length must not allocate gigabytes up front.
const MAX_RESERVE_BYTES: usize = 1 << 20;

/// How many `T`s to reserve for a collection that says it has `hint`.
fn reserve<T>(hint: Option<usize>) -> usize {
    let most = MAX_RESERVE_BYTES / std::mem::size_of::<T>().max(1);
    hint.unwrap_or(0).min(most)
}

/// Decoding for byte strings (`#[serde(deserialize_with)]`): serde reads a
/// `Vec<u8>` one element at a time; bincode writes it as a length and the
/// bytes, which this reads in one copy. The same bytes either way (tested
/// below); a self-describing format's sequence of numbers still decodes.
pub(crate) fn bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    // Not `deserialize_byte_buf`: bincode allocates the length it reads
    // before checking the input holds that many bytes, so a corrupt length
    // (or a remote cache server's) would abort the process. Borrowing
    // checks first, then copies once.
    d.deserialize_bytes(ByteBuf)
}

/// `bytes` for a list of byte strings (a directory's names).
pub(crate) fn byte_lists<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    struct Item(Vec<u8>);
    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            bytes(d).map(Item)
        }
    }
    let items: Vec<Item> = serde::Deserialize::deserialize(d)?;
    Ok(items.into_iter().map(|Item(b)| b).collect())
}

struct ByteBuf;

impl<'de> serde::de::Visitor<'de> for ByteBuf {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(reserve::<u8>(seq.size_hint()));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Bytes {
        #[serde(deserialize_with = "bytes")]
        one: Vec<u8>,
        #[serde(deserialize_with = "byte_lists")]
        many: Vec<Vec<u8>>,
    }

    /// Byte strings decode from the bytes serde's own `Vec<u8>` encoding
    /// writes, including non-UTF-8 and empty ones; a truncated one fails.
    #[test]
    fn byte_strings_decode_from_serdes_own_encoding() {
        let value = Bytes {
            one: b"dir/\xffname".to_vec(),
            many: vec![Vec::new(), b"a".to_vec(), vec![0xfe; 300]],
        };
        let bytes = encode(&value);
        assert_eq!(bytes, encode(&(&value.one, &value.many)));
        assert_eq!(decode::<Bytes>("bytes", &bytes).expect("decodes"), value);
        assert!(decode::<Bytes>("bytes", &bytes[..bytes.len() - 1]).is_err());
        // A corrupt length is an error, not an allocation of that size.
        for len in [1u64 << 30, 1 << 40, u64::MAX] {
            let mut huge = encode(&len);
            huge.extend(b"abc");
            assert!(decode::<Bytes>("bytes", &huge).is_err(), "{len}");
            assert!(
                decode::<crate::cache::paths::RelPath>("path", &huge).is_err(),
                "{len}"
            );
        }
        // A self-describing format: a sequence of numbers.
        let json = serde_json::to_string(&value).expect("json");
        let back: Bytes = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, value);
    }

    #[test]
    fn round_trip_and_garbage() {
        let mut m = BTreeMap::new();
        m.insert(b"b".to_vec(), 2u64);
        m.insert(b"a".to_vec(), 1u64);
        let bytes = encode(&m);
        let back: BTreeMap<Vec<u8>, u64> = decode("map", &bytes).expect("decodes");
        assert_eq!(back, m);
        let err =
            decode::<BTreeMap<Vec<u8>, u64>>("map", &[0xff, 0xff, 0xff]).expect_err("garbage");
        assert!(err.to_string().starts_with("cannot decode a stored map"));
    }
}

//! The one binary encoding of everything the cache persists (bincode 2 over
//! serde, standard config). Canonical for our types: maps are `BTreeMap`s and
//! sets `BTreeSet`s, so equal values encode to equal bytes and a key hash is
//! stable across runs.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bumped whenever the layout of any persisted type or of the store changes;
/// a store with another version is set aside, never read.
pub(crate) const SCHEMA_VERSION: u32 = 2;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

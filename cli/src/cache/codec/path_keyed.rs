//! The encoding of an entry's path-keyed maps and sets (`#[serde(with)]`):
//! each path as the number of leading bytes it shares with the path before
//! it, then the rest. The paths come sorted, so a path under `node_modules`
//! costs its file name rather than its 60 to 120 bytes of directories: real
//! builds read thousands of such files, and the paths were most of an
//! entry's bytes, which a miss encodes and writes and a hit reads and decodes.
//!
//! Decoding builds each map or set in one pass from the order it was
//! written in (a `BTreeMap` from a sorted `Vec` needs no search per key);
//! input out of order (hand-made, or corrupt) still decodes to the map one
//! insert at a time would give, through the sort `from_iter` does. A shared
//! length longer than the previous path is an error, never a panic: a
//! corrupt entry, or a remote cache server's, is read as untrusted bytes.
//! Paths are checked (`RelPath::from_stored`) where they are used to write,
//! as before.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::reserve;
use crate::cache::paths::RelPath;

/// How many leading bytes `path` shares with `previous`.
fn shared_len(previous: &[u8], path: &[u8]) -> usize {
    previous
        .iter()
        .zip(path)
        .take_while(|(a, b)| a == b)
        .count()
}

/// A byte string written as bincode writes a `Vec<u8>` (its length, then
/// the bytes), in one call rather than one element at a time.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Writes `paths` (with their values, if any) front-coded, in their order.
fn serialize_paths<'a, S, V, I>(s: S, len: usize, items: I) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    V: Serialize + 'a,
    I: Iterator<Item = (&'a RelPath, Option<&'a V>)>,
{
    let mut seq = s.serialize_seq(Some(len))?;
    let mut previous: &[u8] = &[];
    for (path, value) in items {
        let bytes = path.as_bytes();
        let shared = shared_len(previous, bytes);
        // A path longer than 4 GiB cannot exist (PATH_MAX is 4 KiB).
        let shared32 = u32::try_from(shared).map_err(serde::ser::Error::custom)?;
        seq.serialize_element(&Element {
            shared: shared32,
            rest: Bytes(&bytes[shared..]),
            value,
        })?;
        previous = bytes;
    }
    seq.end()
}

struct Element<'a, V> {
    shared: u32,
    rest: Bytes<'a>,
    value: Option<&'a V>,
}

impl<V: Serialize> Serialize for Element<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(if self.value.is_some() { 3 } else { 2 })?;
        tuple.serialize_element(&self.shared)?;
        tuple.serialize_element(&self.rest)?;
        if let Some(value) = self.value {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}

/// Decodes a front-coded sequence; `V = ()` for a set, whose elements
/// hold no value.
struct Paths<V> {
    with_values: bool,
    _value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for Paths<V> {
    type Value = Vec<(RelPath, V)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of front-coded paths")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(reserve::<(RelPath, V)>(seq.size_hint()));
        let mut path: Vec<u8> = Vec::new();
        while let Some(value) = seq.next_element_seed(ElementSeed {
            path: &mut path,
            with_values: self.with_values,
            _value: PhantomData::<V>,
        })? {
            out.push((RelPath::from_decoded(path.clone()), value));
        }
        Ok(out)
    }
}

/// One element, decoded into the previous path's buffer.
struct ElementSeed<'p, V> {
    path: &'p mut Vec<u8>,
    with_values: bool,
    _value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for ElementSeed<'_, V> {
    type Value = V;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V, D::Error> {
        let len = if self.with_values { 3 } else { 2 };
        d.deserialize_tuple(len, self)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for ElementSeed<'_, V> {
    type Value = V;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a shared length, the rest of a path and its value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V, A::Error> {
        let missing = || A::Error::custom("a front-coded path is cut short");
        let shared: u32 = seq.next_element()?.ok_or_else(missing)?;
        let shared = shared as usize;
        if shared > self.path.len() {
            return Err(A::Error::custom(format!(
                "a stored path shares {shared} bytes with one of {}",
                self.path.len()
            )));
        }
        self.path.truncate(shared);
        seq.next_element_seed(AppendTo(self.path))?
            .ok_or_else(missing)?;
        if self.with_values {
            seq.next_element()?.ok_or_else(missing)
        } else {
            // A set's element has no value; `V` is `()`.
            V::deserialize(serde::de::value::UnitDeserializer::new())
        }
    }
}

/// Appends a byte string to the path being rebuilt, without a copy of its own.
struct AppendTo<'p>(&'p mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for AppendTo<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Borrowed, not `deserialize_byte_buf`: bincode would allocate a
        // corrupt length before checking the input holds that many bytes.
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for AppendTo<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the rest of a path")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.extend_from_slice(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A self-describing format writes bytes as a sequence of numbers.
        while let Some(b) = seq.next_element::<u8>()? {
            self.0.push(b);
        }
        Ok(())
    }
}

/// `#[serde(with = "…::path_keyed::map")]` for a `BTreeMap<RelPath, V>`.
pub(crate) mod map {
    use super::*;

    pub(crate) fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<RelPath, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_paths(s, map.len(), map.iter().map(|(p, v)| (p, Some(v))))
    }

    pub(crate) fn deserialize<'de, D, V>(d: D) -> Result<BTreeMap<RelPath, V>, D::Error>
    where
        D: Deserializer<'de>,
        V: Deserialize<'de>,
    {
        let pairs = d.deserialize_seq(Paths {
            with_values: true,
            _value: PhantomData,
        })?;
        Ok(pairs.into_iter().collect())
    }
}

/// `#[serde(with = "…::path_keyed::set")]` for a `BTreeSet<RelPath>`.
pub(crate) mod set {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        set: &BTreeSet<RelPath>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_paths::<S, (), _>(s, set.len(), set.iter().map(|p| (p, None)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeSet<RelPath>, D::Error> {
        let paths = d.deserialize_seq(Paths::<()> {
            with_values: false,
            _value: PhantomData,
        })?;
        Ok(paths.into_iter().map(|(p, ())| p).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::codec::{decode, encode};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        #[serde(with = "map")]
        map: BTreeMap<RelPath, u64>,
        #[serde(with = "set")]
        set: BTreeSet<RelPath>,
        after: u8,
    }

    fn rel(s: &str) -> RelPath {
        RelPath::from_stored(s.as_bytes()).expect("valid")
    }

    fn entry(paths: &[&str]) -> Entry {
        Entry {
            map: paths
                .iter()
                .enumerate()
                .map(|(i, p)| (rel(p), i as u64))
                .collect(),
            set: paths.iter().map(|p| rel(p)).collect(),
            after: 7,
        }
    }

    #[test]
    fn round_trips_with_the_root_non_utf8_names_and_no_shared_bytes() {
        let value = entry(&[
            "",
            "a",
            "a/b",
            "a/b/c.js",
            "a/bb",
            "b",
            "node_modules/.pnpm/react@19.1.0/node_modules/react/index.js",
            "node_modules/.pnpm/react@19.1.0/node_modules/react/package.json",
            "z",
        ]);
        let mut with_bytes = value.map.clone();
        with_bytes.insert(RelPath::from_stored(b"dir/\xffname").expect("valid"), 99);
        let value = Entry {
            map: with_bytes,
            ..value
        };
        let bytes = encode(&value);
        assert_eq!(decode::<Entry>("entry", &bytes).expect("decodes"), value);
        // An empty map and set.
        let empty = entry(&[]);
        assert_eq!(
            decode::<Entry>("entry", &encode(&empty)).expect("decodes"),
            empty
        );
    }

    /// What the encoding is for: paths under one directory cost their
    /// names, not the directory again.
    #[test]
    fn a_directory_is_written_once_for_its_files() {
        let dir = "node_modules/.pnpm/@babel+core@7.28.0/node_modules/@babel/core/lib";
        let paths: Vec<String> = (0..100).map(|i| format!("{dir}/file{i:03}.js")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let value = entry(&refs);
        let front_coded = encode(&value).len();
        let plain = encode(&(&value.map, &value.set, value.after)).len();
        let all_path_bytes: usize = paths.iter().map(String::len).sum();
        assert!(
            front_coded < plain - all_path_bytes,
            "front-coded {front_coded} bytes, plain {plain}, paths {all_path_bytes}"
        );
    }

    /// Out of order or repeated paths (not what `encode` writes) decode
    /// as one insert at a time would: sorted, the last value of a path kept.
    #[test]
    fn out_of_order_paths_decode_sorted() {
        struct Raw(Vec<(u32, &'static [u8], u64)>);
        impl Serialize for Raw {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (shared, rest, v) in &self.0 {
                    seq.serialize_element(&(shared, Bytes(rest), v))?;
                }
                seq.end()
            }
        }
        // "b/x", "a" (shares nothing), "b/x" again (shares nothing with "a").
        let raw = Raw(vec![(0, b"b/x", 1), (0, b"a", 2), (0, b"b/x", 3)]);
        let mut bytes = encode(&raw);
        bytes.extend(encode(&0u64)); // an empty set
        bytes.push(7);
        let got: Entry = decode("entry", &bytes).expect("decodes");
        assert_eq!(
            got.map,
            [(rel("a"), 2), (rel("b/x"), 3)].into_iter().collect()
        );
    }

    /// Corrupt bytes are errors: a shared length past the previous path,
    /// a cut-off element, a huge length. None panics or allocates it.
    #[test]
    fn corrupt_paths_are_errors() {
        let good = encode(&entry(&["src/a.js", "src/b.js"]));
        for cut in 1..good.len() {
            assert!(
                decode::<Entry>("entry", &good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut too_long = encode(&1u64); // one element
        too_long.extend(encode(&(5u32, Bytes(b"x"), 1u64)));
        too_long.extend(encode(&0u64));
        too_long.push(7);
        let err = decode::<Entry>("entry", &too_long).expect_err("shares more than exists");
        assert!(
            err.to_string().contains("shares 5 bytes with one of 0"),
            "{err}"
        );
        for len in [1u64 << 40, u64::MAX] {
            let mut huge = encode(&1u64);
            huge.extend(encode(&0u32));
            huge.extend(encode(&len));
            huge.extend(b"abc");
            assert!(decode::<Entry>("entry", &huge).is_err(), "{len}");
            let mut many = encode(&len); // a sequence that says it is huge
            many.extend(b"abc");
            assert!(decode::<Entry>("entry", &many).is_err(), "{len}");
        }
    }

    /// A self-describing format round-trips too: the encoding is plain
    /// serde, not tied to bincode.
    #[test]
    fn round_trips_through_json() {
        let value = entry(&["a/b", "a/c", "d"]);
        let json = serde_json::to_string(&value).expect("json");
        assert_eq!(
            serde_json::from_str::<Entry>(&json).expect("from json"),
            value
        );
    }
}

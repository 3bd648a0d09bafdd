//! The encoding of an entry's path-keyed maps and sets (`#[serde(with)]`):
//! each path as the number of leading bytes it shares with the path before
//! it, then the rest. The paths come sorted, so a path under `node_modules`
//! costs its file name rather than its 60 to 120 bytes of directories: real
//! builds read thousands of such files, and the paths were most of an
//! entry's bytes, which a miss encodes and writes and a hit reads and decodes.
//!
//! Decoding builds each map or set in one pass from the order it was
//! written in (a `BTreeMap` from a sorted `Vec` needs no search per key).
//! The bytes are untrusted (a corrupt entry, or a remote cache server's),
//! and whatever they say is an error, never a panic:
//!
//! - a shared length longer than the previous path;
//! - a path not after the one before it (`encode` writes each once, in
//!   order), so every element adds at least one byte of its own;
//! - a path longer than [`MAX_PATH`], or paths that come to more than
//!   [`EXPANSION`] times the bytes they were decoded from. Front-coding
//!   lets four bytes say "the last path again, one byte longer": without
//!   the bound, an entry of one megabyte could decode to gigabytes.
//!
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

/// The longest path an entry may hold: the kernel's `PATH_MAX`. vp records
/// paths the traced calls named, which cannot be longer.
const MAX_PATH: usize = 4096;

/// How many times the bytes they were decoded from the paths of one map or
/// set may come to, beyond [`EXPANSION_SLACK`]. Real entries stay far
/// below: a file under `node_modules` shares about a hundred bytes and
/// brings ten of its own (about 10x); 128x takes paths of 500 bytes that
/// differ in their last two.
const EXPANSION: usize = 128;
const EXPANSION_SLACK: usize = 1 << 20;

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
        // What the elements took at least (a shared length and a rest's
        // length take a byte each), and what their paths came to.
        let (mut read, mut built) = (0usize, 0usize);
        while let Some((value, rest)) = seq.next_element_seed(ElementSeed {
            path: &mut path,
            first: out.is_empty(),
            with_values: self.with_values,
            _value: PhantomData::<V>,
        })? {
            read = read.saturating_add(rest + 2);
            built = built.saturating_add(path.len());
            if path.len() > MAX_PATH {
                return Err(A::Error::custom(format!(
                    "a stored path is {} bytes long, more than a path can be ({MAX_PATH})",
                    path.len()
                )));
            }
            if built
                > read
                    .saturating_mul(EXPANSION)
                    .saturating_add(EXPANSION_SLACK)
            {
                return Err(A::Error::custom(format!(
                    "{} stored paths come to {built} bytes from {read}: more than a real entry's",
                    out.len() + 1
                )));
            }
            out.push((RelPath::from_decoded(path.clone()), value));
        }
        Ok(out)
    }
}

/// One element, decoded into the previous path's buffer; its value and
/// the length of the rest it brought.
struct ElementSeed<'p, V> {
    path: &'p mut Vec<u8>,
    /// The first path may be the root (empty); every later one must sort
    /// after the one before it.
    first: bool,
    with_values: bool,
    _value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for ElementSeed<'_, V> {
    type Value = (V, usize);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(V, usize), D::Error> {
        let len = if self.with_values { 3 } else { 2 };
        d.deserialize_tuple(len, self)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for ElementSeed<'_, V> {
    type Value = (V, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a shared length, the rest of a path and its value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(V, usize), A::Error> {
        let missing = || A::Error::custom("a front-coded path is cut short");
        let shared: u32 = seq.next_element()?.ok_or_else(missing)?;
        let shared = shared as usize;
        if shared > self.path.len() {
            return Err(A::Error::custom(format!(
                "a stored path says it shares {shared} bytes with the path before it, which has only {}",
                self.path.len()
            )));
        }
        let rest = seq
            .next_element_seed(Rest {
                path: self.path,
                shared,
                first: self.first,
            })?
            .ok_or_else(missing)?;
        let value = if self.with_values {
            seq.next_element()?.ok_or_else(missing)?
        } else {
            // A set's element has no value; `V` is `()`.
            V::deserialize(serde::de::value::UnitDeserializer::new())?
        };
        Ok((value, rest))
    }
}

/// The rest of a path: checked to sort after what it replaces, then put in
/// its place, without a copy of its own. Its length is the value.
struct Rest<'p> {
    path: &'p mut Vec<u8>,
    shared: usize,
    first: bool,
}

impl Rest<'_> {
    fn replace<E: serde::de::Error>(self, rest: &[u8]) -> Result<usize, E> {
        // The paths agree up to `shared`, so the new one is after the old
        // one exactly when its rest is after the old one's.
        if !self.first && rest <= &self.path[self.shared..] {
            return Err(E::custom(
                "the stored paths are not in order, or one is there twice",
            ));
        }
        self.path.truncate(self.shared);
        self.path.extend_from_slice(rest);
        Ok(rest.len())
    }
}

impl<'de> DeserializeSeed<'de> for Rest<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        // Borrowed, not `deserialize_byte_buf`: bincode would allocate a
        // corrupt length before checking the input holds that many bytes.
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for Rest<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the rest of a path")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<usize, E> {
        self.replace(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        // A self-describing format writes bytes as a sequence of numbers.
        let mut rest = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            rest.push(b);
        }
        self.replace(&rest)
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

    /// A hand-made sequence of (shared, rest, value) elements, then an
    /// empty set and the `after` byte: an `Entry` as anyone could write it.
    fn raw_entry(elements: &[(u32, &[u8], u64)]) -> Vec<u8> {
        struct Raw<'a>(&'a [(u32, &'a [u8], u64)]);
        impl Serialize for Raw<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (shared, rest, v) in self.0 {
                    seq.serialize_element(&(shared, Bytes(rest), v))?;
                }
                seq.end()
            }
        }
        let mut bytes = encode(&Raw(elements));
        bytes.extend(encode(&0u64));
        bytes.push(7);
        bytes
    }

    /// The layout itself, byte for byte: stores and remote results hold it,
    /// so a change must come with a new `SCHEMA_VERSION`.
    #[test]
    fn the_layout_is_fixed() {
        let value = Entry {
            map: [(rel(""), 1), (rel("a"), 2), (rel("a/b"), 300)]
                .into_iter()
                .collect(),
            set: [RelPath::from_stored(b"x\xff").expect("valid"), rel("xy")]
                .into_iter()
                .collect(),
            after: 7,
        };
        let want: &[u8] = &[
            3, // three paths in the map
            0, 0, 1, // "": shares 0, rest "", value 1
            0, 1, b'a', 2, // "a": shares 0, rest "a", value 2
            1, 2, b'/', b'b', 251, 44, 1, // "a/b": shares 1, rest "/b", 300
            2, // two paths in the set, in byte order
            0, 2, b'x', b'y', // "xy"
            1, 1, 0xff, // "x\xff": shares 1, rest "\xff"
            7,
        ];
        assert_eq!(encode(&value), want);
        assert_eq!(decode::<Entry>("entry", want).expect("decodes"), value);
    }

    /// `encode` writes each path once, in order; anything else is corrupt
    /// (and would let an element bring nothing of its own).
    #[test]
    fn paths_out_of_order_or_twice_are_errors() {
        for elements in [
            vec![(0, &b"b"[..], 1), (0, b"a", 2)],
            vec![(0, &b"a/b"[..], 1), (3, b"", 2)],
            vec![(0, &b"a/b"[..], 1), (1, b"/b", 2)],
            vec![(0, &b"ab"[..], 1), (1, b"a", 2)],
            vec![(0, &b""[..], 1), (0, b"", 2)],
        ] {
            let err = decode::<Entry>("entry", &raw_entry(&elements)).expect_err("not in order");
            assert!(
                err.to_string().contains("not in order"),
                "{elements:?}: {err}"
            );
        }
        let good = [(0, &b""[..], 1), (0, b"a", 2), (1, b"/b", 3), (1, b"b", 4)];
        let got: Entry = decode("entry", &raw_entry(&good)).expect("in order");
        let paths: Vec<&[u8]> = got.map.keys().map(RelPath::as_bytes).collect();
        assert_eq!(paths, [&b""[..], b"a", b"a/b", b"ab"]);
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
        let err = decode::<Entry>("entry", &raw_entry(&[(5, b"x", 1)]))
            .expect_err("shares more than exists");
        assert!(
            err.to_string()
                .contains("shares 5 bytes with the path before it, which has only 0"),
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

    /// A small entry cannot decode to gigabytes. Front-coding lets a few
    /// bytes say "the path before, one byte longer", or "the path before
    /// with another last byte": with paths of kilobytes, each such element
    /// would cost a thousand times its size.
    #[test]
    fn paths_cannot_expand_past_the_bound() {
        let long = vec![b'a'; 4000];
        let mut elements: Vec<(u32, &[u8], u64)> = vec![(0, &long, 0)];
        // Each path is the one before and one more byte, sorting after it.
        let step: &[u8] = b"b";
        let first = long.len() as u32;
        elements.extend((first..first + 200).map(|shared| (shared, step, 0)));
        let err = decode::<Entry>("entry", &raw_entry(&elements)).expect_err("too long");
        assert!(err.to_string().contains("more than a path can be"), "{err}");
        // Paths of a legal length, each a sibling of the one before: the
        // bound stops them long before memory does.
        let dir = vec![b'd'; 3000];
        let names: Vec<[u8; 2]> = (0..5000u32)
            .map(|i| [b'a' + (i / 256 % 26) as u8, (i % 256) as u8])
            .collect();
        let mut elements: Vec<(u32, &[u8], u64)> = vec![(0, &dir, 0)];
        let mut previous_first = None;
        for name in &names {
            // Shares the directory, and the first byte when it repeats.
            let same_first = previous_first == Some(name[0]);
            let (shared, rest): (u32, &[u8]) = if same_first {
                (3001, &name[1..])
            } else {
                (3000, &name[..])
            };
            previous_first = Some(name[0]);
            elements.push((shared, rest, 0));
        }
        let bytes = raw_entry(&elements);
        let err = decode::<Entry>("entry", &bytes).expect_err("too much");
        assert!(err.to_string().contains("more than a real entry"), "{err}");
        // What the bound must let through: 20,000 numbered files in a
        // directory of 400 bytes, each bringing about three of its own.
        let dir = "d".repeat(400);
        let paths: Vec<String> = (0..20_000).map(|i| format!("{dir}/f{i:05}.js")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let value = entry(&refs);
        assert_eq!(
            decode::<Entry>("entry", &encode(&value)).expect("a real shape decodes"),
            value
        );
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

//! Which environment variable names an [`EnvQuery`] selects.
//!
//! This is the only implementation of that rule, and every party uses it:
//! vp's bridge answers `GetEnvs` with it, vp's cache re-evaluates a stored
//! query with it on lookup, and the Node addon answers from `process.env`
//! with it when no runner is there. Two matchers that disagree on one name
//! are a stale cache hit (the tool was served `VITE_A` for `VITE_{A,B}`, the
//! cache thought the query matched nothing, so a change of `VITE_A` hit).
//!
//! Globs work on bytes, as names do: `*` any run of bytes, `?` one byte,
//! `[a-z]` / `[!a-z]` / `[^a-z]` classes (a `]` first in the class is a
//! member), `{a,b}` alternatives (they nest), `\x` the byte `x`. Anything
//! else, including an unclosed `[` or `{` or a stray `}`, is an error, so a
//! tool learns at once that its pattern does not mean what it thinks.
//!
//! Matching tracks the set of name positions reachable after each pattern
//! element, so it is `O(pattern × name)` whatever the pattern: a hostile
//! `*a*a*a*…` or `{a,b}{a,b}…` cannot make the runner spin.

use crate::EnvQuery;

/// Alternatives nested deeper than this are refused (the parser recurses).
const MAX_NESTING: usize = 32;

/// A compiled [`EnvQuery`]: cheap to apply to every name of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNameMatcher {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A name, or a glob without wildcards (`HOME`).
    Exact(Vec<u8>),
    /// `{ prefix }`, or a glob that is a literal then `*` (`LC_*`).
    Prefix(Vec<u8>),
    /// A glob that is `*` then a literal (`*_TOKEN`).
    Suffix(Vec<u8>),
    Glob(Vec<Element>),
}

impl Kind {
    /// The same globs, as plain byte comparisons where they are one: vp
    /// matches its default pass-through list against every variable of every
    /// task's environment, and those are names, prefixes and suffixes.
    fn of_glob(elements: Vec<Element>) -> Kind {
        let literal = |els: &[Element]| -> Option<Vec<u8>> {
            els.iter()
                .map(|e| match e {
                    Element::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect()
        };
        match elements.as_slice() {
            [rest @ .., Element::AnyRun] if literal(rest).is_some() => {
                Kind::Prefix(literal(rest).unwrap_or_default())
            }
            [Element::AnyRun, rest @ ..] if literal(rest).is_some() => {
                Kind::Suffix(literal(rest).unwrap_or_default())
            }
            all => match literal(all) {
                Some(name) => Kind::Exact(name),
                None => Kind::Glob(elements),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    Byte(u8),
    AnyByte,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
    Alternatives(Vec<Vec<Element>>),
}

/// Why a glob is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid env glob `{pattern}`: {problem}")]
pub struct EnvGlobError {
    /// The pattern as sent (lossily decoded for display).
    pub pattern: String,
    /// What is wrong with it.
    pub problem: GlobProblem,
}

/// What is wrong with a glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GlobProblem {
    /// A `[` without its `]`.
    #[error("`[` at byte {0} has no closing `]`")]
    UnclosedClass(usize),
    /// A `[a-b]` range whose end is below its start.
    #[error("the range at byte {0} ends before it starts")]
    ReversedRange(usize),
    /// A `{` without its `}`.
    #[error("`{{` at byte {0} has no closing `}}`")]
    UnclosedAlternatives(usize),
    /// A `}` that closes nothing.
    #[error("`}}` at byte {0} closes nothing (write `\\}}` for a literal brace)")]
    StrayClosingBrace(usize),
    /// A `\` as the last byte.
    #[error("the pattern ends with a lone `\\`")]
    DanglingEscape,
    /// Alternatives nested too deeply.
    #[error("alternatives are nested more than {MAX_NESTING} deep")]
    TooDeep,
}

impl EnvQuery {
    /// Compiles the query; a glob that does not parse is an error.
    pub fn matcher(&self) -> Result<EnvNameMatcher, EnvGlobError> {
        let kind = match self {
            EnvQuery::Prefix(prefix) => Kind::Prefix(prefix.clone()),
            EnvQuery::Glob(pattern) => {
                let mut parser = Parser { pattern, at: 0 };
                let elements = parser.sequence(0).map_err(|problem| EnvGlobError {
                    pattern: String::from_utf8_lossy(pattern).into_owned(),
                    problem,
                })?;
                Kind::of_glob(elements)
            }
        };
        Ok(EnvNameMatcher { kind })
    }
}

impl EnvNameMatcher {
    /// Whether the query selects `name` (a glob must match all of it).
    pub fn matches(&self, name: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact(exact) => name == exact.as_slice(),
            Kind::Prefix(prefix) => name.starts_with(prefix),
            Kind::Suffix(suffix) => name.ends_with(suffix),
            Kind::Glob(elements) => {
                let mut start = vec![false; name.len() + 1];
                start[0] = true;
                advance(elements, name, &start)[name.len()]
            }
        }
    }
}

/// Positions of `name` reachable after matching `elements` from any
/// position set in `from`.
fn advance(elements: &[Element], name: &[u8], from: &[bool]) -> Vec<bool> {
    let mut now = from.to_vec();
    for element in elements {
        let mut next = vec![false; now.len()];
        match element {
            Element::AnyRun => {
                let mut reached = false;
                for (i, slot) in next.iter_mut().enumerate() {
                    reached |= now[i];
                    *slot = reached;
                }
            }
            Element::Alternatives(alts) => {
                for alt in alts {
                    for (slot, got) in next.iter_mut().zip(advance(alt, name, &now)) {
                        *slot |= got;
                    }
                }
            }
            single => {
                for (i, &byte) in name.iter().enumerate() {
                    if now[i] && accepts(single, byte) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        if !next.contains(&true) {
            return next;
        }
        now = next;
    }
    now
}

/// Whether a one-byte element accepts `byte`.
fn accepts(element: &Element, byte: u8) -> bool {
    match element {
        Element::Byte(b) => *b == byte,
        Element::AnyByte => true,
        Element::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&byte)) != *negated
        }
        Element::AnyRun | Element::Alternatives(_) => false,
    }
}

struct Parser<'a> {
    pattern: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    /// Elements up to the end, or (inside alternatives) up to `,` or `}`.
    fn sequence(&mut self, depth: usize) -> Result<Vec<Element>, GlobProblem> {
        let mut out = Vec::new();
        while let Some(&b) = self.pattern.get(self.at) {
            match b {
                b',' | b'}' if depth > 0 => break,
                b'}' => return Err(GlobProblem::StrayClosingBrace(self.at)),
                b'*' => {
                    self.at += 1;
                    // `**` means the same as `*`; keep one.
                    if out.last() != Some(&Element::AnyRun) {
                        out.push(Element::AnyRun);
                    }
                }
                b'?' => {
                    self.at += 1;
                    out.push(Element::AnyByte);
                }
                b'[' => out.push(self.class()?),
                b'{' => out.push(self.alternatives(depth)?),
                b'\\' => {
                    let escaped = *self
                        .pattern
                        .get(self.at + 1)
                        .ok_or(GlobProblem::DanglingEscape)?;
                    self.at += 2;
                    out.push(Element::Byte(escaped));
                }
                literal => {
                    self.at += 1;
                    out.push(Element::Byte(literal));
                }
            }
        }
        Ok(out)
    }

    fn alternatives(&mut self, depth: usize) -> Result<Element, GlobProblem> {
        let open = self.at;
        if depth >= MAX_NESTING {
            return Err(GlobProblem::TooDeep);
        }
        self.at += 1;
        let mut alts = Vec::new();
        loop {
            alts.push(self.sequence(depth + 1)?);
            match self.pattern.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Element::Alternatives(alts));
                }
                _ => return Err(GlobProblem::UnclosedAlternatives(open)),
            }
        }
    }

    fn class(&mut self) -> Result<Element, GlobProblem> {
        let open = self.at;
        self.at += 1;
        let negated = matches!(self.pattern.get(self.at), Some(b'!' | b'^'));
        if negated {
            self.at += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(&b) = self.pattern.get(self.at) else {
                return Err(GlobProblem::UnclosedClass(open));
            };
            if b == b']' && !first {
                self.at += 1;
                return Ok(Element::Class { negated, ranges });
            }
            first = false;
            let lo = self.class_byte(open)?;
            let is_range = self.pattern.get(self.at) == Some(&b'-')
                && self.pattern.get(self.at + 1).is_some_and(|&c| c != b']');
            if is_range {
                let range_at = self.at - 1;
                self.at += 1;
                let hi = self.class_byte(open)?;
                if hi < lo {
                    return Err(GlobProblem::ReversedRange(range_at));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
    }

    /// One member byte of a class (`\x` escapes it).
    fn class_byte(&mut self, open: usize) -> Result<u8, GlobProblem> {
        match self.pattern.get(self.at) {
            Some(b'\\') => {
                let b = *self
                    .pattern
                    .get(self.at + 1)
                    .ok_or(GlobProblem::UnclosedClass(open))?;
                self.at += 2;
                Ok(b)
            }
            Some(&b) => {
                self.at += 1;
                Ok(b)
            }
            None => Err(GlobProblem::UnclosedClass(open)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> EnvNameMatcher {
        EnvQuery::Glob(p.as_bytes().to_vec())
            .matcher()
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// The plain comparisons (`HOME`, `LC_*`, `*_TOKEN`) answer exactly as
    /// the general matcher does.
    #[test]
    fn literal_prefix_and_suffix_globs_match_like_the_general_matcher() {
        let patterns = [
            "HOME", "LC_*", "*_TOKEN", "*", "", "A", "*A", "A*", "VITE_\\*", "\\*X", "AB*",
        ];
        let names = [
            "",
            "A",
            "AB",
            "ABC",
            "HOME",
            "HOMEX",
            "XHOME",
            "LC_",
            "LC_ALL",
            "XLC_ALL",
            "_TOKEN",
            "NPM_TOKEN",
            "NPM_TOKENS",
            "VITE_*",
            "VITE_A",
            "*X",
            "XX",
            "BA",
        ];
        for pattern in patterns {
            let fast = glob(pattern);
            let mut parser = Parser {
                pattern: pattern.as_bytes(),
                at: 0,
            };
            let elements = parser.sequence(0).expect("valid");
            let general = EnvNameMatcher {
                kind: Kind::Glob(elements),
            };
            assert!(
                !matches!(fast.kind, Kind::Glob(_)),
                "{pattern} has a plain form"
            );
            for name in names {
                assert_eq!(
                    fast.matches(name.as_bytes()),
                    general.matches(name.as_bytes()),
                    "{pattern} vs {name}"
                );
            }
        }
        assert!(matches!(glob("A?B").kind, Kind::Glob(_)));
        assert!(matches!(glob("*A*").kind, Kind::Glob(_)));
    }

    #[test]
    fn globs_select_whole_names() {
        let cases: &[(&str, &str, bool)] = &[
            ("VITE_*", "VITE_A", true),
            ("VITE_*", "VITE_", true),
            ("VITE_*", "XVITE_A", false),
            ("*_ENV", "NODE_ENV", true),
            ("*_URL", "VITE_API_URL", true),
            ("NODE_?NV", "NODE_ENV", true),
            ("A?C", "AC", false),
            ("*A*B*", "xxAyyBzz", true),
            ("*A*B*", "xxByyAzz", false),
            ("**", "ANY", true),
            ("[A-C]X", "BX", true),
            ("[!A-C]X", "BX", false),
            ("[^A-C]X", "DX", true),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("VITE_{A,B}", "VITE_A", true),
            ("VITE_{A,B}", "VITE_B", true),
            ("VITE_{A,B}", "VITE_C", false),
            ("VITE_{A,B}", "VITE_AB", false),
            ("{VITE,NEXT}_*", "NEXT_PUBLIC", true),
            ("{VITE,NEXT}_*", "NUXT_A", false),
            ("{A,{B,C}D}", "CD", true),
            ("{A,}X", "X", true),
            ("A\\*", "A*", true),
            ("A\\*", "AB", false),
            ("\\{A\\}", "{A}", true),
            ("", "", true),
            ("", "A", false),
            ("NAME", "NAMES", false),
        ];
        for (pattern, name, want) in cases {
            let got = EnvQuery::Glob(pattern.as_bytes().to_vec())
                .matcher()
                .map(|m| m.matches(name.as_bytes()));
            assert_eq!(got, Ok(*want), "{pattern} vs {name}");
        }
    }

    #[test]
    fn prefix_is_a_byte_prefix() {
        let m = EnvQuery::Prefix(b"VITE_".to_vec())
            .matcher()
            .expect("prefix");
        assert!(m.matches(b"VITE_A") && m.matches(b"VITE_"));
        assert!(!m.matches(b"VIT") && !m.matches(b"XVITE_"));
    }

    #[test]
    fn names_need_not_be_utf8() {
        assert!(glob("A*").matches(b"A\xff\xfe"));
        assert!(glob("?").matches(b"\xff"));
    }

    #[test]
    fn bad_globs_say_what_is_wrong() {
        let cases: &[(&str, GlobProblem)] = &[
            ("VITE_[", GlobProblem::UnclosedClass(5)),
            ("[]", GlobProblem::UnclosedClass(0)),
            ("[z-a]", GlobProblem::ReversedRange(1)),
            ("VITE_{A,B", GlobProblem::UnclosedAlternatives(5)),
            ("A}", GlobProblem::StrayClosingBrace(1)),
            ("A\\", GlobProblem::DanglingEscape),
        ];
        for (pattern, problem) in cases {
            let err = EnvQuery::Glob(pattern.as_bytes().to_vec())
                .matcher()
                .expect_err(pattern);
            assert_eq!(err.problem, *problem, "{pattern}");
            assert!(err.to_string().starts_with("invalid env glob `"), "{err}");
        }
        let deep = "{".repeat(MAX_NESTING + 1) + &"}".repeat(MAX_NESTING + 1);
        let err = EnvQuery::Glob(deep.into_bytes())
            .matcher()
            .expect_err("deep");
        assert_eq!(err.problem, GlobProblem::TooDeep);
    }

    #[test]
    fn hostile_patterns_stay_linear() {
        let stars = "*A".repeat(200) + "B";
        let name = "A".repeat(4000);
        let t = std::time::Instant::now();
        assert!(!glob(&stars).matches(name.as_bytes()));
        let alts = "{A,B}".repeat(60);
        assert!(glob(&alts).matches("AB".repeat(30).as_bytes()));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}

//! Environment variables as the cache sees them: which names look secret
//! (their values are stored only as hashes), the queries tools send over the
//! bridge (`getEnvs` by glob or prefix), and evaluating those queries against
//! the runner's full environment with the user's untracked names left out.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};

use super::digest::{Digest, Domain};

/// A declared env value in the spawn fingerprint: kept readable unless the
/// name looks like it holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EnvValue {
    Plain(Vec<u8>),
    Hashed(Digest),
}

impl EnvValue {
    pub(crate) fn for_declared(name: &OsStr, value: &OsStr) -> Self {
        if is_secret_name(name.as_bytes()) {
            Self::Hashed(hash_value(value.as_bytes()))
        } else {
            Self::Plain(value.as_bytes().to_vec())
        }
    }
}

pub(crate) fn hash_value(value: &[u8]) -> Digest {
    Digest::of(Domain::EnvValue, value)
}

/// Words that mark a variable as secret when they appear as a whole
/// `_`-separated word of its name (`AWS_SECRET_ACCESS_KEY`, `NPM_TOKEN`,
/// `DB_PASSWORD`), case-insensitively. Hashing a harmless value costs nothing,
/// so the list errs on the broad side.
const SECRET_WORDS: &[&str] = &[
    "KEY",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "APIKEY",
    "PRIVATE",
    "SIGNATURE",
    "COOKIE",
    "SESSION",
];

/// True when a variable's value must never be stored in clear.
pub(crate) fn is_secret_name(name: &[u8]) -> bool {
    let upper = name.to_ascii_uppercase();
    // `PWD` alone is the working directory, not a password.
    if upper == b"PWD" || upper == b"OLDPWD" {
        return false;
    }
    upper
        .split(|&b| b == b'_')
        .any(|word| SECRET_WORDS.iter().any(|s| s.as_bytes() == word))
}

/// A `getEnvs` request from a tool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum EnvQuery {
    /// Shell-style wildcard on the name: `*` any run, `?` one byte.
    Glob(Vec<u8>),
    /// Every name starting with these bytes.
    Prefix(Vec<u8>),
}

impl EnvQuery {
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        match self {
            Self::Glob(pattern) => wildcard_match(pattern, name),
            Self::Prefix(prefix) => name.starts_with(prefix),
        }
    }
}

/// Iterative wildcard matcher with single backtrack point (linear in
/// practice, no recursion on hostile patterns).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The runner's full environment (not the stripped one children get) plus
/// the user's policy for names that are never fingerprinted.
pub(crate) struct EnvView<'a> {
    vars: BTreeMap<Vec<u8>, Vec<u8>>,
    is_untracked: &'a dyn Fn(&OsStr) -> bool,
}

impl<'a> EnvView<'a> {
    pub(crate) fn new(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        is_untracked: &'a dyn Fn(&OsStr) -> bool,
    ) -> Self {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        Self { vars, is_untracked }
    }

    fn untracked(&self, name: &[u8]) -> bool {
        (self.is_untracked)(OsStr::from_bytes(name))
    }

    /// A tracked `getEnv`: the value's hash, or `None` when unset. `None`
    /// overall when the name is untracked by the user's configuration (user
    /// configuration wins over tools).
    pub(crate) fn tracked(&self, name: &[u8]) -> Option<Option<Digest>> {
        if self.untracked(name) {
            return None;
        }
        Some(self.vars.get(name).map(|v| hash_value(v)))
    }

    /// A tracked `getEnvs`: every matching, tracked name with its value hash.
    pub(crate) fn query(&self, query: &EnvQuery) -> BTreeMap<Vec<u8>, Digest> {
        self.vars
            .iter()
            .filter(|(name, _)| query.matches(name) && !self.untracked(name))
            .map(|(name, value)| (name.clone(), hash_value(value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "NPM_TOKEN",
            "DB_PASSWORD",
            "api_key",
            "MY_PASS",
            "GCP_CREDENTIALS",
            "SECRET",
        ] {
            assert!(is_secret_name(name.as_bytes()), "{name}");
        }
        for name in [
            "NODE_ENV",
            "VITE_API_URL",
            "KEYBOARD",
            "PWD",
            "PATH",
            "MONKEY_BUSINESS",
        ] {
            assert!(!is_secret_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn declared_secret_is_hashed() {
        let v = EnvValue::for_declared(OsStr::new("NPM_TOKEN"), OsStr::new("abc"));
        assert_eq!(v, EnvValue::Hashed(hash_value(b"abc")));
        let v = EnvValue::for_declared(OsStr::new("NODE_ENV"), OsStr::new("production"));
        assert_eq!(v, EnvValue::Plain(b"production".to_vec()));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"VITE_*", b"VITE_X"));
        assert!(wildcard_match(b"VITE_*", b"VITE_"));
        assert!(!wildcard_match(b"VITE_*", b"XVITE_X"));
        assert!(wildcard_match(b"*_URL", b"VITE_API_URL"));
        assert!(wildcard_match(b"A?C", b"ABC"));
        assert!(!wildcard_match(b"A?C", b"AC"));
        assert!(wildcard_match(b"*A*B*", b"xxAyyBzz"));
        assert!(!wildcard_match(b"*A*B*", b"xxByyAzz"));
        assert!(wildcard_match(b"NAME", b"NAME"));
        assert!(!wildcard_match(b"NAME", b"NAMES"));
        assert!(wildcard_match(b"", b"") && !wildcard_match(b"", b"X"));
    }

    #[test]
    fn queries_skip_untracked_names() {
        let untracked = |n: &OsStr| n.as_bytes().starts_with(b"VITE_CI_");
        let env = EnvView::new(
            [("VITE_A", "1"), ("VITE_CI_RUN", "42"), ("OTHER", "x")]
                .map(|(k, v)| (k.into(), v.into())),
            &untracked,
        );
        let got = env.query(&EnvQuery::Prefix(b"VITE_".to_vec()));
        assert_eq!(
            got.keys().cloned().collect::<Vec<_>>(),
            vec![b"VITE_A".to_vec()]
        );
        assert_eq!(env.tracked(b"VITE_CI_RUN"), None);
        assert_eq!(env.tracked(b"OTHER"), Some(Some(hash_value(b"x"))));
        assert_eq!(env.tracked(b"UNSET"), Some(None));
        let globbed = env.query(&EnvQuery::Glob(b"*THER".to_vec()));
        assert_eq!(globbed.len(), 1);
    }
}

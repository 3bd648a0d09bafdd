//! Environment variables as the cache sees them: which names look secret
//! (their values are stored only as hashes), what a tool was served over the
//! bridge (hashed into the entry), and re-evaluating a stored `getEnvs` query
//! against the runner's full environment at lookup, with the user's untracked
//! names left out. Queries are matched by `vp_ipc`'s matcher, the same one
//! that served the tool, so the set checked is the set that was served.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};
use vp_ipc::{EnvGlobError, EnvNameMatcher, EnvQuery};

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

    /// A tracked `getEnvs`: every matching, tracked name with its value
    /// hash. An error only if the query no longer compiles (it did when it
    /// was served), which the lookup treats as a difference.
    pub(crate) fn query(
        &self,
        query: &EnvQuery,
    ) -> Result<BTreeMap<Vec<u8>, Digest>, EnvGlobError> {
        let matcher = query.matcher()?;
        Ok(self
            .vars
            .iter()
            .filter(|(name, _)| query_selects(&matcher, OsStr::from_bytes(name), self.is_untracked))
            .map(|(name, value)| (name.clone(), hash_value(value)))
            .collect())
    }
}

/// Whether a `getEnvs` query selects `name`: the query matches and the
/// user's configuration does not call the name untracked (configuration wins
/// over tools). The bridge serving the tool and the lookup re-checking an
/// entry both decide with this, so they cannot drift apart.
pub(crate) fn query_selects(
    matcher: &EnvNameMatcher,
    name: &OsStr,
    is_untracked: &dyn Fn(&OsStr) -> bool,
) -> bool {
    matcher.matches(name.as_bytes()) && !is_untracked(name)
}

/// What a tool was served for tracked `getEnv`s, as the entry stores it.
pub(crate) fn served_env(
    served: &BTreeMap<OsString, Option<OsString>>,
) -> BTreeMap<Vec<u8>, Option<Digest>> {
    served
        .iter()
        .map(|(name, value)| {
            let hash = value.as_ref().map(|v| hash_value(v.as_bytes()));
            (name.as_bytes().to_vec(), hash)
        })
        .collect()
}

/// The match-set a tool was served for one tracked `getEnvs`, as stored.
pub(crate) fn served_matches(served: &BTreeMap<OsString, OsString>) -> BTreeMap<Vec<u8>, Digest> {
    served
        .iter()
        .map(|(name, value)| (name.as_bytes().to_vec(), hash_value(value.as_bytes())))
        .collect()
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
    fn queries_skip_untracked_names() {
        let untracked = |n: &OsStr| n.as_bytes().starts_with(b"VITE_CI_");
        let env = EnvView::new(
            [("VITE_A", "1"), ("VITE_CI_RUN", "42"), ("OTHER", "x")]
                .map(|(k, v)| (k.into(), v.into())),
            &untracked,
        );
        let got = env
            .query(&EnvQuery::Prefix(b"VITE_".to_vec()))
            .expect("prefix");
        assert_eq!(
            got.keys().cloned().collect::<Vec<_>>(),
            vec![b"VITE_A".to_vec()]
        );
        assert_eq!(env.tracked(b"VITE_CI_RUN"), None);
        assert_eq!(env.tracked(b"OTHER"), Some(Some(hash_value(b"x"))));
        assert_eq!(env.tracked(b"UNSET"), Some(None));
        let globbed = env.query(&EnvQuery::Glob(b"*THER".to_vec())).expect("glob");
        assert_eq!(globbed.len(), 1);
    }

    #[test]
    fn lookup_sees_what_the_bridge_served() {
        // The bridge served `VITE_{A,B}` from this env; the stored set must be
        // the one a lookup re-evaluates, or a change of VITE_A would hit.
        let none = |_: &OsStr| false;
        let full = [("VITE_A", "1"), ("VITE_B", "2"), ("VITE_C", "3")];
        let env = EnvView::new(full.map(|(k, v)| (k.into(), v.into())), &none);
        let query = EnvQuery::Glob(b"VITE_{A,B}".to_vec());
        let served: BTreeMap<OsString, OsString> = [("VITE_A", "1"), ("VITE_B", "2")]
            .map(|(k, v)| (k.into(), v.into()))
            .into_iter()
            .collect();
        assert_eq!(env.query(&query).expect("valid"), served_matches(&served));
        let changed = [("VITE_A", "9"), ("VITE_B", "2")];
        let env = EnvView::new(changed.map(|(k, v)| (k.into(), v.into())), &none);
        assert_ne!(env.query(&query).expect("valid"), served_matches(&served));
        let env = EnvView::new(full.map(|(k, v)| (k.into(), v.into())), &none);
        assert!(env.query(&EnvQuery::Glob(b"VITE_{".to_vec())).is_err());
    }
}

//! Answering `GetEnv` / `GetEnvs` from the runner's full environment, with
//! the rule that user configuration wins: a name the env policy calls
//! untracked (user `untrackedEnv` or the default pass-through list) is never
//! recorded as tracked and never appears in a `GetEnvs` match-set.
//! The name matcher is `vp_ipc`'s, which the cache also uses to re-evaluate
//! a recorded query at lookup time.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::rc::Rc;

use vp_ipc::{EnvGlobError, EnvQuery};

/// Tells whether a variable name is untracked by configuration (user
/// `untrackedEnv` globs plus the default pass-through list). Provided by
/// the runner's env module.
pub(crate) type UntrackedPolicy = Rc<dyn Fn(&OsStr) -> bool>;

/// Every variable of `env` selected by `query`, minus untracked names. The
/// matcher is `vp_ipc`'s, the same one the cache re-evaluates stored queries
/// with.
fn match_query<'a>(
    query: &EnvQuery,
    env: impl IntoIterator<Item = (&'a OsStr, &'a OsStr)>,
    is_untracked: &dyn Fn(&OsStr) -> bool,
) -> Result<BTreeMap<OsString, OsString>, EnvGlobError> {
    let matcher = query.matcher()?;
    Ok(env
        .into_iter()
        .filter(|(name, _)| crate::cache::query_selects(&matcher, name, is_untracked))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// The runner's full environment plus the policy, shared by every client
/// connection of every task.
#[derive(Clone)]
pub(crate) struct EnvSource {
    full: Rc<BTreeMap<OsString, OsString>>,
    is_untracked: UntrackedPolicy,
}

impl EnvSource {
    pub(crate) fn new(
        full: Rc<BTreeMap<OsString, OsString>>,
        is_untracked: UntrackedPolicy,
    ) -> Self {
        EnvSource { full, is_untracked }
    }

    pub(crate) fn get(&self, name: &OsStr) -> Option<&OsStr> {
        self.full.get(name).map(OsString::as_os_str)
    }

    pub(crate) fn is_untracked(&self, name: &OsStr) -> bool {
        (self.is_untracked)(name)
    }

    pub(crate) fn query(
        &self,
        query: &EnvQuery,
    ) -> Result<BTreeMap<OsString, OsString>, EnvGlobError> {
        match_query(
            query,
            self.full
                .iter()
                .map(|(k, v)| (k.as_os_str(), v.as_os_str())),
            &*self.is_untracked,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> EnvSource {
        let env = [
            ("VITE_A", "1"),
            ("VITE_TOKEN", "secret"),
            ("VITE_B", "2"),
            ("PATH", "/bin"),
            ("NODE_ENV", "production"),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let policy: UntrackedPolicy = Rc::new(|name: &OsStr| {
            let name = name.to_string_lossy();
            name == "PATH" || name.ends_with("_TOKEN")
        });
        EnvSource::new(Rc::new(env), policy)
    }

    fn names(map: &BTreeMap<OsString, OsString>) -> Vec<String> {
        map.keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn prefix_queries_skip_untracked_names() {
        let got = source()
            .query(&EnvQuery::Prefix(b"VITE_".to_vec()))
            .expect("valid");
        assert_eq!(names(&got), ["VITE_A", "VITE_B"]);
        assert_eq!(got[OsStr::new("VITE_A")], "1");
    }

    #[test]
    fn glob_queries_match_whole_names() {
        let src = source();
        let got = src
            .query(&EnvQuery::Glob(b"*_ENV".to_vec()))
            .expect("valid");
        assert_eq!(names(&got), ["NODE_ENV"]);
        let all = src.query(&EnvQuery::Glob(b"*".to_vec())).expect("valid");
        assert_eq!(names(&all), ["NODE_ENV", "VITE_A", "VITE_B"]);
        let none = src.query(&EnvQuery::Glob(b"VITE".to_vec())).expect("valid");
        assert!(none.is_empty());
    }

    #[test]
    fn bad_globs_are_errors() {
        let err = source()
            .query(&EnvQuery::Glob(b"VITE_[".to_vec()))
            .expect_err("bad glob");
        assert!(
            err.to_string().contains("invalid env glob `VITE_[`"),
            "{err}"
        );
        let err = source()
            .query(&EnvQuery::Glob(b"VITE_{A".to_vec()))
            .expect_err("unclosed braces");
        assert!(err.to_string().contains("has no closing `}`"), "{err}");
    }

    #[test]
    fn alternatives_and_classes_are_served() {
        let src = source();
        let got = src
            .query(&EnvQuery::Glob(b"VITE_{A,B}".to_vec()))
            .expect("valid");
        assert_eq!(names(&got), ["VITE_A", "VITE_B"]);
        let got = src
            .query(&EnvQuery::Glob(b"VITE_[B]".to_vec()))
            .expect("valid");
        assert_eq!(names(&got), ["VITE_B"]);
    }

    #[test]
    fn get_serves_untracked_names_too() {
        let src = source();
        assert_eq!(src.get(OsStr::new("PATH")), Some(OsStr::new("/bin")));
        assert!(src.is_untracked(OsStr::new("PATH")));
        assert_eq!(src.get(OsStr::new("MISSING")), None);
    }
}

//! The remote cache's settings, resolved once per vp invocation: the mode
//! (the CLI flag wins over `VP_REMOTE_CACHE_READ_ONLY`), the server URL and
//! team (environment over the root `vite-task.json`), the token and the
//! signature key (environment only: a secret never sits in a repository
//! file), and the limits. `RemoteConfig::resolve` is the one function that
//! reads them; its `Display` is the redacted summary for `vp cache stats`.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::cache::format_size;
use crate::workspace::RemoteCacheFile;

use super::sign::SigningKey;

pub(crate) const ENV_URL: &str = "VP_REMOTE_CACHE_URL";
pub(crate) const ENV_TOKEN: &str = "VP_REMOTE_CACHE_TOKEN";
pub(crate) const ENV_TEAM: &str = "VP_REMOTE_CACHE_TEAM";
pub(crate) const ENV_SIGNATURE_KEY: &str = "VP_REMOTE_CACHE_SIGNATURE_KEY";
pub(crate) const ENV_READ_ONLY: &str = "VP_REMOTE_CACHE_READ_ONLY";
pub(crate) const ENV_TIMEOUT_MS: &str = "VP_REMOTE_CACHE_TIMEOUT_MS";
pub(crate) const ENV_MAX_ARTIFACT: &str = "VP_REMOTE_CACHE_MAX_ARTIFACT";

/// Connect and per-read timeout when none is configured: long enough for a
/// server across the internet, short enough that a dead one costs a run
/// about this much once (the session stops asking after a failure).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// Largest artifact vp uploads or accepts. The npm server's own default
/// body limit is 100 MiB (`BODY_LIMIT`); larger uploads need it raised.
pub(crate) const DEFAULT_MAX_ARTIFACT: u64 = 256 * 1024 * 1024;
/// The team used when none is configured (the npm server requires one; a
/// Vercel team must be configured explicitly).
pub(crate) const DEFAULT_TEAM: &str = "vp";

/// What vp may do with the remote cache in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemoteMode {
    Off,
    /// Download only: the advice for untrusted jobs (pull requests from
    /// forks), which must never be able to write what others will restore.
    Read,
    ReadWrite,
}

impl RemoteMode {
    pub(crate) fn can_write(self) -> bool {
        self == Self::ReadWrite
    }
}

impl fmt::Display for RemoteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Read => "read",
            Self::ReadWrite => "readwrite",
        })
    }
}

/// How the team is named in requests: Vercel's `teamId=` (ids start with
/// `team_`) or a `slug=`; the npm server accepts either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Team {
    Id(String),
    Slug(String),
}

impl Team {
    fn parse(text: &str) -> Self {
        if text.starts_with("team_") {
            Self::Id(text.to_owned())
        } else {
            Self::Slug(text.to_owned())
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Id(s) | Self::Slug(s) => s,
        }
    }

    pub(crate) fn query(&self) -> (&'static str, &str) {
        match self {
            Self::Id(s) => ("teamId", s),
            Self::Slug(s) => ("slug", s),
        }
    }
}

/// Where a setting came from (shown in the summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Env,
    File,
    Flag,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Env => "environment",
            Self::File => "vite-task.json",
            Self::Flag => "--remote-cache",
            Self::Default => "default",
        })
    }
}

/// A usable remote cache configuration (mode is never `Off` here).
#[derive(Clone, Debug)]
pub(crate) struct RemoteConfig {
    pub(crate) mode: RemoteMode,
    pub(crate) mode_source: Source,
    /// Base URL without a trailing `/` (`https://host[:port][/prefix]`).
    pub(crate) url: String,
    pub(crate) url_source: Source,
    pub(crate) team: Team,
    pub(crate) token: Option<Token>,
    pub(crate) signing: Option<SigningKey>,
    pub(crate) timeout: Duration,
    pub(crate) max_artifact: u64,
}

/// The bearer token. Its `Debug` is redacted so that no log of a config
/// ever carries it.
#[derive(Clone)]
pub(crate) struct Token(String);

impl Token {
    pub(crate) fn new(token: String) -> Self {
        Self(token)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A setting that cannot be used; vp stops before running anything, since a
/// typo here would otherwise silently disable sharing (or enable writing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RemoteConfigError {
    #[error(
        "{source_name} `{value}` is not an http(s) URL: {why}\n(hint: for example `http://127.0.0.1:3000` or `https://cache.example.com`)"
    )]
    BadUrl {
        source_name: String,
        value: String,
        why: &'static str,
    },
    #[error("`{name}` is `{value}`, which is not {expected}\n(hint: {hint})")]
    BadValue {
        name: &'static str,
        value: String,
        expected: &'static str,
        hint: &'static str,
    },
    #[error("`{name}` is not valid UTF-8\n(hint: set it to plain ASCII text)")]
    NotUnicode { name: &'static str },
    #[error(
        "the remote-cache team `{0}` may only contain letters, digits, `-`, `_` and `.`\n(hint: set `VP_REMOTE_CACHE_TEAM` or `remoteCache.team` to your team's id or slug)"
    )]
    BadTeam(String),
}

/// What `resolve` reads: the process environment as pairs (tests pass their
/// own), the root `vite-task.json`'s `remoteCache`, and the CLI flag.
pub(crate) struct RemoteInputs<'a> {
    pub(crate) env: &'a [(OsString, OsString)],
    pub(crate) file: Option<&'a RemoteCacheFile>,
    pub(crate) flag: Option<RemoteMode>,
}

impl RemoteConfig {
    /// `Ok(None)`: no remote cache in this run (no URL anywhere, or
    /// `--remote-cache=off`). Precedence: flag > environment > file > default.
    pub(crate) fn resolve(inputs: &RemoteInputs<'_>) -> Result<Option<Self>, RemoteConfigError> {
        let env = |name: &'static str| -> Result<Option<String>, RemoteConfigError> {
            let Some((_, v)) = inputs.env.iter().rev().find(|(k, _)| k == name) else {
                return Ok(None);
            };
            if v.is_empty() {
                // An empty variable is "unset" (CI templates often export
                // empty secrets for forks).
                return Ok(None);
            }
            v.to_str()
                .map(|s| Some(s.to_owned()))
                .ok_or(RemoteConfigError::NotUnicode { name })
        };
        let (mode, mode_source) = match inputs.flag {
            Some(RemoteMode::Off) => return Ok(None),
            Some(mode) => (mode, Source::Flag),
            None => match env(ENV_READ_ONLY)?.as_deref() {
                None | Some("0" | "false") => (RemoteMode::ReadWrite, Source::Default),
                Some("1" | "true") => (RemoteMode::Read, Source::Env),
                Some(other) => {
                    return Err(RemoteConfigError::BadValue {
                        name: ENV_READ_ONLY,
                        value: other.to_owned(),
                        expected: "`1`, `true`, `0` or `false`",
                        hint: "`VP_REMOTE_CACHE_READ_ONLY=1` downloads without uploading",
                    });
                }
            },
        };
        let file = inputs.file;
        let (url, url_source, source_name) = match env(ENV_URL)? {
            Some(u) => (u, Source::Env, format!("`{ENV_URL}`")),
            None => match file.and_then(|f| f.url.clone()) {
                Some(u) => (
                    u,
                    Source::File,
                    "`remoteCache.url` in vite-task.json".to_owned(),
                ),
                None => return Ok(None),
            },
        };
        let url = normalize_url(&url).map_err(|why| RemoteConfigError::BadUrl {
            source_name,
            value: url.clone(),
            why,
        })?;
        let team = env(ENV_TEAM)?
            .or_else(|| file.and_then(|f| f.team.clone()))
            .unwrap_or_else(|| DEFAULT_TEAM.to_owned());
        // The team becomes a query parameter and, on the npm server, a
        // directory name: refuse anything that would need escaping.
        if team.is_empty()
            || !team
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || team.starts_with('.')
        {
            return Err(RemoteConfigError::BadTeam(team));
        }
        let signing = inputs
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == ENV_SIGNATURE_KEY)
            .filter(|(_, v)| !v.is_empty())
            .map(|(_, v)| SigningKey::new(v.as_bytes().to_vec()));
        let timeout = match env(ENV_TIMEOUT_MS)? {
            None => DEFAULT_TIMEOUT,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(RemoteConfigError::BadValue {
                        name: ENV_TIMEOUT_MS,
                        value: text,
                        expected: "a positive number of milliseconds",
                        hint: "for example `VP_REMOTE_CACHE_TIMEOUT_MS=5000`",
                    });
                }
            },
        };
        let max_artifact = match env(ENV_MAX_ARTIFACT)? {
            None => DEFAULT_MAX_ARTIFACT,
            Some(text) => match crate::cache::parse_size(&text) {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(RemoteConfigError::BadValue {
                        name: ENV_MAX_ARTIFACT,
                        value: text,
                        expected: "a size",
                        hint: "use `100MB`, `1GiB` or a number of bytes",
                    });
                }
            },
        };
        Ok(Some(Self {
            mode,
            mode_source,
            url,
            url_source,
            team: Team::parse(&team),
            token: env(ENV_TOKEN)?.map(Token::new),
            signing,
            timeout,
            max_artifact,
        }))
    }
}

/// Checks the URL's shape (ureq parses it again per request) and drops
/// trailing slashes, so `…/` and `…` address the same endpoints.
fn normalize_url(url: &str) -> Result<String, &'static str> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("it must start with `http://` or `https://`")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("it has no host");
    }
    if authority.contains('@') {
        return Err("credentials in the URL would be logged; use `VP_REMOTE_CACHE_TOKEN`");
    }
    if rest.contains(['?', '#', ' ']) {
        return Err("it must not contain a query, a fragment or spaces");
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err("its port is not a number from 0 to 65535");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl fmt::Display for RemoteConfig {
    /// The redacted summary: never the token or the key, only whether they
    /// are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (param, team) = self.team.query();
        writeln!(f, "remote cache: {} (from {})", self.url, self.url_source)?;
        writeln!(f, "  mode: {} (from {})", self.mode, self.mode_source)?;
        writeln!(f, "  team: {team} (sent as `{param}`)")?;
        let set = |b: bool| if b { "set (redacted)" } else { "not set" };
        writeln!(f, "  token: {}", set(self.token.is_some()))?;
        writeln!(
            f,
            "  signature key: {}",
            if self.signing.is_some() {
                "set (uploads signed, unsigned downloads rejected)"
            } else {
                "not set"
            }
        )?;
        writeln!(f, "  timeout: {} ms", self.timeout.as_millis())?;
        write!(f, "  max artifact: {}", format_size(self.max_artifact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn resolve(
        pairs: &[(&str, &str)],
        file: Option<&RemoteCacheFile>,
        flag: Option<RemoteMode>,
    ) -> Result<Option<RemoteConfig>, RemoteConfigError> {
        RemoteConfig::resolve(&RemoteInputs {
            env: &env(pairs),
            file,
            flag,
        })
    }

    #[test]
    fn no_url_means_no_remote_cache() {
        assert!(resolve(&[], None, None).expect("valid").is_none());
        assert!(
            resolve(&[(ENV_TOKEN, "t")], None, Some(RemoteMode::ReadWrite))
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn env_wins_over_file_and_flag_over_env() {
        let file = RemoteCacheFile {
            url: Some("https://file.example/".into()),
            team: Some("web".into()),
            ..RemoteCacheFile::default()
        };
        let c = resolve(&[], Some(&file), None)
            .expect("valid")
            .expect("configured");
        assert_eq!(c.url, "https://file.example");
        assert_eq!(c.url_source, Source::File);
        assert_eq!(c.team, Team::Slug("web".into()));
        assert_eq!(c.mode, RemoteMode::ReadWrite);

        let c = resolve(
            &[
                (ENV_URL, "http://127.0.0.1:3000"),
                (ENV_TEAM, "team_abc"),
                (ENV_READ_ONLY, "1"),
            ],
            Some(&file),
            None,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(c.url, "http://127.0.0.1:3000");
        assert_eq!(c.team, Team::Id("team_abc".into()));
        assert_eq!(c.team.query(), ("teamId", "team_abc"));
        assert_eq!(c.mode, RemoteMode::Read);

        let c = resolve(
            &[(ENV_URL, "http://h"), (ENV_READ_ONLY, "1")],
            None,
            Some(RemoteMode::ReadWrite),
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(
            (c.mode, c.mode_source),
            (RemoteMode::ReadWrite, Source::Flag)
        );
        assert!(
            resolve(&[(ENV_URL, "http://h")], None, Some(RemoteMode::Off))
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn malformed_values_are_clear_errors() {
        let e = resolve(&[(ENV_URL, "ftp://x")], None, None).expect_err("bad");
        assert!(e.to_string().contains("VP_REMOTE_CACHE_URL"), "{e}");
        assert!(e.to_string().contains("http://"), "{e}");
        let e = resolve(&[(ENV_URL, "http://user:pw@h")], None, None).expect_err("bad");
        assert!(e.to_string().contains("credentials"), "{e}");
        let e = resolve(&[(ENV_URL, "http://h:99999")], None, None).expect_err("bad");
        assert!(e.to_string().contains("port"), "{e}");
        let e = resolve(
            &[(ENV_URL, "http://h"), (ENV_MAX_ARTIFACT, "lots")],
            None,
            None,
        )
        .expect_err("bad");
        assert!(
            e.to_string().contains("VP_REMOTE_CACHE_MAX_ARTIFACT"),
            "{e}"
        );
        let e =
            resolve(&[(ENV_URL, "http://h"), (ENV_TIMEOUT_MS, "2s")], None, None).expect_err("bad");
        assert!(e.to_string().contains("milliseconds"), "{e}");
        let e =
            resolve(&[(ENV_URL, "http://h"), (ENV_READ_ONLY, "yes")], None, None).expect_err("bad");
        assert!(e.to_string().contains("VP_REMOTE_CACHE_READ_ONLY"), "{e}");
        let e = resolve(&[(ENV_URL, "http://h"), (ENV_TEAM, "../x")], None, None).expect_err("bad");
        assert!(matches!(e, RemoteConfigError::BadTeam(_)), "{e}");
        let file = RemoteCacheFile {
            url: Some("localhost:3000".into()),
            ..RemoteCacheFile::default()
        };
        let e = resolve(&[], Some(&file), None).expect_err("bad");
        assert!(e.to_string().contains("remoteCache.url"), "{e}");
    }

    #[test]
    fn limits_parse() {
        let c = resolve(
            &[
                (ENV_URL, "http://h"),
                (ENV_MAX_ARTIFACT, "10MiB"),
                (ENV_TIMEOUT_MS, "250"),
                (ENV_TEAM, ""),
            ],
            None,
            None,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(c.max_artifact, 10 * 1024 * 1024);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.team, Team::Slug(DEFAULT_TEAM.into()));
    }

    #[test]
    fn summary_redacts_secrets() {
        let c = resolve(
            &[
                (ENV_URL, "http://h"),
                (ENV_TOKEN, "tok-123456"),
                (ENV_SIGNATURE_KEY, "sig-abcdef"),
            ],
            None,
            None,
        )
        .expect("valid")
        .expect("configured");
        let shown = c.to_string();
        assert!(
            !shown.contains("tok-123456") && !shown.contains("sig-abcdef"),
            "{shown}"
        );
        assert!(shown.contains("token: set (redacted)"), "{shown}");
        assert!(
            shown.contains("remote cache: http://h (from environment)"),
            "{shown}"
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("sig-abcdef") && !debug.contains("tok-123456"),
            "{debug}"
        );
    }
}

//! `vite-task.json`: the task definitions of one package, compatible with
//! vite-task's schema. Parsing is strict: an unknown key or a wrong type is an
//! error naming the file, line, column and key path, because a silently
//! ignored typo (`dependOn`) makes a cache wrong in ways nobody notices.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::error::WorkspaceError;
use crate::regular_file;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskConfigFile {
    /// Root-only: which kinds of tasks are cached by default.
    #[serde(default)]
    pub(crate) cache: Option<CacheSetting>,
    /// Root-only: where the shared remote cache is (`docs/remote-cache.md`).
    #[serde(default, rename = "remoteCache")]
    pub(crate) remote_cache: Option<RemoteCacheFile>,
    /// Root-only: whether a script's `pre<name>`/`post<name>` scripts run
    /// around it, as npm runs them (`None`: the default, on).
    #[serde(default, rename = "enablePrePostScripts")]
    pub(crate) enable_pre_post_scripts: Option<bool>,
    #[serde(default)]
    pub(crate) tasks: BTreeMap<String, TaskDefinition>,
}

/// `"cache": true | false | { "scripts": bool, "tasks": bool }`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(
    untagged,
    expecting = "`true`, `false` or an object `{ \"scripts\": bool, \"tasks\": bool }`"
)]
pub(crate) enum CacheSetting {
    All(bool),
    Kinds(CacheKinds),
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheKinds {
    #[serde(default)]
    pub(crate) scripts: bool,
    #[serde(default = "yes")]
    pub(crate) tasks: bool,
}

/// `"remoteCache": { "url": "https://…", "team": "…" }`. Only the address
/// and team are allowed in a file the repository commits: the token comes
/// from `VP_REMOTE_CACHE_TOKEN`, so a `token` key is an error of its own.
#[derive(Debug, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoteCacheFile {
    pub(crate) url: Option<String>,
    pub(crate) team: Option<String>,
    /// Accepted by the parser only to be refused with a precise message.
    #[serde(default)]
    pub(crate) token: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl CacheSetting {
    /// (cache scripts, cache tasks)
    pub(crate) fn kinds(self) -> (bool, bool) {
        match self {
            CacheSetting::All(b) => (b, b),
            CacheSetting::Kinds(k) => (k.scripts, k.tasks),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TaskDefinition {
    pub(crate) command: Option<String>,
    pub(crate) cwd: Option<String>,
    #[serde(default)]
    pub(crate) depends_on: Vec<String>,
    pub(crate) cache: Option<bool>,
    #[serde(default)]
    pub(crate) env: Vec<String>,
    #[serde(default)]
    pub(crate) untracked_env: Vec<String>,
    pub(crate) input: Option<Vec<GlobEntry>>,
    pub(crate) output: Option<Vec<GlobEntry>>,
    /// A long-running task (`vite dev`, `tsc --watch`): `vp run --watch`
    /// starts it once and never restarts it on an edit (docs/watch.md). A
    /// plain run treats it like any other task.
    pub(crate) persistent: Option<bool>,
}

/// One entry of `input`/`output`: a glob (`!` excludes) or `{ "auto": bool }`.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(untagged, expecting = "a glob string or `{ \"auto\": true }`")]
pub(crate) enum GlobEntry {
    Glob(String),
    Auto(AutoFlag),
}

#[derive(Debug, Deserialize, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoFlag {
    pub(crate) auto: bool,
}

pub(crate) fn read(path: &Path, is_root: bool) -> Result<TaskConfigFile, WorkspaceError> {
    let text = regular_file::read_to_string(path).map_err(|source| WorkspaceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, is_root)
}

/// `text` with its `//` and `/* */` comments blanked out (each comment
/// byte becomes a space, and each line break in a block comment stays one,
/// so an error's line and column still point into the file): the file may
/// carry comments, as `tsconfig.json` does. An unterminated block comment
/// is an error at the end of the file.
fn without_comments(text: &str, path: &Path) -> Result<String, WorkspaceError> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(text.len());
    match json_comments::CommentSettings::c_style()
        .strip_comments(text.as_bytes())
        .read_to_end(&mut out)
    {
        Ok(_) => {
            for (blank, original) in out.iter_mut().zip(text.bytes()) {
                if original == b'\n' {
                    *blank = b'\n';
                }
            }
            // Only bytes inside comments were replaced, each by a space.
            Ok(String::from_utf8(out).unwrap_or_else(|_| text.to_owned()))
        }
        Err(_) => Err(WorkspaceError::Syntax {
            path: path.to_path_buf(),
            line: text.lines().count().max(1),
            column: text.lines().last().map_or(1, |l| l.chars().count() + 1),
            message: "a comment or string is not closed before the end of the file".to_owned(),
        }),
    }
}

/// serde's message in the file's terms: "expected struct TaskDefinition with
/// 9 elements" names a Rust type; the user wrote JSON, where it is an object.
fn readable(message: &str) -> String {
    let Some(at) = message.find("expected struct ") else {
        return message.to_owned();
    };
    let head = &message[..at];
    // `invalid length 0, ` is what serde says of an array given for a struct.
    let head = if head.starts_with("invalid length ") {
        "invalid type: array, "
    } else {
        head
    };
    format!("{head}expected an object")
}

fn parse(text: &str, path: &Path, is_root: bool) -> Result<TaskConfigFile, WorkspaceError> {
    let text = &without_comments(text, path)?;
    // serde would read a struct from an array too (`[]` was a valid, empty
    // file); the file is an object.
    if let Some((at, found)) = text.char_indices().find(|(_, c)| !c.is_whitespace())
        && found != '{'
    {
        let line = text[..at].matches('\n').count() + 1;
        let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
        return Err(WorkspaceError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: "the file must hold one JSON object: `{ \"tasks\": { ... } }`".to_owned(),
        });
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let file: TaskConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return super::manifest::json_error(path, &inner);
        }
        WorkspaceError::Config {
            path: path.to_path_buf(),
            line: inner.line(),
            column: inner.column(),
            key,
            message: readable(
                inner
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or_default(),
            ),
        }
    })?;
    // Workspace-wide settings a package's file must not appear to change
    // for itself alone (`remoteCache`, below, has more rules).
    let root_only = [
        (
            "cache",
            file.cache.is_some(),
            "move it there, or set `cache` on a single task under `tasks`",
        ),
        (
            "enablePrePostScripts",
            file.enable_pre_post_scripts.is_some(),
            "move it there",
        ),
    ];
    for (key, present, hint) in root_only {
        if !is_root && present {
            let (line, column) = top_level_key_position(text, key).unwrap_or((1, 1));
            return Err(WorkspaceError::Config {
                path: path.to_path_buf(),
                line,
                column,
                key: key.to_owned(),
                message: format!(
                    "`{key}` is a workspace-wide setting and is only allowed in the \
                     workspace root's vite-task.json (hint: {hint})"
                ),
            });
        }
    }
    if let Some(remote) = &file.remote_cache {
        let (line, column) = top_level_key_position(text, "remoteCache").unwrap_or((1, 1));
        let message = if !is_root {
            Some(
                "`remoteCache` is a workspace-wide setting and is only allowed in the workspace \
                 root's vite-task.json (hint: move it there)",
            )
        } else if remote.token.is_some() {
            Some(
                "a remote-cache token must never be committed in a file (hint: remove `token` \
                 and set `VP_REMOTE_CACHE_TOKEN` in the environment, e.g. a CI secret)",
            )
        } else {
            None
        };
        if let Some(message) = message {
            let key = if is_root {
                "remoteCache.token"
            } else {
                "remoteCache"
            };
            return Err(WorkspaceError::Config {
                path: path.to_path_buf(),
                line,
                column,
                key: key.to_owned(),
                message: message.to_owned(),
            });
        }
    }
    for (name, task) in &file.tasks {
        if task.cache == Some(false) {
            for (field, present) in [
                ("input", task.input.is_some()),
                ("output", task.output.is_some()),
            ] {
                if present {
                    let (line, column) = top_level_key_position(text, "tasks").unwrap_or((1, 1));
                    return Err(WorkspaceError::Config {
                        path: path.to_path_buf(),
                        line,
                        column,
                        key: format!("tasks.{name}.{field}"),
                        message: format!(
                            "task `{name}` sets `cache: false`, so `{field}` would have no effect \
                             (hint: remove `{field}` or enable the cache for this task)"
                        ),
                    });
                }
            }
        }
    }
    Ok(file)
}

/// 1-based (line, column) of a key of the top-level object, found by a small
/// scan that skips strings and nested values.
fn top_level_key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let needle = format!("\"{key}\"");
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                if depth == 1 && text[i..].starts_with(&needle) {
                    let before = &text[..i];
                    let line = before.matches('\n').count() + 1;
                    let column = i - before.rfind('\n').map_or(0, |n| n + 1) + 1;
                    return Some((line, column));
                }
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, is_root: bool) -> String {
        parse(text, Path::new("/w/vite-task.json"), is_root)
            .expect_err("the test input is invalid")
            .to_string()
    }

    /// Probe: the example in docs/config.md, copied as is, failed with "key
    /// must be a string" at its first comment.
    #[test]
    fn the_documented_example_with_its_comments_parses() {
        let doc = include_str!("../../../docs/config.md");
        let start = doc.find("```jsonc\n").expect("a jsonc block") + "```jsonc\n".len();
        let example = &doc[start..start + doc[start..].find("```").expect("its end")];
        let f = parse(example, Path::new("/w/vite-task.json"), true).expect("the example parses");
        assert!(f.tasks.contains_key("build"));
        let after_comment = parse(
            "{\n/* one\n   two */\n\"tasks\": 1\n}",
            Path::new("/w/vite-task.json"),
            true,
        )
        .expect_err("tasks must be an object")
        .to_string();
        assert!(
            after_comment.contains("vite-task.json:4:"),
            "{after_comment}"
        );
        let err =
            parse("{ /* open", Path::new("/w/vite-task.json"), true).expect_err("unterminated");
        assert!(err.to_string().contains("not closed"), "{err}");
    }

    /// Probe: a file holding `[]` was accepted as an empty config, and an
    /// array for a task said "expected struct TaskDefinition with 9
    /// elements".
    #[test]
    fn arrays_for_objects_are_errors_in_json_terms() {
        let p = Path::new("/w/vite-task.json");
        let top = parse("\n  []", p, true)
            .expect_err("not an object")
            .to_string();
        assert!(top.contains("vite-task.json:2:3"), "{top}");
        assert!(top.contains("must hold one JSON object"), "{top}");
        let task = parse(r#"{"tasks": {"build": []}}"#, p, true)
            .expect_err("not an object")
            .to_string();
        assert!(
            task.contains("invalid type: array, expected an object (at key `tasks.build`)"),
            "{task}"
        );
        assert!(!task.contains("struct"), "{task}");
    }

    #[test]
    fn parses_the_full_schema() {
        let f = parse(
            r#"{"cache": {"scripts": true}, "tasks": {"build": {"command": "tsc && vite build",
               "cwd": "src", "dependsOn": ["lint", "utils#build"], "env": ["VITE_*"],
               "untrackedEnv": ["DEBUG"], "input": ["src/**", "!src/gen/**", {"auto": true}],
               "output": ["dist/**"]}}}"#,
            Path::new("vite-task.json"),
            true,
        )
        .expect("the test input is valid");
        assert_eq!(
            f.cache.expect("the test input is valid").kinds(),
            (true, true)
        );
        let b = &f.tasks["build"];
        assert_eq!(b.depends_on, ["lint", "utils#build"]);
        assert_eq!(
            b.input.as_ref().expect("the test input is valid")[2],
            GlobEntry::Auto(AutoFlag { auto: true })
        );
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let e = err(
            "{\n  \"tasks\": {\n    \"build\": { \"dependOn\": [] }\n  }\n}",
            true,
        );
        assert!(e.contains("/w/vite-task.json:3:"), "{e}");
        assert!(e.contains("dependOn"), "{e}");
        assert!(e.contains("tasks.build"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key_path() {
        let e = err(r#"{"tasks": {"build": {"command": 42}}}"#, true);
        assert!(e.contains("tasks.build.command"), "{e}");
        assert!(e.contains("expected a string"), "{e}");
    }

    #[test]
    fn root_only_key_in_a_package_is_an_error_with_its_position() {
        let e = err("{\n  \"tasks\": {},\n  \"cache\": true\n}", false);
        assert!(e.contains("/w/vite-task.json:3:3"), "{e}");
        assert!(e.contains("only allowed in the workspace root"), "{e}");
    }

    #[test]
    fn cache_false_forbids_input() {
        let e = err(
            r#"{"tasks": {"t": {"command": "x", "cache": false, "input": []}}}"#,
            true,
        );
        assert!(e.contains("tasks.t.input"), "{e}");
    }

    #[test]
    fn remote_cache_url_and_team() {
        let f = parse(
            r#"{"remoteCache": {"url": "https://cache.example", "team": "web"}}"#,
            Path::new("vite-task.json"),
            true,
        )
        .expect("the test input is valid");
        let remote = f.remote_cache.expect("the test input is valid");
        assert_eq!(remote.url.as_deref(), Some("https://cache.example"));
        assert_eq!(remote.team.as_deref(), Some("web"));
    }

    #[test]
    fn remote_cache_token_is_refused_with_its_position() {
        let e = err(
            "{\n  \"remoteCache\": { \"url\": \"http://x\", \"token\": \"t\" }\n}",
            true,
        );
        assert!(e.contains("/w/vite-task.json:2:3"), "{e}");
        assert!(e.contains("remoteCache.token"), "{e}");
        assert!(e.contains("VP_REMOTE_CACHE_TOKEN"), "{e}");
    }

    #[test]
    fn remote_cache_unknown_key_and_package_level_are_errors() {
        let e = err("{\n  \"remoteCache\": {\n    \"teem\": \"x\" }\n}", true);
        assert!(e.contains("/w/vite-task.json:3:"), "{e}");
        assert!(e.contains("teem"), "{e}");
        let e = err("{\"remoteCache\": {\"url\": \"http://x\"}}", false);
        assert!(e.contains("only allowed in the workspace root"), "{e}");
    }

    #[test]
    fn enable_pre_post_scripts_is_a_root_bool() {
        let parse_root = |text: &str| {
            parse(text, Path::new("vite-task.json"), true)
                .expect("the test input is valid")
                .enable_pre_post_scripts
        };
        assert_eq!(parse_root("{}"), None);
        assert_eq!(
            parse_root(r#"{"enablePrePostScripts": false}"#),
            Some(false)
        );
        assert_eq!(parse_root(r#"{"enablePrePostScripts": true}"#), Some(true));
        let e = err("{\n  \"enablePrePostScripts\": \"no\"\n}", true);
        assert!(e.contains("/w/vite-task.json:2:"), "{e}");
        assert!(e.contains("expected a boolean"), "{e}");
        assert!(e.contains("at key `enablePrePostScripts`"), "{e}");
    }

    #[test]
    fn enable_pre_post_scripts_in_a_package_is_an_error_with_its_position() {
        let e = err(
            "{\n  \"tasks\": {},\n    \"enablePrePostScripts\": false\n}",
            false,
        );
        assert!(e.contains("/w/vite-task.json:3:5"), "{e}");
        assert!(
            e.contains(
                "`enablePrePostScripts` is a workspace-wide setting and is only allowed in the \
                 workspace root's vite-task.json (hint: move it there)"
            ),
            "{e}"
        );
        assert!(e.contains("(at key `enablePrePostScripts`)"), "{e}");
    }

    #[test]
    fn syntax_error_is_reported() {
        let e = err("{\"tasks\": {", true);
        assert!(e.contains("/w/vite-task.json:1:"), "{e}");
    }

    /// A `vite-task.json` that is no regular file (a FIFO swapped in after
    /// discovery looked) is an error naming the file, not a wait.
    #[test]
    fn a_vite_task_json_that_is_no_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vite-task.json");
        crate::regular_file::special::fifo(&path);
        let err = read(&path, false).expect_err("not a file");
        assert_eq!(err.to_string(), format!("cannot read `{}`", path.display()));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("not a regular file"));
    }
}

//! `package.json`: only the fields vp uses (name, scripts, dependencies,
//! workspaces), read leniently because the file belongs to npm, not to vp.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::WorkspaceError;
use crate::regular_file;

#[derive(Debug, Default)]
pub(crate) struct Manifest {
    pub(crate) name: Option<String>,
    pub(crate) scripts: Vec<(String, String)>,
    /// Every dependency name with its version spec, over all dependency kinds.
    pub(crate) dependencies: Vec<(String, String)>,
    /// `workspaces` (array form or `{ "packages": [...] }`), if present.
    pub(crate) workspaces: Option<Vec<String>>,
}

/// The package a dependency entry `name: spec` installs: `name`, unless
/// the spec is an alias of another package (`"mylib":
/// "workspace:@ws/lib@*"`, `"npm:@ws/lib@^1"`), which pnpm and npm install
/// under the alias's name. The order of a workspace's tasks follows the
/// package, whatever its name in `node_modules`.
pub(crate) fn depended_on<'a>(name: &'a str, spec: &'a str) -> &'a str {
    if let Some(aliased) = spec.strip_prefix("npm:") {
        return package_of(aliased).unwrap_or(name);
    }
    match spec.strip_prefix("workspace:") {
        // `workspace:<range>` is a range of `name` (`*`, `^`, `1.x`,
        // `1.0.0-beta.1`); `workspace:<package>@<range>` an alias.
        Some(aliased) if aliased.contains('@') => package_of(aliased).unwrap_or(name),
        _ => name,
    }
}

/// One entry of a dependency list (npm's deprecated array form):
/// `name`, `name@range`, `@scope/name@range` or `name>=1.0`, as the name
/// and its range. `None` for an empty entry.
fn listed_dependency(entry: &str) -> Option<(String, String)> {
    let entry = entry.trim();
    let end = name_end(entry, |c| {
        c == '@' || c.is_whitespace() || "<>=".contains(c)
    });
    let name = &entry[..end];
    let range = entry[end..].trim().trim_start_matches('@').trim();
    (!name.is_empty() && name != "@").then(|| (name.to_owned(), range.to_owned()))
}

/// Where the package name at the start of `spec` ends: at the first
/// character `stop` accepts after a scope's leading `@` (`@scope/name@^1`).
fn name_end(spec: &str, stop: impl Fn(char) -> bool) -> usize {
    let scoped = usize::from(spec.starts_with('@'));
    spec[scoped..]
        .find(stop)
        .map_or(spec.len(), |at| scoped + at)
}

/// The package name of `<name>[@<range>]` (`@scope/name@^1`), if it is one.
fn package_of(spec: &str) -> Option<&str> {
    let target = &spec[..name_end(spec, |c| c == '@')];
    let valid = !target.is_empty()
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/@".contains(&b));
    valid.then_some(target)
}

pub(crate) fn read(path: &Path) -> Result<Manifest, WorkspaceError> {
    let text = regular_file::read_to_string(path).map_err(|source| WorkspaceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Manifest, WorkspaceError> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
    let Value::Object(obj) = value else {
        return Err(invalid(path, "the top level must be an object"));
    };
    let mut manifest = Manifest::default();
    if let Some(name) = obj.get("name") {
        manifest.name = Some(
            name.as_str()
                .ok_or_else(|| invalid(path, "`name` must be a string"))?
                .to_owned(),
        );
    }
    if let Some(scripts) = obj.get("scripts") {
        let scripts = scripts
            .as_object()
            .ok_or_else(|| invalid(path, "`scripts` must be an object"))?;
        for (name, cmd) in scripts {
            let cmd = cmd
                .as_str()
                .ok_or_else(|| invalid(path, &format!("script `{name}` must be a string")))?;
            manifest.scripts.push((name.clone(), cmd.to_owned()));
        }
    }
    for kind in [
        "dependencies",
        "devDependencies",
        "peerDependencies",
        "optionalDependencies",
    ] {
        // The order of the workspace's tasks comes from these: a field vp
        // skipped (`["b"]`) would let a task run before what it needs.
        match obj.get(kind) {
            None | Some(Value::Null) => {}
            Some(Value::Object(deps)) => {
                for (name, spec) in deps {
                    manifest
                        .dependencies
                        .push((name.clone(), spec.as_str().unwrap_or_default().to_owned()));
                }
            }
            // npm's deprecated forms, read as npm reads them: a list of
            // `name[@range]`, or one string of them.
            Some(Value::Array(items)) => manifest.dependencies.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(listed_dependency),
            ),
            Some(Value::String(list)) => manifest.dependencies.extend(
                list.split(|c: char| c.is_whitespace() || c == ',')
                    .filter_map(listed_dependency),
            ),
            Some(_) => {
                return Err(invalid(
                    path,
                    &format!("`{kind}` must be an object of package names and versions"),
                ));
            }
        }
    }
    manifest.workspaces = match obj.get("workspaces") {
        None => None,
        Some(Value::Array(items)) => Some(string_list(items, path, "workspaces")?),
        Some(Value::Object(o)) => match o.get("packages") {
            Some(Value::Array(items)) => Some(string_list(items, path, "workspaces.packages")?),
            _ => Some(Vec::new()),
        },
        Some(_) => return Err(invalid(path, "`workspaces` must be an array of globs")),
    };
    Ok(manifest)
}

fn string_list(items: &[Value], path: &Path, key: &str) -> Result<Vec<String>, WorkspaceError> {
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(path, &format!("`{key}` must contain only strings")))
        })
        .collect()
}

pub(super) fn json_error(path: &Path, e: &serde_json::Error) -> WorkspaceError {
    WorkspaceError::Syntax {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn invalid(path: &Path, message: &str) -> WorkspaceError {
    WorkspaceError::InvalidManifest {
        path: PathBuf::from(path),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probe: an app that depended on its library through an alias
    /// (`"mylib": "workspace:@ws/lib@*"`) was built before it.
    #[test]
    fn an_alias_depends_on_the_package_it_names() {
        for (spec, want) in [
            ("workspace:*", "mylib"),
            ("workspace:^", "mylib"),
            ("workspace:~1.2.0", "mylib"),
            ("workspace:1.2.3", "mylib"),
            ("workspace:@ws/lib@*", "@ws/lib"),
            ("workspace:lib@^1", "lib"),
            ("npm:@ws/lib@*", "@ws/lib"),
            ("npm:lib", "lib"),
            ("^1.0.0", "mylib"),
            ("file:../lib", "mylib"),
            ("workspace:1.0.0-beta.1", "mylib"),
            ("workspace:1.x", "mylib"),
            ("workspace:1 || 2", "mylib"),
            ("workspace:@ws/lib", "@ws/lib"),
        ] {
            assert_eq!(depended_on("mylib", spec), want, "{spec}");
        }
    }

    /// Probe: a `package.json` or `vite-task.json` starting with a
    /// byte-order mark failed with "expected value" at 1:1.
    #[test]
    fn a_byte_order_mark_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pkg = dir.path().join("package.json");
        std::fs::write(&pkg, "\u{feff}{\"name\":\"a\"}").expect("write");
        assert_eq!(read(&pkg).expect("parses").name.as_deref(), Some("a"));
        let config = dir.path().join("vite-task.json");
        std::fs::write(&config, "\u{feff}{\"tasks\":{}}").expect("write");
        let parsed = super::super::task_config::read(&config, true);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn reads_all_dependency_kinds_and_workspaces_object_form() {
        let m = parse(
            r#"{"name":"a","scripts":{"build":"tsc"},"dependencies":{"b":"workspace:*"},
                "devDependencies":{"c":"^1"},"peerDependencies":{"d":"*"},
                "workspaces":{"packages":["pkgs/*"]}}"#,
            Path::new("package.json"),
        )
        .expect("the test input is valid");
        assert_eq!(m.name.as_deref(), Some("a"));
        assert_eq!(m.scripts, vec![("build".to_owned(), "tsc".to_owned())]);
        let names: Vec<_> = m.dependencies.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "c", "d"]);
        assert_eq!(m.workspaces, Some(vec!["pkgs/*".to_owned()]));
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = parse("{\n  \"name\": ,\n}", Path::new("/w/package.json"))
            .expect_err("the test input is invalid");
        let text = err.to_string();
        assert!(text.contains("/w/package.json:2:"), "{text}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse(r#"{"scripts": []}"#, Path::new("p.json"))
            .expect_err("the test input is invalid");
        assert!(err.to_string().contains("`scripts` must be an object"));
    }

    /// npm's deprecated list forms of a dependency field are read as npm
    /// reads them, so tasks still wait for what they name; `null` is an
    /// absent field; anything else is an error naming the field.
    #[test]
    fn dependency_lists_are_read_and_other_values_are_an_error() {
        let m = parse(
            r#"{"dependencies": ["lib", "@ws/util@^1", "other>=2", " "],
                "devDependencies": "a, b  c",
                "peerDependencies": null}"#,
            Path::new("p.json"),
        )
        .expect("lists are valid");
        let pair = |n: &str, r: &str| (n.to_owned(), r.to_owned());
        assert_eq!(
            m.dependencies,
            vec![
                pair("lib", ""),
                pair("@ws/util", "^1"),
                pair("other", ">=2"),
                pair("a", ""),
                pair("b", ""),
                pair("c", ""),
            ]
        );
        for kind in [
            "dependencies",
            "devDependencies",
            "peerDependencies",
            "optionalDependencies",
        ] {
            let err = parse(&format!(r#"{{"{kind}": 5}}"#), Path::new("p.json"))
                .expect_err("a number is invalid");
            assert!(
                err.to_string().contains(&format!(
                    "`{kind}` must be an object of package names and versions"
                )),
                "{err}"
            );
        }
    }

    /// A `package.json` that is no regular file (a FIFO swapped in after
    /// discovery looked) is an error naming the file, not a wait.
    #[test]
    fn a_package_json_that_is_no_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("package.json");
        crate::regular_file::special::fifo(&path);
        let err = read(&path).expect_err("not a file");
        assert_eq!(err.to_string(), format!("cannot read `{}`", path.display()));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("not a regular file"));
    }
}

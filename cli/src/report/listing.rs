//! The output of the commands that print data rather than run tasks: `vp
//! run` without a task (the tasks one can run) and `vp run --last-details`.
//! Data goes to stdout, so it can be piped.

use std::io::Write;
use std::path::Path;

/// One task as `vp run` lists it.
pub(crate) struct ListedTask {
    pub(crate) name: String,
    /// `None`: it only runs its `dependsOn`.
    pub(crate) command: Option<String>,
    /// A package.json script rather than a vite-task.json task.
    pub(crate) script: bool,
}

/// A package's tasks as `vp run` lists them.
pub(crate) struct ListedPackage {
    pub(crate) name: String,
    /// Workspace-relative; empty for the root.
    pub(crate) rel_dir: String,
    pub(crate) tasks: Vec<ListedTask>,
}

/// `vp run` without a task.
pub(crate) fn task_list(out: &mut dyn Write, packages: &[ListedPackage]) -> std::io::Result<()> {
    let mut any = false;
    for pkg in packages.iter().filter(|p| !p.tasks.is_empty()) {
        any = true;
        let place = if pkg.rel_dir.is_empty() {
            String::new()
        } else {
            format!(" ({})", pkg.rel_dir)
        };
        writeln!(out, "{}{place}:", pkg.name)?;
        let width = pkg.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &pkg.tasks {
            let kind = if t.script { "  (script)" } else { "" };
            writeln!(
                out,
                "  {:<width$}  {}{kind}",
                t.name,
                t.command.as_deref().unwrap_or("(runs its dependsOn only)")
            )?;
        }
    }
    if any {
        writeln!(
            out,
            "\nrun one with `vp run <task>` or `vp run <package>#<task>`"
        )
    } else {
        writeln!(
            out,
            "no tasks found: add `scripts` to package.json or `tasks` to vite-task.json"
        )
    }
}

/// `vp run --last-details`: what the last run recorded, if anything.
pub(crate) fn last_details(
    out: &mut dyn Write,
    recorded: Option<&str>,
    cache_dir: &Path,
) -> std::io::Result<()> {
    match recorded {
        Some(text) => write!(out, "{text}"),
        None => writeln!(out, "no previous run recorded in `{}`", cache_dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut buf).expect("writing to memory");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn tasks_are_aligned_per_package() {
        let pkgs = [ListedPackage {
            name: "app".into(),
            rel_dir: "packages/app".into(),
            tasks: vec![
                ListedTask {
                    name: "build".into(),
                    command: Some("vite build".into()),
                    script: true,
                },
                ListedTask {
                    name: "all".into(),
                    command: None,
                    script: false,
                },
            ],
        }];
        assert_eq!(
            text(|o| task_list(o, &pkgs)),
            "app (packages/app):\n  build  vite build  (script)\n  all    (runs its dependsOn only)\n\n\
             run one with `vp run <task>` or `vp run <package>#<task>`\n"
        );
        assert!(text(|o| task_list(o, &[])).starts_with("no tasks found"));
    }

    #[test]
    fn no_recorded_run_names_the_cache_dir() {
        assert_eq!(
            text(|o| last_details(o, None, Path::new("/w/.cache/vp"))),
            "no previous run recorded in `/w/.cache/vp`\n"
        );
        assert_eq!(
            text(|o| last_details(o, Some("a\n"), Path::new("/x"))),
            "a\n"
        );
    }
}

//! npm's pre and post scripts: for script `build`, the scripts `prebuild`
//! and `postbuild` of the same `package.json` run before and after it.
//!
//! The rule is npm's (checked against npm 11), one level deep: `build` gets
//! `prebuild` and `postbuild`, but `prebuild` run as the pre script of `build`
//! gets no `preprebuild`. A script named `pre…` gets no special treatment when
//! it is itself the script being run: `vp run prebuild` runs `preprebuild`
//! first, as `npm run prebuild` does. An empty or blank hook is skipped (npm
//! skips an empty one and runs a blank one as a no-op). `task_graph` attaches the `ScriptHooks` to a planned task; `run` turns
//! them into items before and after the task's own.

/// One script run around another (`prebuild` around `build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookScript {
    /// Its name in `scripts` (`prebuild`), for messages.
    pub(crate) name: String,
    pub(crate) command: String,
}

/// The scripts that run before and after a task's own command. Both `None`
/// for a task that is not a `package.json` script, and when the workspace
/// root turns them off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScriptHooks {
    pub(crate) pre: Option<HookScript>,
    pub(crate) post: Option<HookScript>,
}

impl ScriptHooks {
    /// The hooks npm would run around script `name`, given a package's
    /// `scripts`.
    pub(crate) fn of(scripts: &[(String, String)], name: &str) -> ScriptHooks {
        let find = |hook: String| {
            scripts
                .iter()
                .find(|(n, command)| *n == hook && !command.trim().is_empty())
                .map(|(_, command)| HookScript {
                    name: hook.clone(),
                    command: command.clone(),
                })
        };
        ScriptHooks {
            pre: find(format!("pre{name}")),
            post: find(format!("post{name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn hook(name: &str, command: &str) -> Option<HookScript> {
        Some(HookScript {
            name: name.to_owned(),
            command: command.to_owned(),
        })
    }

    #[test]
    fn pre_and_post_of_a_script() {
        let s = scripts(&[
            ("prebuild", "echo pre"),
            ("build", "echo build"),
            ("postbuild", "echo post"),
            ("pretest", "echo other"),
        ]);
        assert_eq!(
            ScriptHooks::of(&s, "build"),
            ScriptHooks {
                pre: hook("prebuild", "echo pre"),
                post: hook("postbuild", "echo post"),
            }
        );
    }

    #[test]
    fn only_the_hooks_that_exist() {
        let s = scripts(&[("build", "b"), ("postbuild", "p")]);
        let hooks = ScriptHooks::of(&s, "build");
        assert_eq!(hooks.pre, None);
        assert_eq!(hooks.post, hook("postbuild", "p"));
        assert_eq!(
            ScriptHooks::of(&scripts(&[("build", "b")]), "build"),
            ScriptHooks::default()
        );
    }

    #[test]
    fn a_pre_script_run_by_name_gets_its_own_hooks_like_npm() {
        // `npm run prebuild` runs `preprebuild`, `prebuild`, `postprebuild`.
        let s = scripts(&[
            ("preprebuild", "pp"),
            ("prebuild", "p"),
            ("postprebuild", "ap"),
            ("build", "b"),
        ]);
        assert_eq!(
            ScriptHooks::of(&s, "prebuild"),
            ScriptHooks {
                pre: hook("preprebuild", "pp"),
                post: hook("postprebuild", "ap"),
            }
        );
    }

    #[test]
    fn the_rule_goes_by_name_only_like_npm() {
        // `npm run view` runs the `preview` script first.
        let s = scripts(&[("preview", "vite preview"), ("view", "v")]);
        assert_eq!(
            ScriptHooks::of(&s, "view").pre,
            hook("preview", "vite preview")
        );
    }

    #[test]
    fn an_empty_or_blank_hook_is_skipped() {
        // npm skips the empty one and runs the blank one as a no-op; vp
        // cannot spawn an empty command, so both are skipped.
        let s = scripts(&[("prebuild", ""), ("build", "b"), ("postbuild", " \t")]);
        assert_eq!(ScriptHooks::of(&s, "build"), ScriptHooks::default());
    }
}

//! Unit tests of `run::command`.

use super::*;
use crate::graph::{HookScript, PlannedTask, ScriptHooks};

fn task(hooks: ScriptHooks, command: Option<&str>) -> PlannedTask {
    PlannedTask {
        pkg: 0,
        label: "app#build".to_owned(),
        kind: TaskKind::Script,
        command: command.map(str::to_owned),
        hooks,
        def: crate::workspace::TaskDefinition::default(),
        deps: Vec::new(),
    }
}

fn hook(name: &str, command: &str) -> Option<HookScript> {
    Some(HookScript {
        name: name.to_owned(),
        command: command.to_owned(),
    })
}

fn texts(items: &[command_line::CommandItem]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn pre_then_own_then_post_and_extra_args_only_to_its_own_command() {
    let t = task(
        ScriptHooks {
            pre: hook("prebuild", "gen a && gen b"),
            post: hook("postbuild", "echo done"),
        },
        Some("tsc && vite build"),
    );
    let items = task_items(&t, &["--x".to_owned()]).expect("the test input is valid");
    assert_eq!(
        texts(&items),
        ["gen a", "gen b", "tsc", "vite build --x", "echo done"]
    );
}

#[test]
fn without_hooks_or_command() {
    let t = task(ScriptHooks::default(), Some("vite build"));
    let items = task_items(&t, &[]).expect("the test input is valid");
    assert_eq!(texts(&items), ["vite build"]);
    let group = task(
        ScriptHooks {
            pre: hook("preall", "echo never"),
            post: None,
        },
        None,
    );
    assert!(
        task_items(&group, &[])
            .expect("the test input is valid")
            .is_empty()
    );
}

#[test]
fn an_invalid_hook_names_the_task_and_the_script() {
    let t = task(
        ScriptHooks {
            pre: None,
            post: hook("postbuild", "echo 'x"),
        },
        Some("vite build"),
    );
    let e = task_items(&t, &[]).expect_err("the test input is invalid");
    assert!(
        e.to_string()
            .starts_with("task `app#build`: its post script `postbuild` has an invalid command\n(hint: vp runs it after the task, as npm does;"),
        "{e}"
    );
    assert!(matches!(
        e.downcast_ref::<command_line::CommandLineError>(),
        Some(command_line::CommandLineError::UnterminatedQuote { .. })
    ));
}

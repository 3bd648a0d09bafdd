//! Colours under a terminal: tools stay coloured although vp gives them pipes, a replay keeps
//! the colours on a terminal and loses them when piped, and whether vp runs on a terminal never
//! changes the cache key. The terminal is a real pseudo-terminal from util-linux `script`.

use crate::harness::{NodeModules, Output, Run, Workspace, strip_ansi};

const HIT: &str = "◉ cache hit, replaying";
const MISS: &str = "○ cache miss";

/// `vp <args>` under a pseudo-terminal (`Workspace::vp_on_terminal`), with no colour choice.
fn vp_on_terminal(ws: &Workspace, args: &str) -> Run {
    without_colour_choice(ws.vp_on_terminal(args))
}

/// The harness sets `NO_COLOR=1`; these tests are about what happens without a choice of the
/// user's, and the machine running the tests must not decide either: a `FORCE_COLOR`, or a `CI`
/// variable, which Vite's colour library (picocolors) takes as "colours are fine" on a pipe.
fn without_colour_choice(run: Run) -> Run {
    run.env_remove("NO_COLOR")
        .env_remove("FORCE_COLOR")
        .env_remove("CI")
}

fn terminal_text(out: &Output) -> String {
    out.stdout.replace("\r\n", "\n")
}

fn has_escapes(text: &str) -> bool {
    text.contains('\u{1b}')
}

#[test]
fn vite_is_coloured_live_and_on_a_replay_on_a_terminal_and_a_piped_hit_is_plain() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);

    let live = vp_on_terminal(&ws, "build").output();
    live.assert_success();
    let live_text = terminal_text(&live);
    assert!(live_text.contains(MISS), "{live}");
    // Vite's file list: `dist/` dimmed, a file name in green (picocolors under FORCE_COLOR).
    assert!(live_text.contains("\u{1b}[2mdist/\u{1b}[0m"), "{live}");

    let replay = vp_on_terminal(&ws, "build").output();
    replay.assert_success();
    let replay_text = terminal_text(&replay);
    assert!(replay_text.contains(HIT), "{replay}");
    assert!(replay_text.contains("\u{1b}[2mdist/\u{1b}[0m"), "{replay}");

    // Piped right after: the same entry (the terminal is not in the key), replayed plain.
    let piped = without_colour_choice(ws.vp(["build"])).output();
    piped.assert_success();
    assert!(piped.stderr.contains(HIT), "{piped}");
    assert!(!has_escapes(&piped.stdout), "{piped}");
    assert!(!has_escapes(&piped.stderr), "{piped}");
    // Nothing but the escape codes was taken out: the text is what the terminal showed.
    let shown = strip_ansi(&replay_text);
    let vite_lines = shown.lines().filter(|l| !l.starts_with('$'));
    let piped_lines = piped.combined();
    for line in vite_lines {
        assert!(piped_lines.contains(line), "{line:?} missing from\n{piped}");
    }
    assert!(piped.stdout.contains("dist/index.html"), "{piped}");
}

#[test]
fn a_piped_first_run_is_a_hit_on_a_terminal() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    let piped = without_colour_choice(ws.vp(["build"])).output();
    piped.assert_success();
    assert!(piped.stderr.contains(MISS), "{piped}");
    // Live output through pipes is what the tools chose: no terminal, no FORCE_COLOR, plain.
    assert!(!has_escapes(&piped.combined()), "{piped}");
    let on_terminal = vp_on_terminal(&ws, "build").output();
    on_terminal.assert_success();
    assert!(terminal_text(&on_terminal).contains(HIT), "{on_terminal}");
}

/// An uncached task that shows what a tool sees: the variable, and Node's own colouring.
const SHOW_COLOUR: &str = r#"const util = require('node:util');
console.log('FORCE_COLOR=' + process.env.FORCE_COLOR + ' NO_COLOR=' + process.env.NO_COLOR);
console.log({ n: 42 }, util.styleText('green', 'styled'));
"#;

#[test]
fn no_color_wins_and_a_users_force_color_is_kept() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.write("show-colour.cjs", SHOW_COLOUR);
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "show": { "command": "node show-colour.cjs", "cache": false } } }"#,
    );
    let plain = terminal_text(&vp_on_terminal(&ws, "run show").output());
    assert!(
        plain.contains("FORCE_COLOR=1 NO_COLOR=undefined"),
        "{plain}"
    );
    assert!(
        plain.contains("{ n: \u{1b}[33m42\u{1b}[39m } \u{1b}[32mstyled\u{1b}[39m"),
        "{plain}"
    );

    let no_color = terminal_text(
        &vp_on_terminal(&ws, "run show")
            .env("NO_COLOR", "1")
            .output(),
    );
    assert!(
        no_color.contains("FORCE_COLOR=undefined NO_COLOR=1"),
        "{no_color}"
    );
    assert!(no_color.contains("{ n: 42 } styled"), "{no_color}");

    let forced = terminal_text(
        &vp_on_terminal(&ws, "run show")
            .env("FORCE_COLOR", "0")
            .output(),
    );
    assert!(
        forced.contains("FORCE_COLOR=0 NO_COLOR=undefined"),
        "{forced}"
    );
    assert!(forced.contains("{ n: 42 } styled"), "{forced}");

    let piped = without_colour_choice(ws.vp(["run", "show"])).output();
    piped.assert_success();
    assert!(
        piped
            .stdout
            .contains("FORCE_COLOR=undefined NO_COLOR=undefined"),
        "{piped}"
    );
}

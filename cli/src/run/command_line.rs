//! From a task's command string to the items vp spawns.
//!
//! `a && b` becomes two items run in order (each gets its own cache entry).
//! An item that is a plain program with arguments is spawned directly — no
//! shell process, no quoting surprises; anything using shell syntax (pipes,
//! redirects, globs, variables, `VAR=x cmd`) runs through `sh -c`. A command
//! with a shell builtin in it (`cd sub && node x.js`, `export`, `exit`) runs
//! whole through `sh -c`: a builtin is no program to spawn, and what `cd` or
//! `export` changes must reach the items after it, as `npm run` does.

use std::fmt;

/// One command of a task, ready to resolve and spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandItem {
    /// Spawned directly: `argv[0]` is resolved by vp. `text` is the item as
    /// the user wrote it (plus extra args), for headers and messages.
    Direct { argv: Vec<String>, text: String },
    /// Needs a shell: run as `sh -c <script>`.
    Shell { script: String },
}

impl fmt::Display for CommandItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandItem::Direct { text, .. } => f.write_str(text),
            CommandItem::Shell { script } => f.write_str(script),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CommandLineError {
    #[error("the command is empty")]
    Empty,
    #[error("the command has an unterminated quote: {command}")]
    UnterminatedQuote { command: String },
}

/// Splits `command` into items and appends `extra` args to the last one.
pub(crate) fn parse(command: &str, extra: &[String]) -> Result<Vec<CommandItem>, CommandLineError> {
    let mut parts = split_and_chain(command)?;
    if parts.iter().any(|p| starts_with_builtin(p)) {
        parts = vec![command];
    }
    let mut items = Vec::with_capacity(parts.len());
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return Err(CommandLineError::Empty);
        }
        items.push(item(part)?);
    }
    if let Some(last) = items.last_mut()
        && !extra.is_empty()
    {
        match last {
            CommandItem::Direct { argv, text } => {
                argv.extend(extra.iter().cloned());
                text.push(' ');
                text.push_str(&shell_words::join(extra));
            }
            CommandItem::Shell { script } => {
                script.push(' ');
                script.push_str(&shell_words::join(extra));
            }
        }
    }
    Ok(items)
}

/// Shell syntax scan state: the byte positions of top-level `&&`, and whether
/// any other control operator appears (then splitting would change meaning:
/// `a && b || c` is `(a && b) || c`).
fn split_and_chain(command: &str) -> Result<Vec<&str>, CommandLineError> {
    let bytes = command.as_bytes();
    let mut splits = Vec::new();
    let mut other_operator = false;
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' if !single => i += 1,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            _ if single || double => {}
            b'&' if bytes.get(i + 1) == Some(&b'&') => {
                splits.push(i);
                i += 1;
            }
            b'&' | b'|' | b';' | b'\n' | b'(' | b')' | b'`' => other_operator = true,
            b'$' if bytes.get(i + 1) == Some(&b'(') => other_operator = true,
            _ => {}
        }
        i += 1;
    }
    if single || double {
        return Err(CommandLineError::UnterminatedQuote {
            command: command.to_owned(),
        });
    }
    if other_operator || splits.is_empty() {
        return Ok(vec![command]);
    }
    let mut parts = Vec::with_capacity(splits.len() + 1);
    let mut start = 0;
    for s in splits {
        parts.push(&command[start..s]);
        start = s + 2;
    }
    parts.push(&command[start..]);
    Ok(parts)
}

/// Shell builtins that are no program on `PATH` (or whose program could not
/// do what the builtin does: change the shell's directory, variables or
/// options, or end it).
const BUILTINS: [&str; 33] = [
    ".", ":", "alias", "bg", "break", "cd", "command", "continue", "declare", "eval", "exec",
    "exit", "export", "fg", "getopts", "hash", "jobs", "local", "popd", "pushd", "read",
    "readonly", "return", "set", "shift", "shopt", "source", "times", "trap", "typeset", "ulimit",
    "umask", "unset",
];

/// Whether the first word of `part` is a shell builtin.
fn starts_with_builtin(part: &str) -> bool {
    part.split_whitespace()
        .next()
        .is_some_and(|word| BUILTINS.contains(&word))
}

fn item(text: &str) -> Result<CommandItem, CommandLineError> {
    if needs_shell(text) || starts_with_builtin(text) {
        return Ok(CommandItem::Shell {
            script: text.to_owned(),
        });
    }
    let argv = shell_words::split(text).map_err(|_| CommandLineError::UnterminatedQuote {
        command: text.to_owned(),
    })?;
    if argv.is_empty() {
        return Err(CommandLineError::Empty);
    }
    Ok(CommandItem::Direct {
        argv,
        text: text.to_owned(),
    })
}

/// True when `text` uses any syntax only a shell understands, outside quotes.
fn needs_shell(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut single, mut double) = (false, false);
    let mut word_start = true;
    let mut first_word = true;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if single {
            if c == b'\'' {
                single = false;
            }
        } else if c == b'\\' {
            i += 1;
        } else if c == b'\'' && !double {
            single = true;
        } else if c == b'"' {
            double = !double;
        } else if c == b'$' || c == b'`' {
            return true; // expansion, even inside double quotes
        } else if !double {
            match c {
                b'|' | b'&' | b';' | b'<' | b'>' | b'(' | b')' | b'*' | b'?' | b'[' | b'{'
                | b'}' | b'\n' => {
                    return true;
                }
                b'~' | b'#' if word_start => return true,
                b'=' if first_word => return true, // `VAR=value cmd`
                _ => {}
            }
        }
        let is_space = !single && !double && (c == b' ' || c == b'\t');
        if is_space && !word_start {
            first_word = false;
        }
        word_start = is_space;
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(args: &[&str]) -> CommandItem {
        let argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        CommandItem::Direct {
            text: shell_words::join(&argv),
            argv,
        }
    }
    fn shell(s: &str) -> CommandItem {
        CommandItem::Shell {
            script: s.to_owned(),
        }
    }

    #[test]
    fn splits_and_chains_into_items() {
        let items =
            parse("tsc -p . && vite build --mode 'a b'", &[]).expect("the test input is valid");
        assert!(
            matches!(&items[1], CommandItem::Direct { argv, .. } if argv == &["vite", "build", "--mode", "a b"])
        );
        assert_eq!(items[0], direct(&["tsc", "-p", "."]));
        assert_eq!(items[1].to_string(), "vite build --mode 'a b'");
    }

    #[test]
    fn quoted_ampersands_do_not_split() {
        let items = parse("echo 'a && b'", &[]).expect("the test input is valid");
        assert!(
            matches!(&items[..], [CommandItem::Direct { argv, .. }] if argv == &["echo", "a && b"])
        );
    }

    #[test]
    fn other_operators_keep_the_whole_command_in_one_shell() {
        assert_eq!(
            parse("a && b || c", &[]).expect("the test input is valid"),
            vec![shell("a && b || c")]
        );
    }

    #[test]
    fn shell_syntax_goes_through_sh() {
        for s in [
            "cat a > b",
            "echo $HOME",
            "NODE_ENV=prod node x.js",
            "ls *.js",
            "echo \"$X\"",
            "cd ~",
        ] {
            assert_eq!(
                parse(s, &[]).expect("the test input is valid"),
                vec![shell(s)],
                "{s}"
            );
        }
        let items = parse("node --flag=value x", &[]).expect("the test input is valid");
        assert!(
            matches!(&items[..], [CommandItem::Direct { argv, text }] if argv == &["node", "--flag=value", "x"] && text == "node --flag=value x")
        );
    }

    /// Probe: `cd sub && node x.js` failed with "could not start `cd`", and
    /// so did `export` and `exit`: builtins are no programs, and `cd` must
    /// reach the items after it.
    #[test]
    fn a_builtin_runs_the_whole_command_in_one_shell() {
        assert_eq!(
            parse("cd sub && node x.js", &[]).expect("parses"),
            vec![shell("cd sub && node x.js")]
        );
        assert_eq!(
            parse("tsc && export A=1 && node x.js", &["--v".into()]).expect("parses"),
            vec![shell("tsc && export A=1 && node x.js --v")]
        );
        assert_eq!(parse("exit 3", &[]).expect("parses"), vec![shell("exit 3")]);
        // A program whose name only starts like a builtin is spawned.
        assert_eq!(
            parse("cdk deploy", &[]).expect("parses"),
            vec![direct(&["cdk", "deploy"])]
        );
    }

    #[test]
    fn extra_args_go_to_the_last_item() {
        let extra = vec!["--watch".to_owned(), "a b".to_owned()];
        assert_eq!(
            parse("a && b", &extra).expect("the test input is valid"),
            vec![direct(&["a"]), direct(&["b", "--watch", "a b"])]
        );
        assert_eq!(
            parse("cat x | wc", &extra).expect("the test input is valid"),
            vec![shell("cat x | wc --watch 'a b'")]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse("a && ", &[]), Err(CommandLineError::Empty));
        assert!(matches!(
            parse("echo 'x", &[]),
            Err(CommandLineError::UnterminatedQuote { .. })
        ));
    }
}

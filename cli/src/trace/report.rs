//! How `vp trace` shows a classification: a human summary (paths relative to
//! the root) and a JSON document for tools. Pure formatting over a writer,
//! so it is unit-tested with hand-built classifications.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::classify::{AccessClassification, Found, InputAccess, OutputKind};
use super::log::{AccessLog, CallCounts};

/// What was run and how it ended, for the report header.
pub(crate) struct RunSummary<'a> {
    pub(crate) command: &'a [String],
    /// The command quoted for a shell, as shown to people.
    pub(crate) shown_command: &'a str,
    pub(crate) exit_code: i32,
    pub(crate) root: &'a Path,
    /// How the traced tree's calls reached vp (traced runs only).
    pub(crate) calls: Option<CallCounts>,
}

fn shown(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

fn input_label(access: &InputAccess) -> (&'static str, String) {
    match access {
        InputAccess::ContentRead => ("read", String::new()),
        InputAccess::Listing => ("listed", String::new()),
        InputAccess::Metadata => ("stat", String::new()),
        InputAccess::Probe { found } => (
            "probed",
            match found {
                Found::Missing => " (missing)",
                Found::File => " (file)",
                Found::Dir => " (directory)",
                Found::Other => " (special file)",
            }
            .to_owned(),
        ),
        InputAccess::Symlink { target } => ("symlink", format!(" -> {}", target.display())),
    }
}

/// Every recorded access, in order (`--log`).
pub(crate) fn write_log(out: &mut dyn Write, log: &AccessLog) -> io::Result<()> {
    let calls = log.counts;
    writeln!(
        out,
        "accesses ({}), in order; {} calls notified, {} recorded in-process{}:",
        log.accesses.len(),
        calls.notified,
        calls.in_process,
        if calls.in_process_dropped > 0 {
            format!(
                " ({} more notified: the in-process log was full)",
                calls.in_process_dropped
            )
        } else {
            String::new()
        }
    )?;
    for access in &log.accesses {
        let follow = if access.follow { "" } else { " (no follow)" };
        writeln!(
            out,
            "  {:>10.3}ms  tid {:<7} {:<11} {}{follow}",
            access.at.as_secs_f64() * 1000.0,
            access.tid,
            access.op.name(),
            access.path.display()
        )?;
    }
    Ok(())
}

pub(crate) fn write_human(
    out: &mut dyn Write,
    run: &RunSummary<'_>,
    c: &AccessClassification,
) -> io::Result<()> {
    let root = run.root;
    writeln!(
        out,
        "vp trace: `{}` exited with code {}; paths relative to {}",
        run.shown_command,
        run.exit_code,
        root.display()
    )?;
    writeln!(out, "inputs ({}):", c.inputs.len())?;
    for (path, access) in &c.inputs {
        let (label, extra) = input_label(access);
        writeln!(out, "  {label:<8} {}{extra}", shown(path, root))?;
    }
    writeln!(out, "outputs ({}):", c.outputs.len())?;
    for (path, kind) in &c.outputs {
        let suffix = match kind {
            OutputKind::File => "",
            OutputKind::Dir => "/",
            OutputKind::Symlink => " (symlink)",
            OutputKind::Other => " (special file)",
        };
        writeln!(out, "  {}{suffix}", shown(path, root))?;
    }
    // Each list with what it means, when it is not empty.
    let lists: [(&str, &str, Vec<&std::path::PathBuf>); 4] = [
        (
            "temporaries (created and removed)",
            "",
            c.temporaries.iter().collect(),
        ),
        ("deleted (existed before)", "", c.deleted.iter().collect()),
        (
            "modified inputs",
            ": the command changed files it had read, so `vp run` would not cache it",
            c.modified_inputs.iter().collect(),
        ),
        (
            "written outside the workspace",
            ": a cache hit could not restore them, so `vp run` would not cache it",
            c.written_outside.iter().collect(),
        ),
    ];
    for (title, meaning, paths) in lists {
        if !paths.is_empty() {
            writeln!(out, "{title} ({}){meaning}:", paths.len())?;
            for path in paths {
                writeln!(out, "  {}", shown(path, root))?;
            }
        }
    }
    for reason in &c.untraceable {
        writeln!(out, "incomplete trace: {reason}")?;
    }
    writeln!(
        out,
        "excluded: {} paths outside the root or in /proc, /sys, /dev, .git or the cache dir",
        c.excluded
    )?;
    Ok(())
}

/// The untraced case: one clear sentence, no classification.
pub(crate) fn write_untraced(
    out: &mut dyn Write,
    run: &RunSummary<'_>,
    reason: &str,
) -> io::Result<()> {
    writeln!(
        out,
        "vp trace: `{}` exited with code {} but ran without file tracing: {reason}",
        run.shown_command, run.exit_code
    )
}

pub(crate) fn json(
    run: &RunSummary<'_>,
    outcome: Result<&AccessClassification, &str>,
    log: Option<&AccessLog>,
) -> Value {
    let root = run.root;
    let mut doc = Map::new();
    doc.insert("command".into(), json!(run.command));
    doc.insert("exit_code".into(), json!(run.exit_code));
    doc.insert("root".into(), json!(root.to_string_lossy()));
    if let Some(calls) = run.calls {
        doc.insert(
            "calls".into(),
            json!({
                "notified": calls.notified,
                "in_process": calls.in_process,
                "in_process_dropped": calls.in_process_dropped,
            }),
        );
    }
    match outcome {
        Err(reason) => {
            doc.insert("traced".into(), json!(false));
            doc.insert("reason".into(), json!(reason));
        }
        Ok(c) => {
            doc.insert("traced".into(), json!(true));
            let inputs: Map<String, Value> = c
                .inputs
                .iter()
                .map(|(path, access)| {
                    (
                        shown(path, root),
                        serde_json::to_value(access).unwrap_or(Value::Null),
                    )
                })
                .collect();
            let outputs: Map<String, Value> = c
                .outputs
                .iter()
                .map(|(path, kind)| {
                    (
                        shown(path, root),
                        serde_json::to_value(kind).unwrap_or(Value::Null),
                    )
                })
                .collect();
            let list = |set: &mut dyn Iterator<Item = &std::path::PathBuf>| -> Value {
                Value::Array(set.map(|p| json!(shown(p, root))).collect())
            };
            doc.insert("inputs".into(), Value::Object(inputs));
            doc.insert("outputs".into(), Value::Object(outputs));
            doc.insert("temporaries".into(), list(&mut c.temporaries.iter()));
            doc.insert("deleted".into(), list(&mut c.deleted.iter()));
            doc.insert(
                "modified_inputs".into(),
                list(&mut c.modified_inputs.iter()),
            );
            doc.insert(
                "written_outside".into(),
                list(&mut c.written_outside.iter()),
            );
            doc.insert("untraceable".into(), json!(c.untraceable));
            doc.insert("excluded".into(), json!(c.excluded));
            doc.insert("cacheable".into(), json!(c.is_cacheable()));
        }
    }
    if let Some(log) = log {
        let accesses: Vec<Value> = log
            .accesses
            .iter()
            .map(|a| {
                json!({
                    "at_us": a.at.as_micros() as u64,
                    "tid": a.tid,
                    "op": a.op.name(),
                    "path": a.path.to_string_lossy(),
                    "follow": a.follow,
                })
            })
            .collect();
        doc.insert("accesses".into(), Value::Array(accesses));
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sample() -> AccessClassification {
        let mut c = AccessClassification::default();
        c.inputs
            .insert(PathBuf::from("/w/a.txt"), InputAccess::ContentRead);
        c.inputs.insert(
            PathBuf::from("/w/nope"),
            InputAccess::Probe {
                found: Found::Missing,
            },
        );
        c.inputs
            .insert(PathBuf::from("/w/src"), InputAccess::Listing);
        c.inputs.insert(
            PathBuf::from("/w/link"),
            InputAccess::Symlink {
                target: PathBuf::from("a.txt"),
            },
        );
        c.outputs
            .insert(PathBuf::from("/w/dist/b.js"), OutputKind::File);
        c.temporaries.insert(PathBuf::from("/w/tmp"));
        c.modified_inputs.push(PathBuf::from("/w/x"));
        c.excluded = 12;
        c
    }

    #[test]
    fn human_report_lists_every_section() {
        let command = vec!["tool".to_owned(), "--flag".to_owned()];
        let run = RunSummary {
            command: &command,
            shown_command: "tool --flag",
            exit_code: 0,
            root: Path::new("/w"),
            calls: None,
        };
        let mut out = Vec::new();
        write_human(&mut out, &run, &sample()).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "vp trace: `tool --flag` exited with code 0; paths relative to /w
inputs (4):
  read     a.txt
  symlink  link -> a.txt
  probed   nope (missing)
  listed   src
outputs (1):
  dist/b.js
temporaries (created and removed) (1):
  tmp
modified inputs (1): the command changed files it had read, so `vp run` would not cache it:
  x
excluded: 12 paths outside the root or in /proc, /sys, /dev, .git or the cache dir
"
        );
    }

    #[test]
    fn json_report_uses_relative_paths() {
        let command = vec!["tool".to_owned()];
        let run = RunSummary {
            command: &command,
            shown_command: "tool",
            exit_code: 3,
            root: Path::new("/w"),
            calls: Some(CallCounts {
                notified: 7,
                in_process: 40,
                in_process_dropped: 0,
            }),
        };
        let doc = json(&run, Ok(&sample()), None);
        assert_eq!(doc["exit_code"], 3);
        assert_eq!(doc["calls"]["notified"], 7);
        assert_eq!(doc["calls"]["in_process"], 40);
        assert_eq!(doc["inputs"]["a.txt"]["kind"], "content-read");
        assert_eq!(doc["inputs"]["nope"]["found"], "missing");
        assert_eq!(doc["inputs"]["link"]["target"], "a.txt");
        assert_eq!(doc["outputs"]["dist/b.js"], "file");
        assert_eq!(doc["cacheable"], false);
        let untraced = json(&run, Err("nested"), None);
        assert_eq!(untraced["traced"], false);
        assert_eq!(untraced["reason"], "nested");
    }
}

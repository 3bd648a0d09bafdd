//! The tasks of the vp runs that started this one. A root script that is
//! itself `vp run -r build` is the usual way to keep `npm run build`
//! working; if the run it starts selects that same task again, each vp
//! starts the next one and none ever ends. Every task's processes get the
//! list of tasks running above them (workspace root and label, one per
//! line), and a plan that would run one of them again is refused.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::Path;

/// The variable that carries the list to the task's processes.
pub(crate) const VAR: &str = "VP_RUN_ANCESTRY";

/// The list a task's processes get: `inherited` (this vp's own `VAR`,
/// if any) and the task `label` of the workspace at `root`.
pub(crate) fn for_child(inherited: Option<&OsStr>, root: &Path, label: &str) -> OsString {
    let mut out = inherited.map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    if !out.is_empty() {
        out.push(b'\n');
    }
    out.extend_from_slice(&entry(root, label));
    OsString::from_vec(out)
}

/// The first of `labels` (tasks of the workspace at `root`) that a vp above
/// this one is running already.
pub(crate) fn already_running<'a>(
    inherited: Option<&OsStr>,
    root: &Path,
    labels: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let list = inherited?.as_bytes();
    labels.into_iter().find(|label| {
        let wanted = entry(root, label);
        list.split(|b| *b == b'\n')
            .any(|line| line == wanted.as_slice())
    })
}

fn entry(root: &Path, label: &str) -> Vec<u8> {
    let mut e = root.as_os_str().as_bytes().to_vec();
    e.push(b'\t');
    e.extend_from_slice(label.as_bytes());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_running_above_is_found_in_its_own_workspace_only() {
        let root = Path::new("/w");
        let one = for_child(None, root, "root#build");
        let two = for_child(Some(&one), Path::new("/other"), "app#build");
        assert_eq!(
            already_running(Some(&two), root, ["a#build", "root#build"]),
            Some("root#build")
        );
        assert_eq!(
            already_running(Some(&two), Path::new("/else"), ["root#build"]),
            None
        );
        assert_eq!(already_running(Some(&two), root, ["root#buil"]), None);
        assert_eq!(already_running(None, root, ["root#build"]), None);
    }
}

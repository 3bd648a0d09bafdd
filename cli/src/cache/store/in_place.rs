//! What a hit may write over. Restoring puts every output back, which is
//! what the task does for an output it writes blindly. But a task that
//! looked at a path before making it decided on what was there: probes of
//! real scripts found `test -f .env.local || cp .env.example .env.local`
//! (and `cp -n`, an exclusive create, `test -d config || cp -r defaults
//! config`) getting its template restored over what the user then wrote,
//! and a fixer that rewrites an untracked file (`sed -i`) getting an old
//! result restored over the user's edit. vp never modifies what it did not
//! make.
//!
//! So before a hit, each such output (`CacheEntry::looked_first`) must hold
//! nothing, the very content (or link) the entry stores, what the task's
//! last stored run or hit recorded there, or, for one of the task's state
//! files, what its last traced run left there, untouched since, when that
//! run started from content vp put there or a run like it left (a failed
//! run's build info: `store::state`). Anything else is someone else's,
//! the lookup misses, and the command runs, seeing the file as it would
//! without vp. Not content the store holds for another path or run: a file
//! the user restored to an older version (an editor's undo) is theirs.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cache::digest::{self, Digest};
use crate::cache::entry::{OutputState, Stamp};

/// What is at an output's path before a hit writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InPlace {
    /// Nothing: the hit creates it.
    Absent,
    /// Exactly what the entry stores: the hit leaves it (a file's mode may
    /// still be set).
    Same,
    /// What the task's last stored run or hit left there, or its last
    /// traced run in one of its state files: the hit replaces it.
    LeftByVp,
    /// Something vp did not make there: no hit.
    Other,
}

/// Compares the path `abs` with the entry's `stored` state, then with
/// `left`, what the task's last used entry recorded for the same path
/// (`None`: it recorded nothing there, or there is no such entry), then
/// with `state`, the content and stamp the task's last traced run left in
/// it as a state file a hit may replace. Hashes a file at most once, and
/// only when its size matches one of them (for `state`: when its whole
/// stamp does).
pub(crate) fn in_place(
    abs: &Path,
    stored: &OutputState,
    left: Option<&OutputState>,
    state: Option<(&Digest, &Stamp)>,
) -> InPlace {
    let meta = match fs::symlink_metadata(abs) {
        Err(e) if e.kind() == ErrorKind::NotFound => return InPlace::Absent,
        Err(_) => return InPlace::Other,
        Ok(meta) => meta,
    };
    let mut content = None;
    let mut is = |state: &OutputState| match state {
        OutputState::File { blob, size, .. } => {
            meta.is_file()
                && meta.len() == *size
                && *content.get_or_insert_with(|| digest::hash_file(abs).ok().map(|(h, _)| h))
                    == Some(*blob)
        }
        OutputState::Symlink { target } => {
            meta.file_type().is_symlink()
                && fs::read_link(abs)
                    .is_ok_and(|now| now.as_os_str().as_bytes() == target.as_slice())
        }
        OutputState::Dir { .. } => meta.is_dir(),
    };
    if is(stored) {
        InPlace::Same
    } else if left.is_some_and(&mut is) {
        InPlace::LeftByVp
    } else if let Some((state, stamp)) = state
        && meta.is_file()
        && Stamp::of(&meta) == *stamp
        && *content.get_or_insert_with(|| digest::hash_file(abs).ok().map(|(h, _)| h))
            == Some(*state)
    {
        InPlace::LeftByVp
    } else {
        InPlace::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_same_left_by_vp_or_other() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("out.txt");
        let stored = OutputState::file_of(b"stored");
        let left = OutputState::file_of(b"left");
        assert_eq!(in_place(&p, &stored, Some(&left), None), InPlace::Absent);
        fs::write(&p, "stored").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), None), InPlace::Same);
        fs::write(&p, "left").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), None), InPlace::LeftByVp);
        assert_eq!(in_place(&p, &stored, None, None), InPlace::Other);
        // The user's edit, of the same size as the stored content too.
        fs::write(&p, "mine!!").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), None), InPlace::Other);
        // A directory where a file was.
        fs::remove_file(&p).expect("remove");
        fs::create_dir(&p).expect("mkdir");
        assert_eq!(in_place(&p, &stored, Some(&left), None), InPlace::Other);
        assert_eq!(
            in_place(&p, &OutputState::Dir { mode: 0o755 }, None, None),
            InPlace::Same
        );
    }

    /// A failed run of the task rewrote its state file (`tsc -b` with a
    /// type error, its build info): a hit may replace that while the file
    /// is untouched since; not once anything wrote it again, even with the
    /// same content (an editor's undo is the user's).
    #[test]
    fn what_the_tasks_last_run_left_in_its_state_is_replaceable_while_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("app.tsbuildinfo");
        let stored = OutputState::file_of(b"{\"ok\":1}");
        fs::write(&p, "{\"errors\":[1,2]}").expect("write");
        let failed = Digest::of_content(b"{\"errors\":[1,2]}");
        let stamp = Stamp::of(&fs::symlink_metadata(&p).expect("stat"));
        let state = Some((&failed, &stamp));
        assert_eq!(in_place(&p, &stored, None, state), InPlace::LeftByVp);
        assert_eq!(in_place(&p, &stored, None, None), InPlace::Other);
        // Rewritten with the same content: someone else's now.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::remove_file(&p).expect("rm");
        fs::write(&p, "{\"errors\":[1,2]}").expect("write");
        assert_eq!(in_place(&p, &stored, None, state), InPlace::Other);
    }

    #[test]
    fn links_compare_their_targets() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("current");
        std::os::unix::fs::symlink("v1", &p).expect("link");
        let v1 = OutputState::Symlink {
            target: b"v1".to_vec(),
        };
        let v2 = OutputState::Symlink {
            target: b"v2".to_vec(),
        };
        assert_eq!(in_place(&p, &v1, None, None), InPlace::Same);
        assert_eq!(in_place(&p, &v2, Some(&v1), None), InPlace::LeftByVp);
        assert_eq!(in_place(&p, &v2, None, None), InPlace::Other);
        assert_eq!(
            in_place(&p, &OutputState::file_of(b"v1"), None, None),
            InPlace::Other
        );
    }
}

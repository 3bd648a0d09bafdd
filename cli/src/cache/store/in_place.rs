//! What a hit may write over. Restoring puts every output back, which is
//! what the task would do only where it writes blindly; and vp never
//! modifies what it did not make. Probes of real scripts found both broken:
//! `test -f .env.local || cp .env.example .env.local` (and `cp -n`, an
//! `O_EXCL` create, `test -d config || cp -r defaults config`) makes a file
//! only when it is missing, and a hit restored the template over what the
//! user then wrote there; a fixer that rewrites an untracked file had its
//! old result restored over the user's edit.
//!
//! So before a hit, each output path must hold nothing, the very content
//! (or link, or directory) the entry stores, or something vp made: a file
//! whose content the store holds as an output of some run (so nothing is
//! lost, and two tasks or two `&&` items that write the same file do not
//! refuse each other's hits), or what the task's last stored run or hit
//! recorded there. Anything else is someone else's, the lookup misses, and
//! the command runs: it sees the file as it is, as it would without vp. (A
//! user's edit to a build output costs one real build, which overwrites it
//! as the tool would.)

use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cache::digest;
use crate::cache::entry::OutputState;

/// What is at an output's path before a hit writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InPlace {
    /// Nothing: the hit creates it.
    Absent,
    /// Exactly what the entry stores: the hit leaves it (a file's mode may
    /// still be set).
    Same,
    /// Something vp made (content the store holds, or what the task's last
    /// run or hit left there): the hit replaces it.
    LeftByVp,
    /// Something vp did not make there: no hit.
    Other,
}

/// Compares the path `abs` with the entry's `stored` state, then with
/// `left`, what the task's last used entry recorded for the same path
/// (`None`: it recorded nothing there, or there is no such entry), then
/// asks `vp_made` whether a file's content is one the store holds. Hashes
/// a file at most once.
pub(crate) fn in_place(
    abs: &Path,
    stored: &OutputState,
    left: Option<&OutputState>,
    vp_made: &dyn Fn(&digest::Digest) -> bool,
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
        return InPlace::Same;
    }
    if left.is_some_and(&mut is) {
        return InPlace::LeftByVp;
    }
    let made = meta.is_file()
        && content
            .get_or_insert_with(|| digest::hash_file(abs).ok().map(|(h, _)| h))
            .as_ref()
            .is_some_and(vp_made);
    if made {
        InPlace::LeftByVp
    } else {
        InPlace::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::digest::Digest;

    fn file(content: &[u8]) -> OutputState {
        OutputState::File {
            blob: Digest::of_content(content),
            mode: 0o644,
            size: content.len() as u64,
            stored: 0,
        }
    }

    fn none(_: &Digest) -> bool {
        false
    }

    #[test]
    fn absent_same_left_by_vp_or_other() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("out.txt");
        let stored = file(b"stored");
        let left = file(b"left");
        assert_eq!(in_place(&p, &stored, Some(&left), &none), InPlace::Absent);
        fs::write(&p, "stored").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), &none), InPlace::Same);
        fs::write(&p, "left").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), &none), InPlace::LeftByVp);
        assert_eq!(in_place(&p, &stored, None, &none), InPlace::Other);
        // The user's edit, of the same size as the stored content too.
        fs::write(&p, "mine!!").expect("write");
        assert_eq!(in_place(&p, &stored, Some(&left), &none), InPlace::Other);
        // Content another task's run stored (two tasks write one file).
        let theirs = Digest::of_content(b"mine!!");
        let stored_blob = |d: &Digest| *d == theirs;
        assert_eq!(in_place(&p, &stored, None, &stored_blob), InPlace::LeftByVp);
        // A directory where a file was.
        fs::remove_file(&p).expect("remove");
        fs::create_dir(&p).expect("mkdir");
        assert_eq!(in_place(&p, &stored, Some(&left), &none), InPlace::Other);
        assert_eq!(
            in_place(&p, &OutputState::Dir { mode: 0o755 }, None, &none),
            InPlace::Same
        );
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
        assert_eq!(in_place(&p, &v1, None, &none), InPlace::Same);
        assert_eq!(in_place(&p, &v2, Some(&v1), &none), InPlace::LeftByVp);
        assert_eq!(in_place(&p, &v2, None, &none), InPlace::Other);
        assert_eq!(in_place(&p, &file(b"v1"), None, &none), InPlace::Other);
    }
}

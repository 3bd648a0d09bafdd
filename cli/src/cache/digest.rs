//! Content hashes (`Digest`, BLAKE3) for files, blobs, keys and env values.
//! Every hash the cache stores goes through here, each kind of data with its
//! own domain-separated hasher so that, say, an env value can never collide
//! with a file that happens to contain the same bytes.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::regular_file;

/// A 32-byte BLAKE3 hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Digest([u8; 32]);

/// What a hash is of; each gets its own derived BLAKE3 key.
#[derive(Clone, Copy)]
pub(crate) enum Domain {
    /// The canonical encoding of a spawn fingerprint (the cache key).
    SpawnKey,
    /// The content-identity of an entry's inputs (one key can have several).
    EntryVariant,
    /// An environment variable value.
    EnvValue,
    /// A directory's sorted entry names and kinds.
    Listing,
    /// The portable (machine-independent) pre-run key of the remote cache.
    RemoteKey,
    /// A remote result's id: the portable key and the inputs' variant.
    RemoteResult,
    /// An input file that is executable: its content hash, marked so.
    ExecutableInput,
    /// A workspace's root path, where records about its files are kept in a
    /// store that several checkouts may share (`VP_CACHE_DIR`).
    Workspace,
}

impl Domain {
    fn context(self) -> &'static str {
        match self {
            Self::SpawnKey => "vp cache 2025-01 spawn fingerprint",
            Self::EntryVariant => "vp cache 2025-01 entry variant",
            Self::EnvValue => "vp cache 2025-01 env value",
            Self::Listing => "vp cache 2025-01 directory listing",
            Self::RemoteKey => "vp remote cache 2026-12 portable key",
            Self::RemoteResult => "vp remote cache 2026-12 result",
            Self::ExecutableInput => "vp cache 2026-12 executable input",
            Self::Workspace => "vp cache 2026-12 workspace root",
        }
    }
}

impl Digest {
    pub(crate) const LEN: usize = 32;

    /// Plain BLAKE3 of file or blob content (content addresses are shared by
    /// every entry, so they are deliberately not domain-separated).
    pub(crate) fn of_content(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub(crate) fn of(domain: Domain, bytes: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key(domain.context());
        h.update(bytes);
        Self(*h.finalize().as_bytes())
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes in hex: enough to tell entries apart in messages.
    pub(crate) fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// The fingerprint of an input file whose content hashes to `content`:
/// that hash, or for an executable file (any `x` bit) a hash derived from
/// it. The executable bit is the one mode bit git keeps, and a task that
/// copies or packs a file (`cp -r`, `tar`, a packager's `bin`) carries it
/// into its output: `chmod +x bin/cli.js` must miss. A plain file keeps its
/// plain content hash, so entries recorded before this rule stay valid for
/// it. (Outputs are content-addressed blobs; their mode is stored beside.)
pub(crate) fn input_digest(content: Digest, meta: &Metadata) -> Digest {
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 == 0 {
        content
    } else {
        Digest::of(Domain::ExecutableInput, content.as_bytes())
    }
}

/// Streams a file through BLAKE3; returns the content hash and the number of
/// bytes hashed.
pub(crate) fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let (file, size) = regular_file::open_sized(path)?;
    let mut h = blake3::Hasher::new();
    feed(&mut h, &file, size, &|| true)?;
    Ok((Digest(*h.finalize().as_bytes()), h.count()))
}

/// `hash_file` for an input the cache records with its stat stamp: hashed
/// through one open handle, with that handle's metadata taken *after*
/// hashing. A path replaced before it was opened, or a file rewritten while
/// it was hashed, then shows a stamp with the change's own time, which the
/// racy-clean rule and the "modified during the run" check catch; a stamp
/// taken from the path before hashing could sit beside content it never
/// described.
pub(crate) fn hash_file_stamped(path: &Path) -> io::Result<(Digest, Metadata)> {
    let (file, size) = regular_file::open_sized(path)?;
    hash_handle_stamped(&file, size)
}

/// `hash_file_stamped` for a path that may not be a regular file, hashed
/// while the task that read it runs (`prehash.rs`): `None` when it is not
/// a regular file (checked before opening: even a non-blocking open of a
/// FIFO's read end can release a waiting writer; and after, through the
/// handle), and when `keep_going` turns false before the end (checked
/// between pieces of a large file, so the task's end never waits for it).
pub(crate) fn hash_if_regular_file(
    path: &Path,
    keep_going: &dyn Fn() -> bool,
) -> io::Result<Option<(Digest, Metadata)>> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(None);
    }
    let (file, size) = match regular_file::open_sized(path) {
        Ok(opened) => opened,
        Err(e) if regular_file::is_not_regular(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut h = blake3::Hasher::new();
    if !feed(&mut h, &file, size, keep_going)? {
        return Ok(None);
    }
    let meta = file.metadata()?;
    // Left to storing, which hashes it again (or says why it cannot).
    if h.count() != meta.len() {
        return Ok(None);
    }
    Ok(Some((Digest(*h.finalize().as_bytes()), meta)))
}

/// Hashes `file` and takes its stamp after. The stamp's size must be the
/// number of bytes hashed: one read that ends where the file's length said
/// (`read_small`) could otherwise stop short of a file that grew meanwhile
/// on a file system whose reads may come back short (FUSE, network file
/// systems), leaving a hash of less than the stamp describes.
fn hash_handle_stamped(file: &File, size: u64) -> io::Result<(Digest, Metadata)> {
    let mut h = blake3::Hasher::new();
    feed(&mut h, file, size, &|| true)?;
    let meta = file.metadata()?;
    if h.count() != meta.len() {
        return Err(io::Error::other(format!(
            "it changed while vp read it ({} bytes read, {} bytes long after)",
            h.count(),
            meta.len()
        )));
    }
    Ok((Digest(*h.finalize().as_bytes()), meta))
}

thread_local! {
    /// `read_small`'s buffer: zeroed once per thread, not once per file
    /// (zeroing 64 KiB measured 0.8 µs, as dear as the `read` it saves).
    static SMALL: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SMALL_FILE as usize]);
}

/// One `read` of up to `size + 1` bytes into `h`: whether it reached the
/// end, which it did when it returned exactly `size` bytes.
fn read_small(h: &mut blake3::Hasher, mut file: &File, size: u64) -> io::Result<bool> {
    SMALL.with_borrow_mut(|buf| {
        let want = usize::try_from(size).map_or(buf.len(), |n| (n + 1).min(buf.len()));
        let n = loop {
            match file.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read?,
            }
        };
        h.update(&buf[..n]);
        Ok(n as u64 == size)
    })
}

/// The first this many bytes of a file go through `io::copy`.
const SMALL_FILE: u64 = 64 << 10;

/// The rest of a large file is read in pieces of this many bytes.
const PIECE: u64 = 1 << 20;

/// Reads `file` into `h`; `size` is its length when it was opened.
///
/// A file smaller than `SMALL_FILE` (nearly every source file) is read with
/// one `read` of one byte more than that length into a buffer the thread
/// keeps: the read that returns `size` bytes is the end, so the file costs
/// no second `read` to find it. (A regular file's `read` returns fewer
/// bytes than asked only at its end. One that grew or shrank since it was
/// opened is read on to its end below; its stamp, taken after hashing,
/// then tells the change either way.) Hashing a small file is otherwise
/// six or seven system calls (the `stat` that checks the path, the open,
/// the handle's `stat` before and after, two reads, the close); a task that
/// reads 50,000 of them has each hashed while it runs.
///
/// The rest of a file, or a larger one, through `io::copy`, whose 8 KiB
/// buffer is not zeroed, up to `SMALL_FILE`, and beyond that through
/// `update_reader`: 8 KiB pieces give BLAKE3's AVX-512 code half the 16 KiB
/// it hashes at once, and a Vite build reads 31 MB of native addons on
/// every run (its three largest inputs, 32.5 MB, hashed in 14–15 ms through
/// `io::copy`, 10 ms through `update_reader`), in pieces of `PIECE` bytes
/// with `keep_going` asked before each. Returns false when `keep_going`
/// stopped it before the end.
fn feed(
    h: &mut blake3::Hasher,
    mut file: &File,
    size: u64,
    keep_going: &dyn Fn() -> bool,
) -> io::Result<bool> {
    if size < SMALL_FILE && read_small(h, file, size)? {
        return Ok(true);
    }
    let head = io::copy(&mut Read::take(&mut file, SMALL_FILE), h)?;
    if head < SMALL_FILE {
        return Ok(true);
    }
    loop {
        if !keep_going() {
            return Ok(false);
        }
        let before = h.count();
        h.update_reader(Read::take(&mut file, PIECE))?;
        if h.count() - before < PIECE {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_executable_input_has_its_own_fingerprint() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("cli.js");
        std::fs::write(&p, "x").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (content, meta) = hash_file_stamped(&p).expect("hash");
        assert_eq!(
            input_digest(content, &meta),
            content,
            "a plain file: its content"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o744)).expect("chmod");
        let (same, meta) = hash_file_stamped(&p).expect("hash");
        assert_eq!(same, content);
        let executable = input_digest(same, &meta);
        assert_ne!(executable, content);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (_, meta) = hash_file_stamped(&p).expect("hash");
        assert_eq!(
            input_digest(same, &meta),
            executable,
            "any x bit is the same"
        );
    }

    use super::*;

    #[test]
    fn file_hash_equals_content_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").expect("write");
        let (d, n) = hash_file(&p).expect("hash");
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of_content(b"hello world"));
        assert_ne!(d, Digest::of_content(b"hello world!"));
    }

    /// Small files, large ones and the sizes at the switch hash alike, and
    /// the stamped variant reports the metadata of the file it read.
    #[test]
    fn small_and_large_files_hash_as_their_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [
            0,
            1,
            SMALL_FILE as usize - 1,
            SMALL_FILE as usize,
            SMALL_FILE as usize + 1,
            3 << 20,
        ] {
            let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &content).expect("write");
            let (d, n) = hash_file(&p).expect("hash");
            assert_eq!((d, n), (Digest::of_content(&content), len as u64), "{len}");
            let (d, meta) = hash_file_stamped(&p).expect("hash");
            assert_eq!(d, Digest::of_content(&content));
            assert_eq!(meta.len(), len as u64);
        }
    }

    /// A file that grew or shrank between the open (where its size was
    /// taken) and the read is hashed as it is when read, to its end: the
    /// one read sized for it does not cut it short or wait for more.
    #[test]
    fn a_file_that_changed_size_after_the_open_hashes_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        for (before, after) in [
            (&b"short"[..], &b"short, then longer"[..]),
            (b"a longer line", b"short"),
            (b"", b"filled"),
            (b"x", &vec![b'y'; SMALL_FILE as usize + 10][..]),
        ] {
            std::fs::write(&p, before).expect("write");
            let (file, size) = regular_file::open_sized(&p).expect("open");
            let mut writer = std::fs::File::create(&p).expect("rewrite");
            writer.write_all(after).expect("write");
            drop(writer);
            let mut h = blake3::Hasher::new();
            assert!(feed(&mut h, &file, size, &|| true).expect("feed"));
            assert_eq!(
                Digest(*h.finalize().as_bytes()),
                Digest::of_content(after),
                "{} bytes, then {}",
                before.len(),
                after.len()
            );
        }
    }

    /// A hash is kept only with a stamp whose size is what was hashed: a
    /// file whose length says otherwise (here `/proc`'s, whose length is 0
    /// and whose reads are not) is no input vp can vouch for.
    #[test]
    fn a_file_whose_length_is_not_what_was_read_is_refused() {
        let status = Path::new("/proc/self/status");
        let err = hash_file_stamped(status).expect_err("length 0, content not");
        assert!(
            err.to_string().contains("changed while vp read it"),
            "{err}"
        );
        assert!(
            hash_if_regular_file(status, &|| true)
                .expect("no error")
                .is_none()
        );
    }

    /// A path that was a file when vp `lstat`ed it can be something else
    /// when it opens it. A FIFO (a plain open waits for a writer forever)
    /// and a link to `/dev/zero` (reads never end) are refused at once by
    /// every way vp hashes a file, and a file behind a link still hashes.
    #[test]
    fn only_regular_files_are_opened_for_hashing() {
        use std::sync::mpsc;
        use std::time::Duration;

        let dir = tempfile::tempdir().expect("tempdir");
        let [fifo, zero] = crate::regular_file::special::fifo_and_endless_device(dir.path());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");

        let (tx, rx) = mpsc::channel();
        let paths = [fifo.clone(), zero.clone()];
        std::thread::spawn(move || {
            for p in &paths {
                let kinds = (
                    hash_file(p)
                        .map(|_| ())
                        .map_err(|e| regular_file::is_not_regular(&e)),
                    hash_file_stamped(p)
                        .map(|_| ())
                        .map_err(|e| regular_file::is_not_regular(&e)),
                    hash_if_regular_file(p, &|| true).map(|h| h.is_some()),
                );
                tx.send(kinds).expect("send");
            }
        });
        for p in [&fifo, &zero] {
            let got = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{} was waited on or read, not refused", p.display()));
            let refused = Err(true);
            assert_eq!(got.0, refused, "{}", p.display());
            assert_eq!(got.1, refused, "{}", p.display());
            assert!(matches!(got.2, Ok(false)), "{}", p.display());
        }
        assert_eq!(hash_file(&link).expect("hash").0, Digest::of_content(b"x"));
    }

    #[test]
    fn domains_separate() {
        assert_ne!(Digest::of(Domain::EnvValue, b"x"), Digest::of_content(b"x"));
        assert_ne!(
            Digest::of(Domain::EnvValue, b"x"),
            Digest::of(Domain::SpawnKey, b"x")
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(hash_file(Path::new("/definitely/not/here")).is_err());
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(Digest::from_slice(&[0; 31]).is_none());
        assert!(Digest::from_slice(&[7; 32]).is_some_and(|d| d.short() == "0707070707070707"));
    }
}

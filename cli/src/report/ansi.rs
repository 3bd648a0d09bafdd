//! Removing terminal escape sequences from a task's output.
//!
//! [`AnsiStripper`] drops ECMA-48 escape sequences (CSI such as colours and
//! cursor moves, OSC such as hyperlinks and titles, DCS/SOS/PM/APC strings
//! and two-byte `ESC x`) from a byte stream that arrives in arbitrary
//! chunks: a sequence split across chunks is still removed whole, because
//! the stripper keeps only its parser state between calls (never bytes).
//! Everything else, including `\r` and `\t`, is kept.
//!
//! Only text is touched: a stream that turns out not to be text (a NUL byte
//! or bytes that are not UTF-8, as in `vp run gen > out.bin`) is passed
//! through unchanged from then on, because an `ESC` byte in binary data is
//! data, and removing it would corrupt the output.
//! Used by the reporter for output that goes to a non-terminal.

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// CAN and SUB cancel a sequence in progress (ECMA-48 § 5.6).
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;

/// Where the parser is between two bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Plain text.
    #[default]
    Text,
    /// After `ESC`.
    Escape,
    /// After `ESC` and intermediate bytes (`ESC ( B`), before the final byte.
    EscapeIntermediate,
    /// Inside `ESC [ ...` before its final byte.
    Csi,
    /// Inside an OSC/DCS/SOS/PM/APC string, before its terminator.
    String,
    /// Inside such a string, right after an `ESC` (which may begin `ESC \`).
    StringEscape,
}

/// A streaming escape-sequence remover; keep one per byte stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnsiStripper {
    state: State,
    /// The stream is not text: pass everything through.
    binary: bool,
}

/// Whether a chunk of a stream can be text: no NUL, and valid UTF-8 apart
/// from a character cut at either end of the chunk (chunks split anywhere).
fn looks_like_text(chunk: &[u8]) -> bool {
    if chunk.contains(&0) {
        return false;
    }
    let start = chunk
        .iter()
        .take(3)
        .take_while(|b| (0x80..0xc0).contains(*b))
        .count();
    match std::str::from_utf8(&chunk[start..]) {
        Ok(_) => true,
        // `None`: the chunk ends inside a character, which the next one
        // completes.
        Err(e) => e.error_len().is_none(),
    }
}

impl AnsiStripper {
    /// Appends `input` without its escape sequences to `out`. A sequence
    /// still open at the end of `input` goes on being removed in the next
    /// call.
    pub(crate) fn strip(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.binary = self.binary || !looks_like_text(input);
        if self.binary {
            out.extend_from_slice(input);
            return;
        }
        for &b in input {
            self.state = self.step(b, out);
        }
    }

    /// Forgets a sequence left open (the stream it belonged to ended).
    pub(crate) fn reset(&mut self) {
        self.state = State::Text;
    }

    fn step(&self, b: u8, out: &mut Vec<u8>) -> State {
        match self.state {
            State::Text if b == ESC => State::Escape,
            State::Text => {
                out.push(b);
                State::Text
            }
            // `ESC \` (ST) ends a string sequence.
            State::StringEscape if b == b'\\' => State::Text,
            State::Escape | State::StringEscape => after_escape(b, out),
            State::EscapeIntermediate => match b {
                0x20..=0x2f => State::EscapeIntermediate,
                0x30..=0x7e => State::Text,
                _ => abort(b, out),
            },
            State::Csi => match b {
                // Parameter and intermediate bytes.
                0x20..=0x3f => State::Csi,
                // The final byte ends it.
                0x40..=0x7e => State::Text,
                ESC => State::Escape,
                CAN | SUB => State::Text,
                // A terminal executes other C0 controls (a newline) in the
                // middle of a CSI and goes on with the sequence.
                0x00..=0x1f => {
                    out.push(b);
                    State::Csi
                }
                0x7f => State::Csi,
                _ => abort(b, out),
            },
            State::String => match b {
                BEL | CAN | SUB => State::Text,
                ESC => State::StringEscape,
                // Terminals would wait for the terminator forever; a log
                // must not lose the rest of a task's output to one broken
                // sequence, and no OSC (title, hyperlink) spans lines.
                b'\n' => {
                    out.push(b);
                    State::Text
                }
                _ => State::String,
            },
        }
    }
}

/// The byte after an `ESC` (also one that ended a string sequence).
fn after_escape(b: u8, out: &mut Vec<u8>) -> State {
    match b {
        b'[' => State::Csi,
        b']' | b'P' | b'X' | b'^' | b'_' => State::String,
        0x20..=0x2f => State::EscapeIntermediate,
        0x30..=0x7e => State::Text,
        ESC => State::Escape,
        _ => abort(b, out),
    }
}

/// A byte that cannot continue the sequence: the sequence is dropped, the
/// byte itself is text (a newline, a UTF-8 byte).
fn abort(b: u8, out: &mut Vec<u8>) -> State {
    if b == CAN || b == SUB {
        return State::Text;
    }
    out.push(b);
    State::Text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_output_is_never_changed() {
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x1b[31mnot a colour";
        assert_eq!(strip(png), png.to_vec());
        // Once a stream showed it is binary, later chunks pass too.
        let mut s = AnsiStripper::default();
        let mut out = Vec::new();
        s.strip(b"\xff\xfe", &mut out);
        s.strip(b"\x1b[1mtext", &mut out);
        assert_eq!(out, b"\xff\xfe\x1b[1mtext");
        // A character cut between chunks is still text.
        let mut s = AnsiStripper::default();
        let mut out = Vec::new();
        s.strip("é\x1b[1m".as_bytes(), &mut out);
        s.strip(&"ü".as_bytes()[..1], &mut out);
        s.strip(&"ü".as_bytes()[1..], &mut out);
        assert_eq!(out, "éü".as_bytes());
    }

    fn strip(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        AnsiStripper::default().strip(input, &mut out);
        out
    }

    /// The same input fed in every possible two-way split, and byte by byte.
    fn strip_split_everywhere(input: &[u8]) -> Vec<u8> {
        let whole = strip(input);
        for cut in 0..=input.len() {
            let mut s = AnsiStripper::default();
            let mut out = Vec::new();
            s.strip(&input[..cut], &mut out);
            s.strip(&input[cut..], &mut out);
            assert_eq!(out, whole, "split at {cut}");
        }
        let mut s = AnsiStripper::default();
        let mut out = Vec::new();
        for b in input {
            s.strip(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, whole, "byte by byte");
        whole
    }

    #[test]
    fn colours_are_removed_and_text_kept() {
        // What Vite prints for one output file.
        let line = b"\x1b[2mdist/\x1b[0m\x1b[32mindex.html  \x1b[0m\x1b[1;2m0.46 kB\x1b[0m\n";
        assert_eq!(strip_split_everywhere(line), b"dist/index.html  0.46 kB\n");
        // 256-colour and truecolor forms, and a reset without parameters.
        assert_eq!(
            strip_split_everywhere(b"\x1b[38;5;208ma\x1b[48;2;1;2;3mb\x1b[mc"),
            b"abc"
        );
    }

    #[test]
    fn cursor_and_erase_sequences_are_removed_but_carriage_returns_kept() {
        // Vite's progress line on a terminal.
        assert_eq!(
            strip_split_everywhere(b"\x1b[2K\rrendering chunks (1)...\x1b[2K\rdone\n"),
            b"\rrendering chunks (1)...\rdone\n"
        );
        assert_eq!(
            strip_split_everywhere(b"\x1b[?25lhidden\x1b[?25h"),
            b"hidden"
        );
    }

    #[test]
    fn osc_hyperlinks_and_titles_are_removed_with_either_terminator() {
        let link = b"see \x1b]8;;https://vite.dev/guide\x1b\\the guide\x1b]8;;\x1b\\.\n";
        assert_eq!(strip_split_everywhere(link), b"see the guide.\n");
        assert_eq!(strip_split_everywhere(b"\x1b]0;vite build\x07ok"), b"ok");
        // DCS and APC strings end with ST too.
        assert_eq!(
            strip_split_everywhere(b"a\x1bPq#0\x1b\\b\x1b_x\x1b\\c"),
            b"abc"
        );
    }

    #[test]
    fn two_byte_and_charset_escapes_are_removed() {
        assert_eq!(strip_split_everywhere(b"\x1b7saved\x1b8"), b"saved");
        assert_eq!(strip_split_everywhere(b"\x1b(Bplain\x1b=x"), b"plainx");
    }

    #[test]
    fn text_without_escapes_is_untouched() {
        let text = "✓ 11 modules transformed.\r\n\ttab [brackets] ] \\ ~ é\n".as_bytes();
        assert_eq!(strip_split_everywhere(text), text);
        let binary = [0u8, 0x9b, 0xff, b'[', b'm', 0x07];
        assert_eq!(strip_split_everywhere(&binary), binary);
    }

    #[test]
    fn a_broken_sequence_never_eats_more_than_its_line() {
        // An OSC without a terminator ends at the newline.
        assert_eq!(
            strip_split_everywhere(b"\x1b]8;;url\nnext line\n"),
            b"\nnext line\n"
        );
        // A CSI interrupted by a non-ASCII byte: the byte is text again.
        assert_eq!(strip_split_everywhere("\x1b[3é".as_bytes()), "é".as_bytes());
        // CAN cancels, and a new ESC starts over.
        assert_eq!(strip_split_everywhere(b"\x1b[31\x18x\x1b[\x1b[0my"), b"xy");
        // A newline inside a CSI is executed, as a terminal does.
        assert_eq!(strip_split_everywhere(b"\x1b[3\n1mz"), b"\nz");
    }

    #[test]
    fn reset_forgets_an_open_sequence() {
        let mut s = AnsiStripper::default();
        let mut out = Vec::new();
        s.strip(b"a\x1b]0;title", &mut out);
        s.reset();
        s.strip(b"b", &mut out);
        assert_eq!(out, b"ab");
    }
}

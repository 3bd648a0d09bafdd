//! Normalising console output so two runs can be compared: durations vary run to run, colours
//! depend on the terminal, and temp-dir paths differ per test.

use std::path::Path;

/// The placeholder that replaces every duration.
pub(crate) const DURATION: &str = "<duration>";

/// Replaces durations such as `269ms`, `1.2s`, `15µs`, `3us`, `40ns`, `2m` with `<duration>`.
///
/// A duration is a number (digits, optionally `.digits`) directly followed by a unit and then
/// by something that is not a letter or digit; the number must not follow a letter, digit, `_`
/// or `.` (so `f2s`, `v1.2s` and `0.46 kB` are left alone).
pub(crate) fn strip_durations(text: &str) -> String {
    const UNITS: [&str; 6] = ["ms", "µs", "us", "ns", "s", "m"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts_number = c.is_ascii_digit()
            && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.');
        if starts_number {
            let number_len = number_prefix_len(rest);
            let after = &rest[number_len..];
            let unit = UNITS.iter().find(|unit| {
                after.starts_with(*unit)
                    && !after[unit.len()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric)
            });
            if let Some(unit) = unit {
                out.push_str(DURATION);
                rest = &after[unit.len()..];
                prev = unit.chars().last();
                continue;
            }
            // Not a duration: copy the whole number so its tail digits are not re-examined.
            out.push_str(&rest[..number_len]);
            prev = rest[..number_len].chars().last();
            rest = after;
            continue;
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Length in bytes of the `digits[.digits]` at the start of `s` (which starts with a digit).
fn number_prefix_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut i = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        i += bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    }
    i
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final` and two-byte `ESC x`).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // A two-byte `ESC x` is dropped whole; a CSI runs to its final byte in '@'..='~'.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Output ready to compare: no colours, no durations, the workspace root shown as `<root>`.
pub(crate) fn normalize(text: &str, root: &Path) -> String {
    let text = strip_ansi(text);
    let text = text.replace(&*root.to_string_lossy(), "<root>");
    strip_durations(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_are_replaced() {
        assert_eq!(strip_durations("built in 269ms"), "built in <duration>");
        assert_eq!(strip_durations("1.2s saved."), "<duration> saved.");
        assert_eq!(
            strip_durations("(15µs, 3us, 40ns, 2m)"),
            "(<duration>, <duration>, <duration>, <duration>)"
        );
        assert_eq!(strip_durations("took 1m 3s"), "took <duration> <duration>");
    }

    #[test]
    fn things_that_only_look_like_durations_are_kept() {
        let kept = [
            "dist/index.html  0.46 kB",
            "f2s and v1.2s and x_5ms",
            "3 routes, 10 files",
            "2 modules, 5 msgs",
            "p099 f000.js",
            "100%",
        ];
        for text in kept {
            assert_eq!(strip_durations(text), text, "{text}");
        }
    }

    #[test]
    fn a_number_then_a_unit_word_is_not_a_duration() {
        assert_eq!(strip_durations("5 seconds 5seconds"), "5 seconds 5seconds");
        assert_eq!(strip_durations("4mb"), "4mb");
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(
            strip_durations("◉ cache hit, 12ms — ok"),
            "◉ cache hit, <duration> — ok"
        );
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[1;32m✓\u{1b}[39m built\u{1b}[0m"),
            "✓ built"
        );
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("trailing \u{1b}"), "trailing ");
    }

    #[test]
    fn normalize_combines_all_three() {
        let root = Path::new("/tmp/vp-e2e-x/ws");
        let text = "\u{1b}[2m/tmp/vp-e2e-x/ws/packages/a\u{1b}[0m$ node build.js 1.5s";
        assert_eq!(
            normalize(text, root),
            "<root>/packages/a$ node build.js <duration>"
        );
    }
}

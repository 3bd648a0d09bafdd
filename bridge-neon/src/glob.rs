//! A small glob matcher for env names, used only when the addon runs
//! outside vp and must answer `getEnvs("VITE_*")` from `process.env`. It
//! follows the runner's rules (globset defaults): `*` any run, `?` one
//! char, `[a-z]` / `[!a-z]` classes, `{a,b}` alternatives, `\` escapes.

/// Whether `name` matches `pattern` as a whole.
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    expand_braces(pattern).iter().any(|p| match_here(p, name))
}

/// `a{b,c}d` → `abd`, `acd` (nested braces expanded recursively).
fn expand_braces(pattern: &[u8]) -> Vec<Vec<u8>> {
    let mut depth = 0usize;
    let mut open = None;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => i += 1,
            b'{' => {
                if depth == 0 {
                    open = Some(i);
                }
                depth += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0
                    && let Some(start) = open
                {
                    let (head, tail) = (&pattern[..start], &pattern[i + 1..]);
                    let mut out = Vec::new();
                    for alt in split_top_level(&pattern[start + 1..i]) {
                        let mut joined = head.to_vec();
                        joined.extend_from_slice(alt);
                        joined.extend_from_slice(tail);
                        out.extend(expand_braces(&joined));
                    }
                    return out;
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![pattern.to_vec()]
}

fn split_top_level(inner: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < inner.len() {
        match inner[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&inner[start.min(inner.len())..]);
    parts
}

fn match_here(pattern: &[u8], name: &[u8]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return name.is_empty();
    };
    match first {
        b'*' => (0..=name.len()).any(|skip| match_here(rest, &name[skip..])),
        b'?' => !name.is_empty() && match_here(rest, &name[1..]),
        b'[' => match (name.split_first(), class(rest)) {
            (Some((&c, name_rest)), Some((set, after))) => set(c) && match_here(after, name_rest),
            // An unclosed `[` is a literal.
            (Some((&c, name_rest)), None) => c == b'[' && match_here(rest, name_rest),
            (None, _) => false,
        },
        b'\\' if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && match_here(&rest[1..], &name[1..])
        }
        literal => name.first() == Some(&literal) && match_here(rest, &name[1..]),
    }
}

/// Parses a class body after `[`; returns a membership test and the rest.
fn class(pattern: &[u8]) -> Option<(impl Fn(u8) -> bool, &[u8])> {
    let (negated, body) = match pattern.first() {
        Some(b'!' | b'^') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    // A `]` right after the opening is a member, not the end.
    let end = body.iter().skip(1).position(|&b| b == b']')? + 1;
    let members = body[..end].to_vec();
    let test = move |c: u8| {
        let mut found = false;
        let mut i = 0;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == b'-' {
                found |= (members[i]..=members[i + 2]).contains(&c);
                i += 3;
            } else {
                found |= members[i] == c;
                i += 1;
            }
        }
        found != negated
    };
    Some((test, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_like_the_runner() {
        let cases: &[(&str, &str, bool)] = &[
            ("VITE_*", "VITE_A", true),
            ("VITE_*", "VITE_", true),
            ("VITE_*", "XVITE_A", false),
            ("*_ENV", "NODE_ENV", true),
            ("NODE_?NV", "NODE_ENV", true),
            ("[A-C]X", "BX", true),
            ("[!A-C]X", "BX", false),
            ("{VITE,NEXT}_*", "NEXT_PUBLIC", true),
            ("{VITE,NEXT}_*", "NUXT_A", false),
            ("A\\*", "A*", true),
            ("A\\*", "AB", false),
            ("[unclosed", "[unclosed", true),
            ("", "", true),
            ("", "A", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), name.as_bytes()),
                *want,
                "{pattern} vs {name}"
            );
        }
    }
}

//! Human sizes for the cache bound: parsing `5GiB`, `500MB`, `1.5G`, `1024`
//! (`--max-size`, `VP_CACHE_MAX_SIZE`) and printing byte counts.

/// The bound used when nothing is configured: caches must not grow to tens
/// of GB unnoticed (Turborepo #863).
pub(crate) const DEFAULT_MAX_SIZE: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid size `{0}`\n(hint: use a number of bytes or a unit, e.g. `500MB`, `2GiB`, `1.5G`)"
)]
pub(crate) struct SizeError(pub(crate) String);

/// `KB`/`MB`/`GB`/`TB` are decimal, `KiB`... and bare `K`/`M`/`G`/`T` binary.
pub(crate) fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || !(0.0..=1.8e19).contains(&bytes) {
        return Err(err());
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes.round() as u64)
}

/// `1.5 GiB`, `12.0 KiB`, `512 B`.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5G"), Ok(1_610_612_736));
        assert_eq!(parse_size(" 10 kib "), Ok(10_240));
        assert_eq!(parse_size("5gb"), Ok(5_000_000_000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "GB", "-1", "1.2.3M", "12 parsecs", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(
            parse_size("x")
                .expect_err("bad")
                .to_string()
                .starts_with("invalid size `x`")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(DEFAULT_MAX_SIZE), "5.0 GiB");
    }
}

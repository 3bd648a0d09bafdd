//! The CLI's documentation, executed: every case under `tests/cmd/` runs the
//! real `vp` binary and compares its output. `TRYCMD=overwrite` updates them.

#[test]
fn cli_cases() {
    trycmd::TestCases::new()
        .env("NO_COLOR", "1")
        .case("../tests/cmd/**/*.toml")
        // Literate cases: several commands in one sandbox (a miss, then a hit).
        .case("../tests/cmd/**/*.trycmd");
}

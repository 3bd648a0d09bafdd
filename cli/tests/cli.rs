//! The CLI's documentation, executed: every case under `tests/cmd/` runs the
//! real `vp` binary and compares its output. `TRYCMD=overwrite` updates them.

#[test]
fn cli_cases() {
    // The cases that need a terminal run vp under util-linux `script`, which
    // finds it on PATH.
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_vp"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("the PATH entries contain no separator");
    let script = std::path::Path::new("/usr/bin/script");
    let cases = trycmd::TestCases::new();
    if script.is_file() {
        cases.register_bin("script", script);
    } else {
        // Without util-linux the terminal cases cannot run; they are skipped.
        cases.register_bin("script", trycmd::schema::Bin::Ignore);
    }
    cases
        .env("NO_COLOR", "1")
        .env("PATH", path.to_string_lossy())
        .case("../tests/cmd/**/*.toml")
        // Literate cases: several commands in one sandbox (a miss, then a hit).
        .case("../tests/cmd/**/*.trycmd");
}

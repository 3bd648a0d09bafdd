//! Every CLI behaviour documented by a trycmd case under `tests/cmd/`
//! (run `TRYCMD=overwrite cargo test -p vp --test cli` to update them).

#[test]
fn cli_cases() {
    trycmd::TestCases::new().case("../tests/cmd/**/*.toml");
}

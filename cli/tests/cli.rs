//! Every documented CLI behaviour, as trycmd cases under `tests/cmd/`.

#[test]
fn cli_cases() {
    trycmd::TestCases::new().case("../tests/cmd/**/*.toml");
}

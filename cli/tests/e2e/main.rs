//! End-to-end tests: the real `vp` binary runs real Node (and real Vite from npm) in fresh copies
//! of the workspaces under `fixtures/`.
//!
//! This directory is one test target (`cargo test -p vp --test e2e`, `just e2e`): cargo finds
//! `tests/e2e/main.rs`, and its modules sit beside it. Layout: `harness` owns everything reusable
//! (copying a fixture to a temp dir, running `vp` or any program with a timeout, comparing
//! directory trees, normalising output); every other module is one area of scenarios. Add a
//! module per feature next to `smoke`, `cache` and `vite_build`, and declare it here.
//!
//! The tests install nothing: `scripts/bootstrap.sh` (run by `scripts/test.sh`) installs the npm
//! dependencies of the fixtures that have some, and the harness fails with that instruction when
//! they are missing. `VP_E2E_KEEP=1` keeps every test's copy of its fixture for inspection.

mod cache;
mod cache_tip;
mod colours;
mod create_vite;
mod dry_run;
mod eslint_vitest;
mod harness;
mod npm_package;
mod pre_post;
mod real_projects;
mod remote;
mod run;
mod signals;
mod smoke;
mod trust;
mod vite_build;
mod watch;

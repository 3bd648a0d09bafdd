//! Reusable pieces for the e2e scenarios: a fixture copied to a temp dir (`Workspace`), a
//! process runner with a timeout that captures everything (`Run`, `Output`), byte-for-byte
//! directory snapshots (`Tree`), and text normalisation for comparing console output.

// This is a toolbox for scenario modules: not every helper is used by every set of scenarios,
// and a helper must not disappear (or warn) just because the scenarios using it are not written yet.
#![allow(dead_code, unused_imports)]

mod run;
mod text;
mod tree;
mod workspace;

pub(crate) use nix::sys::signal::Signal;
pub(crate) use run::{Output, Run, Running, alive, wait_until};
pub(crate) use text::{normalize, strip_ansi, strip_durations};
pub(crate) use tree::{Entry, Tree, assert_same_tree};
pub(crate) use workspace::{NodeModules, Workspace, fixture_dir, repo_root, vp_bin};

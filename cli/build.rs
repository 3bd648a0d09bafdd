//! Builds the Node addon (`bridge-neon`) and leaves it in `OUT_DIR` so the
//! `vp` binary can embed it (`src/bridge/addon.rs`): `cargo build -p vp`
//! alone yields a binary that can hand every child a working addon.
//!
//! The addon is built by a nested `cargo build` with its own `--target-dir`
//! (the outer cargo holds the lock on the main one). Set `VP_BRIDGE_ADDON`
//! to a prebuilt `.node` file to embed that instead (packaging, cross builds).
//!
//! It also compiles the in-process tracer library (`preload/`, C, preloaded
//! into traced programs: `src/trace/in_process.rs`) with the C compiler
//! (`$CC`, else `cc`), into `OUT_DIR` for the binary to embed likewise.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("cli/ has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let dest = out_dir.join("vp-bridge.node");

    println!("cargo:rerun-if-env-changed=VP_BRIDGE_ADDON");
    for watched in [
        "ipc/src",
        "ipc/Cargo.toml",
        "bridge-neon/src",
        "bridge-neon/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let built = match env::var_os("VP_BRIDGE_ADDON") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => build_addon(&root, &out_dir)?,
    };
    let bytes = fs::read(&built)
        .map_err(|e| format!("cannot read the built addon `{}`: {e}", built.display()))?;
    fs::write(&dest, &bytes).map_err(|e| format!("cannot write `{}`: {e}", dest.display()))?;
    // Content hash for the materialized file name: a new addon never
    // reuses an old file, identical builds share one.
    println!(
        "cargo:rustc-env=VP_BRIDGE_ADDON_HASH={:016x}",
        fnv1a64(&bytes)
    );
    build_preload(&manifest_dir, &out_dir)
}

/// Compiles `preload/vp_trace_preload.c` into `OUT_DIR/vp-trace-preload.so`.
fn build_preload(manifest_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let source = manifest_dir.join("preload").join("vp_trace_preload.c");
    let dest = out_dir.join("vp-trace-preload.so");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=CC");
    let compiler = env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = Command::new(&compiler)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-fvisibility=hidden",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
        ])
        .arg(&dest)
        .arg(&source)
        .status()
        .map_err(|e| {
            format!(
                "cannot run the C compiler `{}` to build the in-process tracer: {e} \
                 (install a C compiler, or set CC)",
                compiler.to_string_lossy()
            )
        })?;
    if !status.success() {
        return Err(format!(
            "compiling `{}` failed with {status}",
            source.display()
        ));
    }
    let bytes = fs::read(&dest)
        .map_err(|e| format!("cannot read the built library `{}`: {e}", dest.display()))?;
    println!(
        "cargo:rustc-env=VP_TRACE_PRELOAD_HASH={:016x}",
        fnv1a64(&bytes)
    );
    Ok(())
}

fn build_addon(root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = env_var("TARGET")?;
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let target_dir = addon_target_dir(out_dir);
    let profile_env = if release { "RELEASE" } else { "DEV" };

    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["-p", "vp-bridge-neon", "--target", &target])
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    // The embedded copy needs no debug info (smaller binary, faster build)
    // and is always optimized: every tool call goes through it, and a dev
    // build of vp should not make tools measurably slower.
    cmd.env(format!("CARGO_PROFILE_{profile_env}_DEBUG"), "0")
        .env(format!("CARGO_PROFILE_{profile_env}_OPT_LEVEL"), "2")
        .env(format!("CARGO_PROFILE_{profile_env}_STRIP"), "debuginfo")
        // Under `cargo clippy` the workspace wrapper would lint the addon
        // again (and could fail this build); the outer run lints it anyway.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CARGO_TARGET_DIR");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build the node addon: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the node addon (`cargo build -p vp-bridge-neon`) failed with {status}"
        ));
    }
    let profile_dir = if release { "release" } else { "debug" };
    Ok(target_dir.join(&target).join(profile_dir).join(format!(
        "{}vp_bridge_neon{}",
        dll_prefix(&target),
        dll_suffix(&target)
    )))
}

/// `<target>/<profile>/bridge-addon` next to cargo's own `build/` dir, so
/// the nested build is shared by every build of `vp` in that profile.
fn addon_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("bridge-addon"))
        .unwrap_or_else(|| out_dir.join("bridge-addon"))
}

fn dll_prefix(target: &str) -> &'static str {
    if target.contains("windows") {
        ""
    } else {
        "lib"
    }
}

fn dll_suffix(target: &str) -> &'static str {
    if target.contains("apple") {
        ".dylib"
    } else if target.contains("windows") {
        ".dll"
    } else {
        ".so"
    }
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("`{name}` is not set (is this run by cargo?)"))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

//! `vp build`: the package's own `vite build`, run as a cached task with no
//! configuration. Vite is started as `node <vite bin> build` (never through
//! npx, which costs ~150 ms and writes `~/.npm/_logs`), with `NODE_ENV` and
//! `VITE_USER_NODE_ENV` declared so they reach Vite exactly as under a plain
//! `vite build` and are fingerprinted; Vite asks for its `VITE_*` (or
//! `envPrefix`) variables itself over the bridge.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::command::{execute_specs, header_cwd};
use super::command_line::CommandItem;
use super::env::{EnvPolicy, Framework};
use super::resolve;
use super::scheduler::SchedulerOptions;
use super::task::TaskSpec;
use crate::args::BuildArgs;
use crate::regular_file;
use crate::workspace::Workspace;

/// Variables Vite reads before it could ask the runner, declared for it.
const VITE_DECLARED_ENV: &[&str] = &["NODE_ENV", "VITE_USER_NODE_ENV"];

pub(crate) fn build(args: BuildArgs) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let ws = Workspace::load(&cwd)?;
    let pkg = &ws.packages[ws.package_containing(&cwd).unwrap_or(0)];
    let vite_bin = find_vite_bin(&pkg.dir).ok_or_else(|| {
        anyhow::anyhow!(
            "`vp build` runs the project's own Vite, but `vite` is not installed in `{}` or any parent directory\n(hint: install it with `npm install -D vite`, then run `vp build` again)",
            pkg.dir.display()
        )
    })?;
    let full_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let bins = resolve::bin_dirs(&pkg.dir, &ws.root);
    let path = resolve::child_path(&bins, std::env::var_os("PATH").as_deref());
    let node = resolve::ProgramSearch::new(&ws.root)
        .find("node", &pkg.dir, &path)
        .map_err(|_| {
        anyhow::anyhow!("`vp build` needs Node.js, but `node` is not on PATH\n(hint: install Node.js 20 or newer)")
    })?;
    let declared: Vec<String> = VITE_DECLARED_ENV.iter().map(|s| (*s).to_owned()).collect();
    let label = format!("{}#vp build", pkg.name);
    let env_policy = EnvPolicy::new(&label, &declared, &[], Framework::Plain)?;
    let mut child_env = env_policy.child_env(&full_env);
    child_env.retain(|(k, _)| k != "PATH");
    child_env.push(("PATH".into(), path));
    let mut argv = vec![
        node.to_string_lossy().into_owned(),
        vite_bin.to_string_lossy().into_owned(),
        "build".to_owned(),
    ];
    argv.extend(args.vite_args.iter().cloned());
    let mut display = String::from("vp build");
    if !args.vite_args.is_empty() {
        display.push(' ');
        display.push_str(&shell_words::join(&args.vite_args));
    }
    let text = display.clone();
    let spec = TaskSpec {
        label,
        display: Some(display),
        items: vec![CommandItem::Direct { argv, text }],
        header_cwd: header_cwd(&ws.root, &pkg.dir),
        package_dir: pkg.dir.clone(),
        inputs: crate::cache::GlobConfig::auto(),
        outputs: crate::cache::GlobConfig::auto(),
        cwd: pkg.dir.clone(),
        env_policy,
        child_env,
        cache_enabled: !args.exec.no_cache,
        uncached_by_default: false,
        interactive: false,
    };
    let opts = SchedulerOptions {
        concurrency: 1,
        parallel: false,
    };
    execute_specs(&ws, vec![spec], &[Vec::new()], &args.exec, &opts)
}

/// The `vite` bin script as Node would resolve `vite` from `dir`: the nearest
/// `node_modules/vite/package.json`, its `bin` entry.
fn find_vite_bin(dir: &Path) -> Option<PathBuf> {
    for d in dir.ancestors() {
        let pkg_dir = d.join("node_modules/vite");
        let Ok(text) = regular_file::read_to_string(&pkg_dir.join("package.json")) else {
            continue;
        };
        let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
        let bin = match &manifest["bin"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(m) => m.get("vite")?.as_str()?.to_owned(),
            _ => "bin/vite.js".to_owned(),
        };
        let path = pkg_dir.join(bin);
        return path.is_file().then_some(path);
    }
    None
}

//! vp as a JS tool installs it: `scripts/package-npm.sh` packs the launcher and this machine's
//! platform package, `npm install <tarballs>` (no registry) puts `vp` in `node_modules/.bin`,
//! and `vp --version`, `vp run build` and `npx vp build` work from the project.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use crate::harness::{Run, Signal, fixture_dir, repo_root, vp_bin, wait_until};

/// A copy of the dev binary without debug info: the same program, a fraction of the bytes to
/// pack and unpack (the release build is what users get, but CI builds only the dev profile).
fn slim_binary(dir: &Path) -> PathBuf {
    let slim = dir.join("vp");
    let out = Run::new("objcopy", dir)
        .arg("--strip-debug")
        .arg(vp_bin())
        .arg(&slim)
        .output();
    if out.success() { slim } else { vp_bin() }
}

#[test]
fn the_npm_packages_install_without_a_registry_and_run_vp() {
    let temp = tempfile::tempdir().expect("a temp dir");
    let tmp = fs::canonicalize(temp.path()).expect("the temp dir resolves");
    let out_dir = tmp.join("npm");
    let packed = Run::new("bash", &repo_root())
        .arg("scripts/package-npm.sh")
        .env("VP_BIN", slim_binary(&tmp))
        .env("VP_NPM_OUT", &out_dir)
        .output();
    packed.assert_success();
    let mut tarballs: Vec<PathBuf> = fs::read_dir(&out_dir)
        .expect("the tarballs' directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    tarballs.sort();
    let names: Vec<String> = tarballs
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "vp-runner-linux-x64-gnu-0.1.0.tgz",
            "vp-runner-vp-0.1.0.tgz"
        ],
        "{}",
        packed.combined()
    );

    // A Vite project; vite itself is linked from the fixture (read only) after the install.
    let project = tmp.join("project");
    let app = fixture_dir("vite-app");
    fs::create_dir_all(project.join("node_modules")).expect("mkdir");
    for f in ["index.html", "vite.config.js"] {
        fs::copy(app.join(f), project.join(f)).expect("copy a fixture file");
    }
    copy_dir(&app.join("src"), &project.join("src"));
    copy_dir(&app.join("public"), &project.join("public"));
    fs::write(
        project.join("package.json"),
        r#"{ "name": "npm-install-test", "version": "1.0.0", "private": true, "type": "module",
  "scripts": { "build": "node make.js", "wait": "node wait.js" } }
"#,
    )
    .expect("package.json");
    fs::write(
        project.join("make.js"),
        "import fs from 'node:fs';\nfs.mkdirSync('out', { recursive: true });\nfs.writeFileSync('out/made.txt', 'made');\nconsole.log('made');\n",
    )
    .expect("make.js");

    let installed = Run::new("npm", &project)
        .args(["install", "--no-audit", "--no-fund", "--offline"])
        .args(&tarballs)
        .output();
    installed.assert_success();
    let vp = project.join("node_modules/.bin/vp");
    assert!(vp.exists(), "{}", installed.combined());
    // After the install: npm prunes what package.json does not list.
    fs::write(
        project.join("wait.js"),
        "import fs from 'node:fs';\nfs.writeFileSync('waiting', '');\nsetTimeout(() => {}, 60000);\n",
    )
    .expect("wait.js");
    symlink(
        app.join("node_modules/vite"),
        project.join("node_modules/vite"),
    )
    .expect("link vite");

    let version = Run::new(&vp, &project).arg("--version").output();
    version.assert_success();
    assert_eq!(version.stdout.trim(), "vp 0.1.0");

    let first = Run::new(&vp, &project)
        .args(["run", "build", "--cache"])
        .output();
    first.assert_success();
    assert!(first.stdout.contains("made"), "{}", first.combined());
    let second = Run::new(&vp, &project)
        .args(["run", "build", "--cache"])
        .output();
    second.assert_success();
    assert!(
        second.stderr.contains("◉ cache hit, replaying"),
        "{}",
        second.combined()
    );

    let built = Run::new("npx", &project)
        .args(["--offline", "vp", "build"])
        .output();
    built.assert_success();
    assert!(
        project.join("dist/index.html").is_file(),
        "{}",
        built.combined()
    );

    // A SIGTERM to the launcher alone (`kill`, `timeout`, a CI cancel) reaches vp, which stops
    // its task and exits 143; the launcher ends the same way.
    let running = Run::new(&vp, &project).args(["run", "wait"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        wait_until(deadline, || project.join("waiting").exists()),
        "the task never started"
    );
    running.signal(Signal::SIGTERM);
    let stopped = running.wait();
    assert_eq!(stopped.code, Some(143), "{}", stopped.combined());
    assert!(
        stopped.elapsed < Duration::from_secs(20),
        "{}",
        stopped.combined()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read a fixture dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy a fixture file");
        }
    }
}

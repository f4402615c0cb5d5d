//! The Node.js package's own test suite (`node --test`), run by `cargo test`
//! so that the repository's single test command covers it.
//!
//! It builds the addon and the `bisman` binary with the same cargo and
//! profile (a nested `cargo build`: cargo holds no lock while tests run),
//! installs the package's development dependencies with `npm ci` when they
//! are missing or older than `package-lock.json`, then runs every
//! `test/*.test.js` against the addon just built. The tests need what the
//! Rust tests need: PostgreSQL and Redis (`BISMAN_TEST_DATABASE_URL`,
//! `BISMAN_TEST_REDIS_URL`), plus Node.js 20 or later and npm.

use std::path::{Path, PathBuf};
use std::process::Command;

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> PathBuf {
    package_dir()
        .parent()
        .and_then(Path::parent)
        .expect("bindings/node sits two levels below the workspace")
        .to_path_buf()
}

/// Runs `cmd` (inheriting output) and fails the test with `what` when it fails.
fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(status.success(), "{what} failed ({status})");
}

/// Node.js 20 or later, or a clear failure.
fn check_node() {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .expect("the Node.js package's tests need Node.js 20 or later (`node` is not on PATH)");
    let version = String::from_utf8_lossy(&out.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the Node.js package needs Node.js 20 or later, found {version}"
    );
}

/// `npm ci` unless `node_modules` is there and newer than `package-lock.json`.
fn install_dev_dependencies(pkg: &Path) {
    let stamp = pkg.join("node_modules").join(".package-lock.json");
    let lock = pkg.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if !fresh {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(pkg),
            "npm ci (the package's development dependencies)",
        );
    }
}

#[test]
fn node_package_suite() {
    check_node();
    let pkg = package_dir();
    let workspace = workspace_dir();
    install_dev_dependencies(&pkg);

    let release = !cfg!(debug_assertions);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Two builds: `--bin` would narrow a combined one to the binary alone.
    for (what, args) in [
        (
            "building the addon",
            &["build", "-p", "bisman-cache-node", "--lib"][..],
        ),
        (
            "building bisman",
            &["build", "-p", "bisman", "--bin", "bisman"][..],
        ),
    ] {
        let mut build = Command::new(&cargo);
        build.args(args).current_dir(&workspace);
        if release {
            build.arg("--release");
        }
        run(&mut build, what);
    }

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join(if release { "release" } else { "debug" });
    let addon = target.join(format!(
        "{}bisman_cache_node{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let bisman = target.join(format!("bisman{}", std::env::consts::EXE_SUFFIX));
    assert!(addon.exists(), "no addon at {}", addon.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(pkg.join("test"))
        .expect("bindings/node/test")
        .map(|e| e.expect("a test file").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the package's test files: {files:?}");

    run(
        Command::new("node")
            .arg("--test")
            .args(&files)
            .env("BISMAN_CACHE_ADDON", &addon)
            .env("BISMAN_BIN", &bisman)
            .current_dir(&pkg),
        "the Node.js package's tests (node --test bindings/node/test)",
    );
}

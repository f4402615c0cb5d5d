//! `bisman bench` end to end against the test PostgreSQL and Redis: a
//! `--quick` run prints every row of the spec's table and writes files that
//! parse. Timings are never asserted.

use std::process::{Command, Output};

use bisman_bench::report::SPEC_ROWS;
use bisman_testkit::{admin_url, redis_url};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bisman"))
        .arg("bench")
        .args(args)
        .env("DATABASE_URL", admin_url())
        .env("REDIS_URL", redis_url())
        .env("BISMAN_LOG", "warn")
        .output()
        .expect("run bisman")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn quick_bench_prints_every_row_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!(
        "bisman-bench-cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = bench(&["--quick", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();

    for (_, label, spec_before, spec_after, ..) in SPEC_ROWS {
        let label = label.replace("{rows}", "20k");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{stdout}"));
        assert!(!line.contains("skipped"), "{line}");
        for spec in [spec_before, spec_after]
            .into_iter()
            .filter(|s| !s.is_empty())
        {
            assert!(line.contains(spec), "{line}");
        }
    }
    assert!(stdout.contains("| measured before | measured after | measured ratio |"));
    assert!(stdout.contains("## Aims (docs/AIMS.md)"));
    // Peers are measured, or the report says how to include them.
    assert!(
        stdout.contains("casbin enforce vs our near-cache hit")
            && (!stdout.contains("Peers were skipped")
                || stdout.contains("--features bench-peers")),
        "{stdout}"
    );

    let md = std::fs::read_to_string(dir.join("bench.md")).expect("bench.md");
    assert_eq!(md, stdout);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bench.json")).expect("bench.json"))
            .expect("bench.json parses");
    assert_eq!(
        json["spec_table"].as_array().unwrap().len(),
        SPEC_ROWS.len()
    );
    assert_eq!(
        json["command"],
        "bisman bench --quick --out ".to_string() + dir.to_str().unwrap()
    );
    assert!(json["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(json["machine"]["memory_gib"].as_f64().is_some());
    assert_eq!(json["shape"]["rows"], 20_000);
    assert_eq!(json["datasets"].as_array().unwrap().len(), 2);
    assert!(!json["measurements"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(dir.join("bench.svg")).expect("bench.svg");
    assert!(
        svg.trim_start().starts_with("<svg"),
        "{}",
        &svg[..svg.len().min(200)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_clap_errors_not_panics() {
    for args in [
        &["--rows", "abc"][..],
        &["--rows", "10"],
        &["--rows", "1G"],
        &["--seed", "x"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("invalid value"), "{}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    let help = bench(&["--help"]);
    assert!(help.status.success());
    for flag in ["--rows", "--quick", "--out", "--redis-url", "--rebuild"] {
        assert!(text(&help).contains(flag), "{flag}");
    }
}

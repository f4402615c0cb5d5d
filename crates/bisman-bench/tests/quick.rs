//! A `--quick` run of the whole benchmark through the library, with the
//! peers built in (this crate's tests enable its `peers` feature): every row
//! of every table is produced and the files parse. Timings are never
//! asserted.

use bisman_bench::measure::{Layer, Operation};
use bisman_bench::report::{Verdict, SPEC_ROWS};
use bisman_bench::{BenchOptions, NoProgress, Rows};
use bisman_testkit::{admin_url, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_run_fills_every_row_with_peers() {
    let out = std::env::temp_dir().join(format!("bisman-bench-{}", uuid::Uuid::new_v4().simple()));
    let opts = BenchOptions {
        rows: Rows::QUICK,
        quick: true,
        out: out.clone(),
        database_url: admin_url(),
        redis_url: Some(redis_url()),
        rebuild: false,
        seed: 42,
        command: "bisman bench --quick".into(),
    };
    let report = bisman_bench::run(&opts, &NoProgress)
        .await
        .expect("bench run");

    assert!(report.peers_built, "the tests build the peers");
    assert_eq!(report.spec_table.len(), SPEC_ROWS.len());
    for row in &report.spec_table {
        assert!(
            row.before_p50_us.is_some() && row.after_p50_us.is_some() && row.ratio.is_some(),
            "row {} not measured: {:?}",
            row.id,
            row.skipped
        );
    }
    for m in &report.measurements {
        assert!(
            m.skipped.is_none(),
            "{:?}/{:?} skipped: {:?}",
            m.operation,
            m.layer,
            m.skipped
        );
        let s = m.summary.expect("summary");
        assert_eq!(s.samples, m.samples_us.len());
        assert!(s.p50_us <= s.p95_us && s.p95_us <= s.p99_us);
    }
    for (op, layer) in [
        (Operation::PermissionCheck, Layer::Casbin),
        (Operation::SessionLookup, Layer::TowerSessionsRedis),
        (Operation::UnreadCount, Layer::ReadPosition),
    ] {
        assert!(
            report.find(op, layer).and_then(|m| m.summary).is_some(),
            "{op:?}/{layer:?}"
        );
    }
    let casbin = report
        .find(Operation::PermissionCheck, Layer::Casbin)
        .unwrap();
    let agree = casbin.note.as_deref().unwrap_or_default();
    let checks = report.effort.keys;
    assert!(
        agree.contains(&format!("agree with ours on {checks} of {checks} checks")),
        "casbin loaded with the same roles makes the same decisions: {agree}"
    );
    assert!(report.peers.iter().all(|p| p.ratio.is_some()));
    assert!(
        report
            .aims
            .iter()
            .all(|a| a.verdict != Verdict::NotMeasured),
        "{:?}",
        report.aims
    );
    // The layers answer the same questions the same way.
    for m in &report.measurements {
        if let Some(note) = &m.note {
            if let Some(rest) = note.split("answers agree with the first layer on ").nth(1) {
                let mut it = rest.split(" of ");
                let (a, b) = (
                    it.next().unwrap(),
                    it.next().unwrap().split(' ').next().unwrap(),
                );
                assert_eq!(a, b, "{:?}/{:?}: {note}", m.operation, m.layer);
            }
        }
    }
    // A time-bounded query is pruned to the partitions of its week.
    let range = report
        .find(Operation::DateRange, Layer::Partitioned)
        .unwrap();
    let touched = range
        .plan
        .as_ref()
        .unwrap()
        .touched("thread_messages_partitioned")
        .unwrap();
    assert!(
        (1..=2).contains(&touched),
        "a week touches {touched} partitions"
    );

    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert_eq!(md, report.markdown());
    for row in &report.spec_table {
        assert!(
            md.contains(&format!("| {} |", row.operation)),
            "{}",
            row.operation
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(
        json["spec_table"].as_array().unwrap().len(),
        SPEC_ROWS.len()
    );
    assert!(json["machine"]["postgres_version"].as_str().is_some());
    assert!(json["machine"]["redis_version"].as_str().is_some());
    assert!(
        json["measurements"][0]["samples_us"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
    let svg = std::fs::read_to_string(out.join("bench.svg")).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("session lookup"));
    let _ = std::fs::remove_dir_all(&out);

    // A second run reuses both data sets.
    let again = bisman_bench::run(&opts, &NoProgress)
        .await
        .expect("second run");
    assert!(again.datasets.iter().all(|d| d.reused));
    // The first run's marks as read were undone: the same pairs are unread again.
    for m in again
        .measurements
        .iter()
        .filter(|m| m.operation == Operation::MarkRead)
    {
        let note = m.note.as_deref().unwrap_or_default();
        assert!(!note.contains("already read"), "{:?}: {note}", m.layer);
    }
    let _ = std::fs::remove_dir_all(&out);
}

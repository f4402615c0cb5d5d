//! Every identifier path into dynamic SQL, fed generated hostile names:
//! the partition functions (`create_future_partitions`,
//! `drop_old_partitions`, `bisman_partitions`, `bisman_ensure_partitions`,
//! `bisman_managed_table`) refuse them with `invalid_parameter_value`, the
//! lifecycle commands' table arguments (`registry::roots`, what `bisman
//! partitions … --table` resolves) refuse them, and nothing is created or
//! dropped. The Rust quoting used to build statements is checked against
//! PostgreSQL itself: a quoted name always comes back as exactly that name.
//!
//! Fixed cases live in `partition_functions.rs` and the CLI's
//! `partitions_cli.rs`; these are generated. Cases: `BISMAN_PROPTEST_CASES`
//! (default 200).

use bisman_db::lifecycle::{ident, registry};
use bisman_testkit::TestDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Managed tables: the only names the functions accept.
const MANAGED: [&str; 5] = [
    "thread_messages",
    "client_usage_events",
    "audit_logs",
    "message_reads",
    "message_reactions",
];

fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("thread_messages".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just(";".to_string()),
        Just(" ".to_string()),
        Just("--".to_string()),
        Just("/*".to_string()),
        Just("$$".to_string()),
        Just("\\".to_string()),
        Just("DROP TABLE users".to_string()),
        Just(" OR 1=1".to_string()),
        Just("pg_catalog.".to_string()),
        Just("public.".to_string()),
        Just("%I".to_string()),
        Just("Ω".to_string()),
        "[a-z_]{1,8}",
        "[\\PC&&[^\u{0}]]{1,4}",
    ];
    prop::collection::vec(piece, 1..5)
        .prop_map(|v| v.concat())
        .prop_filter("not a managed table", |s| !MANAGED.contains(&s.as_str()))
}

fn cases() -> u32 {
    std::env::var("BISMAN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
fn hostile_identifiers_are_refused_without_side_effects() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::migrated());
    let catalog = "SELECT count(*) FROM pg_class";
    let before: i64 = rt
        .block_on(sqlx::query_scalar(catalog).fetch_one(&db.pool))
        .unwrap();
    let functions = [
        "SELECT count(*) FROM create_future_partitions($1, 1)",
        "SELECT count(*) FROM drop_old_partitions($1, 0)",
        "SELECT count(*) FROM drop_old_partitions($1, 0, true)",
        "SELECT count(*) FROM bisman_partitions($1)",
        "SELECT count(*) FROM bisman_ensure_partitions($1, current_date, 1)",
        "SELECT (bisman_managed_table($1)).base_table",
    ];
    let tried = std::sync::atomic::AtomicU64::new(0);
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
    .run(&hostile(), |name| {
        for sql in functions {
            let result = rt.block_on(sqlx::query(sql).bind(&name).fetch_all(&db.pool));
            let err = match result {
                Ok(_) => return Err(TestCaseError::fail(format!("{sql} accepted {name:?}"))),
                Err(e) => e,
            };
            let code = err
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.to_string()));
            prop_assert_eq!(
                code.as_deref(),
                Some("22023"),
                "{} {:?}: {}",
                sql,
                name,
                err
            );
            tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let roots = rt.block_on(registry::roots(&db.pool, std::slice::from_ref(&name)));
        prop_assert!(roots.is_err(), "--table {:?} was accepted", name);
        prop_assert!(
            ident::checked("table", &name).is_err()
                || name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{:?} passed as a plain identifier",
            name
        );
        Ok(())
    })
    .unwrap();
    let after: i64 = rt
        .block_on(sqlx::query_scalar(catalog).fetch_one(&db.pool))
        .unwrap();
    assert_eq!(before, after, "nothing was created or dropped");
    eprintln!("{} hostile identifier calls refused", tried.into_inner());
}

#[test]
fn quoted_names_always_come_back_as_themselves() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::migrated());
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
    .run(
        &hostile().prop_filter("fits in 63 bytes", |s| s.len() <= 63),
        |name| {
            let sql = format!("SELECT 1 AS {}", ident::quote(&name));
            let row = rt
                .block_on(sqlx::query(&sql).fetch_one(&db.pool))
                .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
            use sqlx::{Column, Row};
            prop_assert_eq!(row.columns()[0].name(), name.as_str());
            Ok(())
        },
    )
    .unwrap();
}

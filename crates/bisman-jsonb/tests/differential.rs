//! Differential property tests: the Rust parsers and the SQL functions of
//! the migrations give the same answer on generated JSONB, and the SQL never
//! raises an error (one malformed entry must be quarantined, not abort a
//! normalisation batch or the ERP's own write through the mirror triggers).
//!
//! Cases per property: `BISMAN_PROPTEST_CASES` (default 400).

use bisman_jsonb::{
    json_user_id, reaction_entries, reaction_entry_problem, read_entry_problem, try_timestamp,
    valid_reactions, valid_reads,
};
use bisman_testkit::TestDb;
use chrono::NaiveDateTime;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

fn cases() -> u32 {
    std::env::var("BISMAN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// A connection to a migrated database, in UTC like the normalisation.
struct Sql {
    rt: tokio::runtime::Runtime,
    conn: tokio::sync::Mutex<PgConnection>,
    _db: TestDb,
}

impl Sql {
    fn start() -> Sql {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (db, conn) = rt.block_on(async {
            let db = TestDb::migrated().await;
            let mut conn = PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("SET TimeZone = 'UTC'")
                .execute(&mut conn)
                .await
                .unwrap();
            (db, conn)
        });
        Sql {
            rt,
            conn: tokio::sync::Mutex::new(conn),
            _db: db,
        }
    }

    /// Runs `f` on the connection; an SQL error fails the case.
    fn run<T>(
        &self,
        what: &str,
        input: &str,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, TestCaseError> {
        self.rt.block_on(async {
            let mut conn = self.conn.lock().await;
            f(&mut conn)
                .await
                .map_err(|e| TestCaseError::fail(format!("{what} raised on {input:?}: {e}")))
        })
    }
}

// ---------------------------------------------------------------------------
// Generators. Values are built as JSON text, so that numbers reach both
// sides spelled the same way.

fn space() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(""),
            3 => Just(" "),
            1 => Just("\t"),
            1 => Just("\n"),
            1 => Just("\r"),
            1 => Just("\u{b}"),
            1 => Just("\u{c}"),
            1 => Just("\u{a0}"),
            1 => Just("\u{2003}"),
            1 => Just("\u{1680}"),
            1 => Just("\u{85}"),
        ],
        0..3,
    )
    .prop_map(|v| v.concat())
}

fn two(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (lo..=hi).prop_map(|n| format!("{n:02}")),
        1 => (0u32..100).prop_map(|n| format!("{n:02}")),
        1 => (0u32..10).prop_map(|n| n.to_string()),
        1 => Just("٣".to_string()),
    ]
}

fn timestamp_text() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        6 => (1000u32..=9999).prop_map(|y| y.to_string()),
        1 => Just("0999".to_string()),
        1 => (0u32..100_000).prop_map(|y| y.to_string()),
    ];
    let date = (
        year,
        two(1, 12),
        two(1, 31),
        prop_oneof![Just("-"), Just("/")],
    )
        .prop_map(|(y, m, d, sep)| {
            if sep == "-" {
                format!("{y}-{m}-{d}")
            } else {
                format!("{y}{sep}{m}{sep}{d}")
            }
        });
    let fraction = prop_oneof![
        Just(String::new()),
        Just(".".to_string()),
        "[0-9]{1,8}".prop_map(|f| format!(".{f}")),
    ];
    let seconds = prop_oneof![
        Just(String::new()),
        (two(0, 59), fraction).prop_map(|(s, f)| format!(":{s}{f}")),
    ];
    let time = prop_oneof![
        2 => Just(String::new()),
        3 => (prop_oneof![Just("T"), Just(" "), Just("t"), Just("_")], two(0, 23), two(0, 59), seconds)
            .prop_map(|(sep, h, m, s)| format!("{sep}{h}:{m}{s}")),
    ];
    let zone = prop_oneof![
        3 => Just(String::new()),
        1 => Just("Z".to_string()),
        1 => Just("z".to_string()),
        1 => Just("UTC".to_string()),
        2 => (prop_oneof![Just("+"), Just("-")], two(0, 23), prop_oneof![Just(""), Just(":")],
              prop_oneof![Just(String::new()), two(0, 59), Just("3".to_string())])
            .prop_map(|(s, h, c, m)| format!("{s}{h}{c}{m}")),
    ];
    prop_oneof![
        8 => (space(), date, time, space(), zone, space())
            .prop_map(|(a, d, t, b, z, c)| format!("{a}{d}{t}{b}{z}{c}")),
        1 => "\\PC{0,24}",
        1 => Just("now".to_string()),
    ]
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-3i64..=3_000_000_000).prop_map(|n| n.to_string()),
        1 => prop_oneof![
            Just("2147483647"), Just("2147483648"), Just("-0"), Just("0"), Just("1.0"), Just("1.5"),
            Just("12.000"), Just("1e2"), Just("1E+2"), Just("0.5e1"), Just("1e-2"), Just("2.147483647e9"),
            Just("9223372036854775808"), Just("1e30")
        ]
        .prop_map(str::to_string),
        1 => (1u32..100_000, 0u32..1000).prop_map(|(i, f)| format!("{i}.{f}")),
    ]
}

fn user_id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => number_text(),
        2 => (space(), "[0-9]{1,11}", space()).prop_map(|(a, d, b)| json_string(&format!("{a}{d}{b}"))),
        1 => "\\PC{0,6}".prop_map(|s| json_string(&s)),
        1 => Just("null".to_string()),
        1 => Just("true".to_string()),
        1 => Just("[1]".to_string()),
        1 => Just("{\"id\": 1}".to_string()),
    ]
}

fn time_field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => timestamp_text().prop_map(|s| json_string(&s)),
        1 => Just("null".to_string()),
        1 => number_text(),
        1 => Just("{}".to_string()),
    ]
}

fn emoji_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![Just("👍"), Just("🎉"), Just("ok"), Just("👍🏽"), Just("")].prop_map(json_string),
        1 => "\\PC{15,25}".prop_map(|s| json_string(&s)),
        1 => number_text(),
        1 => Just("null".to_string()),
    ]
}

/// An object with some of the keys entries have, as JSON text.
fn entry_text() -> impl Strategy<Value = String> {
    let field = |key: &'static str, value: BoxedStrategy<String>| {
        prop::option::weighted(0.7, value)
            .prop_map(move |v| v.map(|v| format!("{}: {v}", json_string(key))))
    };
    let object = (
        field("userId", user_id_text().boxed()),
        field("readAt", time_field_text().boxed()),
        field("createdAt", time_field_text().boxed()),
        field("emoji", emoji_text().boxed()),
        prop::option::weighted(0.1, user_id_text())
            .prop_map(|v| v.map(|v| format!("\"users\": {v}"))),
        prop::option::weighted(0.1, user_id_text())
            .prop_map(|v| v.map(|v| format!("\"other\": {v}"))),
    )
        .prop_map(|(a, b, c, d, e, f)| {
            let fields: Vec<String> = [a, b, c, d, e, f].into_iter().flatten().collect();
            format!("{{{}}}", fields.join(", "))
        });
    prop_oneof![
        9 => object,
        1 => user_id_text(),
    ]
}

/// A reactions or readBy column: an array of entries, an emoji map, or a scalar.
fn column_text() -> impl Strategy<Value = String> {
    let array =
        prop::collection::vec(entry_text(), 0..6).prop_map(|v| format!("[{}]", v.join(", ")));
    let users = prop_oneof![
        4 => prop::collection::vec(user_id_text(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => user_id_text(),
    ];
    let key = prop_oneof![
        Just("👍".to_string()),
        Just("🎉".to_string()),
        Just("b".to_string()),
        Just("aa".to_string()),
        Just(String::new()),
        "\\PC{1,22}",
    ];
    let map = prop::collection::btree_map(key, users, 0..5).prop_map(|m| {
        let fields: Vec<String> = m
            .into_iter()
            .map(|(k, v)| format!("{}: {v}", json_string(&k)))
            .collect();
        format!("{{{}}}", fields.join(", "))
    });
    prop_oneof![4 => array, 3 => map, 1 => user_id_text()]
}

/// Numbers as f64, so that `-0` (which jsonb prints as `0`) and `0` compare equal.
fn canon(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(canon).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canon(v))).collect())
        }
        other => other.clone(),
    }
}

fn created_at() -> impl Strategy<Value = NaiveDateTime> {
    (0i64..2_000_000_000).prop_map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap().naive_utc())
}

// ---------------------------------------------------------------------------
// Properties.

#[test]
fn timestamps_parse_alike() {
    let sql = Sql::start();
    runner()
        .run(&timestamp_text(), |text| {
            let got: Option<NaiveDateTime> = sql.run("bisman_try_timestamp", &text, async |c| {
                sqlx::query_scalar("SELECT bisman_try_timestamp($1)")
                    .bind(&text)
                    .fetch_one(c)
                    .await
            })?;
            prop_assert_eq!(got, try_timestamp(&text), "{:?}", text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn entries_are_judged_alike() {
    let sql = Sql::start();
    runner()
        .run(&entry_text(), |text| {
            let e: Value = serde_json::from_str(&text).unwrap();
            type Row = (
                Option<String>,
                Option<String>,
                Option<i32>,
                Option<NaiveDateTime>,
            );
            let (read, reaction, user, read_at): Row =
                sql.run("the entry functions", &text, async |c| {
                    sqlx::query_as(
                        "SELECT bisman_read_entry_problem(e), bisman_reaction_entry_problem(e),
                            bisman_json_user_id(e->'userId'), bisman_try_timestamp(e->>'readAt')
                     FROM (SELECT $1::jsonb AS e) x",
                    )
                    .bind(&text)
                    .fetch_one(c)
                    .await
                })?;
            prop_assert_eq!(
                read.as_deref(),
                read_entry_problem(&e).map(|p| p.as_str()),
                "{}",
                text
            );
            prop_assert_eq!(
                reaction.as_deref(),
                reaction_entry_problem(&e).map(|p| p.as_str()),
                "{}",
                text
            );
            prop_assert_eq!(user, json_user_id(&e["userId"]), "{}", text);
            let rust_read_at = e
                .get("readAt")
                .and_then(Value::as_str)
                .and_then(try_timestamp);
            prop_assert_eq!(read_at, rust_read_at, "{}", text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn columns_normalise_alike() {
    let sql = Sql::start();
    runner()
        .run(&(column_text(), created_at()), |(text, created)| {
            let col: Value = serde_json::from_str(&text).unwrap();
            let entries: Value = sql.run("bisman_reaction_entries", &text, async |c| {
                sqlx::query_scalar(
                    "SELECT coalesce(jsonb_agg(entry ORDER BY idx), '[]') FROM bisman_reaction_entries($1::jsonb)",
                )
                .bind(&text)
                .fetch_one(c)
                .await
            })?;
            prop_assert_eq!(
                canon(&entries),
                canon(&Value::Array(reaction_entries(&col))),
                "{}",
                text
            );

            let reads: Vec<(i32, NaiveDateTime)> = sql.run("bisman_valid_reads", &text, async |c| {
                sqlx::query_as("SELECT user_id, read_at FROM bisman_valid_reads($1::jsonb, $2) ORDER BY user_id")
                    .bind(&text)
                    .bind(created)
                    .fetch_all(c)
                    .await
            })?;
            let want: Vec<(i32, NaiveDateTime)> =
                valid_reads(&col, created).into_iter().map(|r| (r.user_id, r.read_at)).collect();
            prop_assert_eq!(reads, want, "{}", text);

            let mut reactions: Vec<(i32, String, NaiveDateTime)> =
                sql.run("bisman_valid_reactions", &text, async |c| {
                    sqlx::query_as("SELECT user_id, emoji, created_at FROM bisman_valid_reactions($1::jsonb, $2)")
                        .bind(&text)
                        .bind(created)
                        .fetch_all(c)
                        .await
                })?;
            reactions.sort();
            let want: Vec<(i32, String, NaiveDateTime)> = valid_reactions(&col, created)
                .into_iter()
                .map(|r| (r.user_id, r.emoji, r.created_at))
                .collect();
            prop_assert_eq!(reactions, want, "{}", text);
            Ok(())
        })
        .unwrap();
}

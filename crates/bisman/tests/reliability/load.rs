//! The load run (30 s in CI: `BISMAN_LOAD_SECS`), then the security scans
//! of everything it left behind: the tokens it was given, the storage
//! (every table, every Redis key and value), and the instances' logs.

use std::collections::HashSet;
use std::time::Duration;

use bisman_load::{verify_writes, Load};
use bisman_testkit::TestDb;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_holds_and_leaves_no_secret_behind() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let prefix = bisman_testkit::redis_prefix();
    let logs = log_dir("load");
    let cluster = Cluster::start(
        env_u64("BISMAN_LOAD_INSTANCES", 2) as usize,
        &[
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", bisman_testkit::redis_url()),
            ("BISMAN_CACHE_PREFIX", prefix.clone()),
            // As talkative as it gets, so that a leak would show.
            (
                "BISMAN_LOG",
                "debug,hyper=info,hyper_util=info,h2=info,tower=info".into(),
            ),
        ],
        &logs,
    );
    let load = Load::start(load_config(cluster.targets())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(env_u64("BISMAN_LOAD_SECS", 30))).await;
    let acked = load.acknowledged();
    let secrets = load.secrets();
    let mut report = load.stop().await;
    report.writes_check(verify_writes(&db.pool, "demo", &acked).await.unwrap());
    check_common("load", &report);
    assert_eq!(report.writes.lost(), 0, "acknowledged writes lost");
    assert!(report.writes.posts_acknowledged > 0);

    tokens_are_random(&secrets);
    let texts = storage_texts(&db, &prefix).await;
    only_hashes_are_stored(&texts, &secrets);
    passwords_are_argon2(&db).await;
    let password = bisman_server::demo::DEMO_PASSWORD;
    assert!(
        texts.iter().all(|t| !t.contains(password)),
        "the password was stored"
    );
    let log_text: Vec<String> = cluster
        .instances
        .iter()
        .map(|p| std::fs::read_to_string(p.log()).unwrap())
        .collect();
    assert!(
        log_text.iter().all(|l| l.contains("listening")),
        "logs captured"
    );
    assert!(
        log_text.iter().all(|l| !l.contains(password)),
        "the password reached a log"
    );
    assert_eq!(leaked(&log_text, &secrets), 0, "a token reached a log");
    eprintln!(
        "scanned {} tokens against {} bytes of storage and logs",
        secrets.len(),
        texts
            .iter()
            .chain(&log_text)
            .map(String::len)
            .sum::<usize>()
    );
}

/// ≥ 128 bits: 64 lowercase hex digits (256 bits), all different, with no
/// shared prefix and bits balanced as random bits are.
fn tokens_are_random(tokens: &[String]) {
    assert!(tokens.len() >= 20, "{} tokens", tokens.len());
    let mut prefixes = HashSet::new();
    let mut ones = 0u64;
    for t in tokens {
        assert_eq!(t.len(), 64, "a token of {} hex digits", t.len());
        let bytes = hex::decode(t).expect("hex");
        assert_eq!(t, &hex::encode(&bytes), "lowercase hex");
        assert!(
            prefixes.insert(t[..16].to_string()),
            "two tokens share 64 bits"
        );
        ones += bytes.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
    }
    let share = ones as f64 / (tokens.len() as f64 * 256.0);
    assert!((0.45..0.55).contains(&share), "bit balance {share}");
}

/// Every table of the database as text, and every key and value under the
/// test's Redis prefix.
async fn storage_texts(db: &TestDb, prefix: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut texts = Vec::new();
    for t in tables {
        let text: Option<String> =
            sqlx::query_scalar(&format!("SELECT string_agg(x::text, E'\\n') FROM {t} x"))
                .fetch_one(&db.pool)
                .await
                .unwrap();
        texts.extend(text);
    }
    let client = redis::Client::open(bisman_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    assert!(!keys.is_empty(), "the run used Redis");
    for key in keys {
        texts.push(key.clone());
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        match kind.as_str() {
            "string" => texts.push(
                conn.get::<_, Vec<u8>>(&key)
                    .await
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default(),
            ),
            "set" => texts.extend(conn.smembers::<_, Vec<String>>(&key).await.unwrap()),
            "hash" => texts.extend(conn.hgetall::<_, Vec<String>>(&key).await.unwrap()),
            "zset" => texts.extend(conn.zrange::<_, Vec<String>>(&key, 0, -1).await.unwrap()),
            "list" => texts.extend(conn.lrange::<_, Vec<String>>(&key, 0, -1).await.unwrap()),
            _ => {}
        }
    }
    texts
}

/// Runs of 64 hex digits in `texts` that are one of `secrets`.
fn leaked(texts: &[String], secrets: &[String]) -> usize {
    let secrets: HashSet<&str> = secrets.iter().map(String::as_str).collect();
    let mut found = 0;
    for text in texts {
        let bytes = text.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            if !bytes[start].is_ascii_hexdigit() {
                start += 1;
                continue;
            }
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                end += 1;
            }
            if end - start >= 64 {
                for w in start..=end - 64 {
                    if secrets.contains(&text[w..w + 64]) {
                        found += 1;
                    }
                }
            }
            start = end;
        }
    }
    found
}

/// No raw token anywhere; the sessions are keyed by their SHA-256.
fn only_hashes_are_stored(texts: &[String], secrets: &[String]) {
    assert_eq!(leaked(texts, secrets), 0, "a raw token was stored");
    let hashes: Vec<String> = secrets
        .iter()
        .map(|t| hex::encode(Sha256::digest(t.as_bytes())))
        .collect();
    assert!(
        leaked(texts, &hashes) > 0,
        "the SHA-256 of the tokens is what storage holds"
    );
}

/// Every stored password is an Argon2id PHC string.
async fn passwords_are_argon2(db: &TestDb) {
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(!hashes.is_empty());
    for h in hashes {
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(!h.contains(bisman_server::demo::DEMO_PASSWORD));
    }
}

//! Session lookup and permission check per layer, in one process:
//! PostgreSQL (cache disabled: every call reads the tables), Redis without
//! a near-cache, and near-cache hits (L1 in front of Redis), with a raw
//! Redis `GET` of a value the size of a cached session and a raw
//! primary-key `SELECT` of a session row as yardsticks, and the peers.
//!
//! All layers of one operation are sampled in turns (one call of each per
//! round), so that the machine's changing background load hits them alike
//! and their ratios (Redis path vs raw `GET`, ours vs the peers) stay fair.
//!
//! The caches are `bisman-cache` as the service uses it, on the "after"
//! data set (the session and permission tables are the same in both
//! layouts), under a Redis key prefix of this run that is deleted at the end.

use std::time::Duration;

use bisman_cache::{Cache, CacheBuilder, CacheConfig, CacheMode, NearConfig, UserId};
use redis::AsyncCommands;

use super::workload::Workload;
use super::{probe, Layer, Measurement, Operation, Probe, Sampler};
use crate::data::Dataset;
use crate::error::{BenchError, Result};
use crate::options::Effort;
use crate::peers::{PeerProbe, Peers};
use crate::Progress;

/// Why the Redis rows are missing.
pub const NO_REDIS: &str = "no Redis: set REDIS_URL (or --redis-url) to measure the Redis and near-cache layers and the peers";

/// A key prefix no other run uses.
pub fn run_prefix() -> String {
    format!("bisman:bench:{}:", uuid::Uuid::new_v4().simple())
}

async fn cache(pool: &sqlx::PgPool, mode: CacheMode, near: bool, prefix: &str) -> Result<Cache> {
    let config = CacheConfig {
        mode,
        prefix: prefix.into(),
        near: NearConfig {
            enabled: near,
            // Long enough that every sample of the L1 rows is a hit.
            entry_ttl: Duration::from_secs(3600),
            ..NearConfig::default()
        },
        ..CacheConfig::default()
    };
    let c = CacheBuilder::new(config, pool.clone()).build().await?;
    if !c.wait_until_synced(Duration::from_secs(10)).await {
        return Err(BenchError::Setup(
            "the cache's invalidation subscription did not come up within 10 s".into(),
        ));
    }
    Ok(c)
}

/// The layers under test.
struct Layers {
    postgres: Cache,
    redis: Option<Cache>,
    near: Option<Cache>,
    raw: Option<RawGet>,
}

impl Layers {
    /// The cache layers that are present: PostgreSQL, Redis, near-cache.
    fn caches(&self) -> impl Iterator<Item = &Cache> {
        [
            Some(&self.postgres),
            self.redis.as_ref(),
            self.near.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// Measures both operations on every layer, and the peers with them.
pub async fn measure(
    after: &Dataset,
    work: &Workload,
    effort: &Effort,
    redis_url: Option<&str>,
    prefix: &str,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let pool = &after.pool;
    let postgres = cache(pool, CacheMode::Disabled, false, prefix).await?;
    let decisions = decide(&postgres, work).await?;
    let layers = match redis_url {
        Some(url) => {
            let mode = CacheMode::parse(Some(url))?;
            Layers {
                raw: Some(RawGet::set_up(url, prefix, &postgres, work).await?),
                redis: Some(cache(pool, mode.clone(), false, prefix).await?),
                near: Some(cache(pool, mode, true, prefix).await?),
                postgres,
            }
        }
        None => Layers {
            postgres,
            redis: None,
            near: None,
            raw: None,
        },
    };
    let peers = Peers::set_up(after, work, &decisions, redis_url).await?;
    let result = async {
        let mut out = sessions(&layers, &peers, pool, work, effort, progress).await?;
        out.extend(permissions(&layers, &peers, work, effort, progress).await?);
        Ok::<_, BenchError>(out)
    }
    .await;
    peers.tear_down().await;
    for c in [
        Some(&layers.postgres),
        layers.redis.as_ref(),
        layers.near.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        c.shutdown().await;
    }
    result
}

/// Our answers, from PostgreSQL, for the peers to be compared with.
async fn decide(cache: &Cache, work: &Workload) -> Result<Vec<bool>> {
    let mut out = Vec::with_capacity(work.checks.len());
    for c in &work.checks {
        out.push(
            cache
                .permissions()
                .has_page_permission(UserId(c.user_id), c.user_type, &c.module, &c.page)
                .await?,
        );
    }
    Ok(out)
}

/// Layers with their probes and notes, and the rows of those skipped.
struct Plan<'a> {
    operation: Operation,
    ready: Vec<(Layer, Probe<'a>, Option<String>)>,
    skipped: Vec<Measurement>,
}

impl<'a> Plan<'a> {
    fn new(operation: Operation) -> Self {
        Plan {
            operation,
            ready: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn add(&mut self, layer: Layer, p: Option<Probe<'a>>, note: Option<String>, why_not: &str) {
        match p {
            Some(p) => self.ready.push((layer, p, note)),
            None => self
                .skipped
                .push(Measurement::skipped(self.operation, layer, why_not)),
        }
    }

    /// The three cache layers, one `probe` each, with the same note.
    fn add_caches(
        &mut self,
        layers: &'a Layers,
        probe: impl Fn(&'a Cache) -> Probe<'a>,
        note: Option<String>,
    ) {
        self.add(
            Layer::Postgres,
            Some(probe(&layers.postgres)),
            note.clone(),
            "",
        );
        self.add(
            Layer::Redis,
            layers.redis.as_ref().map(&probe),
            note.clone(),
            NO_REDIS,
        );
        self.add(
            Layer::NearCache,
            layers.near.as_ref().map(&probe),
            note,
            NO_REDIS,
        );
    }

    fn add_peer(&mut self, layer: Layer, peer: PeerProbe<'a>) {
        match peer {
            PeerProbe::Ready(p, note) => self.ready.push((layer, p, Some(note))),
            PeerProbe::Skipped(why) => {
                self.skipped
                    .push(Measurement::skipped(self.operation, layer, why))
            }
        }
    }

    async fn run(self, sampler: Sampler, progress: &dyn Progress) -> Result<Vec<Measurement>> {
        let (layers, mut probes, notes): (Vec<_>, Vec<_>, Vec<_>) = self.ready.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut l, mut p, mut n), (layer, probe, note)| {
                l.push(layer);
                p.push(probe);
                n.push(note);
                (l, p, n)
            },
        );
        let label = format!(
            "{}, {} layers in turns",
            self.operation.label(),
            layers.len()
        );
        let samples = sampler
            .run_interleaved(&label, progress, &mut probes)
            .await?;
        let mut out: Vec<Measurement> = layers
            .into_iter()
            .zip(samples)
            .zip(notes)
            .map(|((layer, s), note)| {
                let m = Measurement::measured(self.operation, layer, s)
                    .with_note("sampled in turns with the other layers");
                match note {
                    Some(n) => m.with_note(n),
                    None => m,
                }
            })
            .collect();
        out.extend(self.skipped);
        Ok(out)
    }
}

fn session_probe<'a>(cache: &'a Cache, work: &'a Workload) -> Probe<'a> {
    let keys = &work.sessions;
    probe(move |i| {
        let key = &keys[i % keys.len()];
        async move {
            match cache
                .sessions()
                .get_session_with_fallback(&key.token)
                .await?
            {
                Some(_) => Ok(()),
                None => Err(BenchError::Setup(
                    "a generated session was not found; rebuild the data set (--rebuild)".into(),
                )),
            }
        }
    })
}

fn raw_select_probe<'a>(pool: &'a sqlx::PgPool, work: &'a Workload) -> Probe<'a> {
    let keys = &work.sessions;
    probe(move |i| {
        let id = keys[i % keys.len()].session_id;
        async move {
            sqlx::query(
                "SELECT id, tenant_id, user_id, user_type, created_at, expires_at, last_seen_at
                 FROM user_sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            Ok(())
        }
    })
}

async fn sessions(
    layers: &Layers,
    peers: &Peers,
    pool: &sqlx::PgPool,
    work: &Workload,
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    // Every key once through each cache first: they hold them all when sampling starts.
    for c in layers.caches() {
        for k in &work.sessions {
            c.sessions().get_session_with_fallback(&k.token).await?;
        }
    }
    let rotation = Some(format!(
        "{} distinct sessions in rotation",
        work.sessions.len()
    ));
    let mut plan = Plan::new(Operation::SessionLookup);
    plan.add_caches(layers, |c| session_probe(c, work), rotation);
    plan.add(
        Layer::RawRedisGet,
        layers.raw.as_ref().map(RawGet::probe),
        layers.raw.as_ref().map(RawGet::note),
        NO_REDIS,
    );
    plan.add(
        Layer::RawPkSelect,
        Some(raw_select_probe(pool, work)),
        None,
        "",
    );
    plan.add_peer(Layer::TowerSessionsRedis, peers.session_probe());
    plan.run(Sampler::fast(effort), progress).await
}

fn permission_probe<'a>(cache: &'a Cache, work: &'a Workload) -> Probe<'a> {
    let checks = &work.checks;
    probe(move |i| {
        let c = &checks[i % checks.len()];
        async move {
            cache
                .permissions()
                .has_page_permission(UserId(c.user_id), c.user_type, &c.module, &c.page)
                .await?;
            Ok(())
        }
    })
}

async fn permissions(
    layers: &Layers,
    peers: &Peers,
    work: &Workload,
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    for c in layers.caches() {
        for k in &work.checks {
            c.permissions()
                .has_page_permission(UserId(k.user_id), k.user_type, &k.module, &k.page)
                .await?;
        }
    }
    let rotation = Some(format!(
        "{} distinct (user, page) checks in rotation",
        work.checks.len()
    ));
    let mut plan = Plan::new(Operation::PermissionCheck);
    plan.add_caches(layers, |c| permission_probe(c, work), rotation);
    plan.add_peer(Layer::Casbin, peers.permission_probe());
    plan.run(Sampler::fast(effort), progress).await
}

/// The raw `GET` yardstick: one key per session, values the size of a
/// cached session.
struct RawGet {
    conn: redis::aio::MultiplexedConnection,
    keys: Vec<String>,
    size: usize,
}

impl RawGet {
    async fn set_up(url: &str, prefix: &str, cache: &Cache, work: &Workload) -> Result<RawGet> {
        let session = cache
            .sessions()
            .get_session_with_fallback(&work.sessions[0].token)
            .await?
            .ok_or_else(|| BenchError::Setup("a generated session was not found".into()))?;
        let size = serde_json::to_string(&session)?.len();
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let keys: Vec<String> = (0..work.sessions.len())
            .map(|i| format!("{prefix}raw:{i}"))
            .collect();
        for k in &keys {
            let _: () = conn.set_ex(k, "x".repeat(size), 3600).await?;
        }
        Ok(RawGet { conn, keys, size })
    }

    fn probe(&self) -> Probe<'_> {
        probe(move |i| {
            let mut c = self.conn.clone();
            let key = &self.keys[i % self.keys.len()];
            async move {
                let v: Option<String> = c.get(key).await?;
                v.map(|_| ())
                    .ok_or_else(|| BenchError::Setup("raw key vanished".into()))
            }
        })
    }

    fn note(&self) -> String {
        format!(
            "values of {} bytes, the size of a cached session",
            self.size
        )
    }
}

/// Deletes every key under `prefix`.
pub async fn clean_up(url: &str, prefix: &str) -> Result<u64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = conn.del(&keys).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

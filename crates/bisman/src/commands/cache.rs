//! `bisman cache stats` and `bisman cache invalidate`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bisman_cache::{Cache, InvalidationEvent};
use bisman_server::CacheArgs;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::cli::DatabaseArgs;

/// Options of `bisman cache`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// The caches.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The database (the `postgres` cache mode keeps its entries there).
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// What `bisman cache` can do.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// The store's health and hit counters (Redis `keyspace_hits` /
    /// `keyspace_misses`, spec §10), the live near-cache instances, and the
    /// per-namespace counters of running services.
    Stats {
        /// A running `bisman serve` to read counters from (its base URL,
        /// e.g. http://127.0.0.1:8080); repeat for several instances.
        #[arg(long = "from", value_name = "URL")]
        from: Vec<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Apply an invalidation event of spec §4 by hand (after changing the
    /// ERP's tables with SQL): every instance drops what it cached.
    Invalidate {
        /// USER_PERMISSIONS_CHANGED, MODULE_ASSIGNMENTS_CHANGED, USER_LOGGED_OUT,
        /// USER_PASSWORD_CHANGED or SUPER_ADMIN_DEACTIVATED.
        #[arg(value_parser = parse_event)]
        event: InvalidationEvent,
        /// The user id, or the super admin id for the super-admin events.
        id: i32,
    },
}

fn parse_event(s: &str) -> Result<InvalidationEvent, String> {
    s.parse().map_err(|_| {
        let all: Vec<&str> = InvalidationEvent::ALL.iter().map(|e| e.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

/// Counters of one namespace and layer, summed over the services read.
#[derive(Debug, Default, Clone, Serialize)]
struct Counters {
    hit: u64,
    miss: u64,
    fill: u64,
    invalidation: u64,
    error: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    store_reachable: Option<bool>,
    live_instances: usize,
    keyspace_hits: Option<u64>,
    keyspace_misses: Option<u64>,
    keyspace_hit_rate: Option<f64>,
    services_read: usize,
    /// namespace → layer → counters.
    counters: BTreeMap<String, BTreeMap<String, Counters>>,
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = args.db.open().await?;
    let config = args.cache.cache_config().context("cache options")?;
    let cache = Cache::new(config, db.pool.clone())
        .await
        .context("opening the cache")?;
    let result = match args.action {
        Action::Stats { from, json } => stats(&cache, &from, json).await,
        Action::Invalidate { event, id } => invalidate(&cache, event, id).await,
    };
    cache.shutdown().await;
    db.close().await?;
    result
}

async fn invalidate(cache: &Cache, event: InvalidationEvent, id: i32) -> anyhow::Result<()> {
    // Let the near-cache subscription come up, so that acknowledgements are counted.
    cache.wait_until_synced(Duration::from_secs(5)).await;
    let report = cache
        .invalidate(event, id)
        .await
        .with_context(|| format!("{event} {id}"))?;
    let acked: usize = report.deliveries.iter().map(|d| d.acknowledged).sum();
    let unacked: usize = report.deliveries.iter().map(|d| d.unacknowledged).sum();
    println!(
        "{event} {id}: {} session(s) ended; {acked} instance(s) acknowledged{}",
        report.sessions_ended,
        if unacked > 0 {
            format!(", {unacked} waited out (their near-cache lease ran out)")
        } else {
            String::new()
        }
    );
    Ok(())
}

async fn stats(cache: &Cache, from: &[String], json: bool) -> anyhow::Result<()> {
    let health = cache.health().await;
    let server = cache.server_stats().await.ok().flatten();
    let mut report = Report {
        mode: health.mode,
        store_reachable: health.store_ok,
        // Instances of running services; this command registers itself too.
        live_instances: cache
            .live_instances()
            .await
            .map(|v| {
                v.iter()
                    .filter(|i| Some(i.as_str()) != cache.instance_id())
                    .count()
            })
            .unwrap_or(0),
        keyspace_hits: server.map(|s| s.keyspace_hits),
        keyspace_misses: server.map(|s| s.keyspace_misses),
        keyspace_hit_rate: server.and_then(|s| rate(s.keyspace_hits, s.keyspace_misses)),
        services_read: 0,
        counters: BTreeMap::new(),
    };
    for url in from {
        let text = scrape(url)
            .await
            .with_context(|| format!("reading {url}/metrics"))?;
        merge(&mut report.counters, &text);
        report.services_read += 1;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn rate(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
}

fn print_report(r: &Report) {
    println!("cache mode        {}", r.mode);
    match r.store_reachable {
        Some(ok) => println!(
            "store             {}",
            if ok { "reachable" } else { "UNREACHABLE" }
        ),
        None => println!("store             none"),
    }
    println!("live near-caches  {}", r.live_instances);
    if let (Some(h), Some(m)) = (r.keyspace_hits, r.keyspace_misses) {
        let pct = rate(h, m).map_or("-".into(), |x| format!("{:.1}%", x * 100.0));
        println!("keyspace_hits     {h}\nkeyspace_misses   {m}\nserver hit rate   {pct}");
    }
    if r.services_read == 0 {
        println!("\n(per-namespace counters live in each service: add --from http://host:port)");
        return;
    }
    println!("\ncounters of {} service(s):", r.services_read);
    println!(
        "{:<20} {:<7} {:>10} {:>10} {:>9} {:>10} {:>14} {:>7}",
        "namespace", "layer", "hits", "misses", "hit rate", "fills", "invalidations", "errors"
    );
    for (ns, layers) in &r.counters {
        for (layer, c) in layers {
            let pct = rate(c.hit, c.miss).map_or("-".into(), |x| format!("{:.1}%", x * 100.0));
            println!(
                "{ns:<20} {layer:<7} {:>10} {:>10} {pct:>9} {:>10} {:>14} {:>7}",
                c.hit, c.miss, c.fill, c.invalidation, c.error
            );
        }
    }
}

/// GETs `{base}/metrics` (plain HTTP: services listen on internal addresses).
async fn scrape(base: &str) -> anyhow::Result<String> {
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse()?))
        .await
        .context("timed out")??;
    anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Adds the `bisman_cache_events_total` samples of one scrape.
fn merge(into: &mut BTreeMap<String, BTreeMap<String, Counters>>, text: &str) {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("bisman_cache_events_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                kv.strip_prefix(&format!("{name}=\""))
                    .map(|v| v.trim_end_matches('"').to_string())
            })
        };
        let (Some(ns), Some(layer), Some(event)) =
            (label("namespace"), label("layer"), label("event"))
        else {
            continue;
        };
        let n: u64 = value.trim().parse().unwrap_or(0);
        let c = into.entry(ns).or_default().entry(layer).or_default();
        match event.as_str() {
            "hit" => c.hit += n,
            "miss" => c.miss += n,
            "fill" => c.fill += n,
            "invalidation" => c.invalidation += n,
            "error" => c.error += n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_scrapes() {
        let text = "# HELP x\nbisman_cache_events_total{namespace=\"sessions\",layer=\"l1\",event=\"hit\"} 7\n\
                    bisman_cache_events_total{namespace=\"sessions\",layer=\"l1\",event=\"miss\"} 3\nother 1\n";
        let mut m = BTreeMap::new();
        merge(&mut m, text);
        merge(&mut m, text);
        let c = &m["sessions"]["l1"];
        assert_eq!((c.hit, c.miss), (14, 6));
        assert_eq!(rate(c.hit, c.miss), Some(0.7));
    }
}

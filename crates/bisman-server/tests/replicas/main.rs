//! Read replicas against real PostgreSQL processes: a private primary and
//! two hot standbys made with `pg_basebackup -R` (the test kit's
//! `ReplicatedPostgres`), with service instances in process sharing Redis.
//!
//! One cluster serves every case of [`replicas_under_faults`], in order
//! (pausing replay or stopping a standby would disturb cases running beside
//! them; starting a cluster per case would cost minutes of CI). Where a
//! read ran is shown two ways: the instances' routing counters, and the
//! data itself (with replay paused, a standby answers without the newest
//! message; the primary answers with it).
//!
//! - [`routing`]: read-heavy routes read the standbys; writes and their
//!   readers' next reads (on another instance too) see the write.
//! - [`faults`]: lag injected and honoured, a standby stopped under load,
//!   the shared store of write positions down, a write cancelled after its
//!   commit, a standby promoted under load.
//! - [`without_replicas`]: the service with no replica configured behaves as
//!   before; write positions only move forward, whatever the interleaving.

mod common;
mod faults;
mod routing;
mod without_replicas;

use std::time::Duration;

use bisman_testkit::ReplicatedPostgres;

use common::*;

/// What every case shares.
pub struct World {
    pub pg: ReplicatedPostgres,
    pub primary: sqlx::PgPool,
    pub prefix: String,
    /// Two instances with both standbys, a lag limit too high to trip, so
    /// that a standby with replay paused keeps serving (stale) reads.
    pub a: Instance,
    pub b: Instance,
    /// A demo thread everyone takes part in.
    pub thread: String,
    /// A message of it.
    pub message: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_under_faults() {
    let pg = ReplicatedPostgres::start(2).await;
    let primary = pg.primary_pool(8).await;
    bisman_server::demo::seed(&primary)
        .await
        .expect("seed demo");
    pg.wait_replayed(0).await;
    pg.wait_replayed(1).await;
    let prefix = bisman_testkit::redis_prefix();
    let urls = pg.standby_urls();
    let lenient = config(&prefix, &urls, Duration::from_secs(600));
    let a = Instance::start(&lenient, primary.clone()).await;
    let b = Instance::start(&lenient, primary.clone()).await;
    a.wait_report("serving from both standbys", all_usable)
        .await;
    b.wait_report("serving from both standbys", all_usable)
        .await;

    let token = a.login("staff@demo.test").await;
    let threads = a.get("/api/v1/threads", &token).await;
    let thread = threads.body[0]["id"].as_str().unwrap().to_string();
    let message = a.page_ids(&token, &thread, &[]).await[0].clone();
    let mut world = World {
        pg,
        primary,
        prefix,
        a,
        b,
        thread,
        message,
    };

    routing::read_heavy_routes_read_the_standbys(&world).await;
    routing::writers_read_their_writes_on_any_instance(&world).await;
    routing::standbys_are_asked_when_a_writer_is_ahead(&world).await;
    routing::figures_in_metrics_readyz_and_ops_page(&world).await;
    routing::made_up_sessions_leave_no_position(&world).await;
    faults::cancelled_write_still_moves_the_floor(&world).await;
    faults::lag_beyond_the_limit_is_skipped(&world).await;
    faults::reads_failing_on_a_standby_move_to_the_primary(&world).await;
    faults::standby_stopped_under_load(&world).await;
    faults::write_positions_unreadable_mean_primary(&world).await;
    faults::promotion_under_load(&mut world).await;
}

//! `bisman serve`: the HTTP service, with its maintenance scheduler.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use bisman_db::Migrator;
use bisman_server::demo::{DemoFacts, DEMO_PASSWORD, DEMO_USERS};
use bisman_server::{ServeConfig, Service};

use crate::cli::DatabaseArgs;

/// Options of `bisman serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's own options.
    #[command(flatten)]
    pub config: ServeConfig,
    /// The database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = args.db.open().await?;
    if args.config.demo || db.is_embedded() {
        // The embedded database is ours: keep it migrated.
        Migrator::embedded()
            .run(&db.pool, None, &|_| {})
            .await
            .context("migrating")?;
    }
    let demo = if args.config.demo {
        let seeded = bisman_server::demo::seed(&db.pool)
            .await
            .context("seeding the demo tenant")?;
        let facts = bisman_server::demo::facts(&db.pool).await?;
        Some((seeded, facts))
    } else {
        None
    };
    let served = async {
        let bound = Service::new(&args.config, db.pool.clone())
            .await?
            .bind()
            .await?;
        let addr = bound.local_addr();
        // Scripts and tests wait for this line (with the port actually bound).
        println!("bisman serve: listening on http://{addr}");
        if let Some((seeded, facts)) = &demo {
            print_walkthrough(addr, *seeded, facts);
        }
        let _ = std::io::stdout().flush();
        bound.run(shutdown_signal()).await
    }
    .await;
    db.close().await?;
    served
}

fn print_walkthrough(addr: SocketAddr, seeded: bool, f: &DemoFacts) {
    let b = format!("http://{addr}/api/v1");
    let state = if seeded {
        "tenant seeded"
    } else {
        "tenant already present"
    };
    let login = |var: &str, email: &str| {
        format!(
            "{var}=$(curl -s -X POST {b}/auth/login -H 'content-type: application/json' \\\n      \
             -d '{{\"tenant\":\"demo\",\"email\":\"{email}\",\"password\":\"{DEMO_PASSWORD}\"}}' \
             | sed -E 's/.*\"token\":\"([0-9a-f]+)\".*/\\1/')"
        )
    };
    println!();
    println!("Bisman demo {state}. Accounts (password `{DEMO_PASSWORD}`):");
    for u in DEMO_USERS {
        println!("    {:<20} {}", u.email, u.user_type);
    }
    println!();
    println!("Ops page (partitions, slow queries, table access, cache): http://{addr}/ops as owner@demo.test");
    println!();
    println!("Try it (API docs: {b}/openapi.json, metrics: http://{addr}/metrics):");
    println!("  # log in as the staff member");
    println!("  {}", login("STAFF", "staff@demo.test"));
    println!("  # read a thread, newest first");
    println!(
        "  curl -s -H \"Authorization: Bearer $STAFF\" '{b}/threads/{}/messages?limit=5'",
        f.thread_id
    );
    println!("  # unread counts, then mark the thread read and look again");
    println!("  curl -s -H \"Authorization: Bearer $STAFF\" {b}/threads/unread");
    println!(
        "  curl -s -X POST -H \"Authorization: Bearer $STAFF\" {b}/threads/{}/read",
        f.thread_id
    );
    println!("  # react to the newest message, and list its reactions");
    println!(
        "  curl -s -X POST -H \"Authorization: Bearer $STAFF\" -H 'content-type: application/json' \
         -d '{{\"emoji\":\"🎉\"}}' {b}/messages/{}/reactions",
        f.message_id
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $STAFF\" {b}/messages/{}/reactions",
        f.message_id
    );
    println!("  # may the staff member submit expenses? (allowed: true)");
    let check = format!(
        "curl -s -H \"Authorization: Bearer $STAFF\" '{b}/permissions/check?module=expenses&page=submit&action=create'"
    );
    println!("  {check}");
    println!("  # the admin takes `expenses/submit` away from the Staff role (audited; every instance sees it at once)");
    println!("  {}", login("ADMIN", "admin@demo.test"));
    println!(
        "  curl -s -X PUT -H \"Authorization: Bearer $ADMIN\" -H 'content-type: application/json' \
         {b}/admin/roles/{}/permissions \\\n      \
         -d '{{\"permissions\":[{{\"module\":\"expenses\",\"page\":\"list\",\"actions\":[\"view\"]}},\
{{\"module\":\"messaging\",\"page\":\"threads\",\"actions\":[\"view\",\"create\"]}}]}}'",
        f.staff_role_id
    );
    println!("  # the same check now fails (allowed: false)");
    println!("  {check}");
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

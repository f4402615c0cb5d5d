//! `bisman serve`: the HTTP service.

use anyhow::Context;
use bisman_db::Migrator;
use bisman_server::demo::{DEMO_PASSWORD, DEMO_USERS};
use bisman_server::ServeConfig;

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
    if args.config.demo {
        let seeded = bisman_server::demo::seed(&db.pool)
            .await
            .context("seeding the demo tenant")?;
        print_walkthrough(&args.config.bind, seeded);
    }
    let served = bisman_server::serve(&args.config, db.pool.clone(), shutdown_signal()).await;
    db.close().await?;
    served.map(|_| ())
}

fn print_walkthrough(bind: &str, seeded: bool) {
    let base = format!("http://{bind}");
    println!();
    println!(
        "Bisman demo {}",
        if seeded {
            "tenant seeded"
        } else {
            "tenant already present"
        }
    );
    println!("  accounts (password `{DEMO_PASSWORD}`):");
    for u in DEMO_USERS {
        println!("    {:<20} {}", u.email, u.user_type);
    }
    println!("  try:");
    println!("    curl -s {base}/healthz");
    println!("    curl -s {base}/readyz");
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

//! The maintenance scheduler: two instances started together run each job
//! once (the job log says so), and the runs show in `/metrics` and ops.

use axum::http::{Method, StatusCode};
use bisman_server::maintenance::JobOutcome;
use bisman_server::Service;

use crate::common::{config, App};

#[tokio::test]
async fn two_instances_run_each_job_once() {
    let app = App::start().await;
    let mut cfg = config();
    cfg.maintenance = true;
    let other = Service::new(&cfg, app.db.new_pool(4).await).await.unwrap();
    let (a, b) = (app.service.scheduler(), other.scheduler());
    let (ra, rb) = tokio::join!(a.run_due(), b.run_due());
    assert_eq!(ra.len(), 4);
    for ((job, x), (_, y)) in ra.into_iter().zip(rb) {
        let (x, y) = (x.unwrap(), y.unwrap());
        let ran = [&x, &y]
            .iter()
            .filter(|o| matches!(o, JobOutcome::Ran { .. }))
            .count();
        assert_eq!(ran, 1, "{}: {x:?} / {y:?}", job.name());
        for o in [&x, &y] {
            if let JobOutcome::Ran { ok, detail } = o {
                assert!(ok, "{}: {detail}", job.name());
            }
        }
    }
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT job, outcome FROM bisman_job_runs ORDER BY job")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|(_, o)| o == "ok"), "{runs:?}");
    // Not due again within the interval, on either instance.
    for (_, o) in a.run_due().await.into_iter().chain(b.run_due().await) {
        assert_eq!(o.unwrap(), JobOutcome::NotDue);
    }
    let n: i64 = app.scalar("SELECT count(*) FROM bisman_job_runs").await;
    assert_eq!(n, 4);

    let m = app.call(Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains(r#"bisman_job_last_success{job="premake"} 1"#),
        "{}",
        m.text
    );
    let owner = app.demo("owner").await;
    let jobs = app.get("/api/v1/ops/jobs", &owner).await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert_eq!(jobs.body["jobs"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn retention_archives_first_when_configured() {
    use bisman_server::maintenance::{Job, JobContext};
    let app = App::start().await;
    let dir = std::env::temp_dir().join(format!("bisman-retention-{}", uuid_like()));
    let ctx = JobContext {
        archive_dir: Some(dir.clone()),
        keep_months: None,
    };
    // Nothing is old enough in a fresh database: the archive path runs and
    // drops nothing; the SQL path says the same.
    let archived = Job::Retention.run(app.pool(), &ctx).await.unwrap();
    assert!(archived.starts_with("0 partitions dropped"), "{archived}");
    let sql = Job::Retention
        .run(app.pool(), &JobContext::default())
        .await
        .unwrap();
    assert!(sql.starts_with("0 partitions dropped"), "{sql}");
    let premade = Job::Premake.run(app.pool(), &ctx).await.unwrap();
    assert!(premade.contains("partitions created"), "{premade}");
    let _ = std::fs::remove_dir_all(dir);
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

//! `/api/v1/threads` and `/api/v1/messages`.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::App;

#[tokio::test]
async fn message_pages_with_cursors() {
    let app = App::start().await;
    let staff = app.demo("staff").await;
    let threads = app.get("/api/v1/threads", &staff).await;
    assert_eq!(threads.status, StatusCode::OK);
    assert_eq!(threads.body.as_array().unwrap().len(), 3);
    let (thread, _) = app.demo_thread().await;
    // A deleted message is hidden.
    sqlx::query(r#"UPDATE thread_messages SET "isDeleted" = true WHERE id = (SELECT id FROM thread_messages WHERE "threadId" = $1 ORDER BY "createdAt" LIMIT 1)"#)
        .bind(&thread)
        .execute(app.pool())
        .await
        .unwrap();

    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut last: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/threads/{thread}/messages?limit=25");
        if let Some(c) = &cursor {
            path.push_str(&format!("&before={c}"));
        }
        let page = app.get(&path, &staff).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        pages += 1;
        for m in page.body["messages"].as_array().unwrap() {
            let at = m["created_at"].as_str().unwrap().to_string();
            if let Some(prev) = &last {
                assert!(at <= *prev, "newest first");
            }
            last = Some(at);
            assert!(
                seen.insert(m["id"].as_str().unwrap().to_string()),
                "no repeats"
            );
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 59, "60 messages, one deleted");
    assert_eq!(pages, 3);

    for (q, status) in [
        ("limit=0", 422),
        ("limit=-1", 422),
        ("limit=201", 422),
        ("limit=100000000000000000000", 400),
        ("limit=abc", 400),
        ("before=zz", 400),
        ("before=", 400),
        ("sort=asc", 400),
    ] {
        let r = app
            .get(&format!("/api/v1/threads/{thread}/messages?{q}"), &staff)
            .await;
        assert_eq!(r.status.as_u16(), status, "{q}: {}", r.text);
    }
    let (acme, _) = app.acme_thread().await;
    let r = app
        .get(&format!("/api/v1/threads/{acme}/messages"), &staff)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another tenant's thread");
    assert_eq!(
        app.get("/api/v1/threads/thr_nope/messages", &staff)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let op = app.demo("operator").await;
    assert_eq!(
        app.get("/api/v1/threads", &op).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn post_read_and_unread() {
    let app = App::start().await;
    let (staff, manager) = (app.demo("staff").await, app.demo("manager").await);
    let manager_id = app.user_id("manager@demo.test").await;
    let eve = app.user_id("eve@acme.test").await;
    let bad = app
        .post(
            "/api/v1/threads",
            &staff,
            json!({"title": "x", "participant_ids": [eve]}),
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "participants from my tenant only"
    );
    let t = app
        .post(
            "/api/v1/threads",
            &staff,
            json!({"title": "Lunch?", "participant_ids": [manager_id]}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
    let thread = t.body["id"].as_str().unwrap().to_string();
    let post = |content: &'static str| {
        app.post(
            format!("/api/v1/threads/{thread}/messages"),
            &staff,
            json!({"content": content}),
        )
    };
    let first = post("Noon?").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first_id = first.body["id"].as_str().unwrap().to_string();
    assert_eq!(post("").await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let unread = |token: String| {
        let app = &app;
        let thread = thread.clone();
        async move {
            let r = app.get("/api/v1/threads/unread", &token).await;
            assert_eq!(r.status, StatusCode::OK);
            r.body
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["thread_id"] == thread.as_str())
                .unwrap()["unread"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(unread(manager.clone()).await, 1);
    assert_eq!(
        unread(staff.clone()).await,
        0,
        "my own messages are not unread"
    );
    let read = app
        .call(
            Method::POST,
            &format!("/api/v1/threads/{thread}/read"),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["unread"], 0);
    assert_eq!(unread(manager.clone()).await, 0);

    // Two more; one read by receipt.
    let _ = post("Or 1pm?").await;
    let third = post("Either works").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(unread(manager.clone()).await, 2);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/messages/{third}/read"),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(unread(manager.clone()).await, 1);
    let readers = app
        .get(&format!("/api/v1/messages/{third}/reads"), &staff)
        .await;
    assert_eq!(
        readers.body,
        json!([{"user_id": manager_id, "read_at": readers.body[0]["read_at"], "source": "receipt"}])
    );
    let readers = app
        .get(&format!("/api/v1/messages/{first_id}/reads"), &staff)
        .await;
    assert_eq!(readers.body[0]["source"], "position");

    // Read up to a point: the position never moves back.
    let up = app
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &manager,
            json!({"up_to_message_id": first_id}),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK);
    assert_eq!(up.body["unread"], 1);
    let other_msg: String = app
        .scalar(r#"SELECT m.id FROM thread_messages m JOIN threads t ON t.id = m."threadId" WHERE t.title = 'Office move' LIMIT 1"#)
        .await;
    let wrong = app
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &manager,
            json!({"up_to_message_id": other_msg}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (acme_thread, acme_msg) = app.acme_thread().await;
    for path in [
        format!("/api/v1/threads/{acme_thread}/read"),
        format!("/api/v1/messages/{acme_msg}/read"),
    ] {
        let r = app.call(Method::POST, &path, Some(&manager), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/messages/{acme_msg}/reads"), &manager)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let receipts: i64 = app
        .scalar("SELECT count(*) FROM message_reads WHERE thread_id LIKE 'thr_%'")
        .await;
    assert!(receipts >= 1, "receipts live in message_reads");
}

#[tokio::test]
async fn reactions() {
    let app = App::start().await;
    let staff = app.demo("staff").await;
    let (_, msg) = app.demo_thread().await;
    let path = format!("/api/v1/messages/{msg}/reactions");
    let r = app.post(&path, &staff, json!({"emoji": "🎉"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        app.post(&path, &staff, json!({"emoji": "🎉"})).await.status,
        StatusCode::OK
    );
    let list = app.get(&path, &staff).await;
    let party = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["emoji"] == "🎉")
        .unwrap()
        .clone();
    assert_eq!(party["count"], 1);
    let stored: i64 = app
        .scalar("SELECT count(*) FROM message_reactions WHERE emoji = '🎉'")
        .await;
    assert_eq!(stored, 1);
    for bad in [
        json!({"emoji": ""}),
        json!({"emoji": "x".repeat(21)}),
        json!({"emoji": "a b"}),
        json!({"emoji": 1}),
    ] {
        assert_eq!(
            app.post(&path, &staff, bad.clone()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    let del = format!("{path}/%F0%9F%8E%89");
    assert_eq!(
        app.call(Method::DELETE, &del, Some(&staff), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::DELETE, &del, Some(&staff), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let (_, acme_msg) = app.acme_thread().await;
    let r = app
        .post(
            &format!("/api/v1/messages/{acme_msg}/reactions"),
            &staff,
            json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v1/messages/{acme_msg}/reactions"), &staff)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

//! `/api/v1/threads` and `/api/v1/messages`: threads, message pages (cursor
//! based, newest first, deleted ones hidden), posting, read receipts (one
//! message, or up to a point), unread counts, readers, reactions.
//!
//! Reading needs `messaging/threads` `view`; creating threads and posting
//! need `create`. Threads are visible to their participants only: any other
//! thread (another tenant's included) is a 404.
//!
//! The reads (thread lists, message pages, unread counts, readers,
//! reactions) go through [`Reads`]: to a read replica that has replayed the
//! caller's last write when one is configured and healthy. The permission
//! check before them reads the primary (through the caches), as every
//! write does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonResponse;
use bisman_cache::Action;
use chrono::{DateTime, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_len, check_text_id, optional_json, page_size, Json, Path, Query};
use crate::queries::messaging::{
    self as q, Message, MessageRef, ReactionGroup, Reader, Thread, Unread,
};
use crate::routing::Reads;

/// Largest page.
const MAX_PAGE: i64 = 200;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_threads, create_thread))
        .routes(routes!(unread))
        .routes(routes!(messages, post_message))
        .routes(routes!(read_up_to))
        .routes(routes!(read_one))
        .routes(routes!(readers))
        .routes(routes!(reactions, add_reaction))
        .routes(routes!(remove_reaction))
}

async fn can_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    caller
        .require(state, "messaging", "threads", Action::View)
        .await
        .map(drop)
}

async fn visible_thread(state: &AppState, caller: &Caller, thread: &str) -> ApiResult<()> {
    check_text_id(thread)?;
    if q::is_participant(&state.pool, caller.tenant(), caller.user(), thread).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn visible_message(state: &AppState, caller: &Caller, id: &str) -> ApiResult<MessageRef> {
    check_text_id(id)?;
    q::find_message(&state.pool, caller.tenant(), caller.user(), id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Page size.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// 1 to 200 (default 50).
    limit: Option<i64>,
}

/// My threads, most recently active first.
#[utoipa::path(get, path = "/threads", tag = "messaging", security(("bearer" = [])), params(Limit),
    responses((status = 200, body = Vec<Thread>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_threads(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Query(q): Query<Limit>,
) -> ApiResult<JsonResponse<Vec<Thread>>> {
    let limit = page_size(q.limit, 50, MAX_PAGE)?;
    can_read(&state, &caller).await?;
    let (tenant, user) = (caller.tenant(), caller.user());
    Ok(JsonResponse(
        reads
            .run(|db| async move { q::list_threads(&db, tenant, user, limit).await })
            .await?,
    ))
}

/// A new thread.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    /// Title (1 to 300 characters).
    title: String,
    /// Other participants (users of my tenant; at most 500). I take part anyway.
    #[serde(default)]
    participant_ids: Vec<i32>,
}

/// Start a thread.
#[utoipa::path(post, path = "/threads", tag = "messaging", security(("bearer" = [])), request_body = NewThread,
    responses((status = 201, body = Thread), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_thread(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewThread>,
) -> ApiResult<(StatusCode, JsonResponse<Thread>)> {
    check_len("title", req.title.trim(), 1, 300)?;
    if req.participant_ids.len() > 500 {
        return Err(ApiError::invalid("at most 500 participants"));
    }
    caller
        .require(&state, "messaging", "threads", Action::Create)
        .await?;
    let mut ids = req.participant_ids.clone();
    ids.push(caller.user().0);
    ids.sort_unstable();
    ids.dedup();
    let known = q::count_tenant_users(&state.pool, caller.tenant(), &ids).await?;
    if known != ids.len() as i64 {
        return Err(ApiError::invalid(
            "every participant must be a user of your tenant",
        ));
    }
    let thread = q::create_thread(
        &state.pool,
        caller.tenant(),
        caller.user(),
        req.title.trim(),
        &ids,
    )
    .await?;
    Ok((StatusCode::CREATED, JsonResponse(thread)))
}

/// Unread messages per thread for me: messages by others after my read
/// position without a receipt of mine.
#[utoipa::path(get, path = "/threads/unread", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = Vec<Unread>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unread(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
) -> ApiResult<JsonResponse<Vec<Unread>>> {
    can_read(&state, &caller).await?;
    let (tenant, user) = (caller.tenant(), caller.user());
    Ok(JsonResponse(
        reads
            .run(|db| async move { q::unread_counts(&db, tenant, user, None).await })
            .await?,
    ))
}

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// Newest first.
    messages: Vec<Message>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// Cursor: hex of `<microseconds since the epoch>:<message id>`.
fn encode_cursor(m: &Message) -> String {
    hex::encode(format!(
        "{}:{}",
        m.created_at.and_utc().timestamp_micros(),
        m.id
    ))
}

fn decode_cursor(raw: &str) -> ApiResult<(NaiveDateTime, String)> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "`before` is not a cursor this service issued",
        )
    };
    if raw.len() > 512 {
        return Err(bad());
    }
    let text = String::from_utf8(hex::decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(bad)?
        .naive_utc();
    if id.is_empty() {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

/// A page of a thread's messages, newest first; deleted messages are left out.
#[utoipa::path(get, path = "/threads/{thread_id}/messages", tag = "messaging", security(("bearer" = [])),
    params(("thread_id" = String, Path, description = "Thread id"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Path(thread): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<JsonResponse<MessagePage>> {
    let limit = page_size(page.limit, 50, MAX_PAGE)?;
    let before = page.before.as_deref().map(decode_cursor).transpose()?;
    can_read(&state, &caller).await?;
    check_text_id(&thread)?;
    let (tenant, user, thread, before) = (caller.tenant(), caller.user(), thread.as_str(), &before);
    let messages = reads
        .run(|db| async move {
            if !q::is_participant(&db, tenant, user, thread).await? {
                return Ok(None);
            }
            q::message_page(&db, tenant, thread, before.clone(), limit)
                .await
                .map(Some)
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    let next_cursor = (messages.len() as i64 == limit)
        .then(|| messages.last().map(encode_cursor))
        .flatten();
    Ok(JsonResponse(MessagePage {
        messages,
        next_cursor,
    }))
}

/// A new message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Text (1 to 10000 characters).
    content: String,
}

/// Post a message.
#[utoipa::path(post, path = "/threads/{thread_id}/messages", tag = "messaging", security(("bearer" = [])),
    params(("thread_id" = String, Path, description = "Thread id")), request_body = NewMessage,
    responses((status = 201, body = Message), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread): Path<String>,
    Json(req): Json<NewMessage>,
) -> ApiResult<(StatusCode, JsonResponse<Message>)> {
    check_len("content", &req.content, 1, 10_000)?;
    if req.content.contains('\0') {
        return Err(ApiError::invalid(
            "`content` must not contain NUL characters",
        ));
    }
    caller
        .require(&state, "messaging", "threads", Action::Create)
        .await?;
    visible_thread(&state, &caller, &thread).await?;
    let message = q::post_message(
        &state.pool,
        caller.tenant(),
        caller.user(),
        &thread,
        &req.content,
    )
    .await?;
    Ok((StatusCode::CREATED, JsonResponse(message)))
}

/// Up to which message.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadUpTo {
    /// The last message read (default: the newest).
    up_to_message_id: Option<String>,
}

/// Where my read position stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadPosition {
    /// Thread id.
    thread_id: String,
    /// Messages created at or before this are read (UTC); absent in an empty thread.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_read_at: Option<NaiveDateTime>,
    /// Unread messages left.
    unread: i64,
}

/// Mark a thread read up to a message (default: all of it). The position
/// only moves forward.
#[utoipa::path(post, path = "/threads/{thread_id}/read", tag = "messaging", security(("bearer" = [])),
    params(("thread_id" = String, Path, description = "Thread id")), request_body(content = Option<ReadUpTo>),
    responses((status = 200, body = ReadPosition), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn read_up_to(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<JsonResponse<ReadPosition>> {
    // The body is optional: empty means "everything".
    let req: ReadUpTo = optional_json(&body)?;
    can_read(&state, &caller).await?;
    visible_thread(&state, &caller, &thread).await?;
    let target = match &req.up_to_message_id {
        Some(id) => {
            let m = visible_message(&state, &caller, id).await?;
            if m.thread_id != thread {
                return Err(ApiError::invalid("that message is not in this thread"));
            }
            Some(m)
        }
        None => q::latest_message(&state.pool, caller.tenant(), &thread).await?,
    };
    let last_read_at = match &target {
        Some(m) => Some(q::mark_read_up_to(&state.pool, caller.tenant(), caller.user(), m).await?),
        None => None,
    };
    let unread = q::unread_counts(&state.pool, caller.tenant(), caller.user(), Some(&thread))
        .await?
        .first()
        .map_or(0, |u| u.unread);
    Ok(JsonResponse(ReadPosition {
        thread_id: thread,
        last_read_at,
        unread,
    }))
}

/// Mark one message read (a receipt in `message_reads`; idempotent).
#[utoipa::path(post, path = "/messages/{message_id}/read", tag = "messaging", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 204, description = "Read"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(message): Path<String>,
) -> ApiResult<StatusCode> {
    can_read(&state, &caller).await?;
    let m = visible_message(&state, &caller, &message).await?;
    q::mark_read(&state.pool, caller.tenant(), caller.user(), &m).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who read a message: receipts, and participants whose read position covers it.
#[utoipa::path(get, path = "/messages/{message_id}/reads", tag = "messaging", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 200, body = Vec<Reader>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn readers(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Path(message): Path<String>,
) -> ApiResult<JsonResponse<Vec<Reader>>> {
    can_read(&state, &caller).await?;
    check_text_id(&message)?;
    let (tenant, user, message) = (caller.tenant(), caller.user(), message.as_str());
    reads
        .run(|db| async move {
            let Some(m) = q::find_message(&db, tenant, user, message).await? else {
                return Ok(None);
            };
            q::readers(&db, tenant, &m).await.map(Some)
        })
        .await?
        .map(JsonResponse)
        .ok_or(ApiError::NotFound)
}

/// Reactions of a message, by emoji.
#[utoipa::path(get, path = "/messages/{message_id}/reactions", tag = "messaging", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "Message id")),
    responses((status = 200, body = Vec<ReactionGroup>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reactions(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Path(message): Path<String>,
) -> ApiResult<JsonResponse<Vec<ReactionGroup>>> {
    can_read(&state, &caller).await?;
    check_text_id(&message)?;
    let (tenant, user, message) = (caller.tenant(), caller.user(), message.as_str());
    reads
        .run(|db| async move {
            let Some(m) = q::find_message(&db, tenant, user, message).await? else {
                return Ok(None);
            };
            q::reactions(&db, tenant, &m).await.map(Some)
        })
        .await?
        .map(JsonResponse)
        .ok_or(ApiError::NotFound)
}

/// A reaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReaction {
    /// An emoji (1 to 20 characters, no spaces or control characters).
    emoji: String,
}

fn check_emoji(emoji: &str) -> ApiResult<()> {
    check_len("emoji", emoji, 1, 20)?;
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            "`emoji` must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// The reaction stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReactionAdded {
    /// The emoji.
    emoji: String,
    /// False when I had already reacted so.
    created: bool,
}

/// React to a message (idempotent: 201 when new, 200 when it was there).
#[utoipa::path(post, path = "/messages/{message_id}/reactions", tag = "messaging", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "Message id")), request_body = NewReaction,
    responses((status = 201, body = ReactionAdded), (status = 200, body = ReactionAdded),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_reaction(
    State(state): State<AppState>,
    caller: Caller,
    Path(message): Path<String>,
    Json(req): Json<NewReaction>,
) -> ApiResult<(StatusCode, JsonResponse<ReactionAdded>)> {
    check_emoji(&req.emoji)?;
    can_read(&state, &caller).await?;
    let m = visible_message(&state, &caller, &message).await?;
    let created =
        q::add_reaction(&state.pool, caller.tenant(), caller.user(), &m, &req.emoji).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        JsonResponse(ReactionAdded {
            emoji: req.emoji,
            created,
        }),
    ))
}

/// Remove my reaction.
#[utoipa::path(delete, path = "/messages/{message_id}/reactions/{emoji}", tag = "messaging",
    security(("bearer" = [])),
    params(("message_id" = String, Path, description = "Message id"), ("emoji" = String, Path, description = "The emoji (URL-encoded)")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_reaction(
    State(state): State<AppState>,
    caller: Caller,
    Path((message, emoji)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_emoji(&emoji)?;
    can_read(&state, &caller).await?;
    let m = visible_message(&state, &caller, &message).await?;
    if q::remove_reaction(&state.pool, caller.tenant(), caller.user(), &m, &emoji).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let m = Message {
            id: "msg_1:x".into(),
            thread_id: "t".into(),
            sender_id: 1,
            content: String::new(),
            created_at: DateTime::from_timestamp_millis(1_700_000_000_123)
                .unwrap()
                .naive_utc(),
        };
        let c = encode_cursor(&m);
        assert_eq!(decode_cursor(&c).unwrap(), (m.created_at, m.id.clone()));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("x:y"),
            &hex::encode("1:"),
            &"a".repeat(600),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}

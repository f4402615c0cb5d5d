//! The shapes JavaScript gets back: the field names of the plan's snippets
//! (`user_id`, `expires_at`) and exactly the JSON `bisman serve` answers for
//! the same objects, so that the two can be compared and swapped.

use bisman_cache::{Permissions, Session};
use serde_json::{json, Map, Value};

/// A live session (`getSessionWithFallback`), without the cache's own
/// bookkeeping. Times are ISO 8601 strings in UTC.
pub fn session(s: &Session) -> Value {
    json!({
        "session_id": s.session_id,
        "tenant_id": s.tenant_id.0,
        "user_id": s.user_id.0,
        "user_type": s.user_type.as_str(),
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "last_seen_at": s.last_seen_at,
    })
}

/// A user's effective permissions: the body of `GET /api/v1/me/permissions`
/// (module → page → allowed actions).
pub fn permissions(p: &Permissions) -> Value {
    let modules: Map<String, Value> = p
        .modules
        .iter()
        .map(|(module, pages)| {
            let pages: Map<String, Value> = pages
                .iter()
                .map(|(page, actions)| {
                    let actions: Vec<Value> =
                        actions.iter().map(|a| Value::from(a.as_str())).collect();
                    (page.clone(), Value::Array(actions))
                })
                .collect();
            (module.clone(), Value::Object(pages))
        })
        .collect();
    json!({
        "user_id": p.user_id.0,
        "tenant_id": p.tenant_id.0,
        "user_type": p.user_type.as_str(),
        "modules": modules,
    })
}

/// Any serialisable answer (reports, stats) as JSON.
pub fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use bisman_cache::{Action, TenantId, UserId, UserType};
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn sessions_use_the_plans_field_names() {
        let t = Utc.with_ymd_and_hms(2024, 12, 5, 0, 0, 0).unwrap();
        let s = Session {
            session_id: 9,
            tenant_id: TenantId(uuid_nil()),
            user_id: UserId(123),
            user_type: UserType::Staff,
            created_at: t,
            expires_at: t,
            last_seen_at: t,
            persisted_seen_at: Some(t),
        };
        let v = session(&s);
        assert_eq!(v["user_id"], 123);
        assert_eq!(v["expires_at"], "2024-12-05T00:00:00Z");
        assert!(v.get("persisted_seen_at").is_none());
    }

    #[test]
    fn permissions_are_the_services_view() {
        let mut pages = BTreeMap::new();
        pages.insert(
            "list".to_string(),
            BTreeSet::from([Action::View, Action::Approve]),
        );
        let p = Permissions {
            user_id: UserId(3),
            tenant_id: TenantId(uuid_nil()),
            user_type: UserType::Manager,
            modules: BTreeMap::from([("payments".to_string(), pages)]),
        };
        assert_eq!(
            permissions(&p),
            json!({"user_id": 3, "tenant_id": "00000000-0000-0000-0000-000000000000",
                   "user_type": "MANAGER", "modules": {"payments": {"list": ["view", "approve"]}}})
        );
    }

    fn uuid_nil() -> sqlx::types::Uuid {
        sqlx::types::Uuid::nil()
    }
}

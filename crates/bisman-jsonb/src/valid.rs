//! The rows a column normalises to: `bisman_valid_reads` and
//! `bisman_valid_reactions` (what `migrate_readby_to_normalized`,
//! `migrate_reactions_to_normalized` and the mirror triggers insert).
//!
//! Valid entries only; a user (and emoji) once, with the earliest time; an
//! entry without a time takes the message's.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::entries::{reaction_entries, reaction_entry_problem, read_entry_problem};
use crate::timestamp::try_timestamp;
use crate::user_id::json_user_id;

/// One `message_reads` row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidRead {
    /// The reader.
    pub user_id: i32,
    /// When (UTC).
    pub read_at: NaiveDateTime,
}

/// One `message_reactions` row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidReaction {
    /// Who reacted.
    pub user_id: i32,
    /// With what.
    pub emoji: String,
    /// When (UTC).
    pub created_at: NaiveDateTime,
}

fn time_of(v: Option<&Value>) -> Option<NaiveDateTime> {
    match v {
        Some(Value::String(s)) => try_timestamp(s),
        _ => None,
    }
}

/// The read receipts of a `"readBy"` value of a message created at
/// `created`, ordered by user.
pub fn valid_reads(col: &Value, created: NaiveDateTime) -> Vec<ValidRead> {
    let Value::Array(items) = col else {
        return Vec::new();
    };
    let mut by_user: BTreeMap<i32, NaiveDateTime> = BTreeMap::new();
    for e in items.iter().filter(|e| read_entry_problem(e).is_none()) {
        let Some(user_id) = json_user_id(&e["userId"]) else {
            continue;
        };
        let at = time_of(e.get("readAt")).unwrap_or(created);
        by_user
            .entry(user_id)
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    by_user
        .into_iter()
        .map(|(user_id, read_at)| ValidRead { user_id, read_at })
        .collect()
}

/// The reactions of a reactions value (either shape) of a message created
/// at `created`, ordered by user and emoji.
pub fn valid_reactions(col: &Value, created: NaiveDateTime) -> Vec<ValidReaction> {
    let mut by_key: BTreeMap<(i32, String), NaiveDateTime> = BTreeMap::new();
    for e in reaction_entries(col) {
        if reaction_entry_problem(&e).is_some() {
            continue;
        }
        let (Some(user_id), Some(emoji)) = (json_user_id(&e["userId"]), e["emoji"].as_str()) else {
            continue;
        };
        let at = time_of(e.get("createdAt")).unwrap_or(created);
        by_key
            .entry((user_id, emoji.to_string()))
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    by_key
        .into_iter()
        .map(|((user_id, emoji), created_at)| ValidReaction {
            user_id,
            emoji,
            created_at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_row_per_user_with_the_earliest_time() {
        let created = try_timestamp("2024-01-01").unwrap();
        let reads = valid_reads(
            &json!([
                {"userId": 2, "readAt": "2024-03-01"},
                {"userId": "2", "readAt": "2024-02-01"},
                {"userId": 1},
                {"userId": 0},
                "junk"
            ]),
            created,
        );
        assert_eq!(
            reads,
            vec![
                ValidRead {
                    user_id: 1,
                    read_at: created
                },
                ValidRead {
                    user_id: 2,
                    read_at: try_timestamp("2024-02-01").unwrap()
                },
            ]
        );
        let reactions = valid_reactions(&json!({"👍": [1, 1, "x"], "🎉": 3}), created);
        assert_eq!(reactions.len(), 1);
        assert_eq!(reactions[0].emoji, "👍");
    }
}

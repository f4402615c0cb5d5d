//! Why an entry cannot be normalised, and the entries of a reactions column.
//!
//! The mirror of `bisman_read_entry_problem`, `bisman_reaction_entry_problem`
//! and `bisman_reaction_entries`: the checks run in the same order, so the
//! first problem found is the one the SQL reports, with the same text.

use serde_json::{json, Map, Value};

use crate::timestamp::try_timestamp;
use crate::user_id::json_user_id;

/// Why an entry cannot be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// The entry is not a JSON object.
    NotAnObject,
    /// A map-shaped reaction whose users are not an array.
    UsersNotAnArray,
    /// No `userId` key.
    MissingUserId,
    /// `userId` is JSON null.
    UserIdNull,
    /// `userId` is not a positive 32-bit integer.
    BadUserId,
    /// `readAt` is present, not null, and not a timestamp.
    BadReadAt,
    /// `emoji` is missing or not a string.
    EmojiNotAString,
    /// `emoji` has fewer than 1 or more than 20 characters.
    EmojiLength,
    /// `createdAt` is present, not null, and not a timestamp.
    BadCreatedAt,
}

impl Problem {
    /// The reason the SQL records in `normalization_quarantine`.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::NotAnObject => "entry is not a JSON object",
            Problem::UsersNotAnArray => "users of a reaction are not a JSON array",
            Problem::MissingUserId => "missing userId",
            Problem::UserIdNull => "userId is null",
            Problem::BadUserId => "userId is not a positive 32-bit integer",
            Problem::BadReadAt => "readAt is not a timestamp",
            Problem::EmojiNotAString => "emoji is missing or not a string",
            Problem::EmojiLength => "emoji must be 1 to 20 characters",
            Problem::BadCreatedAt => "createdAt is not a timestamp",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `userId` checks both kinds of entry share.
fn user_problem(e: &Map<String, Value>) -> Option<Problem> {
    match e.get("userId") {
        None => Some(Problem::MissingUserId),
        Some(Value::Null) => Some(Problem::UserIdNull),
        Some(v) if json_user_id(v).is_none() => Some(Problem::BadUserId),
        Some(_) => None,
    }
}

/// Whether an optional timestamp field is unusable: present, not null, and
/// not a timestamp (a non-string value never is one).
fn bad_time(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => try_timestamp(s).is_none(),
        Some(_) => true,
    }
}

/// `bisman_read_entry_problem`: why a `"readBy"` entry cannot be normalised.
pub fn read_entry_problem(e: &Value) -> Option<Problem> {
    let Value::Object(e) = e else {
        return Some(Problem::NotAnObject);
    };
    if let Some(p) = user_problem(e) {
        return Some(p);
    }
    bad_time(e.get("readAt")).then_some(Problem::BadReadAt)
}

/// `bisman_reaction_entry_problem`: why a reaction entry cannot be normalised.
pub fn reaction_entry_problem(e: &Value) -> Option<Problem> {
    let Value::Object(e) = e else {
        return Some(Problem::NotAnObject);
    };
    if e.contains_key("users") {
        return Some(Problem::UsersNotAnArray);
    }
    if let Some(p) = user_problem(e) {
        return Some(p);
    }
    match e.get("emoji") {
        Some(Value::String(s)) if (1..=20).contains(&s.chars().count()) => {}
        Some(Value::String(_)) => return Some(Problem::EmojiLength),
        _ => return Some(Problem::EmojiNotAString),
    }
    bad_time(e.get("createdAt")).then_some(Problem::BadCreatedAt)
}

/// `bisman_reaction_entries`: the entries of a reactions column, in order,
/// in either shape the ERP has written: an array of entries, or a map from
/// emoji to an array of user ids (`{"👍": [1, 2]}` gives
/// `{"userId": 1, "emoji": "👍"}` and `{"userId": 2, "emoji": "👍"}`; a
/// value that is not an array gives `{"emoji": …, "users": …}`, which
/// [`reaction_entry_problem`] refuses). Map keys come in `jsonb`'s order:
/// shorter keys first, then bytewise. Anything else has no entries.
pub fn reaction_entries(col: &Value) -> Vec<Value> {
    match col {
        Value::Array(items) => items.clone(),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let mut out = Vec::new();
            for key in keys {
                match &map[key.as_str()] {
                    Value::Array(users) => out.extend(
                        users
                            .iter()
                            .map(|u| json!({"userId": u.clone(), "emoji": key})),
                    ),
                    other => out.push(json!({"emoji": key, "users": other.clone()})),
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_problems_in_the_sql_order() {
        let cases = [
            (json!(1), Some(Problem::NotAnObject)),
            (json!({}), Some(Problem::MissingUserId)),
            (json!({"userId": null}), Some(Problem::UserIdNull)),
            (
                json!({"userId": 0, "readAt": "x"}),
                Some(Problem::BadUserId),
            ),
            (
                json!({"userId": 1, "readAt": "x"}),
                Some(Problem::BadReadAt),
            ),
            (json!({"userId": 1, "readAt": 5}), Some(Problem::BadReadAt)),
            (json!({"userId": 1, "readAt": null}), None),
            (json!({"userId": "2", "readAt": "2024-01-01"}), None),
        ];
        for (e, want) in cases {
            assert_eq!(read_entry_problem(&e), want, "{e}");
        }
    }

    #[test]
    fn reaction_problems_in_the_sql_order() {
        let cases = [
            (json!("x"), Some(Problem::NotAnObject)),
            (
                json!({"users": [1], "userId": 1}),
                Some(Problem::UsersNotAnArray),
            ),
            (json!({"emoji": "a"}), Some(Problem::MissingUserId)),
            (json!({"userId": 1}), Some(Problem::EmojiNotAString)),
            (
                json!({"userId": 1, "emoji": ""}),
                Some(Problem::EmojiLength),
            ),
            (
                json!({"userId": 1, "emoji": "x".repeat(21)}),
                Some(Problem::EmojiLength),
            ),
            (
                json!({"userId": 1, "emoji": "👍", "createdAt": []}),
                Some(Problem::BadCreatedAt),
            ),
            (json!({"userId": 1, "emoji": "👍"}), None),
        ];
        for (e, want) in cases {
            assert_eq!(reaction_entry_problem(&e), want, "{e}");
        }
    }

    #[test]
    fn both_reaction_shapes() {
        assert_eq!(
            reaction_entries(&json!([1, {"a": 2}])),
            vec![json!(1), json!({"a": 2})]
        );
        let map = json!({"bb": [1, 2], "a": 3, "c": []});
        assert_eq!(
            reaction_entries(&map),
            vec![
                json!({"emoji": "a", "users": 3}),
                json!({"userId": 1, "emoji": "bb"}),
                json!({"userId": 2, "emoji": "bb"}),
            ]
        );
        assert!(reaction_entries(&json!("x")).is_empty());
    }
}

//! The JSONB read-receipt and reaction parsers on arbitrary bytes: they
//! never panic, and what they accept is consistent (valid rows come only
//! from entries without a problem, user ids are positive, emoji are 1 to 20
//! characters, an accepted timestamp printed back in ISO form parses to
//! itself).

#![no_main]

use bisman_jsonb::{
    json_user_id, reaction_entries, reaction_entry_problem, read_entry_problem, try_timestamp,
    valid_reactions, valid_reads,
};
use chrono::{Datelike, NaiveDateTime};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    timestamps(text);
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        column(&value);
    }
});

fn timestamps(text: &str) {
    let Some(t) = try_timestamp(text) else {
        return;
    };
    if (1000..=9999).contains(&t.year()) {
        let printed = t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        assert_eq!(try_timestamp(&printed), Some(t), "{text:?} -> {printed}");
    }
}

fn column(col: &Value) {
    let created = NaiveDateTime::default();
    let readers: Vec<i32> = match col {
        Value::Array(items) => items
            .iter()
            .filter(|e| read_entry_problem(e).is_none())
            .filter_map(|e| json_user_id(&e["userId"]))
            .collect(),
        _ => Vec::new(),
    };
    for r in valid_reads(col, created) {
        assert!(r.user_id > 0);
        assert!(readers.contains(&r.user_id));
    }
    let entries = reaction_entries(col);
    let good: Vec<&Value> = entries
        .iter()
        .filter(|e| reaction_entry_problem(e).is_none())
        .collect();
    let reactions = valid_reactions(col, created);
    assert!(reactions.len() <= good.len());
    for r in reactions {
        assert!(r.user_id > 0);
        assert!((1..=20).contains(&r.emoji.chars().count()));
        assert!(good.iter().any(
            |e| e["emoji"] == r.emoji.as_str() && json_user_id(&e["userId"]) == Some(r.user_id)
        ));
    }
}

//! `bisman_json_user_id`: a user id from a JSON value.
//!
//! A positive 32-bit integer given as a JSON number whose value is integral
//! (`123`, `123.0`, `1.23e2`) or as a string of 1 to 10 ASCII digits with
//! optional surrounding whitespace (`" 0042 "`); anything else is `None`.

use serde_json::Value;

use crate::timestamp::is_space;

/// The user id `v` denotes, or `None`.
pub fn json_user_id(v: &Value) -> Option<i32> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return in_range(i);
            }
            if n.as_u64().is_some() {
                // Larger than i64::MAX: out of range.
                return None;
            }
            let f = n.as_f64()?;
            if f.fract() == 0.0 && (1.0..=f64::from(i32::MAX)).contains(&f) {
                Some(f as i32)
            } else {
                None
            }
        }
        Value::String(s) => {
            let t = s.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
            if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            in_range(t.parse().ok()?)
        }
        _ => None,
    }
}

fn in_range(i: i64) -> Option<i32> {
    if (1..=i64::from(i32::MAX)).contains(&i) {
        i32::try_from(i).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_digit_strings() {
        assert_eq!(json_user_id(&json!(7)), Some(7));
        assert_eq!(json_user_id(&json!(7.0)), Some(7));
        assert_eq!(json_user_id(&json!(" 0042\t")), Some(42));
        assert_eq!(json_user_id(&json!(2147483647)), Some(i32::MAX));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(2147483648_i64),
            json!(u64::MAX),
            json!("1.0"),
            json!("00000000001"),
            json!(""),
            json!("\u{2003}1"),
            json!(true),
            json!(null),
            json!([1]),
            json!({"id": 1}),
        ] {
            assert_eq!(json_user_id(&bad), None, "{bad}");
        }
    }
}

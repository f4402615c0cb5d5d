//! Identifiers that reach dynamic SQL.
//!
//! Every table, column and index name used to build a statement here comes
//! from the registry or the catalog; [`quote`] quotes it the way
//! PostgreSQL's `quote_ident` does, and [`checked`] refuses anything that is
//! not a plain identifier a bisman table could have, so that text from the
//! command line never reaches SQL unchecked.

use super::LifecycleError;

/// `name` as a quoted SQL identifier (`"name"`, inner quotes doubled).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (`'…'`, inner quotes doubled), for the
/// few places that take no bind parameters (trigger arguments).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A comma-separated list of quoted identifiers.
pub fn quote_list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| quote(n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name` when it is a plain identifier (letters, digits, `_`, at most 63
/// bytes, not starting with a digit), else an error naming `what`.
pub fn checked<'a>(what: &str, name: &'a str) -> Result<&'a str, LifecycleError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(LifecycleError::Invalid(format!(
            "{what} {name:?} is not a plain identifier (letters, digits and _, at most 63 bytes)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_postgres() {
        assert_eq!(quote("createdAt"), "\"createdAt\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_list(&["a", "B"]), "\"a\", \"B\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn refuses_anything_but_plain_names() {
        assert!(checked("table", "thread_messages_p2026_01").is_ok());
        for bad in ["", "1abc", "a b", "a;drop", "x\"y", &"a".repeat(64)] {
            assert!(checked("table", bad).is_err(), "{bad}");
        }
    }
}

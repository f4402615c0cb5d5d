//! Splitting a concurrent step into statements.
//!
//! `CREATE INDEX CONCURRENTLY` cannot run inside a transaction, and
//! PostgreSQL runs a multi-statement query string as one implicit
//! transaction, so each statement of a concurrent step is sent on its own.
//! Concurrent steps hold only plain statements (no function bodies), which is
//! what makes splitting on `;` safe; `split` refuses dollar quotes to keep it so.

/// The statements of a concurrent step, comments removed.
pub fn split(sql: &str) -> Result<Vec<String>, String> {
    if sql.contains("$$") {
        return Err("concurrent steps must not contain dollar-quoted bodies".into());
    }
    let without_comments: String = sql
        .lines()
        .map(|line| match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect())
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name` builds.
pub fn concurrent_index_name(statement: &str) -> Option<&str> {
    let upper = statement.to_ascii_uppercase();
    let at = upper.find("CONCURRENTLY IF NOT EXISTS ")? + "CONCURRENTLY IF NOT EXISTS ".len();
    statement[at..].split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_drops_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\n\n\
                   CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS b\n  ON t (y); -- trailing\n";
        let parts = split(sql).unwrap();
        assert_eq!(
            parts,
            vec![
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x)",
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS b ON t (y)"
            ]
        );
        assert_eq!(concurrent_index_name(&parts[0]), Some("a"));
        assert_eq!(concurrent_index_name(&parts[1]), Some("b"));
        assert_eq!(concurrent_index_name("SELECT 1"), None);
    }

    #[test]
    fn refuses_function_bodies() {
        assert!(split("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;").is_err());
    }
}
